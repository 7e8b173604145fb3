"""Every file of the corpus's ``evtx-malformed/``, driven by its ``manifest.csv``: each is
salvaged to at least the records the manifest gives, each defect gives one warning that
names the file, and the whole folder goes through ``ingest`` into a case with nothing lost.

The reader-level golden test (``tests/unit/test_sources.py::test_malformed_evtx_salvaged``)
shares the expected defects with this one (``tests/fixtures/evtx_malformed.py``); here the
manifest decides which files are checked, so a file added to the corpus is checked too.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import corpus_path
from tests.fixtures.evtx_malformed import DEFECTS, RECORDS, malformed_rows
from tests.robustness.helpers import read
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest
from tidehunt.sources.evtx import EvtxSource

ROWS = malformed_rows() or [None]  # None: the corpus is absent, the case skips


def _kind(message: str) -> str:
    """A warning's kind: its message without the bytes, numbers and places it quotes."""
    return re.sub(r"\d+", "N", re.sub(r"`[^`]*`", "``", message))


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"][:40] if r else "corpus")
def test_each_malformed_file_is_salvaged_with_one_warning_per_defect(row):
    folder = corpus_path("evtx-malformed")
    assert row is not None
    name = row["file"]
    assert name in DEFECTS, f"{name}: new in the manifest; add its defects to the fixture"
    table, ctx, _ = read(folder / name, display=name, source=EvtxSource)
    assert table.num_rows >= int(row[RECORDS])
    messages = [w.message for w in ctx.warnings]
    for needle in DEFECTS[name]:
        assert any(needle in m for m in messages), (needle, messages)
    kinds = [_kind(m) for m in messages]
    assert len(kinds) == len(set(kinds)), f"a defect reported more than once: {messages}"
    for w in ctx.warnings:
        assert w.path == name and w.count >= 1
        if "chunk" in w.message or "truncated" in w.message:
            assert w.locators, w  # chunk and truncation defects say where
    if row["first_error"]:  # the parser stopped somewhere: a warning says so
        assert ctx.warnings


def test_malformed_records_keep_their_hostile_characters():
    table, ctx, _ = read(corpus_path("evtx-malformed/pyevtx-dns_log_malformed.evtx"),
                         source=EvtxSource)
    names = table.column("QNAME").to_pylist()
    assert table.num_rows == 5 and ctx.warnings == []
    assert any("\x01" in n for n in names)  # kept as the log has it, not dropped


def test_the_whole_folder_ingests_with_every_record(tmp_path):
    folder = corpus_path("evtx-malformed")
    rows = {r["file"]: r for r in malformed_rows()}
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(folder)], store, RunContext(), workers=1)
    assert res.failed == 0 and res.ingested == len(rows)
    by_name = {a["display"].rsplit("/", 1)[-1]: a for a in store.artefacts.values()}
    for name, row in rows.items():
        rec = by_name[name]
        assert rec["status"] == "ingested" and rec["reader"] == "evtx"
        assert rec["records"].get("windows", 0) >= int(row[RECORDS]), name
        for needle in DEFECTS[name]:
            assert any(needle in w["message"] for w in rec["warnings"]), (name, needle)
    total = store.sql("SELECT count(*) AS n, count(DISTINCT (_artefact, _locator)) AS d "
                      "FROM windows").to_pylist()[0]
    assert total["n"] == total["d"] == sum(sum(a["records"].values())
                                           for a in store.artefacts.values())
