"""Property tests: mail sources (.eml, mbox, Outlook .msg) on generated messages with
random headers, MIME structures and attachments, mutated; and on random bytes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures import maldocs as md
from tests.fuzz import seeds
from tests.fuzz._contract import examples, hostile_text, mutated, run_source

HEADERS = ["Received", "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
           "Return-Path", "Authentication-Results", "DKIM-Signature", "Content-Type",
           "Content-Transfer-Encoding", "MIME-Version", "X-Originating-IP", "ARC-Seal",
           "Sender", "Content-Disposition"]
VALUES = st.one_of(hostile_text, st.sampled_from([
    "=?utf-8?b?SGVsbG8=?=", "=?utf-8?q?a=20b?=", "=?x-unknown?b?@@@?=", "<a@b>",
    "multipart/mixed; boundary=\"b1\"", "multipart/mixed", "text/html; charset=utf-7",
    "base64", "quoted-printable", "attachment; filename*=utf-8''%E2%80%AE.exe",
    "Mon, 32 Foo 2024 25:61:00 +9999", "spf=pass dkim=fail dmarc=none", "from x ([1.2.3.4])",
    "\"Bob\" <bob@example.com>, <<>>, @,", "a" * 300]))
#: generated once: a strategy must draw the same bytes for the same choices
ATTACHMENTS = [v for _, v in sorted({**seeds.office(), **seeds.lnk(), **seeds.archives()}
                                    .items())]


@st.composite
def message(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        atts = [(draw(st.sampled_from(["a.docx", "b.lnk", "c.zip", "d.rtf", "e.bin"])),
                 draw(st.sampled_from(ATTACHMENTS)), "application/octet-stream")
                for _ in range(draw(st.integers(0, 2)))]
        raw = md.eml(" ".join(draw(hostile_text).splitlines()),
                     "Alice <alice@example.com>", "bob@corp.example",
                     draw(hostile_text) + " password: infected", atts,
                     html=draw(st.one_of(st.none(), hostile_text)))
    else:
        lines = [f"{draw(st.sampled_from(HEADERS))}: {draw(VALUES)}"
                 for _ in range(draw(st.integers(2, 12)))]
        body = ["", draw(hostile_text), "--b1", "Content-Type: text/plain", "",
                draw(hostile_text), "--b1", "Content-Type: application/octet-stream",
                "Content-Transfer-Encoding: base64", 'Content-Disposition: attachment; '
                'filename="x.zip"', "", draw(st.sampled_from(["UEsDBA==", "!!!", "QUJD"])),
                "--b1--"]
        raw = "\r\n".join(["From: a@b.example", "Subject: s", *lines, *body]).encode(
            "utf-8", "replace")
    return draw(mutated(raw, max_ops=6))


@settings(max_examples=examples(1.5))
@given(message())
def test_email_mime(data):
    run_source("email_mime", data, filename="m.eml", whole_sniff=True)


@settings(max_examples=examples(1))
@given(st.lists(message(), min_size=1, max_size=3), st.booleans())
def test_mbox(msgs, escaped):
    sep = b"From alice@example.com Mon Jan  1 00:00:00 2024\n"
    body = b"".join(sep + (m.replace(b"\nFrom ", b"\n>From ") if escaped else m) + b"\n\n"
                    for m in msgs)
    run_source("mbox", body, filename="inbox", whole_sniff=True)


MSG_SEEDS = [seeds.outlook_msg()] + [p.read_bytes() for p in
                                     seeds.corpus_files("email/msg/*.msg", limit=4)]


@settings(max_examples=examples(1.5))
@given(st.sampled_from(range(len(MSG_SEEDS))).flatmap(
    lambda i: mutated(MSG_SEEDS[i], max_ops=10)))
def test_outlook_msg(data):
    run_source("outlook_msg", data, filename="m.msg", whole_sniff=True)


@settings(max_examples=examples(1))
@given(st.binary(max_size=4096), st.sampled_from(["email_mime", "mbox", "outlook_msg"]))
def test_random_bytes(data, name):
    run_source(name, data)
