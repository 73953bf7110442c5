#pragma once
// The Strava connector (Provider port, providers/provider.hpp) over Strava API v3: activities
// as workouts (read and write), OAuth 2.0 with rotating refresh tokens, push subscriptions.
//
// base_url stands for "https://www.strava.com": the API lives under <base_url>/api/v3, the token
// endpoint is <base_url>/oauth/token unless ConnectorSettings::token_url is set, revocation is
// <base_url>/oauth/deauthorize. Stateless and thread-safe; blocking (worker threads only).
#include <memory>

#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "providers/provider.hpp"

namespace syncwell::providers {

// `http` and `clock` must outlive the returned provider.
std::unique_ptr<Provider> MakeStravaProvider(ConnectorSettings settings, net::HttpClient& http,
                                             const Clock& clock);

}  // namespace syncwell::providers
