#pragma once
// FakeJwksSource: an auth::JwksSource serving a settable JWKS document, counting fetches, able to
// fail, and running `on_fetch` inside Fetch (to simulate something happening mid-fetch).
#include <functional>
#include <mutex>
#include <string>

#include "auth/jwks.hpp"

namespace syncwell::fakes {

class FakeJwksSource final : public auth::JwksSource {
 public:
  Result<std::string> Fetch() override {
    std::lock_guard lock(mu_);
    ++fetches_;
    if (on_fetch_) on_fetch_();
    if (fail_) return MakeError(Errc::kUnavailable, "idp down");
    return body_;
  }
  void Set(std::string body) {
    std::lock_guard lock(mu_);
    body_ = std::move(body);
    fail_ = false;
  }
  void Fail() {
    std::lock_guard lock(mu_);
    fail_ = true;
  }
  void OnFetch(std::function<void()> f) {
    std::lock_guard lock(mu_);
    on_fetch_ = std::move(f);
  }
  int fetches() const {
    std::lock_guard lock(mu_);
    return fetches_;
  }

 private:
  mutable std::mutex mu_;
  std::string body_;
  bool fail_ = false;
  int fetches_ = 0;
  std::function<void()> on_fetch_;
};

}  // namespace syncwell::fakes
