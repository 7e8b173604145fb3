"""The attachment analyser on generated maldoc look-alikes: RTF exploits and template
injection, remote-template .docx, shortcuts, script droppers, name tricks, mailed
passwords, encrypted/bomb/nested/traversal archives, 7z, ISO, hostile garbage and YARA."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

import pytest

from tests.fixtures import maldocs as M
from tests.fixtures import webroots as W
from tidehunt.attachments import Node, analyse_tree, passwords_in
from tidehunt.attachments.archive import Limits
from tidehunt.attachments.kinds import kind
from tidehunt.attachments.names import lure

CMD = r"C:\Windows\System32\cmd.exe"
POWERSHELL = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"


def ids(node: Node) -> list[str]:
    return [i.id for i in node.report.indicators]


def ind(node: Node, iid: str):
    found = [i for i in node.report.indicators if i.id == iid]
    assert found, f"{iid} not in {ids(node)} of {node.name!r}"
    return found[0]


def all_ids(nodes: list[Node]) -> set[str]:
    return {i for n in nodes for i in ids(n)}


# --- RTF and OOXML --------------------------------------------------------------------


def test_rtf_equation_editor_critical_and_child_deduplicated():
    nodes = analyse_tree(M.rtf_equation_editor(), "Figures.rtf")
    top = nodes[0]
    assert top.report.kind == "rtf" and top.depth == 0 and top.parent is None
    eq = ind(top, "equation_editor")
    assert eq.severity == "critical"
    assert "CVE-2017-11882" in (eq.cve or "")
    assert len(nodes) == 2
    child = nodes[1]
    assert child.depth == 1 and child.parent == "Figures.rtf"
    assert child.how.startswith("OLE object") and child.report.kind == "ole"
    assert "equation_editor" not in ids(child)
    # on its own the OLE object is flagged: the tree drops it only as a repeat
    alone = analyse_tree(child.data, child.name)[0]
    assert "equation_editor" in ids(alone)


def test_rtf_template_injection_url():
    url = "http://203.0.113.50/template.dotm"
    top = analyse_tree(M.rtf_template_injection(url), "Paper.rtf")[0]
    assert ind(top, "rtf_template").severity == "high"
    assert url in top.report.urls


def test_rtf_ole2link_cve_2017_0199():
    nodes = analyse_tree(M.rtf_ole2link(), "Loading.rtf")
    link = ind(nodes[0], "ole2link")
    assert link.severity == "critical"
    assert "CVE-2017-0199" in (link.cve or "")
    assert all("ole2link" not in ids(n) for n in nodes[1:])


def test_docx_remote_template_meta_and_lure():
    url = "http://203.0.113.50/Normal.dotm"
    top = analyse_tree(M.docx_remote_template(url), "Paper.docx")[0]
    assert top.report.kind == "ooxml"
    assert ind(top, "remote_template").severity == "high"
    assert url in top.report.urls
    assert top.report.meta["title"] == "Maritime Security Research Paper 2026"
    assert top.report.meta["creator"] == "Dr Jane Smith"
    assert "research" in top.report.lure_themes
    assert top.report.lure_score > 0


def test_docx_clean_has_no_indicators():
    nodes = analyse_tree(M.docx_clean(), "Newsletter.docx")
    assert len(nodes) == 1
    assert nodes[0].report.kind == "ooxml"
    assert nodes[0].report.indicators == []
    assert nodes[0].report.urls == []


# --- Shortcuts and scripts ------------------------------------------------------------


@pytest.mark.parametrize(("target", "args"), [(CMD, "/c echo test"),
                                               (POWERSHELL, "-nop -w hidden -c calc")])
def test_lnk_lolbin_target_and_arguments(target, args):
    top = analyse_tree(M.lnk(target, args), "Invitation.lnk")[0]
    assert top.report.kind == "lnk"
    assert top.report.lnk["target"] == target
    assert top.report.lnk["arguments"] == args
    cmd = ind(top, "lnk_command")
    assert cmd.severity == "high"
    assert target.rsplit("\\", 1)[-1] in cmd.detail


def test_lnk_plain_program_is_medium():
    top = analyse_tree(M.lnk(r"C:\Program Files\Viewer\viewer.exe", "doc.pdf"), "a.lnk")[0]
    assert ind(top, "lnk_command").severity == "medium"


def test_lnk_padded_arguments():
    args = " " * 200 + "-c calc"
    top = analyse_tree(M.lnk(POWERSHELL, args), "Report.pdf.lnk")[0]
    assert top.report.lnk["arguments"] == args
    cmd = ind(top, "lnk_command")
    assert cmd.severity == "high"
    assert "pads its arguments" in cmd.detail
    assert "double_extension" in ids(top)


@pytest.mark.parametrize(("builder", "name", "k"), [
    (M.hta, "viewer.hta", "hta"), (M.js_dropper, "invoice.js", "js"),
    (M.vbs_dropper, "invoice.vbs", "vbs"), (M.wsf_dropper, "update.wsf", "wsf")])
def test_script_attachments(builder, name, k):
    top = analyse_tree(builder(), name)[0]
    assert top.report.kind == k
    s = ind(top, "script_attachment")
    assert s.severity == "high" and "runs commands" in s.detail


def test_kind_sniffs_scripts_by_content():
    assert kind(M.hta(), "readme.txt") == "hta"
    assert kind(M.wsf_dropper(), "readme.txt") == "wsf"
    assert kind(M.js_dropper(), "readme.txt") == "text"
    assert kind(M.lnk(), "x") == "lnk"
    assert kind(M.docx_clean(), "x.zip") == "ooxml"
    assert kind(b"", "x.exe") == "empty"


# --- Names and mailed passwords -------------------------------------------------------


def test_rlo_name():
    top = analyse_tree(b"MZ\x90\x00", "invoice\u202efdp.exe")[0]
    assert ind(top, "rlo_name").severity == "high"
    assert "invoicefdp.exe" in ind(top, "rlo_name").detail
    assert "executable_attachment" in ids(top)


def test_double_extension_and_plain_name():
    pdf = M._pdf("Report")
    top = analyse_tree(pdf, "report.pdf.exe")[0]
    d = ind(top, "double_extension")
    assert d.severity == "high" and ".exe" in d.detail
    plain = analyse_tree(pdf, "report.pdf")[0]
    assert not {"double_extension", "rlo_name"} & set(ids(plain))


def test_lure_themes():
    themes, score = lure(["Invitation to the Maritime Security Conference", "CV.docx"])
    assert {"conference", "shipping", "cv"} <= set(themes)
    assert 3 <= score <= 10
    assert lure(["Lunch on Friday"]) == ([], 0)


def test_passwords_in_languages():
    got = passwords_in("Password: Abc123!", "the archive pwd = x1y2z3",
                       "\u5bc6\u7801\uff1a2026abc", "Das Kennwort: Sommer2026.")
    assert got == ["Abc123!", "x1y2z3", "2026abc", "Sommer2026"]
    assert passwords_in("Please review the attached report before Friday.") == []
    assert passwords_in("", None) == []


def test_passwords_in_keyword_inside_word():
    assert passwords_in("Shipping rates moved upwards this quarter.") == []


# --- Zip ------------------------------------------------------------------------------


@pytest.mark.parametrize("aes", [False, True])
def test_zip_password_from_mail(aes):
    data = M.zip_with({"doc.vbs": M.vbs_dropper()}, password="s3cret", aes=aes)
    nodes = analyse_tree(data, "docs.zip", passwords=["nope", "s3cret"])
    top = nodes[0]
    assert top.report.encrypted and top.report.password == "s3cret"
    assert ind(top, "archive_encrypted").severity == "high"
    assert [n.name for n in nodes[1:]] == ["doc.vbs"]
    assert nodes[1].data == M.vbs_dropper()
    assert "script_attachment" in ids(nodes[1])


@pytest.mark.parametrize("passwords", [None, ["wrong"]])
def test_zip_wrong_or_no_password(passwords):
    data = M.zip_with({"doc.vbs": M.vbs_dropper()}, password="s3cret")
    nodes = analyse_tree(data, "docs.zip", passwords=passwords)
    top = nodes[0]
    assert top.report.encrypted and top.report.password is None
    assert ind(top, "archive_encrypted").severity == "medium"
    assert len(nodes) == 2 and nodes[1].data == b""
    assert "encrypted" in (nodes[1].note or "")
    assert nodes[1].report.indicators == []


def test_zip_analyst_password_infected():
    nodes = analyse_tree(M.zip_with({"a.js": M.js_dropper()}, password="infected"), "s.zip")
    assert nodes[0].report.password == "infected"
    assert "script_attachment" in ids(nodes[1])


def test_zip_bomb_default_limits_low_memory():
    bomb = M.zip_bomb()  # 256 MiB of zeros, built before measuring
    tracemalloc.start()
    try:
        nodes = analyse_tree(bomb, "invoice.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20
    assert ind(nodes[0], "archive_bomb").severity == "high"
    assert len(nodes) == 2
    assert nodes[1].name == "invoice_data.bin" and nodes[1].data == b""
    assert "over the unpack limits" in (nodes[1].note or "")


def test_zip_custom_total_limit():
    data = M.zip_with({"zeros.bin": bytes(5 << 20), "small.txt": b"hello"})
    nodes = analyse_tree(data, "z.zip", limits=Limits(max_total=1 << 20, max_ratio=1e9))
    assert "1 MiB" in ind(nodes[0], "archive_bomb").detail
    by = {n.name: n for n in nodes[1:]}
    assert by["zeros.bin"].data == b""
    assert by["small.txt"].data == b"hello"


def test_zip_traversal_reported_nothing_written(tmp_path):
    nodes = analyse_tree(M.zip_traversal(), "t.zip", work=tmp_path)
    trav = ind(nodes[0], "archive_traversal")
    assert trav.severity == "high" and trav.detail.startswith("4 member name(s)")
    for bad in ("../../evil.txt", "/etc/evil.conf", "evil.dll", "evil2.txt"):
        assert bad in trav.detail
    assert "ok.txt" not in trav.detail
    assert [n.name for n in nodes[1:]] == ["../../evil.txt", "/etc/evil.conf",
                                           "C:\\Windows\\evil.dll", "..\\..\\evil2.txt",
                                           "ok.txt"]
    assert all(n.data for n in nodes[1:])
    assert list(tmp_path.iterdir()) == []  # the private work folder is gone
    assert list(tmp_path.parent.rglob("evil*")) == []


def test_office_copies_cleaned_from_work(tmp_path):
    nodes = analyse_tree(M.zip_with({"a.docx": M.docx_remote_template(),
                                     "b.rtf": M.rtf_equation_editor()}), "d.zip", work=tmp_path)
    assert {"remote_template", "equation_editor"} <= all_ids(nodes)
    assert list(tmp_path.iterdir()) == []


def test_zip_cve_2023_38831():
    nodes = analyse_tree(M.zip_cve_2023_38831(), "Research_Paper.zip")
    w = ind(nodes[0], "winrar_cve_2023_38831")
    assert w.severity == "critical" and w.cve == "CVE-2023-38831"
    cmd = [n for n in nodes if n.name.endswith(".cmd")]
    assert len(cmd) == 1
    assert {"double_extension", "script_attachment"} & set(ids(cmd[0]))
    assert cmd[0].report.kind == "bat"


def test_nested_zip_depth_limit():
    nodes = analyse_tree(M.nested_zip(8), "n.zip")
    assert max(n.depth for n in nodes) == 5
    deep = [n for n in nodes if "archive_too_deep" in ids(n)]
    assert [n.depth for n in deep] == [5]
    assert all(n.name != "readme.txt" for n in nodes)
    assert nodes[3].parent == "n.zip>layer1.zip>layer2.zip"


def test_nested_zip_within_limit_reaches_readme():
    nodes = analyse_tree(M.nested_zip(3), "n.zip")
    assert nodes[-1].name == "readme.txt" and nodes[-1].depth == 3
    assert "archive_too_deep" not in all_ids(nodes)


def test_zip_max_count():
    data = M.zip_with({f"f{i:02}.txt": b"x" for i in range(30)})
    nodes = analyse_tree(data, "m.zip", limits=Limits(max_count=10))
    assert ind(nodes[0], "archive_too_many").severity == "medium"
    assert 0 < len(nodes) - 1 <= 10


# --- 7z and ISO -----------------------------------------------------------------------


@pytest.mark.parametrize("header_encryption", [False, True])
def test_7z_password_from_mail(header_encryption):
    data = M.seven_zip_with({"a.vbs": M.vbs_dropper()}, password="s3cret",
                            header_encryption=header_encryption)
    nodes = analyse_tree(data, "a.7z", passwords=["s3cret"])
    assert nodes[0].report.kind == "7z" and nodes[0].report.password == "s3cret"
    assert ind(nodes[0], "archive_encrypted").severity == "high"
    assert [n.name for n in nodes[1:]] == ["a.vbs"]
    assert "script_attachment" in ids(nodes[1])


def test_7z_wrong_password_header_encrypted():
    data = M.seven_zip_with({"a.vbs": M.vbs_dropper()}, password="s3cret",
                            header_encryption=True)
    nodes = analyse_tree(data, "a.7z", passwords=["bad"])
    assert len(nodes) == 1
    assert nodes[0].report.encrypted and nodes[0].report.password is None
    assert ind(nodes[0], "archive_encrypted").severity == "medium"


def test_7z_wrong_password_plain_headers():
    data = M.seven_zip_with({"a.vbs": M.vbs_dropper()}, password="s3cret")
    nodes = analyse_tree(data, "a.7z", passwords=["bad"])
    assert nodes[0].report.password is None
    assert ind(nodes[0], "archive_encrypted").severity == "medium"


def test_7z_plain_archive():
    data = M.seven_zip_with({"x.js": M.js_dropper(), "readme.txt": b"hi"})
    nodes = analyse_tree(data, "a.7z")
    assert not nodes[0].report.encrypted
    assert {n.name for n in nodes[1:]} == {"x.js", "readme.txt"}
    assert "script_attachment" in all_ids(nodes[1:])


def test_iso_with_lnk():
    nodes = analyse_tree(M.iso_with({"Invitation.lnk": M.lnk()}), "Invitation.iso")
    assert nodes[0].report.kind == "iso"
    assert ind(nodes[0], "disk_image").severity == "medium"
    assert "archive_traversal" not in all_ids(nodes)
    assert [n.name for n in nodes[1:]] == ["Invitation.lnk"]
    assert nodes[1].how == "disk image file"
    assert ind(nodes[1], "lnk_command").severity == "high"
    assert nodes[1].report.lnk["target"] == CMD


# --- Hostile input --------------------------------------------------------------------


def _half(data: bytes) -> bytes:
    return data[:len(data) // 2]


_RND = random.Random(20260301)  # garbage, but the same on every run


@pytest.mark.parametrize(("data", "name"), [
    (_RND.randbytes(4096), "x.docx"),
    (_half(M.zip_with({"a.vbs": M.vbs_dropper(), "b.txt": b"hello" * 200})), "half.zip"),
    (_half(M.rtf_equation_editor()), "half.rtf"),
    (bytes.fromhex("D0CF11E0A1B11AE1") + _RND.randbytes(2000), "x.doc"),
    (b"PK\x03\x04" + _RND.randbytes(500), "x.zip"),
    (b"7z\xbc\xaf\x27\x1c" + _RND.randbytes(300), "x.7z"),
    (M.lnk()[:80], "cut.lnk"),
    (b"", "empty.bin"),
], ids=["random-docx", "half-zip", "half-rtf", "ole-garbage", "zip-magic", "7z-magic",
        "cut-lnk", "empty"])
def test_hostile_input_does_not_raise(data, name):
    nodes = analyse_tree(data, name)
    assert nodes[0].name == name and nodes[0].depth == 0
    assert nodes[0].sha256 == hashlib.sha256(data).hexdigest()
    assert nodes[0].md5 == hashlib.md5(data).hexdigest()


def test_truncated_zip_is_a_note():
    nodes = analyse_tree(_half(M.zip_with({"b.txt": b"hello" * 200})), "half.zip")
    assert len(nodes) == 1 and nodes[0].note


# --- YARA -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scanner():
    yara_x = pytest.importorskip("yara_x")
    from tidehunt.webroot import compile_yara

    return yara_x.Scanner(compile_yara()[0])


def test_yara_inside_zip(scanner):
    shell = W._SHELL_CHOPPER_PHP.encode()
    nodes = analyse_tree(M.zip_with({"uploads/logo.php": shell, "ok.txt": b"fine"}),
                         "site.zip", scanner=scanner)
    by = {n.name: n for n in nodes}
    inner = by["uploads/logo.php"]
    hits = [i for i in inner.report.indicators if i.id.startswith("yara:")]
    assert "yara:TH_Webshell_ChinaChopper_PHP" in {i.id for i in hits}
    assert inner.report.yara and all(i.severity for i in hits)
    assert not any(i.startswith("yara:") for i in ids(by["site.zip"]) + ids(by["ok.txt"]))
