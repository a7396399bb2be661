#include "core/crypto.h"

#include <sys/random.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <cerrno>

#include "core/assert.h"

namespace ringmail {
namespace {
const byte* bytes(std::string_view s) {
  return reinterpret_cast<const byte*>(s.data());
}
}  // namespace

Sha256Digest sha256(std::string_view data) {
  Sha256Digest out;
  RM_ASSERT(wc_Sha256Hash(bytes(data), static_cast<word32>(data.size()), out.data()) == 0);
  return out;
}

Sha256Digest hmac_sha256(std::string_view key, std::string_view data) {
  Hmac hmac;
  Sha256Digest out;
  RM_ASSERT(wc_HmacInit(&hmac, nullptr, INVALID_DEVID) == 0);
  RM_ASSERT(wc_HmacSetKey(&hmac, WC_SHA256, bytes(key), static_cast<word32>(key.size())) == 0);
  RM_ASSERT(wc_HmacUpdate(&hmac, bytes(data), static_cast<word32>(data.size())) == 0);
  RM_ASSERT(wc_HmacFinal(&hmac, out.data()) == 0);
  wc_HmacFree(&hmac);
  return out;
}

Sha256Digest pbkdf2_sha256(std::string_view password, std::string_view salt, uint32_t iterations) {
  RM_ASSERT(iterations >= 1 && iterations <= (1u << 30));
  Sha256Digest out;
  int rc = wc_PBKDF2(out.data(), bytes(password), static_cast<int>(password.size()), bytes(salt),
                     static_cast<int>(salt.size()), static_cast<int>(iterations),
                     static_cast<int>(out.size()), WC_SHA256);
  RM_ASSERT_MSG(rc == 0, "wc_PBKDF2 failed");
  return out;
}

void random_bytes(void* out, size_t len) {
  auto* p = static_cast<uint8_t*>(out);
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    RM_ASSERT_MSG(n > 0, "getrandom failed");
    p += n;
    len -= static_cast<size_t>(n);
  }
}

std::string base64_encode(std::string_view data) {
  std::string out((data.size() + 2) / 3 * 4 + 1, '\0');
  word32 len = static_cast<word32>(out.size());
  RM_ASSERT(Base64_Encode_NoNl(bytes(data), static_cast<word32>(data.size()),
                               reinterpret_cast<byte*>(out.data()), &len) == 0);
  out.resize(len);
  return out;
}

bool base64_decode(std::string_view text, std::string* out) {
  if (text.empty()) {
    out->clear();
    return true;
  }
  // Strict RFC 4648: whole quanta, the alphabet only, '=' only as the last one or two characters
  // (wolfCrypt's decoder alone skips and tolerates more, e.g. bytes after the padding).
  if (text.size() % 4 != 0) return false;
  size_t pad = text.size() - text.find_last_not_of('=') - 1;
  if (text.find_last_not_of('=') == std::string_view::npos || pad > 2) return false;
  for (size_t i = 0; i < text.size() - pad; i++) {
    char c = text[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '/'))
      return false;
  }
  out->assign(text.size() / 4 * 3 + 3, '\0');
  word32 len = static_cast<word32>(out->size());
  if (Base64_Decode(bytes(text), static_cast<word32>(text.size()),
                    reinterpret_cast<byte*>(out->data()), &len) != 0)
    return false;
  out->resize(len);
  // Canonical only: padding bits must be zero, so one value has one encoding.
  return base64_encode(*out) == text;
}

const std::string& process_secret() {
  static const std::string kSecret = [] {
    std::string s(32, '\0');
    random_bytes(s.data(), s.size());
    return s;
  }();
  return kSecret;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); i++) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace ringmail
