"""Pure data types shared by every stage; no I/O here."""

from __future__ import annotations

from tidehunt.model.batch import TableBatch
from tidehunt.model.fields import FieldSpec, FieldType, TableSchema
from tidehunt.model.finding import Evidence, Finding
from tidehunt.model.rule import AttackRef, RuleLocation, RuleMeta, Severity
from tidehunt.model.tables import SCHEMA_VERSION, TABLES
from tidehunt.model.warning import IngestWarning

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "AttackRef",
    "Evidence",
    "FieldSpec",
    "FieldType",
    "Finding",
    "IngestWarning",
    "RuleLocation",
    "RuleMeta",
    "Severity",
    "TableBatch",
    "TableSchema",
]
