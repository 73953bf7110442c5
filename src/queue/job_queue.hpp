#pragma once
// The JobQueue port (SPEC S3): a durable queue with SQS-FIFO semantics plus our fixes.
//
// Contract (executable form: tests/conformance/job_queue_suite.hpp; rationale and the PostgreSQL
// mapping: docs/adr/0002-job-queue.md):
//
// - Send: durable when it returns ok. A non-empty dedup id seen within `dedup_window` is accepted
//   but not enqueued again (deduplicated = true, the original message id is returned).
// - Groups: messages of one group are delivered in order (order key: the time the message became
//   due = send time + send delay, then send order), and at most ONE message per group is in
//   flight. A message that was delivered stays its group's head until it is deleted or
//   dead-lettered: while it is in flight, retried (Fail) or deferred (Defer), later messages of the
//   group wait. Other groups are never blocked by it.
// - Receive: up to kMaxReceiveBatch (10) group heads that are visible now, each hidden for the
//   visibility timeout (settings default 90 s, per call override) and handed out with a fresh
//   receipt. With wait > 0 the call blocks until at least one message is available or `wait`
//   (a real-time bound on blocking) passed.
// - Receipts: valid while the message is held under that delivery; invalid once the message was
//   deleted (kNotFound), or returned (Fail/Defer/ChangeVisibility 0), dead-lettered (Fail,
//   DeadLetter) or received again by anyone (kConflict). A rejected receipt changes nothing.
// - Visibility expiry: a held message whose timeout passed is visible again; receiving it again
//   records an "expired" entry in its history and counts as another receive.
// - Receive count / DLQ: every delivery increments receive_count. Fail records the error and either
//   retries after `retry_delay` or, when receive_count >= max_receive_count (5), moves the message
//   to the DLQ. A visible message that already has receive_count >= max_receive_count (its last
//   delivery expired or was released) is dead-lettered instead of delivered. DeadLetter
//   (permanent errors) records the error and moves the held message to the DLQ at once, whatever
//   its receive_count. Defer (rate limits) returns the message after `delay` and takes the
//   receive back (receive_count - 1).
// - Delays: any length (24 h and more), at send and when returned.
// - Priorities: among visible group heads, delivery order is by effective time
//   = visible since + lag(priority), lag(high) = 0, lag(medium) = priority_lag_medium,
//   lag(low) = priority_lag_low; ties by message id. So a higher priority message goes first unless
//   the lower one has already waited longer than the lag difference; a low message is never
//   overtaken by a message that became visible more than priority_lag_low after it (the
//   starvation bound).
// - DLQ: list (no bodies), inspect one (with body: a job envelope of ids, never health data),
//   redrive one/all to the source queue (receive count reset, behind the group's current holder),
//   purge.
//
// All times come from the injected Clock; adapters store milliseconds. Thread-safe; methods may
// block (run them off I/O threads).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/priority.hpp"
#include "core/result.hpp"

namespace syncwell::queue {

using syncwell::ParsePriority;
using syncwell::Priority;
using syncwell::PriorityName;

inline constexpr int kMaxReceiveBatch = 10;

struct QueueSettings {
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds{90}};
  int max_receive_count = 5;
  std::chrono::seconds dedup_window{300};
  // Priority lags (see the contract above); priority_lag_low is the starvation bound.
  std::chrono::milliseconds priority_lag_medium{std::chrono::seconds{60}};
  std::chrono::milliseconds priority_lag_low{std::chrono::seconds{300}};
  // Entries kept per message (oldest dropped first).
  size_t history_limit = 20;
  // Adapters that cannot be woken by every writer re-check this often while long polling.
  std::chrono::milliseconds long_poll_interval{100};
};

struct OutgoingMessage {
  std::string dedup_id;
  std::string group_id;
  Priority priority = Priority::kMedium;
  std::chrono::milliseconds delay{0};
  std::string body;
};

struct SendOutcome {
  std::string message_id;
  bool deduplicated = false;  // an earlier message with the same dedup id inside the window
};

enum class HistoryKind { kFailed, kExpired, kDeferred };
const char* HistoryKindName(HistoryKind k);

// One entry of a message's history: a failed delivery (Fail), a delivery whose visibility timeout
// expired, or a deferral (Defer; not counted as a failure).
struct HistoryEntry {
  TimePoint at{};
  HistoryKind kind = HistoryKind::kFailed;
  int receive_count = 0;  // the receive count of the delivery this entry closes
  std::string text;
  bool operator==(const HistoryEntry&) const = default;
};

struct ReceiveOptions {
  int max_messages = 1;                                         // 1..kMaxReceiveBatch
  std::optional<std::chrono::milliseconds> visibility_timeout;  // > 0; default from settings
  std::chrono::milliseconds wait{0};                            // long poll; 0 = return at once
};

struct ReceivedMessage {
  std::string receipt;  // opaque; valid for this delivery only
  std::string message_id;
  std::string group_id;
  std::string dedup_id;
  Priority priority = Priority::kMedium;
  std::string body;
  int receive_count = 0;    // including this delivery
  TimePoint enqueued_at{};  // first send (kept across retries and redrives)
  TimePoint visible_until{};
  std::vector<HistoryEntry> history;
};

enum class FailOutcome { kRetrying, kDeadLettered };

struct DlqEntry {
  std::string message_id;
  std::string group_id;
  std::string dedup_id;
  Priority priority = Priority::kMedium;
  int receive_count = 0;
  TimePoint enqueued_at{};
  TimePoint dead_lettered_at{};
  std::vector<HistoryEntry> history;
  std::optional<std::string> body;  // only from DlqGet
};

struct DlqListOptions {
  size_t limit = 100;
  std::string after_message_id;  // paging: entries with a larger id ("" = from the start)
};

struct QueueStats {
  int64_t visible = 0;    // could be received now if their group were free (incl. expired holds)
  int64_t delayed = 0;    // waiting for a send delay or a retry/deferral delay
  int64_t in_flight = 0;  // held under an unexpired visibility timeout
  int64_t dlq = 0;
  int64_t groups_in_flight = 0;
  int64_t enqueued_total = 0;
  int64_t deduplicated_total = 0;
  int64_t delivered_total = 0;    // every delivery
  int64_t redelivered_total = 0;  // deliveries of a message delivered before
  int64_t dead_lettered_total = 0;
  int64_t deferred_total = 0;
  int64_t redriven_total = 0;
  double oldest_age_seconds = 0;  // how long the longest-visible message has been visible
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;
  // Durable when it returns ok (survives kill -9).
  virtual Result<SendOutcome> Send(const OutgoingMessage& m) = 0;
  // Batched send, for callers with several messages at once: each message as Send would treat
  // it, in order (dedup applies within the batch too), one result per message. Adapters may
  // commit the batch as one transaction (PostgreSQL: one statement, one commit, row locks taken
  // in a fixed order so concurrent batches do not deadlock; SQLite: one group commit); there one
  // failure fails every message of the batch and none was enqueued. Either way an ok result is
  // durable and a failed one was not enqueued. The default calls Send for each.
  virtual std::vector<Result<SendOutcome>> SendBatch(const std::vector<OutgoingMessage>& messages);
  virtual Result<QueueStats> Stats() = 0;

  // kInvalidArgument for max_messages outside 1..10 or a visibility timeout <= 0.
  virtual Result<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) = 0;
  // Acknowledges (removes) the message; its group's next message becomes deliverable.
  virtual Status Delete(std::string_view receipt) = 0;
  // Batched acknowledgement: each receipt exactly as Delete would treat it, one status per
  // receipt in order. Adapters may commit the batch at once (PostgreSQL: one statement, one
  // commit); the default calls Delete for each.
  virtual std::vector<Status> DeleteBatch(const std::vector<std::string>& receipts);
  // Hides the held message for `timeout` from now (heartbeat/extend); 0 releases it now (the
  // receive still counts; use Defer to take it back). kInvalidArgument when negative.
  virtual Status ChangeVisibility(std::string_view receipt, std::chrono::milliseconds timeout) = 0;
  // Returns the message after `delay` without counting this receive (receive_count - 1); the
  // reason is kept in the history as kDeferred.
  virtual Status Defer(std::string_view receipt, std::chrono::milliseconds delay,
                       std::string_view reason) = 0;
  // Records `error` in the history; retries after `retry_delay` or dead-letters the message when
  // receive_count >= max_receive_count.
  virtual Result<FailOutcome> Fail(std::string_view receipt, std::string_view error,
                                   std::chrono::milliseconds retry_delay) = 0;
  // Records `error` in the history (kFailed) and moves the held message to the DLQ now, whatever
  // its receive_count (permanent errors: no retries). Like a dead-lettering Fail, it frees the
  // group for its next message and counts in dead_lettered_total.
  virtual Status DeadLetter(std::string_view receipt, std::string_view error) = 0;

  // DLQ operations. Unknown (or not dead-lettered) ids: kNotFound.
  virtual Result<std::vector<DlqEntry>> DlqList(const DlqListOptions& options) = 0;
  virtual Result<DlqEntry> DlqGet(std::string_view message_id) = 0;
  virtual Status DlqRedrive(std::string_view message_id) = 0;
  virtual Result<int64_t> DlqRedriveAll() = 0;  // number redriven
  virtual Result<int64_t> DlqPurge() = 0;       // number removed
};

// ---- helpers shared by adapters (pure) ----

// Receipt "<message id>.<delivery number>"; the delivery number grows with every delivery of
// that message, so an older receipt never matches again.
std::string FormatReceipt(int64_t message_id, int64_t delivery);
bool ParseReceipt(std::string_view receipt, int64_t* message_id, int64_t* delivery);
// The error a receipt gets once it no longer holds its message: deleted (kNotFound), or
// returned, dead-lettered or received again by anyone (kConflict). The holder lost it.
bool ReceiptNoLongerHolds(const Error& e);
// A decimal message id as the adapters hand them out; false if malformed.
bool ParseMessageId(std::string_view s, int64_t* out);

// kInvalidArgument describing what is wrong, or ok.
Status ValidateReceive(const ReceiveOptions& options);

// The priority lag of the contract above, in milliseconds.
int64_t PriorityLagMillis(const QueueSettings& settings, Priority p);

// Appends `e` keeping at most `limit` newest entries.
void AppendHistory(std::vector<HistoryEntry>* history, HistoryEntry e, size_t limit);

// Line-oriented text encoding of a history ("<ms>\t<kind>\t<count>\t<escaped text>\n"...), used
// by adapters that keep the history in one column.
std::string EncodeHistory(const std::vector<HistoryEntry>& history);
std::vector<HistoryEntry> DecodeHistory(std::string_view text);

}  // namespace syncwell::queue
