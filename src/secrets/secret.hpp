#pragma once
// Secret: a string that must never reach a log line, a JSON body or an error message (SPEC S13).
// Provider access/refresh tokens and raw encryption keys travel in this type. It has no implicit
// conversions and no serialisation hooks; the only way to the bytes is the explicit, greppable
// reveal(). Streaming it prints "[redacted]" so an accidental log statement stays harmless.
// The buffer is wiped (OPENSSL_cleanse) when the value is destroyed, moved from or reassigned.
// Thread-safety: like std::string (const access from many threads is fine).
#include <iosfwd>
#include <string>

namespace syncwell::secrets {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  Secret(const Secret& other) : value_(other.value_) {}
  Secret(Secret&& other) noexcept;
  Secret& operator=(const Secret& other);
  Secret& operator=(Secret&& other) noexcept;
  ~Secret();

  // The only access to the plaintext; call sites are easy to audit with grep.
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }

  // Constant-time comparison, so tests and token checks do not leak through timing.
  bool operator==(const Secret& other) const;

  // No conversion to anything (string, string_view, bool, ...), so a Secret cannot slip into a
  // string concatenation, a JSON value or a format argument.
  template <class T>
  operator T() const = delete;  // NOLINT(google-explicit-constructor)

  friend std::ostream& operator<<(std::ostream& os, const Secret& s);

 private:
  static void Wipe(std::string& s) noexcept;

  std::string value_;
};

}  // namespace syncwell::secrets
