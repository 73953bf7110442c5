#include "loadgen/response_parser.hpp"

#include <algorithm>
#include <cctype>

namespace syncwell::loadgen {

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IContains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (IEquals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

int64_t ResponseHead::BodyLength(bool head_request) const {
  if (head_request || (status >= 100 && status < 200) || status == 204 || status == 304) return 0;
  if (content_length >= 0) return content_length;
  return -1;
}

ParseStatus ParseResponseHead(std::string_view buf, ResponseHead* out) {
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return ParseStatus::kIncomplete;
  *out = ResponseHead{};
  out->head_bytes = end + 4;
  std::string_view head = buf.substr(0, end + 2);  // every line ends with CRLF

  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  // "HTTP/1.x SSS reason"
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ')
    return ParseStatus::kError;
  const bool http10 = status_line[7] == '0';
  out->keep_alive = !http10;
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(status_line[i]))) return ParseStatus::kError;
    status = status * 10 + (status_line[i] - '0');
  }
  out->status = status;

  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return ParseStatus::kError;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = Trim(line.substr(colon + 1));
    if (IEquals(name, "content-length")) {
      if (value.empty() || value.size() > 15) return ParseStatus::kError;
      int64_t n = 0;
      for (char c : value) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return ParseStatus::kError;
        n = n * 10 + (c - '0');
      }
      out->content_length = n;
    } else if (IEquals(name, "connection")) {
      if (IContains(value, "close")) out->keep_alive = false;
      if (IContains(value, "keep-alive")) out->keep_alive = true;
    } else if (IEquals(name, "transfer-encoding")) {
      if (IContains(value, "chunked")) out->chunked = true;
    }
  }
  return ParseStatus::kComplete;
}

}  // namespace syncwell::loadgen
