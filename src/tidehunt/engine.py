"""Orchestration: ingest, detect, write outputs. The CLI calls these; they never print."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidehunt import __version__
from tidehunt.case.store import CaseStore, utcnow
from tidehunt.context import RunContext
from tidehunt.errors import ConfigError, NoUsableInput
from tidehunt.ingest import IngestResult, ingest, no_evidence_found
from tidehunt.memory import DEFAULT_MAX_MEMORY, MemoryBudget, release_freed_memory
from tidehunt.model.rule import Severity
from tidehunt.model.tables import TABLES
from tidehunt.rulepacks import DEFAULT_MAX_AGE_DAYS, age_days, default_rule_paths

if TYPE_CHECKING:
    from tidehunt.detect.sigma.detector import SigmaDetector, SigmaOptions
    from tidehunt.detect.sigma.plan import Plan
    from tidehunt.detect.sigma.run import StreamMatch
    from tidehunt.model.report import RuleSource, RunReport

#: What detection imports beyond ingest (DuckDB, pydantic, the detectors, intel...):
#: imported when first needed, or by :func:`hunt`'s plan thread while ingest runs.
DETECTION_MODULES = (
    "tidehunt.correlate", "tidehunt.detect.analytics.detector",
    "tidehunt.detect.sigma.detector", "tidehunt.detect.sigma.findings",
    "tidehunt.intel.store", "tidehunt.model.report", "tidehunt.org", "tidehunt.posture",
    "tidehunt.vuln.store",
)

log = logging.getLogger("tidehunt")


@dataclass
class HuntOptions:
    """Everything a hunt or detect run takes besides evidence and case."""

    rules: Sequence[str] = ()
    min_level: Severity = Severity.INFORMATIONAL
    exclude: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    workers: int | None = None
    max_rule_age_days: int = DEFAULT_MAX_AGE_DAYS
    strict: bool = False
    use_cache: bool = True
    outputs: Sequence[str] = ("jsonl", "csv_timeline", "html")
    webroots: Sequence[str] = ()
    yara: Sequence[str] = ()
    baseline: str | None = None
    web_host: str | None = None
    max_file_bytes: int = 32 << 20
    sites: Sequence[str] = ()
    site_baseline: str | None = None
    site_origin: str | None = None
    #: Intel files or folders loaded into the case's indicator table before matching.
    intel: Sequence[str] = ()
    #: Load what ``tidehunt intel update`` fetched (the intel store).
    feeds: bool = True
    #: Load the bundled, dated APT40 IOC pack too (retro-hunt).
    bundled_intel: bool = True
    #: Expired indicators still match, labelled expired (retro-hunt mode).
    retro: bool = True
    #: ``TYPE=DAYS`` overrides of the indicator lifetimes.
    intel_lifetimes: Sequence[str] = ()
    #: Extra warninglist files (YAML: networks, domains, hashes).
    warninglists: Sequence[str] = ()
    #: Inventory files (CSV, CycloneDX SBOM) loaded into the case's inventory table.
    inventory: Sequence[str] = ()
    #: A CISA KEV catalogue (JSON); the case keeps a copy for later runs.
    kev: str | None = None
    #: GeoIP database (MaxMind DB format) placing sign-in addresses.
    geoip: str | None = None
    #: YAML lists of risky networks (tor, vps, soho...) for sign-in addresses.
    risky_networks: str | None = None
    #: Findings of one entity further apart than this are not chained into one incident.
    incident_gap_hours: float = 72.0
    #: Organisation profile (YAML) for the mail analytics; the case keeps a copy.
    org: str | None = None
    #: Detection engine for the Sigma plan: "duckdb" (local processes) or "spark".
    engine: str = "duckdb"
    #: Spark master URL for --engine spark (local[*] runs Spark in this machine).
    spark_master: str = "local[*]"
    #: Extra Spark settings (spark.executor.memory=4g ...).
    spark_conf: dict[str, str] = field(default_factory=dict)
    #: Memory budget of the whole run ("2GB"; None: unbounded): it sets the ingest and
    #: match workers and their buffers, and each DuckDB connection gets 70% of it as its
    #: memory limit and spills into the case beyond (see ``tidehunt.memory``).
    max_memory: str | None = DEFAULT_MAX_MEMORY
    #: Options for the readers (see :func:`tidehunt.ingest.ingest`).
    source_options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def run_ingest(evidence: Sequence[str], case_dir: str | Path, ctx: RunContext,
               workers: int | None = None, strict: bool = False,
               options: dict[str, Any] | None = None, max_memory: str | None = None,
               under_way: Callable[[], None] | None = None,
               on_windows: Callable[[list[tuple[str, int]]], None] | None = None,
               catalogue: bool = True) -> tuple[CaseStore, IngestResult]:
    """Create or open the case and add evidence to it (within ``max_memory``, if given).

    The manifest is saved once, with this run's record. ``catalogue``: write
    ``case.duckdb`` too (``hunt`` leaves it to detection, which writes it once at its end:
    each write was 0.03-0.05 s of the run's critical path).

    ``under_way``: see :func:`tidehunt.ingest.ingest`.
    """
    if evidence and not any(os.path.lexists(e) for e in evidence):  # a typo, most often
        raise NoUsableInput(no_evidence_found(
            [f"{e}: evidence path does not exist" for e in evidence],
            "; nothing was written to the case"))
    store = CaseStore(case_dir, create=True)
    store.budget = MemoryBudget.parse(max_memory)
    res = ingest(evidence, store, ctx, workers=workers, strict=strict, options=options,
                 budget=store.budget, under_way=under_way, on_windows=on_windows,
                 save=False, catalogue=catalogue)
    store.manifest.setdefault("runs", []).append({
        "command": "ingest", "finished": utcnow(), "evidence": list(evidence),
        "ingest": _ingest_dict(res), "memory": memory_stats(max_memory, res, None)})
    store.save()
    return store, res


def _fetched_kev() -> str | None:
    """The newest CISA KEV catalogue 'tidehunt intel update' fetched (a feed URL), if any."""
    from tidehunt.intel.feeds import fetched_files

    for f in reversed(fetched_files()):
        if f.endswith(".json"):
            with open(f, "rb") as fh:
                head = fh.read(4096)
            if b'"catalogVersion"' in head and b'"vulnerabilities"' in head:
                return f
    return None


def _with_yara(opts: HuntOptions) -> dict[str, Any]:
    """Reader options, with the hunt's --yara rules for attachments too."""
    out = dict(opts.source_options)
    if opts.yara and "yara" not in out:
        out["yara"] = [str(Path(y).resolve()) for y in opts.yara]
    return out


def _ingest_dict(res: IngestResult) -> dict[str, Any]:
    d = asdict(res)
    d["seconds"] = round(d["seconds"], 3)
    d["parse_seconds"] = round(d["parse_seconds"], 3)
    d.pop("errors")
    d.pop("plan")  # in "memory"
    return d


def memory_stats(max_memory: str | None, ingest_result: IngestResult | None,
                 det: SigmaDetector | None) -> dict[str, Any]:
    """How the run's memory budget was split: what report.json and the manifest record."""
    budget = MemoryBudget.parse(max_memory)
    ip = ingest_result.plan if ingest_result is not None else None
    mp = det.stats.match_plan if det is not None else None
    return {"max_memory": max_memory,
            "duckdb_memory_limit": budget.duckdb_limit() if budget else None,
            "ingest": {"workers": ip.workers, **asdict(ip.limits)} if ip else None,
            "match": asdict(mp) if mp else None}


def _rule_paths(opts: HuntOptions) -> list[tuple[str, str]]:
    if opts.rules:
        return [(str(p), "") for p in opts.rules]
    return default_rule_paths()


def prepare_plan(opts: HuntOptions, ctx: RunContext) -> Plan:
    """Load (or compile) the plan and warm the matcher's per-group tables."""
    from tidehunt.detect.sigma.loader import load_plan
    from tidehunt.detect.sigma.run import warm_up

    plan = load_plan([p for p, _ in _rule_paths(opts)], workers=opts.workers,
                     use_cache=opts.use_cache, on_progress=ctx.on_progress)
    warm_up(plan)
    # the plan (~470k objects for SigmaHQ's Windows rules) lives as long as the run: out
    # of the collector's generations, the full collections no longer go through it each
    # time (they still free what refcounting does; the plan holds no cycles)
    gc.freeze()
    return plan


#: The options that name files or folders (``HuntOptions`` field, option on the command line).
PATH_OPTIONS = (("rules", "--rules"), ("intel", "--intel"), ("yara", "--yara"),
                ("baseline", "--baseline"), ("org", "--org"), ("inventory", "--inventory"),
                ("kev", "--kev"), ("warninglists", "--warninglist"), ("geoip", "--geoip"),
                ("risky_networks", "--risky-networks"), ("site_baseline", "--site-baseline"))


def check_option_paths(opts: HuntOptions) -> None:
    """Every file or folder the options name exists, or ConfigError naming each that does
    not (``hunt`` checks before ingest: a mistyped ``--intel`` or ``--org`` path was only
    found, or not at all, once the whole evidence had been read)."""
    missing = []
    for name, flag in PATH_OPTIONS:
        value = getattr(opts, name)
        for path in [value] if isinstance(value, str) else list(value or ()):
            if not Path(path).exists():
                missing.append(f"{path} ({flag})")
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")


def unknown_excludes(exclude: Sequence[str], plan: Plan) -> list[str]:
    """The ``--exclude-rule`` values that name no Sigma rule of the plan and no analytic
    (ids and names, case ignored, as the detectors compare them)."""
    from tidehunt.detect.analytics.detector import analytics

    known = {k.lower() for r in plan.rules for k in (r["id"], r.get("name") or "") if k}
    for name, cls in analytics().items():
        known |= {name.lower(), cls.META.id.lower()}
    return [x for x in dict.fromkeys(exclude) if x.lower() not in known]


def _sigma_options(opts: HuntOptions, spark: Any, budget: MemoryBudget | None
                   ) -> SigmaOptions:
    """The Sigma detector's options for a run."""
    from tidehunt.detect.sigma.detector import SigmaOptions

    return SigmaOptions(opts.min_level, opts.exclude, opts.since, opts.until, opts.workers,
                        opts.engine, spark, budget)


def _prepare_detection(opts: HuntOptions, ctx: RunContext) -> Plan:
    """The plan, and the modules detection imports (hunt runs this beside ingest)."""
    import importlib

    plan = prepare_plan(opts, ctx)
    for name in DETECTION_MODULES:
        importlib.import_module(name)
    return plan


#: Sigma hits from which the analytics run beside the building of their findings (below
#: it the findings take milliseconds). It was 20,000: the 10x benchmark (11,060 hits;
#: findings 0.22 s, analytics 0.19 s) then ran them one after the other, 0.07 s longer in
#: 7 of 7 interleaved pairs, for 15-30 MiB less.
OVERLAP_HITS = 2_000
#: Sigma hits from which the findings built beside the analytics take enough memory
#: (~2 KiB a finding, most of it the fields JSON: 226 MiB for 110,600) that the analytics'
#: DuckDB is given half its share of the budget; below it, all of it.
HALF_SHARE_HITS = 20_000


def _run_detectors(store: CaseStore, ctx: RunContext, opts: HuntOptions, det: Any,
                   ana: Any) -> list[pa.RecordBatch]:
    """The Sigma detector's batches, then the analytics'.

    When matching gave at least OVERLAP_HITS hits (the local engine), the analytics (DuckDB,
    which leaves the GIL) run in a thread while the Sigma findings are built (Arrow and
    Python), their DuckDB given half its usual share of the memory budget from
    HALF_SHARE_HITS hits on, since the two are then in memory together; otherwise one
    after the other. Both with fewer hits: DuckDB's whole share.
    """
    from dataclasses import replace

    if opts.engine == "spark":
        return [b for d in (det, ana) for b in d.run(store, ctx)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics") as pool:
        started: list[Future[list[pa.RecordBatch]]] = []

        def start() -> None:
            started.append(pool.submit(lambda: list(ana.run(store, ctx))))

        def after_match(hits: int) -> None:
            if hits >= OVERLAP_HITS:
                if hits >= HALF_SHARE_HITS:
                    ana.options = replace(ana.options, duckdb_fraction=0.5)
                start()

        det.after_match = after_match
        sigma = list(det.run(store, ctx))
        if not started:
            start()
        return sigma + started[0].result()


def detect(store: CaseStore, ctx: RunContext, opts: HuntOptions, *,
           command: str = "detect", started: str | None = None,
           ingest_result: IngestResult | None = None,
           timings: dict[str, float] | None = None,
           plan_future: Future[Plan] | None = None,
           stream: StreamMatch | None = None) -> RunReport:
    """Run the detectors over the case and write findings, timeline and report.

    ``stream``: the ``windows`` parts matched while ingest ran (``hunt``); its hits are used
    if its parts are the case's.

    The manifest is saved and the catalogue written at the end, or, if the run fails, as
    far as they can be before the error goes on (``hunt``'s ingest and the intel loaded
    here leave both to this).
    """
    try:
        return _detect(store, ctx, opts, command=command, started=started,
                       ingest_result=ingest_result, timings=timings,
                       plan_future=plan_future, stream=stream)
    except BaseException:
        with contextlib.suppress(Exception):
            store.save()
            store.write_catalogue()
        raise


def _detect(store: CaseStore, ctx: RunContext, opts: HuntOptions, *, command: str,
            started: str | None, ingest_result: IngestResult | None,
            timings: dict[str, float] | None, plan_future: Future[Plan] | None,
            stream: StreamMatch | None) -> RunReport:
    from tidehunt.correlate import correlate
    from tidehunt.detect.analytics.detector import AnalyticsDetector, AnalyticsOptions
    from tidehunt.detect.sigma.detector import SigmaDetector
    from tidehunt.detect.sigma.findings import concat
    from tidehunt.intel.ageing import AgeingPolicy
    from tidehunt.intel.live import IntelOptions
    from tidehunt.intel.store import load_intel
    from tidehunt.model.finding import FINDINGS_SCHEMA
    from tidehunt.model.report import RuleSource
    from tidehunt.org import OrgProfile
    from tidehunt.posture import navigator_layer
    from tidehunt.vuln.store import keep_kev, load_inventory

    check_option_paths(opts)
    started = started or utcnow()
    timings = dict(timings or {})
    t0 = time.perf_counter()
    named = _rule_paths(opts)
    plan = plan_future.result() if plan_future is not None else prepare_plan(opts, ctx)
    timings["rules"] = round(time.perf_counter() - t0, 3)
    spark = None
    if opts.engine == "spark":
        from tidehunt.detect.sigma.spark import SparkOptions

        spark = SparkOptions(opts.spark_master, dict(opts.spark_conf))
    store.budget = MemoryBudget.parse(opts.max_memory)
    det = SigmaDetector(plan, _sigma_options(opts, spark, store.budget))
    if stream is not None:  # the windows parts were matched while ingest ran
        pre = stream.close()
        if sorted(pre.parts) == sorted(str(p) for p in store.parts("windows")):
            det.prematched = pre
        else:  # parts came from elsewhere: matched here, all of them, as without it
            log.warning("parts matched during ingest are not the case's: matching again")
    org = OrgProfile.for_case(store.root, opts.org)
    from tidehunt.intel.feeds import fetched_files

    fetched_kev = _fetched_kev() if opts.feeds else None
    fetched = [f for f in fetched_files() if f != fetched_kev] if opts.feeds else []
    intel_load = load_intel([*opts.intel, *fetched], store, ctx, bundled=opts.bundled_intel)
    inventory = load_inventory(list(opts.inventory), store, ctx)
    kev = keep_kev(store, opts.kev or fetched_kev)
    ana = AnalyticsDetector(AnalyticsOptions(
        opts.min_level, opts.exclude, opts.since, opts.until, org,
        IntelOptions(retro=opts.retro, policy=AgeingPolicy.parse(list(opts.intel_lifetimes)),
                     warninglists=list(opts.warninglists)), str(kev) if kev else None,
        opts.geoip, opts.risky_networks, opts.max_memory, spark))
    t1 = time.perf_counter()
    findings = concat(pa.Table.from_batches([b], schema=FINDINGS_SCHEMA)
                      for b in _run_detectors(store, ctx, opts, det, ana))
    timings["detect"] = round(time.perf_counter() - t1, 3)
    warnings: list[dict[str, Any]] = []
    sources: list[RuleSource] = []
    for (path, name), src in zip(named, plan.sources, strict=False):
        age = age_days(src.get("content_date", ""))
        sources.append(RuleSource(path=path, files=src["files"], sha256=src["sha256"],
                                  content_date=src.get("content_date", ""), age_days=age,
                                  name=name))
        if age is not None and age > opts.max_rule_age_days:
            warnings.append({"artefact": "", "path": name or path, "source": "rules",
                             "message": f"rule pack is {age} days old (newest rule dated "
                                        f"{src['content_date']}); run 'tidehunt rules "
                                        "update'", "locators": [], "count": 1})
    for x in unknown_excludes(opts.exclude, plan):  # a typo would go unnoticed
        warnings.append({"artefact": "", "path": x, "source": "rules",
                         "message": "--exclude-rule matches no loaded rule or analytic "
                                    "(by id or name); nothing was excluded by it",
                         "locators": [], "count": 1})
    for rec in store.artefacts.values():
        for w in rec.get("warnings", []):
            warnings.append({**w, "path": w.get("path") or rec.get("display", "")})
    warnings += store.manifest.get("warnings", [])
    # the loads' own (an intel file not readable, say): they have no artefact to go with
    warnings += [w.to_dict() for w in ctx.take_warnings()]
    t2 = time.perf_counter()
    for f in ana.stats.failed:
        warnings.append({"artefact": "", "path": f["analytic"], "source": "analytics",
                         "message": f"analytic {f['id']} failed: {f['error']}",
                         "locators": [], "count": 1})
    report = _report(store, opts, command, started, det, findings, warnings, sources,
                     ingest_result, timings)
    report.stats["analytics"] = ana.summary()
    report.stats["memory"] = memory_stats(opts.max_memory, ingest_result, det)
    report.stats["inventory"] = {"files": inventory, "assets": store.rows("inventory"),
                                 "kev": str(kev) if kev else None}
    report.stats["intel"] = {"files": intel_load.files, "added": intel_load.indicators,
                             "in_case": store.rows("indicator"),
                             "retro": opts.retro, **ana.stats.intel}
    pos = posture(store, plan, findings.select(["techniques"]))
    layer = store.root / POSTURE_LAYER
    layer.write_bytes(orjson.dumps(navigator_layer(pos, f"tidehunt APT40 posture: "
                                                   f"{store.root.name}"),
                                   option=orjson.OPT_INDENT_2))
    report.stats["posture"] = {"counts": pos.counts(),
                               "gaps": [g.message() for g in pos.gaps[:10]],
                               "navigator_layer": POSTURE_LAYER}
    box = [findings]
    del findings  # sort_findings lets go of each column once it has its sorted copy
    sorted_findings = sort_findings(box)
    release_freed_memory()  # the unsorted findings' pages, before correlation and renderers
    outputs = Outputs(store, sorted_findings, opts.outputs)
    try:
        write_findings(store, sorted_findings)
        # JSONL and the CSV timeline start now, beside correlation (started before the
        # Parquet file, they saved no time and took 70-90 MiB more peak at 100x)
        outputs.start()
        t3 = time.perf_counter()
        report.incidents = [i.to_dict() for i in correlate(
            sorted_findings, timedelta(hours=opts.incident_gap_hours))]
        timings["correlate"] = round(time.perf_counter() - t3, 3)
        report.stats["incidents"] = len(report.incidents)
    except BaseException:
        outputs.cancel()
        raise
    outputs.finish(report)
    timings["write"] = round(time.perf_counter() - t2, 3)
    report.stats["seconds"] = timings
    (store.root / "report.json").write_text(report.to_json(), encoding="utf-8")
    store.manifest.setdefault("runs", []).append({
        "command": command, "started": started, "finished": report.meta.finished,
        "rules": [s.model_dump() for s in sources],
        "rule_errors": det.stats.rules_failed,
        "rules_not_applicable": det.stats.rules_skipped,
        "sigma": det.summary(), "findings": report.findings_count, "seconds": timings,
        "ingest": _ingest_dict(ingest_result) if ingest_result else None,
        "memory": report.stats["memory"],
    })
    store.manifest["rules"] = [s.model_dump() for s in sources]
    store.save()
    store.write_catalogue()
    return report


def _report(store: CaseStore, opts: HuntOptions, command: str, started: str,
            det: SigmaDetector, findings: pa.Table, warnings: list[dict[str, Any]],
            sources: list[RuleSource], ingest_result: IngestResult | None,
            timings: dict[str, float]) -> RunReport:
    from tidehunt.model.finding import value_counts
    from tidehunt.model.report import Meta, RunReport

    levels = value_counts(findings.column("level"))
    tactics = value_counts(pc.list_flatten(findings.column("tactics")))
    rules = value_counts(findings.column("rule_title"))
    stats: dict[str, Any] = {
        "sigma": det.summary(),
        "findings_by_level": dict(levels),
        "findings_by_tactic": dict(tactics.most_common()),
        "top_rules": [{"title": t, "findings": n} for t, n in rules.most_common(20)],
        "seconds": timings,
        "tables": {t: store.rows(t) for t in TABLES if store.rows(t)},
    }
    if ingest_result is not None:
        stats["ingest"] = _ingest_dict(ingest_result)
    filters = {"min_level": opts.min_level.label, "exclude": list(opts.exclude),
               "from": opts.since.isoformat() if opts.since else None,
               "to": opts.until.isoformat() if opts.until else None}
    return RunReport(
        meta=Meta(tool_version=__version__, command=command, case=str(store.root),
                  started=started, finished=utcnow(), rule_sources=sources, filters=filters),
        stats=stats, warnings=warnings, rule_errors=det.stats.rules_failed,
        rules_not_applicable=det.stats.rules_skipped, findings_count=findings.num_rows,
    )


OUTPUT_FILES = {"jsonl": "findings.jsonl", "csv_timeline": "timeline.csv",
                "html": "report.html"}
#: ATT&CK Navigator layer of the case's APT40 posture, written by every detection run.
POSTURE_LAYER = "posture-layer.json"


#: A findings column of more bytes than this is sorted a slice at a time (``sort_findings``).
SORT_JOIN_BYTES = 32 << 20


def sort_findings(box: list[pa.Table]) -> pa.Table:
    """The findings in ``box`` (taken out of it) sorted by time, then finding ID.

    Built a column at a time, each column let go of as soon as its sorted copy is made,
    so no more than one column is ever held twice; a large column (the fields JSON) of
    several chunks is taken a slice of SLICE_ROWS at a time from the chunks holding the
    rows (``take_rows``), never joined into one first (the others are: it is faster).

    Findings nearly in order already (runs of SORTED_RUN_ROWS rows on average: the Sigma
    findings, built in this order, among a few of the other detectors') are sliced into
    place instead, nothing copied (the fields JSON is most of the findings' bytes).
    """
    from pyarrow import compute as pc

    from tidehunt.detect.sigma.run import one_array
    from tidehunt.render._polars import SLICE_ROWS, take_rows

    findings = box.pop()
    order = pc.sort_indices(findings, [("ts", "ascending"), ("finding_id", "ascending")])
    schema = findings.schema
    runs = _runs(order.to_numpy())
    if runs is not None:  # nearly in order already (the Sigma findings are built so)
        return pa.Table.from_arrays(
            [pa.chunked_array([c for a, n in runs for c in col.slice(a, n).chunks if len(c)],
                              f.type) for f, col in zip(schema, findings.columns, strict=True)],
            schema=schema)
    cols: list[pa.ChunkedArray | None] = list(findings.columns)
    del findings
    out: list[pa.ChunkedArray | None] = [None] * len(cols)

    def one(i: int) -> None:
        col, fld = cols[i], schema.field(i)
        cols[i] = None
        assert col is not None
        if col.num_chunks <= 1 or col.nbytes <= SORT_JOIN_BYTES:
            out[i] = pa.chunked_array([one_array(col).take(order)] if col.num_chunks
                                      else [], fld.type)
        else:
            batches = pa.table({fld.name: col}).to_batches()
            out[i] = pa.chunked_array(
                [take_rows(batches, order.slice(s, SLICE_ROWS)).column(0).combine_chunks()
                 for s in range(0, len(order), SLICE_ROWS)], fld.type)

    # the largest column (the fields JSON: most of the bytes) in a thread, the others
    # beside it here (Arrow's take leaves the GIL): two columns held twice at most
    sizes = [c.nbytes if c is not None else 0 for c in cols]
    big = sizes.index(max(sizes)) if sizes else -1
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sort") as pool:
        fut = pool.submit(one, big) if big >= 0 else None
        for i in range(len(cols)):
            if i != big:
                one(i)
        if fut is not None:
            fut.result()
    return pa.Table.from_arrays(out, schema=schema)


#: ``sort_findings`` slices the table instead of taking from it when the order is made
#: of runs of consecutive rows at least this long on average.
SORTED_RUN_ROWS = 1024


def _runs(order: np.ndarray) -> list[tuple[int, int]] | None:
    """(first row, rows) of each run of consecutive rows in ``order``, when they are few
    (SORTED_RUN_ROWS rows a run on average); else None."""
    if not len(order):
        return None
    starts = np.flatnonzero(np.diff(order) != 1) + 1
    if (len(starts) + 1) * SORTED_RUN_ROWS > len(order):
        return None
    bounds = np.concatenate([[0], starts, [len(order)]])
    return [(int(order[a]), b - a) for a, b in pairwise(bounds.tolist())]


def write_findings(store: CaseStore, findings: pa.Table) -> None:
    """``findings.parquet`` from the sorted findings, written a slice at a time."""
    from tidehunt.render._polars import slices

    tmp = store.root / ".tmp-findings.parquet"
    with pq.ParquetWriter(tmp, findings.schema, compression="zstd") as writer:
        for part in slices(findings):
            writer.write_table(part)
    tmp.replace(store.root / "findings.parquet")


class Outputs:
    """The renderers' files for one run, each written under a temporary name and all put
    in place together (``finish``): a run that fails part-way leaves the last run's set.

    The renderers that work in bulk (``BULK = True``: JSONL, the CSV timeline) render
    from the sorted findings alone, so ``start`` runs them in threads at once, beside
    whatever the run does next (correlation), Polars and Arrow doing their work with the
    GIL released. ``finish`` waits until at most one of them still runs, then runs the
    others with the finished report, one at a time, beside it; the first error, if any,
    is raised (and no file of this run is put in place).
    """

    def __init__(self, store: CaseStore, findings: pa.Table, outputs: Sequence[str]) -> None:
        from tidehunt import registry

        self.store = store
        self.findings = findings
        self.outputs = list(outputs)
        self.mods = {name: registry.load("renderers", name) for name in outputs}
        self.bulk = [n for n in outputs if getattr(self.mods[n], "BULK", False)]
        self.parts: list[tuple[Path, Path]] = []
        self.pool: ThreadPoolExecutor | None = None
        self.futures: list[Future[None]] = []

    def _one(self, name: str, report: RunReport | None) -> None:
        path = self.store.root / OUTPUT_FILES[name]
        part = path.with_name(".tmp-" + path.name)
        self.parts.append((part, path))  # first: a renderer that fails leaves no part
        with open(part, "wb") as fh:
            if name not in self.bulk:
                self.mods[name].render(report, self.findings, fh)
                return
            # a bulk renderer's slices are written while it builds the next ones: the
            # writes of a fresh file were ~half of the JSONL's time at 100x
            from tidehunt.render._io import WriteBehind

            with WriteBehind(fh) as out:
                self.mods[name].render(report, self.findings, out)

    def start(self) -> None:
        """The bulk renderers, in threads (they are given no report: they need none)."""
        if self.bulk:
            self.pool = ThreadPoolExecutor(max_workers=len(self.bulk),
                                           thread_name_prefix="render")
            self.futures = [self.pool.submit(self._one, n, None) for n in self.bulk]

    def finish(self, report: RunReport) -> None:
        """The other renderers with the finished report; then every file in place."""
        # the others once at most one bulk renderer still runs: beside both of them HTML
        # gave no shorter run and 40-100 MiB more peak at 100x (their slices' text and
        # its tables at once), but the last one (JSONL) runs alone for a while
        pending = set(self.futures)
        while len(pending) > 1:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            self._raise_first(done)
        try:
            for name in self.outputs:
                if name not in self.bulk:
                    self._one(name, report)
        except BaseException:
            self.cancel()  # the bulk one still running ends first, then every file goes
            raise
        self._raise_first(pending)
        if self.pool is not None:
            self.pool.shutdown()
        for part, path in self.parts:
            part.replace(path)

    def _raise_first(self, futures: Iterable[Future[None]]) -> None:
        """Raise the first error of ``futures`` (each waited for), once every renderer
        thread has ended and every file of this run is dropped."""
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            self.cancel()
            raise first

    def _drop(self) -> None:
        for part, _ in self.parts:
            with contextlib.suppress(OSError):
                part.unlink()

    def cancel(self) -> None:
        """Stop (the run failed before ``finish``): wait for the threads, drop their files."""
        for f in self.futures:
            f.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self._drop()


def write_outputs(store: CaseStore, report: RunReport, findings: pa.Table,
                  outputs: Sequence[str]) -> None:
    """Each requested renderer's file, from the (sorted) findings (see ``Outputs``)."""
    out = Outputs(store, findings, outputs)
    out.start()
    out.finish(report)


def posture(store: CaseStore, plan: Plan, findings: pa.Table | None = None) -> Any:
    """APT40 technique coverage of the case (see ``tidehunt.posture``).

    ``findings`` default to the case's last run (none if it was never detected).
    """
    from tidehunt import posture as pst

    if findings is None:
        path = store.root / "findings.parquet"
        findings = pq.read_table(path, columns=["techniques"]) if path.exists() else None
    rules = [r for r in plan.rules if r["type"] == "detection"]
    return pst.assess(rules, pst.case_telemetry(store), pst.fired_techniques(findings))


def run_webroot(root: str, store: CaseStore, ctx: RunContext, opts: HuntOptions) -> Any:
    """Scan one web root into the case's ``file`` table (see ``tidehunt.webroot``)."""
    from tidehunt.webroot import Limits, scan_webroot

    return scan_webroot(root, store, ctx, yara=opts.yara, baseline=opts.baseline,
                        host=opts.web_host, limits=Limits(max_file_bytes=opts.max_file_bytes))


def hunt(evidence: Sequence[str], case_dir: str | Path, ctx: RunContext,
         opts: HuntOptions) -> RunReport:
    """Ingest + detect + report.

    The rule plan is loaded (and the matcher warmed up), and detection's modules imported,
    in a thread while ingest runs: the parent process mostly waits for the ingest workers,
    so this fixed cost comes for free. The thread starts once the workers have their
    first tasks (``under_way``), not to slow down the walk and hashing they wait for.
    With room in the budget (``MatchPlan.stream``: ``--max-memory`` 4GB or more), that
    thread then matches the ``windows`` parts as ingest commits them (``StreamMatch``).
    """
    started = utcnow()
    t0 = time.perf_counter()
    check_option_paths(opts)  # a typo found now, not after an ingest of the evidence
    for root in opts.webroots:  # evidence too: no usable input, as scan-webroot says
        if not Path(root).is_dir():
            raise NoUsableInput(f"web root {root!r} is not a folder")
    go = threading.Event()
    failed: list[bool] = []
    # with room for it in the budget, the windows parts ingest commits are matched as
    # they come, once the plan is loaded (``run.StreamMatch``)
    budget = MemoryBudget.parse(opts.max_memory)
    streaming = bool(evidence) and opts.engine != "spark" and budget is not None and \
        budget.match(opts.workers or 2, chunk_rows=1).stream
    stream: list[StreamMatch] = []
    early: list[list[tuple[str, int]]] = []
    lock = threading.Lock()

    def on_windows(parts: list[tuple[str, int]]) -> None:
        with lock:
            if stream:
                stream[0].add(parts)
            else:
                early.append(parts)

    def prepare() -> Plan:
        go.wait()
        if failed:  # ingest raised before the plan was needed
            raise CancelledError
        plan = _prepare_detection(opts, ctx)
        if streaming:
            from tidehunt.detect.sigma.detector import SigmaDetector
            from tidehunt.detect.sigma.run import StreamMatch

            active = sorted(SigmaDetector(plan, _sigma_options(opts, None, budget))
                            .select()[0])
            st = StreamMatch(plan, active, since=opts.since, until=opts.until,
                             budget=budget, workers=opts.workers or 2)
            with lock:
                for parts in early:
                    st.add(parts)
                early.clear()
                stream.append(st)
        return plan

    with ThreadPoolExecutor(max_workers=1) as pool:
        plan_future = pool.submit(prepare)
        try:
            res: IngestResult | None = None
            if evidence:
                store, res = run_ingest(evidence, case_dir, ctx, opts.workers, opts.strict,
                                        _with_yara(opts), opts.max_memory, under_way=go.set,
                                        on_windows=on_windows if streaming else None,
                                        catalogue=False)
            else:
                store = CaseStore(case_dir, create=True)
            go.set()
            for root in opts.webroots:
                scan = run_webroot(root, store, ctx, opts)
                store.manifest.setdefault("runs", []).append({
                    "command": "scan-webroot", "finished": utcnow(), "webroot": root,
                    "files": scan.files, "yara_matches": scan.yara_matches,
                    "already_in_case": scan.already_in_case,
                    "seconds": round(scan.seconds, 3)})
                store.save()
            for site in opts.sites:
                from tidehunt.site_scan import scan_site

                ss = scan_site(site, store, ctx, baseline=opts.site_baseline,
                               site_origin=opts.site_origin)
                store.manifest.setdefault("runs", []).append({
                    "command": "scan-site", "finished": utcnow(), "site": site,
                    "pages": ss.pages, "scripts": ss.scripts,
                    "third_party_origins": ss.external_origins, "with_traits": ss.flagged,
                    "seconds": round(ss.seconds, 3)})
                store.save()
        except BaseException:
            if res is not None:  # ingest ended (a web root or site scan failed after it)
                with contextlib.suppress(Exception):
                    store.write_catalogue()
            plan_future.cancel()
            failed.append(True)
            go.set()  # a plan thread already waiting ends at once
            with contextlib.suppress(BaseException):
                plan_future.result()  # the stream, if any, exists once the plan does
            with lock:
                for st in stream:
                    st.abort()
            raise
        timings = {"ingest": round(time.perf_counter() - t0, 3)}
        if streaming:
            plan_future.result()  # the stream exists once the plan does
        return detect(store, ctx, opts, command="hunt", started=started, ingest_result=res,
                      timings=timings, plan_future=plan_future,
                      stream=stream[0] if stream else None)
