"""Every Zeek log of ../shared/corpus/zeek (TSV and JSON, plain and gzip) reads with exact
counts: its records are its non-directive, non-blank lines (counted here independently),
and records + directives + blank + bad = lines."""

from __future__ import annotations

import gzip

import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest


@pytest.fixture(scope="module")
def zeek_case(tmp_path_factory):
    from tests.conftest import corpus_path

    root = corpus_path("zeek")
    store = CaseStore(tmp_path_factory.mktemp("zeek"), create=True)
    res = ingest([str(root)], store, RunContext(), workers=2)
    return root, store, res


def _oracle(path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return sum(1 for ln in fh if ln.strip() and not ln.startswith(b"#"))


def test_every_log_reads_with_exact_counts(zeek_case):
    root, store, res = zeek_case
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert res.failed == 0 and res.unsupported == 0 and res.ingested == len(files)
    by = {a["display"]: a for a in store.artefacts.values()}
    for p in files:
        rec = by[str(p)]
        assert rec["reader"] == "zeek", p
        lines = rec["lines"]
        assert lines["bad"] == 0, p
        assert lines["records"] == _oracle(p), p
        assert lines["records"] + lines["directives"] + lines["blank"] + lines["bad"] \
            == lines["lines"], p
        assert sum(rec["records"].values()) == lines["records"], p


def test_tables_and_fields(zeek_case):
    _, store, _ = zeek_case
    conn = store.sql("SELECT count(*) AS n, count(bytes_out) AS b, min(ts) AS t "
                     "FROM net_conn").to_pylist()[0]
    assert conn["n"] == 479 + 134 + 112 and conn["b"] > 0 and conn["t"].year == 2020
    tsv = store.sql("SELECT count(*) AS n FROM dns WHERE source_file LIKE '%tsv/dns.log.gz'"
                    ).to_pylist()[0]["n"]
    js = store.sql("SELECT count(*) AS n FROM dns WHERE source_file LIKE '%json/dns.json.gz'"
                   ).to_pylist()[0]["n"]
    assert tsv == js == 53615  # the same traffic as TSV and as JSON
    sni = store.sql("SELECT count(*) AS n FROM tls WHERE server_name IS NOT NULL").to_pylist()
    assert sni[0]["n"] > 1000
    logs = {r["log"] for r in store.sql("SELECT DISTINCT log FROM net_event").to_pylist()}
    assert {"files", "rdp", "kerberos", "smb_mapping", "x509", "weird"} <= logs
