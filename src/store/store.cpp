// The Store port's default implementations (store.hpp): composed of the port's single reads, for
// stores where a call is cheap (in process). Networked adapters override them with one round trip.
#include "store/store.hpp"

namespace syncwell::store {

Result<std::vector<Connection>> Store::GetConnections(const UserId& user,
                                                      const std::vector<ConnectionId>& ids) {
  std::vector<Connection> out;
  for (const auto& id : ids) {
    auto c = GetConnection(user, id);
    if (c) {
      out.push_back(std::move(*c));
    } else if (c.error().code != Errc::kNotFound) {
      return c.error();
    }
  }
  return out;
}

Result<Store::WriteGuard> Store::GetWriteGuard(const UserId& user, const std::string& key) {
  auto idem = GetIdempotency(user, key);
  if (!idem) return idem.error();
  auto deletion = GetUserDeletion(user);
  if (!deletion) return deletion.error();
  return WriteGuard{std::move(*idem), std::move(*deletion)};
}

}  // namespace syncwell::store
