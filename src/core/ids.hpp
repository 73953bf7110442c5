#pragma once
// Strong id types so a UserId cannot be passed where a ConnectionId is expected (STYLE §15).
#include <compare>
#include <functional>
#include <string>
#include <utility>

namespace syncwell {

template <class Tag>
class StrongId {
 public:
  StrongId() = default;
  explicit StrongId(std::string v) : v_(std::move(v)) {}
  const std::string& str() const { return v_; }
  bool empty() const { return v_.empty(); }
  auto operator<=>(const StrongId&) const = default;

 private:
  std::string v_;
};

using UserId = StrongId<struct UserIdTag>;
using ConnectionId = StrongId<struct ConnectionIdTag>;
using JobId = StrongId<struct JobIdTag>;
using SyncConfigId = StrongId<struct SyncConfigIdTag>;
using DedupId = StrongId<struct DedupIdTag>;
using MessageGroupId = StrongId<struct MessageGroupIdTag>;

}  // namespace syncwell

template <class Tag>
struct std::hash<syncwell::StrongId<Tag>> {
  size_t operator()(const syncwell::StrongId<Tag>& id) const noexcept {
    return std::hash<std::string>{}(id.str());
  }
};
