#pragma once
// The Withings connector (Provider port, providers/provider.hpp) over the Withings Public Health
// Data API: weight (read and write), sleep summaries, workouts and daily steps (read), OAuth 2.0
// with rotating refresh tokens, data-update notifications.
//
// base_url stands for "https://wbsapi.withings.net": the token endpoint is <base_url>/v2/oauth2
// unless ConnectorSettings::token_url is set; data calls are form POSTs to <base_url>/measure,
// /v2/measure and /v2/sleep. ConnectorSettings::webhook_secret is the `token` query parameter
// our notification callback URL carries. Stateless and thread-safe; blocking.
#include <memory>

#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "providers/provider.hpp"

namespace syncwell::providers {

// `http` and `clock` must outlive the returned provider.
std::unique_ptr<Provider> MakeWithingsProvider(ConnectorSettings settings, net::HttpClient& http,
                                               const Clock& clock);

}  // namespace syncwell::providers
