"""Property tests: the line-oriented web and proxy logs (access_log, iis_w3c, squid).

Each is fed valid-looking lines with random mutations (inserted and deleted bytes, invalid
UTF-8, CRs, NULs, cut lines, duplicated lines), gzip of them (cut or corrupted too), and
random bytes; every line must be accounted for and nothing but a SourceError may escape.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz._contract import (
    examples,
    hostile_text,
    lines_of,
    maybe_gzip,
    mutated,
    run_source,
)

ips = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
                st.sampled_from(["-", "unknown", "::1"]))
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/._-?=&%+", min_size=1,
                max_size=24)
status = st.one_of(st.integers(100, 599).map(str), st.just("-"))
size = st.one_of(st.integers(0, 10**12).map(str), st.just("-"))
months = st.sampled_from(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                          "Oct", "Nov", "Dec", "Foo"])
zones = st.sampled_from(["+0000", "-0700", "+1400", "Z", ""])
squid_tails = st.sampled_from(["", ' "Mozilla 5" 123', " tail"])


@st.composite
def apache_line(draw: st.DrawFn) -> str:
    ts = (f"{draw(st.integers(0, 40)):02d}/{draw(months)}/{draw(st.integers(1, 9999))}:"
          f"{draw(st.integers(0, 25)):02d}:{draw(st.integers(0, 61)):02d}:"
          f"{draw(st.integers(0, 61)):02d} {draw(zones)}")
    req = draw(st.one_of(
        st.builds(lambda m, u: f"{m} /{u} HTTP/1.1", st.sampled_from(["GET", "POST", "X"]), words),
        hostile_text.map(lambda t: t.replace('"', '\\"'))))
    line = f'{draw(ips)} - {draw(st.sampled_from(["-", "bob", "a b"]))} [{ts}] "{req}" ' \
           f"{draw(status)} {draw(size)}"
    if draw(st.booleans()):
        line += f' "{draw(words)}" "{draw(hostile_text).replace(chr(34), "")}"'
    if draw(st.booleans()):
        line = f"{draw(words)}:{draw(st.integers(0, 70000))} " + line
    return line


@st.composite
def alb_line(draw: st.DrawFn) -> str:
    t = draw(st.sampled_from(["http", "https", "h2", "tls 2.0"]))
    ts = (f"20{draw(st.integers(0, 99)):02d}-{draw(st.integers(0, 13)):02d}-"
          f"{draw(st.integers(0, 32)):02d}T{draw(st.integers(0, 24)):02d}:00:00."
          f"{draw(st.integers(0, 999999))}Z")
    num = st.one_of(st.floats(-1, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
                    st.just("-1"))
    return (f'{t} {ts} app/x {draw(ips)}:{draw(st.integers(0, 70000))} '
            f'{draw(ips)}:{draw(st.integers(0, 70000))} {draw(num)} {draw(num)} {draw(num)} '
            f'{draw(status)} {draw(status)} {draw(st.integers(-5, 10**9))} '
            f'{draw(st.integers(-5, 10**9))} "GET http://{draw(words)}:80/ HTTP/1.1" '
            f'"{draw(hostile_text).replace(chr(34), "")}" -')


@st.composite
def atlassian_line(draw: st.DrawFn) -> str:
    return (f"[{draw(st.integers(1, 31)):02d}/{draw(months)}/2024:10:00:00 +0000] "
            f"{draw(st.sampled_from(['', '1.2.3.4 ']))}{draw(words)} http-nio-8090-exec-1 "
            f"{draw(ips)} GET /{draw(words)} HTTP/1.1 {draw(status)} "
            f"{draw(st.integers(0, 9999))}ms {draw(size)} - {draw(hostile_text)}")


@st.composite
def bitbucket_line(draw: st.DrawFn) -> str:
    return (f"{draw(ips)} | https | i@1 | {draw(words)} | 2024-0{draw(st.integers(1, 9))}-"
            f"{draw(st.integers(1, 40)):02d} 10:00:00,{draw(st.integers(0, 9999))} | "
            f'"GET /{draw(words)} HTTP/1.1" | "-" "{draw(words)}" | {draw(status)} | '
            f"{draw(size)} | {draw(size)} | - | {draw(st.integers(0, 99))} | - |")


@st.composite
def access_log(draw: st.DrawFn) -> bytes:
    line = draw(st.sampled_from([apache_line(), alb_line(), atlassian_line(),
                                 bitbucket_line()]))
    body = lines_of(draw(st.lists(line, min_size=1, max_size=12)),
                    draw(st.sampled_from(["\n", "\r\n"])))
    return draw(maybe_gzip(draw(mutated(body))))


@settings(max_examples=examples(3))
@given(access_log())
def test_access_log(data):
    run_source("access_log", data, whole_sniff=True)


w3c_fields = st.lists(st.sampled_from(
    ["date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
     "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
     "sc-win32-status", "time-taken", "cs-host", "cs(Host)", "sc-bytes", "cs-bytes",
     "x-weird", "cs(Cookie)"]), min_size=1, max_size=10)


@st.composite
def w3c_value(draw: st.DrawFn, name: str) -> str:
    if name == "date":
        return f"20{draw(st.integers(0, 99)):02d}-{draw(st.integers(0, 13)):02d}-" \
               f"{draw(st.integers(0, 32)):02d}"
    if name == "time":
        return f"{draw(st.integers(0, 25)):02d}:{draw(st.integers(0, 61)):02d}:" \
               f"{draw(st.integers(0, 61)):02d}{draw(st.sampled_from(['', '.123']))}"
    if name in ("c-ip", "s-ip"):
        return draw(ips)
    if name.startswith(("sc-", "s-port", "time-", "cs-bytes")):
        return draw(st.one_of(st.integers(-1, 10**12).map(str), st.just("-")))
    return draw(st.one_of(words, st.just("-"), st.just("+")))


@st.composite
def w3c_log(draw: st.DrawFn) -> bytes:
    out: list[str] = []
    if draw(st.booleans()):
        out.append("#Software: Microsoft Internet Information Services 10.0")
    for _ in range(draw(st.integers(1, 3))):
        fields = draw(w3c_fields)
        if draw(st.booleans()):
            out.append(f"#Date: 20{draw(st.integers(0, 99)):02d}-01-01 00:00:00")
        out.append("#Fields: " + " ".join(fields))
        for _ in range(draw(st.integers(0, 6))):
            vals = [draw(w3c_value(f)) for f in fields]
            out.append(" ".join(vals))
    body = lines_of(out, draw(st.sampled_from(["\n", "\r\n"])))
    return draw(maybe_gzip(draw(mutated(body))))


@settings(max_examples=examples(3))
@given(w3c_log())
def test_iis_w3c(data):
    run_source("iis_w3c", data, whole_sniff=True)


@st.composite
def squid_line(draw: st.DrawFn) -> str:
    ts = f"{draw(st.integers(10**8, 10**11))}.{draw(st.integers(0, 999)):03d}"
    return (f"{ts} {draw(st.integers(-5, 10**7)):6d} {draw(ips)} "
            f"{draw(st.sampled_from(['TCP_MISS', 'TCP_DENIED', 'NONE_NONE', 'x']))}/"
            f"{draw(status)} {draw(size)} {draw(st.sampled_from(['GET', 'CONNECT', '-']))} "
            f"{draw(st.sampled_from(['http://', 'https://', '']))}{draw(words)} "
            f"{draw(st.sampled_from(['-', 'bob']))} "
            f"{draw(st.sampled_from(['HIER_DIRECT', 'NONE', 'PARENT_HIT']))}/"
            f"{draw(st.one_of(ips, words))} {draw(st.sampled_from(['text/html', '-']))}"
            f"{draw(squid_tails)}")


@st.composite
def squid_log(draw: st.DrawFn) -> bytes:
    body = lines_of(draw(st.lists(squid_line(), min_size=1, max_size=12)))
    return draw(maybe_gzip(draw(mutated(body))))


@settings(max_examples=examples(2))
@given(squid_log(), st.booleans())
def test_squid(data, mapped):
    mapping = {"table": "proxy", "format": "squid", "extra_fields": ["user_agent", "bytes_out"]}
    opts = {"net_mapping": [mapping]} if mapped else None
    run_source("squid", data, options=opts)


@settings(max_examples=examples(2))
@given(st.binary(max_size=4096), st.sampled_from(["access_log", "iis_w3c", "squid"]))
def test_random_bytes(data, name):
    run_source(name, data)
