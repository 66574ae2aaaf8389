"""Inbound fidelity on the public email corpora: reply extraction per corpus and language, bounces, parse time.

Reads ``../shared/corpora`` beside the repository (never copied into it; see its README): the
reply manifests ``email/*replies.json`` and ``email/bounces.json``. Each reply is handed to
``channels.email_parse.parse`` as a client sends it: a ``body`` as the text/plain body of a reply
(``cte: quoted-printable`` as it is on the wire), an ``html`` body as a text/html reply, an ``eml``
whole. Scoring is the corpora README's: whitespace collapsed and NFC, equal to ``expected`` is
*correct*, ``expected`` followed only by (part of) ``signature`` is *close*.

``python -m bench.corpus`` prints the tables alone; ``python -m bench`` runs this with the rest.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from channels.email_parse import Ours, parse

CORPORA = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
OURS = Ours(local="tasks", domain="example.com")
LONG = "github/email_long_quote.txt"


def available(corpora: Path = CORPORA) -> bool:
    return (corpora / "email").is_dir()


def replies(corpora: Path = CORPORA) -> list[dict[str, Any]]:
    return [e for manifest in sorted((corpora / "email").glob("*replies.json"))
            for e in json.loads(manifest.read_text(encoding="utf-8"))]


def bounces(corpora: Path = CORPORA) -> list[dict[str, Any]]:
    return list(json.loads((corpora / "email" / "bounces.json").read_text(encoding="utf-8")))


def as_sent(corpora: Path, entry: dict[str, Any]) -> bytes:
    """The fixture as the mail a participant's client would send (``eml`` files are that already)."""
    data = (corpora / "email" / entry["file"]).read_bytes()
    if entry["kind"] == "eml":
        return data
    subtype = "html" if entry["kind"] == "html" else "plain"
    head = ("From: Participant <participant@example.net>\r\nTo: tasks+0123abcd@example.com\r\n"
            "Subject: Re: Weekly status\r\nMessage-ID: <corpus@example.net>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/{subtype}; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {entry.get('cte') or '8bit'}\r\n\r\n")
    return head.encode() + data


def normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def grade(got: str, entry: dict[str, Any]) -> str:
    """``correct``, ``close`` (the expected text and only signature lines after it) or ``wrong``."""
    text, expected, signature = normal(got), normal(entry["expected"]), normal(entry.get("signature") or "")
    if text == expected:
        return "correct"
    rest = text[len(expected):].strip() if expected and text.startswith(expected) else ""
    return "close" if rest and signature and rest in signature else "wrong"


def score(corpora: Path = CORPORA) -> dict[str, Any]:
    """Grades per corpus and per language; the wrong ones with what was recorded."""
    by: dict[str, Counter[str]] = defaultdict(Counter)
    wrong = []
    with tempfile.TemporaryDirectory() as attachments:
        for entry in replies(corpora):
            inbound = parse(as_sent(corpora, entry), OURS, Path(attachments))
            got = inbound.text if inbound is not None else ""
            mark = grade(got, entry)
            for key in ("all", f"corpus:{entry['corpus']}", f"lang:{entry['lang']}"):
                by[key][mark] += 1
            if mark == "wrong":
                wrong.append({"id": entry["id"], "expected": entry["expected"], "got": got})
    return {"by": {k: dict(v) for k, v in by.items()}, "wrong": wrong}


def share(counts: dict[str, int]) -> float:
    """Correct + close, in percent."""
    total = sum(counts.values())
    return 100 * (counts.get("correct", 0) + counts.get("close", 0)) / total if total else 0.0


def check_bounces(corpora: Path = CORPORA) -> list[dict[str, Any]]:
    """Each bounce and auto-reply as parsed: recognised (``auto_reply``), and what a bounce said."""
    out = []
    with tempfile.TemporaryDirectory() as attachments:
        for entry in bounces(corpora):
            inbound = parse((corpora / "email" / entry["file"]).read_bytes(), OURS, Path(attachments))
            meta = inbound.meta if inbound is not None else {}
            out.append({"id": entry["id"], "kind": entry["kind"], "recognised": bool(meta.get("auto_reply")),
                        "bounce": meta.get("bounce")})
    return out


def parse_ms(raw: bytes, runs: int) -> float:
    """Median wall time of ``parse`` on ``raw``, in milliseconds."""
    times = []
    with tempfile.TemporaryDirectory() as attachments:
        for _ in range(runs):
            t0 = time.perf_counter()
            parse(raw, OURS, Path(attachments))
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def html_mail(markup: bytes) -> bytes:
    return (b"From: p@example.net\r\nTo: tasks@example.com\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + markup)


def timings(corpora: Path = CORPORA, runs: int = 5) -> list[dict[str, Any]]:
    """Parse time of the corpus's long message, of 1 MB made from it, and of 1 MB HTML mails built here.

    The HTML ones: a Gmail reply over a megabyte of ``blockquote``; an Outlook (Word) one over a
    megabyte of unquoted history; a megabyte of Word markup that is all reply. And two hostile
    shapes no client sends, for the worst case.
    """
    long_raw = as_sent(corpora, {"file": LONG, "kind": "body"})
    body = (corpora / "email" / LONG).read_bytes()
    paragraph = b"<p>" + b"Quoted history, line after line of it. " * 20 + b"</p>\r\n"
    gmail = (b'<div>Short answer.</div><div class="gmail_quote"><div class="gmail_attr">On Mon, taskbot wrote:'
             b'</div><blockquote class="gmail_quote">' + paragraph * (1_048_576 // len(paragraph)) +
             b"</blockquote></div>")
    word = (b"<p class=MsoNormal><span lang=EN-US style='font-size:11.0pt;font-family:\"Calibri\",sans-serif'>"
            b"A line of the thread, in Word's markup.<o:p></o:p></span></p>\r\n")
    outlook = (b"<html><body><div class=WordSection1><p class=MsoNormal>Short answer.</p><div style='border:none;"
               b"border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p><b>From:</b> taskbot</p></div>" +
               word * (1_048_576 // len(word)) + b"</div></body></html>")
    prose = b"A line of a long answer, with words: what shipped, what is blocked, and why.\r\n"
    messages = {"email_long_quote.txt (plain)": long_raw,
                "1 MB plain (the long quote, extended)": long_raw + body[: 1_048_576 - len(long_raw)],
                "1 MB plain: all of it reply": long_raw[:long_raw.index(b"\r\n\r\n") + 4] +
                                               prose * (1_048_576 // len(prose)),
                "1 MB HTML: Gmail reply, blockquote history": html_mail(gmail),
                "1 MB HTML: Outlook reply, unquoted history": html_mail(outlook),
                "1 MB HTML: Word markup, all of it reply": html_mail(outlook.replace(b"border-top:solid", b"x:")),
                "1 MB plain, hostile: 400k short quote lines": long_raw[:long_raw.index(b"\r\n\r\n") + 4] +
                                                               b"> q\n\n" * 200_000,
                "1 MB HTML, hostile: unclosed tags, stray end tags": html_mail(b"<b>x" * 100_000 + b"</i>" * 100_000)}
    return [{"message": name, "KB": round(len(raw) / 1024), "parse ms": round(parse_ms(raw, runs), 1)}
            for name, raw in messages.items()]


def run(smoke: bool = False, corpora: Path = CORPORA) -> dict[str, Any] | None:
    """Every figure of this module, printed as tables; None (and a plain line) without the corpora."""
    from .__main__ import table

    if not available(corpora):
        print("\nemail corpus: skipped: ../shared/corpora not found", flush=True)
        return None
    graded = score(corpora)
    rows = [{"corpus" if k.startswith("corpus:") else "language": k.partition(":")[2] or k,
             "replies": sum(v.values()), "correct": v.get("correct", 0), "close": v.get("close", 0),
             "wrong": v.get("wrong", 0), "correct+close %": round(share(v), 1)} for k, v in graded["by"].items()]
    print(table("email replies: correct + close per corpus (target ≥ 95 %)",
                [r for r in rows if "corpus" in r]), flush=True)
    print(table("email replies: correct + close per language", sorted(
        (r for r in rows if "language" in r and r["language"] != "all"), key=lambda r: -r["replies"])), flush=True)
    overall = graded["by"]["all"]
    print(f"all: {sum(overall.values())} replies, {round(share(overall), 1)} % correct + close; wrong: "
          f"{', '.join(w['id'] for w in graded['wrong']) or 'none'}", flush=True)
    checked = check_bounces(corpora)
    kinds = Counter(c["kind"] for c in checked)
    recognised = Counter(c["kind"] for c in checked if c["recognised"])
    hard = sum(1 for c in checked if c["bounce"] and c["bounce"]["hard"])
    with_recipient = sum(1 for c in checked if c["bounce"] and c["bounce"]["recipient"])
    print(f"bounces: {recognised['bounce']}/{kinds['bounce']} recognised ({hard} hard, {with_recipient} with the "
          f"failed recipient); auto-replies: {recognised['autoreply']}/{kinds['autoreply']} recognised, "
          f"{sum(1 for c in checked if c['kind'] == 'autoreply' and c['bounce'])} taken for bounces", flush=True)
    times = timings(corpora, runs=3 if smoke else 11)
    print(table("parse time (median), the whole message through channels.email_parse.parse", times), flush=True)
    return {"replies": graded["by"], "wrong": [w["id"] for w in graded["wrong"]], "bounces": checked,
            "parse": times}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="fewer timing runs")
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="where the corpora are (default: %(default)s)")
    arguments = parser.parse_args()
    run(smoke=arguments.smoke, corpora=arguments.corpora)
