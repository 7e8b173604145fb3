"""Detector base class."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import ClassVar

import pyarrow as pa

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext


class Detector(abc.ABC):
    """Reads whole tables of a case and yields findings as batches in FINDINGS_SCHEMA."""

    NAME: ClassVar[str]
    READS: ClassVar[frozenset[str]]

    @abc.abstractmethod
    def run(self, store: CaseStore, ctx: RunContext) -> Iterator[pa.RecordBatch]:
        """Match in bulk; yield finding batches (tidehunt.model.finding.FINDINGS_SCHEMA)."""
