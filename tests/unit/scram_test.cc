#include "protocol/scram.h"

#include <gtest/gtest.h>

#include "core/crypto.h"

namespace ringmail {
namespace {

// RFC 7677 section 3: user "user", password "pencil", 4096 iterations.
UserRecord rfc7677_record() {
  UserRecord rec;
  rec.name = "user";
  rec.iterations = 4096;
  EXPECT_TRUE(base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", &rec.salt));
  Sha256Digest salted = pbkdf2_sha256("pencil", rec.salt, rec.iterations);
  rec.stored_key = sha256(as_view(hmac_sha256(as_view(salted), "Client Key")));
  rec.server_key = hmac_sha256(as_view(salted), "Server Key");
  return rec;
}

constexpr const char* kNonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

TEST(Scram, Rfc7677ExchangeExactly) {
  ScramServer s;
  std::string error;
  ASSERT_TRUE(s.client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &error)) << error;
  EXPECT_EQ(s.user(), "user");
  EXPECT_EQ(s.server_first(rfc7677_record(), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"),
            std::string("r=") + kNonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  std::string final_msg;
  EXPECT_EQ(s.client_final(std::string("c=biws,r=") + kNonce +
                               ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                           &final_msg, &error),
            ScramServer::Result::ok);
  EXPECT_EQ(final_msg, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST(Scram, AWrongProofFailsAndMalformedMessagesAreRefused) {
  ScramServer s;
  std::string error, final_msg;
  ASSERT_TRUE(s.client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &error));
  s.server_first(rfc7677_record(), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  EXPECT_EQ(s.client_final(std::string("c=biws,r=") + kNonce +
                               ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                           &final_msg, &error),
            ScramServer::Result::failed);
  EXPECT_EQ(s.client_final("c=biws,r=other,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                           &final_msg, &error),
            ScramServer::Result::malformed);
  EXPECT_EQ(s.client_final("garbage", &final_msg, &error), ScramServer::Result::malformed);
  for (const char* bad : {"p=tls-unique,,n=user,r=abc", "x,,n=user,r=abc", "n,,n=,r=abc",
                          "n,,n=us=er,r=abc", "n,,r=abc", "n,,n=user",
                          "n,,n=user,r=", "n,a=other,n=user,r=abc", "n,,n=user,r=abc,m=ext", ""}) {
    ScramServer t;
    EXPECT_FALSE(t.client_first(bad, &error)) << bad;
  }
  ScramServer escaped;
  ASSERT_TRUE(escaped.client_first("y,a=A=2Cb,n=A=2Cb,r=x", &error)) << error;
  EXPECT_EQ(escaped.user(), "a,b");
}

TEST(Scram, DecoyRecordsAreStablePerNameAndMatchNothing) {
  UserRecord a = ScramServer::decoy_record("ghost"), b = ScramServer::decoy_record("ghost");
  EXPECT_EQ(a.salt, b.salt);
  EXPECT_EQ(a.salt.size(), 16u);
  EXPECT_NE(ScramServer::decoy_record("other").salt, a.salt);
  EXPECT_FALSE(verify_password(a, ""));
}

}  // namespace
}  // namespace ringmail
