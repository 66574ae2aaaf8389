"""HTML mail as plain text that keeps its quote structure: ``>`` for quotes, marks where history begins.

Mail clients say in their markup what is quoted, whatever the language of the text around it:

- a quote is a ``<blockquote>`` (Gmail ``class="gmail_quote"``, Apple Mail and Thunderbird
  ``type="cite"``, mail.ru, Yandex); it becomes ``>`` lines, as a plain-text client quotes. Gmail's
  *indent* button also writes a blockquote, with ``border:none``: that one stays text;
- its attribution ("On … wrote:", in any language) is Gmail's ``gmail_attr`` (or the text that
  opens a ``gmail_quote`` div before its blockquote) and Thunderbird's ``moz-cite-prefix``: those
  lines are marked ``ATTRIBUTION``;
- Outlook and others quote nothing but put the history under a block: Outlook web's
  ``divRplyFwdMsg`` and ``appendonsend``, Outlook for Mac's ``OLK_SRC_BODY_SECTION``, Outlook
  desktop's and Windows Mail's ``border-top`` div above ``From:/Sent:``, Hotmail's
  ``hr#stopSpelling``, Yahoo's ``yahoo_quoted``, AOL's ``AOLMsgPart``: a ``HISTORY`` line is put
  where it begins.

:func:`channels.email_reply.reply_text` reads the marks; they never reach what is recorded.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: Text outside quotes read at most: twice what the engine keeps of a message (20,000 characters).
KEPT = 40_000
#: Marks a line of a quote's attribution (put before the line's text).
ATTRIBUTION = "\ue001"
#: A line of its own where unquoted history begins.
HISTORY = "\ue000"

VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source", "embed",
                  "param", "track"})
BLOCKS = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
                    "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd"})
HIDDEN = frozenset({"style", "script", "head", "title", "template"})
HISTORY_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "olk_src_body_section", "aolmsgpart", "stopspelling"})
HISTORY_CLASSES = frozenset({"yahoo_quoted", "divrplyfwdmsg"})
ATTRIBUTION_CLASSES = frozenset({"gmail_attr", "moz-cite-prefix"})
#: Outlook desktop's separator above From:/Sent: ("border:none;border-top:solid #E1E1E1 1.0pt").
TOP_RULE = re.compile(r"border-top(?:-style)?\s*:\s*solid|border-top\s*:[^;]*\bsolid\b", re.IGNORECASE)
INDENT = re.compile(r"border\s*:\s*none", re.IGNORECASE)


class _Stop(Exception):
    """Nothing more is read: unquoted history begins (a long thread costs nothing), or there is more text
    than the engine keeps of a message."""


class _Text(HTMLParser):
    def __init__(self, quotes: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.quotes = quotes  # False: a blockquote nobody marked as a citation is text
        self.lines: list[tuple[int, bool, list[str]]] = [(0, False, [])]  # (quote depth, attribution, parts)
        self.stack: list[tuple[str, str]] = []  # open elements and what each one started: "quote", "attr", ""
        self.open: dict[str, int] = {}  # how many of each tag are on the stack
        self.depth = 0
        self.attr = 0
        self.hidden = 0
        self.pre = 0
        self.visible = 0  # characters of text outside quotes so far

    def newline(self, force: bool = False) -> None:
        """Start a line; blocks that follow each other do not stack up empty lines, ``<br>`` does."""
        attr = self.attr > 0
        if not force and not "".join(self.lines[-1][2]).strip():
            self.lines[-1] = (self.depth, attr, [])
        else:
            self.lines.append((self.depth, attr, []))

    def history(self) -> None:
        self.newline()
        self.lines[-1][2].append(HISTORY)
        self.newline(force=True)
        raise _Stop

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
            return
        if tag == "body":
            self.hidden = 0  # an unclosed <head> hides nothing of the body
        found = {k: (v or "") for k, v in attrs}
        classes = set(found.get("class", "").lower().split())
        ident = found.get("id", "").lower()
        role = ""
        if tag == "blockquote":
            cited = found.get("type", "").lower() == "cite" or "gmail_quote" in classes
            if cited or (self.quotes and not INDENT.search(found.get("style", ""))):
                role = "quote"
                self.attr = 0  # the attribution ends where its quote begins
                self.depth += 1
                self.newline()
        elif not self.depth and (ident in HISTORY_IDS or classes & HISTORY_CLASSES or (
                tag == "div" and TOP_RULE.search(found.get("style", "")))):
            self.history()
        elif classes & ATTRIBUTION_CLASSES or (tag == "div" and "gmail_quote" in classes):
            role = "attr"
            self.attr += 1
            self.newline()
        if tag in BLOCKS and not role:
            self.pre += tag == "pre"
            self.newline(force=tag == "br")
            if tag == "li":
                self.lines[-1][2].append("- ")
        if tag not in VOID:
            self.stack.append((tag, role))
            self.open[tag] = self.open.get(tag, 0) + 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
            return
        if tag in VOID or not self.open.get(tag):
            return  # a stray end tag closes nothing
        while self.stack:
            open_tag, role = self.stack.pop()
            self.open[open_tag] -= 1
            if role == "quote":
                self.depth = max(0, self.depth - 1)
                self.newline()
            elif role == "attr":
                self.attr = max(0, self.attr - 1)
                self.newline()
            elif open_tag in BLOCKS:
                self.pre = max(0, self.pre - (open_tag == "pre"))
                self.newline()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self.lines[-1][2].append(first)
            for line in rest:
                self.newline(force=True)
                self.lines[-1][2].append(line)
        else:  # runs of white space are one space, kept at the edges where words meet across tags
            words = " ".join(data.split())
            if not self.depth:
                self.visible += len(words)
                if self.visible > KEPT:
                    raise _Stop
            self.lines[-1][2].append((" " if data[:1].isspace() else "") + words +
                                     (" " if words and data[-1:].isspace() else ""))

    def text(self) -> str:
        out = []
        for depth, attr, parts in self.lines:
            line = "".join(parts).strip()
            if line and attr and not depth:
                line = ATTRIBUTION + line
            out.append(("> " * depth + line).rstrip() if line or depth else "")
        return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def html_to_text(markup: str, quotes: bool = True) -> str:
    """HTML mail as plain text; ``<blockquote>`` becomes ``>`` lines (with ``quotes``, any blockquote)."""
    parser = _Text(quotes)
    try:
        parser.feed(markup)
        parser.close()
    except _Stop:
        pass
    return parser.text()
