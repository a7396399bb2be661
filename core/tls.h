// TLS with wolfSSL over memory: the socket stays on io_uring. Ciphertext that recv brought is
// fed in, plaintext comes out; plaintext to send goes in, ciphertext comes out into an OutQueue
// that the reactor sends like any other output. A TlsStream belongs to its connection and moves
// with it to the user's owner core.
//
// Contexts (certificate, key, protocol versions, cipher suites) are built on the main thread at
// start and on SIGHUP, and never freed before shutdown: a reactor may still be creating a session
// from the one just replaced, and every session keeps its own context alive anyway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/out_queue.h"

struct WOLFSSL_CTX;
struct WOLFSSL;

namespace ringmail {

struct TlsSettings {
  std::string cert_file;    // PEM, the chain (leaf first)
  std::string key_file;     // PEM
  std::string ciphers;      // wolfSSL cipher list (TLS 1.3 suites and TLS 1.2 ones)
  std::string min_version;  // "1.2" or "1.3"
};

// Initializes wolfSSL once per process.
void tls_init();
void tls_cleanup();
// Frees what wolfSSL keeps per thread (the ECC fixed-point cache); every thread that ran TLS
// calls it before it ends.
void tls_thread_exit();

// Builds a server context. Refuses a private key file that others may read (mode o+r), a key
// that does not match the certificate, a cipher list wolfSSL does not accept. On success
// *fingerprint is the SHA-256 of the leaf certificate (hex with colons).
WOLFSSL_CTX* tls_make_context(const TlsSettings& s, std::string* fingerprint, std::string* error);
void tls_free_context(WOLFSSL_CTX* ctx);

// Creates a self-signed ECDSA P-256 certificate for "localhost" and 127.0.0.1 (ten years) and its
// key (mode 0600) with wolfCrypt, unless both files exist. *created says whether it made them.
bool tls_ensure_self_signed(const std::string& cert_file, const std::string& key_file,
                            bool* created, std::string* error);

class TlsStream {
 public:
  explicit TlsStream(WOLFSSL_CTX* ctx);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  bool valid() const { return ssl_ != nullptr; }
  // Ciphertext from the peer.
  void feed(std::string_view wire);
  // Drives the handshake: 1 done, 0 needs more input, -1 failed (error() says why).
  int handshake();
  bool established() const { return established_; }
  // Plaintext received: >0 bytes, 0 none for now, -1 the peer closed (close_notify) or an error.
  int read(char* buf, int size);
  // Encrypts `plain` into wire_out. False on a fatal error.
  bool write(std::string_view plain);
  // A close_notify alert into wire_out.
  void shutdown();
  std::string error() const;
  const char* version() const;
  const char* cipher() const;
  bool peer_closed() const { return peer_closed_; }

  OutQueue wire_out;       // ciphertext to send
  size_t plain_first = 0;  // bytes of the connection's output to send in clear first (STARTTLS)

 private:
  static int on_recv(WOLFSSL* ssl, char* buf, int size, void* self);
  static int on_send(WOLFSSL* ssl, char* buf, int size, void* self);

  WOLFSSL* ssl_ = nullptr;
  std::string wire_in_;  // ciphertext not yet taken by wolfSSL
  size_t wire_in_pos_ = 0;
  int last_error_ = 0;
  bool established_ = false;
  bool peer_closed_ = false;
};

}  // namespace ringmail
