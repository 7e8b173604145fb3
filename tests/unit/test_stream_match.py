"""With room in the budget (``--max-memory`` 4GB or more), ``hunt`` matches the windows
parts as ingest commits them (``run.StreamMatch``): the findings are those of matching
after ingest, parts already in the case are matched too, and an error while matching
stops the run."""

from __future__ import annotations

import pytest

import tidehunt.detect.sigma.run as run
from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt
from tidehunt.memory import MemoryBudget

OUTPUTS = ("findings.jsonl", "timeline.csv")


def test_budget_decides_streaming():
    assert MemoryBudget(4_000_000_000).match(2, chunk_rows=run.CHUNK_ROWS).stream
    assert not MemoryBudget(2_000_000_000).match(2, chunk_rows=run.CHUNK_ROWS).stream
    assert not MemoryBudget(8_000_000_000).match(1, chunk_rows=run.CHUNK_ROWS).stream


def _opts(corpus, memory: str) -> HuntOptions:
    rules = corpus("sigma")
    return HuntOptions(rules=[str(rules / "rules" / "windows"),
                              str(rules / "rules-threat-hunting" / "windows")],
                       workers=2, max_memory=memory, bundled_intel=False)


def _spy(monkeypatch) -> dict[str, int]:
    calls = {"match": 0, "stream": 0}
    real_match, real_init = run.match, run.StreamMatch.__init__

    def match(*args, **kwargs):
        calls["match"] += 1
        return real_match(*args, **kwargs)

    def init(self, *args, **kwargs):
        calls["stream"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(run, "match", match)
    monkeypatch.setattr("tidehunt.detect.sigma.detector.match", match)
    monkeypatch.setattr(run.StreamMatch, "__init__", init)
    return calls


def test_streamed_hunt_gives_the_findings_of_matching_after(corpus, tmp_path, monkeypatch):
    samples = corpus("evtx/evtx-attack-samples")
    parts = sorted(p for p in samples.iterdir() if p.is_dir())
    first, rest = [str(p) for p in parts[:3]], [str(p) for p in parts[3:]]
    calls = _spy(monkeypatch)
    out = {}
    for memory in ("2GB", "4GB"):
        case = tmp_path / memory
        hunt(first, case, RunContext(), _opts(corpus, memory))
        # a second run: the parts the case holds already are matched with the new ones
        report = hunt(first + rest, case, RunContext(), _opts(corpus, memory))
        out[memory] = {n: (case / n).read_bytes() for n in OUTPUTS}
        assert report.stats["memory"]["match"]["stream"] == (memory == "4GB")
        assert report.findings_count > 1000
    assert calls == {"match": 2, "stream": 2}  # matched after ingest only at 2GB
    assert out["2GB"] == out["4GB"]


def test_an_error_while_streaming_stops_the_hunt(corpus, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("matching failed")

    monkeypatch.setattr(run, "match_chunk", boom)
    with pytest.raises(RuntimeError, match="matching failed"):
        hunt([str(corpus("evtx/evtx-attack-samples"))], tmp_path / "case", RunContext(),
             _opts(corpus, "4GB"))
