"""Hostile rules and configuration: Sigma regexes built for catastrophic backtracking
(ReDoS), regexes RE2 cannot run, and YAML bombs ("billion laughs", a value that contains
itself, nesting too deep) in rule files, rule archives, the org profile (``--org``),
network and sign-in mappings (``--net-mapping``, ``--auth-mapping``), risky-network lists
and rule exports.

Sigma ``|re`` is matched by Arrow's RE2 (``pyarrow.compute.match_substring_regex``),
which runs in time linear in the input: no backtracking, so no guard is needed there; the
case proves it on inputs where a backtracking engine (Python ``re``) would not finish.
YAML is measured as if its aliases were expanded before anything walks it.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tidehunt.case.store import CaseStore
from tidehunt.cli.main import main
from tidehunt.context import RunContext
from tidehunt.detect.sigma.detector import SigmaDetector
from tidehunt.detect.sigma.findings import concat
from tidehunt.detect.sigma.loader import load_plan
from tidehunt.errors import ConfigError
from tidehunt.ingest import ingest

MiB = 1 << 20
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def _within(seconds: float, fn, *args):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) past ``seconds``."""
    out: dict[str, object] = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: catastrophic backtracking?"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def _rule(rid: str, detection: dict, title: str = "t") -> str:
    return yaml.safe_dump({"title": title, "id": rid, "status": "test", "level": "high",
                           "logsource": {"category": "process_creation", "product": "windows"},
                           "detection": detection})


def _event(i: int, cmd: str) -> str:
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "x"}}, "EventID": 1, "EventRecordID": i,
        "Channel": SYSMON, "Computer": "ws1",
        "TimeCreated": {"#attributes": {"SystemTime": f"2026-10-06T01:00:{i:02d}Z"}}},
        "EventData": {"CommandLine": cmd, "Image": "C:\\x.exe"}}})


EVIL = {  # pattern -> record ids it matches among the events below
    "(a+)+$": {2, 4},
    "^(a|aa)+$": {2},
    "(\\w+\\s?)*$": {1, 2, 3, 4},   # matches the empty end of any line
    "^(([a-z])+.)+[A-Z]([a-z])+$": set(),
    "(.*a){20}": {1, 2, 4},
}
EVENTS = {1: "a" * 50_000 + "!", 2: "a" * 40, 3: "!" * 10_000, 4: "xa" * 30_000}


@pytest.fixture(scope="module")
def redos(tmp_path_factory):
    root = tmp_path_factory.mktemp("redos")
    ev = root / "events.json"
    ev.write_text("\n".join(_event(i, c) for i, c in EVENTS.items()) + "\n")
    rules = root / "rules"
    rules.mkdir()
    for n, pat in enumerate(EVIL):
        (rules / f"r{n}.yml").write_text(_rule(
            f"5f0e9d1c-1111-4222-8333-9444555666{n:02d}",
            {"sel": {"CommandLine|re": pat}, "condition": "sel"}, title=pat))
    (rules / "bad.yml").write_text(_rule("5f0e9d1c-1111-4222-8333-944455566699", {
        "sel": {"CommandLine|re": "(a)\\1"}, "condition": "sel"}, title="backref"))
    (rules / "huge.yml").write_text(_rule("5f0e9d1c-1111-4222-8333-944455566698", {
        "sel": {"CommandLine|re": "((a{100}){100}){100}"}, "condition": "sel"}, title="huge"))
    store = CaseStore(root / "case", create=True)
    ingest([str(ev)], store, RunContext(), workers=1)
    return root, store, rules


def test_redos_patterns_run_in_linear_time_with_right_results(redos):
    _, store, rules = redos
    plan = load_plan([rules], use_cache=False)

    def hunt():
        det = SigmaDetector(plan)
        return concat(pa.Table.from_batches([b]) for b in det.run(store, RunContext()))

    findings = _within(60, hunt).to_pylist()
    rid = {r["_locator"]: r["record_id"] for r in
           store.sql("SELECT _locator, record_id FROM windows").to_pylist()}
    by_title: dict[str, set[int]] = {t: set() for t in EVIL}
    for f in findings:
        for e in f["evidence"]:
            by_title[f["rule_title"]].add(rid[e["locator"]])
    assert by_title == EVIL


def test_patterns_re2_cannot_run_are_rule_errors_not_hangs(redos, capsys):
    _, _, rules = redos
    plan = load_plan([rules], use_cache=False)
    reasons = {e["title"]: e["reason"] for e in plan.errors}
    assert "not supported by RE2" in reasons["backref"]
    assert "not supported by RE2" in reasons["huge"]
    assert len(plan.rules) == len(EVIL)  # the others still load
    rc = _within(120, main, ["rules", "lint", str(rules)])
    out = capsys.readouterr().out
    assert rc == 4 and "backref" in out and "RE2" in out


# ---- YAML bombs -------------------------------------------------------------------------
def laughs(key: str, levels: int = 9) -> str:
    """``key:`` holding nine lists of nine of the one before: 9**9 strings expanded."""
    out = [f"{key}:", '  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        n, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        out.append(f"  - &{n} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(out) + "\n"


RULE_HEAD = """title: bomb
id: 11111111-1111-4111-8111-111111111111
status: test
logsource: {product: windows, category: process_creation}
detection:
  sel:
    CommandLine|contains: x
  condition: sel
"""


def _bounded(fn, *args, limit: int = 64 * MiB, seconds: float = 30):
    """``fn(*args)`` finishing in time and in bounded Python memory."""
    tracemalloc.start()
    try:
        value = _within(seconds, fn, *args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"{peak / MiB:.0f} MiB"
    return value


@pytest.mark.parametrize("key", ["references", "falsepositives", "tags", "x_custom"])
def test_rule_file_bomb_is_a_lint_entry(tmp_path, key):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bomb.yml").write_text(RULE_HEAD + laughs(key))
    (rules / "good.yml").write_text(_rule("22222222-2222-4222-8222-222222222222", {
        "sel": {"CommandLine|contains": "whoami"}, "condition": "sel"}))
    plan = _bounded(load_plan, [rules])
    assert len(plan.rules) == 1  # the good rule still loads
    (err,) = plan.errors
    assert err["path"].endswith("bomb.yml") and "YAML bomb" in err["reason"]


def test_rule_archive_bomb_and_self_reference(tmp_path, capsys):
    pack = tmp_path / "pack.zip"
    with zipfile.ZipFile(pack, "w") as zf:
        zf.writestr("rules/bomb.yml", RULE_HEAD + laughs("references"))
        zf.writestr("rules/self.yml", RULE_HEAD + "references: &r [x, *r]\n")
        zf.writestr("rules/deep.yml", RULE_HEAD + "references: " + "[" * 1500 + "]" * 1500)
    plan = _within(60, load_plan, [pack])  # (no tracemalloc: it slows deep recursion 25x)
    reasons = {e["path"].rsplit("/", 1)[-1]: e["reason"] for e in plan.errors}
    assert "YAML bomb" in reasons["bomb.yml"] and "YAML bomb" in reasons["self.yml"]
    assert reasons["deep.yml"]  # too deep for the parser: an error, not a crash
    rc = _within(60, main, ["rules", "lint", str(pack)])
    out = capsys.readouterr().out
    assert rc == 4 and out.count("FAILED") == 3 and "YAML bomb" in out
    assert ": : " not in out  # a file refused before its title is read: no empty name


def test_rule_export_bomb_is_a_failed_entry(tmp_path):
    from tidehunt.export import export

    (tmp_path / "bomb.yml").write_text(RULE_HEAD + laughs("references"))
    res = _bounded(export, [str(tmp_path)], "splunk")
    assert not res.converted and "YAML bomb" in res.failed[0]["reason"]


def _org(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "org.yaml"
    p.write_text(body)
    return p


@pytest.mark.parametrize("body", [
    laughs("own_domains"), laughs("service_accounts"),
    "own_domains: &d [corp.example, *d]\n",
    "own_domains: " + "[" * 1500 + "]" * 1500 + "\n",
], ids=["laughs-domains", "laughs-service-accounts", "self-reference", "nested-1500"])
def test_org_profile_bombs_are_config_errors(tmp_path, body):
    from tidehunt.org import OrgProfile

    p = _org(tmp_path, body)
    # (no tracemalloc for the deep one: it slows deep recursion 25 times)
    run = _within if body.startswith("own_domains: [") else _bounded
    args = (30, OrgProfile.load, p) if run is _within else (OrgProfile.load, p)
    with pytest.raises(ConfigError, match=r"org\.yaml: .*(YAML bomb|nested too deeply)"):
        run(*args)


@pytest.mark.parametrize(("what", "body"), [
    ("net", "name: x\nformat: csv\ntable: net_conn\n" + laughs("match")),
    ("auth", laughs("ts")),
    ("risky", laughs("tor")),
])
def test_mapping_and_list_bombs_are_config_errors(tmp_path, what, body):
    from tidehunt.identity import load_risky
    from tidehunt.sources._netmap import load_net_mappings
    from tidehunt.sources.auth_csv import load_auth_mapping

    p = tmp_path / f"{what}.yml"
    p.write_text(body)
    load = {"net": load_net_mappings, "auth": load_auth_mapping, "risky": load_risky}[what]
    with pytest.raises(ConfigError, match="YAML bomb"):
        _bounded(load, str(p))


def test_cli_exit_codes_for_config_bombs(tmp_path, capsys):
    ev = tmp_path / "events.json"
    ev.write_text(_event(1, "whoami") + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(_rule("33333333-3333-4333-8333-333333333333", {
        "sel": {"CommandLine|contains": "whoami"}, "condition": "sel"}))
    net = tmp_path / "net.yml"
    net.write_text("name: x\nformat: csv\ntable: net_conn\n" + laughs("match"))
    rc = _within(60, main, ["-q", "ingest", str(ev), "-o", str(tmp_path / "case"),
                            "--net-mapping", str(net)])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "net.yml" in err and "YAML bomb" in err
    org = _org(tmp_path, laughs("own_domains"))
    rc = _within(120, main, ["-q", "hunt", str(ev), "-o", str(tmp_path / "case"),
                             "--rules", str(rules), "--org", str(org), "--no-feeds"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "org.yaml" in err and "YAML bomb" in err
