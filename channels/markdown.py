"""Markdown deliverables as each channel shows them: Slack Block Kit, plain text (Telegram), HTML (email).

The engine's deliverables are Markdown (the scripted report is a title, a line of counts, a
table of participants by fields, and a few bold lines). Reading it with markdown-it-py, each
adapter gets the same parts: headings, paragraphs, lists, code and tables. Slack gets a
``table`` block per table, so the table is a real table, readable on a phone, and not a code
block; Slack allows one table per message (and 100 rows in it), so a long report becomes a
first message and follow-ups. Telegram gets each table row as a line of ``field: value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def _image_as_link(renderer: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """An image in an answer or a report is rendered as a link to it, never loaded: a remote image in a mail
    or on the dashboard tells its host who read it and when (a tracking pixel)."""
    token = tokens[idx]
    src = escapeHtml(str(token.attrs.get("src") or ""))
    alt = escapeHtml(renderer.renderInlineAsText(token.children or [], options, env)) or src
    return f'<a href="{src}">image: {alt}</a>'


MD.add_render_rule("image", _image_as_link)
#: What rendered Markdown may hold: nh3's safe tags less images (none is made above; raw HTML is text anyway).
HTML_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}

#: Slack's limits (Block Kit reference): blocks per message, section text, header text, rows and
#: columns of a table block, and one table per message.
MAX_BLOCKS = 50
SECTION_MAX = 3000
HEADER_MAX = 150
TABLE_ROWS = 100
TABLE_COLUMNS = 20
CELL_MAX = 2000


@dataclass
class Part:
    """One block of the document: ``kind`` heading, text, list, code, table or rule."""

    kind: str
    text: str = ""  # Slack mrkdwn (heading, text, list, code)
    plain: str = ""
    rows: list[list[str]] = field(default_factory=list)  # table: the header row first


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(token: Token) -> tuple[str, str]:
    """An inline token as (Slack mrkdwn, plain text)."""
    slack, plain = [], []
    href = ""
    for child in token.children or []:
        kind = child.type
        if kind == "text":
            slack.append(_escape(child.content))
            plain.append(child.content)
        elif kind == "code_inline":
            slack.append(f"`{_escape(child.content)}`")
            plain.append(child.content)
        elif kind in ("strong_open", "strong_close"):
            slack.append("*")
        elif kind in ("em_open", "em_close"):
            slack.append("_")
        elif kind == "link_open":
            href = str(child.attrs.get("href") or "")
            slack.append(f"<{href}|")
        elif kind == "link_close":
            slack.append(">")
            plain.append(f" ({href})" if href else "")
        elif kind in ("softbreak", "hardbreak"):
            slack.append("\n")
            plain.append("\n")
        elif child.content:
            slack.append(_escape(child.content))
            plain.append(child.content)
    return "".join(slack), "".join(plain)


def parts(markdown: str) -> list[Part]:
    """The document's top-level blocks."""
    tokens = MD.parse(markdown)
    out: list[Part] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type == "heading_open":
            slack, plain = _inline(tokens[i + 1])
            out.append(Part("heading", slack, plain))
            i += 3
        elif t.type == "paragraph_open" and t.level == 0:
            slack, plain = _inline(tokens[i + 1])
            out.append(Part("text", slack, plain))
            i += 3
        elif t.type in ("bullet_list_open", "ordered_list_open"):
            end, items, n = t.type.replace("_open", "_close"), [], 0
            i += 1
            while tokens[i].type != end or tokens[i].level != t.level:
                if tokens[i].type == "inline":
                    n += 1
                    items.append((_inline(tokens[i]), f"{n}." if t.type == "ordered_list_open" else "•"))
                i += 1
            out.append(Part("list", "\n".join(f"{m} {s}" for (s, _), m in items),
                            "\n".join(f"{m} {p}" for (_, p), m in items)))
            i += 1
        elif t.type == "table_open":
            rows: list[list[str]] = []
            i += 1
            while tokens[i].type != "table_close":
                if tokens[i].type == "tr_open":
                    rows.append([])
                elif tokens[i].type == "inline":
                    rows[-1].append(_inline(tokens[i])[1])
                i += 1
            out.append(Part("table", rows=rows))
            i += 1
        elif t.type in ("fence", "code_block"):
            out.append(Part("code", f"```{_escape(t.content.rstrip())}```", t.content.rstrip()))
            i += 1
        elif t.type == "hr":
            out.append(Part("rule"))
            i += 1
        else:  # blockquotes and the like: their paragraphs are read on their own
            i += 1
    return out


# -- Slack ------------------------------------------------------------------------------------------------
def _section(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[i:i + SECTION_MAX]}}
            for i in range(0, len(text), SECTION_MAX) if text[i:i + SECTION_MAX].strip()]


def _tables(rows: list[list[str]]) -> list[dict[str, Any]]:
    """One table block per 99 data rows (the header repeated), at most 20 columns."""
    if not rows:
        return []
    header, body = rows[0][:TABLE_COLUMNS], [r[:TABLE_COLUMNS] for r in rows[1:]]
    width = len(header)

    def cells(row: list[str]) -> list[dict[str, str]]:
        row = (row + [""] * width)[:width]
        return [{"type": "raw_text", "text": (c or " ")[:CELL_MAX]} for c in row]

    chunks = [body[i:i + TABLE_ROWS - 1] for i in range(0, len(body), TABLE_ROWS - 1)] or [[]]
    return [{"type": "table", "column_settings": [{"is_wrapped": True}] * width,
             "rows": [cells(header), *(cells(r) for r in chunk)]} for chunk in chunks]


def slack_messages(markdown: str, title: str | None = None) -> list[list[dict[str, Any]]]:
    """The Block Kit blocks of one or more messages: each under Slack's block limit with one table at most."""
    blocks: list[dict[str, Any]] = []
    first_heading = True
    for part in parts(markdown):
        if part.kind == "heading" and first_heading:
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": part.plain[:HEADER_MAX] or " ",
                                                      "emoji": True}})
            first_heading = False
        elif part.kind == "heading":
            blocks += _section(f"*{part.text}*")
        elif part.kind in ("text", "list", "code"):
            blocks += _section(part.text)
        elif part.kind == "rule":
            blocks.append({"type": "divider"})
        elif part.kind == "table":
            blocks += _tables(part.rows)
    if title and first_heading:
        blocks.insert(0, {"type": "header", "text": {"type": "plain_text", "text": title[:HEADER_MAX], "emoji": True}})
    messages: list[list[dict[str, Any]]] = [[]]
    for block in blocks:
        current = messages[-1]
        has_table = any(b["type"] == "table" for b in current)
        if len(current) >= MAX_BLOCKS or (block["type"] == "table" and has_table):
            messages.append([])
        messages[-1].append(block)
    return [m for m in messages if m]


# -- Telegram (plain text) --------------------------------------------------------------------------------
def plain_text(markdown: str) -> str:
    """The document as plain text: a table row becomes ``• <first cell>: <column>: <cell>; ...``."""
    lines: list[str] = []
    for part in parts(markdown):
        if part.kind == "table" and part.rows:
            header = part.rows[0]
            for row in part.rows[1:]:
                pairs = [f"{h}: {c}" for h, c in zip(header[1:], row[1:], strict=False)]
                lines.append(f"• {row[0] if row else ''}: " + "; ".join(pairs))
            lines.append("")
        elif part.kind == "rule":
            lines += ["———", ""]
        else:
            lines += [part.plain, ""]
    return "\n".join(lines).strip() + "\n"


# -- email (HTML) -----------------------------------------------------------------------------------------
def html(markdown: str) -> str:
    """The document as sanitised HTML (raw HTML in the Markdown is text, and nh3 cleans the rest)."""
    return nh3.clean(MD.render(markdown), tags=HTML_TAGS)
