"""Every mail of ../shared/corpus/email ingests; every named attachment is found."""

from __future__ import annotations

import csv

import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest


@pytest.fixture(scope="module")
def mail_case(tmp_path_factory):
    from tests.conftest import corpus_path

    root = corpus_path("email")
    store = CaseStore(tmp_path_factory.mktemp("mail"), create=True)
    res = ingest([str(root / d) for d in ("phishing_pot", "parser-edge-cases", "msg")],
                 store, RunContext(), workers=2)
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    return store, res, manifest


def test_every_mail_is_read_without_failure(mail_case):
    store, res, manifest = mail_case
    assert res.failed == 0 and res.unsupported == 0
    assert res.ingested == len(manifest)
    readers = {r["display"].rsplit("/", 1)[-1]: r["reader"] for r in store.artefacts.values()}
    assert {readers[m["file"].rsplit("/", 1)[-1]] for m in manifest
            if m["file"].endswith(".msg")} == {"outlook_msg"}
    mails = store.sql("SELECT source_file, count(*) AS n FROM mail GROUP BY 1").to_pylist()
    assert len(mails) == len(manifest) and {m["n"] for m in mails} == {1}


def test_every_named_attachment_is_accounted_for(mail_case):
    store, _, manifest = mail_case
    rows = store.sql("SELECT source_file, list(filename_raw) AS names, list(sha256) AS h "
                     "FROM mail_attachment GROUP BY 1").to_pylist()
    have = {r["source_file"].split("corpus/email/")[-1]: r for r in rows}
    for m in manifest:
        expected = [x for x in m["attachments"].split("|") if x]
        names = [n or "" for n in have.get(m["file"], {}).get("names", [])]
        for e in expected:  # the manifest cuts long lists: a prefix counts
            assert any(n == e or n.startswith(e) for n in names), (m["file"], e, names)
    assert all(len(h) == 64 for r in rows for h in r["h"])


def test_encoded_words_are_decoded(mail_case):
    store, _, _ = mail_case
    import re

    rows = store.sql("SELECT subject, from_name, defects FROM mail").to_pylist()
    # left encoded only where the header was unreadable (a defect says so) or the word is
    # glued to other text, which RFC 2047 does not allow
    undecoded = [r for r in rows for v in (r["subject"], r["from_name"])
                 if v and re.search(r"(^|\s)=\?[^?]+\?[bqBQ]\?[^?]*\?=(\s|$)", v)
                 and not r["defects"]]
    assert undecoded == []
    assert any(r["subject"] and any(ord(c) > 0x2000 for c in r["subject"]) for r in rows)


def test_every_attachment_is_analysed_or_warned(mail_case):
    """Each attachment row is typed and hashed; one not fully analysed has a warning on
    its evidence file that names it, and its copy is in the case."""
    store, _, _ = mail_case
    rows = store.sql("SELECT _artefact, _locator, filename, kind, sha256, note, extracted, "
                     "size FROM mail_attachment").to_pylist()
    assert rows
    warned = {(aid, loc) for aid, rec in store.artefacts.items()
              for w in rec["warnings"] for loc in w.get("locators", w.get("examples", []))
              if "analysed" in w["message"]}
    for r in rows:
        assert r["kind"] and len(r["sha256"]) == 64, r
        if r["note"] and not r["note"].startswith("embedded Outlook message"):
            assert (r["_artefact"], r["_locator"]) in warned, r
        if r["size"]:
            assert r["extracted"] and (store.root / r["extracted"]).is_file(), r
    # the attachments are in the file table too
    n_file = store.sql("SELECT count(*) AS n FROM file WHERE origin = 'mail'").to_pylist()
    assert n_file[0]["n"] == len(rows)
