#include "protocol/scram.h"

#include "core/crypto.h"

namespace ringmail {
namespace {

// "=2C" is ',' and "=3D" is '=' in a saslname; any other '=' is malformed.
bool decode_saslname(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); i++) {
    if (in[i] == ',') return false;
    if (in[i] != '=') {
      out->push_back(in[i]);
      continue;
    }
    if (in.substr(i, 3) == "=2C") {
      out->push_back(',');
    } else if (in.substr(i, 3) == "=3D") {
      out->push_back('=');
    } else {
      return false;
    }
    i += 2;
  }
  return !out->empty();
}

bool printable_nonce(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

// Splits "k=v,k=v,..." at the commas.
std::string_view next_attr(std::string_view* rest) {
  size_t comma = rest->find(',');
  std::string_view a = rest->substr(0, comma);
  *rest = comma == std::string_view::npos ? std::string_view() : rest->substr(comma + 1);
  return a;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

bool sasl_plain_parse(std::string_view msg, std::string_view* authz, std::string_view* authc,
                      std::string_view* password) {
  size_t a = msg.find('\0');
  size_t b = a == std::string_view::npos ? a : msg.find('\0', a + 1);
  if (b == std::string_view::npos) return false;
  *authz = msg.substr(0, a);
  *authc = msg.substr(a + 1, b - a - 1);
  *password = msg.substr(b + 1);
  return true;
}

bool ScramServer::client_first(std::string_view msg, std::string* error) {
  // gs2-header: gs2-cbind-flag "," [authzid] ","
  std::string_view rest = msg;
  std::string_view flag = next_attr(&rest);
  if (flag.substr(0, 1) == "p") {
    *error = "channel binding is not supported (no SCRAM-SHA-256-PLUS)";
    return false;
  }
  if (flag != "n" && flag != "y") {
    *error = "malformed gs2 header";
    return false;
  }
  std::string_view authz = next_attr(&rest);
  std::string authz_name;
  if (!authz.empty() &&
      (authz.substr(0, 2) != "a=" || !decode_saslname(authz.substr(2), &authz_name))) {
    *error = "malformed authzid";
    return false;
  }
  gs2_header_ = std::string(msg.substr(0, msg.size() - rest.size()));
  client_first_bare_ = std::string(rest);
  std::string_view n = next_attr(&rest);
  std::string_view r = next_attr(&rest);
  if (n.substr(0, 2) != "n=" || !decode_saslname(n.substr(2), &user_) || r.substr(0, 2) != "r=" ||
      !printable_nonce(r.substr(2))) {
    *error = "malformed client-first-message";
    return false;
  }
  if (rest.substr(0, 2) == "m=") {
    *error = "mandatory extension not supported";
    return false;
  }
  user_ = lowercase(user_);
  if (!authz_name.empty() && lowercase(authz_name) != user_) {
    *error = "authorization as another user is not allowed";
    return false;
  }
  client_nonce_ = std::string(r.substr(2));
  return true;
}

std::string ScramServer::server_first(const UserRecord& rec, std::string_view server_nonce) {
  rec_ = rec;
  have_record_ = true;
  nonce_ = client_nonce_ + std::string(server_nonce);
  server_first_ =
      "r=" + nonce_ + ",s=" + base64_encode(rec.salt) + ",i=" + std::to_string(rec.iterations);
  return server_first_;
}

ScramServer::Result ScramServer::client_final(std::string_view msg, std::string* server_final,
                                              std::string* error) {
  if (!have_record_) {
    *error = "client-final before server-first";
    return Result::malformed;
  }
  size_t proof_at = msg.rfind(",p=");
  if (proof_at == std::string_view::npos) {
    *error = "malformed client-final-message";
    return Result::malformed;
  }
  std::string_view without_proof = msg.substr(0, proof_at);
  std::string_view rest = without_proof;
  std::string_view c = next_attr(&rest);
  std::string_view r = next_attr(&rest);
  std::string cbind, proof;
  if (c.substr(0, 2) != "c=" || !base64_decode(c.substr(2), &cbind) || r.substr(0, 2) != "r=" ||
      !base64_decode(msg.substr(proof_at + 3), &proof)) {
    *error = "malformed client-final-message";
    return Result::malformed;
  }
  if (cbind != gs2_header_ || r.substr(2) != nonce_) {
    *error = "channel binding or nonce do not match";
    return Result::malformed;
  }
  if (proof.size() != 32) return Result::failed;
  std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  Sha256Digest client_signature = hmac_sha256(as_view(rec_.stored_key), auth_message);
  std::string client_key(32, '\0');
  for (size_t i = 0; i < 32; i++)
    client_key[i] = static_cast<char>(static_cast<uint8_t>(proof[i]) ^ client_signature[i]);
  Sha256Digest stored = sha256(client_key);
  if (!constant_time_equal(as_view(stored), as_view(rec_.stored_key))) return Result::failed;
  Sha256Digest server_signature = hmac_sha256(as_view(rec_.server_key), auth_message);
  *server_final = "v=" + base64_encode(as_view(server_signature));
  return Result::ok;
}

UserRecord ScramServer::decoy_record(std::string_view user) {
  UserRecord rec;
  rec.name = std::string(user);
  rec.iterations = UserStore::kDefaultIterations;
  Sha256Digest salt = hmac_sha256(process_secret(), std::string("salt:") + std::string(user));
  rec.salt.assign(reinterpret_cast<const char*>(salt.data()), 16);
  random_bytes(rec.stored_key.data(), rec.stored_key.size());  // matches nothing
  random_bytes(rec.server_key.data(), rec.server_key.size());
  return rec;
}

}  // namespace ringmail
