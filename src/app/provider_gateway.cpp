#include "app/provider_gateway.hpp"

#include <openssl/sha.h>

#include <boost/json.hpp>

#include "core/log.hpp"
#include "core/random.hpp"
#include "providers/capabilities.hpp"
#include "providers/fitbit/fitbit_provider.hpp"
#include "providers/garmin/garmin_provider.hpp"
#include "providers/strava/strava_provider.hpp"
#include "providers/withings/withings_provider.hpp"
#include "store/job_message.hpp"

namespace syncwell::app {

namespace json = boost::json;

namespace {

// Webhook events for one sync config inside this window become one job (SPEC S7 coalescing).
constexpr std::chrono::seconds kCoalesceWindow{60};

std::string ShortHash(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 12; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  return out;
}

providers::ConnectorSettings ToConnector(const config::ProviderConnectorSettings& c) {
  providers::ConnectorSettings out;
  out.base_url = c.base_url;
  out.token_url = c.token_url;
  out.client_id = c.client_id;
  out.client_secret = c.client_secret;
  out.webhook_secret = c.webhook_secret;
  out.timeout = c.timeout;
  return out;
}

}  // namespace

providers::ProviderRegistry BuildProviderRegistry(const config::Settings& s, net::HttpClient& http,
                                                  const Clock& clock) {
  providers::ProviderRegistry reg;
  for (const std::string& name : config::ConnectorNames()) {
    const auto c = config::EffectiveConnector(s, name);
    if (c.client_id.empty()) continue;  // not configured
    auto cs = ToConnector(c);
    if (cs.base_url.empty()) {
      // The real provider (documented defaults live in each connector's README).
      if (name == "strava") cs.base_url = "https://www.strava.com";
      if (name == "withings") cs.base_url = "https://wbsapi.withings.net";
      if (name == "garmin") cs.base_url = "https://apis.garmin.com";
      if (name == "fitbit") cs.base_url = "https://health.googleapis.com";
    }
    if (name == "strava") reg.Add(providers::MakeStravaProvider(cs, http, clock));
    if (name == "withings") reg.Add(providers::MakeWithingsProvider(cs, http, clock));
    if (name == "garmin") reg.Add(providers::MakeGarminProvider(cs, http, clock));
    if (name == "fitbit") reg.Add(providers::MakeFitbitProvider(cs, http, clock));
  }
  return reg;
}

SyncProviderGateway::SyncProviderGateway(providers::ProviderRegistry& registry,
                                         const secrets::SecretBox& box, store::Store& store,
                                         sync::SyncEngine* engine, const Clock& clock,
                                         obs::Registry& metrics)
    : registry_(registry), box_(box), store_(store), engine_(engine), clock_(clock) {
  webhook_jobs_ = &metrics.GetCounter("syncwell_webhook_jobs_total",
                                      "Sync jobs enqueued by provider notifications");
  webhook_coalesced_ =
      &metrics.GetCounter("syncwell_webhook_coalesced_total",
                          "Notifications merged into a pending job (60 s coalescing window)");
  webhook_unknown_users_ = &metrics.GetCounter("syncwell_webhook_unknown_users_total",
                                               "Notification events for no known connection");
}

Result<providers::Provider*> SyncProviderGateway::Connector(const std::string& provider) const {
  providers::Provider* p = registry_.Find(provider);
  if (!p) {
    return MakeError(Errc::kUnavailable, "provider '" + provider +
                                             "' is not configured on this server (set "
                                             "providers." +
                                             provider + ".client_id or providers.sim_url)");
  }
  return p;
}

Status SyncProviderGateway::SealGrant(const providers::TokenGrant& g, store::Connection* c) const {
  auto access = box_.Seal(secrets::Secret(g.access_token));
  if (!access) return access.error();
  c->access_token_sealed = *access;
  c->refresh_token_sealed.clear();
  if (!g.refresh_token.empty()) {
    auto refresh = box_.Seal(secrets::Secret(g.refresh_token));
    if (!refresh) return refresh.error();
    c->refresh_token_sealed = *refresh;
  }
  c->token_expires_at = g.expires_at;
  if (!g.provider_user_id.empty()) c->provider_user_id = g.provider_user_id;
  return {};
}

Result<providers::TokenGrant> SyncProviderGateway::ExchangeCode(const providers::ProviderInfo& info,
                                                                const api::OAuthCode& code) const {
  auto p = Connector(std::string(info.name));
  if (!p) return p.error();
  auto grant = (*p)->Authenticate(code.code, code.code_verifier, code.redirect_uri);
  if (!grant) {
    const Errc e = grant.error().code;
    if (e == Errc::kAuthRevoked || e == Errc::kPermanent || e == Errc::kUnauthenticated) {
      return MakeError(Errc::kAuthRevoked,
                       std::string(info.display_name) + " refused the authorization code");
    }
  }
  return grant;
}

Result<store::Connection> SyncProviderGateway::Connect(const UserId& user,
                                                       const std::string& provider,
                                                       const api::OAuthCode& code) {
  const auto* info = providers::FindProvider(provider);
  if (!info) return MakeError(Errc::kInvalidArgument, "provider: unknown provider");
  store::Connection c;
  c.id = ConnectionId("conn_" + RandomToken(12));
  c.user = user;
  c.provider = provider;
  c.status = store::ConnectionStatus::kActive;
  c.created_at = c.updated_at = clock_.Now();
  if (!info->cloud) return c;  // device connection: data arrives by upload, no tokens
  auto grant = ExchangeCode(*info, code);
  if (!grant) return grant.error();
  if (auto st = SealGrant(*grant, &c); !st) return st.error();
  return c;
}

Result<store::Connection> SyncProviderGateway::Reauthorize(const store::Connection& existing,
                                                           const api::OAuthCode& code) {
  const auto* info = providers::FindProvider(existing.provider);
  if (!info || !info->cloud)
    return MakeError(Errc::kInvalidArgument, "device connections have no authorization");
  auto grant = ExchangeCode(*info, code);
  if (!grant) return grant.error();
  store::Connection c = existing;
  if (!grant->provider_user_id.empty() && !existing.provider_user_id.empty() &&
      grant->provider_user_id != existing.provider_user_id) {
    return MakeError(Errc::kInvalidArgument, "the authorization belongs to another " +
                                                 std::string(info->display_name) +
                                                 " account than this connection");
  }
  if (auto st = SealGrant(*grant, &c); !st) return st.error();
  c.status = store::ConnectionStatus::kActive;
  c.updated_at = clock_.Now();
  return c;
}

void SyncProviderGateway::Revoke(const store::Connection& connection) {
  providers::Provider* p = registry_.Find(connection.provider);
  if (!p || connection.access_token_sealed.empty()) return;
  auto token = box_.Open(connection.access_token_sealed);
  if (!token) return;
  providers::CallContext ctx;
  ctx.access_token = token->reveal();
  ctx.provider_user_id = connection.provider_user_id;
  ctx.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  if (auto st = p->Revoke(ctx); !st) {
    log::Warn("provider grant revocation failed (the grant may outlive the connection)",
              {{"provider", connection.provider}, {"code", ErrcName(st.error().code)}});
  }
}

Result<bool> SyncProviderGateway::EnqueueWebhookJob(const store::SyncConfig& cfg) {
  const int64_t bucket =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count() /
      kCoalesceWindow.count();
  // The job id is derived from (config, window): every process computes the same one, so events
  // of one window land in one job. If that job already started, its fetch may have missed the
  // new data: a follow-up job (next generation) is created instead of dropping the event.
  for (int gen = 0; gen < 4; ++gen) {
    const JobId id("job_wh_" + ShortHash(cfg.id.str() + "/" + std::to_string(bucket) + "/" +
                                         std::to_string(gen)));
    auto existing = store_.GetJob(cfg.user, id);
    if (existing) {
      if (existing->status == store::JobStatus::kQueued) return false;  // merged
      continue;
    }
    if (existing.error().code != Errc::kNotFound) return existing.error();
    const store::Job job = store::QueuedJobFor(cfg, id, "webhook", "medium", clock_.Now());
    const queue::OutgoingMessage msg = store::JobMessage(job, id.str());
    auto st = store_.CreateJob(job, msg, nullptr);
    if (!st) {
      if (st.error().code == Errc::kAlreadyExists || st.error().code == Errc::kConflict)
        return false;  // another process created it first: merged
      return st.error();
    }
    return true;
  }
  return false;  // four jobs in one window already: the last one will pick this up
}

Result<api::WebhookReply> SyncProviderGateway::Webhook(const std::string& provider,
                                                       const providers::WebhookRequest& request) {
  auto p = Connector(provider);
  if (!p) return p.error();
  auto out = (*p)->VerifyWebhook(request);
  if (!out) return out.error();
  api::WebhookReply reply;
  if (out->challenge_response) {
    reply.status = out->challenge_response->first;
    reply.body = out->challenge_response->second;
    if (reply.body.empty()) reply.content_type.clear();
    return reply;
  }
  int enqueued = 0, unknown = 0;
  for (const auto& ev : out->events) {
    auto conns = store_.FindConnectionsByProviderUser(provider, ev.provider_user_id);
    if (!conns) return conns.error();
    if (conns->empty()) {
      ++unknown;
      webhook_unknown_users_->Inc();
      continue;
    }
    for (const auto& c : *conns) {
      if (ev.kind == "deauthorize") {
        // The user revoked us at the provider: stop syncing until they re-consent.
        if (auto st = store_.SetConnectionStatus(c.user, c.id, store::ConnectionStatus::kRevoked);
            !st)
          return st.error();
        continue;
      }
      if (c.status != store::ConnectionStatus::kActive) continue;
      auto configs = store_.ListSyncConfigs(c.user);
      if (!configs) return configs.error();
      for (const auto& cfg : *configs) {
        if (!cfg.enabled || cfg.source != c.id) continue;
        if (ev.type && providers::DataTypeName(*ev.type) != cfg.data_type) continue;
        auto created = EnqueueWebhookJob(cfg);
        if (!created) return created.error();
        if (*created) {
          ++enqueued;
          webhook_jobs_->Inc();
        } else {
          webhook_coalesced_->Inc();
        }
      }
    }
  }
  reply.jobs_enqueued = enqueued;
  reply.body = json::serialize(json::object{
      {"received", out->events.size()}, {"jobsEnqueued", enqueued}, {"unknownUsers", unknown}});
  return reply;
}

Result<api::DeviceUploadOutcome> SyncProviderGateway::DeviceUpload(const UserId& user,
                                                                   const api::DeviceBatch& batch) {
  if (!engine_) return MakeError(Errc::kUnavailable, "this process does not run the sync engine");
  auto configs = store_.ListSyncConfigs(user);
  if (!configs) return configs.error();
  api::DeviceUploadOutcome out;
  out.received = static_cast<int>(batch.records.size());
  for (const auto& cfg : *configs) {
    if (!cfg.enabled || cfg.source != batch.connection ||
        cfg.data_type != providers::DataTypeName(batch.type))
      continue;
    api::DeviceUploadOutcome::PerDestination d;
    d.destination = cfg.destination;
    std::optional<sync::Strategy> strategy;
    sync::Strategy parsed;
    if (sync::ParseStrategy(cfg.conflict_strategy, &parsed)) strategy = parsed;
    auto r = engine_->SyncDeviceBatch(user, batch.connection, cfg.destination, batch.type,
                                      batch.records, strategy);
    if (!r) {
      // One destination failing does not hide the others' results; the device retries the
      // batch and the ledger keeps what was written from being written again.
      d.error = std::string(ErrcName(r.error().code)) + ": " + r.error().message;
      d.failed = static_cast<int>(batch.records.size());
    } else {
      d.written = static_cast<int>(r->written + r->recovered);
      d.skipped = static_cast<int>(r->skipped_total());
      d.failed = static_cast<int>(r->failed);
    }
    out.destinations.push_back(std::move(d));
  }
  return out;
}

}  // namespace syncwell::app
