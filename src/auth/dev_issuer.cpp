#include "auth/dev_issuer.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "auth/base64url.hpp"
#include "core/log.hpp"
#include "core/random.hpp"

namespace syncwell::auth {
namespace json = boost::json;
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

Error Io(const std::string& what) {
  return MakeError(Errc::kUnavailable, what + ": " + std::strerror(errno));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

Status WriteFile(const std::string& path, std::string_view content, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Io("create " + path);
  while (!content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Io("write " + path);
    }
    content.remove_prefix(static_cast<size_t>(n));
  }
  ::fsync(fd);
  ::close(fd);
  return {};
}

// Creates `path` only if absent, atomically (temp file + link), so concurrent first starts agree
// on one key. Returns false if it already existed.
Result<bool> CreateExclusive(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp." + RandomToken(6);
  if (Status s = WriteFile(tmp, content, 0600); !s.ok()) return s.error();
  const int rc = ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  errno = err;
  return Io("link " + path);
}

// Replaces `path` atomically (readers see the old or the new JWKS, never half of one).
Status ReplaceFile(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp." + RandomToken(6);
  if (Status s = WriteFile(tmp, content, 0644); !s.ok()) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = Io("rename " + path);
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

std::string BnParam(EVP_PKEY* pkey, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) throw std::runtime_error("RSA param missing");
  std::unique_ptr<BIGNUM, BnFree> bn(raw);
  std::string out(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

void DevIssuer::PkeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }

DevIssuer::~DevIssuer() = default;

Result<DevIssuer> DevIssuer::LoadOrCreate(const std::string& data_dir) {
  std::error_code fs_ec;
  std::filesystem::create_directories(data_dir, fs_ec);
  if (fs_ec) return MakeError(Errc::kUnavailable, "create " + data_dir + ": " + fs_ec.message());
  const std::string key_path = (std::filesystem::path(data_dir) / kKeyFileName).string();

  struct stat st {};
  if (::stat(key_path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Io("stat " + key_path);
    EVP_PKEY* fresh = EVP_RSA_gen(2048);
    if (fresh == nullptr) return MakeError(Errc::kInternal, "RSA key generation failed");
    std::unique_ptr<EVP_PKEY, PkeyFree> fresh_key(fresh);
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), fresh, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      return MakeError(Errc::kInternal, "PEM encoding failed");
    }
    std::string pem = BioContents(bio.get());
    auto created = CreateExclusive(key_path, pem);
    OPENSSL_cleanse(pem.data(), pem.size());
    if (!created.ok()) return created.error();
    if (*created) log::Info("generated dev signing key", {{"path", key_path}});
  }

  DevIssuer issuer;
  {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(key_path.c_str(), "r"), &std::fclose);
    if (!f) return Io("open " + key_path);
    issuer.pkey_.reset(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  }
  if (!issuer.pkey_ || !EVP_PKEY_is_a(issuer.pkey_.get(), "RSA")) {
    return MakeError(Errc::kInvalidArgument, key_path + " is not an RSA private key");
  }

  // kid = base64url(first 12 bytes of SHA-256(DER SubjectPublicKeyInfo)): stable per key, so a
  // restarted dev server keeps accepting tokens minted before the restart.
  unsigned char* der = nullptr;
  const int der_len = i2d_PUBKEY(issuer.pkey_.get(), &der);
  if (der_len <= 0) return MakeError(Errc::kInternal, "public key encoding failed");
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(der_len), digest);
  OPENSSL_free(der);
  issuer.kid_ = Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(digest), 12));

  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), issuer.pkey_.get()) != 1) {
    return MakeError(Errc::kInternal, "public key PEM encoding failed");
  }
  issuer.public_pem_ = BioContents(bio.get());

  json::object jwk;
  jwk["kty"] = "RSA";
  jwk["use"] = "sig";
  jwk["alg"] = "RS256";
  jwk["kid"] = issuer.kid_;
  jwk["n"] = Base64UrlEncode(BnParam(issuer.pkey_.get(), OSSL_PKEY_PARAM_RSA_N));
  jwk["e"] = Base64UrlEncode(BnParam(issuer.pkey_.get(), OSSL_PKEY_PARAM_RSA_E));
  json::object doc;
  json::array keys;
  keys.push_back(std::move(jwk));
  doc["keys"] = std::move(keys);
  issuer.jwks_json_ = json::serialize(doc);
  issuer.jwks_path_ = (std::filesystem::path(data_dir) / kJwksFileName).string();
  if (Status s = ReplaceFile(issuer.jwks_path_, issuer.jwks_json_); !s.ok()) return s.error();
  return issuer;
}

std::string DevIssuer::SignRs256(std::string_view header_json,
                                 std::string_view payload_json) const {
  std::string signing_input = Base64UrlEncode(header_json) + "." + Base64UrlEncode(payload_json);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(signing_input.data());
  if (!ctx ||
      EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, pkey_.get(), nullptr) !=
          1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, data, signing_input.size()) != 1) {
    throw std::runtime_error("RS256 signing failed");
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len, data,
                     signing_input.size()) != 1) {
    throw std::runtime_error("RS256 signing failed");
  }
  sig.resize(sig_len);
  return signing_input + "." + Base64UrlEncode(sig);
}

std::string DevIssuer::Mint(const std::string& user, const std::string& tier,
                            std::chrono::seconds ttl, TimePoint now) const {
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  json::object header;
  header["alg"] = "RS256";
  header["typ"] = "JWT";
  header["kid"] = kid_;
  json::object claims;
  claims["iss"] = kDevIssuer;
  claims["aud"] = kDevAudience;
  claims["sub"] = user;
  if (!tier.empty()) claims["tier"] = tier;
  claims["iat"] = now_s;
  claims["nbf"] = now_s;
  claims["exp"] = now_s + ttl.count();
  return SignRs256(json::serialize(header), json::serialize(claims));
}

}  // namespace syncwell::auth
