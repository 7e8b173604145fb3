"""Shared column handling of the access-log sources (``web_access`` table)."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
import pyarrow as pa

from tidehunt.model.batch import TableBatch
from tidehunt.model.tables import WEB_ACCESS
from tidehunt.sources.base import Artefact

INT_COLUMNS = tuple(f.name for f in WEB_ACCESS.fields if f.arrow_type() == pa.int64())
DECLARED = {f.name for f in WEB_ACCESS.fields}

_REQUEST = r"^(?P<method>[A-Za-z_-]+) (?P<uri>\S+)(?: (?P<protocol>[A-Za-z0-9]+/[0-9.]+))?\s*$"
_URI = (r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<vhost>\[[^\]]*\]|[^/?#:]*)(?::\d+)?)?"
        r"(?P<uri_stem>[^?]*)(?:\?(?P<uri_query>.*))?$")


def split_request(request: pl.Series) -> dict[str, pl.Series]:
    """``"GET /a?b HTTP/1.1"`` -> method, uri_stem, uri_query, protocol (and vhost of an
    absolute URL); a request line that is not of that shape keeps nulls."""
    req = request.str.extract_groups(_REQUEST)
    out = {"method": req.struct.field("method"), "protocol": req.struct.field("protocol")}
    out.update(split_uri(req.struct.field("uri")))
    return out


def split_uri(uri: pl.Series) -> dict[str, pl.Series]:
    """An absolute or relative URI -> vhost (if absolute), uri_stem and uri_query."""
    parts = uri.str.extract_groups(_URI)
    vhost = parts.struct.field("vhost")
    return {
        "vhost": vhost.replace("", None),
        "uri_stem": parts.struct.field("uri_stem"),
        "uri_query": parts.struct.field("uri_query"),
    }


def to_batch(raw: Mapping[str, pl.Series], lineno: pl.Series, artefact: Artefact,
             source: str, fmt: str) -> TableBatch:
    """Columns of one layout -> a ``web_access`` batch (ints cast, '-' already null)."""
    n = len(lineno)
    cols: dict[str, pa.Array] = {}
    for name, s in raw.items():
        if name in INT_COLUMNS:
            s = s.cast(pl.Int64, strict=False)
        arr = s.to_arrow()
        cols[name] = arr if isinstance(arr, pa.Array) else arr.combine_chunks()
    cols["format"] = pa.array([fmt] * n, pa.string())
    cols["source_file"] = pa.array([artefact.display] * n, pa.string())
    cols["line"] = lineno.to_arrow()
    locator = ("line " + lineno.cast(pl.String)).to_arrow()
    return TableBatch.of("web_access", cols, source=source, artefact=artefact.id,
                         locator=locator)
