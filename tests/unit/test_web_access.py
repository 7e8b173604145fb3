"""Access-log sources on generated logs: layouts, gzip, and every kind of bad line."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.sources.access_log import AccessLogSource
from tidehunt.sources.base import Artefact
from tidehunt.sources.iis_w3c import IisW3cSource
from tidehunt.sources.sniff import sniff

APACHE = ('10.0.0.{i} - - [11/Jul/2018:08:41:{s:02d} +0300] "GET /p/{i}?q={i} HTTP/1.1" 200 '
          '{i} "-" "UA {i}"\n')


def _read(src, path, ctx):
    art = Artefact("a", path, str(path))
    batches = [b.data for b in src.read(art, ctx)]
    return pa.concat_tables([pa.table(b) for b in batches], promote_options="permissive")


def test_apache_bad_lines_are_counted_with_their_line_numbers(tmp_path, ctx):
    lines = [APACHE.format(i=i, s=i) for i in range(1, 6)]
    lines.insert(1, "garbage that is no request\n")
    lines.insert(4, "\n")
    p = tmp_path / "access"
    p.write_text("".join(lines))
    src = AccessLogSource()
    t = _read(src, p, ctx)
    assert t.num_rows == 5
    assert [(w.count, w.locators) for w in ctx.warnings] == [(1, ("line 2",))]
    assert src.stats.blank == 1 and src.stats.bad == 1 and src.stats.lines == 7
    first = t.to_pylist()[0]
    assert first["ts"] == datetime(2018, 7, 11, 5, 41, 1, tzinfo=UTC)  # +0300 in the file
    assert (first["method"], first["uri_stem"], first["uri_query"]) == ("GET", "/p/1", "q=1")
    assert first["line"] == 1 and first["_locator"] == "line 1"


def test_gzip_is_read_by_content_and_truncation_is_a_warning(tmp_path):
    body = "".join(APACHE.format(i=i % 250, s=i % 60) for i in range(20_000)).encode()
    gz = tmp_path / "log.bin"  # no telling name: the content decides
    gz.write_bytes(gzip.compress(body))
    art = Artefact("a", gz, str(gz))
    assert sniff(art) is AccessLogSource
    ctx = RunContext()
    assert _read(AccessLogSource(), gz, ctx).num_rows == 20_000 and ctx.warnings == []
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gz.read_bytes()[: len(gz.read_bytes()) // 2])
    ctx = RunContext()
    src = AccessLogSource()
    t = _read(src, cut, ctx)
    assert 0 < t.num_rows < 20_000
    assert any("truncated" in w.message for w in ctx.warnings)


def test_non_utf8_bytes_are_replaced_and_reported(tmp_path, ctx):
    p = tmp_path / "access"
    p.write_bytes(APACHE.format(i=1, s=1).encode()
                  + b'10.0.0.9 - - [11/Jul/2018:08:41:02 +0300] "\x16\x03\xfc\xff" 400 -\n')
    t = _read(AccessLogSource(), p, ctx)
    assert t.num_rows == 2
    assert [w.locators for w in ctx.warnings if "UTF-8" in w.message] == [("line 2",)]
    assert t.column("status").to_pylist() == [200, 400]


def test_request_with_unescaped_quotes_keeps_its_uri(tmp_path, ctx):
    p = tmp_path / "access"
    p.write_text('1.2.3.4 - - [25/Apr/2021:06:15:33 +0000] "GET /a?x=<script>alert("t")'
                 '</script> HTTP/1.0" 404 1164\n')
    t = _read(AccessLogSource(), p, ctx)
    assert t.column("uri_query").to_pylist() == ['x=<script>alert("t")</script>']
    assert t.column("status").to_pylist() == [404]


IIS = """#Software: Microsoft Internet Information Services 10.0
#Version: 1.0
#Date: 2024-05-01 00:00:00
#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query c-ip cs(User-Agent) sc-status
2024-05-01 10:00:00 10.1.1.1 GET /a.aspx - 192.0.2.7 Mozilla/5.0+(X) 200
2024-05-01 10:00:01 10.1.1.1 GET /b.aspx x=1 192.0.2.7 too many fields here 200
#Fields: time cs-method cs-uri-stem c-ip sc-status s-computername cs(X-Custom)
10:00:02 POST /upload.aspx 192.0.2.8 200 WEB01 abc
"""


def test_iis_layout_changes_mid_file(tmp_path, ctx):
    p = tmp_path / "u_ex240501.log"
    p.write_text(IIS)
    src = IisW3cSource()
    t = _read(src, p, ctx)
    rows = t.to_pylist()
    assert [r["uri_stem"] for r in rows] == ["/a.aspx", "/upload.aspx"]
    assert rows[0]["user_agent"] == "Mozilla/5.0 (X)" and rows[0]["uri_query"] is None
    # the second header has no date field: the #Date directive gives the day
    assert rows[1]["ts"] == datetime(2024, 5, 1, 10, 0, 2, tzinfo=UTC)
    assert rows[1]["host"] == "WEB01" and rows[1]["w3c_cs_x_custom"] == "abc"
    assert [(w.count, w.locators) for w in ctx.warnings] == [(1, ("line 6",))]
    st = src.stats
    assert (st.records, st.directives, st.bad, st.lines) == (2, 5, 1, 8)


def test_iis_without_fields_header_is_unreadable(tmp_path, ctx):
    p = tmp_path / "x.log"
    p.write_text("#Software: Microsoft Internet Information Services 10.0\n"
                 "2024-05-01 10:00:00 GET / 200\n")
    with pytest.raises(SourceError, match="#Fields"):
        _read(IisW3cSource(), p, ctx)


def test_other_text_is_not_claimed(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("meeting notes\nnothing to see\n")
    assert sniff(Artefact("a", p, str(p))) is None
