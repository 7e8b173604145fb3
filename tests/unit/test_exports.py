"""Standard exports of the demo case: each validates against its format and loads back
with the library that reads it (stix2, PyMISP, csv, jsonschema for the Navigator layer)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import jsonschema
import pytest

from tests.unit.test_posture import LAYER_SCHEMA
from tidehunt import registry
from tidehunt.model.report import RunReport


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tidehunt.cli.main import main

    out = tmp_path_factory.mktemp("exports") / "demo"
    assert main(["-q", "demo", "-o", str(out)]) == 0
    case = out / "case"
    assert main(["-q", "export", str(case)]) == 0
    report = RunReport.from_json((case / "report.json").read_bytes())
    return case, report, report.load_findings(case)


def _render(name, report, findings) -> bytes:
    buf = io.BytesIO()
    registry.load("renderers", name).render(report, findings, buf)
    return buf.getvalue()


def test_export_command_writes_every_file(demo):
    case = demo[0]
    names = sorted(p.name for p in (case / "exports").iterdir())
    assert names == ["findings.ecs.jsonl", "misp-event.json", "navigator-layer.json",
                     "stix-bundle.json", "timesketch.csv"]


def test_timesketch_csv_has_the_required_columns(demo):
    case, report, _ = demo
    text = (case / "exports" / "timesketch.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == report.findings_count
    for r in rows:
        assert r["message"] and r["timestamp_desc"] == "tidehunt finding"
        if r["datetime"]:
            t = datetime.fromisoformat(r["datetime"])
            assert int(t.timestamp() * 1_000_000) == int(r["timestamp"])
    assert any(r["rule_id"] == "th-analytic-0032" for r in rows)


def test_ecs_documents(demo):
    case, report, _ = demo
    docs = [json.loads(x) for x in (case / "exports" / "findings.ecs.jsonl").read_text(
        encoding="utf-8").splitlines()]
    assert len(docs) == report.findings_count
    for d in docs:
        assert d["event"]["kind"] == "alert" and d["ecs"]["version"].startswith("8.")
        assert d["threat"]["framework"] == "MITRE ATT&CK"
        assert all(t["id"].startswith("T") and "." not in t["id"]
                   for t in d["threat"]["technique"])
    web = [d for d in docs if d.get("source", {}).get("ip") == "203.0.113.77"]
    assert web and all("203.0.113.77" in d["related"]["ip"] for d in web)


def test_navigator_layer_is_valid(demo):
    case, _, findings = demo
    layer = json.loads((case / "exports" / "navigator-layer.json").read_text())
    jsonschema.validate(layer, LAYER_SCHEMA)
    ids = {t["techniqueID"]: t for t in layer["techniques"]}
    fired = {t for row in findings.column("techniques").to_pylist() for t in row}
    assert set(ids) == fired and "T1566.001" in ids
    assert ids["T1566.001"]["score"] >= 1


def test_stix_bundle_parses_with_stix2_and_is_stable(demo):
    import stix2

    case, report, findings = demo
    raw = (case / "exports" / "stix-bundle.json").read_text(encoding="utf-8")
    bundle = stix2.parse(raw, allow_custom=False)
    types = {o.type for o in bundle.objects}
    assert {"identity", "attack-pattern", "sighting", "indicator"} <= types
    inds = {o.name: o for o in bundle.objects if o.type == "indicator"}
    assert "domain maritime-reveiw.example" in inds and "ip 203.0.113.77" in inds
    assert inds["domain maritime-reveiw.example"].pattern == \
        "[domain-name:value = 'maritime-reveiw.example']"
    assert not any("dropbox" in n for n in inds)  # abused services are not indicators
    by_id = {o.id for o in bundle.objects}
    assert all(o.sighting_of_ref in by_id for o in bundle.objects if o.type == "sighting")
    assert _render("stix", report, findings) == _render("stix", report, findings)


def test_misp_event_loads_with_pymisp(demo):
    from pymisp import MISPEvent

    case, _, _ = demo
    ev = MISPEvent()
    ev.load((case / "exports" / "misp-event.json").read_text(encoding="utf-8"))
    values = {a.value: a for a in ev.attributes}
    assert values["maritime-reveiw.example"].type == "domain"
    assert values["203.0.113.77"].type == "ip-src"
    assert values["editor@maritime-reveiw.example"].type == "email-src"
    assert all(a.to_ids is False for a in ev.attributes)
    assert any("T1566.001" in t.name for t in ev.tags)
    assert "INC-" in ev.info
