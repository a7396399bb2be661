"""A seeded corpus of MIME messages whose searchable text is known, random SEARCH queries over it,
and a model that answers them (for test_fts_differential.py).

Every message is generated together with the decoded text of each part of it, so the model does
not decode the raw message: it knows. What SEARCH reads (protocol/imap_search.h):

  - HEADER name s, FROM, TO, CC, BCC, SUBJECT: each field of that name in the message's own
    header, separately: the value after the colon (its leading space included) unfolded (CR and LF
    removed), RFC 2047 encoded words decoded, white space between two encoded words dropped.
  - BODY s: the decoded text/* parts (each followed by a NUL: no match across parts) and the
    headers of attached messages ("name: value" LF per field).
  - TEXT s: BODY, the message header ("name: value" LF per field) and the MIME headers of the
    parts, each of the three read on its own.
  - Both sides case-folded: simple folding, one code point to one ("SS" never matches "ß").

Msg.matches() implements exactly that over the known text; fold() is the folding of the header
comment for the characters the corpus uses (finish() checks that no other character appears).
Charsets are converted by the server with glibc iconv beyond UTF-8 and Latin-1: the Shift_JIS text
avoids the octets where glibc and Python's codec differ (0x5C, 0x7E alone).
"""

import base64
import random
import re

CRLF = "\r\n"

# ---- Case folding ---------------------------------------------------------------------------


def fold_char(c):
    o = ord(c)
    if o < 0x80:
        return c.lower()
    if o < 0x100:
        if 0xC0 <= o <= 0xDE and o != 0xD7:
            return chr(o + 0x20)
        return "\u03bc" if o == 0xB5 else c  # micro sign -> Greek mu; "ß" stays
    if c == "\u1e9e":  # capital sharp s
        return "\u00df"
    if c == "\u03c2":  # final sigma
        return "\u03c3"
    if 0x100 <= o < 0x180 or 0x370 <= o < 0x530 or 0xFF21 <= o <= 0xFF3A:
        lower = c.lower()
        return lower if len(lower) == 1 else c
    return c


def fold(s):
    return "".join(fold_char(c) for c in s)


def trusted_char(c):
    """Characters whose fold (and that of their one-character upper and lower case) fold() gets
    right: the corpus uses no other."""
    o = ord(c)
    if o < 0x80:
        return o >= 0x20 or c in "\r\n\t\0"
    if 0xA0 <= o < 0x100:
        return o != 0xB5
    if 0x100 <= o < 0x180:
        return o not in (0x130, 0x131, 0x138, 0x149, 0x17F)
    if 0x386 <= o <= 0x3CE:
        return o not in (0x390, 0x3B0)
    if 0x400 <= o < 0x460:
        return True
    if 0x3000 <= o < 0x3100 or 0x4E00 <= o < 0xA000 or 0xFF01 <= o <= 0xFF5E:
        return True
    return c in "\u1e9e\u2014\u201e\u201c\u20ac"


# ---- Vocabulary -----------------------------------------------------------------------------

EN = ("alpha bravo budget quarterly report meeting schedule invoice delivery project release "
      "server index search segment merge review lunch coffee agenda minutes deadline contract "
      "customer support ticket window garden river mountain yellow purple orange violet silver "
      "golden winter summer autumn spring harbor lantern marble pepper rocket saddle timber "
      "velvet walnut zephyr quartz jigsaw kayak nylon oxygen puzzle quiver rhythm sphinx tundra "
      "vortex whisky xenon yacht zigzag Monday Friday London Berlin Paris Tokyo Athens").split()
DE = ("Grüße Straße Müller Übermut Ärger Öffnung schön weiß Fußball Käse Brötchen Bäckerei "
      "Häuser Größe Maß grün Tür Schlüssel Mädchen Köln München Düsseldorf Zürich Äpfel Glück "
      "Bücher Frühstück Gemüse Hörsaal Löwe Mühle Nüsse Rührei Säule Tschüss ÜBERGRÖSSE ÄRMEL "
      "café élève où déjà Noël garçon français hôtel crème naïve façade señor año niño "
      "Ångström Øresund Þór").split()
GR = ("Αθήνα καλημέρα λόγος Σωκράτης θάλασσα ήλιος ΟΔΟΣ νερό ευχαριστώ Ελλάδα φίλος ΑΓΑΠΗ "
      "Ψάρι ωκεανός ζωή ΧΡΟΝΟΣ δρόμος").split()
RU = ("Москва привет ЁЛКА ёжик Спасибо документ отчёт бюджет встреча письмо Россия ПРОЕКТ "
      "поиск индекс щука Юрий Эхо Ящик подъезд Новосибирск").split()
JA = ("日本語 こんにちは カタカナ 東京 会議 ありがとう 報告書 予算 検索 索引 メール 添付 資料 "
      "お知らせ 株式会社 よろしく 確認 電話").split()
FULLWIDTH = ["ＦＵＬＬ", "ｗｉｄｔｈ", "Ｒｉｎｇ"]
PUNCT = [",", ".", ";", ":", "!", "?", " -", " (", ")", " 42", " 2024", " no.7", " 10%", " a/b"]

# Which languages text in a charset may hold, and the Python codec of each charset label.
LANGS = {"us-ascii": ("en",), "utf-8": ("en", "de", "gr", "ru", "ja", "fw"),
         "iso-8859-1": ("en", "de"), "koi8-r": ("en", "ru"), "shift_jis": ("en", "ja")}
WORDS = {"en": EN, "de": DE, "gr": GR, "ru": RU, "ja": JA, "fw": FULLWIDTH}
CODEC = {"us-ascii": "ascii", "utf-8": "utf-8", "iso-8859-1": "latin-1", "koi8-r": "koi8_r",
         "shift_jis": "shift_jis"}
# Spellings of each charset label in the messages (labels are case-insensitive).
LABELS = {"us-ascii": ["us-ascii", "US-ASCII"], "utf-8": ["utf-8", "UTF-8", "Utf-8"],
          "iso-8859-1": ["iso-8859-1", "ISO-8859-1"], "koi8-r": ["koi8-r", "KOI8-R"],
          "shift_jis": ["shift_jis", "Shift_JIS", "SHIFT_JIS"]}

PEOPLE = [  # (display name, charset it fits, address)
    ("Alice Example", "us-ascii", "alice@example.com"),
    ("Bob Smith", "us-ascii", "bob.smith@example.org"),
    ("Carol O'Neil", "us-ascii", "carol@example.net"),
    ("Doe, Jane", "us-ascii", "jane.doe@example.com"),
    ("Jürgen Müller", "iso-8859-1", "juergen.mueller@example.de"),
    ("Zoë Ångström", "iso-8859-1", "zoe@example.se"),
    ("Björn Öström", "iso-8859-1", "bjoern@example.se"),
    ("Иван Петров", "koi8-r", "ivan@example.ru"),
    ("Наталья Смирнова", "koi8-r", "natalya@example.ru"),
    ("Γιώργος Παπαδάκης", "utf-8", "giorgos@example.gr"),
    ("山田太郎", "shift_jis", "yamada@example.jp"),
    ("佐藤花子", "utf-8", "sato@example.jp"),
    ("MAX MUSTERMANN", "us-ascii", "max@EXAMPLE.DE"),
]


def words_for(rng, charset, n, langs=None):
    langs = langs or LANGS[charset]
    out = []
    for _ in range(n):
        w = rng.choice(WORDS[rng.choice(langs)])
        r = rng.random()
        if r < 0.15:
            w = "".join(c.upper() if len(c.upper()) == 1 else c for c in w)
        elif r < 0.3:
            w = w.lower()
        out.append(w)
    return out


def sentence(rng, charset, n, langs=None):
    ws = words_for(rng, charset, n, langs)
    s = ""
    for i, w in enumerate(ws):
        s += ("" if i == 0 else " ") + w
        if rng.random() < 0.12:
            s += rng.choice(PUNCT)
    return s


def paragraph(rng, charset, lines, langs=None, width=70):
    """Lines of words, joined with CRLF (hard line breaks)."""
    out = []
    for _ in range(lines):
        line = sentence(rng, charset, rng.randint(3, 12), langs)
        out.append(line[:width].rstrip() or "x")
    return CRLF.join(out)


# ---- Header values --------------------------------------------------------------------------

def q_encode(b):
    out = []
    for byte in b:
        c = chr(byte)
        if c.isascii() and (c.isalnum() or c in "!*+-/"):
            out.append(c)
        elif c == " ":
            out.append("_")
        else:
            out.append("=%02X" % byte)
    return "".join(out)


class HV:
    """A header field value as tokens (kind, raw, decoded): ("text", s, s); ("ws", raw, the raw
    white space without CR and LF); ("ew", encoded word, decoded). Between two encoded words the
    white space decodes to nothing. Remembers, as sites, where the raw form splits a word."""

    def __init__(self):
        self.toks = []
        # (index of an encoded word that continues a string, the offset of that split in the
        # decoded string)
        self.site_marks = []

    def text(self, s):
        assert "=?" not in s and "\r" not in s and "\n" not in s
        if s:
            self.toks.append(("text", s, s))
        return self

    def ws(self, raw=" "):
        unfolded = raw.replace("\r", "").replace("\n", "")
        assert unfolded and set(unfolded) <= {" ", "\t"}
        self.toks.append(("ws", raw, unfolded))
        return self

    def ew(self, rng, s, charset, splits=0, mid_char=True, encs="BQ", seps=None):
        """`s` as encoded words in `charset`: split into splits+1 words at random octet offsets
        (mid_char: possibly inside a character), each B or Q, separated by white space (folded
        or not) or nothing. Records the splits as sites."""
        b = s.encode(CODEC[charset])
        if mid_char:
            cuts = sorted(set(rng.randint(1, len(b) - 1) for _ in range(splits))) if len(b) > 1 \
                else []
        else:
            bounds = [len(s[:i].encode(CODEC[charset])) for i in range(1, len(s))]
            cuts = sorted(set(rng.choice(bounds) for _ in range(splits))) if bounds else []
        pieces = [b[i:j] for i, j in zip([0] + cuts, cuts + [len(b)])]
        for k, piece in enumerate(pieces):
            if k > 0:
                sep = rng.choice(seps or ["", " ", "  ", "\r\n ", "\r\n\t", "\t"])
                if sep:
                    self.ws(sep)
                # The site: the decoded offset of this split inside s.
                self.site_marks.append((len(self.toks), len(b[:cuts[k - 1]].decode(
                    CODEC[charset], "ignore"))))
            label = rng.choice(LABELS[charset])
            enc = rng.choice(encs)
            data = base64.b64encode(piece).decode() if enc == "B" else q_encode(piece)
            enc = enc if rng.random() < 0.8 else enc.lower()
            # The whole decoded string goes with the first word; the rest decode to "" (the
            # model only needs the concatenation, which is s).
            self.toks.append(("ew", "=?%s?%s?%s?=" % (label, enc, data), s if k == 0 else ""))
        return self

    def render(self, first_line_len=0, fold_at=72):
        """(raw, decoded, sites): decoded is the value as SEARCH reads it (without the name);
        sites are decoded offsets of raw-side splits."""
        raw, dec = "", ""
        line = first_line_len
        ew_positions = {}
        n = len(self.toks)
        for i, tok in enumerate(self.toks):
            kind, r, d = tok
            if kind == "ws":
                # White space between two encoded words disappears.
                j = i
                while j < n and self.toks[j][0] == "ws":
                    j += 1
                k = i
                while k > 0 and self.toks[k - 1][0] == "ws":
                    k -= 1
                between = k > 0 and self.toks[k - 1][0] == "ew" and j < n and \
                    self.toks[j][0] == "ew"
                if r == " " and line > fold_at:
                    r = "\r\n "  # fold a long line at this space
                if "\n" in r:
                    line = len(r) - r.rindex("\n") - 1
                else:
                    line += len(r)
                raw += r
                if not between:
                    dec += d
                continue
            if kind == "ew" and d:
                ew_positions[i] = len(dec)
            raw += r
            line += len(r)
            dec += d
        sites = []
        for tok_index, offset in self.site_marks:
            # The ew that started the string: the closest ew at or before tok_index with text.
            start = max(p for p in ew_positions if p <= tok_index)
            sites.append(ew_positions[start] + offset)
        return raw, dec, sites


def plain(s):
    return HV().text(s)


# ---- Bodies ---------------------------------------------------------------------------------

def qp_encode(b, rng, soft_prob=0.02, forced=(), width=74):
    """Quoted-printable of octets `b` (CRLF in b is a hard line break). Soft line breaks at random
    places (and before the octet offsets in `forced`), also inside words and between the octets
    of one character; sometimes with transport padding. Returns (raw str, soft break offsets)."""
    forced = set(forced)
    out, breaks = [], []
    lines = b.split(b"\r\n")
    pos = 0
    for line in lines:
        cur = ""
        for i, byte in enumerate(line):
            last = i == len(line) - 1
            if (33 <= byte <= 126 and byte != 61 and rng.random() > 0.02) or \
                    (byte == 32 and not last):
                tok = chr(byte)
            else:
                tok = "=%02X" % byte
            if cur and (pos + i in forced or len(cur) + len(tok) > width or
                        rng.random() < soft_prob):
                out.append(cur + "=" + rng.choice(["", "", "", " ", "\t"]))
                breaks.append(pos + i)
                cur = ""
            cur += tok
        out.append(cur)
        pos += len(line) + 2
    return CRLF.join(out), breaks


def b64_encode(b):
    s = base64.b64encode(b).decode()
    lines = [s[i:i + 76] for i in range(0, len(s), 76)]
    return CRLF.join(lines), [57 * k for k in range(1, len(lines))]


class Entity:
    """A MIME entity: headers [(name, HV)], then the body (kind text, other, multipart, message).
    For text: `text` is the decoded body, `sites` decoded offsets where the raw form splits."""

    def __init__(self, kind):
        self.kind = kind
        self.headers = []
        self.body = ""  # raw body (str of octets 0-255 as latin-1 where 8bit) for text/other
        self.text = ""
        self.sites = []
        self.children = []
        self.inner = None
        self.boundary = None
        self.preamble = ""

    def add(self, name, hv):
        self.headers.append((name, hv if isinstance(hv, HV) else plain(hv)))
        return self


BREAKING_TAGS = {"p", "br", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
                 "ul", "ol", "table", "hr", "pre", "blockquote", "dt", "dd", "title"}
REFERENCES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": " "}


def html_to_text(html):
    """What SEARCH reads of a text/html body (storage/search_text.h): tags and comments gone (a
    line feed for those that break a line), script and style contents dropped, the character
    references &amp; &lt; &gt; &quot; &apos; &nbsp; &#N; &#xH; decoded."""
    out, i, n = [], 0, len(html)
    while i < n:
        c = html[i]
        if c == "<":
            nxt = html[i + 1] if i + 1 < n else " "
            if not (nxt.isascii() and (nxt.isalpha() or nxt in "/!")):
                out.append("<")
                i += 1
                continue
            if html.startswith("<!--", i):
                end = html.find("-->", i + 4)
                i = n if end < 0 else end + 3
                continue
            close = html.find(">", i + 1)
            if close < 0:
                out.append(html[i:])
                break
            closing = html[i + 1] == "/"
            k = i + 2 if closing else i + 1
            j = k
            while j < close and html[j].isascii() and html[j].isalnum():
                j += 1
            name = html[k:j].lower()
            selfclosing = html[close - 1] == "/"
            i = close + 1
            if name in BREAKING_TAGS:
                out.append("\n")
            if not closing and not selfclosing and name in ("script", "style"):
                end = html.lower().find("</" + name, i)
                gt = html.find(">", end) if end >= 0 else -1
                i = n if gt < 0 else gt + 1
            continue
        if c == "&":
            semi = html.find(";", i + 1)
            if 0 <= semi and semi - i <= 10:
                ref = html[i + 1:semi]
                ch = REFERENCES.get(ref)
                if ch is None and len(ref) >= 2 and ref[0] == "#":
                    digits = ref[2:] if ref[1] in "xX" else ref[1:]
                    base = 16 if ref[1] in "xX" else 10
                    try:
                        v = int(digits, base) if digits and digits.isalnum() else -1
                    except ValueError:
                        v = -1
                    if 0 < v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF:
                        ch = chr(v)
                if ch is not None:
                    out.append(ch)
                    i = semi + 1
                    continue
            out.append("&")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def text_entity(rng, text, charset, cte, subtype="plain", quote_label=None, forced=(),
                trailing_crlf=False):
    """A text/<subtype> part holding `text` in `charset` with transfer encoding `cte`
    ("" for none); forced: octet offsets of the encoded text where a QP soft break must go."""
    e = Entity("text")
    label = rng.choice(LABELS[charset])
    if quote_label is None:
        quote_label = rng.random() < 0.4
    ct = "text/%s; charset=%s" % (subtype, '"%s"' % label if quote_label else label)
    if rng.random() < 0.2:
        ct = ct.replace("text/", "TEXT/" if rng.random() < 0.5 else "Text/")
    e.add(rng.choice(["Content-Type", "Content-type", "content-type"]), ct)
    b = text.encode(CODEC[charset])
    codec = CODEC[charset]
    if cte == "quoted-printable":
        raw, breaks = qp_encode(b, rng, forced=forced)
        if trailing_crlf:
            raw += CRLF
            text += CRLF
    elif cte == "base64":
        raw, breaks = b64_encode(b)
        if trailing_crlf:
            raw += CRLF
    else:
        raw, breaks = b.decode("latin-1"), []
        if trailing_crlf:
            raw += CRLF
            text += CRLF
    if cte:
        e.add("Content-Transfer-Encoding",
              rng.choice([cte, cte.upper(), cte.title()]))
    e.body = raw
    e.text = html_to_text(text) if subtype == "html" else text
    e.sites = [len(b[:o].decode(codec, "ignore")) for o in breaks]
    return e


def other_entity(rng, ctype, data, filename_hv=None, b64=True):
    e = Entity("other")
    e.add("Content-Type", ctype)
    if b64:
        e.add("Content-Transfer-Encoding", "base64")
        e.body = b64_encode(data)[0]
    else:
        e.add("Content-Transfer-Encoding", "7bit")
        e.body = data.decode("ascii")
    if filename_hv is not None:
        hv = HV().text('attachment; filename="')
        hv.toks += filename_hv.toks
        hv.site_marks = [(i + 1, o) for i, o in filename_hv.site_marks]
        hv.text('"')
        e.add("Content-Disposition", hv)
    return e


def multipart(subtype, children, boundary, preamble=""):
    e = Entity("multipart")
    e.add("Content-Type", 'multipart/%s; boundary="%s"' % (subtype, boundary))
    e.children = children
    e.boundary = boundary
    e.preamble = preamble
    return e


def message_entity(inner):
    e = Entity("message")
    e.add("Content-Type", "message/rfc822")
    e.inner = inner
    return e


# ---- Messages and the model -----------------------------------------------------------------

class Msg:
    """One corpus message: raw bytes and the text SEARCH reads.

    fields:        [(name, decoded value)] of the message header
    part_headers:  [(name, decoded value)] of the MIME headers of the parts (TEXT only)
    body_text:     what BODY reads: each decoded text part followed by a NUL, and the "name:
                   value" LF lines of the header of each attached message, in MIME order
    sites:         [(scope, text, offset)]: a decoded text and an offset in it where the raw
                   message splits a word (QP soft line break, encoded-word or base64 line
                   boundary); scope ("field", name) for a field of the message header, "BODY" for
                   body text, "TEXT" for a MIME header line
    """

    def __init__(self, ident, name):
        self.ident = ident
        self.name = name
        self.raw = b""
        self.fields = []
        self.part_headers = []
        self.body_text = ""
        self.sites = []
        self.flags = set()
        self._folded = None

    def folded(self):
        if self._folded is None:
            header_text = "".join("%s: %s\n" % (n, v) for n, v in self.fields)
            part_text = "".join("%s: %s\n" % (n, v) for n, v in self.part_headers)
            self._folded = {
                "fields": [(n.lower(), fold(v)) for n, v in self.fields],
                "header_text": fold(header_text),
                "part_headers": fold(part_text),
                "body": fold(self.body_text),
            }
        return self._folded

    def field_values(self, name):
        return [v for n, v in self.fields if n.lower() == name.lower()]

    def matches(self, key, field, needle):
        """Whether SEARCH key [field] needle matches this message."""
        f = self.folded()
        n = fold(needle)
        if key == "BODY":
            return n in f["body"]
        if key == "TEXT":
            return n in f["header_text"] or n in f["part_headers"] or n in f["body"]
        name = field if key == "HEADER" else key
        return any(n in v for fn, v in f["fields"] if fn == name.lower())


class Builder:
    """Serializes an entity tree into a message, collecting what SEARCH reads of it."""

    def __init__(self, msg, rng):
        self.msg = msg
        self.rng = rng
        self.body_parts = []

    def header_lines(self, headers, sink, scope=None):
        """The raw header block of `headers` (octets as latin-1: raw UTF-8 is allowed); their
        decoded (name, value) go to `sink` (a list). Sites: scope ("field", name) for the message
        header; for the others (scope BODY for an attached message's header, TEXT for MIME
        headers) the site is in the "name: value" LF line that key reads."""
        out = ""
        for name, hv in headers:
            raw, dec, sites = hv.render(len(name) + 1)
            out += "%s:%s\r\n" % (name, raw.encode("utf-8").decode("latin-1"))
            sink.append((name, dec))
            for s in sites:
                if scope is None:
                    self.msg.sites.append((("field", name), dec, s))
                else:
                    self.msg.sites.append((scope, "%s: %s\n" % (name, dec), s + len(name) + 2))
        return out

    def entity(self, e, where):
        """Serializes e (raw str, octets as latin-1); where: 'root', 'part', 'attached'."""
        if where == "root":
            head = self.header_lines(e.headers, self.msg.fields)
        elif where == "attached":
            sink = []
            head = self.header_lines(e.headers, sink, "BODY")
            self.body_parts.append("".join("%s: %s\n" % nv for nv in sink))
        else:
            head = self.header_lines(e.headers, self.msg.part_headers, "TEXT")
        if e.kind == "text":
            self.body_parts.append(e.text + "\0")
            for s in e.sites:
                self.msg.sites.append(("BODY", e.text, s))
            return head + CRLF + e.body
        if e.kind == "other":
            return head + CRLF + e.body
        if e.kind == "message":
            return head + CRLF + self.entity(e.inner, "attached")
        body = e.preamble + (CRLF if e.preamble else "")
        for child in e.children:
            body += "--%s\r\n" % e.boundary
            body += self.entity(child, "part") + CRLF
        body += "--%s--" % e.boundary
        if where == "root":
            body += CRLF
        return head + CRLF + body


def finish(msg, rng, root):
    b = Builder(msg, rng)
    raw = b.entity(root, "root")
    msg.raw = raw.encode("latin-1")
    msg.body_text = "".join(b.body_parts)
    for text in [v for _, v in msg.fields] + [v for _, v in msg.part_headers] + [msg.body_text]:
        bad = [c for c in text if not trusted_char(c)]
        assert not bad, (msg.name, bad)
    return msg


# ---- Random messages ------------------------------------------------------------------------

def address_hv(rng, person, style=None):
    name, charset, addr = person
    hv = HV()
    style = style or rng.choice(["plain", "ew", "ew", "quoted", "bare", "split"])
    if charset == "us-ascii" and style in ("ew", "split") and rng.random() < 0.5:
        style = "quoted"
    if style == "bare":
        return hv.text(addr)
    if style == "quoted" and charset == "us-ascii":
        hv.text('"%s"' % name)
    elif style == "plain" and charset == "us-ascii" and "," not in name:
        hv.text(name)
    elif style == "split" and " " in name:
        # Each word of the name its own encoded word, some in another charset: the space
        # between them disappears in the decoded text unless written inside a word.
        first, last = name.split(" ", 1)
        hv.ew(rng, first + " ", charset, splits=rng.randint(0, 1), mid_char=False)
        hv.ws(" ")
        hv.ew(rng, last, "utf-8", splits=rng.randint(0, 2))
    else:
        cs = charset if rng.random() < 0.7 else "utf-8"
        hv.ew(rng, name, cs, splits=rng.randint(0, 2))
    return hv.ws(" ").text("<%s>" % addr)


def address_list(rng, people):
    hv = HV()
    for i, p in enumerate(people):
        if i:
            hv.text(",").ws(" ")
        one = address_hv(rng, p)
        hv.site_marks += [(len(hv.toks) + t, o) for t, o in one.site_marks]
        hv.toks += one.toks
    return hv


def subject_hv(rng, charset):
    hv = HV()
    n = rng.randint(2, 7)
    first = True
    for _ in range(n):
        if not first:
            sep = rng.choice([" ", " ", " ", "  ", ""])  # "": glued (decoded all the same)
            if sep:
                hv.ws(sep)
        first = False
        r = rng.random()
        if r < 0.45:
            hv.text(rng.choice(words_for(rng, "us-ascii", 1)))
        elif r < 0.55:
            # Raw UTF-8 in the header (RFC 6532).
            hv.text(rng.choice(words_for(rng, "utf-8", 1)))
        else:
            s = sentence(rng, charset, rng.randint(1, 3))
            hv.ew(rng, s, charset, splits=rng.randint(0, 3), mid_char=rng.random() < 0.6)
    return hv


def custom_hv(rng):
    hv = HV()
    r = rng.random()
    if r < 0.3:
        hv.text(sentence(rng, "us-ascii", rng.randint(1, 4)))
    elif r < 0.6:
        hv.text(sentence(rng, "utf-8", rng.randint(1, 4)))  # raw UTF-8
    else:
        cs = rng.choice(["utf-8", "iso-8859-1", "koi8-r", "shift_jis"])
        hv.text(rng.choice(EN) + " ")
        hv.ew(rng, sentence(rng, cs, rng.randint(1, 3)), cs, splits=rng.randint(0, 2))
    return hv


def random_text_part(rng, subtype="plain", charset=None, lines=None, trailing=False):
    charset = charset or rng.choice(["us-ascii", "utf-8", "utf-8", "iso-8859-1", "koi8-r",
                                     "shift_jis"])
    text = paragraph(rng, charset, lines or rng.randint(1, 8))
    if subtype == "html":
        text = "<html><body><p>" + text.replace(CRLF, "</p>\r\n<p>") + "</p></body></html>"
    if charset == "us-ascii":
        cte = rng.choice(["7bit", "", "quoted-printable", "base64"])
    else:
        cte = rng.choice(["8bit", "quoted-printable", "quoted-printable", "base64"])
    return text_entity(rng, text, charset, cte, subtype, trailing_crlf=trailing)


def random_binary(rng, n):
    b = bytes(rng.randrange(256) for _ in range(n))
    return b + " ".join(rng.choice(EN) for _ in range(4)).encode()


def random_attachment(rng, ident, k):
    r = rng.random()
    if r < 0.3:
        name = HV().ew(rng, rng.choice(DE + RU + JA) + ".pdf", "utf-8", splits=rng.randint(0, 1))
        return other_entity(rng, "application/pdf", random_binary(rng, rng.randint(60, 300)), name)
    if r < 0.5:
        return other_entity(rng, "image/png", random_binary(rng, rng.randint(60, 200)),
                            HV().text("img%d.png" % k))
    if r < 0.65:
        # Words in a non-text part: SEARCH does not read them.
        data = " ".join(rng.choice(EN) for _ in range(12)).encode()
        return other_entity(rng, "application/octet-stream", data, HV().text("data.bin"), False)
    if r < 0.8:
        e = random_text_part(rng, "csv")
        e.add("Content-Disposition", 'attachment; filename="table%d.csv"' % k)
        return e
    return message_entity(random_inner_message(rng, ident, k))


def random_inner_message(rng, ident, k):
    charset = rng.choice(["utf-8", "iso-8859-1", "koi8-r", "shift_jis"])
    if rng.random() < 0.7:
        root = random_text_part(rng, charset=charset)
    else:
        root = multipart("alternative", [random_text_part(rng, charset=charset),
                                         random_text_part(rng, "html", charset=charset)],
                         "=_inner_%d_%d" % (ident, k))
    headers = [("From", address_hv(rng, rng.choice(PEOPLE))),
               ("To", address_list(rng, rng.sample(PEOPLE, rng.randint(1, 2)))),
               ("Subject", subject_hv(rng, charset)),
               ("Date", plain(" Tue, 5 Mar 2024 09:%02d:00 +0100" % rng.randrange(60))),
               ("MIME-Version", plain(" 1.0"))]
    root.headers = headers + root.headers
    return root


def with_space(hv):
    """A field value starts after the colon: a space first, as usual."""
    out = HV().ws(" ")
    out.site_marks = [(i + 1, o) for i, o in hv.site_marks]
    out.toks += hv.toks
    return out


def random_message(rng, ident):
    msg = Msg(ident, "random-%d" % ident)
    charset = rng.choice(["utf-8", "utf-8", "iso-8859-1", "koi8-r", "shift_jis", "us-ascii"])
    shape = rng.choice(["plain", "plain", "alternative", "mixed", "mixed", "nested"])
    if shape == "plain":
        root = random_text_part(rng, charset=charset, trailing=rng.random() < 0.5)
    elif shape == "alternative":
        root = multipart("alternative", [random_text_part(rng, charset=charset),
                                         random_text_part(rng, "html", charset=charset)],
                         "=_alt_%d" % ident, "This is a multi-part message in MIME format.")
    else:
        first = random_text_part(rng, charset=charset)
        if shape == "nested":
            first = multipart("alternative", [first, random_text_part(rng, "html")],
                              "=_nest_%d" % ident)
        children = [first] + [random_attachment(rng, ident, k)
                              for k in range(rng.randint(1, 3))]
        root = multipart("mixed", children, "=_mix_%d" % ident,
                         "This is a multi-part message in MIME format." if rng.random() < 0.5
                         else "")
    headers = [("From", with_space(address_hv(rng, rng.choice(PEOPLE))))]
    headers.append((rng.choice(["To", "to", "TO"]),
                    with_space(address_list(rng, rng.sample(PEOPLE, rng.randint(1, 3))))))
    if rng.random() < 0.4:
        headers.append((rng.choice(["Cc", "CC", "cc"]),
                        with_space(address_list(rng, rng.sample(PEOPLE, rng.randint(1, 2))))))
    if rng.random() < 0.25:
        headers.append(("Bcc", with_space(address_list(rng, rng.sample(PEOPLE, 1)))))
    headers.append(("Subject", with_space(subject_hv(rng, charset))))
    headers.append(("Date", plain(" Mon, %d Jan 2024 10:%02d:00 +0000"
                                  % (1 + ident % 28, ident % 60))))
    headers.append(("Message-ID", plain(" <%d.fts@corpus.example>" % ident)))
    for _ in range(rng.choice([0, 1, 1, 2])):
        headers.append((rng.choice(["X-Custom", "x-custom", "X-CUSTOM"]), with_space(
            custom_hv(rng))))
    if rng.random() < 0.3:
        headers.append(("X-Other", with_space(custom_hv(rng))))  # not X-Custom
    headers.append(("MIME-Version", plain(" 1.0")))
    root.headers = headers + [(n, with_space(hv)) for n, hv in root.headers]
    fix_nested_headers(root)
    return finish(msg, rng, root)


def fix_nested_headers(e, top=True):
    """Gives the MIME header values below the root their leading space."""
    if not top:
        e.headers = [(n, hv if hv.toks and hv.toks[0][1][:1] in (" ", "\t") else
                      with_space(hv)) for n, hv in e.headers]
    for child in e.children:
        fix_nested_headers(child, False)
    if e.inner is not None:
        fix_nested_headers(e.inner, False)


# ---- Planted messages (hand-checked answers) --------------------------------------------------

def planted_messages(rng, start):
    """Messages with unique words, for the hand-checked answers. Returns [Msg]."""
    out = []

    def new(name, headers, root):
        msg = Msg(start + len(out), name)
        base = [("From", with_space(address_hv(rng, PEOPLE[0], "plain"))),
                ("To", with_space(address_hv(rng, PEOPLE[1], "plain"))),
                ("Date", plain(" Wed, 6 Mar 2024 12:00:00 +0000"))]
        root.headers = base + headers + [("MIME-Version", plain(" 1.0"))] + \
            [(n, with_space(hv)) for n, hv in root.headers]
        fix_nested_headers(root)
        out.append(finish(msg, rng, root))

    # A QP body with soft line breaks inside "Zwischenstopp" and inside the two octets of the
    # "ü" of "Kürbiskernöl".
    text = "Der Zwischenstopp in der Kürbiskernölmühle war schön." + CRLF + "Bis bald."
    b = text.encode("utf-8")
    forced = [b.index(b"stopp"), b.index("ü".encode()) + 1]
    new("qp-soft-breaks", [("Subject", plain(" Reisebericht"))],
        text_entity(rng, text, "utf-8", "quoted-printable", forced=forced, quote_label=False))

    # A subject whose word "Donaudampfschiffahrt" is two encoded words, and "Grüßgott" two B
    # words that split the octets of "ü".
    hv = HV().ws(" ").toks
    subj = HV()
    subj.toks = hv
    subj.toks.append(("ew", "=?UTF-8?Q?Donau?=", "Donau"))
    subj.ws("\r\n ")
    subj.toks.append(("ew", "=?utf-8?q?dampfschiffahrt?=", "dampfschiffahrt"))
    subj.ws(" ").text("und").ws(" ")
    g = "Grüßgott".encode()
    subj.toks.append(("ew", "=?utf-8?B?%s?=" % base64.b64encode(g[:3]).decode(), "Grüßgott"))
    subj.ws(" ")
    subj.toks.append(("ew", "=?UTF-8?b?%s?=" % base64.b64encode(g[3:]).decode(), ""))
    new("split-encoded-words", [("Subject", subj)],
        text_entity(rng, "Nothing special here.", "us-ascii", "7bit"))

    # Sharp s: "ß" folds to itself (not "ss"); capital sharp s folds to "ß".
    new("sharp-s-subject", [("Subject", with_space(HV().text("Adresse:").ws(" ").ew(
        rng, "Zollstraße 5", "iso-8859-1", encs="Q")))],
        text_entity(rng, "Siehe Betreff.", "us-ascii", "7bit"))
    new("ss-body", [("Subject", plain(" Adresse"))],
        text_entity(rng, "Wir wohnen in der ZOLLSTRASSE 7.", "us-ascii", ""))
    new("capital-sharp-s-custom", [("Subject", plain(" Adresse")),
                                   ("X-Custom", plain(" ZOLLSTRAẞE 9"))],
        text_entity(rng, "Siehe X-Custom.", "us-ascii", "7bit"))

    # A Shift_JIS QP body with a soft break between the two octets of "鰻"; a "#" in X-Custom.
    text = "今日の昼食は鰻でした。" + CRLF + "ありがとう"
    b = text.encode("shift_jis")
    new("sjis-one-char", [("Subject", plain(" Lunch")), ("x-custom", plain(" ticket #7"))],
        text_entity(rng, text, "shift_jis", "quoted-printable",
                    forced=[b.index("鰻".encode("shift_jis")) + 1]))

    # Greek final sigma in a subject and in a base64 body.
    new("greek-subject", [("Subject", with_space(HV().ew(rng, "ΘΑΛΑΣΣΟΠΟΥΛΟΣ", "utf-8",
                                                         splits=1, encs="B")))],
        text_entity(rng, "Sea.", "us-ascii", "7bit"))
    new("greek-body", [("Subject", plain(" Greek"))],
        text_entity(rng, "Ο κύριος θαλασσοπουλος ήρθε.", "utf-8", "base64"))

    # An attached message: its header is BODY text of the outer message.
    inner = text_entity(rng, "Подвальное окно открыто.", "koi8-r", "base64")
    inner.headers = [("From", with_space(address_hv(rng, PEOPLE[7], "ew"))),
                     ("Subject", with_space(HV().ew(rng, "Innennachricht", "koi8-r",
                                                    splits=1))),
                     ("MIME-Version", plain(" 1.0"))] + inner.headers
    new("attached-message", [("Subject", plain(" Fwd: inner"))],
        multipart("mixed", [text_entity(rng, "See the attached message.", "us-ascii", "7bit"),
                            message_entity(inner)], "=_planted_att"))

    # A non-text attachment with a word in it (not read) and an encoded file name (TEXT reads
    # MIME headers).
    name = HV().text("").ew(rng, "Prüfbericht", "utf-8", encs="Q")
    name.text(".pdf")
    new("attachment-name", [("Subject", plain(" Report"))],
        multipart("mixed", [text_entity(rng, "Report attached.", "us-ascii", "7bit"),
                            other_entity(rng, "application/octet-stream",
                                         b"Anhangsgeheimnis 12345", name, b64=False)],
                  "=_planted_bin", "This is a multi-part message in MIME format."))

    # Cc with a KOI8-R display name, Bcc with a Latin-1 one.
    new("cc-bcc", [("Subject", plain(" Copies")),
                   ("Cc", with_space(HV().ew(rng, "Иванов Пётр", "koi8-r", splits=1, encs="B")
                                     .ws(" ").text("<petr@example.ru>"))),
                   ("Bcc", with_space(HV().ew(rng, "Schäferhund", "iso-8859-1", encs="Q")
                                      .ws(" ").text("<hund@example.de>")))],
        text_entity(rng, "Copies.", "us-ascii", "7bit"))
    return out


def hand_checks():
    """(key, field, needle, names of the planted messages expected): answers checked by hand."""
    return [
        ("BODY", None, "henstop", ["qp-soft-breaks"]),
        ("TEXT", None, "ZWISCHENSTOPP", ["qp-soft-breaks"]),
        ("BODY", None, "kürbiskernÖl", ["qp-soft-breaks"]),
        ("SUBJECT", None, "henstop", []),
        ("SUBJECT", None, "audampf", ["split-encoded-words"]),
        ("SUBJECT", None, "Donaudampfschiffahrt und", ["split-encoded-words"]),
        ("SUBJECT", None, "GRÜẞGOTT", ["split-encoded-words"]),
        ("SUBJECT", None, "grüssgott", []),
        ("TEXT", None, "zollstraße", ["sharp-s-subject", "capital-sharp-s-custom"]),
        ("TEXT", None, "ZOLLSTRAẞE", ["sharp-s-subject", "capital-sharp-s-custom"]),
        ("TEXT", None, "ZollStrasse", ["ss-body"]),
        ("BODY", None, "zollstrasse", ["ss-body"]),
        ("HEADER", "X-Custom", "zollstraße", ["capital-sharp-s-custom"]),
        ("SUBJECT", None, "zollstraße 5", ["sharp-s-subject"]),
        ("BODY", None, "鰻", ["sjis-one-char"]),
        ("TEXT", None, "は鰻で", ["sjis-one-char"]),
        ("HEADER", "X-Custom", "#", ["sjis-one-char"]),
        ("TEXT", None, "θαλασσοπουλοσ", ["greek-subject", "greek-body"]),
        ("SUBJECT", None, "Θαλασσοπουλος", ["greek-subject"]),
        ("BODY", None, "ΘΑΛΑΣΣΟΠΟΥΛΟΣ", ["greek-body"]),
        ("BODY", None, "innennachricht", ["attached-message"]),
        ("SUBJECT", None, "innennachricht", []),
        ("BODY", None, "ПОДВАЛЬНОЕ", ["attached-message"]),
        ("BODY", None, "anhangsgeheimnis", []),
        ("TEXT", None, "anhangsgeheimnis", []),
        ("TEXT", None, "prüfbericht.pdf", ["attachment-name"]),
        ("BODY", None, "prüfbericht", []),
        ("BODY", None, "multi-part message in MIME", []),
        ("CC", None, "пётр", ["cc-bcc"]),
        ("CC", None, "ИВАНОВ ПЁТР", ["cc-bcc"]),
        ("BCC", None, "SCHÄFERHUND", ["cc-bcc"]),
        ("TO", None, "schäferhund", []),
    ]


def build(seed, count=400):
    """[Msg]: count random messages and the planted ones (mixed in at seeded places)."""
    rng = random.Random(seed)
    msgs = [random_message(rng, i) for i in range(count)]
    planted = planted_messages(rng, count)
    for p in planted:
        msgs.insert(rng.randrange(len(msgs) + 1), p)
    for i, m in enumerate(msgs):
        m.ident = i
    return msgs


# ---- Queries --------------------------------------------------------------------------------
#
# A query is a tree: ("s", key, field, needle), ("f", flag-key), ("kw", KEYWORD|UNKEYWORD, name),
# ("seq", lo, hi), ("uid", lo, hi) with hi None for "*", ("not", q), ("or", a, b), ("and", [q]).

STRING_KEYS = ["BODY", "TEXT", "SUBJECT", "FROM", "TO", "CC", "BCC", ("HEADER", "X-Custom")]
FLAG_KEYS = ["SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "DELETED", "UNDELETED", "ANSWERED"]
BAD_NEEDLE_CHARS = set("\r\n\0\t")


def source_texts(msg, key, field):
    if key == "BODY":
        return [t for t in msg.body_text.split("\0") if t]
    if key == "TEXT":
        return ["".join("%s: %s\n" % nv for nv in msg.fields),
                "".join("%s: %s\n" % nv for nv in msg.part_headers)] + \
            [t for t in msg.body_text.split("\0") if t]
    return msg.field_values(field if key == "HEADER" else key)


def usable_sites(msg, key, field):
    """[(text, offset)]: the sites of msg in text that `key` reads."""
    out = []
    for scope, text, off in msg.sites:
        if isinstance(scope, tuple):
            name = scope[1]
            if key == "TEXT":
                out.append(("%s: %s\n" % (name, text), off + len(name) + 2))
            elif key != "BODY" and name.lower() == (field or key).lower():
                out.append((text, off))
        elif scope == "BODY" and key in ("BODY", "TEXT"):
            out.append((text, off))
        elif scope == "TEXT" and key == "TEXT":
            out.append((text, off))
    return out


def cross_fragment(rng, msg, key, field):
    """The end of one text and the start of the next where `key` reads them as separate texts
    (text parts; message header, MIME headers and body; two fields of one name; two header
    lines): a match needs the whole needle inside one of them."""
    body = [t for t in msg.body_text.split("\0") if t.strip()]
    if key == "BODY":
        texts = body
    elif key == "TEXT":
        header = "".join("%s: %s\n" % nv for nv in msg.fields)
        parts = "".join("%s: %s\n" % nv for nv in msg.part_headers)
        if rng.random() < 0.3:
            texts = header.split("\n")
        else:
            texts = [t for t in [header, parts] if t] + body
    else:
        texts = msg.field_values(field if key == "HEADER" else key)
    texts = [t.strip(" \r\n") for t in texts]
    texts = [t for t in texts if t]
    if len(texts) < 2:
        return None
    i = rng.randrange(len(texts) - 1)
    tail = texts[i][-rng.randint(2, 6):]
    head = texts[i + 1][:rng.randint(2, 6)]
    s = tail + ("" if rng.random() < 0.8 else " ") + head
    return None if set(s) & BAD_NEEDLE_CHARS else s


def change_case(rng, s):
    r = rng.random()
    if r < 0.4:
        return s

    def up(c):
        u = c.upper()
        return u if len(u) == 1 else c

    if r < 0.6:
        return "".join(up(c) for c in s)
    if r < 0.75:
        return s.lower()
    return "".join(up(c) if rng.random() < 0.5 else c.lower() for c in s)


def fragment(rng, text, length, around=None):
    """A substring of `text` of `length` characters (around: one that spans that offset), free
    of line ends, NULs and tabs; None if none was found."""
    for _ in range(30):
        if around is not None:
            lo = around - rng.randint(1, max(1, min(length - 1, around)))
            if lo < 0:
                return None
        else:
            if len(text) < length:
                return None
            lo = rng.randrange(len(text) - length + 1)
        s = text[lo:lo + length]
        if len(s) == length and not (set(s) & BAD_NEEDLE_CHARS) and s.strip():
            return s
    return None


def random_key(rng):
    k = rng.choice(STRING_KEYS + ["BODY", "TEXT", "SUBJECT"])
    return k if isinstance(k, tuple) else (k, None)


def random_string_query(rng, msgs, kind):
    for _ in range(200):
        key, field = random_key(rng)
        msg = rng.choice(msgs)
        texts = source_texts(msg, key, field)
        if kind == "cross":
            needle = cross_fragment(rng, msg, key, field)
        elif kind == "site":
            sites = usable_sites(msg, key, field)
            if not sites:
                continue
            text, off = rng.choice(sites)
            needle = fragment(rng, text, rng.choice([3, 4, 5, 6, 7, 8, 10, 12]), around=off)
        else:
            if not texts:
                continue
            text = rng.choice(texts)
            if kind == "word":
                words = [w for w in re.split(r"[\s,.;:!?()<>\"/\0]+", text) if len(w) >= 2]
                if not words:
                    continue
                needle = rng.choice(words)
            elif kind == "short":
                needle = fragment(rng, text, rng.choice([1, 2]))
            elif kind == "nonascii":
                if text.isascii():
                    continue
                needle = fragment(rng, text, rng.randint(1, 8))
                if needle is None or needle.isascii():
                    continue
            else:
                needle = fragment(rng, text, rng.randint(3, 14))
        if needle is None:
            continue
        return ("s", key, field, change_case(rng, needle))
    raise RuntimeError("no query found")


MISSES = ["qzxjv", "zzzzzz", "budgetx", "Москваа", "日本語語", "ΑΘΗΝΑΑ", "grüßegrüße", "xenonn",
          "@example.invalid", "segmentmerge"]


def random_query(rng, msgs):
    r = rng.random()
    if r < 0.05:
        key, field = random_key(rng)
        return ("s", key, field, change_case(rng, rng.choice(MISSES)))
    if r < 0.66:
        kind = rng.choices(["frag", "site", "word", "short", "nonascii", "cross"],
                           [30, 20, 15, 8, 15, 7])[0]
        return random_string_query(rng, msgs, kind)
    # Combinations.
    a = random_string_query(rng, msgs, rng.choice(["frag", "word", "site", "nonascii"]))
    b = random_string_query(rng, msgs, rng.choice(["frag", "word", "short"]))
    flag = rng.choice([("f", rng.choice(FLAG_KEYS)), ("kw", rng.choice(["KEYWORD", "UNKEYWORD"]),
                                                      rng.choice(["$Fts", "$fts", "$Never"]))])
    r = rng.random()
    if r < 0.2:
        return ("and", [a, b])
    if r < 0.4:
        return ("or", a, b)
    if r < 0.5:
        return ("not", a)
    if r < 0.65:
        return ("and", [flag, a])
    if r < 0.75:
        return ("or", flag, ("and", [a, b]))
    if r < 0.85:
        return ("and", [("not", flag), ("or", a, ("not", b))])
    if r < 0.92:
        return ("and", [("seq", rng.randint(1, 30), rng.choice([None, rng.randint(30, 60)])), a])
    return ("and", [("uid", rng.randint(1, 200), rng.choice([None, rng.randint(200, 500)])),
                    ("or", a, b)])


def make_queries(msgs, seed, count):
    """[(query tree, uid flag)]: seeded; about a quarter UID SEARCH."""
    rng = random.Random(seed * 7919 + 1)
    out = []
    # One empty-string query: HEADER X-Custom "" matches every message with that field.
    out.append((("s", "HEADER", "X-Custom", ""), False))
    out.append((("and", [("s", "HEADER", "x-custom", ""), ("s", "BODY", None, "e")]), True))
    while len(out) < count:
        out.append((random_query(rng, msgs), rng.random() < 0.25))
    return out


def needle_arg(needle):
    """An IMAP string for the needle: quoted when it can be, else a literal (bytes)."""
    if all(0x20 <= ord(c) < 0x7F for c in needle) and '"' not in needle and "\\" not in needle:
        return '"%s"' % needle
    return needle.encode("utf-8")


def render(q, top=True):
    """The search keys as a list of str pieces and bytes literals."""
    kind = q[0]
    if kind == "s":
        _, key, field, needle = q
        head = key + (" " + field if field else "") + " "
        return [head, needle_arg(needle)]
    if kind == "f":
        return [q[1]]
    if kind == "kw":
        return ["%s %s" % (q[1], q[2])]
    if kind == "seq":
        return ["%d:%s" % (q[1], "*" if q[2] is None else q[2])]
    if kind == "uid":
        return ["UID %d:%s" % (q[1], "*" if q[2] is None else q[2])]
    if kind == "not":
        return ["NOT "] + render(q[1], False)
    if kind == "or":
        return ["OR "] + render(q[1], False) + [" "] + render(q[2], False)
    pieces = []
    for i, sub in enumerate(q[1]):
        if i:
            pieces.append(" ")
        pieces += render(sub, False)
    return pieces if top else ["("] + pieces + [")"]


def describe(q, uid):
    """A readable form of the command."""
    out = "UID SEARCH " if uid else "SEARCH "
    for p in render(q):
        out += p if isinstance(p, str) else "{%s}" % p.decode("utf-8")
    return out


def non_ascii(q):
    return any(isinstance(p, bytes) and not p.isascii() for p in render(q))


class Entry:
    def __init__(self, seq, uid, msg, flags):
        self.seq, self.uid, self.msg, self.flags = seq, uid, msg, flags


def evaluate(q, e, box_size, uid_max):
    kind = q[0]
    if kind == "s":
        return e.msg.matches(q[1], q[2], q[3])
    if kind == "f":
        name = q[1]
        neg = name.startswith("UN")
        flag = "\\" + (name[2:] if neg else name).capitalize()
        return (flag in e.flags) != neg
    if kind == "kw":
        has = any(f.lower() == q[2].lower() for f in e.flags)
        return has if q[1] == "KEYWORD" else not has
    if kind in ("seq", "uid"):
        v = e.seq if kind == "seq" else e.uid
        top = box_size if kind == "seq" else uid_max
        hi = top if q[2] is None else q[2]
        lo, hi = min(q[1], hi), max(q[1], hi)
        return lo <= v <= hi
    if kind == "not":
        return not evaluate(q[1], e, box_size, uid_max)
    if kind == "or":
        return evaluate(q[1], e, box_size, uid_max) or evaluate(q[2], e, box_size, uid_max)
    return all(evaluate(sub, e, box_size, uid_max) for sub in q[1])


def expected(q, uid, entries, uid_max):
    """The numbers SEARCH (uid False) or UID SEARCH answers, ascending."""
    hits = [e for e in entries if evaluate(q, e, len(entries), uid_max)]
    return sorted(e.uid if uid else e.seq for e in hits)
