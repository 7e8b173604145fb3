"""Rule export through the pySigma Splunk, Elasticsearch and Kusto backends."""

from __future__ import annotations

import json

import pytest

from tidehunt.export import TARGETS, export
from tidehunt.rulepacks import bundled_pack


def _pack_rules() -> int:
    import yaml

    n = 0
    for p in bundled_pack().glob("*.yml"):
        n += sum(1 for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict))
    return n


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_rule_converted_or_listed_with_a_reason(target):
    res = export([str(bundled_pack())], target)
    assert len(res.converted) + len(res.failed) + len(res.included) == _pack_rules()
    assert len(res.converted) >= 22
    assert all(f["reason"] and f["id"] for f in res.failed)
    assert all(c.queries and all(q.strip() for q in c.queries) for c in res.converted)


def test_queries_use_each_targets_field_names():
    by = {t: {c.title: "\n".join(c.queries) for c in export([str(bundled_pack())], t).converted}
          for t in TARGETS}
    title = "BITSAdmin Creates a Transfer Job or Notify Command"
    assert "bitsadmin" in by["splunk"][title].lower()
    assert "process.executable" in by["elastic"][title] or "process.name" in by["elastic"][title]
    assert "DeviceProcessEvents" in by["kusto"][title]


def test_splunk_converts_the_correlation_rules_it_supports():
    res = export([str(bundled_pack())], "splunk")
    assert {f["title"] for f in res.included} >= {"Local Host Reconnaissance Command"}
    burst = next(c for c in res.converted if c.title.startswith("Burst of Distinct Discovery"))
    assert "stats" in burst.queries[0] and "dc(" in burst.queries[0].replace(" ", "")
    assert any("temporal" in f["reason"] for f in res.failed)  # said, not dropped


def test_cli_export_json(tmp_path, capsys):
    from tidehunt.cli.main import main

    out = tmp_path / "q.json"
    assert main(["rules", "export", "-t", "elastic", "-f", "json", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["target"] == "elastic" and doc["converted"] and "failed" in doc
    assert "could not be expressed" in capsys.readouterr().err
