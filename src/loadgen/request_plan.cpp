#include "loadgen/request_plan.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace syncwell::loadgen {

namespace {

constexpr size_t kMaxTokenLines = 1'000'000;
constexpr size_t kMaxBodyBytes = 16 * 1024 * 1024;

Error Invalid(std::string m) { return MakeError(Errc::kInvalidArgument, std::move(m)); }

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = std::move(ss).str();
  return true;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<std::string> SplitWords(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) words.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

struct TokenLine {
  std::string token, src, dst;
};

}  // namespace

Result<Target> ParseTarget(std::string_view url) {
  constexpr std::string_view kHttp = "http://";
  if (url.starts_with("https://")) return Invalid("loadgen: https is not supported, use http://");
  if (!url.starts_with(kHttp)) return Invalid("loadgen: --target must start with http://");
  url.remove_prefix(kHttp.size());
  Target t;
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) t.path = std::string(url.substr(slash));
  if (authority.starts_with('[')) {  // [ipv6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return Invalid("loadgen: bad IPv6 literal in --target");
    t.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (authority.starts_with(':')) t.port = std::string(authority.substr(1));
  } else {
    const size_t colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) t.port = std::string(authority.substr(colon + 1));
  }
  if (t.host.empty()) return Invalid("loadgen: --target has no host");
  if (t.port.empty() || !std::all_of(t.port.begin(), t.port.end(), ::isdigit) || t.port.size() > 5)
    return Invalid("loadgen: bad port in --target");
  return t;
}

std::string RenderBody(std::string_view tmpl, std::string_view src, std::string_view dst) {
  std::string out;
  out.reserve(tmpl.size() + 64);
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find("{{", i);
    if (open == std::string_view::npos) break;
    out.append(tmpl.substr(i, open - i));
    if (tmpl.substr(open).starts_with("{{conn_src}}")) {
      out.append(src);
      i = open + 12;
    } else if (tmpl.substr(open).starts_with("{{conn_dst}}")) {
      out.append(dst);
      i = open + 12;
    } else {
      out.append("{{");
      i = open + 2;
    }
  }
  out.append(tmpl.substr(std::min(i, tmpl.size())));
  return out;
}

Result<RequestPlan> BuildRequestPlan(const LoadgenOptions& o, const Target& target) {
  if (o.method.empty() || o.method.find_first_of(" \r\n") != std::string::npos)
    return Invalid("loadgen: bad --method");
  std::string path = !o.path.empty() ? o.path : (!target.path.empty() ? target.path : "/");
  if (path.front() != '/' || path.find_first_of(" \r\n") != std::string::npos)
    return Invalid("loadgen: --path must start with / and contain no spaces");

  std::string body_tmpl = o.body;
  if (!o.body_file.empty()) {
    if (!o.body.empty()) return Invalid("loadgen: give --body or --body-file, not both");
    if (!ReadFile(o.body_file, &body_tmpl))
      return Invalid("loadgen: cannot read --body-file " + o.body_file);
    while (!body_tmpl.empty() && (body_tmpl.back() == '\n' || body_tmpl.back() == '\r'))
      body_tmpl.pop_back();
  }
  if (body_tmpl.size() > kMaxBodyBytes) return Invalid("loadgen: body larger than 16 MiB");
  const bool needs_conns = body_tmpl.find("{{conn_") != std::string::npos;

  std::vector<TokenLine> lines;
  if (!o.tokens_file.empty()) {
    std::ifstream in(o.tokens_file);
    if (!in) return Invalid("loadgen: cannot read --tokens " + o.tokens_file);
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      auto w = SplitWords(line);
      if (w.empty() || w[0].starts_with('#')) continue;
      if (w.size() != 1 && w.size() != 3)
        return Invalid("loadgen: --tokens line " + std::to_string(line_no) +
                       ": expected TOKEN or TOKEN SRC_CONN_ID DST_CONN_ID");
      if (needs_conns && w.size() != 3)
        return Invalid(
            "loadgen: --tokens line " + std::to_string(line_no) +
            ": the body uses {{conn_src}}/{{conn_dst}} but the line has no connection ids");
      lines.push_back({w[0], w.size() == 3 ? w[1] : "", w.size() == 3 ? w[2] : ""});
      if (lines.size() > kMaxTokenLines) return Invalid("loadgen: --tokens has over 1M lines");
    }
    if (lines.empty()) return Invalid("loadgen: --tokens file has no token lines");
  } else {
    if (needs_conns)
      return Invalid("loadgen: the body uses {{conn_src}}/{{conn_dst}}, which need --tokens");
    lines.push_back({});
  }

  bool has_content_type = false;
  std::string user_headers;
  for (const auto& h : o.headers) {
    const size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0 || h.find_first_of("\r\n") != std::string::npos)
      return Invalid("loadgen: bad --header '" + h + "' (want 'Name: value')");
    const std::string_view name = std::string_view(h).substr(0, colon);
    if (IEquals(name, "content-type")) has_content_type = true;
    if (IEquals(name, "content-length") || IEquals(name, "host"))
      return Invalid("loadgen: --header may not set " + std::string(name));
    user_headers += h;
    user_headers += "\r\n";
  }

  const bool bodyless_method = o.method == "GET" || o.method == "HEAD";
  RequestPlan plan;
  plan.idempotency_key = o.idempotency_key && !bodyless_method;
  plan.random_pick = o.random_tokens;
  plan.path = path;
  std::string host_header =
      target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host;
  if (target.port != "80") host_header += ":" + target.port;
  std::string common = o.method + " " + path + " HTTP/1.1\r\nHost: " + host_header +
                       "\r\nUser-Agent: syncwell-loadgen\r\n" + user_headers;
  if (!body_tmpl.empty() && !has_content_type) common += "Content-Type: application/json\r\n";

  plan.entries.reserve(lines.size());
  for (const auto& l : lines) {
    RequestPlan::Entry e;
    e.body = needs_conns ? RenderBody(body_tmpl, l.src, l.dst) : body_tmpl;
    e.head = common;
    if (!l.token.empty()) e.head += "Authorization: Bearer " + l.token + "\r\n";
    if (!e.body.empty() || !bodyless_method)
      e.head += "Content-Length: " + std::to_string(e.body.size()) + "\r\n";
    plan.entries.push_back(std::move(e));
  }
  return plan;
}

UuidGenerator::UuidGenerator() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  rng_.seed(seq);
}

void UuidGenerator::Write(char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = rng_();
  uint64_t lo = rng_();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  int pos = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[pos++] = '-';
    const uint64_t word = i < 16 ? hi : lo;
    const int nibble = 15 - (i % 16);
    out[pos++] = kHex[(word >> (nibble * 4)) & 0xf];
  }
}

}  // namespace syncwell::loadgen
