#pragma once
// Open-loop HTTP/1.1 load generator (`syncwell loadgen`), free of coordinated omission.
//
// Fixed-rate mode (rate > 0): request k is *scheduled* at start + k/rate and its latency is
// measured from that scheduled time, not from when it was actually written, so a server stall
// shows up in the tail (as in wrk2). Requests go over a pool of keep-alive connections; when every
// connection is busy a request queues (its latency keeps counting) and the pool may grow up to
// max_connections. Requests still unsent when their timeout passes or the run ends count as
// "not sent". Saturation mode (rate == 0): closed loop, each connection sends its next request as
// soon as the previous one is answered; the report gives the achieved rate.
//
// RunLoadgen() blocks: it runs `threads` worker threads (each its own io_context, own share of the
// rate and connections), stops by itself after duration + drain (drain = min(timeout, 10 s)), and
// writes a readable report followed by one JSON line (the last line of `out`) for scripts.
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace syncwell::loadgen {

// Each field is the CLI flag named in its comment (`syncwell loadgen`), with the same default.
struct LoadgenOptions {
  // --target URL: http://host[:port][/path]. Required; https is not supported.
  std::string target;
  // --rate N: requests/s over the whole run; 0 = saturation (closed loop).
  double rate = 0;
  // --duration D: e.g. 30s, 500ms, 2m (see ParseDuration).
  std::chrono::milliseconds duration{10'000};
  // --connections N: keep-alive pool, opened before the run starts, split over the threads.
  int connections = 64;
  // --max-connections N: in fixed-rate mode the pool grows up to this while every connection is
  // busy and requests are queued; 0 = same as connections (no growth).
  int max_connections = 0;
  // --threads N: worker threads (1 or 2; each has its own event loop and share of the load).
  int threads = 1;
  // --timeout D: per request, counted from its scheduled time (and per connect attempt).
  std::chrono::milliseconds timeout{10'000};
  // --method M
  std::string method = "GET";
  // --path P: default the path of --target, else "/".
  std::string path;
  // --header "Name: value" (repeatable). Host and Content-Length are set by loadgen.
  std::vector<std::string> headers;
  // --body STRING: body template; {{conn_src}} and {{conn_dst}} come from the token line.
  // Content-Type defaults to application/json when there is a body.
  std::string body;
  // --body-file FILE: the template read from a file (trailing newlines dropped).
  std::string body_file;
  // --tokens FILE: lines "TOKEN" or "TOKEN SRC_CONN_ID DST_CONN_ID" ('#' comments); each request
  // takes the next line (round-robin) and sends "Authorization: Bearer TOKEN".
  std::string tokens_file;
  // --random-tokens: pick token lines at random instead of round-robin.
  bool random_tokens = false;
  // --no-idempotency-key sets this false. When true, every request other than GET/HEAD carries a
  // fresh random UUIDv4 "Idempotency-Key".
  bool idempotency_key = true;
};

// Parses "250ms", "10s", "1.5s", "2m", "1h" or a bare number of seconds.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// Runs the load and writes the report. Returns 0 when the run completed and at least one
// request got a 2xx, 1 when none did, 2 on invalid options or setup failure (message on `out`).
int RunLoadgen(const LoadgenOptions& options, std::ostream& out);

}  // namespace syncwell::loadgen
