// Browser test of the page `numeral serve` embeds (web/index.html), in headless Chromium.
//
//   cd tests/browser && npm ci
//   node page.test.mjs --numeral build/apps/numeral/numeral --checkpoint model.safetensors \
//        --screenshot out/page.png
//
// Starts `numeral serve --checkpoint CKPT --port 0`, reads the URL from its output, drives the
// page at a phone-sized viewport (390x844): generate one digit and watch the streamed steps,
// check the final grid, slide the forward-noise t, take a screenshot, then stops the server with
// SIGTERM and expects exit code 0. Exit status 0 = pass, 1 = fail. CHROMIUM overrides the
// browser (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const USAGE = 'usage: node page.test.mjs --numeral PATH --checkpoint MODEL.safetensors [--screenshot OUT.png] [--digit 7] [--timeout SECONDS] [--allow-no-dataset]';

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      numeral: { type: 'string' },
      checkpoint: { type: 'string' },
      screenshot: { type: 'string' },
      digit: { type: 'string', default: '7' },
      timeout: { type: 'string', default: '300' }, // seconds for one generation
      // Without it, a server with no real digits fails the test: the slider must be exercised.
      'allow-no-dataset': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (e) {
  console.error(e.message + '\n' + USAGE);
  process.exit(2);
}
if (opts.help) { console.log(USAGE); process.exit(0); }
if (!opts.numeral || !opts.checkpoint) { console.error(USAGE); process.exit(2); }

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const GENERATE_TIMEOUT_MS = Number(opts.timeout) * 1000;
const URL_RE = /http:\/\/127\.0\.0\.1:(\d+)/;

let server = null;
let serverExit = null;       // resolves to {code, signal}
let browser = null;
const serverLog = [];        // last lines of the server's stdout and stderr, for failures

const check = (message) => console.log('ok   ' + message);
const note = (message) => console.log('     ' + message);

function remember(stream, text) {
  for (const line of text.split('\n')) if (line.trim()) serverLog.push(stream + ': ' + line);
  if (serverLog.length > 60) serverLog.splice(0, serverLog.length - 60);
}

function startServer() {
  const args = ['serve', '--checkpoint', opts.checkpoint, '--port', '0'];
  console.log(`     starting ${opts.numeral} ${args.join(' ')}`);
  server = spawn(opts.numeral, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  serverExit = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const buffers = { stdout: '', stderr: '' };
    let settled = false;
    const finish = (fn, value) => { if (!settled) { settled = true; clearTimeout(timer); fn(value); } };
    const timer = setTimeout(() => finish(reject, new Error(
      `no line with http://127.0.0.1:PORT from the server within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    for (const name of ['stdout', 'stderr']) {
      server[name].setEncoding('utf8');
      server[name].on('data', (text) => {
        remember(name, text);
        if (settled) return;
        buffers[name] += text;
        const lines = buffers[name].split('\n');
        buffers[name] = lines.pop();
        for (const line of lines) {
          const m = URL_RE.exec(line);
          if (m) {
            if (name !== 'stdout') note('(the URL line came on stderr, not stdout)');
            finish(resolve, `http://127.0.0.1:${m[1]}`);
            return;
          }
        }
      });
    }
    server.once('error', (e) => finish(reject, new Error(`cannot start ${opts.numeral}: ${e.message}`)));
    serverExit.then(({ code, signal }) => finish(reject, new Error(
      `the server exited before printing its URL (code ${code}, signal ${signal})`)));
  });
}

async function stopServer() {
  const p = server;
  server = null;
  if (!p || p.exitCode !== null || p.signalCode !== null) return serverExit && serverExit;
  p.kill('SIGTERM');
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS); });
  const result = await Promise.race([serverExit, timeout]);
  clearTimeout(timer);
  if (result === null) {
    p.kill('SIGKILL');
    throw new Error(`the server did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM (killed it)`);
  }
  return result;
}

function killEverything() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { server.kill('SIGKILL'); } catch (_) { /* gone */ }
  }
  server = null;
}
process.on('exit', killEverything);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killEverything(); process.exit(1); });
}

async function main() {
  const base = await startServer();
  check(`server is up at ${base}`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);

  const outside = [];
  const pageErrors = [];
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(base + '/') && !url.startsWith('data:')) outside.push(url);
  });
  page.on('pageerror', (err) => pageErrors.push('uncaught: ' + err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push('console: ' + msg.text()); });

  // --- load ---
  const response = await page.goto(base + '/', { waitUntil: 'load' });
  assert.equal(response.status(), 200, 'GET / status');
  assert.match(response.headers()['content-type'] || '', /text\/html/, 'GET / content type');
  await page.waitForFunction(() => document.body.dataset.ready === '1');
  const model = await page.evaluate(async () => (await fetch('api/model')).json());
  assert.equal(await page.locator('#error').isVisible(), false,
    'error box after load: ' + await page.locator('#error').textContent());
  const info = (await page.locator('#model-info').textContent()).trim();
  assert.ok(info.length > 0 && !/loading|no model/.test(info), `model info line: "${info}"`);
  check(`page loaded; model info: ${info}`);

  const student = model.kind === 'student';
  // The guidance slider starts at the model's own default weight (a student's file names its own).
  assert.equal(Number(await page.locator('#w').inputValue()), model.defaults.w, 'w starts at the model default');
  check(`guidance starts at the model's default, w = ${model.defaults.w}`);
  // Autoguidance: a slider at the file's own w_guide for a model that bundles a guide, none else.
  assert.equal(await page.locator('#w-guide').isVisible(), model.guide !== null, 'autoguidance slider shown iff a guide');
  if (model.guide !== null) {
    assert.equal(Number(await page.locator('#w-guide').inputValue()), model.defaults.w_guide, 'w_guide starts at the model default');
    check(`autoguidance starts at the model's default, w_guide = ${model.defaults.w_guide} against ${model.guide.path}`);
  } else {
    check('no guide: no autoguidance slider');
  }
  const digitOptions = await page.locator('#digit option').count();
  assert.equal(digitOptions, 1 + model.classes.length, 'digit select has "any" + every class');
  check(`digit select offers any + ${model.classes.length} classes`);

  // --- a client-side error shows in the error box with its field ---
  if (!student) {
    await page.locator('#steps').fill('0');
    await page.locator('#generate').click();
    await page.locator('#error').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#error').getAttribute('data-field'), 'steps', 'error box names the field');
    check(`steps 0 is refused in the error box: "${(await page.locator('#error').textContent()).replace('×', '').trim()}"`);
  }

  // --- generate ---
  const seed = 1234;
  await page.locator('#digit').selectOption(opts.digit);
  if (student) {
    assert.ok(await page.locator('#sampler').isDisabled(), 'student: sampler locked');
    assert.ok(await page.locator('#steps').isDisabled(), 'student: steps locked');
    assert.ok(await page.locator('#student-note').isVisible(), 'student: note shown');
    check(`student model: sampler and steps locked at ddim / ${model.student_steps}`);
  } else {
    await page.locator('#sampler').selectOption('ddim');
    await page.locator('#steps').fill('10');
  }
  await page.locator('#count').fill('2');
  await page.locator('#seed-random').uncheck();
  await page.locator('#seed').fill(String(seed));
  const expectedSteps = student ? model.student_steps : 10;

  await page.locator('#generate').click();
  const outcome = await page.waitForFunction(() => {
    const s = window.numeralStats;
    return s.runs > 0 && !s.running && (s.done || s.error) ? { ...s } : null;
  }, null, { timeout: GENERATE_TIMEOUT_MS, polling: 100 }).then((h) => h.jsonValue());
  assert.equal(outcome.error, null, `generation failed: ${outcome.error}`);
  assert.equal(outcome.done, true, 'done event arrived');
  check(`generated ${outcome.images} images with seed ${outcome.seed}: ${outcome.seconds?.toFixed?.(2)} s sampling, ${outcome.wallSeconds.toFixed(2)} s in all`);

  assert.ok(outcome.frames > 0, 'step frames arrived');
  assert.ok(outcome.framesBeforeDone > 0, 'step frames arrived before the final result');
  assert.equal(outcome.steps, expectedSteps, 'start event: steps');
  assert.equal(outcome.frames, expectedSteps, 'one step event per sampler step');
  const domFrames = Number(await page.locator('#progress').getAttribute('data-frames'));
  assert.equal(domFrames, outcome.frames, '#progress data-frames');
  check(`${outcome.frames} step frames streamed, ${outcome.framesBeforeDone} before the result`);

  assert.equal(outcome.seed, seed, 'the seed asked for is the seed used');
  assert.equal(outcome.images, 2, 'per_class 2 of one digit = 2 images');
  assert.match(await page.locator('#result-info').textContent(), new RegExp(`seed ${seed}\\b`), 'seed shown');
  check(`seed ${seed} honoured and shown`);

  const frame = await page.evaluate(async () => {
    const img = document.getElementById('frame-xt');
    await img.decode();
    return { w: img.naturalWidth, h: img.naturalHeight };
  });
  assert.ok(frame.w > 0 && frame.h > 0, 'last x_t frame decodes');
  check(`last x_t frame decodes (${frame.w}x${frame.h})`);

  const result = await page.evaluate(async () => {
    const img = document.getElementById('result');
    let decoded = true, why = '';
    try { await img.decode(); } catch (e) { decoded = false; why = String(e); }
    const a = document.getElementById('download');
    return {
      decoded, why, src: img.src.slice(0, 22), w: img.naturalWidth, h: img.naturalHeight,
      visible: img.getBoundingClientRect().width > 0,
      href: a.getAttribute('href').slice(0, 22), download: a.getAttribute('download'),
    };
  });
  assert.ok(result.decoded, 'result image decodes: ' + result.why);
  assert.equal(result.src, 'data:image/png;base64,', 'result is a PNG data URL');
  assert.ok(outcome.gridWidth >= model.image_size && outcome.gridHeight >= model.image_size, 'grid at least one image');
  assert.equal(result.w, outcome.gridWidth, '#result naturalWidth = grid_width');
  assert.equal(result.h, outcome.gridHeight, '#result naturalHeight = grid_height');
  assert.ok(result.visible, '#result is shown');
  check(`#result holds a ${result.w}x${result.h} PNG, as the done event says`);
  assert.equal(result.href, 'data:image/png;base64,', 'download link is the PNG');
  assert.match(result.download || '', /^numeral-.*\.png$/, 'download file name');
  check(`download link: ${result.download}`);

  // --- forward noise ---
  if (model.dataset === false) {
    assert.ok(opts['allow-no-dataset'],
      'the server has no real digits (run it where ./data holds MNIST, or pass --allow-no-dataset)');
    assert.ok(await page.locator('#forward-message').isVisible(), 'no dataset: the forward panel says so');
    check('no dataset: forward panel shows its message');
  } else {
    await page.waitForFunction(() => window.numeralStats.forwardLoads > 0);
    const before = await page.evaluate(() => ({
      src: document.getElementById('noise-image').src, t: Number(document.getElementById('noise-t').value),
      max: Number(document.getElementById('noise-t').max),
    }));
    assert.equal(before.max, model.T - 1, 't slider goes to T-1');
    const t = before.t === 10 ? Math.min(80, before.max) : 10;
    await page.locator('#noise-t').fill(String(t));
    await page.waitForFunction(({ src, t }) => {
      const img = document.getElementById('noise-image');
      return img.src !== src && img.dataset.t === String(t);
    }, { src: before.src, t });
    const noised = await page.evaluate(async () => {
      const img = document.getElementById('noise-image');
      await img.decode();
      return { w: img.naturalWidth, h: img.naturalHeight };
    });
    assert.equal(noised.w, model.image_size, 'x_t width');
    assert.equal(noised.h, model.image_size, 'x_t height');
    assert.equal(await page.locator('#error').isVisible(), false, 'no error after sliding t');
    check(`forward noise: t ${before.t} -> ${t}, new ${noised.w}x${noised.h} x_t decoded (${(await page.locator('#noise-readout').textContent()).trim()})`);
  }

  // --- layout at 390 px ---
  const overflow = await page.evaluate(() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > doc.clientWidth + 0.5)
      .map((e) => e.id ? '#' + e.id : e.tagName.toLowerCase());
    return { scroll: doc.scrollWidth, client: doc.clientWidth, wide: wide.slice(0, 8) };
  });
  assert.ok(overflow.scroll <= overflow.client && overflow.wide.length === 0,
    `nothing overflows 390 px: scrollWidth ${overflow.scroll}, client ${overflow.client}, ${overflow.wide.join(' ')}`);
  check(`nothing overflows at 390 px (scrollWidth ${overflow.scroll})`);

  if (opts.screenshot) {
    mkdirSync(path.dirname(path.resolve(opts.screenshot)), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    check(`screenshot: ${opts.screenshot}`);
  }

  assert.deepEqual(outside, [], 'the page requested nothing from elsewhere');
  check('no requests outside the server');
  assert.deepEqual(pageErrors, [], 'no script or console errors');
  check('no script or console errors');

  await browser.close();
  browser = null;

  const exit = await stopServer();
  assert.equal(exit.signal, null, `server died of signal ${exit.signal}`);
  assert.equal(exit.code, 0, 'server exit code after SIGTERM');
  check('server exited 0 on SIGTERM');
}

try {
  await main();
  console.log('PASS');
  process.exit(0);
} catch (e) {
  console.log('FAIL ' + (e && e.message ? e.message : e));
  if (e && e.stack && !(e instanceof assert.AssertionError)) console.log(e.stack.split('\n').slice(1, 4).join('\n'));
  if (serverLog.length) console.log('--- server output (tail) ---\n' + serverLog.slice(-30).join('\n'));
  if (browser) await browser.close().catch(() => {});
  killEverything();
  process.exit(1);
}
