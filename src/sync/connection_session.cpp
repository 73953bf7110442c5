#include "sync/connection_session.hpp"

#include <utility>

#include "core/log.hpp"

namespace syncwell::sync {

providers::CallContext ConnectionSession::Context(
    std::chrono::steady_clock::time_point deadline) const {
  providers::CallContext ctx;
  ctx.access_token = access_.reveal();
  ctx.provider_user_id = conn_.provider_user_id;
  ctx.deadline = deadline;
  ctx.fetched = &fetched_;
  return ctx;
}

Status ConnectionSession::RefreshAfterUnauthorized() {
  auto fresh = owner_->RefreshOrAdopt(conn_.user, conn_.id, conn_.token_version, *provider_);
  if (!fresh.ok()) return fresh.error();
  conn_ = std::move(fresh->conn);
  access_ = std::move(fresh->access);
  refreshed_ = true;
  return {};
}

Error ConnectionSession::Revoked(std::string_view why) {
  return owner_->MarkNeedsReauth(conn_, why);
}

ConnectionSessions::ConnectionSessions(store::Store& store,
                                       const providers::ProviderRegistry& providers,
                                       const secrets::SecretBox& box, const Clock& clock,
                                       obs::Registry& metrics, SessionSettings settings)
    : store_(store),
      providers_(providers),
      box_(box),
      clock_(clock),
      metrics_(metrics),
      settings_(settings) {}

Result<ConnectionSession> ConnectionSessions::Open(const UserId& user, const ConnectionId& id,
                                                   const store::Connection* loaded) {
  auto conn = loaded != nullptr && loaded->id == id && loaded->user == user
                  ? Result<store::Connection>(*loaded)
                  : store_.GetConnection(user, id);
  if (!conn.ok()) {
    if (conn.error().code == Errc::kNotFound) {
      return MakeError(Errc::kAuthRevoked, "connection " + id.str() + " no longer exists");
    }
    return conn.error();
  }
  providers::Provider* provider = providers_.Find(conn->provider);
  if (provider == nullptr) {
    return MakeError(Errc::kPermanent, "no connector for provider " + conn->provider);
  }
  if (conn->status != store::ConnectionStatus::kActive) {
    return MakeError(Errc::kAuthRevoked, "connection " + id.str() + " is " +
                                             store::ConnectionStatusName(conn->status) +
                                             " (the user must reconnect)");
  }
  secrets::Secret access;
  if (!conn->access_token_sealed.empty()) {
    auto opened = box_.Open(conn->access_token_sealed);
    if (!opened.ok()) {
      return MakeError(Errc::kPermanent, "cannot open the tokens of connection " + id.str() + ": " +
                                             opened.error().message);
    }
    access = std::move(*opened);
  }
  ConnectionSession session(this, std::move(*conn), std::move(access), provider);
  const TimePoint expires = session.conn_.token_expires_at;
  if (expires != TimePoint{} && clock_.Now() + settings_.refresh_margin >= expires) {
    auto fresh = RefreshOrAdopt(user, id, session.conn_.token_version, *provider);
    if (fresh.ok()) {
      session.conn_ = std::move(fresh->conn);
      session.access_ = std::move(fresh->access);
      session.refreshed_ = true;
    } else if (fresh.error().code == Errc::kAuthRevoked || clock_.Now() >= expires) {
      return fresh.error();
    } else {
      // Not expired yet: use the current token; the next job tries again.
      log::Warn("sync: proactive token refresh failed",
                {{"connection", id.str()}, {"error", fresh.error().message}});
    }
  }
  return session;
}

std::shared_ptr<std::mutex> ConnectionSessions::AcquireFlight(const ConnectionId& id) {
  std::lock_guard lock(flights_mu_);
  auto& m = flights_[id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

void ConnectionSessions::ReleaseFlight(const ConnectionId& id, std::shared_ptr<std::mutex>& m) {
  std::lock_guard lock(flights_mu_);
  m.reset();
  // Every copy is made and dropped under flights_mu_, so use_count is exact here.
  auto it = flights_.find(id);
  if (it != flights_.end() && it->second.use_count() == 1) flights_.erase(it);
}

void ConnectionSessions::Count(std::string_view provider, const char* outcome) {
  metrics_
      .GetCounter("syncwell_sync_token_refresh_total",
                  "Token refresh attempts of the sync engine by provider and outcome "
                  "(refreshed, adopted = someone else had refreshed, revoked, failed)",
                  "provider=\"" + std::string(provider) + "\",outcome=\"" + outcome + "\"")
      .Inc();
}

Error ConnectionSessions::MarkNeedsReauth(const store::Connection& conn, std::string_view why) {
  if (auto st =
          store_.SetConnectionStatus(conn.user, conn.id, store::ConnectionStatus::kNeedsReauth);
      !st.ok()) {
    log::Warn("sync: could not mark connection needs_reauth",
              {{"connection", conn.id.str()}, {"error", st.error().message}});
  }
  log::Info("sync: connection needs re-authorization",
            {{"connection", conn.id.str()}, {"provider", conn.provider}});
  return MakeError(Errc::kAuthRevoked, "connection " + conn.id.str() + " (" + conn.provider +
                                           ") needs re-authorization: " + std::string(why));
}

Result<ConnectionSessions::Fresh> ConnectionSessions::Adopt(store::Connection conn,
                                                            const char* outcome) {
  if (conn.status != store::ConnectionStatus::kActive) {
    // Another job already concluded that the grant is gone.
    return MakeError(Errc::kAuthRevoked, "connection " + conn.id.str() + " is " +
                                             store::ConnectionStatusName(conn.status));
  }
  auto opened = box_.Open(conn.access_token_sealed);
  if (!opened.ok()) {
    return MakeError(Errc::kPermanent, "cannot open the tokens of connection " + conn.id.str() +
                                           ": " + opened.error().message);
  }
  Count(conn.provider, outcome);
  return Fresh{std::move(conn), std::move(*opened)};
}

Result<ConnectionSessions::Fresh> ConnectionSessions::RefreshOrAdopt(
    const UserId& user, const ConnectionId& id, int64_t seen_version,
    providers::Provider& provider) {
  ++waiters_;
  auto flight = AcquireFlight(id);
  struct Exit {
    ConnectionSessions* self;
    const ConnectionId& id;
    std::shared_ptr<std::mutex>& flight;
    ~Exit() {
      self->ReleaseFlight(id, flight);
      --self->waiters_;
    }
  } on_exit{this, id, flight};
  std::lock_guard single_flight(*flight);

  auto conn = store_.GetConnection(user, id);
  if (!conn.ok()) {
    if (conn.error().code == Errc::kNotFound) {
      return MakeError(Errc::kAuthRevoked, "connection " + id.str() + " no longer exists");
    }
    return conn.error();
  }
  if (conn->token_version != seen_version || conn->status != store::ConnectionStatus::kActive) {
    return Adopt(std::move(*conn), "adopted");
  }
  secrets::Secret refresh_token;
  if (!conn->refresh_token_sealed.empty()) {
    auto opened = box_.Open(conn->refresh_token_sealed);
    if (!opened.ok()) {
      return MakeError(Errc::kPermanent, "cannot open the tokens of connection " + id.str() + ": " +
                                             opened.error().message);
    }
    refresh_token = std::move(*opened);
  }
  if (refresh_token.empty()) {
    Count(conn->provider, "revoked");
    return MarkNeedsReauth(*conn, "the access token was rejected and there is no refresh token");
  }

  auto grant = provider.Refresh(refresh_token.reveal());
  if (!grant.ok()) {
    if (grant.error().code != Errc::kAuthRevoked) {
      Count(conn->provider, "failed");
      return grant.error();
    }
    // Before concluding "revoked": did another process refresh (and rotate the refresh token)
    // while we were calling? Then our refresh token was simply old.
    auto again = store_.GetConnection(user, id);
    if (again.ok() && again->token_version != seen_version)
      return Adopt(std::move(*again), "adopted");
    Count(conn->provider, "revoked");
    return MarkNeedsReauth(
        *conn, "the provider refused the refresh token (" + grant.error().message + ")");
  }

  secrets::Secret new_access(std::move(grant->access_token));
  auto access_sealed = box_.Seal(new_access);
  if (!access_sealed.ok()) return access_sealed.error();
  std::string refresh_sealed =
      conn->refresh_token_sealed;  // kept when the provider does not rotate
  if (!grant->refresh_token.empty()) {
    auto sealed = box_.Seal(secrets::Secret(std::move(grant->refresh_token)));
    if (!sealed.ok()) return sealed.error();
    refresh_sealed = std::move(*sealed);
  }
  Status st;
  for (int attempt = 0; attempt < std::max(1, settings_.persist_attempts); ++attempt) {
    st = store_.UpdateConnectionTokens(user, id, *access_sealed, refresh_sealed, grant->expires_at,
                                       seen_version);
    if (st.ok() || st.error().code == Errc::kConflict || st.error().code == Errc::kNotFound) break;
  }
  if (!st.ok()) {
    if (st.error().code == Errc::kConflict) {
      // Another process stored newer tokens first: theirs win (ours are dropped).
      auto winner = store_.GetConnection(user, id);
      if (!winner.ok()) return winner.error();
      return Adopt(std::move(*winner), "adopted");
    }
    if (st.error().code == Errc::kNotFound) {
      return MakeError(Errc::kAuthRevoked, "connection " + id.str() + " no longer exists");
    }
    // Not persisted: use the new token for this job; the stored refresh token may now be stale.
    log::Warn("sync: refreshed tokens could not be stored",
              {{"connection", id.str()}, {"error", st.error().message}});
    Count(conn->provider, "refreshed");
    return Fresh{std::move(*conn), std::move(new_access)};
  }
  Count(conn->provider, "refreshed");
  store::Connection updated = std::move(*conn);
  updated.access_token_sealed = std::move(*access_sealed);
  updated.refresh_token_sealed = std::move(refresh_sealed);
  updated.token_expires_at = grant->expires_at;
  updated.token_version = seen_version + 1;
  return Fresh{std::move(updated), std::move(new_access)};
}

}  // namespace syncwell::sync
