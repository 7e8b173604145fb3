"""Convert rule packs to SIEM queries with the maintained pySigma backends.

Each target is a pySigma backend with the processing pipeline its maintainers ship for
Windows logs: Splunk SPL (``splunk_windows_pipeline``), Elasticsearch Lucene over ECS
(``ecs_windows``) and Kusto for Microsoft Defender XDR advanced hunting
(``microsoft_xdr_pipeline``). A rule a backend or its pipeline cannot express is reported
with the backend's own reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidehunt.detect.sigma.loader import rule_files


def _splunk() -> Any:
    from sigma.backends.splunk.splunk import SplunkBackend
    from sigma.pipelines.splunk.splunk import splunk_windows_pipeline

    return SplunkBackend(splunk_windows_pipeline())  # type: ignore[no-untyped-call]


def _elastic() -> Any:
    from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
    from sigma.pipelines.elasticsearch.windows import ecs_windows

    return LuceneBackend(ecs_windows())


def _kusto() -> Any:
    from sigma.backends.kusto.kusto import KustoBackend
    from sigma.pipelines.microsoftxdr.microsoftxdr import microsoft_xdr_pipeline

    return KustoBackend(microsoft_xdr_pipeline())


#: target name -> (backend factory, query language shown to the user)
TARGETS: dict[str, tuple[Callable[[], Any], str]] = {
    "splunk": (_splunk, "Splunk SPL (Windows TA field names)"),
    "elastic": (_elastic, "Elasticsearch Lucene (ECS)"),
    "kusto": (_kusto, "Kusto (Microsoft Defender XDR advanced hunting)"),
}


@dataclass
class Converted:
    """One rule's queries for a target."""

    id: str
    title: str
    path: str
    queries: list[str]


@dataclass
class ExportResult:
    """Every rule's queries, and the rules the target cannot express with the reason."""

    target: str
    language: str
    converted: list[Converted] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    #: rules with no query of their own: they are part of a correlation rule's query
    included: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "language": self.language,
                "converted": [c.__dict__ for c in self.converted], "failed": self.failed,
                "included_in_correlations": self.included}


def export(paths: Sequence[str], target: str) -> ExportResult:
    """Convert every rule under ``paths`` for ``target``.

    Raises:
        ValueError: unknown target.
    """
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    factory, language = TARGETS[target]
    result = ExportResult(target, language)
    import yaml

    from tidehunt.detect.sigma.compile import yaml_docs
    from tidehunt.yamlconf import MAX_VALUES, expanded_size

    all_docs: list[Any] = []
    origin: dict[str, str] = {}  # rule id -> file it came from
    for rf in _files(paths):
        text = rf.data.decode("utf-8", "replace")
        try:
            docs = yaml_docs(text)
        except yaml.YAMLError as exc:
            result.failed.append({"path": rf.display, "id": "", "title": "",
                                  "reason": f"not valid YAML: {str(exc).splitlines()[0]}"})
            continue
        if expanded_size(docs) > MAX_VALUES:
            result.failed.append({"path": rf.display, "id": "", "title": "",
                                  "reason": f"YAML aliases expand to more than {MAX_VALUES:,} "
                                            "values or refer to themselves (a YAML bomb?)"})
            continue
        for d in docs:
            if isinstance(d, dict) and d.get("id"):
                origin[str(d["id"])] = rf.display
        all_docs += docs
    # one collection, so correlation rules find the rules they name
    try:
        merged = SigmaCollection.from_dicts(all_docs, collect_errors=True)
    except SigmaError as exc:
        result.failed.append({"path": "", "id": "", "title": "",
                              "reason": f"not valid Sigma: {exc}"})
        return result
    for e in merged.errors:
        result.failed.append({"path": "", "id": "", "title": "",
                              "reason": f"not valid Sigma: {e}"})
    for rule in merged.rules:
        rid, title = str(rule.id or ""), str(rule.title or "")
        where = origin.get(rid, "")
        try:
            backend = factory()  # a backend keeps state per collection: a fresh one per rule
            if isinstance(rule, SigmaCorrelationRule):
                # converted with the rules it names: the backend needs their queries
                refs = [r.rule for r in rule.rules or [] if isinstance(r.rule, SigmaRule)]
                queries = backend.convert(SigmaCollection([*refs, rule]))[-1:]
            else:
                queries = backend.convert_rule(rule)
        except SigmaError as exc:
            result.failed.append({"path": where, "id": rid, "title": title,
                                  "reason": str(exc).splitlines()[0][:300]})
            continue
        except (NotImplementedError, KeyError, TypeError, ValueError, AttributeError) as exc:
            result.failed.append({"path": where, "id": rid, "title": title,
                                  "reason": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        if not queries:  # generate: false, named by a correlation rule
            result.included.append({"path": where, "id": rid, "title": title,
                                    "reason": "only part of the correlation rules that name "
                                              "it (generate: false)"})
            continue
        result.converted.append(Converted(rid, title, where, [str(q) for q in queries]))
    return result


def _files(paths: Iterable[str]) -> Iterable[Any]:
    for p in paths:
        yield from rule_files(p)


def render_text(result: ExportResult) -> str:
    """Queries as text, one block per rule, then the rules that could not be converted."""
    out = [f"# {len(result.converted)} rules converted to {result.language}; "
           f"{len(result.failed)} could not be expressed"]
    for c in result.converted:
        out.append(f"\n# {c.title} ({c.id})\n# {c.path}")
        out.extend(c.queries)
    if result.included:
        out.append("\n# Part of a correlation rule's query only (generate: false):")
        out.extend(f"#   {f['title']} ({f['id']})" for f in result.included)
    if result.failed:
        out.append("\n# Not expressible for this target:")
        out.extend(f"#   {f['title'] or f['path']} ({f['id']}): {f['reason']}"
                   for f in result.failed)
    return "\n".join(out) + "\n"
