"""MIME messages as mail servers hand them over (any bytes, lying charsets, broken encodings, odd
structure): parsed into a message taskbot can store, or None; never an exception, and attachments
stay in their folder."""

from __future__ import annotations

import base64
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from channels.email_parse import Ours, parse
from engine.bounds import check_value
from engine.errors import InvalidInput
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import ANY_CHAR

OURS = Ours("tasks", "example.com")
BYTES = st.binary(max_size=80)
WORDS = st.text(ANY_CHAR, max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass"))
HEADER_VALUE = st.one_of(
    BYTES, WORDS,
    st.sampled_from([b"=?utf-8?b?w6k=?=", b"=?utf-8?b?!!!?=", b"=?x-unknown?q?abc?=", b"=?utf-8?q?caf=E9?=",
                     b"=?iso-8859-1?q?caf=E9?=", b"\xff\xfe", b"<a@b>", b"<>", b"ann@example.com",
                     b"tasks+0123abcd@example.com", b"\"Ann \xe9\" <ann@example.com>", b"(comment) <x@y.z>",
                     b"Ann <ann@example.com>, =?utf-8?b?w6k=?= <b@example.com>", b"a" * 300]))
CHARSET = st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "utf-7", "x-unknown",
                           "", '"utf-8"', "utf-8; format=flowed; delsp=yes", "\xff"])
ENCODING = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "garbage"])
SUBTYPE = st.sampled_from(["plain", "html", "calendar", "rfc822", "delivery-status"])


@st.composite
def part(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One MIME part: headers and a body, sometimes itself multipart."""
    if depth < 2 and draw(st.integers(min_value=0, max_value=4)) == 0:
        boundary = draw(st.sampled_from([b"b1", b"==x==", b"", b"\xff"]))
        inner = [draw(part(depth + 1)) for _ in range(draw(st.integers(min_value=0, max_value=3)))]
        kind = draw(st.sampled_from([b"mixed", b"alternative", b"report", b"related"]))
        body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in inner) + b"--" + boundary + b"--\r\n"
        return b"Content-Type: multipart/" + kind + b'; boundary="' + boundary + b'"\r\n\r\n' + body
    subtype = draw(SUBTYPE)
    maintype = "message" if subtype in ("rfc822", "delivery-status") else "text"
    charset, encoding = draw(CHARSET), draw(ENCODING)
    text = draw(st.one_of(st.text(ANY_CHAR, max_size=200), st.sampled_from([
        "Shipped the parser.\n\nOn Mon, Ann wrote:\n> What did you ship?", "<p>yes</p><blockquote>old</blockquote>",
        "<html><body><div>a<br>b</div><script>x</script></body></html>", "-- \nsig", "line \nflowed"])))
    raw = text.encode("utf-8", "surrogatepass")
    if encoding == "base64":
        raw = draw(st.one_of(st.just(base64.b64encode(raw)), BYTES))
    headers = f"Content-Type: {maintype}/{subtype}; charset={charset}\r\nContent-Transfer-Encoding: {encoding}\r\n"
    if draw(st.booleans()):
        headers += "Content-Disposition: attachment; filename=" + draw(st.sampled_from(
            ["../../etc/passwd", "a.txt", "", "con", "\\\\server\\x", ".hidden", "x" * 300])) + "\r\n"
    return headers.encode("utf-8", "surrogatepass") + b"\r\n" + raw


@st.composite
def message(draw: st.DrawFn) -> bytes:
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(st.binary(max_size=400))
    headers = []
    for name in ("From", "To", "Subject", "Message-ID", "In-Reply-To", "References", "Auto-Submitted", "Precedence",
                 "Date", "Delivered-To"):
        if draw(st.booleans()):
            headers.append(name.encode() + b": " + draw(HEADER_VALUE))
    if draw(st.integers(min_value=0, max_value=3)):
        headers.append(b"From: " + draw(st.sampled_from([b"ann@example.com", b"Ann <ann@example.com>"])))
    lines = b"\r\n".join(headers) + b"\r\nMIME-Version: 1.0\r\n" + draw(part())
    return lines if draw(st.booleans()) else lines.replace(b"\r\n", b"\n")


@FUZZ
@given(message())
def test_any_mail_is_parsed_into_something_storable_or_none(tmp_path: Path, raw: bytes) -> None:
    inbound = parse(raw, OURS, tmp_path / "attachments")
    if inbound is None:
        event("no sender")
        return
    event("parsed" + (" with attachments" if inbound.meta.get("attachments") else ""))
    try:
        check_value({"text": inbound.text, "sender": inbound.sender, "provider_id": inbound.provider_id,
                     "reply_to": inbound.reply_to, "meta": inbound.meta})  # what Inbox.receive refuses
    except InvalidInput as exc:
        raise AssertionError(f"parsed mail that cannot be stored: {exc}") from None
    for saved in inbound.meta.get("attachments", []):
        assert Path(saved["path"]).resolve().is_relative_to((tmp_path / "attachments").resolve())
