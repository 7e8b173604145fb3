"""tidehunt search: keywords across every text column, SQL, CSV/JSONL out, sandboxed."""

from __future__ import annotations

import json

import pytest

from tidehunt.case.store import CaseStore
from tidehunt.errors import ConfigError
from tidehunt.search import keywords, sql


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from tidehunt.cli.main import main

    out = tmp_path_factory.mktemp("search") / "demo"
    assert main(["-q", "demo", "-o", str(out)]) == 0
    return out / "case"


def test_keywords_find_cells_in_every_table(case):
    store = CaseStore(case)
    hits = keywords(store, ["maritime-reveiw"], limit=500).to_pylist()
    tables = {h["table"] for h in hits}
    assert {"mail"} <= tables
    assert all("maritime-reveiw" in h["value"].lower() for h in hits)
    assert {"from_addr", "from_domain"} <= {h["column"] for h in hits if h["table"] == "mail"}
    both = keywords(store, ["rclone", "dropboxapi"], match_all=True).to_pylist()
    anyw = keywords(store, ["rclone", "dropboxapi"]).to_pylist()
    assert both and len({(h["artefact"], h["locator"]) for h in both}) < len(
        {(h["artefact"], h["locator"]) for h in anyw})
    assert {h["host"] for h in both} == {"WS-ANALYST01.corp.example"}
    only = keywords(store, ["logo.aspx"], tables=["file"]).to_pylist()
    assert only and {h["table"] for h in only} == {"file"}
    assert only[0]["source_file"].endswith("logo.aspx")


def test_keyword_errors(case):
    store = CaseStore(case)
    with pytest.raises(ConfigError, match="unknown table"):
        keywords(store, ["x"], tables=["nope"])
    with pytest.raises(ConfigError, match="keyword"):
        keywords(store, [""])


def test_sql_is_sandboxed_to_the_case(case):
    store = CaseStore(case)
    t = sql(store, "SELECT count(*) AS n FROM mail")
    assert t.to_pylist()[0]["n"] == 17
    with pytest.raises(ConfigError, match="query failed"):
        sql(store, "SELECT * FROM read_csv('/etc/passwd')")


def test_cli_outputs(case, tmp_path, capsys):
    from tidehunt.cli.main import main

    assert main(["search", str(case), "-k", "EQNEDT32", "-k", "bitsadmin", "-f", "jsonl",
                 "--limit", "5"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert 0 < len(lines) <= 5 and all(x["table"] == "windows" for x in lines)
    out = tmp_path / "q.csv"
    assert main(["search", str(case), "SELECT rule_id, level FROM findings ORDER BY 1",
                 "--csv", "--out", str(out), "--limit", "1000"]) == 0
    text = out.read_text(encoding="utf-8").splitlines()
    assert text[0] == "rule_id,level" and len(text) > 50
    assert main(["search", str(case)]) == 2  # neither SQL nor -k: a usage error
