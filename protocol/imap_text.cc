#include "protocol/imap_text.h"

#include <algorithm>
#include <vector>

#include "protocol/command_parser.h"

namespace ringmail {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
         });
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& ch : out)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
  return out;
}

std::string one_line(std::string_view text) {
  std::string out(text.substr(0, 300));
  for (char& ch : out)
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  return out;
}

std::string storage_failure(const Status& s, std::string_view what) {
  if (s.code() == Status::Code::no_space)
    return "NO [OVERQUOTA] " + std::string(what) + ": not enough disk space";
  const char* code = "[SERVERBUG] ";
  switch (s.code()) {
    case Status::Code::not_found: code = "[NONEXISTENT] "; break;
    case Status::Code::already_exists: code = "[ALREADYEXISTS] "; break;
    case Status::Code::invalid: code = "[CANNOT] "; break;
    default: break;
  }
  return "NO " + std::string(code) + std::string(what) + ": " + one_line(s.message());
}

void respond(Connection& c, std::string_view tag, std::string_view text) {
  std::string line;
  line.reserve(tag.size() + text.size() + 3);
  line.append(tag).append(" ").append(text).append("\r\n");
  c.write(line);
}

void append_string(std::string_view s, std::string* out) {
  bool quotable = s.size() < 1024;
  for (unsigned char ch : s) {
    if (ch == '\r' || ch == '\n' || ch == 0 || ch >= 0x80) {
      quotable = false;
      break;
    }
  }
  if (!quotable) {
    out->append("{").append(std::to_string(s.size())).append("}\r\n").append(s);
    return;
  }
  out->push_back('"');
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out->push_back('\\');
    out->push_back(ch);
  }
  out->push_back('"');
}

void append_astring(std::string_view s, std::string* out) {
  bool atom = !s.empty() && !iequals(s, "NIL");
  for (unsigned char ch : s) {
    if (!is_atom_char(ch) && ch != ']') {
      atom = false;
      break;
    }
  }
  if (atom)
    out->append(s);
  else
    append_string(s, out);
}

// can[j] says whether the pattern read so far matches the first j bytes of the name: a naive
// recursive match of "%%%%...X" backtracks exponentially, this never does.
bool wildcard_match(std::string_view pat, std::string_view name) {
  const size_t n = name.size();
  std::string can(n + 1, 0);
  can[0] = 1;
  for (char p : pat) {
    if (p == '*') {
      for (size_t j = 1; j <= n; j++) can[j] = can[j] || can[j - 1];
    } else if (p == '%') {
      for (size_t j = 1; j <= n; j++) can[j] = can[j] || (can[j - 1] && name[j - 1] != '/');
    } else {
      for (size_t j = n; j >= 1; j--) can[j] = can[j - 1] && name[j - 1] == p;
      can[0] = 0;
    }
  }
  return can[n];
}

}  // namespace ringmail
