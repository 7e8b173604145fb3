"""Coverage model, posture statuses, telemetry gaps and the ATT&CK Navigator layer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import CORPUS
from tidehunt.posture import (
    DETECTORS,
    STATUSES,
    assess,
    fired_techniques,
    load_coverage,
    navigator_layer,
)

MAP = CORPUS.parent / "apt40" / "apt40_technique_detection_map.json"

#: The parts of the ATT&CK Navigator 4.5 layer format tidehunt writes (layer format 4.5:
#: name, versions, domain, techniques with techniqueID and colours, legend, gradient).
LAYER_SCHEMA = {
    "type": "object",
    "required": ["name", "versions", "domain", "techniques"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "versions": {"type": "object", "required": ["layer", "navigator", "attack"],
                     "properties": {"layer": {"const": "4.5"},
                                    "navigator": {"pattern": r"^4\.5"},
                                    "attack": {"type": "string"}}},
        "domain": {"enum": ["enterprise-attack", "mobile-attack", "ics-attack"]},
        "description": {"type": "string"},
        "sorting": {"enum": [0, 1, 2, 3]},
        "hideDisabled": {"type": "boolean"},
        "layout": {"type": "object", "properties": {
            "layout": {"enum": ["side", "flat", "mini"]}}},
        "techniques": {"type": "array", "items": {
            "type": "object",
            "required": ["techniqueID"],
            "additionalProperties": False,
            "properties": {
                "techniqueID": {"type": "string", "pattern": r"^T\d{4}(\.\d{3})?$"},
                "tactic": {"type": "string"},
                "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                "comment": {"type": "string"},
                "score": {"type": "number"},
                "enabled": {"type": "boolean"},
                "showSubtechniques": {"type": "boolean"},
                "metadata": {"type": "array", "items": {
                    "type": "object", "required": ["name", "value"],
                    "properties": {"name": {"type": "string"},
                                   "value": {"type": "string"}}}},
            }}},
        "gradient": {"type": "object", "required": ["colors", "minValue", "maxValue"]},
        "legendItems": {"type": "array", "items": {
            "type": "object", "required": ["label", "color"]}},
    },
}


def _tagged(rules_dir: Path) -> set[str]:
    out = set()
    for p in rules_dir.glob("*.yml"):
        out |= {m.upper() for m in re.findall(r"attack\.(t\d{4}(?:\.\d{3})?)", p.read_text())}
    return out


def test_every_apt40_technique_has_an_entry_and_a_way_to_be_seen():
    if not MAP.exists():
        pytest.skip("../shared/apt40 not present")
    want = {t["technique_id"] for t in json.loads(MAP.read_text())["techniques"]}
    cov = load_coverage()["techniques"]
    ids = [t["id"] for t in cov]
    assert len(ids) == len(set(ids)) == 78
    assert set(ids) == want
    from tidehunt.rulepacks import bundled_pack

    tagged = _tagged(bundled_pack())
    for t in cov:
        assert (t.get("sigmahq") or t.get("detectors") or t.get("assessment")
                or any(x == t["id"] or x.startswith(t["id"] + ".") for x in tagged)), t["id"]
        assert set(t.get("detectors", [])) <= set(DETECTORS), t["id"]


def test_named_sigmahq_rules_exist_in_the_snapshot(corpus):
    ids = set()
    for p in corpus("sigma").rglob("*.yml"):
        m = re.search(r"^id:\s*([0-9a-f-]{36})", p.read_text(errors="replace"), re.M)
        if m:
            ids.add(m.group(1))
    named = {i for t in load_coverage()["techniques"] for i in t.get("sigmahq", [])}
    assert named and not named - ids, sorted(named - ids)


def _rule(rid, techs, channels, eids, ls=("process_creation", "windows", None)):
    return {"id": rid, "type": "detection", "techniques": techs, "logsource": ls,
            "channels": channels, "event_ids": eids}


SYSMON = "microsoft-windows-sysmon/operational"
COV = {"techniques": [
    {"id": "T1059", "name": "Interpreter"},
    {"id": "T1197", "name": "BITS", "sigmahq": ["r-bits"]},
    {"id": "T1003", "name": "Dumping"},
    {"id": "T1566.001", "name": "Attachment", "detectors": ["mail"]},
]}
RULES = [
    _rule("r-ps", ["T1059.001"], ["Microsoft-Windows-Sysmon/Operational"], [1]),
    _rule("r-bits", ["T1105"], ["Microsoft-Windows-Bits-Client/Operational"], [59],
          ("bits", "windows", None)),
    _rule("r-lsass", ["T1003.001"], ["Microsoft-Windows-Sysmon/Operational"], [10],
          ("process_access", "windows", None)),
]


def test_statuses_from_rules_telemetry_and_findings():
    tele = {(SYSMON, 1): 10, (SYSMON, 10): 3}
    pos = assess(RULES, tele, {"T1003.001": 2}, COV)
    by = {t.id: t for t in pos.techniques}
    assert by["T1059"].status == "covered" and by["T1059"].rules == ["r-ps"]
    assert by["T1003"].status == "fired" and by["T1003"].findings == 2
    assert by["T1197"].status == "no_telemetry"  # named by the model, bits log absent
    assert by["T1566.001"].status == "not_covered"
    assert "mail" in by["T1566.001"].why_not()
    assert [g.logsource for g in pos.gaps] == ["bits/windows"]
    assert pos.counts() == {"fired": 1, "covered": 1, "no_telemetry": 1, "not_covered": 1}


def test_gap_list_follows_the_telemetry_removed():
    full = assess(RULES, {(SYSMON, 1): 10, (SYSMON, 10): 3}, {}, COV)
    less = assess(RULES, {(SYSMON, 10): 3}, {}, COV)
    assert "process_creation/windows" not in [g.logsource for g in full.gaps]
    gap = next(g for g in less.gaps if g.logsource == "process_creation/windows")
    assert gap.techniques == ["T1059"]
    assert "1 APT40 technique cannot be seen: T1059" in gap.message()
    assert f"{SYSMON} 1" in gap.wants


def test_navigator_layer_is_valid_and_coloured_by_status():
    pos = assess(RULES, {(SYSMON, 1): 10}, {"T1003.001": 1}, COV)
    layer = navigator_layer(pos)
    jsonschema.validate(layer, LAYER_SCHEMA)
    colours = {t["techniqueID"]: t["color"] for t in layer["techniques"]}
    assert len(set(colours.values())) == len(STATUSES)
    assert len(layer["legendItems"]) == len(STATUSES)


def test_posture_of_the_demo_case_and_without_its_sysmon_logs(tmp_path, capsys):
    from tidehunt.cli.main import main
    from tidehunt.demo.generate import FILE_SYSMON_WEB, FILE_SYSMON_WS, write_demo_evidence

    ev = tmp_path / "ev"
    files = write_demo_evidence(ev)
    assert main(["-q", "hunt", str(ev), "-o", str(tmp_path / "all")]) == 0
    rest = [str(f) for f in files if f.name not in (FILE_SYSMON_WS, FILE_SYSMON_WEB)]
    assert main(["-q", "hunt", *rest, "-o", str(tmp_path / "nosysmon")]) == 0
    capsys.readouterr()
    docs = {}
    for case in ("all", "nosysmon"):
        out = tmp_path / f"{case}.layer.json"
        assert main(["posture", str(tmp_path / case), "-f", "navigator", "--out",
                     str(out)]) == 0
        jsonschema.validate(json.loads(out.read_text()), LAYER_SCHEMA)
        assert main(["posture", str(tmp_path / case), "-f", "json"]) == 0
        docs[case] = json.loads(capsys.readouterr().out)
    fired = {t["id"] for t in docs["all"]["techniques"] if t["status"] == "fired"}
    assert {"T1505.003", "T1053.002", "T1197", "T1560", "T1567.002"} <= fired
    gone = {g["logsource"] for g in docs["nosysmon"]["gaps"]}
    had = {g["logsource"] for g in docs["all"]["gaps"]}
    assert {"file_event/windows", "network_connection/windows"} <= gone - had
    # the demo's Security log has 4688 process creation, read by process_creation rules
    assert "process_creation/windows" not in gone
    blind = {t["id"] for t in docs["nosysmon"]["techniques"] if t["status"] == "no_telemetry"}
    assert "T1053.002" not in blind  # Security 4698 still shows the AT job
    assert blind & fired  # techniques seen with Sysmon become blind without it
    report = json.loads((tmp_path / "nosysmon" / "report.json").read_text())
    assert report["stats"]["posture"]["counts"]["no_telemetry"] == len(blind)
    # every hunt writes the case's layer itself, the same as `posture -f navigator`
    written = json.loads((tmp_path / "all" / report["stats"]["posture"]["navigator_layer"])
                         .read_text())
    jsonschema.validate(written, LAYER_SCHEMA)
    assert written["techniques"] == json.loads(
        (tmp_path / "all.layer.json").read_text())["techniques"]


def test_fired_techniques_counts_each_finding_tag():
    import pyarrow as pa

    t = pa.table({"techniques": [["T1059.001", "T1105"], ["T1105"], None]})
    assert fired_techniques(t) == {"T1059.001": 1, "T1105": 2}


def test_defence_layer_model_names_the_seven_layers():
    from tidehunt.posture import load_defence_layers

    layers = load_defence_layers()["layers"]
    assert [x["id"] for x in layers] == ["mail", "vulnerability", "mfa", "segmentation",
                                         "edr", "dlp", "cloud"]
    known = {t["id"] for t in load_coverage()["techniques"]}
    for layer in layers:
        assert layer["advice"] and all(len(a) > 40 for a in layer["advice"]), layer["id"]
        assert all(re.fullmatch(r"M1\d{3}", m) for m in layer["mitigations"]), layer["id"]
        assert set(layer["techniques"]) <= known, set(layer["techniques"]) - known


def test_defence_layers_follow_what_the_case_can_see():
    from tidehunt.posture import defence_layers

    model = {"layers": [{"id": "edr", "name": "EDR", "mitigations": {"M1040": "x"},
                         "advice": ["a"], "techniques": ["T1059", "T1003"]},
                        {"id": "mail", "name": "Mail", "mitigations": {"M1049": "y"},
                         "advice": ["b"], "techniques": ["T1566.001"]}]}
    full = defence_layers(assess(RULES, {(SYSMON, 1): 5, (SYSMON, 10): 1},
                                 {"T1003.001": 1}, COV), model)
    less = defence_layers(assess(RULES, {(SYSMON, 10): 1}, {"T1003.001": 1}, COV), model)
    assert full[0]["shows"] == {"fired": ["T1003"], "covered": ["T1059"]}
    assert less[0]["missing"]["no_telemetry"] == ["T1059"]
    assert "T1059" in less[0]["missing"]["gaps"][0]
    assert full[1]["missing"]["not_covered"] == ["T1566.001"]
    assert full[1]["mitigations"] == {"M1049": "y"}


def test_posture_html_is_self_contained_and_escaped():
    from html.parser import HTMLParser

    from tidehunt import posture_html

    cov = {"techniques": [*COV["techniques"],
                          {"id": "T1001", "name": '<script>alert("x")</script>',
                           "assessment": "<img src=x onerror=alert(1)>"}]}
    pos = assess(RULES, {(SYSMON, 1): 10}, {"T1003.001": 1}, cov)
    page = posture_html.render(pos, "case <b>")

    class P(HTMLParser):
        tags: list[str] = []
        attrs: list[tuple[str, str | None]] = []
        rows: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attrs += attrs
            if tag == "tr":
                self.rows += [v or "" for k, v in attrs if k == "data-status"]

    p = P()
    p.feed(page)
    assert "script" not in p.tags and "img" not in p.tags and "b" in p.tags  # only our <b>
    assert not any(k.startswith("on") for k, _ in p.attrs)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "case &lt;b&gt;" in page
    assert sorted(p.rows) == sorted(t.status for t in pos.techniques)
    assert "http://" not in page and "https://" not in page  # nothing fetched
    assert page.count('class="layer"') == 7


def test_process_creation_reads_sysmon_1_and_security_4688_only():
    rule = _rule("r-pc", ["T1059.001"], ["Microsoft-Windows-Sysmon/Operational", "Security"],
                 [1, 4688])
    only_4688 = assess([rule], {("security", 4688): 3}, {}, COV)
    assert {t.id: t.status for t in only_4688.techniques}["T1059"] == "covered"
    none = assess([rule], {("security", 4624): 3}, {}, COV)
    (gap,) = [g for g in none.gaps if g.logsource == "process_creation/windows"]
    assert gap.wants == [f"{SYSMON} 1", "security 4688"]
