"""Property tests: the attachment analysers (office, lnk, archives, scripts) on mutated
generated samples and random bytes.

``analyse_tree`` never raises and never hangs, whatever the bytes (a library failing on a
broken file becomes a note). The shortcut and archive analysers are called directly too:
an exception may come from the parser library (the caller notes it), never from
tidehunt's own code.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import seeds
from tests.fuzz._contract import examples, mutated, no_hang, own_code_never_raises
from tidehunt.attachments import LEVELS, analyse_tree
from tidehunt.attachments.archive import Budget, Limits, unpack
from tidehunt.attachments.kinds import ARCHIVE_KINDS, kind
from tidehunt.attachments.lnk import analyse_lnk
from tidehunt.attachments.model import Report

SAMPLES = {**seeds.office(), **seeds.lnk(), **seeds.archives()}
for _p in seeds.corpus_files("email/attachments/**/*.*", limit=12, max_bytes=256 << 10):
    SAMPLES[_p.name] = _p.read_bytes()
LIMITS = Limits(max_total=8 << 20, max_count=50, max_depth=3)


@st.composite
def attachment(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SAMPLES)))
    data = SAMPLES[name]
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.binary(max_size=2048))
    else:
        data = draw(mutated(data, max_ops=8))
    return draw(st.sampled_from([name, "x.bin", "invoice.pdf.exe", ""])), data


@settings(max_examples=examples(2))
@given(attachment())
def test_analyse_tree(att):
    name, data = att
    with no_hang():
        nodes = analyse_tree(data, name, passwords=["infected"], limits=LIMITS)
    assert nodes and nodes[0].data == data
    for n in nodes:
        assert all(i.severity in LEVELS for i in n.report.indicators)
        assert n.depth <= LIMITS.max_depth + 1


@settings(max_examples=examples(2))
@given(st.sampled_from(sorted(seeds.lnk())).flatmap(lambda k: mutated(seeds.lnk()[k], 10)))
def test_lnk(data):
    own_code_never_raises(analyse_lnk, data, Report("x.lnk", "lnk"))


ARCHIVES = {k: v for k, v in seeds.archives().items() if kind(v, k) in ARCHIVE_KINDS}


@settings(max_examples=examples(2))
@given(st.sampled_from(sorted(ARCHIVES)).flatmap(
    lambda k: st.tuples(st.just(kind(ARCHIVES[k], k)), mutated(ARCHIVES[k], 8))))
def test_archive(case):
    k, data = case
    own_code_never_raises(unpack, data, k, Report("a", k), Budget(LIMITS), ["infected"])
