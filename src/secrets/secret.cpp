#include "secrets/secret.hpp"

#include <openssl/crypto.h>

#include <ostream>

namespace syncwell::secrets {

void Secret::Wipe(std::string& s) noexcept {
  // Grow to capacity first so the whole buffer (including a short-string buffer left behind by a
  // move) is overwritten through the valid [data(), data()+size()) range.
  s.resize(s.capacity());
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

Secret::Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { Wipe(other.value_); }

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    Wipe(value_);
    value_ = other.value_;
  }
  return *this;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Wipe(value_);
    value_ = std::move(other.value_);
    Wipe(other.value_);
  }
  return *this;
}

Secret::~Secret() { Wipe(value_); }

bool Secret::operator==(const Secret& other) const {
  return value_.size() == other.value_.size() &&
         CRYPTO_memcmp(value_.data(), other.value_.data(), value_.size()) == 0;
}

std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "[redacted]"; }

}  // namespace syncwell::secrets
