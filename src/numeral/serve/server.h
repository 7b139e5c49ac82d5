#pragma once
// `numeral serve`: a model loaded once behind a JSON API and one web page (web/index.html, built
// into the binary), on cpp-httplib. Generation runs on one worker (serve/queue.h); HTTP threads
// only parse, wait and encode. API reference: README, "numeral serve".
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "numeral/data/dataset.h"
#include "numeral/inference/pipeline.h"

namespace numeral::serve {

// Bounds and addresses; every bound is checked per request and answered with HTTP 400 or 503.
struct ServerOptions {
  std::string host = "127.0.0.1";
  int64_t port = 8080;
  int64_t queue_limit = 64;
  int64_t max_images = 256;
  int64_t max_steps = 1000;
  int64_t max_body_bytes = 16 * 1024;
  int64_t http_threads = 64;
};

template <class V>
void describe(ServerOptions& o, V& v) {
  v("host", o.host, "address to listen on (loopback by default; 0.0.0.0 = every interface)");
  v("port", o.port, "TCP port (0 = any free port, printed at start)", between(0, 65535));
  v("queue_limit", o.queue_limit, "requests waiting or running at once; more get HTTP 503",
    at_least(1));
  v("max_images", o.max_images,
    "images in one request; also the batch that requests share one forward pass in",
    between(1, 4096));
  v("max_steps", o.max_steps, "sampler steps in one request", at_least(1));
  v("max_body_bytes", o.max_body_bytes, "larger request bodies get HTTP 413", at_least(256));
  v("http_threads", o.http_threads,
    "HTTP threads (a client waiting for its images holds one; bounded)", between(1, 1024));
}

// The real images the forward-process endpoint noises: a dataset's held-out images.
struct ForwardSource {
  Dataset digits;
  std::string name;  // e.g. "mnist (held out)"
};

class Server {
 public:
  // `forward` may be empty: /api/forward then answers 404.
  Server(Pipeline pipeline, ServerOptions options, std::optional<ForwardSource> forward);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the socket; returns the port (the chosen one when options.port is 0). Throws
  // numeral::Error when the address cannot be bound.
  int bind();
  // Serves until stop(); call bind() first.
  void listen();
  // Stops accepting connections, lets accepted requests finish, and makes listen() return.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The request a JSON body asks for: every field checked by name (wrong type, unknown field, out of
// range: FieldError naming it), then the server's bounds. `format` ("png" or "json") is read too.
GenerateRequest parse_generate_request(const std::string& body, const Pipeline& pipeline,
                                       const ServerOptions& options, std::string* format);

}  // namespace numeral::serve
