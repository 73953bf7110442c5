// PostgresJobQueue: the lifecycle (Start/Stop) and the LISTEN thread that wakes this process's
// long-polling receivers and keeps its row in queue_waiters while any of them waits. Split from
// postgres_job_queue.cpp to keep files small; same class (see postgres_job_queue.hpp).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

#include "store/postgres/postgres_job_queue.hpp"

namespace syncwell::store {

Status PostgresJobQueue::Start() {
  std::lock_guard lock(start_mu_);
  if (listener_.joinable()) return {};
  if (::pipe2(kick_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return MakeError(Errc::kInternal, "queue listener: pipe() failed");
  }
  stop_ = false;
  listener_ = std::thread([this] { ListenLoop(); });
  return {};
}

void PostgresJobQueue::Stop() {
  std::lock_guard lock(start_mu_);
  if (!listener_.joinable()) return;
  stop_ = true;
  const char byte = 'x';
  (void)!::write(kick_pipe_[1], &byte, 1);
  listener_.join();
  ::close(kick_pipe_[0]);
  ::close(kick_pipe_[1]);
  kick_pipe_[0] = kick_pipe_[1] = -1;
}

void PostgresJobQueue::Kick() {
  std::lock_guard lock(start_mu_);
  if (kick_pipe_[1] < 0) return;
  const char byte = 'k';
  (void)!::write(kick_pipe_[1], &byte, 1);  // non-blocking: a full pipe is kicked enough
}

bool PostgresJobQueue::ListenerSleep(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!stop_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd fd{kick_pipe_[0], POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count())) > 0) {
      char buf[64];
      while (::read(kick_pipe_[0], buf, sizeof buf) > 0) {
      }
    }
  }
  return !stop_;
}

// LISTEN on a dedicated connection; every notification (or reconnect, after which some may have
// been missed) wakes the long-polling receivers of this process. Receivers also re-check every
// long_poll_interval, so a dead listener costs latency, never messages.
//
// The same connection keeps this process's row in queue_waiters while a receiver waits (or
// waited less than `linger` ago), so that senders NOTIFY only then. Right after registering it
// wakes the receivers once: a send that checked queue_waiters just before the row existed did
// not notify, and its message is found by that re-check (or, in a microsecond-wide window, by
// the periodic one).
void PostgresJobQueue::ListenLoop() {
  std::chrono::milliseconds backoff{100};
  const int interval_ms =
      static_cast<int>(std::clamp<int64_t>(settings_.long_poll_interval.count(), 10, 1000));
  const int64_t linger_ns =
      std::max<int64_t>(1'000'000'000, settings_.long_poll_interval.count() * 10'000'000);
  auto drain_pipe = [&] {
    char buf[64];
    while (::read(kick_pipe_[0], buf, sizeof buf) > 0) {
    }
  };
  while (!stop_) {
    auto conn = pool_.OpenDedicated();
    bool listening = false;
    if (conn) {
      auto ch = (*conn)->Exec("SELECT queue_channel()");
      listening = ch && ch->rows() == 1 &&
                  (*conn)->ExecScript("LISTEN " + pg::QuoteIdent(ch->Text(0, 0))).ok() &&
                  // Rows of listeners that are gone (crashed processes, dropped connections).
                  (*conn)
                      ->Exec(
                          "DELETE FROM queue_waiters w WHERE NOT EXISTS "
                          "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid)")
                      .ok();
    }
    if (listening) {
      backoff = std::chrono::milliseconds{100};
      wakeups_.NotifyAll();  // sends of the time it did not listen went unheard
      bool registered = false;
      for (;;) {
        const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count();
        const bool want = waiting_.load() > 0 || now_ns - last_wait_ns_.load() < linger_ns;
        if (want != registered) {
          auto r = (*conn)->Exec(want ? "INSERT INTO queue_waiters (pid) VALUES "
                                        "(pg_backend_pid()) ON CONFLICT DO NOTHING"
                                      : "DELETE FROM queue_waiters WHERE pid = pg_backend_pid()");
          if (!r) break;
          registered = want;
          if (want) wakeups_.NotifyAll();  // senders did not NOTIFY while it was not registered
          auto got = (*conn)->DrainNotifications();  // any that arrived during the statement
          if (!got) break;
          if (!got->empty()) Wake(got->size());
        }
        pollfd fds[2] = {{(*conn)->Socket(), POLLIN, 0}, {kick_pipe_[0], POLLIN, 0}};
        if (fds[0].fd < 0) break;
        const int rc = ::poll(fds, 2, interval_ms);
        if (stop_) {
          if (registered) {
            (void)(*conn)->Exec("DELETE FROM queue_waiters WHERE pid = pg_backend_pid()");
          }
          return;
        }
        if (rc < 0) {
          if (errno == EINTR) continue;
          break;
        }
        if ((fds[1].revents & POLLIN) != 0) drain_pipe();
        if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
          auto got = (*conn)->DrainNotifications();
          if (!got) break;  // the connection died: reconnect
          // One NOTIFY per committed send (or release, redrive): one receiver each.
          if (!got->empty()) Wake(got->size());
          if ((*conn)->broken()) break;
        }
      }
    }
    if (!ListenerSleep(backoff)) return;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds{5});
  }
}

}  // namespace syncwell::store
