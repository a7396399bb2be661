#!/usr/bin/env python3
"""A deterministic, realistic mail corpus for SEARCH benchmarks (Python standard library only).

Every byte depends only on the seed and the message's position: the first N messages of a
100,000-message corpus are the N messages of an N-message corpus with the same seed.

What is in it:
  - English-like text drawn from a built-in vocabulary with a Zipf-Mandelbrot distribution:
    about 800 real English words at the head, then a long tail of synthetic, pronounceable words
    (250,000 in all), so there are very common words ("the", "meeting") and words found in a
    handful of messages. Plus message-specific tokens (ticket and invoice numbers, hostnames, URLs).
  - German, French, Russian and Japanese messages (about 9% of the corpus), in utf-8,
    iso-8859-1, koi8-r, iso-2022-jp and shift_jis.
  - A long-tailed size distribution: median about 3.5 KB, a few percent above 20 KB, some
    100 KB+ text (logs, reports, newsletters), attachments up to about 1.3 MB.
  - MIME: text/plain; multipart/alternative (text + html); multipart/mixed with base64
    application/pdf-like binary, image/jpeg-like binary, text/plain and text/csv attachments (base64
    or quoted-printable) and forwarded message/rfc822 parts; bodies in 7bit, 8bit,
    quoted-printable (with soft line breaks, often splitting words) and base64.
  - RFC 2047 encoded words (B and Q; utf-8, iso-8859-1, koi8-r, iso-2022-jp) in Subject and
    display names, sometimes splitting one word over two encoded words.
  - Threads: Message-ID, In-Reply-To, References, "Re:"/"AW:"/"Fwd:" subjects, quoted parents.
  - Realistic headers: Return-Path, Received chains, DKIM-Signature, Authentication-Results,
    List-Id/List-Unsubscribe, X-Mailer/User-Agent, Date in many zones and styles.

Module use:
    import corpus
    c = corpus.Corpus(seed=1)
    for data, when in c.messages(2000):      # (bytes with CRLF line ends, aware datetime)
        ...
    c.meta[i]                                 # what message i is made of (kind, charsets, ...)
    c.query_words("rare", 20)                 # query strings by frequency band, see query_words
    corpus.imap_date(when)                    # "07-Jan-2019 10:00:00 +0100" for APPEND

CLI:
    python3 bench/corpus.py --messages 2000 --seed 1 --out /tmp/mail.mbox   # mboxrd
    python3 bench/corpus.py --messages 2000 --seed 1 --out /tmp/maildir/    # one .eml per message
    python3 bench/corpus.py --messages 2000 --stats                          # size distribution
    python3 bench/corpus.py --messages 2000 --show 17                        # message 17, raw
    python3 bench/corpus.py --messages 2000 --queries 5                      # sample query words
"""

import argparse
import base64
import binascii
import datetime
import itertools
import math
import os
import random
import sys

VERSION = 1  # bump when the output for a given seed changes

# ---- Vocabularies ----------------------------------------------------------------------------

# Roughly in order of frequency in business and personal mail.
ENGLISH = """
the to and of a in for is on that you this with i be it we are have will as at not from your
or by can if all an our please was but would me so do has they there about more any just what
one which my also out up new time should their these us been could when other get like need
some know see them let thanks now than only into week its how may make here were use who his had
meeting team project work today email would back next well very over first people think same
information still good many those well because after call day his report update two even send
both most after last help free through where much being then before must around while want
review before each find since change number under plan following look take between group data
service business available required going three start note attached days hope give system help
market current able however support including date issue below above already point great part
questions reply best regards hi dear thank sure morning afternoon agenda office client customer
account contract budget invoice payment order price cost sales product release version feature
test build server network access user users password login security policy document file files
folder link page site website online mail message messages list lists contact phone number
address street city state country company manager director president board member members staff
schedule calendar monday tuesday wednesday thursday friday weekend month year quarter january
february march april june july august september october november december morning evening night
tomorrow yesterday soon later early late hour hours minutes minute second seconds deadline
delivery shipping package tracking status pending approved rejected completed closed open
question answer problem solution request response feedback comment comments draft final copy
slides presentation spreadsheet numbers figures results analysis summary detail details notes
discussion decision action items follow conference room building floor desk lunch dinner coffee
travel flight hotel trip visit airport taxi train ticket booking reservation confirmation
receipt reference code error warning alert monitoring backup restore database query index table
record records field value values report reports dashboard metrics performance latency traffic
disk memory processor cluster node nodes deploy deployment rollback migration upgrade install
configuration settings option options default enable disable problem issue ticket bug fix patch
branch merge commit repository review reviewer approval pipeline staging production customer
customers partner partners vendor vendors supplier suppliers quote proposal offer discount
renewal subscription license support training course session workshop webinar event events
register registration speaker keynote invitation invite attend attending agenda minutes action
owner responsible team lead engineer engineering design designer marketing finance legal human
resources hiring candidate interview position role salary benefits holiday vacation leave sick
family children school home house garden weather rain sunny cold warm birthday party wedding
congratulations welcome goodbye sorry apologies delay delayed unfortunately fortunately
important urgent priority asap reminder final notice update updated updates change changes
changed new old small large big little long short high low full empty quick slow easy hard
simple complex clear possible impossible likely unlikely different similar certain specific
general special main major minor public private personal internal external local global
national international social digital mobile cloud platform application applications software
hardware device devices computer laptop screen keyboard printer camera video audio music photo
photos picture pictures image images share shared sharing upload download storage space limit
quota size sizes format formats version versions edit edited editing write written read reading
print printed scan scanned sign signed signature agreement terms conditions privacy statement
compliance audit risk risks control controls process processes procedure guideline guidelines
standard standards quality improvement improvements goal goals objective objectives target
targets strategy plan plans planning forecast estimate estimates growth revenue profit loss
expense expenses travel claim claims approval approve approved manager managers department
departments region regions office offices headquarters location locations remote hybrid onsite
working worked works done doing did does made making takes took taken given gave giving keep
kept keeping hold held holding bring brought bringing put putting set setting run running ran
move moving moved pay paid paying buy bought buying sell sold selling spend spent spending
continue continued continuing provide provided providing include included includes consider
considered considering expect expected expecting receive received receiving complete completing
prepare prepared preparing discuss discussed discussing explain explained explaining confirm
confirmed confirming schedule scheduled scheduling cancel cancelled canceled postpone postponed
arrange arranged organize organized coordinate coordinating manage managed managing handle
handled handling resolve resolved resolving investigate investigating check checked checking
verify verified test tested testing measure measured monitor monitored report reported reporting
again always never often sometimes usually already almost also really actually probably maybe
perhaps quite rather enough together without within against during toward towards across
behind beyond among along although though unless until whether either neither nor yet instead
otherwise therefore thus hence meanwhile furthermore moreover nevertheless regarding concerning
according based related attached enclosed forwarded mentioned discussed described listed shown
""".split()

# Word pieces for the synthetic tail (pronounceable, English-looking).
_ONSETS = ("b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p ph pl pr qu r s sc sh sk sl sm "
           "sn sp st str sw t th tr tw v w wh y z").split()
_NUCLEI = "a e i o u a e i o ai ea ee ie oa oo ou y".split()
_CODAS = ("", "", "", "b", "ck", "d", "ft", "g", "l", "ld", "lt", "m", "mp", "n", "nd", "ng", "nk",
          "nt", "p", "r", "rd", "rk", "rm", "rn", "rt", "s", "sh", "sk", "ss", "st", "t", "th", "x")
_SUFFIXES = ("", "", "", "", "", "", "ing", "ed", "er", "ers", "ly", "tion", "ment", "ness",
             "able", "ity", "ous", "ive", "al", "ism", "ist", "ship", "ward", "ful")

GERMAN = """
und die der das ist nicht mit für auf ich sie wir es ein eine zu den von im dem bitte danke
über können möchte würde Grüße freundlichen Besprechung Unterlagen Rechnung Änderung Prüfung
Bestätigung Größe schön Straße Mitarbeiter Zusammenfassung nächste Woche Termin morgen heute
gestern Projekt Angebot Vertrag Kunde Kunden Lieferung Bestellung Zahlung Frist dringend
wichtig Anhang beigefügt Rückmeldung Rückfrage Verfügung gerne natürlich leider außerdem
bezüglich Abstimmung Geschäftsführung Abteilung Büro Urlaub Feiertag Sitzung Protokoll Entwurf
Überarbeitung Ergebnis Ergebnisse Umsatz Planung Zeitplan Verzögerung Lösung Fehler Störung
Wartung Zugang Benutzer Kennwort Schlüssel Gebäude Raum Mittagessen Kollegen Kollegin müssen
dürfen sollen wären hätten gewünscht erhalten gesendet geprüft erledigt offen geschlossen
Grundstück Führung Überweisung Gebühren Steuer Prämie Förderung Genehmigung
""".split()

FRENCH = """
le la les de des du un une et est pour dans sur avec que qui pas ne vous nous je merci bonjour
cordialement réunion été déjà très être à où ça français reçu problème prochaine semaine
demain aujourd'hui hier projet contrat client facture commande paiement livraison délai
urgent important pièce jointe réponse retour disponible volontiers malheureusement également
concernant équipe bureau congés réunions compte rendu ébauche résultats chiffre d'affaires
planification calendrier retard solution erreur panne maintenance accès utilisateur mot passe
bâtiment salle déjeuner collègues devoir pouvoir vouloir reçue envoyé vérifié terminé ouvert
fermé élève début entrée sécurité qualité société générale détails précisions étape
""".split()

RUSSIAN = """
и в не на я что с по это мы вы он она они как для от за из у о к до но же бы только
привет здравствуйте спасибо пожалуйста встреча документы отчёт договор счёт оплата поставка
заказ клиент проект неделя завтра сегодня вчера срочно важно вложение ответ вопрос решение
ошибка доступ пользователь пароль офис отпуск совещание протокол черновик результаты
планирование график задержка обслуживание коллеги обед зал согласование руководство отдел
подтверждение изменение проверка размер улица сотрудник итоги следующая уважением
""".split()

JAPANESE = """
の を に は が と で です ます した します お世話になっております よろしくお願いします
会議 資料 確認 予定 送付 添付 ファイル 変更 担当 連絡 プロジェクト 報告書 東京 大阪
時間 場所 参加 検討 ご確認 ください について 本日 明日 昨日 来週 今週 お客様 契約
請求書 支払い 納品 注文 見積書 回答 質問 問題 対応 修正 障害 保守 利用者 承認 部署
休暇 議事録 下書き 結果 売上 計画 遅延 解決 同僚 昼食 会議室 打ち合わせ 以上
""".split()

FIRST_NAMES = """
James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony Betty Mark
Sandra Steven Ashley Paul Emily Andrew Donna Joshua Michelle Kevin Carol Brian Amanda George
Melissa Timothy Deborah Ryan Stephanie Jacob Rebecca Gary Laura Nicholas Sharon Eric Cynthia
Priya Wei Mohammed Fatima Carlos Sofia Lukas Anna Pierre Marie Olga Ivan Yuki Hiroshi Ahmed
""".split()
LAST_NAMES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Patel Chen Kumar
Schmidt Dubois Ivanov Tanaka Okafor Silva Rossi Jensen
""".split()
# Display names that need RFC 2047 (with the charset they are usually sent in).
INTL_NAMES = [
    ("Jürgen Müller", "iso-8859-1"), ("Jürgen Müller", "utf-8"), ("Björn Größmann", "utf-8"),
    ("Sören Weiß", "iso-8859-1"), ("François Lefèvre", "iso-8859-1"),
    ("Hélène Bézier", "utf-8"), ("Zoë Châtelet", "utf-8"), ("José Peña", "iso-8859-1"),
    ("Дмитрий Иванов", "koi8-r"), ("Ольга Смирнова", "utf-8"), ("Сергей Ёлкин", "koi8-r"),
    ("田中 太郎", "iso-2022-jp"), ("鈴木 花子", "utf-8"), ("佐藤 健", "iso-2022-jp"),
    ("Łukasz Wiśniewski", "utf-8"), ("Ana Sílvia Gonçalves", "utf-8"),
]
DOMAINS = """
example.com example.org example.net corp.example mail.example.com acme.example globex.example
initech.example umbrella.example hooli.example contoso.example fabrikam.example
northwind.example tailspin.example wingtip.example adventure-works.example example.de
beispiel.example exemple.fr example.co.jp primer.example.ru university.example.edu
""".split()
MAILERS = [
    "X-Mailer: Microsoft Outlook 16.0", "X-Mailer: Apple Mail (2.3731.700.6)",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0",
    "User-Agent: Mutt/2.2.9 (2022-11-12)", "X-Mailer: iPhone Mail (21C66)",
    "User-Agent: Roundcube Webmail/1.6.5", "X-Mailer: PHPMailer 6.8.1",
    "User-Agent: Evolution 3.46.4-2", "X-Google-Smtp-Source: AGHT+IF%s",
]
LISTS = ["dev", "announce", "users", "ops-alerts", "sales-team", "all-staff", "hr-news",
         "security", "builds", "design-review"]
TOPICS = [
    "quarterly report", "budget review", "project kickoff", "team meeting", "release plan",
    "invoice", "contract renewal", "customer feedback", "server maintenance", "security update",
    "travel booking", "interview schedule", "design review", "migration plan", "weekly status",
    "incident report", "training session", "office move", "holiday schedule", "product launch",
    "performance review", "database upgrade", "marketing campaign", "sales forecast",
    "support ticket", "conference registration", "board meeting", "onboarding", "lunch plans",
    "expense claim", "backup failure", "network outage", "price quote", "delivery delay",
]
SUBJECT_INTL = {
    "de": ["Besprechung nächste Woche", "Rechnung Nr. {n}", "Änderung am Zeitplan",
           "Grüße aus München", "Prüfung der Unterlagen", "Bestätigung Ihrer Bestellung",
           "Zusammenfassung der Sitzung", "Störung im Büro"],
    "fr": ["Réunion de la semaine prochaine", "Facture n° {n}", "Problème d'accès",
           "Compte rendu de réunion", "Été — congés", "Pièce jointe: résultats"],
    "ru": ["Встреча на следующей неделе", "Счёт № {n}", "Отчёт за квартал",
           "Вопрос по договору", "Изменение графика"],
    "ja": ["会議の予定について", "請求書の送付", "資料のご確認", "打ち合わせの件", "納品について"],
}
ZONES = [(0, "+0000", ""), (0, "+0000", " (UTC)"), (0, "GMT", ""), (60, "+0100", " (CET)"),
         (120, "+0200", " (CEST)"), (-300, "-0500", " (EST)"), (-240, "-0400", " (EDT)"),
         (-480, "-0800", " (PST)"), (-420, "-0700", " (PDT)"), (330, "+0530", ""),
         (540, "+0900", " (JST)"), (180, "+0300", " (MSK)"), (60, "+0100", ""),
         (-180, "-0300", ""), (600, "+1000", " (AEST)")]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()

EPOCH = datetime.datetime(2019, 1, 7, 8, 0, 0, tzinfo=datetime.timezone.utc)
GAP_SECONDS = 600  # mean time between messages (200,000 messages: about 3.8 years)


def _zipf_cum_weights(n, s, q=2.7, head=None, head_mass=0.8):
    """Cumulative Zipf-Mandelbrot weights. With `head`, the first `head` ranks get `head_mass` of
    the total (a Zipf law among themselves) and the tail the rest (its own Zipf law): real text
    is mostly its few hundred most common words, with a very long tail of rare ones."""
    if head is None:
        weights = [(r + 1 + q) ** -s for r in range(n)]
    else:
        hw = [(r + 1 + q) ** -s for r in range(head)]
        tw = [(r + 1 + q) ** -1.0 for r in range(n - head)]
        hs, ts = sum(hw), sum(tw)
        weights = [w * head_mass / hs for w in hw] + [w * (1 - head_mass) / ts for w in tw]
    return list(itertools.accumulate(weights))


def imap_date(dt):
    """An aware datetime as an IMAP date-time string: 07-Jan-2019 10:00:00 +0100."""
    off = dt.utcoffset() or datetime.timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return "%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        dt.day, MONTHS[dt.month - 1], dt.year, dt.hour, dt.minute, dt.second, sign,
        minutes // 60, minutes % 60)


def _rfc5322_date(dt, zone_name, comment, pad_day):
    day = ("%02d" if pad_day else "%d") % dt.day
    return "%s, %s %s %04d %02d:%02d:%02d %s%s" % (
        DAYS[dt.weekday()], day, MONTHS[dt.month - 1], dt.year, dt.hour, dt.minute, dt.second,
        zone_name, comment)


# ---- Encodings ---------------------------------------------------------------------------------

def _b64_lines(data):
    """base64 in 76-character CRLF lines (ending with CRLF)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _qp(data):
    """Quoted-printable of CRLF text: soft line breaks (=CRLF) at 76 columns."""
    out = binascii.b2a_qp(data)
    if b"\r\n" not in data[:200] and b"\n" in out and b"\r\n" not in out:
        out = out.replace(b"\n", b"\r\n")
    return out


_Q_SAFE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")


def _q_encode(b):
    out = []
    for c in b:
        if c in _Q_SAFE:
            out.append(chr(c))
        elif c == 0x20:
            out.append("_")
        else:
            out.append("=%02X" % c)
    return "".join(out)


def encoded_words(text, charset, rng, b_enc=None):
    """RFC 2047 encoded words for `text` (a header phrase), folded; long text is split into
    several words at character boundaries (sometimes inside a word, which decoders join)."""
    if b_enc is None:
        b_enc = charset.lower() in ("koi8-r", "iso-2022-jp", "shift_jis") or rng.random() < 0.5
    chunk = 12 if b_enc else 16
    words = []
    pos = 0
    while pos < len(text):
        n = rng.randint(chunk - 4, chunk + 4)
        piece = text[pos:pos + n]
        pos += n
        raw = piece.encode(charset)
        if b_enc:
            words.append("=?%s?B?%s?=" % (charset, base64.b64encode(raw).decode()))
        else:
            words.append("=?%s?Q?%s?=" % (charset, _q_encode(raw)))
    return "\r\n ".join(words) if len(words) > 2 else " ".join(words)


def _encodable(text, charset):
    try:
        text.encode(charset)
        return True
    except UnicodeEncodeError:
        return False


def _fold(name, value, width=76):
    """A header line folded at spaces (continuation lines start with a space)."""
    line = name + ": " + value
    if len(line) <= width or " " not in value:
        return line
    parts = line.split(" ")
    out = []
    cur = parts[0]
    for p in parts[1:]:
        if len(cur) + 1 + len(p) > width:
            out.append(cur)
            cur = " " + p
        else:
            cur += " " + p
    out.append(cur)
    return "\r\n".join(out)


# ---- The corpus --------------------------------------------------------------------------------

class Meta:
    """What message i was made of (for explaining a SEARCH mismatch)."""
    __slots__ = ("index", "msgid", "kind", "lang", "parts", "size")

    def __init__(self, index, msgid, kind, lang, parts, size):
        self.index = index
        self.msgid = msgid
        self.kind = kind          # plain, alternative, mixed, log, newsletter, forward
        self.lang = lang          # en, de, fr, ru, ja
        self.parts = parts        # [(content type, charset, transfer encoding)]
        self.size = size

    def __repr__(self):
        return "#%d %s %s %s %dB %s" % (self.index, self.kind, self.lang, self.msgid, self.size,
                                       " ".join("%s;%s;%s" % p for p in self.parts))


class Corpus:
    VOCAB_SIZE = 250000
    ZIPF_S = 1.0
    HEAD_MASS = 0.82  # share of the ~800 real English words in the running text

    def __init__(self, seed=1, keep_meta=True):
        self.seed = seed
        self.keep_meta = keep_meta
        self.meta = []
        vrng = random.Random("vocab-%d" % seed)
        words = []
        seen = set()
        for w in ENGLISH:
            if w not in seen:
                seen.add(w)
                words.append(w)
        self.real_words = len(words)
        while len(words) < self.VOCAB_SIZE:
            w = "".join(vrng.choice(_ONSETS) + vrng.choice(_NUCLEI) + vrng.choice(_CODAS)
                        for _ in range(vrng.choice((1, 2, 2, 2, 3))))
            if vrng.random() < 0.5:
                w += vrng.choice(_SUFFIXES)
            if 4 <= len(w) <= 16 and w not in seen:
                seen.add(w)
                words.append(w)
        self.vocab = words
        self.cum = _zipf_cum_weights(len(words), self.ZIPF_S, head=self.real_words,
                                     head_mass=self.HEAD_MASS)
        self.lang_vocab = {"de": GERMAN, "fr": FRENCH, "ru": RUSSIAN, "ja": JAPANESE}
        self.lang_cum = {k: _zipf_cum_weights(len(v), 1.0) for k, v in self.lang_vocab.items()}
        self.english_words = 0   # English body words generated so far (for the rare band)
        self.generated = 0
        self._blob = None

    # -- text --

    def _words(self, rng, n):
        return rng.choices(self.vocab, cum_weights=self.cum, k=n)

    def _paragraphs(self, rng, nwords, lang="en"):
        """A list of paragraphs, each a list of sentences (strings)."""
        if lang == "en":
            words = self._words(rng, nwords)
            self.english_words += nwords
        else:
            words = rng.choices(self.lang_vocab[lang], cum_weights=self.lang_cum[lang], k=nwords)
        paras = []
        pos = 0
        sep = "" if lang == "ja" else " "
        end = "。" if lang == "ja" else "."
        while pos < nwords:
            sentences = []
            for _ in range(rng.randint(1, 6)):
                if pos >= nwords:
                    break
                k = rng.randint(4, 22)
                s = words[pos:pos + k]
                pos += k
                if lang == "ja":
                    sentences.append(sep.join(s) + end)
                    continue
                if rng.random() < 0.12 and len(s) > 6:
                    s[len(s) // 2] += ","
                first = s[0]
                s[0] = first[:1].upper() + first[1:]
                punct = rng.random()
                sentences.append(" ".join(s) + ("?" if punct < 0.08 else
                                                "!" if punct < 0.1 else "."))
            paras.append(sentences)
        return paras

    @staticmethod
    def _wrap(paras, rng, width=72, flowed=False, lang="en"):
        """Plain text lines; flowed=False wraps at about `width`, True keeps one line per
        paragraph (which quoted-printable then breaks with soft line breaks)."""
        lines = []
        for sentences in paras:
            text = ("" if lang == "ja" else " ").join(sentences)
            if flowed:
                lines.append(text)
            elif lang == "ja":
                for i in range(0, len(text), 38):
                    lines.append(text[i:i + 38])
            else:
                cur = []
                n = 0
                for w in text.split(" "):
                    if n + len(w) > width and cur:
                        lines.append(" ".join(cur))
                        cur = []
                        n = 0
                    cur.append(w)
                    n += len(w) + 1
                if cur:
                    lines.append(" ".join(cur))
            lines.append("")
        return lines

    def _token(self, rng, i):
        """A message-specific string: ticket, invoice, tracking number, host, URL."""
        k = rng.randrange(6)
        if k == 0:
            return "INC%07d" % rng.randrange(10 ** 7)
        if k == 1:
            return "invoice #%d-%05d" % (2019 + i // 52560, rng.randrange(100000))
        if k == 2:
            return "tracking number 1Z%s" % "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
                                                    for _ in range(16))
        if k == 3:
            return "host db%02d-%s.%s" % (rng.randrange(64), rng.choice(("fra", "iad", "sfo", "nrt")),
                                          rng.choice(DOMAINS))
        if k == 4:
            return "https://%s/%s/%x" % (rng.choice(DOMAINS), rng.choice(("doc", "t", "share", "d")),
                                         rng.getrandbits(48))
        return "order %s-%d" % (rng.choice(("PO", "SO", "RMA")), rng.randrange(10 ** 6))

    def _body_words(self, rng):
        # Lognormal: median about 150 words (about 1 KB of text), a long tail.
        return max(8, min(20000, int(rng.lognormvariate(math.log(150), 0.85))))

    # -- addresses and headers --

    def _person(self, rng, intl_p=0.06):
        if rng.random() < intl_p:
            name, cs = rng.choice(INTL_NAMES)
            local = "user%d" % rng.randrange(1000)
            dom = rng.choice(DOMAINS)
            return name, cs, "%s@%s" % (local, dom)
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        style = rng.randrange(4)
        local = ("%s.%s" % (first, last) if style == 0 else "%s%s" % (first[0], last) if style == 1
                 else first if style == 2 else "%s_%s%d" % (first, last, rng.randrange(100)))
        return "%s %s" % (first, last), "us-ascii", "%s@%s" % (local.lower(), rng.choice(DOMAINS))

    def _addr_header(self, rng, person):
        name, cs, addr = person
        r = rng.random()
        if cs != "us-ascii":
            return "%s <%s>" % (encoded_words(name, cs, rng), addr)
        if r < 0.15:
            return addr
        if r < 0.3:
            return '"%s" <%s>' % (name, addr)
        if r < 0.35:
            return '"%s, %s" <%s>' % (name.split(" ")[-1], name.split(" ")[0], addr)
        return "%s <%s>" % (name, addr)

    def _msgid(self, rng, i, dom):
        k = rng.randrange(4)
        if k == 0:
            return "<CA%s+%s@mail.gmail.com>" % (
                base64.b64encode(rng.randbytes(24)).decode().replace("/", "_").replace("+", "-"),
                format(i, "x"))
        if k == 1:
            return "<%d.%d.%x@%s>" % (1546848000 + i * GAP_SECONDS, i, rng.getrandbits(40), dom)
        if k == 2:
            h = "%032x" % rng.getrandbits(128)
            return "<%s-%s-%s-%s-%s.%x@%s>" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:], i, dom)
        return "<%x$%x@%s>" % (rng.getrandbits(64), i, dom)

    def _received(self, rng, when, to_dom, hops):
        out = []
        t = when
        for h in range(hops):
            t = t + datetime.timedelta(seconds=rng.randint(0, 3))
            frm = "mx%d.%s" % (rng.randrange(10), rng.choice(DOMAINS))
            ip = "%d.%d.%d.%d" % (rng.randrange(1, 224), rng.randrange(256), rng.randrange(256),
                                  rng.randrange(1, 255))
            line = ("Received: from %s (%s [%s])\r\n\tby mail%d.%s (Postfix) with ESMTPS id %X\r\n"
                    "\tfor <user@%s>; %s" % (
                        frm, frm, ip, rng.randrange(20), to_dom, rng.getrandbits(40), to_dom,
                        _rfc5322_date(t, "+0000", " (UTC)", False)))
            out.append(line)
        return out[::-1]

    def _dkim(self, rng, dom):
        b = base64.b64encode(rng.randbytes(256)).decode()
        bh = base64.b64encode(rng.randbytes(32)).decode()
        folded = "\r\n\t ".join(b[i:i + 70] for i in range(0, len(b), 70))
        return ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s;\r\n"
                "\ts=selector%d; t=%d; h=from:to:subject:date:message-id:mime-version;\r\n"
                "\tbh=%s;\r\n\tb=%s" % (dom, rng.randrange(1, 3), 1546848000 + rng.randrange(10 ** 8),
                                        bh, folded))

    # -- MIME pieces --

    def _text_part(self, rng, text, charset, cte, ctype="text/plain", extra=""):
        """(header lines, body bytes, meta part) for one text part."""
        if not _encodable(text, charset):
            charset = "utf-8"
        raw = text.encode(charset)
        if cte == "7bit" and not raw.isascii() and charset != "iso-2022-jp":
            cte = "quoted-printable"
        if cte == "base64":
            body = _b64_lines(raw)
        elif cte == "quoted-printable":
            body = _qp(raw)
        else:
            body = raw
        hdr = ["Content-Type: %s; charset=%s%s" % (
            ctype, charset if rng.random() < 0.7 else '"%s"' % charset, extra),
               "Content-Transfer-Encoding: %s" % cte]
        return hdr, body, (ctype, charset, cte)

    def _html(self, paras, lang):
        out = ['<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
               '<style>p{margin:0 0 1em 0;font-family:Arial,sans-serif}</style></head><body>'
               '<div dir="ltr">']
        for sentences in paras:
            if not sentences:
                continue
            s = list(sentences)
            s[0] = "<b>" + s[0] + "</b>" if len(s) > 2 else s[0]
            out.append("<p>" + ("" if lang == "ja" else " ").join(s) + "</p>")
        out.append('<div class="signature">&nbsp;</div></div></body></html>')
        return "\r\n".join(out) + "\r\n"

    def _binary(self, rng, size, kind):
        if kind == "pdf":
            head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            tail = b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
        else:
            head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            tail = b"\xff\xd9"
        return head + rng.randbytes(max(0, size - len(head) - len(tail))) + tail

    def _attachment_size(self, rng):
        if rng.random() < 0.008:
            return rng.randint(800_000, 1_300_000)  # about 1 MB
        return max(1500, min(1_500_000, int(rng.lognormvariate(math.log(8000), 0.9))))

    def _log_text(self, rng, nbytes):
        lines = []
        n = 0
        t = rng.randrange(86400)
        levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
        comps = ("scheduler", "worker", "api", "db", "cache", "auth", "backup", "mailer")
        while n < nbytes:
            t += rng.randint(0, 5)
            w = self._words(rng, rng.randint(3, 9))
            self.english_words += len(w)
            line = "%02d:%02d:%02d %s [%s] %s id=%x" % (
                t // 3600 % 24, t // 60 % 60, t % 60, rng.choice(levels), rng.choice(comps),
                " ".join(w), rng.getrandbits(32))
            lines.append(line)
            n += len(line) + 2
        return "\r\n".join(lines) + "\r\n"

    # -- messages --

    def messages(self, n, start=0):
        """Yields (bytes, aware datetime internal date) for messages start .. n-1 (start > 0
        still generates the earlier ones, without yielding them)."""
        rng = random.Random("corpus-%d" % self.seed)
        recent = []  # (msgid, refs, subject, excerpt lines, person), the last 400
        for i in range(n):
            data, when, meta, entry = self._message(rng, i, recent)
            recent.append(entry)
            if len(recent) > 400:
                del recent[:100]
            self.generated = i + 1
            if self.keep_meta:
                self.meta.append(meta)
            if i >= start:
                yield data, when

    def _message(self, rng, i, recent, nested=False):
        sent = EPOCH + datetime.timedelta(seconds=i * GAP_SECONDS + rng.randint(0, GAP_SECONDS - 1))
        zone_min, zone_name, zone_comment = rng.choice(ZONES)
        tz = datetime.timezone(datetime.timedelta(minutes=zone_min))
        sent_local = sent.astimezone(tz)
        delivered = (sent + datetime.timedelta(seconds=rng.randint(1, 90))).astimezone(
            datetime.timezone(datetime.timedelta(minutes=rng.choice((0, 60, 120, -300)))))

        r = rng.random()
        lang = "en"
        if r < 0.03:
            lang = "de"
        elif r < 0.055:
            lang = "fr"
        elif r < 0.075:
            lang = "ru"
        elif r < 0.09:
            lang = "ja"

        sender = self._person(rng, 0.25 if lang != "en" else 0.04)
        rcpt = self._person(rng, 0.03)
        to_dom = rcpt[2].split("@")[1]
        from_dom = sender[2].split("@")[1]
        msgid = self._msgid(rng, i, from_dom)

        # Kind of message.
        k = rng.random()
        if nested:
            kind = "plain" if k < 0.6 else "alternative"
        elif k < 0.0015:
            kind = "log"          # 100 KB+ of text
        elif k < 0.0265:
            kind = "newsletter"   # html-heavy list mail
        elif k < 0.0345:
            kind = "forward"      # message/rfc822 attached
        elif k < 0.0845:
            kind = "mixed"        # text (+ html) + attachments
        elif k < 0.42:
            kind = "alternative"  # text + html
        else:
            kind = "plain"

        # Thread.
        reply = None
        if recent and kind in ("plain", "alternative", "mixed") and rng.random() < 0.38:
            reply = recent[-1 - min(len(recent) - 1, int(rng.expovariate(1 / 20)))]
        if reply is not None:
            p_msgid, p_refs, p_subject, p_excerpt, p_person = reply
            prefix = {"de": "AW: ", "fr": "RE: "}.get(lang, rng.choice(("Re: ", "Re: ", "RE: ")))
            subject = p_subject if p_subject.lower().startswith(("re:", "aw:")) else prefix + p_subject
            refs = (p_refs + [p_msgid])[-10:]
            if len(p_refs) >= 10:
                refs = [p_refs[0]] + refs[-9:]
            rcpt = p_person
        else:
            refs = []
            if lang != "en" and rng.random() < 0.8:
                subject = rng.choice(SUBJECT_INTL[lang]).format(n=rng.randrange(10000, 99999))
            else:
                subject = rng.choice(TOPICS)
                extra = rng.random()
                if extra < 0.4:
                    subject += " " + " ".join(self._words(rng, rng.randint(1, 4)))
                elif extra < 0.55:
                    subject += " - " + self._token(rng, i)
                subject = subject[0].upper() + subject[1:]
            if lang == "en" and rng.random() < 0.05:
                # Typography or an emoji: the whole subject goes out as encoded words.
                subject = rng.choice(("\U0001F389 ", "\u2705 ", "\u00bb ", "\u201c")) + subject
            if kind == "newsletter":
                subject = "[%s] %s" % (rng.choice(LISTS), subject)
            if kind == "forward":
                subject = "Fwd: " + subject

        # Body text.
        nwords = self._body_words(rng)
        paras = self._paragraphs(rng, nwords, lang)
        if lang != "en" and rng.random() < 0.3:
            paras += self._paragraphs(rng, rng.randint(10, 60), "en")
        if rng.random() < 0.3:
            paras.insert(rng.randrange(len(paras) + 1), ["Reference: %s." % self._token(rng, i)])
        greeting = {"de": "Hallo %s,", "fr": "Bonjour %s,", "ru": "Здравствуйте, %s!",
                    "ja": "%s様"}.get(lang, rng.choice(("Hi %s,", "Hello %s,", "Dear %s,", "%s,")))
        first_name = rcpt[0].split(" ")[0]
        flowed = rng.random() < 0.35
        lines = [greeting % first_name, ""] + self._wrap(paras, rng, flowed=flowed, lang=lang)
        sig = {"de": "Mit freundlichen Grüßen", "fr": "Cordialement", "ru": "С уважением",
               "ja": "よろしくお願いいたします。"}.get(lang, rng.choice(("Best regards,", "Thanks,",
                                                                "Cheers,", "Regards,")))
        lines += [sig, sender[0], "", "-- ", "%s | %s" % (sender[0], rng.choice(DOMAINS)),
                  "Phone: +%d %03d %04d" % (rng.randint(1, 99), rng.randrange(1000),
                                           rng.randrange(10000))]
        excerpt = [l for l in lines[2:12] if l]
        if reply is not None:
            lines += ["", "On %s, %s <%s> wrote:" % (
                _rfc5322_date(sent_local - datetime.timedelta(hours=rng.randint(1, 48)),
                              zone_name, "", False), p_person[0], p_person[2])]
            lines += ["> " + l if l else ">" for l in p_excerpt]
        text = "\r\n".join(lines) + "\r\n"

        # Charset and transfer encoding of the text.
        if lang == "en":
            charset = rng.choice(("us-ascii", "utf-8", "utf-8", "iso-8859-1"))
            if rng.random() < 0.1:
                text = text.replace(" - ", " \u2013 ").replace("'", "\u2019")
                charset = "utf-8"
            cte = rng.choice(("7bit", "7bit", "quoted-printable", "8bit")) if not flowed else \
                "quoted-printable"
            if charset != "us-ascii" and rng.random() < 0.12:
                cte = "base64"
        elif lang in ("de", "fr"):
            charset = rng.choice(("iso-8859-1", "utf-8"))
            cte = rng.choice(("quoted-printable", "quoted-printable", "8bit", "base64"))
        elif lang == "ru":
            charset = rng.choice(("koi8-r", "utf-8"))
            cte = rng.choice(("8bit", "base64", "quoted-printable"))
        else:
            charset = rng.choice(("iso-2022-jp", "iso-2022-jp", "shift_jis", "utf-8"))
            cte = "7bit" if charset == "iso-2022-jp" else "base64"

        # Headers.
        h = []
        h.append("Return-Path: <%s>" % sender[2])
        h.extend(self._received(rng, sent, to_dom, rng.randint(1, 4)))
        if rng.random() < 0.6:
            h.append(self._dkim(rng, from_dom))
            h.append("Authentication-Results: mail.%s;\r\n\tdkim=pass header.d=%s;\r\n"
                     "\tspf=pass smtp.mailfrom=%s" % (to_dom, from_dom, sender[2]))
        h.append("Message-ID: " + msgid)
        if refs:
            h.append("In-Reply-To: " + refs[-1])
            h.append(_fold("References", " ".join(refs)))
        h.append("Date: " + _rfc5322_date(sent_local, zone_name, zone_comment, rng.random() < 0.5))
        h.append("From: " + self._addr_header(rng, sender))
        to = [self._addr_header(rng, rcpt)]
        for _ in range(int(rng.expovariate(1.2))):
            to.append(self._addr_header(rng, self._person(rng)))
        h.append(_fold("To", ", ".join(to)))
        if rng.random() < 0.2:
            h.append(_fold("Cc", ", ".join(self._addr_header(rng, self._person(rng))
                                          for _ in range(rng.randint(1, 4)))))
        if any(ord(c) > 127 for c in subject):
            scs = {"de": "iso-8859-1", "fr": "iso-8859-1", "ru": "koi8-r",
                   "ja": "iso-2022-jp"}.get(lang, "utf-8")
            if rng.random() < 0.4 or not _encodable(subject, scs):
                scs = "utf-8"
            h.append("Subject: " + encoded_words(subject, scs, rng))
        else:
            h.append(_fold("Subject", subject))
        h.append(rng.choice(MAILERS).replace("%s", format(rng.getrandbits(60), "X")))
        if kind == "newsletter":
            lst = rng.choice(LISTS)
            h.append("List-Id: %s <%s.lists.%s>" % (lst.title(), lst, from_dom))
            h.append("List-Unsubscribe: <mailto:%s-unsubscribe@lists.%s>,\r\n <https://lists.%s/u/%x>"
                     % (lst, from_dom, from_dom, rng.getrandbits(48)))
            h.append("Precedence: bulk")
        if rng.random() < 0.1:
            h.append("X-Spam-Status: No, score=%.1f required=5.0" % (rng.random() * 4 - 1))
        h.append("MIME-Version: 1.0")

        parts_meta = []
        if kind == "log":
            body_text = self._log_text(rng, rng.randint(90_000, 300_000))
            text = text + "\r\n" + body_text
            ph, body, pm = self._text_part(rng, text, "us-ascii",
                                           rng.choice(("7bit", "quoted-printable")))
            h.extend(ph)
            parts_meta.append(pm)
        elif kind == "plain":
            ph, body, pm = self._text_part(rng, text, charset, cte,
                                           extra="; format=flowed" if flowed and rng.random() < 0.3
                                           else "")
            h.extend(ph)
            parts_meta.append(pm)
        else:
            boundary = "----=_Part_%d_%d.%d" % (rng.randrange(10 ** 6), i, rng.getrandbits(32))
            if kind == "newsletter":
                paras += self._paragraphs(rng, rng.randint(200, 1500), lang)
            html = self._html(paras, lang)
            html_cte = rng.choice(("quoted-printable", "quoted-printable", "base64")) \
                if lang == "en" else cte if cte != "7bit" else "quoted-printable"
            alt = [self._text_part(rng, text, charset, cte),
                   self._text_part(rng, html, charset if charset != "us-ascii" else "utf-8",
                                   html_cte, "text/html")]
            if kind in ("alternative", "newsletter"):
                top_type, inner = "multipart/alternative", alt
                parts_meta.extend(p[2] for p in alt)
            else:
                top_type = "multipart/mixed"
                inner = []
                if rng.random() < 0.5:
                    b2 = "----=_Alt_%x" % rng.getrandbits(48)
                    inner.append((["Content-Type: multipart/alternative;\r\n\tboundary=\"%s\"" % b2],
                                  self._join_parts(alt, b2), None))
                    parts_meta.extend(p[2] for p in alt)
                else:
                    inner.append(alt[0])
                    parts_meta.append(alt[0][2])
                if kind == "forward":
                    fdata, _, fmeta, _ = self._message(random.Random(rng.getrandbits(64)), i, [],
                                                       nested=True)
                    inner.append((["Content-Type: message/rfc822",
                                   "Content-Disposition: attachment; filename=\"forwarded.eml\""],
                                  fdata, None))
                    parts_meta.append(("message/rfc822", fmeta.kind, fmeta.lang))
                    parts_meta.extend(fmeta.parts)
                else:
                    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
                        part = self._attachment(rng, i)
                        inner.append(part)
                        parts_meta.append(part[2])
            h.append("Content-Type: %s;\r\n\tboundary=\"%s\"" % (top_type, boundary))
            body = b"This is a multi-part message in MIME format.\r\n\r\n" + \
                self._join_parts(inner, boundary)
        head = "\r\n".join(h) + "\r\n\r\n"
        data = head.encode("ascii") + body
        meta = Meta(i, msgid, kind, lang, parts_meta, len(data))
        entry = (msgid, refs, subject, excerpt[:6], sender)
        return data, delivered, meta, entry

    def _join_parts(self, parts, boundary):
        out = []
        for hdr, body, _ in parts:
            out.append(b"--" + boundary.encode() + b"\r\n")
            out.append(("\r\n".join(hdr) + "\r\n\r\n").encode("ascii"))
            out.append(body)
            if not body.endswith(b"\r\n"):
                out.append(b"\r\n")
        out.append(b"--" + boundary.encode() + b"--\r\n")
        return b"".join(out)

    def _attachment(self, rng, i):
        r = rng.random()
        if r < 0.55:
            size = self._attachment_size(rng)
            kind = "pdf" if rng.random() < 0.6 else "jpg"
            name = "%s_%d.%s" % (rng.choice(("report", "scan", "invoice", "photo", "contract",
                                             "slides", "IMG")), rng.randrange(10000), kind)
            ctype = "application/pdf" if kind == "pdf" else "image/jpeg"
            hdr = ["Content-Type: %s; name=\"%s\"" % (ctype, name),
                   "Content-Disposition: attachment; filename=\"%s\"" % name,
                   "Content-Transfer-Encoding: base64"]
            return hdr, _b64_lines(self._binary(rng, size, kind)), (ctype, "", "base64")
        # A text attachment: notes or CSV, base64 or quoted-printable or 7bit.
        if rng.random() < 0.5:
            name = "notes_%d.txt" % rng.randrange(1000)
            lines = self._wrap(self._paragraphs(rng, rng.randint(50, 1500)), rng)
            ctype = "text/plain"
        else:
            name = "export_%d.csv" % rng.randrange(1000)
            ctype = rng.choice(("text/csv", "text/plain"))
            lines = ["id,name,amount,status,comment"]
            for row in range(rng.randint(20, 800)):
                w = self._words(rng, 4)
                self.english_words += 4
                lines.append("%d,%s %s,%d.%02d,%s,%s" % (row + 1, w[0], w[1], rng.randrange(10000),
                                                         rng.randrange(100), w[2], w[3]))
        text = "\r\n".join(lines) + "\r\n"
        cte = rng.choice(("base64", "base64", "quoted-printable", "7bit"))
        hdr, body, pm = self._text_part(rng, text, rng.choice(("utf-8", "us-ascii")), cte, ctype,
                                        extra="; name=\"%s\"" % name)
        hdr.append("Content-Disposition: attachment; filename=\"%s\"" % name)
        return hdr, body, pm

    # -- query strings --

    def _vocab_blob(self):
        if self._blob is None:
            extra = [w.lower() for w in FIRST_NAMES + LAST_NAMES + MAILERS + TOPICS + LISTS + DOMAINS]
            self._blob = "\n" + "\n".join(self.vocab + extra) + "\n"
        return self._blob

    def word_probability(self, rank):
        return (self.cum[rank] - (self.cum[rank - 1] if rank else 0.0)) / self.cum[-1]

    def expected_count(self, rank):
        """Expected occurrences of vocabulary word `rank` in what was generated so far."""
        return self.word_probability(rank) * self.english_words

    def rare_ranks(self, most=25.0, least=2.0):
        """The vocabulary ranks expected `least` to `most` times in the text generated so far."""
        def first_rank_below(limit):  # expected_count falls with the rank in the tail
            a, b = self.real_words, len(self.vocab) - 1
            while a < b:
                m = (a + b) // 2
                if self.expected_count(m) <= limit:
                    b = m
                else:
                    a = m + 1
            return a
        lo = first_rank_below(most)
        hi = max(lo, first_rank_below(least) - 1)
        if hi - lo < 200:  # a tiny corpus: the rarest words there are
            lo = max(self.real_words, min(lo, len(self.vocab) - 2000))
            hi = len(self.vocab) - 1
        return lo, hi

    def query_words(self, band, count, seed=None):
        """`count` distinct query strings (lower case) of a frequency band of the corpus generated
        so far (call after generating: "rare" depends on how much text there is):

          common    one of the 80 most frequent words, length 4 or more ("meeting", "please")
          rare      a word expected 2 to 25 times in the whole corpus, not a substring of any
                    other vocabulary word (so it should be in a few messages, maybe none)
          fragment  3 to 5 characters from inside a mid-frequency word ("eetin", "ugh")
          short     1 or 2 characters taken from words ("e", "th", "q")
          miss      10 characters that appear in no message
          utf8      a German, French, Russian or Japanese word (sent as UTF-8)
        """
        rng = random.Random("queries-%d-%s-%s" % (self.seed, band, seed))
        out = []
        seen = set()
        attempts = 0
        blob = self._vocab_blob()
        while len(out) < count and attempts < count * 2000:
            attempts += 1
            if band == "common":
                w = self.vocab[rng.randrange(80)]
                if len(w) < 4:
                    continue
            elif band == "rare":
                lo, hi = self.rare_ranks()
                w = self.vocab[rng.randint(lo, hi)]
                if len(w) < 7 or blob.count(w) != 1:
                    continue
            elif band == "fragment":
                src = self.vocab[rng.randrange(100, 5000)]
                n = rng.randint(3, 5)
                if len(src) < n + 1:
                    continue
                a = rng.randrange(0, len(src) - n + 1)
                w = src[a:a + n]
            elif band == "short":
                src = self.vocab[rng.randrange(0, 3000)]
                n = rng.choice((1, 2, 2))
                if len(src) < n:
                    continue
                a = rng.randrange(0, len(src) - n + 1)
                w = src[a:a + n]
            elif band == "miss":
                w = "".join(rng.choice("qxzjvkw") for _ in range(3)) + \
                    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7))
                if w in blob:
                    continue
            elif band == "utf8":
                lang = rng.choice(("de", "fr", "ru", "ja"))
                vocab = self.lang_vocab[lang]
                w = vocab[rng.randrange(len(vocab))]
                if all(ord(c) < 128 for c in w) or len(w) < 2:
                    continue
                w = w.lower()
            else:
                raise ValueError("unknown band %r" % band)
            if w not in seen:
                seen.add(w)
                out.append(w)
        return out


BANDS = ("common", "rare", "fragment", "short", "miss", "utf8")


# ---- CLI -------------------------------------------------------------------------------------

def _percentile(sorted_values, p):
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="an mbox file (mboxrd), or a directory (ending in / or existing) "
                                  "for one NNNNNNN.eml file per message (mtime: internal date)")
    ap.add_argument("--stats", action="store_true", help="print the size distribution and mix")
    ap.add_argument("--show", type=int, help="write message SHOW (0-based) raw to stdout")
    ap.add_argument("--queries", type=int, default=0, help="print N query strings per band")
    args = ap.parse_args(argv)

    c = Corpus(args.seed)
    sizes = []
    out_dir = None
    mbox = None
    if args.out:
        if args.out.endswith("/") or os.path.isdir(args.out):
            out_dir = args.out
            os.makedirs(out_dir, exist_ok=True)
        else:
            mbox = open(args.out, "wb")
    total = 0
    for data, when in c.messages(args.messages):
        i = c.generated - 1
        sizes.append(len(data))
        total += len(data)
        if args.show is not None and i == args.show:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        if out_dir:
            path = os.path.join(out_dir, "%07d.eml" % i)
            with open(path, "wb") as f:
                f.write(data)
            ts = when.timestamp()
            os.utime(path, (ts, ts))
        elif mbox:
            utc = when.astimezone(datetime.timezone.utc)
            mbox.write(b"From corpus@example.com %s\n" % utc.strftime("%a %b %d %H:%M:%S %Y").encode())
            for line in data.split(b"\n"):
                stripped = line.lstrip(b">")
                if stripped.startswith(b"From "):
                    line = b">" + line
                mbox.write(line + b"\n")
    if mbox:
        mbox.close()
    if args.stats:
        s = sorted(sizes)
        print("messages %d, total %.1f MB, mean %.0f B" % (len(s), total / 1e6, total / max(1, len(s))))
        print("size p50 %d  p90 %d  p99 %d  p99.9 %d  max %d" % tuple(
            _percentile(s, p) for p in (50, 90, 99, 99.9, 100)))
        print("over 20 KB: %d, over 100 KB: %d, over 800 KB: %d" % (
            sum(x > 20000 for x in s), sum(x > 100000 for x in s), sum(x > 800000 for x in s)))
        kinds = {}
        langs = {}
        ctes = {}
        for m in c.meta:
            kinds[m.kind] = kinds.get(m.kind, 0) + 1
            langs[m.lang] = langs.get(m.lang, 0) + 1
            for p in m.parts:
                key = "%s %s %s" % p
                ctes[key] = ctes.get(key, 0) + 1
        print("kinds:", ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
        print("languages:", ", ".join("%s %d" % kv for kv in sorted(langs.items())))
        print("parts:")
        for k, v in sorted(ctes.items(), key=lambda kv: -kv[1]):
            print("  %6d  %s" % (v, k))
        print("English body words: %d" % c.english_words)
    if args.queries:
        for band in BANDS:
            print("%-9s %s" % (band, " ".join(c.query_words(band, args.queries))))


if __name__ == "__main__":
    main()
