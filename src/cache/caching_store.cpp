#include "cache/caching_store.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <utility>

#include "core/random.hpp"

namespace syncwell::cache {
namespace json = boost::json;
namespace {

// ---- the cached value encoding: "v1|" + JSON; see caching_store.hpp ----

constexpr std::string_view kFormat = "v1|";
constexpr std::string_view kKeyFormat = "v1";

int64_t Nanos(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
TimePoint FromNanos(int64_t ns) {
  return TimePoint{std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds{ns})};
}

json::value ToJson(const store::User& u) {
  return json::object{{"id", u.id.str()},
                      {"t", store::TierName(u.tier)},
                      {"s", u.settings_json},
                      {"c", Nanos(u.created_at)},
                      {"m", Nanos(u.updated_at)}};
}
json::value ToJson(const store::Connection& c) {
  return json::object{{"id", c.id.str()},
                      {"u", c.user.str()},
                      {"p", c.provider},
                      {"st", store::ConnectionStatusName(c.status)},
                      {"pu", c.provider_user_id},
                      {"at", c.access_token_sealed},
                      {"rt", c.refresh_token_sealed},
                      {"x", Nanos(c.token_expires_at)},
                      {"v", c.token_version},
                      {"c", Nanos(c.created_at)},
                      {"m", Nanos(c.updated_at)}};
}
json::value ToJson(const store::SyncConfig& c) {
  return json::object{{"id", c.id.str()},         {"u", c.user.str()},
                      {"src", c.source.str()},    {"dst", c.destination.str()},
                      {"dt", c.data_type},        {"cs", c.conflict_strategy},
                      {"en", c.enabled},          {"v", c.version},
                      {"c", Nanos(c.created_at)}, {"m", Nanos(c.updated_at)}};
}
template <class T>
json::value ToJson(const std::vector<T>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& x : v) a.push_back(ToJson(x));
  return a;
}

// Field readers: false when the field is missing or of another type.
bool Str(const json::object& o, std::string_view k, std::string* out) {
  const auto* v = o.if_contains(k);
  if (v == nullptr || !v->is_string()) return false;
  *out = std::string(v->get_string());
  return true;
}
template <class Id>
bool IdField(const json::object& o, std::string_view k, Id* out) {
  std::string s;
  if (!Str(o, k, &s)) return false;
  *out = Id(std::move(s));
  return true;
}
bool Int(const json::object& o, std::string_view k, int64_t* out) {
  const auto* v = o.if_contains(k);
  if (v == nullptr || !v->is_int64()) return false;
  *out = v->get_int64();
  return true;
}
bool Time(const json::object& o, std::string_view k, TimePoint* out) {
  int64_t ns = 0;
  if (!Int(o, k, &ns)) return false;
  *out = FromNanos(ns);
  return true;
}

bool FromJson(const json::value& v, store::User* u) {
  const auto* o = v.if_object();
  std::string tier;
  return o != nullptr && IdField(*o, "id", &u->id) && Str(*o, "t", &tier) &&
         store::ParseTier(tier, &u->tier) && Str(*o, "s", &u->settings_json) &&
         Time(*o, "c", &u->created_at) && Time(*o, "m", &u->updated_at);
}
bool FromJson(const json::value& v, store::Connection* c) {
  const auto* o = v.if_object();
  std::string status;
  return o != nullptr && IdField(*o, "id", &c->id) && IdField(*o, "u", &c->user) &&
         Str(*o, "p", &c->provider) && Str(*o, "st", &status) &&
         store::ParseConnectionStatus(status, &c->status) && Str(*o, "pu", &c->provider_user_id) &&
         Str(*o, "at", &c->access_token_sealed) && Str(*o, "rt", &c->refresh_token_sealed) &&
         Time(*o, "x", &c->token_expires_at) && Int(*o, "v", &c->token_version) &&
         Time(*o, "c", &c->created_at) && Time(*o, "m", &c->updated_at);
}
bool FromJson(const json::value& v, store::SyncConfig* c) {
  const auto* o = v.if_object();
  if (o == nullptr) return false;
  const auto* en = o->if_contains("en");
  if (en == nullptr || !en->is_bool()) return false;
  c->enabled = en->get_bool();
  return IdField(*o, "id", &c->id) && IdField(*o, "u", &c->user) &&
         IdField(*o, "src", &c->source) && IdField(*o, "dst", &c->destination) &&
         Str(*o, "dt", &c->data_type) && Str(*o, "cs", &c->conflict_strategy) &&
         Int(*o, "v", &c->version) && Time(*o, "c", &c->created_at) &&
         Time(*o, "m", &c->updated_at);
}
template <class T>
bool FromJson(const json::value& v, std::vector<T>* out) {
  const auto* a = v.if_array();
  if (a == nullptr) return false;
  out->clear();
  out->reserve(a->size());
  for (const auto& e : *a) {
    T x;
    if (!FromJson(e, &x)) return false;
    out->push_back(std::move(x));
  }
  return true;
}

// The user a record belongs to (scoping check on decode).
const UserId& Owner(const store::User& u) { return u.id; }
const UserId& Owner(const store::Connection& c) { return c.user; }
const UserId& Owner(const store::SyncConfig& c) { return c.user; }
template <class T>
bool OwnedBy(const T& x, const UserId& user) {
  return Owner(x) == user;
}
template <class T>
bool OwnedBy(const std::vector<T>& v, const UserId& user) {
  return std::all_of(v.begin(), v.end(), [&](const T& x) { return Owner(x) == user; });
}

template <class T>
std::string Encode(const UserId& user, const T& value) {
  std::string out(kFormat);
  out += json::serialize(json::object{{"u", user.str()}, {"v", ToJson(value)}});
  return out;
}
std::string EncodeNotFound(const UserId& user, const std::string& message) {
  std::string out(kFormat);
  out += json::serialize(json::object{{"u", user.str()}, {"nf", message}});
  return out;
}

// nullopt: undecodable or not `user`'s (the caller then reads the store).
template <class T>
std::optional<Result<T>> Decode(const UserId& user, std::string_view cached) {
  if (cached.substr(0, kFormat.size()) != kFormat) return std::nullopt;
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;  // tokens and settings are stored byte for byte
  boost::system::error_code ec;
  json::value v = json::parse(cached.substr(kFormat.size()), ec, {}, opts);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  std::string owner;
  if (!Str(o, "u", &owner) || owner != user.str()) return std::nullopt;
  if (const auto* nf = o.if_contains("nf")) {
    if (!nf->is_string()) return std::nullopt;
    return Result<T>(MakeError(Errc::kNotFound, std::string(nf->get_string())));
  }
  const auto* body = o.if_contains("v");
  T out;
  if (body == nullptr || !FromJson(*body, &out) || !OwnedBy(out, user)) return std::nullopt;
  return Result<T>(std::move(out));
}

bool KnownFormat(std::string_view cached) { return cached.substr(0, kFormat.size()) == kFormat; }

obs::Counter& Make(obs::Registry& r, const char* name, const char* help, const std::string& cache,
                   const char* label, const char* value) {
  return r.GetCounter(name, help,
                      "cache=\"" + cache + "\"," + label + "=\"" + std::string(value) + "\"");
}
constexpr const char* kInval = "syncwell_cache_invalidations_total";
constexpr const char* kInvalHelp =
    "Per-user cache invalidations after store writes, by outcome (error = retried later)";
constexpr const char* kFallback = "syncwell_cache_store_fallbacks_total";
constexpr const char* kFallbackHelp =
    "Cached store reads answered by the store without the cache, by reason";

}  // namespace

CachingStore::CachingStore(store::Store& inner, CacheAside& cache, const Clock& clock,
                           obs::Registry* metrics, CachingStoreSettings settings)
    : inner_(inner),
      aside_(cache),
      generations_(std::make_unique<CacheAside>(
          cache.cache(), metrics,
          CacheAsideSettings{.name = cache.name() + "_generation", .jitter = 0.0})),
      clock_(clock),
      settings_(settings),
      own_metrics_(metrics == nullptr ? std::make_unique<obs::Registry>() : nullptr),
      invalidations_ok_(Make(metrics ? *metrics : *own_metrics_, kInval, kInvalHelp, cache.name(),
                             "outcome", "ok")),
      invalidations_error_(Make(metrics ? *metrics : *own_metrics_, kInval, kInvalHelp,
                                cache.name(), "outcome", "error")),
      fallback_cache_error_(Make(metrics ? *metrics : *own_metrics_, kFallback, kFallbackHelp,
                                 cache.name(), "reason", "cache_error")),
      fallback_pending_(Make(metrics ? *metrics : *own_metrics_, kFallback, kFallbackHelp,
                             cache.name(), "reason", "invalidation_pending")),
      fallback_decode_(Make(metrics ? *metrics : *own_metrics_, kFallback, kFallbackHelp,
                            cache.name(), "reason", "decode")),
      memo_(settings.decoded_memo_entries > 0 ? std::make_unique<MemoShard[]>(kMemoShards)
                                              : nullptr) {}

CachingStore::~CachingStore() = default;

std::string CachingStore::GenerationKey(const UserId& user) { return "config:" + user.str(); }

CachingStoreStats CachingStore::Stats() const {
  CachingStoreStats s;
  s.invalidations = invalidations_ok_.Value() + invalidations_error_.Value();
  s.invalidation_errors = invalidations_error_.Value();
  s.fallback_cache_error = fallback_cache_error_.Value();
  s.fallback_pending = fallback_pending_.Value();
  s.fallback_decode = fallback_decode_.Value();
  s.decodes = decodes_.load(std::memory_order_relaxed);
  std::lock_guard lock(pending_mu_);
  s.pending_invalidations = pending_.size();
  return s;
}

// ---- the cached read path ----

Result<std::string> CachingStore::Generation(const UserId& user) {
  const std::string key = GenerationKey(user);
  auto got = aside_.cache().Get(key);
  if (!got.ok()) return got.error();
  if (got->has_value() && !(*got)->empty() && (*got)->size() <= 64) return std::move(**got);
  // None yet (or evicted): start one, stored BEFORE the caller reads the store, which keeps the
  // invariant "a value under the current generation was read after the last invalidation". If
  // that Set fails the token is current nowhere, so what is cached under it is never served.
  return generations_->GetOrLoad(
      key, settings_.generation_ttl,
      [] {
        return Result<Loaded>(Loaded{RandomToken(8), {}});
      },
      [](std::string_view v) { return !v.empty() && v.size() <= 64; });
}

template <class T>
Result<T> CachingStore::Read(const UserId& user, const std::string& kind, bool negative,
                             const std::function<Result<T>()>& load) {
  if (MustBypass(user)) {
    fallback_pending_.Inc();
    return load();
  }
  auto gen = Generation(user);
  if (!gen.ok()) {
    fallback_cache_error_.Inc();
    return load();
  }
  std::string key = GenerationKey(user);
  key += ':';
  key += *gen;
  key += ':';
  key += kKeyFormat;
  key += ':';
  key += kind;
  auto cached = aside_.GetOrLoad(
      key, settings_.ttl,
      [&]() -> Result<Loaded> {
        auto v = load();
        if (v.ok()) return Loaded{Encode(user, *v), std::nullopt};
        if (negative && v.error().code == Errc::kNotFound) {
          return Loaded{EncodeNotFound(user, v.error().message), settings_.negative_ttl};
        }
        return v.error();  // never cached
      },
      KnownFormat);
  if (!cached.ok()) return cached.error();
  if (auto memo = MemoGet(key, *cached)) return *std::static_pointer_cast<const Result<T>>(memo);
  decodes_.fetch_add(1, std::memory_order_relaxed);
  if (auto decoded = Decode<T>(user, *cached)) {
    MemoPut(key, *cached, std::make_shared<const Result<T>>(*decoded));
    return std::move(*decoded);
  }
  fallback_decode_.Inc();
  return load();
}

std::shared_ptr<const void> CachingStore::MemoGet(const std::string& key, std::string_view cached) {
  if (!memo_) return nullptr;
  MemoShard& s = memo_[std::hash<std::string>{}(key) % kMemoShards];
  std::lock_guard lock(s.mu);
  auto it = s.entries.find(key);
  if (it == s.entries.end() || it->second.first != cached) return nullptr;
  return it->second.second;
}

void CachingStore::MemoPut(const std::string& key, std::string_view cached,
                           std::shared_ptr<const void> value) {
  if (!memo_) return;
  MemoShard& s = memo_[std::hash<std::string>{}(key) % kMemoShards];
  std::lock_guard lock(s.mu);
  if (s.entries.size() >= std::max<size_t>(1, settings_.decoded_memo_entries / kMemoShards)) {
    s.entries.clear();  // bounded; the next reads decode again
  }
  s.entries[key] = {std::string(cached), std::move(value)};
}

// ---- invalidation ----

template <class R>
R CachingStore::Invalidated(const UserId& user, R st) {
  Invalidate(user);
  return st;
}

void CachingStore::Invalidate(const UserId& user) {
  // Failures recorded before this Set are covered by it (their writes committed before); one
  // recorded while it runs may belong to a later write and must stay.
  uint64_t covered_seq = 0;
  if (degraded_.load()) {
    std::lock_guard lock(pending_mu_);
    covered_seq = pending_seq_;
  }
  const Status st =
      aside_.cache().Set(GenerationKey(user), RandomToken(8), settings_.generation_ttl);
  const TimePoint now = clock_.Now();
  if (st.ok()) {
    invalidations_ok_.Inc();
    if (degraded_.load()) {
      std::lock_guard lock(pending_mu_);
      auto it = pending_.find(user);
      if (it != pending_.end() && it->second.seq <= covered_seq) pending_.erase(it);
      degraded_.store(!pending_.empty() || now < bypass_all_until_);
    }
    return;
  }
  invalidations_error_.Inc();
  std::lock_guard lock(pending_mu_);
  // Every value cached before now has expired by then (ttl + at most 90% jitter).
  const TimePoint until = now + 2 * std::max(settings_.ttl, settings_.negative_ttl);
  if (pending_.size() >= settings_.max_pending_invalidations && !pending_.count(user)) {
    bypass_all_until_ = until;  // too many to track: read everything from the store for a while
  } else {
    pending_[user] = Pending{until, ++pending_seq_};
  }
  degraded_.store(true);
}

bool CachingStore::MustBypass(const UserId& user) {
  if (!degraded_.load()) return false;
  RetryPendingInvalidations();
  const TimePoint now = clock_.Now();
  std::lock_guard lock(pending_mu_);
  if (now < bypass_all_until_) return true;
  auto it = pending_.find(user);
  return it != pending_.end() && now < it->second.until;
}

void CachingStore::RetryPendingInvalidations() {
  std::unique_lock retry(retry_mu_, std::try_to_lock);
  if (!retry.owns_lock()) return;  // another thread is retrying
  const TimePoint now = clock_.Now();
  std::vector<std::pair<UserId, uint64_t>> todo;
  {
    std::lock_guard lock(pending_mu_);
    if (now < next_retry_) return;
    next_retry_ = now + settings_.invalidation_retry_interval;
    std::erase_if(pending_, [&](const auto& kv) { return kv.second.until <= now; });
    for (const auto& [user, p] : pending_) todo.emplace_back(user, p.seq);
  }
  std::vector<std::pair<UserId, uint64_t>> done;
  for (const auto& [user, seq] : todo) {
    if (!aside_.cache().Set(GenerationKey(user), RandomToken(8), settings_.generation_ttl).ok()) {
      break;  // still down: try again later, without spending a timeout per user
    }
    invalidations_ok_.Inc();
    done.emplace_back(user, seq);
  }
  std::lock_guard lock(pending_mu_);
  for (const auto& [user, seq] : done) {
    auto it = pending_.find(user);
    if (it != pending_.end() && it->second.seq == seq) pending_.erase(it);
  }
  degraded_.store(!pending_.empty() || now < bypass_all_until_);
}

// ---- users ----

Result<store::User> CachingStore::EnsureUser(const UserId& user, store::Tier tier) {
  return Invalidated(user, inner_.EnsureUser(user, tier));  // may have created it
}
Result<store::User> CachingStore::GetUser(const UserId& user) {
  return Read<store::User>(user, "user", true, [&] { return inner_.GetUser(user); });
}
Status CachingStore::UpsertUser(const store::User& user) {
  return Invalidated(user.id, inner_.UpsertUser(user));
}
Status CachingStore::UpdateUserSettings(const UserId& user, const std::string& settings_json,
                                        const store::IdempotencyRecord* idem) {
  return Invalidated(user, inner_.UpdateUserSettings(user, settings_json, idem));
}

// ---- connections ----

Status CachingStore::CreateConnection(const store::Connection& c) {
  return Invalidated(c.user, inner_.CreateConnection(c));
}
Status CachingStore::CreateConnection(const store::Connection& c,
                                      const store::IdempotencyRecord* idem) {
  return Invalidated(c.user, inner_.CreateConnection(c, idem));
}
Status CachingStore::ReplaceConnectionGrant(const store::Connection& c,
                                            const store::IdempotencyRecord* idem) {
  return Invalidated(c.user, inner_.ReplaceConnectionGrant(c, idem));
}
Result<store::Connection> CachingStore::GetConnection(const UserId& user, const ConnectionId& id) {
  if (!settings_.cache_connections) return inner_.GetConnection(user, id);
  return Read<store::Connection>(user, "conn:" + id.str(), true,
                                 [&] { return inner_.GetConnection(user, id); });
}
Result<std::vector<store::Connection>> CachingStore::GetConnections(
    const UserId& user, const std::vector<ConnectionId>& ids) {
  // Cached connections: one cache read each (the port's default); else the store's one read.
  if (settings_.cache_connections) return Store::GetConnections(user, ids);
  return inner_.GetConnections(user, ids);
}
Result<std::vector<store::Connection>> CachingStore::ListConnections(const UserId& user) {
  if (!settings_.cache_connections) return inner_.ListConnections(user);
  return Read<std::vector<store::Connection>>(user, "conns", false,
                                              [&] { return inner_.ListConnections(user); });
}
Result<std::vector<store::Connection>> CachingStore::FindConnectionsByProviderUser(
    const std::string& provider, const std::string& provider_user_id) {
  return inner_.FindConnectionsByProviderUser(provider, provider_user_id);
}
Status CachingStore::DeleteConnection(const UserId& user, const ConnectionId& id,
                                      const store::IdempotencyRecord* idem) {
  return Invalidated(user, inner_.DeleteConnection(user, id, idem));  // its configs go too
}
Status CachingStore::UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                            const std::string& access_sealed,
                                            const std::string& refresh_sealed, TimePoint expires_at,
                                            int64_t expected_token_version) {
  return Invalidated(user, inner_.UpdateConnectionTokens(user, id, access_sealed, refresh_sealed,
                                                         expires_at, expected_token_version));
}
Status CachingStore::SetConnectionStatus(const UserId& user, const ConnectionId& id,
                                         store::ConnectionStatus status) {
  return Invalidated(user, inner_.SetConnectionStatus(user, id, status));
}

// ---- sync configs ----

Status CachingStore::CreateSyncConfig(const store::SyncConfig& c,
                                      const store::IdempotencyRecord* idem) {
  return Invalidated(c.user, inner_.CreateSyncConfig(c, idem));
}
Result<store::SyncConfig> CachingStore::GetSyncConfig(const UserId& user, const SyncConfigId& id) {
  return Read<store::SyncConfig>(user, "cfg:" + id.str(), true,
                                 [&] { return inner_.GetSyncConfig(user, id); });
}
Result<std::vector<store::SyncConfig>> CachingStore::ListSyncConfigs(const UserId& user) {
  return Read<std::vector<store::SyncConfig>>(user, "cfgs", false,
                                              [&] { return inner_.ListSyncConfigs(user); });
}
Status CachingStore::UpdateSyncConfig(const store::SyncConfig& c, int64_t expected_version,
                                      const store::IdempotencyRecord* idem) {
  return Invalidated(c.user, inner_.UpdateSyncConfig(c, expected_version, idem));
}
Status CachingStore::DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                                      std::optional<int64_t> expected_version,
                                      const store::IdempotencyRecord* idem) {
  return Invalidated(user, inner_.DeleteSyncConfig(user, id, expected_version, idem));
}

// ---- pass-through: records that are not cached ----

Status CachingStore::CreateJob(const store::Job& job, const queue::OutgoingMessage& msg,
                               const store::IdempotencyRecord* idem) {
  return inner_.CreateJob(job, msg, idem);
}
Result<store::Job> CachingStore::GetJob(const UserId& user, const JobId& id) {
  return inner_.GetJob(user, id);
}
Status CachingStore::UpdateJobStatus(const JobId& id, store::JobStatus status,
                                     const std::string& error) {
  return inner_.UpdateJobStatus(id, status, error);
}
Result<store::SyncCursor> CachingStore::GetCursor(const store::SyncCursorKey& key) {
  return inner_.GetCursor(key);
}
Result<std::vector<store::LedgerEntry>> CachingStore::GetLedgerEntries(
    const UserId& user, const ConnectionId& destination, const ConnectionId& source,
    const std::vector<std::string>& source_record_ids) {
  return inner_.GetLedgerEntries(user, destination, source, source_record_ids);
}
Result<std::vector<std::string>> CachingStore::OwnWrittenRecords(
    const UserId& user, const ConnectionId& at, const std::vector<std::string>& record_ids) {
  return inner_.OwnWrittenRecords(user, at, record_ids);
}
Status CachingStore::RecordPendingWrites(const std::vector<store::LedgerEntry>& entries) {
  return inner_.RecordPendingWrites(entries);
}
Status CachingStore::CommitSync(const store::SyncCommit& c) { return inner_.CommitSync(c); }
Result<std::optional<store::IdempotencyRecord>> CachingStore::GetIdempotency(
    const UserId& user, const std::string& key) {
  return inner_.GetIdempotency(user, key);
}
Result<int64_t> CachingStore::PurgeIdempotencyBefore(TimePoint cutoff) {
  return inner_.PurgeIdempotencyBefore(cutoff);
}
Status CachingStore::RequestUserDeletion(const UserId& user, const store::IdempotencyRecord* idem) {
  return inner_.RequestUserDeletion(user, idem);
}
Result<store::UserDeletion> CachingStore::GetUserDeletion(const UserId& user) {
  return inner_.GetUserDeletion(user);
}
Result<store::Store::WriteGuard> CachingStore::GetWriteGuard(const UserId& user,
                                                             const std::string& key) {
  return inner_.GetWriteGuard(user, key);
}
Result<std::vector<UserId>> CachingStore::PendingDeletions(size_t limit) {
  return inner_.PendingDeletions(limit);
}
Status CachingStore::PurgeUser(const UserId& user) {
  return Invalidated(user, inner_.PurgeUser(user));
}
Status CachingStore::AddControlEvent(const std::string& kind, const std::string& value) {
  return inner_.AddControlEvent(kind, value);
}
Result<std::vector<store::Store::ControlEvent>> CachingStore::ControlEventsAfter(
    int64_t after_seq) {
  return inner_.ControlEventsAfter(after_seq);
}
Result<std::vector<store::ScheduledUser>> CachingStore::ListDueUsers(int shard, TimePoint now,
                                                                     size_t limit) {
  return inner_.ListDueUsers(shard, now, limit);
}
Status CachingStore::AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                                     const std::vector<TimePoint>& recent_slots) {
  return inner_.AdvanceSchedule(user, expected_next, next, recent_slots);
}
Result<int64_t> CachingStore::AssignScheduleShards(size_t limit) {
  return inner_.AssignScheduleShards(limit);
}
Status CachingStore::Ping() { return inner_.Ping(); }

}  // namespace syncwell::cache
