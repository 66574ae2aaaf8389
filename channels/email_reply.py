"""The participant's own words in a reply's text: quoted history, reply headers and device signatures cut.

One pass over the lines, each looked at a bounded number of times, so a megabyte of quote costs
milliseconds (no pattern here can backtrack across a whole line: header patterns only see lines
of at most ``HEADER_MAX`` characters). What is history:

- a ``>`` quote, with the attribution line above it ("On … wrote:" in 20-odd languages, or a
  Gmail-style "<date>, <name> <address>:"); a reply written *below* or *between* quotes
  (bottom-posting, inline answers) is kept;
- everything under a reply header that is not followed by a ``>`` quote (Outlook, Gmail's
  plain-text "On … wrote:" with the thread unquoted), under an ``-----Original Message-----``
  rule (and its translations), and under an Outlook ``From:/Sent:/To:`` block (``De : … Envoyé :``,
  ``Von:/Gesendet:``, ``Fra:/Sendt:`` …);
- a forwarded message is the content: "FYI" and a ``---------- Forwarded message ----------``
  keep the forwarded text, unless the forward sits inside the history.

Then a signature under the RFC 3676 ``-- `` line and a trailing "Sent from my iPhone" are dropped.
"""

from __future__ import annotations

import re

from .email_html import ATTRIBUTION, HISTORY, KEPT

#: Longer lines are never taken for a reply header (and no header pattern runs on them).
HEADER_MAX = 600
#: A header glued to the reply's last line is at most this long (and is looked for at four places at most).
GLUED_MAX = 300
#: A wrapped header spans at most this many lines (blank ones included).
HEADER_LINES = 5

#: Words that open an attribution line, per language (case-sensitive: "On" and not "on").
LEAD = (r"On|Am|Op|Le|Il|Em|El|W\s+dniu|Dnia|Den|På|Dne|Dňa|Vào|Às|A|O|Kl\.|Pada|Ngày|Sent\s+from")
#: The verbs that close one: wrote, schrieb, schreef, a écrit, ha scritto, escreveu, escribió, napisał …
VERB = (r"wrote|sent|schrieb|schreef|geschreven|a\s+écrit|ha\s+scritto|escreveu|escribió|napisał(?:\(a\)|a)?|"
        r"napsal(?:\(a\)|a)?|napísal(?:\(a\)|a)?|pisze|skrev|kirjoitti|написал(?:\(а\)|а)?|пишет|пише|написав|"
        r"đã\s+viết|yazdı|írta|a\s+scris|έγραψε")
#: The same in scripts without spaces between words: Chinese, Korean, Japanese (Gmail, Apple Mail).
CJK_VERB = r"写道|寫道|작성|のメール|さんは書きました|は書きました"
#: How a header begins: its lead word, a date ("02.04.2012", "2014-10-17", "4 dec."), a weekday ("ср, 30",
#: "tir. 18.", "Wednesday, 17") or a rule ("---- John Smith wrote ----").
START = re.compile(rf"^\s*(?:-{{2,}}|[-=_*\s]*(?:(?:{LEAD})\s|\d{{1,4}}(?:[./\-:年]\d|\s+[^\W\d_])|"
                   rf"[^\W\d_]{{2,4}}\.?,?\s+\d|[^\W\d_]{{2,12}}\.?,\s))")
DASHES = re.compile(r"^\s*-{2,}")
VERB_AT = re.compile(rf"(?:^|(?<=[\s\-])|(?<=\W))(?:{VERB})|{CJK_VERB}")
#: What may follow the verb: the name and address (German, Dutch, Nordic clients put them there), then ':'.
AFTER_VERB = re.compile(r"(?:\s+\S.{0,200}?)?\s*(?:[:：]\s*-*|-{2,})\s*")
#: "ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:" and the like, in any language.
EMAIL_END = re.compile(r"(?:<[^<>\s]*@[^<>\s]*>|\([^()\s]*@[^()\s]*\)|[^\s<>()]+@[^\s<>()]+)\s*>?\s*[:：]\s*$")
DATE = re.compile(r"\d{1,2}[:.]\d{2}|\b(?:19|20)\d\d\b|\d{4}年")
MID_LEAD = re.compile(r"(?:-{2,}\s*|(?<=\s))On\s")

RULE = r"\s*[-=_*~]{2,}\s*"
ORIGINAL = re.compile(
    rf"^[>\s]*(?:{RULE})?(?:Original Message|Reply Message|Ursprüngliche Nachricht|Antwort Nachricht|"
    r"Originalnachricht|Oprindelig meddelelse|Oprindelig besked|Oorspronkelijk bericht|Origineel bericht|"
    r"Message d'origine|Message original|Messaggio originale|Mensaje original|Mensagem original|"
    r"Originalmeddelande|Ursprungligt meddelande|Opprinnelig melding|Alkuperäinen viesti|Původní zpráva|"
    r"Pôvodná správa|Wiadomość oryginalna|Oryginalna wiadomość|Исходное сообщение|Eredeti üzenet|Orijinal Mesaj|"
    rf"原始邮件|元のメッセージ)(?:{RULE})?$", re.IGNORECASE)
FORWARD = re.compile(
    rf"^\s*(?:(?:{RULE})(?:Forwarded message|Forwarded Message|Weitergeleitete Nachricht|Message transféré|"
    r"Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht|Videresendt meddelelse|Videresendt melding|"
    r"Vidarebefordrat meddelande|Mensagem encaminhada|Wiadomość przekazana|Přeposlaná zpráva|"
    rf"Пересылаемое сообщение|Пересланное сообщение|Välitetty viesti|转发的邮件)(?:{RULE})?|"
    r"Begin forwarded message:|Anfang der weitergeleiteten Nachricht:|Début du message (?:réexpédié|transféré) :?)$",
    re.IGNORECASE)
#: The fields of an Outlook-style header block, per language; the first line of a block is one of FIRST.
FIELDS = (r"From|Sent|To|Subject|Date|Cc|Bcc|Reply-To|Von|Gesendet|An|Betreff|Datum|De|Envoyé(?: le)?|Envoyé par|"
          r"À|A|Objet|Sujet|Copie à|Message du|Van|Verzonden|Aan|Onderwerp|Da|Inviato|Oggetto|Ogg|Data|Enviado|"
          r"Enviada|Para|Asunto|Fecha|Assunto|Fra|Sendt|Til|Emne|Dato|Från|Skickat|Till|Ämne|Lähettäjä|"
          r"Lähetetty|Vastaanottaja|Aihe|Päivämäärä|Od|Wysłano|Wysłane|Do|Temat|Odesláno|Komu|Předmět|От|"
          r"Отправлено|Кому|Тема|Дата|Копия|差出人|送信日時|宛先|件名|发件人|发送时间|收件人|主题")
FIRST = frozenset({"from", "sent", "date", "von", "gesendet", "datum", "de", "envoyé", "envoyé le", "message du",
                   "van", "verzonden", "da", "inviato", "data", "enviado", "enviada", "fecha", "fra", "sendt",
                   "dato", "från", "skickat", "lähettäjä", "lähetetty", "od", "wysłano", "wysłane", "odesláno",
                   "от", "отправлено", "дата", "差出人", "送信日時", "发件人", "发送时间"})
FIELD = re.compile(rf"^[>\s]*\*{{0,2}}({FIELDS})\*{{0,2}}\s?[:：]")
#: A device's line under the reply: "Sent from my iPhone", "Get Outlook for iOS", "Von meinem iPhone gesendet" …
DEVICE = re.compile(r"^(?:Sent from (?:my )?|Sent with |Get Outlook for |Sent via |Inviato da |Envoyé (?:de|depuis) "
                    r"(?:mon )?|Envoyé à partir de |Von meinem |Gesendet von |Enviado desde (?:mi )?|"
                    r"Enviado do meu |Verstuurd vanaf (?:mijn )?|Skickat från (?:min )?|Sendt fra (?:min )?|"
                    r"Lähetetty (?:iPhonesta|laitteesta))[^,.;!?]{0,60}(?:<[^>]*>)?$", re.IGNORECASE)
ATTRIBUTED = re.compile(r"@|[:：]\s*$")
#: A mailing list's footer (Mailman's rule of underscores) or a rule above more history.
FOOTER = re.compile(r"^\s*(?:_{10,}|-{10,})\s*$")
TRAILING = re.compile(rf"^(?:{RULE}|\s*)$")


def quoted(line: str) -> bool:
    """A ``>`` line; ``>>> url <<<`` decoration and a wrapped header's ``>:`` are none."""
    stripped = line.lstrip()
    if not stripped.startswith(">"):
        return False
    tail = stripped.rstrip()
    return not (tail.endswith("<<") or tail in (">:", "> :"))


def reply_text(text: str) -> str:
    """Only what the person wrote now, from a plain-text body (LF or CRLF) or :func:`html_to_text`'s text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[tuple[int, str]] = []  # (line number, text) of what is the person's so far
    below: int | None = None  # len(kept) when the first quote was dropped: what follows is written below it
    history = False  # the loop ended at history (not at a footer or a device line)
    size = 0  # characters kept: past KEPT the rest is more than the engine records anyway
    written = False  # a line of text is kept
    pasted = False  # a header block above the text was skipped (there is one at most)
    n, i = len(lines), 0
    while i < n and size <= KEPT:
        line = lines[i]
        if not line.strip():
            kept.append((i, ""))
            i += 1
            continue
        short = len(line) < HEADER_MAX  # no pattern runs on a longer line: none can be a header
        if short and FORWARD.match(line):
            if below is None:  # a forward is the content, unless it is in the history
                return tidy([text for _, text in kept] + lines[i:], signature=False)
            history = True
            break
        if short and field_block(lines, i):
            if not written and not pasted:  # the message's own headers, pasted on top
                pasted = True
                i = next((k for k in range(i, n) if not lines[k].strip()), n)
                continue
            history = True
            break
        if HISTORY in line or short and ORIGINAL.match(line):
            history = True
            break
        if below is not None and short and FOOTER.match(line):
            break
        if short and written and DEVICE.match(line.strip()):
            break  # a phone writes its line between the reply and the thread it quotes unmarked
        header = marked_header(lines, i) or header_ending(lines, i)
        if header is not None:
            first, before, last = header
            while kept and kept[-1][0] >= first:
                kept.pop()
            if before:
                kept.append((first, before))
            following = next((k for k in range(last + 1, n) if lines[k].strip()), n)
            if following == n or not quoted(lines[following]):
                history = True  # an unquoted thread under the header: all history
                break
            below = len(kept) if below is None else below
            i = quote_end(lines, following)
            continue
        if quoted(line):
            drop_attribution(kept)
            below = len(kept) if below is None else below
            i = quote_end(lines, i)
            continue
        kept.append((i, line))
        size += len(line)
        written = True
        i += 1
    if history and below is not None:
        del kept[below:]  # history below the quote: the text between the two was the history's too
    return tidy([text for _, text in kept])


def marked_header(lines: list[str], i: int) -> tuple[int, str, int] | None:
    """The attribution lines :func:`html_to_text` marked, from ``lines[i]`` on: (first, "", last)."""
    if not lines[i].startswith(ATTRIBUTION):
        return None
    last = i
    for k in range(i + 1, len(lines)):
        if lines[k].startswith(ATTRIBUTION):
            last = k
        elif lines[k].strip():
            break
    return i, "", last


def header_ending(lines: list[str], j: int) -> tuple[int, str, int] | None:
    """A reply header ("On … wrote:") whose last line is ``lines[j]``: (its first line, reply text before it, j).

    The text before it is not empty only when reply and header share a line ("Thanks! On …
    wrote:"). Of the windows ending at ``j`` the shortest wins, so a reply line right above a
    wrapped header stays the reply's.
    """
    end = lines[j].strip()
    if len(end) > HEADER_MAX or not end.endswith((":", "：", "-")):
        return None
    if end.startswith(">") and quoted(end):
        if not re.fullmatch(rf"[>\s]*(?:{VERB})\s*[:：]", end):  # polymail quotes the header's last word only
            return None
        end = end.lstrip("> ")
    if not START.match(end):  # "Shipped! On … wrote:": the reply's words stay, whatever else the line has
        starts = [m.start() for m in MID_LEAD.finditer(end, max(1, len(end) - GLUED_MAX))][:4]
        for start in starts:
            if is_header(end[start:]):
                return j, end[:start].rstrip(" -"), j
    parts: list[str] = []
    for s in range(j, max(-1, j - HEADER_LINES), -1):
        line = end if s == j else lines[s].strip()
        if s != j and (quoted(lines[s]) or len(line) > HEADER_MAX):
            break
        if line:
            parts.insert(0, line)
            window = " ".join(parts)
            if len(window) > HEADER_MAX:
                break
            if is_header(window):
                return s, "", j
    return None


def is_header(window: str) -> bool:
    """An attribution: how one begins (``START``), then a verb and ':' or an address and ':'.

    An address, a date and a closing verb together need no known beginning ("taskbot
    <tasks@example.com> 于2025年3月3日周一 09:14写道：", Greek, Hungarian, Romanian …).
    """
    known = START.match(window) is not None
    dated = "@" in window and DATE.search(window) is not None
    if not (known or dated):
        return False
    if verb_ends(window):
        return dated or bool(DASHES.match(window)) or any(c.isdigit() or c == "@" for c in window)
    return known and dated and EMAIL_END.search(window) is not None


def verb_ends(window: str) -> bool:
    """The window ends with "wrote:" (or "schrieb Name <address>:", "wrote ----" …).

    Only the last verb is tried: one bounded match per window, however many verbs it holds.
    """
    last = None
    for last in VERB_AT.finditer(window):  # noqa: B007 -- the last one is wanted
        pass
    return last is not None and AFTER_VERB.fullmatch(window, last.end()) is not None


def field_block(lines: list[str], i: int) -> bool:
    """An Outlook header block starts at ``lines[i]``: From:/Sent:/To:/Subject: (or Date:/To:), any language.

    Two different fields within a few lines (a wrapped address may sit between them), the
    first one a From, Sent or Date field.
    """
    if len(lines[i]) > HEADER_MAX:
        return False
    if not (":" in lines[i][:40] or "：" in lines[i][:40]):
        return False
    first = FIELD.match(lines[i])
    if first is None or first.group(1).lower() not in FIRST:
        return False
    names = {first.group(1).lower()}
    for k in range(i + 1, min(len(lines), i + 5)):
        if len(lines[k]) > HEADER_MAX:
            return False
        field = FIELD.match(lines[k])
        if field is not None and field.group(1).lower() not in names:
            return True
    return False


def quote_end(lines: list[str], i: int) -> int:
    """Where the ``>`` quote starting at ``lines[i]`` ends: after its blank lines and wrapped links.

    An unquoted line or two right between quoted lines (no blank line) is a quoted line the
    sender's client wrapped, e.g. a long link: still the quote.
    """
    n, j = len(lines), i
    while j < n:
        line = lines[j]
        if not line or line[0] == ">" and line[-1] not in "<:" or quoted(line) or not line.strip():
            j += 1  # (the first two tests are the common case, without a call)
            continue
        if quoted(lines[j - 1]):
            k = j
            while k < n and k - j < 2 and lines[k].strip() and not quoted(lines[k]):
                k += 1
            if k < n and quoted(lines[k]):
                j = k
                continue
        break
    return j


def drop_attribution(kept: list[tuple[int, str]]) -> None:
    """A quote's unrecognised attribution line ("2011/4/7 Nathan <support@example.com>") goes with it."""
    k = len(kept) - 1
    while k >= 0 and not kept[k][1].strip() and len(kept) - k <= 2:
        k -= 1
    if k < 0 or len(kept) - k > 2:
        return
    line = kept[k][1].strip()
    if len(line) < HEADER_MAX and ATTRIBUTED.search(line) and DATE.search(line) and (START.match(line) or "@" in line):
        del kept[k:]


def tidy(lines: list[str], signature: bool = True) -> str:
    """Trailing rules, blank lines and, with ``signature``, the signature and the device line dropped."""
    if signature:
        for k, line in enumerate(lines):
            if line.rstrip() in ("--", "-- "):
                lines = lines[:k]
                break
    while lines and TRAILING.match(lines[-1]):
        lines.pop()
    if signature and lines and DEVICE.match(lines[-1].strip()):
        lines.pop()
        while lines and TRAILING.match(lines[-1]):
            lines.pop()
    text = "\n".join(line.replace(ATTRIBUTION, "").rstrip() for line in lines if HISTORY not in line).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)
