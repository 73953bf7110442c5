#include "queue/job_queue.hpp"

namespace syncwell::queue {

const char* HistoryKindName(HistoryKind k) {
  switch (k) {
    case HistoryKind::kFailed:
      return "failed";
    case HistoryKind::kExpired:
      return "expired";
    case HistoryKind::kDeferred:
      return "deferred";
  }
  return "failed";
}

namespace {

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string FormatReceipt(int64_t message_id, int64_t delivery) {
  return std::to_string(message_id) + "." + std::to_string(delivery);
}

bool ParseReceipt(std::string_view receipt, int64_t* message_id, int64_t* delivery) {
  const size_t dot = receipt.find('.');
  if (dot == std::string_view::npos) return false;
  return ParseInt64(receipt.substr(0, dot), message_id) &&
         ParseInt64(receipt.substr(dot + 1), delivery);
}

bool ParseMessageId(std::string_view s, int64_t* out) { return ParseInt64(s, out); }

bool ReceiptNoLongerHolds(const Error& e) {
  return e.code == Errc::kNotFound || e.code == Errc::kConflict;
}

Status ValidateReceive(const ReceiveOptions& options) {
  if (options.max_messages < 1 || options.max_messages > kMaxReceiveBatch) {
    return MakeError(Errc::kInvalidArgument, "max_messages must be 1.." +
                                                 std::to_string(kMaxReceiveBatch) + ", got " +
                                                 std::to_string(options.max_messages));
  }
  if (options.visibility_timeout && options.visibility_timeout->count() <= 0) {
    return MakeError(Errc::kInvalidArgument, "visibility timeout must be > 0");
  }
  if (options.wait.count() < 0) return MakeError(Errc::kInvalidArgument, "wait must be >= 0");
  return {};
}

int64_t PriorityLagMillis(const QueueSettings& settings, Priority p) {
  switch (p) {
    case Priority::kHigh:
      return 0;
    case Priority::kMedium:
      return settings.priority_lag_medium.count();
    case Priority::kLow:
      return settings.priority_lag_low.count();
  }
  return 0;
}

void AppendHistory(std::vector<HistoryEntry>* history, HistoryEntry e, size_t limit) {
  history->push_back(std::move(e));
  if (limit == 0) limit = 1;
  if (history->size() > limit) {
    history->erase(history->begin(),
                   history->begin() + static_cast<std::ptrdiff_t>(history->size() - limit));
  }
}

std::string EncodeHistory(const std::vector<HistoryEntry>& history) {
  std::string out;
  for (const auto& e : history) {
    out += std::to_string(ToUnixMillis(e.at));
    out += '\t';
    out += HistoryKindName(e.kind);
    out += '\t';
    out += std::to_string(e.receive_count);
    out += '\t';
    for (char c : e.text) {
      switch (c) {
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          out += c;
      }
    }
    out += '\n';
  }
  return out;
}

std::vector<HistoryEntry> DecodeHistory(std::string_view text) {
  std::vector<HistoryEntry> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    std::string_view fields[4];
    size_t n = 0;
    while (n < 3) {
      size_t tab = line.find('\t');
      if (tab == std::string_view::npos) break;
      fields[n++] = line.substr(0, tab);
      line = line.substr(tab + 1);
    }
    if (n != 3) continue;  // malformed line: skip rather than fail a receive
    fields[3] = line;
    HistoryEntry e;
    int64_t ms = 0, count = 0;
    bool negative = !fields[0].empty() && fields[0][0] == '-';
    if (!ParseInt64(negative ? fields[0].substr(1) : fields[0], &ms)) continue;
    e.at = FromUnixMillis(negative ? -ms : ms);
    if (fields[1] == "expired") {
      e.kind = HistoryKind::kExpired;
    } else if (fields[1] == "deferred") {
      e.kind = HistoryKind::kDeferred;
    } else {
      e.kind = HistoryKind::kFailed;
    }
    if (ParseInt64(fields[2], &count)) e.receive_count = static_cast<int>(count);
    for (size_t i = 0; i < fields[3].size(); ++i) {
      char c = fields[3][i];
      if (c == '\\' && i + 1 < fields[3].size()) {
        char d = fields[3][++i];
        e.text += d == 'n' ? '\n' : d == 't' ? '\t' : d;
      } else {
        e.text += c;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Result<SendOutcome>> JobQueue::SendBatch(const std::vector<OutgoingMessage>& messages) {
  std::vector<Result<SendOutcome>> out;
  out.reserve(messages.size());
  for (const auto& m : messages) out.push_back(Send(m));
  return out;
}

std::vector<Status> JobQueue::DeleteBatch(const std::vector<std::string>& receipts) {
  std::vector<Status> out;
  out.reserve(receipts.size());
  for (const auto& r : receipts) out.push_back(Delete(r));
  return out;
}

}  // namespace syncwell::queue
