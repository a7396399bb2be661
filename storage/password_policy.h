// What `ringmail user add` and `user passwd` accept as a password: at least kMinLength
// characters, not the user's name, and not one of the most common passwords (a short list
// shipped in the binary; a guesser tries those first).
#pragma once

#include <string>
#include <string_view>

namespace ringmail {

constexpr size_t kPasswordMinLength = 10;

// False with a sentence saying why.
bool password_acceptable(std::string_view password, std::string_view user, std::string* why);

}  // namespace ringmail
