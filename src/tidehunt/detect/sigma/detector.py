"""SigmaDetector: the compiled plan over the case's ``windows`` table, then correlations."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.base import Detector
from tidehunt.detect.sigma.correlate import resolve_refs, run_correlations
from tidehunt.detect.sigma.findings import build_findings
from tidehunt.detect.sigma.plan import Plan
from tidehunt.detect.sigma.run import MatchResult, match
from tidehunt.memory import MatchPlan, MemoryBudget, release_freed_memory
from tidehunt.model.rule import Severity


@dataclass
class SigmaOptions:
    """What the user asked for."""

    min_level: Severity = Severity.INFORMATIONAL
    exclude: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    workers: int | None = None
    #: "duckdb" (this machine's processes) or "spark" (mapInArrow on a Spark cluster).
    engine: str = "duckdb"
    spark: Any = None  # tidehunt.detect.sigma.spark.SparkOptions
    #: The run's memory budget (``--max-memory``): match workers and chunk rows, and the
    #: correlations' DuckDB; None: the defaults.
    budget: MemoryBudget | None = None


@dataclass
class SigmaStats:
    """What the run did, for the summary and the manifest."""

    rules_loaded: int = 0
    rules_active: int = 0
    rules_failed: list[dict[str, str]] = field(default_factory=list)
    rules_skipped: list[dict[str, str]] = field(default_factory=list)
    rules_excluded: int = 0
    correlations: int = 0
    events: int = 0
    hits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    #: Match workers and chunk rows used (not in ``summary``).
    match_plan: MatchPlan | None = None


class SigmaDetector(Detector):
    """Sigma rules (detection and correlation) over Windows events."""

    NAME: ClassVar[str] = "sigma"
    READS: ClassVar[frozenset[str]] = frozenset({"windows"})

    def __init__(self, plan: Plan, options: SigmaOptions | None = None) -> None:
        self.plan = plan
        self.options = options or SigmaOptions()
        self.stats = SigmaStats()
        #: Called with the number of hits once matching is done, before the findings are
        #: built (``engine.detect`` starts the analytics beside them from there).
        self.after_match: Callable[[int], None] | None = None
        #: The hits of the ``windows`` parts, matched already (``run.StreamMatch``).
        self.prematched: MatchResult | None = None

    def select(self) -> tuple[set[int], set[int], dict[int, list[int]]]:
        """Rules to evaluate, rules whose hits become findings, and active correlations."""
        plan, opt = self.plan, self.options
        excluded = {x.lower() for x in opt.exclude}
        corr, corr_errors = resolve_refs(plan)
        self.stats.rules_failed = list(plan.errors) + corr_errors
        self.stats.rules_skipped = list(plan.skipped)

        def wanted(i: int) -> bool:
            r = plan.rules[i]
            if r["id"].lower() in excluded or (r.get("name") or "").lower() in excluded:
                return False
            return Severity.parse(r["level"]) >= opt.min_level

        self.stats.rules_excluded = sum(
            1 for r in plan.rules if r["id"].lower() in excluded
            or (r.get("name") or "").lower() in excluded)
        active_corr = {i: refs for i, refs in corr.items() if wanted(i)}
        referenced = {j for refs in active_corr.values() for j in refs}
        hidden = {j for i, refs in active_corr.items() if not plan.rules[i]["generate"]
                  for j in refs}
        detect = {i for i in plan.detection_rules() if wanted(i)} | referenced
        emit = {i for i in detect if wanted(i) and i not in hidden}
        self.stats.rules_loaded = len(plan.rules)
        self.stats.rules_active = len(detect | set(active_corr))
        self.stats.correlations = len(active_corr)
        return detect, emit, active_corr

    def run(self, store: CaseStore, ctx: RunContext) -> Iterator[pa.RecordBatch]:
        """Match, build findings, run correlations; yield finding batches."""
        detect, emit, corr = self.select()
        t0 = time.perf_counter()
        if self.options.engine == "spark":
            from tidehunt.detect.sigma.spark import SparkOptions, match_spark, session

            res = match_spark(self.plan, store, sorted(detect),
                              session(self.options.spark or SparkOptions()),
                              since=self.options.since, until=self.options.until)
        elif self.prematched is not None:
            res, self.prematched = self.prematched, None
        else:
            res = match(self.plan, store, sorted(detect), since=self.options.since,
                        until=self.options.until, on_progress=ctx.on_progress,
                        workers=self.options.workers, budget=self.options.budget)
        self.stats.match_plan = res.plan
        if self.after_match is not None:
            self.after_match(len(res.rule))
        t1 = time.perf_counter()
        findings, hits = build_findings(self.plan, res, emit, with_hits=bool(corr),
                                        hit_rules={j for refs in corr.values() for j in refs})
        res.tables = None  # the parts matching kept for the findings: not needed any more
        release_freed_memory()  # matching's and the findings' freed pages, before the rest
        t2 = time.perf_counter()
        if self.options.engine == "spark":
            from tidehunt.detect.sigma.spark import SparkOptions, correlations_spark, session

            corr_findings = correlations_spark(
                self.plan, hits, corr, session(self.options.spark or SparkOptions()))
        else:
            corr_findings = run_correlations(
                self.plan, hits, corr, budget=self.options.budget,
                spill=store.root / f".tmp-duckdb-corr-{os.getpid()}")
        t3 = time.perf_counter()
        self.stats.events = res.events
        self.stats.hits = len(res.rule)
        self.stats.seconds = {"match": round(t1 - t0, 3), "findings": round(t2 - t1, 3),
                              "correlate": round(t3 - t2, 3)}
        yield from findings.to_batches()
        yield from corr_findings.to_batches()

    def summary(self) -> dict[str, Any]:
        """Stats as plain data."""
        s = self.stats
        return {
            "rules_loaded": s.rules_loaded, "rules_active": s.rules_active,
            "rules_failed": len(s.rules_failed), "rules_not_applicable": len(s.rules_skipped),
            "rules_excluded": s.rules_excluded, "correlations": s.correlations,
            "events": s.events, "hits": s.hits, "seconds": s.seconds,
        }
