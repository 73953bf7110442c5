#pragma once
// ProviderGateway: what the API needs from the provider side (implemented in src/app, where the
// connectors, the SecretBox and the sync engine are wired). Kept as a port so src/api does not
// depend on connectors or the sync engine, and ApiService tests can use a fake.
//
// Every method blocks (provider HTTP calls); the API runs it on its blocking handler pool.
// Errors are classified (core/result.hpp) and mapped to problem+json by the handlers:
//   kInvalidArgument -> 400/422 (the message is safe to show), kNotFound -> 404,
//   kAuthRevoked -> 400 OAUTH_CODE_REJECTED (the provider refused the code),
//   kUnavailable -> 503 PROVIDER_NOT_CONFIGURED, kRateLimited/kRetryable -> 502/503 + Retry-After.
#include <string>
#include <vector>

#include "core/ids.hpp"
#include "core/result.hpp"
#include "providers/provider.hpp"
#include "store/model.hpp"

namespace syncwell::api {

struct OAuthCode {
  std::string code;           // never logged
  std::string code_verifier;  // PKCE, may be empty
  std::string redirect_uri;   // may be empty
};

struct WebhookReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  int jobs_enqueued = 0;
};

// One device-upload batch (Apple Health / Health Connect): records of one type from a device
// connection of the caller.
struct DeviceBatch {
  ConnectionId connection;
  providers::DataType type = providers::DataType::kWorkout;
  std::vector<providers::Record> records;
};

struct DeviceUploadOutcome {
  struct PerDestination {
    ConnectionId destination;
    int written = 0;
    int skipped = 0;
    int failed = 0;
    std::string error;  // when the destination failed as a whole
  };
  int received = 0;
  std::vector<PerDestination> destinations;
};

class ProviderGateway {
 public:
  virtual ~ProviderGateway() = default;
  // Exchanges the OAuth code with `provider` and returns a NEW, NOT YET STORED connection for
  // `user` with sealed tokens (the API stores it with its idempotency record). Device providers
  // (apple_health, health_connect) need no code: a connection without tokens is returned.
  virtual Result<store::Connection> Connect(const UserId& user, const std::string& provider,
                                            const OAuthCode& code) = 0;
  // Re-consent for an existing connection: returns it with fresh sealed tokens (not stored).
  virtual Result<store::Connection> Reauthorize(const store::Connection& existing,
                                                const OAuthCode& code) = 0;
  // Best-effort revocation of the provider grant (connection or account deletion).
  virtual void Revoke(const store::Connection& connection) = 0;
  // Verifies and handles a provider notification: maps provider users to connections and
  // enqueues (coalesced) sync jobs. Forged or malformed -> kInvalidArgument.
  virtual Result<WebhookReply> Webhook(const std::string& provider,
                                       const providers::WebhookRequest& request) = 0;
  // Pushes an uploaded batch to every destination of the caller's sync configs whose source is
  // the batch's connection (synchronously: uploaded health data is never stored).
  virtual Result<DeviceUploadOutcome> DeviceUpload(const UserId& user,
                                                   const DeviceBatch& batch) = 0;
};

}  // namespace syncwell::api
