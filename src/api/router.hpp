#pragma once
// Method + path-template routing, e.g. "GET /v1/sync-jobs/{jobId}". Pure, no I/O.
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace syncwell::api {

struct RouteMatch {
  enum class Kind { kFound, kNoPath, kWrongMethod } kind = Kind::kNoPath;
  int route_id = -1;
  std::string name;                           // "GET /v1/sync-jobs/{jobId}"
  std::map<std::string, std::string> params;  // {"jobId": "..."}
  std::string allow;                          // for 405: "GET, DELETE"
};

class Router {
 public:
  void Add(int route_id, std::string_view method, std::string_view pattern);
  RouteMatch Match(std::string_view method, std::string_view path) const;
  struct Entry {
    int id;
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

std::vector<std::string> SplitPath(std::string_view path);

}  // namespace syncwell::api
