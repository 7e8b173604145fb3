"""RAR attachments through libarchive: members analysed, WinRAR's CVE-2023-38831 layout,
a truncated archive reported rather than raised."""

from __future__ import annotations

from tests.fixtures import maldocs as M
from tidehunt.attachments import analyse_tree


def test_rar_members_are_analysed():
    nodes = analyse_tree(M.rar5({"Invitation.lnk": M.lnk(), "notes.txt": b"agenda"}),
                         "invite.rar")
    assert nodes[0].report.kind == "rar"
    assert [n.name for n in nodes[1:]] == ["Invitation.lnk", "notes.txt"]
    assert "lnk_command" in {i.id for i in nodes[1].report.indicators}
    assert nodes[1].report.lnk["target"] == r"C:\Windows\System32\cmd.exe"


def test_rar_with_the_winrar_cve_2023_38831_layout():
    data = M.rar5({"Paper.pdf ": b"%PDF-1.4 decoy", "Paper.pdf /Paper.pdf .cmd": b"echo x"})
    nodes = analyse_tree(data, "Paper.rar")
    (cve,) = [i for i in nodes[0].report.indicators if i.id == "winrar_cve_2023_38831"]
    assert cve.severity == "critical" and cve.cve == "CVE-2023-38831"


def test_truncated_rar_is_a_note_not_an_error():
    whole = M.rar5({"a.txt": b"x" * 5000})
    for cut in (2000, 30):  # inside the member's data; before its header
        nodes = analyse_tree(whole[:cut], "cut.rar")
        assert nodes[0].report.kind == "rar" and len(nodes) == 1
        assert nodes[0].report.notes, cut
