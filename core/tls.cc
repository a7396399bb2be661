#include "core/tls.h"

// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
// clang-format on

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

namespace ringmail {
namespace {

std::string wolf_error(int code) {
  char buf[WOLFSSL_MAX_ERROR_SZ];
  wolfSSL_ERR_error_string_n(static_cast<unsigned long>(code < 0 ? -code : code), buf, sizeof buf);
  return std::string(buf) + " (" + std::to_string(code) + ")";
}

bool read_file(const std::string& path, std::string* out, std::string* error) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) {
    *error = path + ": " + strerror(errno);
    return false;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  fclose(f);
  return true;
}

bool write_file(const std::string& path, const void* data, size_t size, mode_t mode,
                std::string* error) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    *error = tmp + ": " + strerror(errno);
    return false;
  }
  bool ok = fchmod(fd, mode) == 0 && ::write(fd, data, size) == static_cast<ssize_t>(size) &&
            fsync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": " + strerror(ok ? errno : saved);
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::string hex_fingerprint(const unsigned char* der, size_t size) {
  unsigned char hash[32];
  wc_Sha256Hash(der, static_cast<word32>(size), hash);
  std::string out;
  char b[4];
  for (size_t i = 0; i < sizeof hash; i++) {
    snprintf(b, sizeof b, i == 0 ? "%02X" : ":%02X", hash[i]);
    out += b;
  }
  return out;
}

}  // namespace

void tls_init() {
  wolfSSL_Init();
}

void tls_cleanup() {
  tls_thread_exit();
  wolfSSL_Cleanup();
}

void tls_thread_exit() {
#ifdef FP_ECC
  wc_ecc_fp_free();
#endif
}

WOLFSSL_CTX* tls_make_context(const TlsSettings& s, std::string* fingerprint, std::string* error) {
  struct stat st {};
  if (stat(s.key_file.c_str(), &st) != 0) {
    *error = "tls_key " + s.key_file + ": " + strerror(errno);
    return nullptr;
  }
  if (st.st_mode & S_IROTH) {
    *error = "tls_key " + s.key_file +
             " is readable by every user of this machine: chmod o-r it (e.g. chmod 600) and "
             "start again";
    return nullptr;
  }
  std::string cert_pem;
  if (!read_file(s.cert_file, &cert_pem, error)) {
    *error = "tls_cert " + *error;
    return nullptr;
  }
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
  if (!ctx) {
    *error = "wolfSSL_CTX_new failed";
    return nullptr;
  }
  int min = s.min_version == "1.3" ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
  int rc;
  if ((rc = wolfSSL_CTX_SetMinVersion(ctx, min)) != WOLFSSL_SUCCESS) {
    *error = "tls_min_version: " + wolf_error(rc);
  } else if ((rc = wolfSSL_CTX_use_certificate_chain_file(ctx, s.cert_file.c_str())) !=
             WOLFSSL_SUCCESS) {
    *error = "tls_cert " + s.cert_file + ": not a PEM certificate chain: " + wolf_error(rc);
  } else if ((rc = wolfSSL_CTX_use_PrivateKey_file(ctx, s.key_file.c_str(),
                                                   WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) {
    *error = "tls_key " + s.key_file + ": not a PEM private key: " + wolf_error(rc);
  } else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
    *error = "tls_key " + s.key_file + " does not belong to the certificate in " + s.cert_file;
  } else if (wolfSSL_CTX_set_cipher_list(ctx, s.ciphers.c_str()) != WOLFSSL_SUCCESS) {
    *error = "tls_ciphers: wolfSSL accepts none of \"" + s.ciphers + "\"";
  } else {
    error->clear();
  }
  if (!error->empty()) {
    wolfSSL_CTX_free(ctx);
    return nullptr;
  }
  // No server-side session cache: it is one table behind a mutex for every core. Resumption
  // still works through session tickets, which need no shared state.
  wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
  // Fingerprint of the leaf: the first certificate of the PEM chain.
  std::vector<unsigned char> der(cert_pem.size());
  int der_size = wc_CertPemToDer(reinterpret_cast<const unsigned char*>(cert_pem.data()),
                                 static_cast<int>(cert_pem.size()), der.data(),
                                 static_cast<int>(der.size()), CERT_TYPE);
  *fingerprint = der_size > 0 ? hex_fingerprint(der.data(), static_cast<size_t>(der_size)) : "?";
  return ctx;
}

void tls_free_context(WOLFSSL_CTX* ctx) {
  if (ctx) wolfSSL_CTX_free(ctx);
}

bool tls_ensure_self_signed(const std::string& cert_file, const std::string& key_file,
                            bool* created, std::string* error) {
  *created = false;
  if (access(cert_file.c_str(), F_OK) == 0 && access(key_file.c_str(), F_OK) == 0) return true;
  WC_RNG rng;
  if (wc_InitRng(&rng) != 0) {
    *error = "wolfCrypt: no random number generator";
    return false;
  }
  ecc_key key;
  wc_ecc_init(&key);
  bool ok = false;
  std::vector<unsigned char> der(4096), pem(8192), key_der(512), key_pem(2048);
  do {
    if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0) {
      *error = "wolfCrypt: cannot make an ECDSA P-256 key";
      break;
    }
    Cert cert;
    wc_InitCert(&cert);
    snprintf(cert.subject.commonName, CTC_NAME_SIZE, "localhost");
    snprintf(cert.subject.org, CTC_NAME_SIZE, "ringmail self-signed");
    cert.daysValid = 3650;
    cert.isCA = 0;
    cert.sigType = CTC_SHA256wECDSA;
    // subjectAltName: DNS:localhost, IP:127.0.0.1 (DER GeneralNames).
    static const unsigned char kAltNames[] = {0x30, 0x11, 0x82, 0x09, 'l', 'o', 'c',
                                              'a',  'l',  'h',  'o',  's', 't', 0x87,
                                              0x04, 0x7f, 0x00, 0x00, 0x01};
    memcpy(cert.altNames, kAltNames, sizeof kAltNames);
    cert.altNamesSz = sizeof kAltNames;
    int size = wc_MakeCert(&cert, der.data(), static_cast<word32>(der.size()), nullptr, &key, &rng);
    if (size > 0)
      size = wc_SignCert(cert.bodySz, cert.sigType, der.data(), static_cast<word32>(der.size()),
                         nullptr, &key, &rng);
    if (size <= 0) {
      *error = "wolfCrypt: cannot make the certificate: " + wolf_error(size);
      break;
    }
    int pem_size = wc_DerToPem(der.data(), static_cast<word32>(size), pem.data(),
                               static_cast<word32>(pem.size()), CERT_TYPE);
    int key_size = wc_EccKeyToDer(&key, key_der.data(), static_cast<word32>(key_der.size()));
    int key_pem_size =
        key_size > 0 ? wc_DerToPem(key_der.data(), static_cast<word32>(key_size), key_pem.data(),
                                   static_cast<word32>(key_pem.size()), ECC_PRIVATEKEY_TYPE)
                     : -1;
    if (pem_size <= 0 || key_pem_size <= 0) {
      *error = "wolfCrypt: cannot encode the certificate or key as PEM";
      break;
    }
    if (!write_file(key_file, key_pem.data(), static_cast<size_t>(key_pem_size), 0600, error) ||
        !write_file(cert_file, pem.data(), static_cast<size_t>(pem_size), 0644, error))
      break;
    ok = true;
    *created = true;
  } while (false);
  wc_ecc_free(&key);
  wc_FreeRng(&rng);
  return ok;
}

// ---- TlsStream ------------------------------------------------------------------------------

TlsStream::TlsStream(WOLFSSL_CTX* ctx) {
  ssl_ = wolfSSL_new(ctx);
  if (!ssl_) return;
  wolfSSL_SSLSetIORecv(ssl_, &TlsStream::on_recv);
  wolfSSL_SSLSetIOSend(ssl_, &TlsStream::on_send);
  wolfSSL_SetIOReadCtx(ssl_, this);
  wolfSSL_SetIOWriteCtx(ssl_, this);
}

TlsStream::~TlsStream() {
  if (ssl_) wolfSSL_free(ssl_);
}

int TlsStream::on_recv(WOLFSSL* /*ssl*/, char* buf, int size, void* self) {
  auto* t = static_cast<TlsStream*>(self);
  size_t avail = t->wire_in_.size() - t->wire_in_pos_;
  if (avail == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
  size_t n = avail < static_cast<size_t>(size) ? avail : static_cast<size_t>(size);
  memcpy(buf, t->wire_in_.data() + t->wire_in_pos_, n);
  t->wire_in_pos_ += n;
  if (t->wire_in_pos_ == t->wire_in_.size()) {
    std::string().swap(t->wire_in_);  // an idle connection holds no buffer
    t->wire_in_pos_ = 0;
  }
  return static_cast<int>(n);
}

int TlsStream::on_send(WOLFSSL* /*ssl*/, char* buf, int size, void* self) {
  static_cast<TlsStream*>(self)->wire_out.append(std::string_view(buf, static_cast<size_t>(size)));
  return size;
}

void TlsStream::feed(std::string_view wire) {
  if (wire_in_pos_ > 0 && wire_in_pos_ * 2 >= wire_in_.size()) {
    wire_in_.erase(0, wire_in_pos_);
    wire_in_pos_ = 0;
  }
  wire_in_.append(wire);
}

int TlsStream::handshake() {
  if (established_) return 1;
  int rc = wolfSSL_accept(ssl_);
  if (rc == WOLFSSL_SUCCESS) {
    established_ = true;
    return 1;
  }
  int err = wolfSSL_get_error(ssl_, rc);
  if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) return 0;
  last_error_ = err;
  return -1;
}

int TlsStream::read(char* buf, int size) {
  int n = wolfSSL_read(ssl_, buf, size);
  if (n > 0) return n;
  int err = wolfSSL_get_error(ssl_, n);
  if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) return 0;
  if (err == WOLFSSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
  } else {
    last_error_ = err;
  }
  return -1;
}

bool TlsStream::write(std::string_view plain) {
  while (!plain.empty()) {
    int chunk = plain.size() > (1u << 30) ? (1 << 30) : static_cast<int>(plain.size());
    int n = wolfSSL_write(ssl_, plain.data(), chunk);
    if (n <= 0) {
      last_error_ = wolfSSL_get_error(ssl_, n);
      return false;
    }
    plain.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void TlsStream::shutdown() {
  if (established_) (void)wolfSSL_shutdown(ssl_);
}

std::string TlsStream::error() const {
  return last_error_ == 0 ? "none" : wolf_error(last_error_);
}

const char* TlsStream::version() const {
  return wolfSSL_get_version(ssl_);
}

const char* TlsStream::cipher() const {
  return wolfSSL_get_cipher_name(ssl_);
}

}  // namespace ringmail
