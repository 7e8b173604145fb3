"""Rules ruled out before their trees are walked (``run.possible_rules``) are exactly
rules that could not hit: the hits are those of walking every rule, and most rules that
find nothing are never walked."""

from __future__ import annotations

import numpy as np

import tidehunt.detect.sigma.run as run
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest


def _p(field, op="contains", value="x", kind="str", cased=False):
    return {"field": field, "kind": kind, "op": op, "value": value, "cased": cased}


PREDS = [
    _p("Image", "endswith", "\\cmd.exe"),        # 0 plain
    _p("CommandLine", "contains", "/c"),         # 1 plain
    _p("CommandLine", "contains", "Whoami", cased=True),  # 2 cased: not plain
    {"field": "Image", "kind": "re", "op": "re", "value": "a+"},  # 3 regex: not plain
    _p(None, "contains", "mimikatz"),            # 4 keyword: not plain
    _p("ParentImage", "eq", "w3wp.exe"),         # 5 plain
]


def test_requirements_of_and_or_not():
    req = run.requirements
    assert req(["p", 0], PREDS) == [[0]]
    for other in (2, 3, 4):  # known only once evaluated: no requirement
        assert req(["p", other], PREDS) == []
    assert req(["and", [["p", 0], ["p", 1], ["p", 3]]], PREDS) == [[0], [1]]
    # an "or" needs one of its operands' clauses each, put together ...
    assert req(["or", [["p", 0], ["and", [["p", 1], ["p", 5]]]]], PREDS) == [[0, 1]]
    # ... and nothing once one operand needs nothing
    assert req(["or", [["p", 0], ["p", 3]]], PREDS) == []
    assert req(["and", [["p", 5], ["not", ["p", 0]]]], PREDS) == [[5]]
    assert req(["not", ["and", [["p", 0], ["p", 1]]]], PREDS) == []
    assert req(["true"], PREDS) == []


def test_ruled_out_rules_give_the_hits_of_walking_every_rule(corpus, sigmahq_plan, tmp_path,
                                                             monkeypatch):
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(corpus("evtx/evtx-attack-samples"))], store, RunContext(), workers=1)
    monkeypatch.setattr(run, "CHUNK_ROWS", 1500)  # several chunks, several parts each
    key = lambda r: list(zip(r.rule.tolist(), r.part.tolist(), r.row.tolist(),  # noqa: E731
                             strict=True))
    ruled_out = []
    real = run.possible_rules

    def spy(plan, chunk, groups):
        got = real(plan, chunk, groups)
        ruled_out.append(sum(1 for g in groups for ri in g.rules if not got[ri]))
        return got

    monkeypatch.setattr(run, "possible_rules", spy)
    pruned = run.match(sigmahq_plan, store, workers=1)
    monkeypatch.setattr(run, "possible_rules",
                        lambda plan, chunk, groups: np.ones(len(plan.rules), dtype=bool))
    walked = run.match(sigmahq_plan, store, workers=1)
    assert len(walked.rule) > 500
    assert key(pruned) == key(walked)
    # most of the rules of the groups with rows are ruled out, in every chunk
    assert len(ruled_out) > 1 and min(ruled_out) > 100


def _plain(pid_values):
    return [{"field": "Image", "kind": "str", "op": op, "value": v, "cased": False}
            for op, v in pid_values]


def test_ac_pairs_are_the_hits_of_each_predicate():
    import pyarrow as pa

    d = pa.array(["c:\\cmd.exe", "cmd.exe", "x\x02cmd.exe", "aaa", ""])
    preds = _plain([("endswith", "cmd.exe"), ("eq", "cmd.exe"), ("startswith", "c:"),
                    ("contains", "a"), ("contains", "aa"), ("contains", ""),
                    ("endswith", "cmd.exe"), ("eq", "nothing")])
    ids = [10, 11, 12, 13, 14, 15, 16, 17]
    pid, pos = run.ac_pairs(d, preds, ids)
    got: dict[int, list[int]] = {}
    for p, at in zip(pid.tolist(), pos.tolist(), strict=True):
        got.setdefault(p, []).append(at)
    # a sentinel in a value is no boundary; "aa" occurs twice in "aaa": one pair
    assert got == {10: [0, 1, 2], 16: [0, 1, 2], 11: [1], 12: [0], 13: [3], 14: [3],
                   15: [0, 1, 2, 3, 4]}
    dense = run.ac_on_dict(d, preds, ids)
    assert dense[17] is run.ALL_FALSE
    assert {p: np.flatnonzero(b).tolist() for p, b in dense.items()
            if b is not run.ALL_FALSE} == got


def test_value_space_pairs():
    import pyarrow as pa

    space = run._Space(limit=10, max_bytes=1 << 20)
    calls = []

    def fn(vals):
        calls.append(vals.to_pylist())
        v = vals.to_pylist()
        pid = [7] * sum(x.startswith("a") for x in v) + [9] * sum(x.endswith("2") for x in v)
        pos = [i for i, x in enumerate(v) if x.startswith("a")] + \
            [i for i, x in enumerate(v) if x.endswith("2")]
        return np.array(pid, np.int64), np.array(pos, np.int64)

    assert space.ids(pa.array(["a1", "b1", "a2"])).tolist() == [0, 1, 2]
    assert space.extend_pairs("k", fn)
    assert space.ids(pa.array(["b2", "a1", "a3"])).tolist() == [3, 0, 4]
    assert space.extend_pairs("k", fn) and space.extend_pairs("k", fn)
    assert calls == [["a1", "b1", "a2"], ["b2", "a3"]]  # new values only, once
    # a chunk holding ids 3, 0 and 2 at positions 0, 1, 2 (id 4 came after it)
    where = np.array([1, -1, 2, 0])
    bits = space.pair_bits("k", where, 3)
    assert {p: b.tolist() for p, b in bits.items()} == {
        7: [False, True, True], 9: [True, False, True]}
    assert space.pair_bits("k", np.array([-1, 0, -1, -1, -1]), 1) == {}  # b1 alone
    assert space.pair_bits("other", where, 3) == {}
    small = run._Space(limit=10, max_bytes=20)
    assert small.ids(pa.array(["a1", "a2"])) is not None
    assert not small.extend_pairs("k", fn) and small.full  # its hits do not fit
    assert small.pairs == {}
