// HTTP/1.1 syntax checks (RFC 9110 §5.1, §5.5) shared by the server (api) and the client (net),
// so a header that would break a message's framing is recognised the same way on both sides.
#pragma once

#include <algorithm>
#include <cctype>
#include <string_view>

namespace syncwell::http_syntax {

inline bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A method or header name: one or more token characters.
inline bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// A header value that cannot end the header or smuggle another one: no CR, LF or NUL.
inline bool IsFieldValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace syncwell::http_syntax
