#include "secrets/secret_box.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/log.hpp"
#include "core/random.hpp"

namespace syncwell::secrets {
namespace {

constexpr std::string_view kVersion = "v1";

// A private base64url codec: secrets must not depend on auth (where the shared one lives) and
// the sealed format only needs this small subset (no padding).
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string B64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
  }
  if (in.size() - i == 1) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {kB64[v >> 18], kB64[(v >> 12) & 63]};
  } else if (in.size() - i == 2) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63]};
  }
  return out;
}

bool B64Decode(std::string_view in, std::string* out) {
  if (in.size() % 4 == 1) return false;
  out->clear();
  out->reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = static_cast<const char*>(std::memchr(kB64, c, 64));
    if (c == '\0' || p == nullptr) return false;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;  // canonical: unused trailing bits are zero
}

bool ValidKeyId(std::string_view id) {
  if (id.empty() || id.size() > 32) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string Hex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string NewKeyLine(std::string* id_out) {
  // Key ids only need to be unique within one file; a date would leak nothing but random is
  // simpler and never collides across hosts that later merge files.
  *id_out = "k" + RandomToken(4);
  std::string raw = RandomBytes(SecretBox::kKeyBytes);
  std::string line = *id_out + ":" + Hex(raw) + "\n";
  OPENSSL_cleanse(raw.data(), raw.size());
  return line;
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

Error Permanent(std::string msg) { return MakeError(Errc::kPermanent, std::move(msg)); }

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return MakeError(Errc::kUnavailable, std::string("write key file: ") + std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

// Creates `path` with `content` and mode 0600 only if it does not exist yet. Written to a
// temporary file first and hard-linked into place, so a concurrent reader never sees a partial
// file and two processes racing to create it agree on one key. Returns false if it existed.
Result<bool> CreateExclusive(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + RandomToken(6);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(Errc::kUnavailable, "create " + tmp + ": " + std::strerror(errno));
  }
  Status w = WriteAll(fd, content);
  if (w.ok() && ::fsync(fd) != 0) w = MakeError(Errc::kUnavailable, "fsync key file");
  ::close(fd);
  if (!w.ok()) {
    ::unlink(tmp.c_str());
    return w.error();
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  return MakeError(Errc::kUnavailable, "link " + path + ": " + std::strerror(err));
}

Result<std::vector<std::pair<std::string, std::string>>> ParseKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return MakeError(Errc::kUnavailable, "cannot read key file " + path);
  std::vector<std::pair<std::string, std::string>> keys;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    const std::string where = path + ":" + std::to_string(line_no);
    if (colon == std::string::npos) {
      OPENSSL_cleanse(line.data(), line.size());
      return MakeError(Errc::kInvalidArgument, "malformed key line at " + where);
    }
    std::string id = line.substr(0, colon);
    std::string_view hex = std::string_view(line).substr(colon + 1);
    std::string raw;
    bool ok = hex.size() == SecretBox::kKeyBytes * 2;
    for (size_t i = 0; ok && i < hex.size(); i += 2) {
      int hi = HexVal(hex[i]), lo = HexVal(hex[i + 1]);
      if (hi < 0 || lo < 0)
        ok = false;
      else
        raw.push_back(static_cast<char>(hi * 16 + lo));
    }
    OPENSSL_cleanse(line.data(), line.size());
    if (!ok) {
      OPENSSL_cleanse(raw.data(), raw.size());
      return MakeError(Errc::kInvalidArgument, "key at " + where + " is not 64 hex chars");
    }
    keys.emplace_back(std::move(id), std::move(raw));
  }
  return keys;
}

}  // namespace

Result<SecretBox> SecretBox::FromKeys(
    std::vector<std::pair<std::string, std::string>> id_and_raw_key) {
  if (id_and_raw_key.empty()) return MakeError(Errc::kInvalidArgument, "no encryption keys");
  std::vector<Key> keys;
  for (auto& [id, raw] : id_and_raw_key) {
    Secret secret(std::move(raw));
    if (!ValidKeyId(id)) return MakeError(Errc::kInvalidArgument, "invalid key id '" + id + "'");
    if (secret.size() != kKeyBytes) {
      return MakeError(Errc::kInvalidArgument, "key '" + id + "' must be 32 bytes");
    }
    for (const Key& k : keys) {
      if (k.id == id) return MakeError(Errc::kInvalidArgument, "duplicate key id '" + id + "'");
    }
    keys.push_back(Key{id, std::move(secret)});
  }
  return SecretBox(std::move(keys));
}

Result<SecretBox> SecretBox::LoadOrCreate(const std::string& key_file_path) {
  struct stat st {};
  if (::stat(key_file_path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return MakeError(Errc::kUnavailable, "stat " + key_file_path + ": " + std::strerror(errno));
    }
    std::string id;
    std::string line = NewKeyLine(&id);
    Result<bool> created = CreateExclusive(key_file_path, line);
    OPENSSL_cleanse(line.data(), line.size());
    if (!created.ok()) return created.error();
    if (*created)
      log::Info("created token encryption key file", {{"path", key_file_path}, {"key_id", id}});
  } else if ((st.st_mode & 077) != 0) {
    // Not fatal (mounted secrets are often 0644 inside a private volume) but worth a warning.
    log::Warn("token key file is readable by group/others", {{"path", key_file_path}});
  }
  auto parsed = ParseKeyFile(key_file_path);
  if (!parsed.ok()) return parsed.error();
  if (parsed->empty())
    return MakeError(Errc::kInvalidArgument, "key file has no keys: " + key_file_path);
  return FromKeys(std::move(parsed).value());
}

Result<std::string> SecretBox::AppendNewKey(const std::string& key_file_path) {
  std::string id;
  std::string line = NewKeyLine(&id);
  int fd = ::open(key_file_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    OPENSSL_cleanse(line.data(), line.size());
    return MakeError(Errc::kUnavailable, "open " + key_file_path + ": " + std::strerror(errno));
  }
  Status w = WriteAll(fd, line);
  if (w.ok() && ::fsync(fd) != 0) w = MakeError(Errc::kUnavailable, "fsync key file");
  ::close(fd);
  OPENSSL_cleanse(line.data(), line.size());
  if (!w.ok()) return w.error();
  return id;
}

std::vector<std::string> SecretBox::key_ids() const {
  std::vector<std::string> ids;
  for (const Key& k : keys_) ids.push_back(k.id);
  return ids;
}

const SecretBox::Key* SecretBox::FindKey(std::string_view id) const {
  for (const Key& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

Result<std::string> SecretBox::Seal(const Secret& plaintext) const {
  const Key& key = keys_.back();
  const std::string aad = std::string(kVersion) + "." + key.id;
  const std::string nonce = RandomBytes(kNonceBytes);
  const std::string& pt = plaintext.reveal();

  std::string blob(kNonceBytes + pt.size() + kTagBytes, '\0');
  std::memcpy(blob.data(), nonce.data(), kNonceBytes);
  auto* out = reinterpret_cast<unsigned char*>(blob.data()) + kNonceBytes;

  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0, total = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key.raw.reveal().data());
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  bool ok =
      ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k, n) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), out, &len, reinterpret_cast<const unsigned char*>(pt.data()),
                        static_cast<int>(pt.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), out + total, &len) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                                 out + pt.size()) == 1;
  if (!ok) return MakeError(Errc::kInternal, "AES-GCM seal failed");
  return aad + "." + B64Encode(blob);
}

Result<Secret> SecretBox::Open(std::string_view sealed) const {
  const size_t d1 = sealed.find('.');
  const size_t d2 = d1 == std::string_view::npos ? d1 : sealed.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return Permanent("sealed value is malformed");
  if (sealed.substr(0, d1) != kVersion) return Permanent("unsupported sealed format version");
  const std::string_view key_id = sealed.substr(d1 + 1, d2 - d1 - 1);
  const Key* key = FindKey(key_id);
  if (key == nullptr) return Permanent("sealed with unknown key id '" + std::string(key_id) + "'");
  std::string blob;
  if (!B64Decode(sealed.substr(d2 + 1), &blob) || blob.size() < kNonceBytes + kTagBytes) {
    return Permanent("sealed value is malformed");
  }
  const std::string_view aad = sealed.substr(0, d2);
  const size_t ct_len = blob.size() - kNonceBytes - kTagBytes;
  const auto* nonce = reinterpret_cast<const unsigned char*>(blob.data());
  const auto* ct = nonce + kNonceBytes;
  std::string tag = blob.substr(kNonceBytes + ct_len);

  std::string pt(ct_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key->raw.reveal().data());
  auto* out = reinterpret_cast<unsigned char*>(pt.data());
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k, nonce) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), out, &len, ct, static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                                tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), out + len, &len) == 1;
  if (!ok) {
    OPENSSL_cleanse(pt.data(), pt.size());
    return Permanent("sealed value failed authentication");
  }
  return Secret(std::move(pt));
}

}  // namespace syncwell::secrets
