#pragma once
// MeetingHttp: an HttpClient wrapper for tests that a connector sends independent requests side
// by side. The first request waits (at most 30 s) until `k` requests are in flight together,
// which only requests issued concurrently can achieve; every request then goes on to the wrapped
// client. met() says whether they met; most() is the largest number in flight at once.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "net/http_client.hpp"

namespace syncwell::test_support {

class MeetingHttp final : public net::HttpClient {
 public:
  MeetingHttp(net::HttpClient& inner, int k) : inner_(inner), k_(k) {}

  Result<net::HttpResult> Send(const net::HttpCall& call) override {
    {
      std::unique_lock lock(mu_);
      most_ = std::max(most_, ++in_flight_);
      if (most_ >= k_) cv_.notify_all();  // latched: the others may finish before it wakes
      if (!first_taken_) {
        first_taken_ = true;
        met_ = cv_.wait_for(lock, std::chrono::seconds(30), [&] { return most_ >= k_; });
      }
    }
    auto r = inner_.Send(call);
    std::lock_guard lock(mu_);
    --in_flight_;
    return r;
  }

  bool met() const {
    std::lock_guard lock(mu_);
    return met_;
  }
  int most() const {
    std::lock_guard lock(mu_);
    return most_;
  }

 private:
  net::HttpClient& inner_;
  const int k_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  int most_ = 0;
  bool first_taken_ = false;
  bool met_ = false;
};

}  // namespace syncwell::test_support
