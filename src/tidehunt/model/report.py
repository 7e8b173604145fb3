"""RunReport: the versioned document every renderer reads (findings live beside it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

REPORT_VERSION = 1


class RuleSource(BaseModel):
    """One rule pack a run used."""

    path: str
    files: int = 0
    sha256: str = ""
    content_date: str = ""
    age_days: int | None = None
    name: str = ""
    version: str = ""


class Meta(BaseModel):
    """Who ran what, when, on which case."""

    tool: str = "tidehunt"
    tool_version: str
    command: str
    case: str
    started: str
    finished: str
    rule_sources: list[RuleSource] = Field(default_factory=list)
    filters: dict[str, Any] = Field(default_factory=dict)


class RunReport(BaseModel):
    """The result document of a run.

    ``findings_file`` names the Parquet file (in FINDINGS_SCHEMA) beside ``report.json``;
    ``load_findings`` reads it, so renderers scale to millions of findings.
    """

    version: int = REPORT_VERSION
    meta: Meta
    stats: dict[str, Any] = Field(default_factory=dict)
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    rule_errors: list[dict[str, str]] = Field(default_factory=list)
    rules_not_applicable: list[dict[str, str]] = Field(default_factory=list)
    findings_file: str = "findings.parquet"
    findings_count: int = 0
    #: Incidents from the correlator (``tidehunt.correlate``), first step first.
    incidents: list[dict[str, Any]] = Field(default_factory=list)

    def to_json(self) -> str:
        """Serialise (indented)."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunReport:
        """Parse; refuses documents from a newer tidehunt.

        Raises:
            ValueError: newer version or invalid document.
        """
        import orjson

        raw = orjson.loads(text)
        if int(raw.get("version", 0)) > REPORT_VERSION:
            raise ValueError(f"report version {raw.get('version')} is newer than this "
                             f"tidehunt understands ({REPORT_VERSION}); upgrade tidehunt")
        return cls.model_validate(raw)

    def load_findings(self, case_dir: str | Path,
                      columns: Sequence[str] | None = None) -> pa.Table:
        """The findings table of this run (only ``columns``, if given)."""
        import pyarrow.parquet as pq

        from tidehunt.model.finding import FINDINGS_SCHEMA

        path = Path(case_dir) / self.findings_file
        if not path.exists():
            empty = FINDINGS_SCHEMA.empty_table()
            return empty if columns is None else empty.select(list(columns))
        return pq.read_table(path, columns=None if columns is None else list(columns))
