#pragma once
// The ProviderGateway the API uses (api/provider_gateway.hpp), wired from the connectors, the
// SecretBox, the Store and the sync engine. Also builds the ProviderRegistry from settings.
#include <memory>
#include <mutex>
#include <string>

#include "api/provider_gateway.hpp"
#include "config/settings.hpp"
#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "obs/metrics.hpp"
#include "providers/provider.hpp"
#include "secrets/secret_box.hpp"
#include "store/store.hpp"
#include "sync/sync_engine.hpp"

namespace syncwell::app {

// One connector per configured cloud provider ([providers] <name>.client_id set, or sim_url).
providers::ProviderRegistry BuildProviderRegistry(const config::Settings& s, net::HttpClient& http,
                                                  const Clock& clock);

class SyncProviderGateway final : public api::ProviderGateway {
 public:
  // engine may be null (API-only role): device uploads then answer 503.
  SyncProviderGateway(providers::ProviderRegistry& registry, const secrets::SecretBox& box,
                      store::Store& store, sync::SyncEngine* engine, const Clock& clock,
                      obs::Registry& metrics);

  Result<store::Connection> Connect(const UserId& user, const std::string& provider,
                                    const api::OAuthCode& code) override;
  Result<store::Connection> Reauthorize(const store::Connection& existing,
                                        const api::OAuthCode& code) override;
  void Revoke(const store::Connection& connection) override;
  Result<api::WebhookReply> Webhook(const std::string& provider,
                                    const providers::WebhookRequest& request) override;
  Result<api::DeviceUploadOutcome> DeviceUpload(const UserId& user,
                                                const api::DeviceBatch& batch) override;

 private:
  Result<providers::Provider*> Connector(const std::string& provider) const;
  Status SealGrant(const providers::TokenGrant& g, store::Connection* c) const;
  // The provider's token exchange for a code; a refused code -> kAuthRevoked with a safe message.
  Result<providers::TokenGrant> ExchangeCode(const providers::ProviderInfo& info,
                                             const api::OAuthCode& code) const;
  // Enqueues (coalesced) one job for a sync config; returns true when a new job was created.
  Result<bool> EnqueueWebhookJob(const store::SyncConfig& cfg);

  providers::ProviderRegistry& registry_;
  const secrets::SecretBox& box_;
  store::Store& store_;
  sync::SyncEngine* engine_;
  const Clock& clock_;
  obs::Counter* webhook_jobs_;
  obs::Counter* webhook_coalesced_;
  obs::Counter* webhook_unknown_users_;
};

}  // namespace syncwell::app
