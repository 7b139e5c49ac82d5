#!/usr/bin/env python3
"""numeral's U-Net written in PyTorch: the same layers, loading numeral's own safetensors weights.

  bench/reference.py --check FILE      outputs equal numeral's (FILE from `bench_step --dump`)
  bench/reference.py --bench           the training and sampling steps, eager and TorchScript,
                                       as JSON lines in bench_step's format (bench/run.sh)

Layer for layer it follows src/numeral/model/ (layers.cpp, unet.cpp); the parameter names are
LibTorch's, so numeral's "ema.*" tensors load with load_state_dict(strict=True).
"""
import argparse
import json
import math
import struct
import sys
import time
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

NULL_LABEL = -1
GUIDANCE_FEATURE_SCALE = 100.0  # kGuidanceFeatureScale in model/unet.h


def read_safetensors(path):
    """Tensors and metadata of a safetensors file (the format is a JSON header and raw bytes)."""
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = bytearray(body[begin:end])
        flat = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]) if raw else torch.empty(0)
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


def sinusoidal_embedding(t: torch.Tensor, dim: int):
    half = dim // 2
    scale = math.log(10000.0) / (half - 1) if half > 1 else 0.0
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -scale)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([args.sin(), args.cos()], dim=1)


class EmbedBlock(nn.Module):
    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, groups):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = F.gelu(self.norm1(self.conv1(x)))
        h = F.gelu(self.norm2(self.conv2(h)))
        return h + self.shortcut(x)


class DownBlock(nn.Module):
    def __init__(self, c_in, c_out, groups):
        super().__init__()
        self.block = ResBlock(c_in, c_out, groups)

    def forward(self, x):
        skip = self.block(x)
        return F.avg_pool2d(skip, 2), skip


class UpBlock(nn.Module):
    def __init__(self, c_in, c_skip, c_out, groups):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_in, 2, stride=2)
        self.block = ResBlock(c_in + c_skip, c_out, groups)

    def forward(self, x, skip):
        return self.block(torch.cat([self.up(x), skip], dim=1))


class SelfAttention(nn.Module):
    def __init__(self, channels, heads, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attention = nn.MultiheadAttention(channels, heads)

    def forward(self, x):
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).permute(2, 0, 1)
        out = self.attention(seq, seq, seq, need_weights=False)[0]
        return x + out.permute(1, 2, 0).reshape(b, c, h, w)


class UNet(nn.Module):
    """numeral's UNet (model/unet.h) from its config dict ("model" of a checkpoint's config)."""

    def __init__(self, cfg):
        super().__init__()
        c = cfg["channels"]
        g = cfg["groups"]
        self.num_classes = cfg["num_classes"]
        self.time_embed_dim = cfg["time_embed_dim"]
        self.guidance_input = cfg.get("guidance_input", False)
        self.guidance_scale = GUIDANCE_FEATURE_SCALE
        self.input = ResBlock(cfg["image_channels"], c[0], g)
        self.down = nn.ModuleList([DownBlock(c[i], c[i + 1], g) for i in range(len(c) - 1)])
        self.bottleneck = ResBlock(c[-1], c[-1], g)
        self.attention = SelfAttention(c[-1], cfg["attention_heads"], g) if cfg["attention"] else None
        widths = [c[-1]] + [c[i] for i in range(len(c) - 2, -1, -1)]
        self.up = nn.ModuleList([UpBlock(c[i + 1], c[i + 1], c[i], g)
                                 for i in range(len(c) - 2, -1, -1)])
        d, e = cfg["time_embed_dim"], cfg["class_embed_dim"]
        self.time_embed = nn.ModuleList([EmbedBlock(d, d, w) for w in widths])
        self.class_embed = nn.ModuleList([EmbedBlock(self.num_classes, e, w) for w in widths])
        self.guidance_embed = (nn.ModuleList([EmbedBlock(d, d, w) for w in widths])
                               if self.guidance_input else None)
        self.out_conv1 = nn.Conv2d(2 * c[0], c[0], 3, padding=1)
        self.out_norm = nn.GroupNorm(g, c[0])
        self.out_conv2 = nn.Conv2d(c[0], cfg["image_channels"], 3, padding=1)

    def forward(self, x, t, labels, w: torch.Tensor):
        time_f = sinusoidal_embedding(t, self.time_embed_dim)
        classes = torch.arange(self.num_classes, device=labels.device)
        class_f = (labels.unsqueeze(1) == classes.unsqueeze(0)).float()
        guidance_f = sinusoidal_embedding(w * self.guidance_scale, self.time_embed_dim)
        shifts: List[torch.Tensor] = []
        for m in self.time_embed:
            shifts.append(m(time_f))
        if self.guidance_embed is not None:
            i = 0
            for m in self.guidance_embed:
                shifts[i] = shifts[i] + m(guidance_f)
                i += 1
        scales: List[torch.Tensor] = []
        for m in self.class_embed:
            scales.append(m(class_f))

        x0_features = self.input(x)
        h = x0_features
        skips = []
        for block in self.down:
            h, skip = block(h)
            skips.append(skip)
        h = self.bottleneck(h)
        if self.attention is not None:
            h = self.attention(h)
        h = h * (1 + scales[0][:, :, None, None]) + shifts[0][:, :, None, None]
        j = 0
        for block in self.up:
            h = block(h, skips[len(skips) - 1 - j])
            h = h * (1 + scales[j + 1][:, :, None, None]) + shifts[j + 1][:, :, None, None]
            j += 1
        h = F.gelu(self.out_norm(self.out_conv1(torch.cat([h, x0_features], dim=1))))
        return self.out_conv2(h)


def load_model(path):
    """The EMA weights of a numeral checkpoint or export, in the reference UNet."""
    tensors, metadata = read_safetensors(path)
    cfg = json.loads(metadata["config"])["model"]
    model = UNet(cfg)
    state = {k[len("ema."):]: v.float() for k, v in tensors.items() if k.startswith("ema.")}
    model.load_state_dict(state, strict=True)
    return model.eval(), cfg


def check(dump_path, teacher, student, tol):
    """Compares with numeral's outputs on the same inputs; returns the worst absolute error."""
    fixture, _ = read_safetensors(dump_path)
    worst = 0.0
    for prefix, path in (("teacher", teacher), ("student", student)):
        if prefix + ".out" not in fixture:
            continue
        model, cfg = load_model(path)
        w = fixture.get(prefix + ".w", torch.zeros(fixture[prefix + ".t"].shape[0]))
        with torch.no_grad():
            out = model(fixture[prefix + ".x"], fixture[prefix + ".t"], fixture[prefix + ".labels"], w)
        err = (out - fixture[prefix + ".out"]).abs().max().item()
        scale = fixture[prefix + ".out"].abs().max().item()
        print(f"{prefix} {path}: max |reference - numeral| = {err:.3g} (outputs up to {scale:.3g})")
        worst = max(worst, err)
    if worst > tol:
        print(f"FAIL: the reference differs from numeral by {worst:.3g} > {tol}")
        return 1
    return 0


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def train_batches():
    """bench_step's batches: the CPU ones fit its caches, the CUDA ones fill the GPU."""
    return (64, 512) if DEVICE.type == "cuda" else (64,)


def sample_batches():
    return (64, 2048) if DEVICE.type == "cuda" else (256, 64)


def seconds_per_call(fn, seconds):
    """bench_step's measure: two warm-up calls, then the best of 3 repeats of seconds / 3."""
    fn()
    fn()
    sync()
    best = float("inf")
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            sync()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3 and calls >= 2:
                break
        best = min(best, elapsed / calls)
    return best


def flops_per_image(cfg):
    """forward_flops (model/unet.cpp), the same count."""
    c, s, ci = cfg["channels"], cfg["image_size"], cfg["image_channels"]
    d, e, k = cfg["time_embed_dim"], cfg["class_embed_dim"], cfg["num_classes"]

    def res(a, b, n):
        return 2 * 9 * n * n * (a * b + b * b) + (2 * n * n * a * b if a != b else 0)

    def emb(width):
        return 2 * (d * d + d * width) * (2 if cfg.get("guidance_input") else 1) + 2 * (k * e + e * width)

    f = res(ci, c[0], s)
    for i in range(len(c) - 1):
        f += res(c[i], c[i + 1], s >> i)
    bottom = s >> (len(c) - 1)
    f += res(c[-1], c[-1], bottom) + emb(c[-1])
    if cfg["attention"]:
        n = bottom * bottom
        f += 2 * (4 * c[-1] * c[-1] * n + 2 * n * n * c[-1])
    for i in range(len(c) - 2, -1, -1):
        n, half = s >> i, s >> (i + 1)
        f += 2 * 4 * half * half * c[i + 1] * c[i + 1] + res(2 * c[i + 1], c[i], n) + emb(c[i])
    return f + 2 * 9 * s * s * (2 * c[0] * c[0] + c[0] * ci)


def inputs(cfg, batch):
    x = torch.randn(batch, cfg["image_channels"], cfg["image_size"], cfg["image_size"])
    t = torch.full((batch,), 50, dtype=torch.long)
    labels = torch.cat([torch.randint(0, cfg["num_classes"], (batch - batch // 2,)),
                        torch.full((batch // 2,), NULL_LABEL, dtype=torch.long)])
    w = torch.full((batch,), 0.25)
    return x.to(DEVICE), t.to(DEVICE), labels.to(DEVICE), w.to(DEVICE)


def bench_model(name, model, cfg, seconds, gemm):
    flops = flops_per_image(cfg)
    rows = []

    def row(impl, step, batch, s, f):
        ips = batch / s
        rows.append({"impl": impl, "model": name, "step": step, "batch": batch,
                     "gflop_per_image": f / 1e9, "ms_per_step": s * 1e3, "images_per_s": ips,
                     "gemm_fraction": ips * f / gemm})

    model = model.to(DEVICE)
    for batch in train_batches():
        x, t, labels, w = inputs(cfg, batch)
        target = torch.randn_like(x)
        for impl, net in (("pytorch eager", model), ("pytorch torchscript", torch.jit.script(model))):
            net.train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

            def step():
                opt.zero_grad()
                F.mse_loss(net(x, t, labels, w), target).backward()
                opt.step()

            row(impl, "train", batch, seconds_per_call(step, seconds), 3 * flops)
    model.eval()
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model).eval()))
    for batch in sample_batches():
        x, t, labels, w = inputs(cfg, batch)
        for impl, net in (("pytorch eager", model), ("pytorch frozen", frozen)):
            with torch.no_grad():
                s = seconds_per_call(lambda: net(x, t, labels, w), seconds)
            row(impl, "sample", batch, s, flops)
    for r in rows:
        print(json.dumps(r), flush=True)


def gemm_rate(seconds):
    best = 0.0
    for n in (2048, 4096, 8192) if DEVICE.type == "cuda" else (512, 1024, 2048):
        a, b, c = (torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE),
                   torch.empty(n, n, device=DEVICE))
        s = seconds_per_call(lambda: torch.mm(a, b, out=c), seconds / 3)
        best = max(best, 2 * n ** 3 / s)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", metavar="FILE", help="compare with bench_step --dump FILE")
    p.add_argument("--bench", action="store_true", help="time the training and sampling steps")
    p.add_argument("--teacher", default="models/mnist.safetensors")
    p.add_argument("--student", default="")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the benchmark only)")
    a = p.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.check:
        return check(a.check, a.teacher, a.student, a.tol)
    torch.manual_seed(0)
    gemm = gemm_rate(a.seconds)
    print(json.dumps({"impl": "pytorch", "gemm_gflops": gemm / 1e9, "threads": torch.get_num_threads(),
                      "device": str(DEVICE), "torch": torch.__version__}), flush=True)
    model, cfg = load_model(a.teacher)
    bench_model("shipped (32,32,64)", model, cfg, a.seconds, gemm)
    default = dict(cfg, channels=[64, 64, 128])
    bench_model("default (64,64,128)", UNet(default), default, a.seconds, gemm)
    if a.student:
        model, cfg = load_model(a.student)
        bench_model("student (32,32,64)", model, cfg, a.seconds, gemm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
