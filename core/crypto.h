// The few wolfCrypt primitives ringmail needs, behind plain signatures.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmail {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest sha256(std::string_view data);
Sha256Digest hmac_sha256(std::string_view key, std::string_view data);
// PBKDF2-HMAC-SHA256 with a 32-byte output (RFC 8018); the SaltedPassword of SCRAM-SHA-256.
Sha256Digest pbkdf2_sha256(std::string_view password, std::string_view salt, uint32_t iterations);

// 32 random bytes made once per process on first use; never leave it (keys for MACs whose
// results must not be predictable from outside: the credentials cache, SCRAM decoy salts).
const std::string& process_secret();

// Fills `out` from the system's CSPRNG (getrandom); aborts if the kernel cannot supply it.
void random_bytes(void* out, size_t len);

std::string base64_encode(std::string_view data);
bool base64_decode(std::string_view text, std::string* out);

// Compares without an early exit, so the time taken says nothing about where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

inline std::string_view as_view(const Sha256Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

}  // namespace ringmail
