#include "api/router.hpp"

namespace syncwell::api {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

void Router::Add(int route_id, std::string_view method, std::string_view pattern) {
  entries_.push_back(
      Entry{route_id, std::string(method), std::string(pattern), SplitPath(pattern)});
}

RouteMatch Router::Match(std::string_view method, std::string_view path) const {
  RouteMatch result;
  // A trailing slash is a different resource; reject it rather than guess.
  if (path.size() > 1 && path.back() == '/') return result;
  auto segs = SplitPath(path);
  for (const auto& e : entries_) {
    if (e.segments.size() != segs.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const auto& p = e.segments[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        if (segs[i].empty())
          ok = false;
        else
          params[p.substr(1, p.size() - 2)] = segs[i];
      } else if (p != segs[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (e.method == method) {
      result.kind = RouteMatch::Kind::kFound;
      result.route_id = e.id;
      result.name = e.method + " " + e.pattern;
      result.params = std::move(params);
      return result;
    }
    result.kind = RouteMatch::Kind::kWrongMethod;
    result.allow += (result.allow.empty() ? "" : ", ") + e.method;
  }
  return result;
}

}  // namespace syncwell::api
