#include "storage/mime_cache.h"

#include <strings.h>
#include <xxhash.h>

#include <cstring>
#include <vector>

#include "core/assert.h"
#include "storage/encoding.h"

namespace ringmail {
namespace {

constexpr char kMagic[4] = {'R', 'M', 'I', 'M'};
constexpr size_t kChecksumBytes = sizeof(uint64_t);
constexpr size_t kFixedBytes = sizeof kMagic + 1 + kChecksumBytes;
constexpr int kVarintBytesMax = 5;  // a uint32_t

// Strings most parts repeat, stored as one byte each. Part of format version 1: the list may
// only grow, and only at its end (entries are matched exactly, case included).
constexpr std::string_view kDictionary[] = {
    // 0 to 7
    "", "text", "plain", "html", "charset", "us-ascii", "utf-8", "UTF-8",
    // 8 to 15
    "iso-8859-1", "7bit", "8bit", "base64", "quoted-printable", "multipart", "mixed", "alternative",
    // 16 to 23
    "related", "message", "rfc822", "application", "octet-stream", "pdf", "image", "jpeg",
    // 24 to 31
    "png", "boundary", "name", "filename", "attachment", "inline", "format", "flowed",
    // 32 to 39
    "MISSING_MAILBOX", "MISSING_DOMAIN", "7BIT", "8BIT", "BASE64", "QUOTED-PRINTABLE", "Base64",
    "delsp",
    // 40 to 47
    "yes", "signed", "protocol", "micalg", "report", "report-type", "calendar", "method"};
constexpr uint32_t kDictionarySize = sizeof kDictionary / sizeof kDictionary[0];
static_assert(2 * kDictionarySize + 1 < 0x80, "a dictionary reference must fit one byte");

constexpr size_t longest_entry() {
  size_t n = 0;
  for (std::string_view e : kDictionary) n = e.size() > n ? e.size() : n;
  return n;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// ---- encoding

class Encoder {
 public:
  Encoder(const MimeInfo& info, std::string* out) : info_(info), out_(out) {}

  void varint(uint32_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }

  // 0: NIL; odd 2i+1: kDictionary[i]; even 2(n+1): n bytes follow.
  void string(MimeString s) {
    if (s.is_nil()) {
      varint(0);
      return;
    }
    std::string_view v = info_.str(s);
    for (uint32_t i = 0; i < kDictionarySize; i++) {
      if (kDictionary[i] == v) {
        varint(2 * i + 1);
        return;
      }
    }
    RM_ASSERT(v.size() < (1u << 30));
    varint(2 * (static_cast<uint32_t>(v.size()) + 1));
    out_->append(v);
  }

  void params(MimeList list) {
    varint(list.count);
    for (uint32_t k = 0; k < list.count; k++) {
      string(info_.params[list.first + k].name);
      string(info_.params[list.first + k].value);
    }
  }

  void envelope(const MimeEnvelope& e) {
    string(e.date);
    string(e.subject);
    for (MimeList list : {e.from, e.sender, e.reply_to, e.to, e.cc, e.bcc}) {
      varint(list.count);
      for (uint32_t k = 0; k < list.count; k++) {
        const MimeAddress& a = info_.addresses[list.first + k];
        string(a.name);
        string(a.adl);
        string(a.mailbox);
        string(a.host);
      }
    }
    string(e.in_reply_to);
    string(e.message_id);
  }

  void part(const MimePart& p) {
    out_->push_back(static_cast<char>(p.kind));
    varint(p.header_offset);
    varint(p.header_length);
    varint(p.body_length);
    varint(p.body_lines);
    if (p.kind == MimeKind::multipart) varint(p.child_count);
    string(p.type);
    string(p.subtype);
    params(p.params);
    string(p.id);
    string(p.description);
    string(p.encoding);
    string(p.md5);
    string(p.disposition);
    if (!p.disposition.is_nil()) params(p.disposition_params);
    varint(p.language.count);
    for (uint32_t k = 0; k < p.language.count; k++)
      string(info_.params[p.language.first + k].value);
    string(p.location);
    // The encapsulated message's envelope travels with its part, so envelopes are in pre-order.
    if (p.kind == MimeKind::message) envelope(info_.envelopes[p.envelope]);
  }

 private:
  const MimeInfo& info_;
  std::string* out_;
};

// ---- decoding

class Decoder {
 public:
  Decoder(std::string_view body, uint32_t message_bytes, MimeInfo* out)
      : p_(body.data()), e_(body.data() + body.size()), message_bytes_(message_bytes), out_(out) {}

  Status run() {
    uint32_t size = 0;
    uint32_t part_count = 0;
    if (!varint(&size) || size != message_bytes_) return fail("message size does not match");
    if (!varint(&part_count) || part_count == 0 || part_count > MimeParser::kPartsMax)
      return fail("bad part count");
    out_->message_bytes = size;
    out_->text.reserve(static_cast<size_t>(e_ - p_));
    out_->parts.reserve(part_count);
    if (!envelope()) return fail(error_);
    for (uint32_t i = 0; i < part_count; i++)
      if (!part(i)) return fail(error_);
    if (!stack_.empty()) return fail("tree ends early");
    if (p_ != e_) return fail("trailing bytes");
    return Status::ok();
  }

 private:
  struct Frame {
    uint32_t part;
    uint32_t children_left;
    uint32_t next_offset;  // a child starts at or after the previous one's end
  };

  static Status fail(const std::string& what) {
    return Status::corrupt("MIME cache record: " + what);
  }
  bool bad(const char* what) {
    error_ = what;
    return false;
  }

  bool varint(uint32_t* v) {
    uint64_t x = 0;
    for (int i = 0; i < kVarintBytesMax; i++) {
      if (p_ >= e_) return bad("truncated");
      uint8_t b = static_cast<uint8_t>(*p_++);
      x |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        if (x > UINT32_MAX) return bad("number too large");
        *v = static_cast<uint32_t>(x);
        return true;
      }
    }
    return bad("number too long");
  }

  // A count of entries that each take at least `entry_bytes_min` bytes of what is left: bounds
  // allocations by the record's size.
  bool count(uint32_t* n, size_t entry_bytes_min) {
    if (!varint(n)) return false;
    if (static_cast<uint64_t>(*n) * entry_bytes_min > static_cast<uint64_t>(e_ - p_))
      return bad("count past the end");
    return true;
  }

  bool string(MimeString* s) {
    uint32_t n = 0;
    if (!varint(&n)) return false;
    if (n == 0) {
      *s = MimeString{};
      return true;
    }
    // Every offset into MimeInfo::text must stay below MimeString::kNil.
    if (out_->text.size() + (n & 1 ? longest_entry() : n / 2) >= MimeString::kNil)
      return bad("too large");
    if (n & 1) {
      if (n / 2 >= kDictionarySize) return bad("unknown dictionary string");
      std::string_view v = kDictionary[n / 2];
      *s = MimeString{static_cast<uint32_t>(out_->text.size()), static_cast<uint32_t>(v.size())};
      out_->text.append(v);
      return true;
    }
    n = n / 2 - 1;
    if (n > static_cast<uint64_t>(e_ - p_)) return bad("string past the end");
    // IMAP strings cannot carry NUL; the parser never stores one.
    if (memchr(p_, 0, n) != nullptr) return bad("NUL in a string");
    *s = MimeString{static_cast<uint32_t>(out_->text.size()), n};
    out_->text.append(p_, n);
    p_ += n;
    return true;
  }

  bool params(MimeList* list) {
    uint32_t n = 0;
    if (!count(&n, 2)) return false;
    *list = MimeList{static_cast<uint32_t>(out_->params.size()), n};
    for (uint32_t k = 0; k < n; k++) {
      MimeParam prm;
      if (!string(&prm.name) || !string(&prm.value)) return false;
      if (prm.name.is_nil() || prm.value.is_nil()) return bad("NIL parameter");
      out_->params.push_back(prm);
    }
    return true;
  }

  bool envelope() {
    MimeEnvelope e;
    if (!string(&e.date) || !string(&e.subject)) return false;
    for (MimeList* list : {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc}) {
      uint32_t n = 0;
      if (!count(&n, 4)) return false;
      *list = MimeList{static_cast<uint32_t>(out_->addresses.size()), n};
      for (uint32_t k = 0; k < n; k++) {
        MimeAddress a;
        if (!string(&a.name) || !string(&a.adl) || !string(&a.mailbox) || !string(&a.host))
          return false;
        out_->addresses.push_back(a);
      }
    }
    if (!string(&e.in_reply_to) || !string(&e.message_id)) return false;
    out_->envelopes.push_back(e);
    return true;
  }

  // The kind decides the grammar the renderer writes; it must agree with the type.
  bool kind_matches(const MimePart& p) const {
    std::string_view type = out_->str(p.type);
    std::string_view subtype = out_->str(p.subtype);
    bool multipart = iequals(type, "multipart");
    bool message =
        iequals(type, "message") && (iequals(subtype, "rfc822") || iequals(subtype, "global"));
    bool text = iequals(type, "text");
    switch (p.kind) {
      case MimeKind::multipart: return multipart;
      case MimeKind::message: return message;
      case MimeKind::text: return text;
      case MimeKind::basic: return !multipart && !message && !text;
    }
    return false;
  }

  bool fields(MimePart* p) {
    uint32_t kind = 0;
    if (p_ >= e_) return bad("truncated");
    kind = static_cast<uint8_t>(*p_++);
    if (kind > static_cast<uint32_t>(MimeKind::multipart)) return bad("unknown part kind");
    p->kind = static_cast<MimeKind>(kind);
    if (!varint(&p->header_offset) || !varint(&p->header_length) || !varint(&p->body_length) ||
        !varint(&p->body_lines))
      return false;
    uint64_t end = static_cast<uint64_t>(p->header_offset) + p->header_length + p->body_length;
    if (end > message_bytes_) return bad("part past the end of the message");
    if (p->body_lines > p->body_length) return bad("more lines than octets");
    p->child_count = p->kind == MimeKind::message ? 1 : 0;
    if (p->kind == MimeKind::multipart && (!count(&p->child_count, 1) || p->child_count == 0))
      return bad("multipart without parts");
    if (!string(&p->type) || !string(&p->subtype) || !params(&p->params) || !string(&p->id) ||
        !string(&p->description) || !string(&p->encoding) || !string(&p->md5) ||
        !string(&p->disposition))
      return false;
    if (p->type.is_nil() || p->subtype.is_nil() || p->encoding.is_nil())
      return bad("NIL type or encoding");
    if (!kind_matches(*p)) return bad("kind does not match the type");
    if (!p->disposition.is_nil() && !params(&p->disposition_params)) return false;
    uint32_t n = 0;
    if (!count(&n, 1)) return false;
    p->language = MimeList{static_cast<uint32_t>(out_->params.size()), n};
    for (uint32_t k = 0; k < n; k++) {
      MimeParam prm;
      if (!string(&prm.value)) return false;
      if (prm.value.is_nil()) return bad("NIL language");
      out_->params.push_back(prm);
    }
    return string(&p->location);
  }

  // Invariant checked: every part lies within its parent's body, after its previous sibling; an
  // encapsulated message's root starts where its part's body starts; the whole message is the
  // root; nesting stays within MimeParser::kDepthMax.
  bool part(uint32_t i) {
    MimePart p;
    if (!fields(&p)) return false;
    if (i == 0) {
      if (p.header_offset != 0 || p.end_offset() != message_bytes_)
        return bad("root does not cover the message");
    } else {
      if (stack_.empty()) return bad("part outside the tree");
      Frame& f = stack_.back();
      const MimePart& parent = out_->parts[f.part];
      if (p.header_offset < f.next_offset || p.header_offset < parent.body_offset() ||
          p.end_offset() > parent.end_offset())
        return bad("part outside its parent");
      if (parent.kind == MimeKind::message && p.header_offset != parent.body_offset())
        return bad("message root not at its part's body");
      f.next_offset = p.end_offset();
      f.children_left--;
    }
    if (stack_.size() >= MimeParser::kDepthMax) return bad("nested too deep");
    if (p.kind == MimeKind::message) {
      p.envelope = static_cast<uint32_t>(out_->envelopes.size());
      if (!envelope()) return false;
    }
    out_->parts.push_back(p);
    if (p.child_count > 0) {
      stack_.push_back(Frame{i, p.child_count, p.body_offset()});
      return true;
    }
    while (!stack_.empty() && stack_.back().children_left == 0) {
      uint32_t done = stack_.back().part;
      out_->parts[done].subtree_parts = static_cast<uint32_t>(out_->parts.size()) - done;
      stack_.pop_back();
    }
    return true;
  }

  const char* p_;
  const char* e_;
  uint32_t message_bytes_;
  MimeInfo* out_;
  std::vector<Frame> stack_;
  const char* error_ = "";
};

}  // namespace

void encode_mime_cache(const MimeInfo& info, std::string* out) {
  RM_ASSERT(!info.parts.empty() && !info.envelopes.empty());
  size_t start = out->size();
  out->append(kMagic, sizeof kMagic);
  out->push_back(static_cast<char>(kMimeCacheVersion));
  Encoder enc(info, out);
  enc.varint(info.message_bytes);
  enc.varint(static_cast<uint32_t>(info.parts.size()));
  enc.envelope(info.envelopes[0]);
  for (const MimePart& p : info.parts) enc.part(p);
  put<uint64_t>(out, XXH3_64bits(out->data() + start, out->size() - start));
}

Status decode_mime_cache(std::string_view record, uint32_t message_bytes, MimeInfo* out) {
  out->clear();
  if (record.size() < kFixedBytes) return Status::corrupt("MIME cache record: too short");
  if (record.size() >= MimeString::kNil) return Status::corrupt("MIME cache record: too large");
  size_t body_bytes = record.size() - kChecksumBytes;
  if (XXH3_64bits(record.data(), body_bytes) != load<uint64_t>(record.data() + body_bytes))
    return Status::corrupt("MIME cache record: checksum mismatch");
  if (memcmp(record.data(), kMagic, sizeof kMagic) != 0)
    return Status::corrupt("MIME cache record: bad magic");
  if (static_cast<uint8_t>(record[sizeof kMagic]) != kMimeCacheVersion)
    return Status::corrupt("MIME cache record: unknown version " +
                           std::to_string(static_cast<uint8_t>(record[sizeof kMagic])));
  size_t header_bytes = sizeof kMagic + 1;
  return Decoder(record.substr(header_bytes, body_bytes - header_bytes), message_bytes, out).run();
}

}  // namespace ringmail
