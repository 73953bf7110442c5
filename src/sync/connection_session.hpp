#pragma once
// Connection sessions: the sync engine's access to a connection's provider tokens (SPEC S4
// "401 after a refresh attempt", S8 credentials, S13 sealed tokens).
//
// ConnectionSessions (one per process, shared by every job) opens a connection's sealed tokens
// with the SecretBox and owns token REFRESH:
//   * proactive: Open() refreshes first when token_expires_at is within refresh_margin;
//   * reactive: a job whose call got 401 calls ConnectionSession::RefreshAfterUnauthorized().
// Refresh is SINGLE-FLIGHT per connection in this process: a mutex per connection id; whoever
// gets it re-reads the connection from the store and
//   - adopts the stored tokens when their token_version differs from the version the caller used
//     (a concurrent job here, or another process, refreshed already) -- no provider call;
//   - otherwise calls Provider::Refresh once and persists the new tokens with
//     Store::UpdateConnectionTokens (compare-and-set on token_version). kConflict means another
//     process won the race: its stored tokens are re-read and used. An old refresh token is never
//     used again once newer tokens are stored, because with rotating refresh tokens (Fitbit) a
//     second refresh with the old one can revoke a healthy grant.
// A refresh answered with kAuthRevoked (invalid_grant) marks the connection needs_reauth -- unless
// the store shows that someone else refreshed in the meantime (then their tokens are adopted) --
// and returns kAuthRevoked. ConnectionSession::Revoked() does the same for a 401 that follows a
// successful refresh.
//
// Tokens stay in secrets::Secret until they are copied into a CallContext; nothing here logs a
// token or puts one into an error message.
//
// Thread-safety: ConnectionSessions is thread-safe. A ConnectionSession belongs to one job
// (one thread) and must not outlive its ConnectionSessions.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"
#include "providers/provider.hpp"
#include "secrets/secret.hpp"
#include "secrets/secret_box.hpp"
#include "store/store.hpp"

namespace syncwell::sync {

struct SessionSettings {
  // Refresh before use when the access token expires within this margin.
  Duration refresh_margin = std::chrono::minutes{5};
  // Attempts to persist refreshed tokens on a store error (the grant may have rotated: losing
  // the new refresh token would strand the connection).
  int persist_attempts = 3;
};

class ConnectionSessions;

class ConnectionSession {
 public:
  const store::Connection& connection() const { return conn_; }
  providers::Provider& provider() const { return *provider_; }
  // A context carrying the current access token.
  providers::CallContext Context(std::chrono::steady_clock::time_point deadline) const;
  // After a 401 to the current token: a fresh token (refreshed or adopted, see above).
  // kAuthRevoked when the grant is gone (the connection is then needs_reauth).
  Status RefreshAfterUnauthorized();
  // A 401 that followed a successful refresh: marks the connection needs_reauth and returns the
  // kAuthRevoked error for the caller to return.
  Error Revoked(std::string_view why);
  // True once this session refreshed or adopted a token.
  bool refreshed() const { return refreshed_; }

 private:
  friend class ConnectionSessions;
  ConnectionSession(ConnectionSessions* owner, store::Connection conn, secrets::Secret access,
                    providers::Provider* provider)
      : owner_(owner), conn_(std::move(conn)), access_(std::move(access)), provider_(provider) {}

  ConnectionSessions* owner_;
  store::Connection conn_;
  secrets::Secret access_;
  providers::Provider* provider_;
  bool refreshed_ = false;
  // What this connection's provider listed whole during the job (CallContext::fetched).
  mutable providers::FetchedRecords fetched_;
};

class ConnectionSessions {
 public:
  ConnectionSessions(store::Store& store, const providers::ProviderRegistry& providers,
                     const secrets::SecretBox& box, const Clock& clock, obs::Registry& metrics,
                     SessionSettings settings = {});
  ConnectionSessions(const ConnectionSessions&) = delete;
  ConnectionSessions& operator=(const ConnectionSessions&) = delete;

  // Loads the connection (scoped by user) and opens its access token, refreshing first when it
  // is about to expire. Errors: missing connection or not active -> kAuthRevoked (the job can
  // never succeed, nothing to retry); no connector for its provider or unreadable tokens ->
  // kPermanent; store errors as returned. `loaded`, when given, is the connection as the caller
  // read it just before (the worker pool reads a job's connections once): it is used instead of
  // reading it again when it is the connection asked for.
  Result<ConnectionSession> Open(const UserId& user, const ConnectionId& id,
                                 const store::Connection* loaded = nullptr);

  // Callers inside or waiting for a refresh section right now (tests observe single-flight).
  int refresh_waiters() const { return waiters_.load(); }

 private:
  friend class ConnectionSession;
  struct Fresh {
    store::Connection conn;
    secrets::Secret access;
  };
  // The single-flight section (see the file comment). `seen_version` is the token_version of the
  // token the caller holds.
  Result<Fresh> RefreshOrAdopt(const UserId& user, const ConnectionId& id, int64_t seen_version,
                               providers::Provider& provider);
  Result<Fresh> Adopt(store::Connection conn, const char* outcome);
  Error MarkNeedsReauth(const store::Connection& conn, std::string_view why);
  void Count(std::string_view provider, const char* outcome);

  std::shared_ptr<std::mutex> AcquireFlight(const ConnectionId& id);
  void ReleaseFlight(const ConnectionId& id, std::shared_ptr<std::mutex>& m);

  store::Store& store_;
  const providers::ProviderRegistry& providers_;
  const secrets::SecretBox& box_;
  const Clock& clock_;
  obs::Registry& metrics_;
  const SessionSettings settings_;

  std::mutex flights_mu_;
  // One mutex per connection with a refresh in progress (or waited for); entries are dropped
  // when the last user releases them. Guarded by flights_mu_.
  std::map<ConnectionId, std::shared_ptr<std::mutex>> flights_;
  std::atomic<int> waiters_{0};
};

}  // namespace syncwell::sync
