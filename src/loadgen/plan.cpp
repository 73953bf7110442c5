#include "loadgen/plan.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <fstream>
#include <numeric>

namespace syncwell::loadgen {

namespace {

using std::chrono::milliseconds;

Error Invalid(std::string m) { return MakeError(Errc::kInvalidArgument, std::move(m)); }

milliseconds Scaled(double minutes, double scale) {
  const double ms = minutes * 60'000.0 * scale;
  return milliseconds(std::max<int64_t>(1000, static_cast<int64_t>(std::llround(ms))));
}

constexpr size_t kRecentCapacity = 256;
constexpr uint32_t kKindBits = 4;
constexpr uint32_t kSlotBits = 8;  // kRecentCapacity == 1 << kSlotBits
constexpr uint32_t kSeqMask = (1U << (32 - kKindBits - kSlotBits)) - 1;

uint32_t Tag(RequestKind k, size_t slot, uint32_t seq) {
  return static_cast<uint32_t>(k) | static_cast<uint32_t>(slot << kKindBits) |
         ((seq & kSeqMask) << (kKindBits + kSlotBits));
}
RequestKind TagKind(uint32_t tag) { return static_cast<RequestKind>(tag & 0xF); }
size_t TagSlot(uint32_t tag) { return (tag >> kKindBits) & (kRecentCapacity - 1); }
uint32_t TagSeq(uint32_t tag) { return tag >> (kKindBits + kSlotBits); }

void AddStatus(KindCounts& c, RequestKind k, int status) {
  const auto i = static_cast<size_t>(k);
  if (status / 100 == 2) ++c.s2xx[i];
  if (status / 100 == 4) ++c.s4xx[i];
  if (status / 100 == 5) ++c.s5xx[i];
  if (status == 429) ++c.status_429;
}

}  // namespace

Result<PlanSpec> MakePlan(std::string_view name, double scale) {
  if (!(scale > 0) || scale > 10) return Invalid("loadgen: --scale must be in (0, 10]");
  PlanSpec p;
  p.name = std::string(name);
  double rates[3];
  double stress_start = 0;
  double stress_factor = 0;
  int stress_steps = 0;
  if (name == "brief") {
    rates[0] = 100, rates[1] = 1000, rates[2] = 3000;
    stress_start = 3750, stress_factor = 1.25, stress_steps = kMaxStressSteps;
  } else if (name == "smoke") {
    rates[0] = 5, rates[1] = 10, rates[2] = 20;
    stress_start = 25, stress_factor = 1.5, stress_steps = 3;
  } else {
    return Invalid("loadgen: --plan must be brief or smoke");
  }
  p.phases.push_back({"baseline", rates[0], Scaled(10, scale), false});
  p.phases.push_back({"soak", rates[1], Scaled(30, scale), false});
  p.phases.push_back({"peak", rates[2], Scaled(15, scale), false});
  double r = stress_start;
  for (int i = 1; i <= stress_steps; ++i, r *= stress_factor)
    p.phases.push_back({"stress-" + std::to_string(i), std::round(r), Scaled(5, scale), true});
  return p;
}

double StressErrorShare(const RunStats& s, uint64_t status_429) {
  if (s.scheduled == 0) return 0;
  const uint64_t bad =
      s.status_5xx + status_429 + s.err_connect + s.err_timeout + s.err_io + s.not_sent;
  return static_cast<double>(bad) / static_cast<double>(s.scheduled);
}

Result<std::vector<PopUser>> LoadPopulation(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Invalid("loadgen: cannot read --tokens " + path);
  std::vector<PopUser> users;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::vector<std::string> w;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      size_t j = i;
      while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
      if (j > i) w.emplace_back(line.substr(i, j - i));
      i = j;
    }
    if (w.empty() || w[0].starts_with('#')) continue;
    if (w.size() != 3)
      return Invalid("loadgen: --tokens line " + std::to_string(line_no) +
                     ": the plan needs TOKEN SRC_CONN_ID DST_CONN_ID");
    users.push_back({w[0], w[1], w[2]});
    if (users.size() > 1'000'000) return Invalid("loadgen: --tokens has over 1M lines");
  }
  if (users.empty()) return Invalid("loadgen: --tokens file has no token lines");
  return users;
}

ZipfPicker::ZipfPicker(size_t n, double s) : cdf_(std::max<size_t>(n, 1)) {
  double sum = 0;
  for (size_t k = 0; k < cdf_.size(); ++k) {
    sum += 1.0 / std::pow(static_cast<double>(k + 1), s);
    cdf_[k] = sum;
  }
  for (double& c : cdf_) c /= sum;
  cdf_.back() = 1.0;
}

size_t ZipfPicker::Pick(std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  return std::min(static_cast<size_t>(it - cdf_.begin()), cdf_.size() - 1);
}

double ZipfPicker::Probability(size_t rank) const {
  if (rank >= cdf_.size()) return 0;
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

const char* RequestKindName(RequestKind k) {
  switch (k) {
    case RequestKind::kPost:
      return "POST /v1/sync-jobs";
    case RequestKind::kRetry:
      return "POST /v1/sync-jobs (retry, same key)";
    case RequestKind::kGetJob:
      return "GET /v1/sync-jobs/{id}";
    case RequestKind::kGetConfigs:
      return "GET /v1/sync-configs";
  }
  return "?";
}

void KindCounts::Merge(const KindCounts& o) {
  for (int i = 0; i < kRequestKinds; ++i) {
    sent[i] += o.sent[i];
    s2xx[i] += o.s2xx[i];
    s4xx[i] += o.s4xx[i];
    s5xx[i] += o.s5xx[i];
  }
  status_429 += o.status_429;
  accepted += o.accepted;
  retry_same_id += o.retry_same_id;
  retry_other += o.retry_other;
}

MixedSource::MixedSource(std::vector<PopUser> users, const std::vector<Target>& targets,
                         MixOptions options)
    : users_(std::move(users)),
      options_(options),
      zipf_(users_.size(), options.zipf_s),
      rank_to_user_(users_.size()),
      seed_base_(options.seed != 0 ? options.seed : std::random_device{}()) {
  for (const auto& t : targets) {
    std::string host = t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host;
    if (t.port != "80") host += ":" + t.port;
    host_lines_.push_back("Host: " + host + "\r\n");
  }
  std::iota(rank_to_user_.begin(), rank_to_user_.end(), 0U);
  std::mt19937_64 shuffle_rng(0x5eed);  // fixed: the same users are hot in every run
  std::shuffle(rank_to_user_.begin(), rank_to_user_.end(), shuffle_rng);
}

void MixedSource::BeginPhase(int workers) {
  if (workers_.size() != static_cast<size_t>(workers)) {
    workers_.clear();
    workers_.resize(static_cast<size_t>(workers));
    for (size_t i = 0; i < workers_.size(); ++i) {
      workers_[i].rng.seed(seed_base_ + i * 0x9E3779B97F4A7C15ULL);
      workers_[i].recent.resize(kRecentCapacity);
      workers_[i].last_job.resize(users_.size());
    }
  }
  for (auto& w : workers_) {
    w.counts = {};
    w.sample.clear();
    w.seen = 0;
    w.all.clear();
  }
}

MixedSource::PhaseOutcome MixedSource::TakePhase() {
  PhaseOutcome out;
  std::vector<AcceptedJob> pool;
  for (auto& w : workers_) {
    out.counts.Merge(w.counts);
    for (auto& j : w.sample) pool.push_back(std::move(j));
    for (auto& j : w.all) out.all.push_back(std::move(j));
    w.sample.clear();
    w.all.clear();
  }
  // Each worker kept a uniform reservoir of its own jobs; a shuffle keeps the merge unbiased
  // enough for latency percentiles (workers see statistically identical traffic).
  std::mt19937_64 rng(seed_base_ ^ 0xABCDEF);
  std::shuffle(pool.begin(), pool.end(), rng);
  if (pool.size() > options_.follow_sample) pool.resize(options_.follow_sample);
  out.sample = std::move(pool);
  return out;
}

void MixedSource::Next(int worker, int target, Outgoing* out) {
  auto& w = workers_[static_cast<size_t>(worker)];
  const std::string& host = host_lines_[static_cast<size_t>(target) % host_lines_.size()];
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  out->capture_body = true;
  out->bytes.clear();

  if (options_.retry_share > 0 && u01(w.rng) < options_.retry_share) {
    // A client retry: one of the recent answered POSTs (as if its response had been lost), byte
    // for byte (same Idempotency-Key and body); the server must answer with the same jobId.
    const size_t slot = std::uniform_int_distribution<size_t>(0, kRecentCapacity - 1)(w.rng);
    const auto& r = w.recent[slot];
    if (!r.rest.empty() && !r.job_id.empty()) {
      out->bytes = "POST /v1/sync-jobs HTTP/1.1\r\n" + host + r.rest;
      out->tag = Tag(RequestKind::kRetry, slot, r.seq);
      out->user = r.user;
      ++w.counts.sent[static_cast<size_t>(RequestKind::kRetry)];
      return;
    }
  }
  const auto user = rank_to_user_[zipf_.Pick(w.rng)];
  const PopUser& u = users_[user];
  const double x = u01(w.rng);
  RequestKind kind =
      x < 0.5 ? RequestKind::kPost : (x < 0.8 ? RequestKind::kGetJob : RequestKind::kGetConfigs);
  if (kind == RequestKind::kGetJob && w.last_job[user].empty()) kind = RequestKind::kGetConfigs;
  out->user = user;
  ++w.counts.sent[static_cast<size_t>(kind)];
  const std::string auth = "Authorization: Bearer " + u.token + "\r\n";
  constexpr std::string_view kCommon = "User-Agent: syncwell-loadgen\r\n";
  if (kind == RequestKind::kPost) {
    std::string body = R"({"sourceConnectionId":")" + u.src + R"(","destinationConnectionId":")" +
                       u.dst + R"(","dataType":"workout","mode":"manual"})";
    char key[UuidGenerator::kLength];
    w.uuid.Write(key);
    const size_t slot = w.recent_next++ % kRecentCapacity;
    auto& r = w.recent[slot];
    r.rest.clear();
    r.rest.append(kCommon).append(auth);
    r.rest.append("Idempotency-Key: ").append(key, UuidGenerator::kLength).append("\r\n");
    r.rest.append("Content-Type: application/json\r\nContent-Length: ");
    r.rest.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
    r.user = user;
    r.seq = ++w.seq & kSeqMask;
    r.job_id.clear();
    out->bytes = "POST /v1/sync-jobs HTTP/1.1\r\n" + host + r.rest;
    out->tag = Tag(kind, slot, r.seq);
    return;
  }
  const std::string path = kind == RequestKind::kGetJob ? "/v1/sync-jobs/" + w.last_job[user]
                                                        : std::string("/v1/sync-configs");
  out->bytes = "GET " + path + " HTTP/1.1\r\n" + host;
  out->bytes.append(kCommon).append(auth).append("\r\n");
  out->tag = Tag(kind, 0, 0);
}

void MixedSource::OnResponse(int worker, const Outgoing& req, int status, std::string_view body) {
  auto& w = workers_[static_cast<size_t>(worker)];
  const RequestKind kind = TagKind(req.tag);
  AddStatus(w.counts, kind, status);
  if (kind != RequestKind::kPost && kind != RequestKind::kRetry) return;
  auto& r = w.recent[TagSlot(req.tag)];
  const bool same_post = r.seq == TagSeq(req.tag) && r.user == req.user;
  std::string job_id = status == 202 ? JsonStringField(body, "jobId") : std::string();
  if (kind == RequestKind::kRetry) {
    if (same_post && !job_id.empty() && job_id == r.job_id)
      ++w.counts.retry_same_id;
    else
      ++w.counts.retry_other;
    return;
  }
  if (job_id.empty()) return;
  ++w.counts.accepted;
  if (same_post) r.job_id = job_id;
  w.last_job[req.user] = job_id;
  AcceptedJob job{job_id, req.user};
  if (options_.keep_all_jobs) w.all.push_back(job);
  if (options_.follow_sample == 0) return;
  ++w.seen;  // reservoir sampling (Algorithm R)
  if (w.sample.size() < options_.follow_sample) {
    w.sample.push_back(std::move(job));
  } else {
    const uint64_t j = std::uniform_int_distribution<uint64_t>(0, w.seen - 1)(w.rng);
    if (j < options_.follow_sample) w.sample[j] = std::move(job);
  }
}

std::string JsonStringField(std::string_view body, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\"";
  size_t pos = body.find(needle);
  if (pos == std::string_view::npos) return {};
  pos += needle.size();
  while (pos < body.size() && (body[pos] == ' ' || body[pos] == ':')) ++pos;
  if (pos >= body.size() || body[pos] != '"') return {};
  const size_t end = body.find('"', pos + 1);
  if (end == std::string_view::npos) return {};
  return std::string(body.substr(pos + 1, end - pos - 1));
}

int64_t ParseRfc3339Millis(std::string_view s) {
  std::tm tm{};
  int ms = 0;
  int n = 0;
  const std::string str(s);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
    return -1;
  size_t i = static_cast<size_t>(n);
  if (i < str.size() && str[i] == '.') {
    int digits = 0;
    for (++i; i < str.size() && std::isdigit(static_cast<unsigned char>(str[i])); ++i, ++digits)
      if (digits < 3) ms = ms * 10 + (str[i] - '0');
    for (; digits < 3; ++digits) ms *= 10;
  }
  if (i >= str.size() || str[i] != 'Z') return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const time_t secs = timegm(&tm);
  return static_cast<int64_t>(secs) * 1000 + ms;
}

}  // namespace syncwell::loadgen
