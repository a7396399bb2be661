#include "storage/password_policy.h"

#include <algorithm>
#include <cctype>

namespace ringmail {
namespace {

// The most used passwords of public breach corpora that are 10 characters or longer (shorter
// ones fail the length rule anyway), compared case-insensitively.
const char* const kCommon[] = {
    "1234567890",   "qwertyuiop",     "1q2w3e4r5t",     "1qaz2wsx3edc",  "0987654321",
    "1111111111",   "0000000000",     "123456789a",     "a123456789",    "123qweasdzxc",
    "qwerty123456", "password123",    "password1234",   "passw0rd123",   "iloveyou123",
    "1234567891",   "12345678910",    "123456789q",     "q123456789",    "abcd123456",
    "abc1234567",   "zaq12wsxcde3",   "qwertyuiop123",  "asdfghjkl123",  "asdfghjkl;",
    "qazwsxedcrfv", "1q2w3e4r5t6y",   "1q2w3e4r5t6y7u", "123321123321",  "aaaaaaaaaa",
    "football123",  "baseball123",    "princess123",    "sunshine123",   "letmein123",
    "welcome123",   "welcome1234",    "changeme123",    "administrator", "admin12345",
    "admin123456",  "administrator1", "superman123",    "monkey12345",   "dragon12345",
    "1234512345",   "1122334455",     "9876543210",     "5555555555",    "7777777777",
    "9999999999",   "2222222222",     "1212121212",     "1231231234",    "123123123123",
    "12341234",     "computer123",    "internet123",    "password12",    "password01",
    "qwerty1234",   "qwertyuiop1",    "trustno1234",    "starwars123",   "whatever123",
    "michael123",   "jennifer123",    "charlie123",     "shadow12345",   "master12345",
    "hello12345",   "freedom123",     "samsung123",     "google12345",   "mypassword",
    "mypassword1",  "secret12345",    "summer2024",     "summer2025",    "winter2024",
    "winter2025",   "spring2025",     "autumn2025",     "password2024",  "password2025",
    "password2026", "qwerty2024",     "welcome2024",    "welcome2025",   "letmein1234",
    "iloveyou12",   "ilovemyself",    "liverpool123",   "chelsea123",    "arsenal123",
    "pokemon123",   "blink18212",     "michelle123",    "jessica123",    "daniel1234",
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

bool password_acceptable(std::string_view password, std::string_view user, std::string* why) {
  if (password.size() < kPasswordMinLength) {
    *why = "the password is too short: use at least " + std::to_string(kPasswordMinLength) +
           " characters";
    return false;
  }
  std::string pw = lower(password);
  if (!user.empty() && pw.find(lower(user)) != std::string::npos) {
    *why = "the password contains the user name";
    return false;
  }
  for (const char* c : kCommon) {
    if (pw == c) {
      *why = "the password is one of the most common ones: guessers try it first";
      return false;
    }
  }
  if (std::all_of(pw.begin(), pw.end(), [&](char c) { return c == pw[0]; })) {
    *why = "the password repeats one character";
    return false;
  }
  return true;
}

}  // namespace ringmail
