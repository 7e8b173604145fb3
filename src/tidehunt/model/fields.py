"""Field and table declarations, typed by meaning (IP, path, command line, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class FieldType(StrEnum):
    """What a column means, so detectors can find e.g. every IP column of a table."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    IP = "ip"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    PATH = "path"
    COMMAND_LINE = "command_line"
    USER = "user"
    HASH_MD5 = "hash.md5"
    HASH_SHA1 = "hash.sha1"
    HASH_SHA256 = "hash.sha256"


_ARROW: dict[FieldType, pa.DataType] = {
    FieldType.INT: pa.int64(),
    FieldType.FLOAT: pa.float64(),
    FieldType.BOOL: pa.bool_(),
    FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One declared column."""

    name: str
    type: FieldType
    doc: str = ""

    def arrow_type(self) -> pa.DataType:
        """The Arrow type this column is stored as."""
        return _ARROW.get(self.type, pa.string())


@dataclass(frozen=True, slots=True)
class TableSchema:
    """What a table promises to detectors.

    ``open_columns`` tables (``windows``) also carry any number of extra string
    columns named as in the source (EventData names), besides the declared ones.
    """

    name: str
    fields: tuple[FieldSpec, ...]
    doc: str = ""
    open_columns: bool = False
    extra_types: tuple[tuple[str, FieldType], ...] = ()
    #: Whether its Parquet parts use dictionary pages (``case.store.write_part``).
    dictionary_pages: bool = True

    def arrow(self) -> pa.Schema:
        """Arrow schema of the declared columns; FieldType kept in field metadata."""
        return pa.schema(
            [
                pa.field(f.name, f.arrow_type(), metadata={"tidehunt.type": f.type.value})
                for f in self.fields
            ]
        )

    def field(self, name: str) -> FieldSpec | None:
        """The declared field called ``name``, if any."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def names_of_type(self, *types: FieldType) -> tuple[str, ...]:
        """Names of declared (and known extra) columns of the given meaning types."""
        names = [f.name for f in self.fields if f.type in types]
        names += [n for n, t in self.extra_types if t in types]
        return tuple(names)
