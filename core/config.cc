#include "core/config.h"

#include <arpa/inet.h>
#include <simdjson.h>

#include <charconv>
#include <cstring>

#include "core/log.h"

namespace ringmail {
namespace {

enum class Kind { string, integer };

struct Setting {
  const char* key;
  Kind kind;
  int64_t min;
  int64_t max;
  std::string Config::*str;
  int64_t Config::*num;
};

constexpr int64_t kNoLimit = INT64_MAX;

const Setting kSettings[] = {
    {"data_dir", Kind::string, 1, 4096, &Config::data_dir, nullptr},
    {"imap_listen", Kind::string, 1, 300, &Config::imap_listen, nullptr},
    {"imaps_listen", Kind::string, 0, 300, &Config::imaps_listen, nullptr},
    {"tls_cert", Kind::string, 0, 4096, &Config::tls_cert, nullptr},
    {"tls_key", Kind::string, 0, 4096, &Config::tls_key, nullptr},
    {"tls_ciphers", Kind::string, 1, 4096, &Config::tls_ciphers, nullptr},
    {"tls_min_version", Kind::string, 3, 3, &Config::tls_min_version, nullptr},
    {"allow_plaintext_auth", Kind::integer, 0, 1, nullptr, &Config::allow_plaintext_auth},
    {"sasl_login", Kind::integer, 0, 1, nullptr, &Config::sasl_login},
    {"audit_log", Kind::string, 0, 4096, &Config::audit_log, nullptr},
    {"user", Kind::string, 0, 64, &Config::user, nullptr},
    {"connections_per_ip_max", Kind::integer, 1, 10000000, nullptr,
     &Config::connections_per_ip_max},
    {"connections_per_user_max", Kind::integer, 1, 1000000, nullptr,
     &Config::connections_per_user_max},
    {"preauth_bytes_max", Kind::integer, 1024, 1 << 30, nullptr, &Config::preauth_bytes_max},
    {"auth_lockout_failures", Kind::integer, 1, 1000000, nullptr, &Config::auth_lockout_failures},
    {"auth_lockout_ip_failures", Kind::integer, 1, 1000000, nullptr,
     &Config::auth_lockout_ip_failures},
    {"auth_lockout_s", Kind::integer, 1, 7 * 24 * 3600, nullptr, &Config::auth_lockout_s},
    {"auth_delay_after", Kind::integer, 0, 1000000, nullptr, &Config::auth_delay_after},
    {"auth_delay_max_ms", Kind::integer, 0, 60000, nullptr, &Config::auth_delay_max_ms},
    {"threads", Kind::integer, 0, 1024, nullptr, &Config::threads},
    {"log_level", Kind::string, 1, 16, &Config::log_level, nullptr},
    {"preauth_timeout_s", Kind::integer, 1, 3600, nullptr, &Config::preauth_timeout_s},
    {"idle_timeout_s", Kind::integer, 1, 7 * 24 * 3600, nullptr, &Config::idle_timeout_s},
    {"shutdown_timeout_ms", Kind::integer, 0, 600000, nullptr, &Config::shutdown_timeout_ms},
    {"connections_max", Kind::integer, 1, 10000000, nullptr, &Config::connections_max},
    {"line_bytes_max", Kind::integer, 1024, 1 << 20, nullptr, &Config::line_bytes_max},
    {"preauth_literal_bytes_max", Kind::integer, 0, 1 << 20, nullptr,
     &Config::preauth_literal_bytes_max},
    {"pending_input_bytes_max", Kind::integer, 4096, 64 << 20, nullptr,
     &Config::pending_input_bytes_max},
    {"message_bytes_max", Kind::integer, 1024, 1 << 30, nullptr, &Config::message_bytes_max},
    {"literal_bytes_core_max", Kind::integer, 65536, 1LL << 40, nullptr,
     &Config::literal_bytes_core_max},
    {"open_user_idle_s", Kind::integer, 0, 86400, nullptr, &Config::open_user_idle_s},
    {"open_users_max", Kind::integer, 0, 1000000, nullptr, &Config::open_users_max},
    {"segment_bytes_max", Kind::integer, 65536, 1LL << 30, nullptr, &Config::segment_bytes_max},
    {"compact_released_bytes_min", Kind::integer, 1, 1LL << 40, nullptr,
     &Config::compact_released_bytes_min},
    {"fts_index", Kind::integer, 0, 1, nullptr, &Config::fts_index},
    {"fts_batch_docs", Kind::integer, 1, 1000000, nullptr, &Config::fts_batch_docs},
    {"output_bytes_max", Kind::integer, 4096, 1LL << 30, nullptr, &Config::output_bytes_max},
    {"auth_cache_ttl_s", Kind::integer, 0, 86400, nullptr, &Config::auth_cache_ttl_s},
    {"helper_threads", Kind::integer, 1, 64, nullptr, &Config::helper_threads},
    {"cross_core_wake", Kind::string, 1, 16, &Config::cross_core_wake, nullptr},
};

const Setting* find_setting(std::string_view key) {
  for (const Setting& s : kSettings)
    if (key == s.key) return &s;
  return nullptr;
}

std::string range_text(const Setting& s) {
  std::string r = "an integer from " + std::to_string(s.min);
  if (s.max != kNoLimit) r += " to " + std::to_string(s.max);
  return r;
}

std::string quote_value(std::string_view v) {
  std::string out = "\"";
  for (char c : v.substr(0, 80)) {
    if (c == '"' || c == '\\') out += '\\';
    out += (static_cast<unsigned char>(c) < ' ') ? '?' : c;
  }
  if (v.size() > 80) out += "...";
  return out + "\"";
}

bool check_string(const Setting& s, std::string_view v, std::string* why) {
  if (v.size() < static_cast<size_t>(s.min) || v.size() > static_cast<size_t>(s.max)) {
    *why =
        "expected a string of " + std::to_string(s.min) + " to " + std::to_string(s.max) + " bytes";
    return false;
  }
  if (v.find('\0') != std::string_view::npos) {
    *why = "contains a NUL byte";
    return false;
  }
  if (std::string_view(s.key) == "log_level") {
    LogLevel l;
    if (!parse_log_level(v, &l)) {
      *why = "expected one of debug, info, warn, error, got " + quote_value(v);
      return false;
    }
  }
  if (std::string_view(s.key) == "cross_core_wake" && v != "auto" && v != "msg_ring" &&
      v != "eventfd") {
    *why = "expected one of auto, msg_ring, eventfd, got " + quote_value(v);
    return false;
  }
  if (std::string_view(s.key) == "imap_listen") {
    ListenAddress a;
    if (!parse_listen_address(v, &a)) {
      *why = "expected HOST:PORT (an IP address or localhost, port 0-65535), got " + quote_value(v);
      return false;
    }
  }
  return true;
}

bool check_integer(const Setting& s, int64_t v, std::string* why) {
  if (v < s.min || v > s.max) {
    *why = "expected " + range_text(s) + ", got " + std::to_string(v);
    return false;
  }
  return true;
}

std::string prefix(std::string_view source, std::string_view key) {
  std::string p(source);
  if (!key.empty()) p += ": key \"" + std::string(key) + "\"";
  return p + ": ";
}

}  // namespace

bool parse_listen_address(std::string_view text, ListenAddress* out) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty())
    return false;
  *out = ListenAddress{};
  out->text = std::string(text);
  if (host == "localhost") host = "127.0.0.1";
  std::string h(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, h.substr(1, h.size() - 2).c_str(), &a6->sin6_addr) != 1) return false;
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  auto* a4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  a4->sin_family = AF_INET;
  a4->sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, h.c_str(), &a4->sin_addr) != 1) return false;
  out->len = sizeof(sockaddr_in);
  return true;
}

bool Config::set(std::string_view key, std::string_view value, std::string_view source,
                 std::string* error) {
  const Setting* s = find_setting(key);
  if (!s) {
    *error = prefix(source, "") + "unknown setting";
    return false;
  }
  std::string why;
  if (s->kind == Kind::string) {
    if (!check_string(*s, value, &why)) {
      *error = prefix(source, "") + why;
      return false;
    }
    this->*(s->str) = std::string(value);
    return true;
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || value.empty()) {
    *error = prefix(source, "") + "expected " + range_text(*s) + ", got " + quote_value(value);
    return false;
  }
  if (!check_integer(*s, v, &why)) {
    *error = prefix(source, "") + why;
    return false;
  }
  this->*(s->num) = v;
  return true;
}

bool Config::load_file(const std::string& path, std::string* error) {
  std::string source = "config " + path;
  simdjson::dom::parser parser;
  simdjson::padded_string json;
  if (auto err = simdjson::padded_string::load(path).get(json); err) {
    *error = source + ": cannot read: " + std::strerror(errno);
    return false;
  }
  simdjson::dom::element root;
  if (auto err = parser.parse(json).get(root); err) {
    *error = source + ": not valid JSON: " + simdjson::error_message(err);
    return false;
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) {
    *error = source + ": expected a JSON object at the top level";
    return false;
  }
  for (auto field : obj) {
    std::string_view key = field.key;
    const Setting* s = find_setting(key);
    if (!s) {
      *error = prefix(source, key) + "unknown key";
      return false;
    }
    std::string why;
    if (s->kind == Kind::string) {
      std::string_view v;
      if (field.value.get_string().get(v)) {
        *error = prefix(source, key) + "expected a string";
        return false;
      }
      if (!check_string(*s, v, &why)) {
        *error = prefix(source, key) + why;
        return false;
      }
      this->*(s->str) = std::string(v);
    } else {
      int64_t v = 0;
      if (field.value.get_int64().get(v)) {
        *error = prefix(source, key) + "expected " + range_text(*s);
        return false;
      }
      if (!check_integer(*s, v, &why)) {
        *error = prefix(source, key) + why;
        return false;
      }
      this->*(s->num) = v;
    }
  }
  return true;
}

bool Config::finish(std::string* error) {
  if (!parse_listen_address(imap_listen, &imap_address)) {
    *error = "imap_listen: cannot parse " + quote_value(imap_listen);
    return false;
  }
  if (!imaps_listen.empty() && !parse_listen_address(imaps_listen, &imaps_address)) {
    *error = "imaps_listen: cannot parse " + quote_value(imaps_listen);
    return false;
  }
  if (tls_min_version != "1.2" && tls_min_version != "1.3") {
    *error = "tls_min_version: expected \"1.2\" or \"1.3\", got " + quote_value(tls_min_version);
    return false;
  }
  if (tls_cert.empty() != tls_key.empty()) {
    *error = "tls_cert and tls_key: give both (or neither, for a self-signed certificate)";
    return false;
  }
  return true;
}

}  // namespace ringmail
