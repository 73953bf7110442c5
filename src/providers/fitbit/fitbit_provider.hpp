#pragma once
// The Fitbit connector. Fitbit data is served by the Google Health API
// (https://health.googleapis.com/v4/users/me/dataTypes/{type}/dataPoints, Google OAuth 2.0);
// README.md lists the endpoints, field mappings and every assumption.
//
// Lifecycle: built once by the composition root (src/app) with the [providers.fitbit]
// settings, the shared HttpClient and the clock; both must outlive it. Stateless between calls
// and thread-safe: any worker thread may call any method concurrently (Provider contract).
#include <memory>

#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "providers/provider.hpp"

namespace syncwell::providers {

// settings.base_url: "https://health.googleapis.com" (or "http://127.0.0.1:9100/fitbit" for the
// simulator). settings.token_url: "https://oauth2.googleapis.com/token"; empty =
// <base_url>/oauth2/token (the simulator's path). The revoke endpoint is the token URL with its
// last segment replaced by "revoke". settings.webhook_secret is the subscriber verification
// code; notifications are signed with settings.client_secret.
std::unique_ptr<Provider> MakeFitbitProvider(ConnectorSettings settings, net::HttpClient& http,
                                             const Clock& clock);

}  // namespace syncwell::providers
