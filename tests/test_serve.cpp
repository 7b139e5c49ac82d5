// `numeral serve` through its HTTP API, on a free loopback port with a tiny random-weight model:
// every endpoint, every kind of bad request, 32 concurrent clients, a client leaving mid-stream,
// a full queue, and a clean stop. The page itself is tested in a browser (tests/browser).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "numeral/generate/pictures.h"
#include "numeral/inference/pipeline.h"
#include "numeral/io/image.h"
#include "numeral/serve/queue.h"
#include "numeral/serve/server.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using nlohmann::json;
using namespace test;

// A random-weight tiny model (28x28 grey, 10 classes) with T diffusion steps.
Pipeline tiny_pipeline(int64_t T = 10, int64_t batch_size = 64) {
  torch::manual_seed(3);
  TrainedModel m;
  m.config = tiny_run();
  m.config.diffusion.timesteps = T;
  m.model = UNet(m.config.model);
  m.model->eval();
  m.diffusion = std::make_shared<GaussianDiffusion>(m.config.diffusion, torch::kCPU);
  m.path = "tiny";
  return Pipeline(m, {batch_size, 0});
}

// Ten "real" digits for /api/forward: class c is all c * 25.
serve::ForwardSource tiny_digits() {
  serve::ForwardSource f;
  f.digits.labels = torch::arange(10, torch::kLong);
  f.digits.images = (torch::arange(10, torch::kLong) * 25).to(torch::kByte).view({10, 1, 1, 1});
  f.digits.images = f.digits.images.expand({10, 1, 28, 28}).contiguous();
  f.name = "tiny";
  return f;
}

// A server on a free loopback port, listening on its own thread until the fixture ends.
struct RunningServer {
  std::unique_ptr<serve::Server> server;
  std::thread thread;
  int port = 0;

  explicit RunningServer(serve::ServerOptions options = {}, Pipeline pipeline = tiny_pipeline()) {
    options.port = 0;
    server = std::make_unique<serve::Server>(std::move(pipeline), options, tiny_digits());
    port = server->bind();
    thread = std::thread([this] { server->listen(); });
  }
  ~RunningServer() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
};

std::string base64_decode(const std::string& text) {
  std::string out;
  int value = 0, bits = -8;
  for (char ch : text) {
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* at = std::strchr(alphabet, ch);
    if (ch == '=' || !at) break;
    value = (value << 6) + static_cast<int>(at - alphabet);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((value >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

Image decode_png(const std::string& bytes) {
  TempDir dir;
  write_file_atomic(dir / "x.png", bytes);
  return read_png(dir / "x.png");
}

int max_pixel_difference(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.pixels.size() != b.pixels.size()) return 255;
  int most = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i)
    most = std::max(most, std::abs(a.pixels[i] - b.pixels[i]));
  return most;
}

// Server-sent events of a stream body: (event, data) pairs.
std::vector<std::pair<std::string, json>> parse_events(const std::string& body) {
  std::vector<std::pair<std::string, json>> events;
  std::string event;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("event: ", 0) == 0) event = line.substr(7);
    if (line.rfind("data: ", 0) == 0) events.emplace_back(event, json::parse(line.substr(6)));
  }
  return events;
}

TEST(Serve, HealthModelAndPage) {
  RunningServer s;
  auto c = s.client();
  auto health = c.Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
  auto model = c.Get("/api/model");
  ASSERT_TRUE(model);
  ASSERT_EQ(model->status, 200) << model->body;
  const json m = json::parse(model->body);
  EXPECT_EQ(m["T"], 10);
  EXPECT_EQ(m["classes"].size(), 10u);
  EXPECT_EQ(m["kind"], "diffusion");
  EXPECT_GT(m["parameters"].get<int64_t>(), 1000);
  EXPECT_EQ(m["config"]["model"]["channels"], json({8, 16}));
  EXPECT_EQ(m["defaults"]["w"], kDefaultGuidance);
  EXPECT_TRUE(m["dataset"].get<bool>());
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<html"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos) << "the page loads nothing from outside";
  auto missing = c.Get("/api/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
}

// The images a request gets over HTTP are the ones the library makes for it.
TEST(Serve, GenerateReturnsTheLibrarysImagesAsPngOrJson) {
  RunningServer s;
  auto c = s.client();
  const std::string body = R"({"classes":[3,7],"per_class":2,"sampler":"ddim","steps":4,"seed":9})";
  auto png = c.Post("/api/generate", body, "application/json");
  ASSERT_TRUE(png);
  ASSERT_EQ(png->status, 200) << png->body;
  EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(png->get_header_value("X-Numeral-Seed"), "9");

  const Pipeline local = tiny_pipeline();
  GenerateRequest r;
  r.classes = {3, 7};
  r.per_class = 2;
  r.sampler.name = SamplerName::ddim;
  r.sampler.steps = 4;
  r.seed = 9;
  const GenerateResult expected = local.generate(r);
  GridLabels rows;
  rows.rows = {"3", "7"};
  EXPECT_LE(max_pixel_difference(decode_png(png->body), labelled_grid(expected.images, 2, rows, 2)),
            1);

  auto as_json = c.Post("/api/generate", body.substr(0, body.size() - 1) + R"(,"format":"json"})",
                        "application/json");
  ASSERT_TRUE(as_json);
  ASSERT_EQ(as_json->status, 200) << as_json->body;
  const json j = json::parse(as_json->body);
  ASSERT_EQ(j["images"].size(), 4u);
  EXPECT_EQ(j["images"][2]["class"], 7);
  EXPECT_EQ(j["seed"], 9);
  const Image first = decode_png(base64_decode(j["images"][0]["png"]));
  EXPECT_EQ(first.width, 28);
  EXPECT_LE(max_pixel_difference(first, image_from_tensor(expected.images[0])), 1);
  const Image grid = decode_png(base64_decode(j["grid"]));
  EXPECT_EQ(grid.width, j["grid_width"]);
  EXPECT_EQ(grid.height, j["grid_height"]);
}

// A model that names its own guidance weight (a distilled student's file) serves with it when a
// request names none, and says so in /api/model's defaults; a request's "w" still overrides it.
TEST(Serve, TheModelsOwnGuidanceWeightIsTheDefault) {
  TrainedModel own = tiny_pipeline().model();
  own.default_w = 0.6;
  const Pipeline local(own, {64, 0});
  RunningServer s({}, local);
  auto c = s.client();
  auto model = c.Get("/api/model");
  ASSERT_TRUE(model);
  EXPECT_EQ(json::parse(model->body)["defaults"]["w"], 0.6);

  const std::string body =
      R"({"classes":[3],"per_class":2,"sampler":"ddim","steps":4,"format":"json")";
  auto unnamed = c.Post("/api/generate", body + "}", "application/json");
  auto named = c.Post("/api/generate", body + R"(,"w":0})", "application/json");
  ASSERT_TRUE(unnamed && named);
  ASSERT_EQ(unnamed->status, 200) << unnamed->body;
  ASSERT_EQ(named->status, 200) << named->body;
  const json a = json::parse(unnamed->body), b = json::parse(named->body);
  EXPECT_EQ(a["w"], 0.6);
  EXPECT_EQ(b["w"], 0);
  GenerateRequest r = local.default_request();
  r.classes = {3};
  r.per_class = 2;
  r.sampler.name = SamplerName::ddim;
  r.sampler.steps = 4;
  EXPECT_EQ(r.w, 0.6);
  const GenerateResult expected = local.generate(r);
  EXPECT_LE(max_pixel_difference(decode_png(base64_decode(a["images"][1]["png"])),
                                 image_from_tensor(expected.images[1])),
            1);
  EXPECT_GT(max_pixel_difference(decode_png(base64_decode(b["images"][1]["png"])),
                                 image_from_tensor(expected.images[1])),
            1);
}

// A model with a guide (one its file bundles) says so in /api/model, with its own w_guide among the
// defaults; requests get that w_guide unless they name another. A model without one says null.
TEST(Serve, AModelsGuideAndItsWeightAreInTheModelInfoAndTheDefaults) {
  RunningServer plain;
  auto c = plain.client();
  auto model = c.Get("/api/model");
  ASSERT_TRUE(model);
  EXPECT_TRUE(json::parse(model->body)["guide"].is_null());
  EXPECT_EQ(json::parse(model->body)["defaults"]["w_guide"], 0);

  TrainedModel guided = tiny_pipeline().model();
  attach_guide(guided, tiny_pipeline().model());
  guided.default_w_guide = 1.5;
  const Pipeline local(guided, {64, 0});
  RunningServer s({}, local);
  auto g = s.client();
  model = g.Get("/api/model");
  ASSERT_TRUE(model);
  const json m = json::parse(model->body);
  EXPECT_EQ(m["guide"]["path"], guided.guide->path.string());
  EXPECT_EQ(m["defaults"]["w_guide"], 1.5);
  const std::string body =
      R"({"classes":[3],"per_class":1,"sampler":"ddim","steps":2,"format":"json")";
  auto unnamed = g.Post("/api/generate", body + "}", "application/json");
  auto off = g.Post("/api/generate", body + R"(,"w_guide":0})", "application/json");
  ASSERT_TRUE(unnamed && off);
  ASSERT_EQ(unnamed->status, 200) << unnamed->body;
  ASSERT_EQ(off->status, 200) << off->body;
  EXPECT_EQ(json::parse(unnamed->body)["w_guide"], 1.5);
  EXPECT_EQ(json::parse(off->body)["w_guide"], 0);
}

TEST(Serve, StreamPushesEveryStepBeforeTheResult) {
  RunningServer s;
  auto c = s.client();
  auto res = c.Post("/api/generate/stream", R"({"classes":[5],"per_class":3,"sampler":"ddpm"})",
                    "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const auto events = parse_events(res->body);
  ASSERT_EQ(events.size(), 1u + 10u + 1u);  // start, 10 ddpm steps (T = 10), done
  EXPECT_EQ(events.front().first, "start");
  EXPECT_EQ(events.front().second["steps"], 10);
  for (int i = 1; i <= 10; ++i) {
    EXPECT_EQ(events[i].first, "step");
    EXPECT_EQ(events[i].second["index"], i - 1);
    const Image frame = decode_png(base64_decode(events[i].second["x_t"]));
    EXPECT_GT(frame.width, 3 * 28);  // three images side by side
  }
  EXPECT_EQ(events.back().first, "done");
  EXPECT_EQ(events.back().second["images"].size(), 3u);
}

TEST(Serve, ForwardProcessOfARealDigit) {
  RunningServer s;
  auto c = s.client();
  auto res = c.Get("/api/forward?class=4&t=0");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["T"], 10);
  EXPECT_GT(j["abar"].get<double>(), 0.9);  // t = 0: barely noised
  const Image x0 = decode_png(base64_decode(j["x0"]));
  EXPECT_EQ(x0.at(5, 5), 100);  // class 4 is all 4 * 25
  auto late = json::parse(c.Get("/api/forward?class=4&t=9")->body);
  EXPECT_LT(late["abar"].get<double>(), 0.05);
  // The same noise at every t: one trajectory per digit.
  EXPECT_EQ(c.Get("/api/forward?class=4&t=5")->body, c.Get("/api/forward?class=4&t=5")->body);
  for (const char* bad : {"/api/forward?class=10", "/api/forward?t=10", "/api/forward?t=x",
                          "/api/forward?class=4&index=1"}) {
    auto r = c.Get(bad);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad;
  }
}

// Every kind of bad request: 400 (413 for a body too large) with the field named.
TEST(Serve, BadRequestsAreRefusedNamingTheField) {
  serve::ServerOptions options;
  options.max_images = 100;
  options.max_body_bytes = 1024;
  RunningServer s(options);
  auto c = s.client();
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"{bad json", "", "invalid JSON"},
      {"[1, 2]", "", "expected a JSON object"},
      {R"({"steps": 0})", "steps", "steps 0: expected at least 1"},
      {R"({"steps": 11})", "steps", "steps 11: at most T = 10"},
      {R"({"steps": "ten"})", "steps", "steps: expected an integer"},
      {R"({"w": "high"})", "w", "w: expected a number"},
      {R"({"seed": -1})", "seed", "seed: expected an integer >= 0"},
      {R"({"classes": [3, 12]})", "classes", "classes 12: out of range"},
      {R"({"classes": 3})", "classes", "classes: expected an array of integers"},
      {R"({"sampler": "euler"})", "sampler", "sampler euler: expected ddpm, ddim or dpm++2m"},
      {R"({"per_class": 0})", "per_class", "per_class 0: expected at least 1"},
      {R"({"per_class": 1000000000})", "per_class", "at most 100 images per request"},
      {R"({"classes": [1], "per_class": 101})", "per_class", "per_class 101: at most 100"},
      {R"({"eta": -1})", "eta", "eta -1: expected at least 0"},
      {R"({"stepz": 4})", "stepz", "unknown field \"stepz\""},
      {R"({"format": "gif"})", "format", "format \"gif\": expected"},
      {R"({"unconditional": true, "classes": [1]})", "unconditional", "excludes classes"},
      {R"({"w_interval": [4]})", "w_interval", "w_interval 4: expected two timesteps"},
      {R"({"w_interval": [2, 10]})", "w_interval", "t_max is past this model's last timestep (9)"},
      {R"({"w_interval": [-1, 3]})", "w_interval", "w_interval -1,3: expected at least 0"},
      {R"({"w_guide": 1})", "w_guide", "w_guide 1: autoguidance needs a guide model"},
  };
  for (const auto& [body, field, message] : cases) {
    auto res = c.Post("/api/generate", body, "application/json");
    ASSERT_TRUE(res) << body;
    EXPECT_EQ(res->status, 400) << body;
    const json j = json::parse(res->body);
    EXPECT_NE(j.value("error", "").find(message), std::string::npos) << body << " -> " << j;
    EXPECT_EQ(j.value("field", ""), field) << body;
    // The stream refuses the same way, before any event.
    auto stream = c.Post("/api/generate/stream", body, "application/json");
    ASSERT_TRUE(stream);
    EXPECT_EQ(stream->status, 400) << body;
  }
  auto huge = c.Post("/api/generate", std::string(4096, ' ') + "{}", "application/json");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  // The server still answers.
  auto ok = c.Post("/api/generate", R"({"classes":[1],"per_class":1,"sampler":"ddim","steps":2})",
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// 32 clients at once: each gets its own images (those the library makes for its request alone),
// and the worker shares forward passes between them.
TEST(Serve, ThirtyTwoConcurrentClientsAllAnsweredCorrectly) {
  RunningServer s;
  const Pipeline local = tiny_pipeline();
  constexpr int kClients = 32;
  std::vector<std::string> bodies(kClients);
  std::vector<int> status(kClients, 0), batched(kClients, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto c = s.client();
      const std::string body = fmt::format(
          R"({{"classes":[{}],"per_class":1,"sampler":"ddim","steps":5,"seed":{},"format":"json"}})",
          i % 10, 100 + i);
      auto res = c.Post("/api/generate", body, "application/json");
      if (!res) {
        bodies[i] = httplib::to_string(res.error());
        return;
      }
      status[i] = res->status;
      bodies[i] = res->body;
    });
  }
  for (auto& t : clients) t.join();
  int most_batched = 0;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(status[i], 200) << i << ": " << bodies[i];
    const json j = json::parse(bodies[i]);
    most_batched = std::max(most_batched, j["batched_with"].get<int>());
    GenerateRequest r;
    r.classes = {i % 10};
    r.per_class = 1;
    r.sampler.name = SamplerName::ddim;
    r.sampler.steps = 5;
    r.seed = static_cast<uint64_t>(100 + i);
    const auto alone = local.generate(r).images;
    EXPECT_LE(max_pixel_difference(decode_png(base64_decode(j["images"][0]["png"])),
                                   image_from_tensor(alone[0])),
              1)
        << "client " << i;
  }
  EXPECT_GT(most_batched, 1) << "no two requests shared a forward pass";
}

// A client that leaves mid-stream frees its place: the queue empties and the server goes on.
TEST(Serve, ClientDroppingMidStreamFreesItsPlace) {
  serve::ServerOptions options;
  RunningServer s(options, tiny_pipeline(/*T=*/400));
  auto c = s.client();
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/api/generate/stream";
  req.body = R"({"classes":[1,2,3,4,5,6,7,8],"per_class":8,"sampler":"ddpm"})";
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
    return ++chunks < 3;  // leave after the first events
  };
  auto res = c.send(req);
  EXPECT_FALSE(res);  // we cancelled
  auto health = s.client();
  int64_t queue = -1;
  for (int i = 0; i < 200 && queue != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    queue = json::parse(health.Get("/api/health")->body)["queue"].get<int64_t>();
  }
  EXPECT_EQ(queue, 0) << "the abandoned request still holds the worker";
  auto ok =
      health.Post("/api/generate", R"({"classes":[1],"per_class":1,"steps":2,"sampler":"ddim"})",
                  "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// A full queue answers 503 at once rather than waiting or starting threads.
TEST(Serve, FullQueueAnswers503) {
  serve::ServerOptions options;
  options.queue_limit = 1;
  RunningServer s(options, tiny_pipeline(/*T=*/100));
  std::thread slow([&] {
    auto c = s.client();
    c.Post("/api/generate", R"({"per_class":2,"sampler":"ddpm"})", "application/json");
  });
  auto c = s.client();
  int64_t queue = 0;
  for (int i = 0; i < 400 && queue == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    queue = json::parse(c.Get("/api/health")->body)["queue"].get<int64_t>();
  }
  ASSERT_EQ(queue, 1);
  auto refused = c.Post("/api/generate", R"({"per_class":1})", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_NE(json::parse(refused->body)["error"].get<std::string>().find("queue is full"),
            std::string::npos);
  slow.join();
}

// A port in use is refused with a clear line, not shared.
TEST(Serve, PortInUseIsRefused) {
  serve::ServerOptions options;
  options.port = 0;
  serve::Server first(tiny_pipeline(), options, std::nullopt);
  options.port = first.bind();
  serve::Server second(tiny_pipeline(), options, std::nullopt);
  EXPECT_ERROR(second.bind(), fmt::format("cannot listen on 127.0.0.1:{}", options.port));
}

// Batched requests get the images each would get alone (the noise comes from its own seed).
TEST(Serve, RequestsSampledTogetherMatchTheirSoloImages) {
  const Pipeline p = tiny_pipeline();
  std::vector<GenerateRequest> requests;
  for (int i = 0; i < 3; ++i) {
    GenerateRequest r;
    r.classes = {i, 9 - i};
    r.per_class = 2;
    r.seed = static_cast<uint64_t>(i * 7);
    r.sampler.name = SamplerName::ddpm;  // stochastic: noise at every step
    requests.push_back(p.resolve(r));
  }
  const auto together = p.generate_together(requests);
  ASSERT_EQ(together.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto alone = p.generate(requests[i]).images;
    EXPECT_LT((together[i] - alone).abs().max().item<double>(), 1e-4) << i;
  }
}

// The CLI: `numeral serve --port 0` prints its address (and, with --precision bfloat16, that its
// network runs so), answers, and stops cleanly on SIGTERM.
TEST(Serve, CommandListensAndDrainsOnSigterm) {
  const fs::path model = fs::path(NUMERAL_SOURCE_DIR) / "models" / "mnist.safetensors";
  TempDir dir;
  const fs::path log = dir / "serve.log";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(NUMERAL_CLI_PATH, "numeral", "serve", "--port", "0", "--checkpoint", model.c_str(),
            "--threads", "1", "--precision", "bfloat16", nullptr);
    ::_exit(127);
  }
  int port = 0;
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::string out = fs::exists(log) ? read_file(log) : "";
    const auto at = out.find("http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(out.c_str() + at + 17);
  }
  ASSERT_GT(port, 0) << read_file(log);
  httplib::Client c("127.0.0.1", port);
  auto health = c.Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  EXPECT_NE(read_file(log).find("draining"), std::string::npos);
  EXPECT_NE(read_file(log).find("network in bfloat16"), std::string::npos) << read_file(log);
}

}  // namespace
}  // namespace numeral
