// libFuzzer target for the SASL exchanges of AUTHENTICATE: the input is up to three client
// responses separated by '\n', as they arrive on the wire (base64) or already decoded (the first
// byte says which). SCRAM-SHA-256 runs against the RFC 7677 user ("user"/"pencil") with a fixed
// server nonce; PLAIN splits every response. Findings: a sanitizer report, or a FUZZ_CHECK: an
// exchange that succeeds must be exactly RFC 7677's (no other input can carry a valid proof).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto.h"
#include "protocol/scram.h"

namespace ringmail {
namespace {

#define FUZZ_CHECK(expr, what)                                      \
  do {                                                              \
    if (!(expr)) {                                                  \
      fprintf(stderr, "FUZZ_CHECK failed: %s (%s)\n", what, #expr); \
      abort();                                                      \
    }                                                               \
  } while (0)

const UserRecord& rfc_record() {
  static const UserRecord rec = [] {
    UserRecord r;
    r.name = "user";
    r.iterations = 4096;
    base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", &r.salt);
    Sha256Digest salted = pbkdf2_sha256("pencil", r.salt, r.iterations);
    r.stored_key = sha256(as_view(hmac_sha256(as_view(salted), "Client Key")));
    r.server_key = hmac_sha256(as_view(salted), "Server Key");
    return r;
  }();
  return rec;
}

void run(std::string_view input) {
  if (input.empty()) return;
  bool encoded = (input[0] & 1) != 0;
  input.remove_prefix(1);
  std::vector<std::string> msgs;
  while (msgs.size() < 3) {
    size_t nl = input.find('\n');
    std::string_view part = input.substr(0, nl);
    std::string decoded;
    if (encoded) {
      if (!base64_decode(part, &decoded)) return;
    } else {
      decoded = std::string(part);
    }
    msgs.push_back(std::move(decoded));
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  for (const std::string& m : msgs) {
    std::string_view a, b, c;
    if (sasl_plain_parse(m, &a, &b, &c))
      FUZZ_CHECK(a.size() + b.size() + c.size() + 2 == m.size(), "PLAIN parts cover the message");
    FUZZ_CHECK(base64_encode(m).size() == (m.size() + 2) / 3 * 4, "base64 length");
  }
  ScramServer s;
  std::string error, final_msg;
  if (!s.client_first(msgs[0], &error)) {
    FUZZ_CHECK(!error.empty(), "a refusal says why");
    return;
  }
  FUZZ_CHECK(!s.user().empty(), "a user name");
  (void)ScramServer::decoy_record(s.user());
  std::string first = s.server_first(rfc_record(), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  FUZZ_CHECK(first.rfind("r=", 0) == 0, "server-first starts with the nonce");
  if (msgs.size() < 2) return;
  ScramServer::Result r = s.client_final(msgs[1], &final_msg, &error);
  if (r == ScramServer::Result::ok) {
    FUZZ_CHECK(msgs[0] == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" &&
                   msgs[1] ==
                       "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                       "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
               "only RFC 7677's exchange carries a valid proof");
    FUZZ_CHECK(final_msg == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "server proof");
  }
  if (msgs.size() == 3) (void)s.client_final(msgs[2], &final_msg, &error);  // once more
}

}  // namespace
}  // namespace ringmail

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ringmail::run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
