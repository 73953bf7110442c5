#pragma once
// The Garmin connector: Garmin Connect Developer Program Health + Activity APIs (summaries
// pulled from /wellness-api/rest/{activities,dailies,sleeps,bodyComps} by upload time, 24 h per
// call), OAuth 2.0 with PKCE, ping/push notifications. README.md lists the endpoints, field
// mappings and every assumption, including why PushData refuses workouts.
//
// Lifecycle: built once by the composition root (src/app) with the [providers.garmin]
// settings, the shared HttpClient and the clock; both must outlive it. Stateless between calls
// and thread-safe: any worker thread may call any method concurrently (Provider contract).
#include <memory>

#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "providers/provider.hpp"

namespace syncwell::providers {

// settings.base_url: "https://apis.garmin.com" (or "http://127.0.0.1:9100/garmin" for the
// simulator). settings.token_url: "https://diauth.garmin.com/di-oauth2-service/oauth/token";
// empty = <base_url>/di-oauth2-service/oauth/token (the simulator's path).
// settings.webhook_secret, when set, must arrive as the `token` query parameter of every
// notification (it is part of the endpoint URL configured at Garmin); settings.client_id must
// match the garmin-client-id header Garmin sends.
std::unique_ptr<Provider> MakeGarminProvider(ConnectorSettings settings, net::HttpClient& http,
                                             const Clock& clock);

}  // namespace syncwell::providers
