#pragma once
// SecretBox: authenticated encryption (AES-256-GCM) of provider tokens at rest (SPEC S13).
//
// Sealed format: "v1.<key_id>.<base64url(nonce[12] | ciphertext | tag[16])>". Each Seal uses a
// fresh random 96-bit nonce; "v1.<key_id>" is the additional authenticated data, so a ciphertext
// cannot be relabelled with another key id or format version. Several keys can be loaded: the
// last one is active (used by Seal); all of them can Open, which is how keys rotate: append a
// key, re-seal old rows in the background, then remove the old line.
//
// Key file format (one key per line, '#' comments and blank lines ignored):
//   <key_id>:<64 hex chars = 32 raw bytes>
// key_id: 1-32 chars of [A-Za-z0-9_-]. The file is created with mode 0600.
//
// Lifecycle: built once at start-up (LoadOrCreate/FromKeys), immutable afterwards.
// Thread-safety: Seal/Open are const and safe to call concurrently.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "secrets/secret.hpp"

namespace syncwell::secrets {

class SecretBox {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kNonceBytes = 12;
  static constexpr size_t kTagBytes = 16;

  // Loads the key file, creating it with one fresh random key (mode 0600) if it does not exist.
  static Result<SecretBox> LoadOrCreate(const std::string& key_file_path);
  // Appends a fresh random key to the key file (creating the file if needed); the new key becomes
  // active on the next load. Returns the new key id. For the key-rotation admin command.
  static Result<std::string> AppendNewKey(const std::string& key_file_path);
  // Keys as (key_id, raw 32-byte key); the last one is active. For tests and embedding.
  static Result<SecretBox> FromKeys(
      std::vector<std::pair<std::string, std::string>> id_and_raw_key);

  Result<std::string> Seal(const Secret& plaintext) const;
  // Errc::kPermanent when the input is malformed, names an unknown key, or fails authentication.
  Result<Secret> Open(std::string_view sealed) const;

  std::string active_key_id() const { return keys_.back().id; }
  std::vector<std::string> key_ids() const;

 private:
  struct Key {
    std::string id;
    Secret raw;
  };
  explicit SecretBox(std::vector<Key> keys) : keys_(std::move(keys)) {}
  const Key* FindKey(std::string_view id) const;

  std::vector<Key> keys_;  // never empty
};

}  // namespace syncwell::secrets
