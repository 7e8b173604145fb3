"""The correlator: incidents from shared entities within a gap, steps in order, scores with
their reasons, the same output for the same findings."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa

from tidehunt.correlate import correlate, entities
from tidehunt.model.finding import FINDINGS_SCHEMA

T0 = datetime(2026, 10, 6, 1, 0, tzinfo=UTC)


def _f(n: int, minutes: float, host: str | None, level: str = "high",
       tactics: tuple[str, ...] = ("execution",), user: str | None = None,
       src: str | None = None, dst: str | None = None, fields: dict | None = None,
       rule: str | None = None, evidence: list[dict] | None = None) -> dict:
    ts = T0 + timedelta(minutes=minutes)
    return {"finding_id": f"f{n:04d}", "ts": ts, "ts_last": ts, "rule_id": rule or f"r{n}",
            "rule_title": f"Rule {rule or n}", "engine": "sigma", "level": level,
            "severity": 3, "techniques": ["T1059"], "tactics": list(tactics), "host": host,
            "user": user, "src": src, "dst": dst, "channel": None, "event_id": None,
            "summary": f"finding {n}", "details": None,
            "evidence": evidence or [{"table": "windows", "source_file": "x.evtx",
                                      "artefact": "a", "record_id": n, "locator": str(n)}],
            "fields": orjson.dumps(fields).decode() if fields else None}


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)


def test_two_intrusions_sharing_no_entity_stay_apart():
    a = [_f(1, 0, "WS01.corp.example", user="CORP\\alice", tactics=("initial-access",)),
         _f(2, 5, "WS01.corp.example", user="CORP\\alice", tactics=("persistence",)),
         _f(3, 30, "WS01", src="203.0.113.5", tactics=("command-and-control",))]
    b = [_f(4, 2, "SRV9.corp.example", user="CORP\\bob", tactics=("initial-access",)),
         _f(5, 7, "srv9", src="198.51.100.7", tactics=("exfiltration",)),
         # the same generic accounts on both hosts link nothing
         _f(6, 8, "SRV9", user="NT AUTHORITY\\SYSTEM"), _f(7, 9, "WS01", user="SYSTEM")]
    incs = correlate(_table(a + b))
    assert len(incs) == 2
    assert [set(i.findings) for i in incs] == [{"f0001", "f0002", "f0003", "f0007"},
                                               {"f0004", "f0005", "f0006"}]
    assert incs[0].hosts == ["ws01"] and incs[1].hosts == ["srv9"]


def test_a_shared_address_links_two_hosts():
    rows = [_f(1, 0, "WEB01", src="203.0.113.77", tactics=("initial-access",)),
            _f(2, 40, "DC01", fields={"IpAddress": "10.0.0.15", "WorkstationName": "WEB01"},
               tactics=("lateral-movement",)),
            _f(3, 90, "DC01", level="medium", tactics=("defense-evasion",))]
    (inc,) = correlate(_table(rows))
    assert inc.hosts == ["dc01", "web01"]
    assert [s.phase for s in inc.steps] == ["initial-access", "lateral-movement",
                                            "defense-evasion"]
    assert any("host:web01" in r for r in inc.reasons)
    assert inc.score > sum((5, 5, 2))  # more tactics and hosts raise it


def test_gap_splits_and_joins():
    rows = [_f(1, 0, "WS01"), _f(2, 60 * 24 * 5, "WS01")]  # five days apart
    assert len(correlate(_table(rows))) == 2
    assert len(correlate(_table(rows), timedelta(days=6))) == 1


def test_low_lone_findings_are_not_incidents():
    rows = [_f(1, 0, "WS01", level="low"), _f(2, 1, "WS02", level="medium")]
    assert correlate(_table(rows)) == []


def test_mail_findings_join_the_host_through_the_message():
    ev_mail = [{"table": "mail", "source_file": "lure.eml", "artefact": "m1",
                "record_id": None, "locator": "message"}]
    ev_att = [{"table": "mail_attachment", "source_file": "lure.eml", "artefact": "m1",
               "record_id": None, "locator": "message/attachment 0"}]
    rows = [_f(1, 0, None, tactics=("initial-access",), src="x@evil.example",
               evidence=ev_att),
            _f(2, 1, "WS01", level="critical", tactics=("initial-access", "execution"),
               evidence=[*ev_mail, {"table": "windows", "source_file": "s.json",
                                    "artefact": "w", "record_id": 9, "locator": "9"}]),
            _f(3, 2, "WS01", tactics=("execution",))]
    (inc,) = correlate(_table(rows))
    assert set(inc.findings) == {"f0001", "f0002", "f0003"}
    assert "mail:m1/message" in entities(rows[0])
    assert inc.steps[0].narrative().startswith("2026-10-06 01:00:00 UTC in the mail")


def test_steps_merge_one_rule_on_one_host_and_ids_are_stable():
    rows = [_f(i, i, "WS01", rule="same") for i in range(1, 6)] + [_f(9, 3, "WS01")]
    a = [i.to_dict() for i in correlate(_table(rows))]
    b = [i.to_dict() for i in correlate(_table(list(reversed(rows))))]
    assert a == b
    (inc,) = a
    assert [len(s["findings"]) for s in inc["steps"]] == [5, 1]
    assert inc["id"].startswith("INC-") and len(inc["id"]) == 14
    assert "(+4 more)" in inc["steps"][0]["narrative"]


def test_demo_case_is_one_incident_from_the_watering_hole_to_the_upload(tmp_path):
    from tidehunt.cli.main import main
    from tidehunt.model.report import RunReport

    assert main(["-q", "demo", "-o", str(tmp_path / "demo")]) == 0
    case = tmp_path / "demo" / "case"
    report = RunReport.from_json((case / "report.json").read_bytes())
    (inc,) = report.incidents
    assert inc["hosts"] == ["dc01", "web01", "wiki01", "ws-analyst01"]
    assert inc["level"] == "critical"
    rows = report.load_findings(case).select(["finding_id", "rule_id", "host"]).to_pylist()
    # every finding is in it: WIKI01's exposed Confluence joins through the actor's address
    # that tried it (the door it knocked on), though the intrusion never reached WIKI01
    assert set(inc["findings"]) == {r["finding_id"] for r in rows}
    wiki = [s for s in inc["steps"] if s["rule_id"] == "th-analytic-0035"
            and s["host"].startswith("WIKI01")]
    assert wiki and wiki[0]["level"] == "critical" and "exploit attempt" in wiki[0]["summary"]
    rules = [s["rule_id"] for s in inc["steps"]]
    order = [rules.index(r) for r in ("th-analytic-0033", "th-analytic-0026",
                                      "th-analytic-0032", "th-analytic-0020")]
    assert order == sorted(order)  # visit, lure, chain to the host, then the web shell
    times = [datetime.fromisoformat(s["ts"]) for s in inc["steps"] if s["ts"]]
    assert times == sorted(times)
    assert "exfiltration" in {s["phase"] for s in inc["steps"]}
    assert all(s["evidence"] and s["narrative"] for s in inc["steps"])
    assert inc["tactics"][0] == "reconnaissance" and "exfiltration" in inc["tactics"]
    # the Zeek logs: the beacon, PsExec against the zone policy, and the staged archive
    # leaving for Dropbox inside business hours, given away by the hour-of-week baseline
    by_rule = {s["rule_id"]: s for s in inc["steps"]}
    assert {"th-analytic-0051", "th-analytic-0056", "th-analytic-0057", "th-analytic-0049",
            "th-analytic-0046"} <= set(by_rule)
    upload = by_rule["th-analytic-0046"]
    assert upload["phase"] == "exfiltration" and upload["level"] == "critical"
    assert "inside business hours" in upload["summary"]
    assert "Australia/Brisbane" in upload["summary"]
    assert "c:\\windows\\debug\\d.rar" in by_rule["th-analytic-0049"]["summary"]
    exfil = [s for s in inc["steps"] if s["phase"] == "exfiltration" and s["ts"]]
    assert max(s["ts"] for s in exfil) >= upload["ts"]


def test_the_same_system_binary_on_two_hosts_links_nothing():
    cmd = {"Image": r"C:\Windows\System32\cmd.exe",
           "Hashes": "MD5=0A1B,SHA256=" + "ab" * 32 + ",IMPHASH=0C"}
    rows = [_f(1, 0, "WS01", fields=cmd, src="chrome.exe"),
            _f(2, 3, "SRV9", fields=cmd, src="chrome.exe")]
    assert len(correlate(_table(rows))) == 2
    assert not any(e.startswith(("hash:", "domain:")) for e in entities(rows[0]))


def test_next_steps_follow_the_phases():
    rows = [_f(1, 0, "WS01", tactics=("initial-access",)),
            _f(2, 5, "WS01", tactics=("credential-access",))]
    (inc,) = correlate(_table(rows))
    nxt = inc.to_dict()["next_steps"]
    assert [x.split(":")[0] for x in nxt] == ["initial access", "credential access"]
    assert "krbtgt" in nxt[1]



def test_shared_fields_link_across_chunks_as_per_row():
    """Fields are parsed once per distinct text, over every chunk: the same incidents."""
    shared = {"IpAddress": "10.0.0.9", "TargetUserName": "alice"}
    rows = [_f(i, i * 10, f"host{i}", level="critical" if i == 0 else "low",
               fields=shared if i % 2 == 0 else {"IpAddress": f"10.0.1.{i}"})
            for i in range(6)]
    one = _table(rows)
    chunked = pa.concat_tables([_table(rows[:2]), _table(rows[2:4]), _table(rows[4:])])
    got = [i.to_dict() for i in correlate(chunked)]
    assert got == [i.to_dict() for i in correlate(one)]
    assert got[0]["hosts"] == ["host0", "host2", "host4"]
    assert {"ip:10.0.0.9", "user:alice", "host:host0"} <= entities(rows[0])


def test_a_step_shows_its_first_evidence_and_knows_mail_among_the_rest():
    """A step keeps the first ten entries of its findings' evidence (three a finding) and
    tells "in the mail" from any of them, as when it held all of them."""
    def ev(n: int, table: str = "windows") -> list[dict]:
        return [{"table": table, "source_file": f"s{n}.json", "artefact": f"a{n}",
                 "record_id": n * 10 + k, "locator": str(k)} for k in range(4)]

    rows = [_f(i, i, None, rule="same", user="CORP\\alice", evidence=ev(i))
            for i in range(1, 6)]
    rows.append(_f(6, 6, None, rule="same", user="CORP\\alice",
                   evidence=[*ev(6)[:1], *ev(6, "mail")[:1]]))
    (inc,) = correlate(pa.concat_tables([_table(rows[3:]), _table(rows[:3])]))
    (step,) = inc.to_dict()["steps"]
    assert step["evidence"] == [e for r in rows for e in r["evidence"][:3]][:10]
    assert " in the mail: " in step["narrative"] and "(+5 more)" in step["narrative"]
    alone = correlate(_table(rows[:5]))[0].to_dict()["steps"][0]
    assert " in the mail" not in alone["narrative"]


def _union_find_groups(ents: list[frozenset[str]], ts: list[datetime | None],
                       ts_last: list[datetime | None], gap: timedelta) -> list[list[int]]:
    """The reference: rows of one entity chained in order within the gap, joined one pair
    at a time, groups in the order of their first row."""
    parent = list(range(len(ents)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    by: dict[str, list[int]] = {}
    for i, es in enumerate(ents):
        for e in es:
            by.setdefault(e, []).append(i)
    for rows in by.values():
        for a, b in itertools.pairwise(rows):
            if ts[a] is None or ts[b] is None or ts[b] - (ts_last[a] or ts[a]) <= gap:
                ra, rb = find(a), find(b)
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(len(ents)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def test_links_in_bulk_give_the_groups_of_a_pairwise_union_find():
    """The vectorised linking (one sort of entity and row, labels to a fixed point) groups
    rows as joining each linked pair does, times missing, equal and at the gap included."""
    import random

    import numpy as np

    from tidehunt.correlate import _components, _links, _micros

    rng = random.Random(40)
    pool = [frozenset({f"host:h{i}"}) for i in range(6)] + [
        frozenset({"user:u1", "host:h1"}), frozenset({"ip:203.0.113.9"}), frozenset()]
    for gap_hours in (1, 72):
        gap = timedelta(hours=gap_hours)
        n = 400
        ents = [rng.choice(pool) if rng.random() < 0.8 else
                frozenset({f"file:/x/{rng.randrange(30)}", f"host:h{rng.randrange(6)}"})
                for _ in range(n)]
        ts = sorted(T0 + timedelta(minutes=rng.choice([0, 30, 60, 61, 600, 4320]) * k / 9)
                    for k in range(n))
        ts = [None if rng.random() < 0.05 else t for t in ts]
        ts_last = [None if t is None or rng.random() < 0.3 else t + timedelta(minutes=45)
                   for t in ts]
        col = pa.chunked_array([pa.array(ts, pa.timestamp("us", "UTC"))])
        last = pa.chunked_array([pa.array(ts_last, pa.timestamp("us", "UTC"))])
        a, b = _links(ents, _micros(col), _micros(last), gap)
        label = _components(n, a, b)
        by = np.argsort(label, kind="stable")
        got = [g.tolist() for g in np.split(by, np.flatnonzero(np.diff(label[by])) + 1)]
        want = _union_find_groups(ents, ts, ts_last, gap)
        assert got == want
        assert 1 < len(want) < n  # some rows linked, some not


def test_shared_lists_are_equal_lists_as_one_object_whatever_they_hold():
    """List columns come back as their Python lists, equal ones one object; the elements
    that could fool the key (its separator, nulls) and empty lists stay apart."""
    from tidehunt.correlate import _shared_lists

    plain = [["T1059", "T1105"], None, [], [""], ["T1059", "T1105"], ["", ""], [""], []]
    for extra in ([], [["a\x1fb", "c"], ["a", "b\x1fc"]], [["a", None], ["a", None]]):
        rows = plain + extra
        col = pa.chunked_array([pa.array(rows[:3], pa.list_(pa.string())),
                                pa.array(rows[3:], pa.list_(pa.string()))])
        got = _shared_lists(col)
        assert got == rows
        assert got[0] is got[4] and got[3] is got[6] and got[2] is got[7]
        assert got[2] is not got[3] and got[5] is not got[3]
        if extra:
            assert (got[-2] is got[-1]) == (extra[0] == extra[1])
