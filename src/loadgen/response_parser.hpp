#pragma once
// Minimal HTTP/1.1 response-head parser for loadgen: status line, Content-Length, Connection,
// Transfer-Encoding. Stateless: call again with more bytes until it is not kIncomplete. No Asio.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace syncwell::loadgen {

struct ResponseHead {
  int status = 0;
  int64_t content_length = -1;  // -1: absent
  bool keep_alive = true;
  bool chunked = false;
  size_t head_bytes = 0;  // bytes up to and including the blank line

  // Body length to read: Content-Length, 0 for 1xx/204/304 (or a HEAD request), -1 = until EOF.
  int64_t BodyLength(bool head_request) const;
};

enum class ParseStatus { kIncomplete, kComplete, kError };

ParseStatus ParseResponseHead(std::string_view buf, ResponseHead* out);

}  // namespace syncwell::loadgen
