#pragma once
// Result<T>: a value or an Error classified by what the caller should do next (STYLE §6).
// Used at every boundary (store, queue, auth, providers). Exceptions are only for start-up
// failures and bugs.
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace syncwell {

enum class Errc {
  kInvalidArgument,  // caller sent something wrong; do not retry as is
  kNotFound,
  kConflict,  // optimistic concurrency / state conflict
  kAlreadyExists,
  kUnauthenticated,
  kForbidden,
  kRetryable,    // transient: retry with backoff
  kRateLimited,  // retry after Error::retry_after
  kNotYet,       // not settled yet (nothing wrong): try again after Error::retry_after
  kAuthRevoked,  // provider grant revoked: needs re-consent, never retry
  kPermanent,    // will never succeed: dead-letter
  kUnavailable,  // a dependency is down
  kInternal,     // a bug
};

const char* ErrcName(Errc c);

struct Error {
  Errc code = Errc::kInternal;
  std::string message;
  std::chrono::milliseconds retry_after{0};
};

inline Error MakeError(Errc code, std::string message) {
  return Error{code, std::move(message), {}};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

}  // namespace syncwell
