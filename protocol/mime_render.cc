#include "protocol/mime_render.h"

#include <strings.h>

#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

// Renders into nothing (kWrite false: only counts) or into memory sized by the counting pass.
template <bool kWrite>
class Writer {
 public:
  Writer(const MimeInfo& info, ImapRevision rev, char* dst) : info_(info), rev_(rev), dst_(dst) {}

  size_t size() const { return n_; }

  void envelope(uint32_t e) {
    const MimeEnvelope& env = info_.envelopes[e];
    ch('(');
    nstring(env.date);
    ch(' ');
    nstring(env.subject);
    for (MimeList list : {env.from, env.sender, env.reply_to, env.to, env.cc, env.bcc}) {
      ch(' ');
      addresses(list);
    }
    ch(' ');
    nstring(env.in_reply_to);
    ch(' ');
    nstring(env.message_id);
    ch(')');
  }

  void part(uint32_t i, bool extended) {
    const MimePart& p = info_.parts[i];
    ch('(');
    if (p.kind == MimeKind::multipart) {
      // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]: no space between bodies.
      uint32_t child = i + 1;
      for (uint32_t c = 0; c < p.child_count; c++) {
        part(child, extended);
        child += info_.parts[child].subtree_parts;
      }
      ch(' ');
      nstring(p.subtype);
      if (extended) {
        ch(' ');
        params(p.params);
        extension_tail(p);
      }
    } else {
      MimeKind kind = p.kind;
      if (kind == MimeKind::message && rev_ == ImapRevision::rev1 &&
          !iequals(info_.str(p.subtype), "rfc822"))
        kind = MimeKind::basic;
      nstring(p.type);
      ch(' ');
      nstring(p.subtype);
      ch(' ');
      params(p.params);
      ch(' ');
      nstring(p.id);
      ch(' ');
      nstring(p.description);
      ch(' ');
      nstring(p.encoding);
      ch(' ');
      number(p.body_length);
      if (kind == MimeKind::message) {
        ch(' ');
        envelope(p.envelope);
        ch(' ');
        part(i + 1, extended);
      }
      if (kind == MimeKind::text || kind == MimeKind::message) {
        ch(' ');
        number(p.body_lines);
      }
      if (extended) {
        ch(' ');
        nstring(p.md5);
        extension_tail(p);
      }
    }
    ch(')');
  }

 private:
  static bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
  }

  // body-fld-dsp SP body-fld-lang SP body-fld-loc
  void extension_tail(const MimePart& p) {
    ch(' ');
    if (p.disposition.is_nil()) {
      raw("NIL");
    } else {
      ch('(');
      nstring(p.disposition);
      ch(' ');
      params(p.disposition_params);
      ch(')');
    }
    ch(' ');
    if (p.language.count == 0) {
      raw("NIL");
    } else {
      ch('(');
      for (uint32_t k = 0; k < p.language.count; k++) {
        if (k > 0) ch(' ');
        nstring(info_.params[p.language.first + k].value);
      }
      ch(')');
    }
    ch(' ');
    nstring(p.location);
  }

  // body-fld-param: NIL when there are none ("()" is not in the grammar).
  void params(MimeList list) {
    if (list.count == 0) {
      raw("NIL");
      return;
    }
    ch('(');
    for (uint32_t k = 0; k < list.count; k++) {
      const MimeParam& prm = info_.params[list.first + k];
      if (k > 0) ch(' ');
      nstring(prm.name);
      ch(' ');
      nstring(prm.value);
    }
    ch(')');
  }

  void addresses(MimeList list) {
    if (list.count == 0) {
      raw("NIL");
      return;
    }
    ch('(');
    for (uint32_t k = 0; k < list.count; k++) {
      const MimeAddress& a = info_.addresses[list.first + k];
      ch('(');
      nstring(a.name);
      ch(' ');
      nstring(a.adl);
      ch(' ');
      nstring(a.mailbox);
      ch(' ');
      nstring(a.host);
      ch(')');
    }
    ch(')');
  }

  void nstring(MimeString s) {
    if (s.is_nil()) {
      raw("NIL");
      return;
    }
    std::string_view v = info_.str(s);
    size_t escapes = 0;
    bool literal = false;
    for (unsigned char c : v) {
      if (c == 0 || c >= 0x80 || c == '\r' || c == '\n') {
        literal = true;
        break;
      }
      escapes += c == '"' || c == '\\';
    }
    if (literal) {
      ch('{');
      number(v.size());
      raw("}\r\n");
      raw(v);
      return;
    }
    if (!kWrite) {
      n_ += v.size() + escapes + 2;
      return;
    }
    ch('"');
    if (escapes == 0) {
      raw(v);
    } else {
      for (char c : v) {
        if (c == '"' || c == '\\') ch('\\');
        ch(c);
      }
    }
    ch('"');
  }

  void number(uint64_t v) {
    char buf[20];
    size_t len = 0;
    do {
      buf[len++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    if constexpr (kWrite)
      for (size_t k = 0; k < len; k++) dst_[n_ + k] = buf[len - 1 - k];
    n_ += len;
  }

  void raw(std::string_view s) {
    if constexpr (kWrite) memcpy(dst_ + n_, s.data(), s.size());
    n_ += s.size();
  }
  void ch(char c) {
    if constexpr (kWrite) dst_[n_] = c;
    n_++;
  }

  const MimeInfo& info_;
  ImapRevision rev_;
  char* dst_;
  size_t n_ = 0;
};

// Measures, grows *out once, writes.
template <typename F>
void append_rendered(const MimeInfo& info, ImapRevision rev, std::string* out, F&& render) {
  Writer<false> counter(info, rev, nullptr);
  render(counter);
  size_t start = out->size();
  out->resize(start + counter.size());
  Writer<true> writer(info, rev, out->data() + start);
  render(writer);
  RM_ASSERT(writer.size() == counter.size());
}

}  // namespace

void append_envelope(const MimeInfo& info, std::string* out) {
  RM_ASSERT(!info.envelopes.empty());
  append_rendered(info, ImapRevision::rev2, out, [](auto& w) { w.envelope(0); });
}

void append_body(const MimeInfo& info, ImapRevision rev, std::string* out) {
  RM_ASSERT(!info.parts.empty());
  append_rendered(info, rev, out, [](auto& w) { w.part(0, false); });
}

void append_bodystructure(const MimeInfo& info, ImapRevision rev, std::string* out) {
  RM_ASSERT(!info.parts.empty());
  append_rendered(info, rev, out, [](auto& w) { w.part(0, true); });
}

std::string render_envelope(const MimeInfo& info) {
  std::string s;
  append_envelope(info, &s);
  return s;
}

std::string render_body(const MimeInfo& info, ImapRevision rev) {
  std::string s;
  append_body(info, rev, &s);
  return s;
}

std::string render_bodystructure(const MimeInfo& info, ImapRevision rev) {
  std::string s;
  append_bodystructure(info, rev, &s);
  return s;
}

}  // namespace ringmail
