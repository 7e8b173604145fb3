"""The bundled YARA-X web-shell pack (data/yara/webshells.yar).

* it compiles with yara_x (no warnings, slow patterns are errors) and every rule carries
  the pack's meta fields with valid values and a unique id;
* on a generated web root (tests/fixtures/webroots.py) it finds every planted shell and
  no clean look-alike, and every rule in the pack fires on at least one planted shell;
* small whitespace/case variants are still found and common benign shapes are not;
* the third-party web-shell rule sets in the shared corpus compile with yara_x when the
  signature-base external variables are defined, except for the recorded files.
"""

from __future__ import annotations

import re
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
import yara_x

from tests.conftest import corpus_path
from tests.fixtures.webroots import SHELL_KINDS, build_webroot

PACK = Path(str(resources.files("tidehunt") / "data" / "yara" / "webshells.yar"))

REQUIRED_META = ("id", "description", "author", "date", "reference", "mitre_attack",
                 "severity")
SEVERITIES = ("critical", "high", "medium", "low")
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
ID = re.compile(r"^th-yara-\d{4}$")
PACK_DATE = "2026-12-01"


def _compile_pack(*, lint: bool = True) -> tuple[yara_x.Rules, list[object]]:
    compiler = yara_x.Compiler(error_on_slow_pattern=True)
    if lint:
        string = yara_x.MetaType.STRING
        compiler.allowed_metadata("id", string, required=True, error=True,
                                  regexp=ID.pattern)
        compiler.allowed_metadata("description", string, required=True, error=True,
                                  regexp=r"^\S.{9,}$")
        compiler.allowed_metadata("author", string, required=True, error=True,
                                  regexp=r"^tidehunt$")
        compiler.allowed_metadata("date", string, required=True, error=True,
                                  regexp=r"^\d{4}-\d{2}-\d{2}$")
        compiler.allowed_metadata("reference", string, required=True, error=True,
                                  regexp=r"^https://\S+$")
        compiler.allowed_metadata("mitre_attack", string, required=True, error=True,
                                  regexp=r"^T\d{4}(\.\d{3})?(,T\d{4}(\.\d{3})?)*$")
        compiler.allowed_metadata("severity", string, required=True, error=True,
                                  regexp=f"^({'|'.join(SEVERITIES)})$")
        compiler.allowed_rule_name(r"^TH_[A-Za-z0-9_]+$", error=True)
    compiler.add_source(PACK.read_text(encoding="utf-8"), origin=str(PACK))
    rules = compiler.build()
    return rules, list(compiler.warnings())


@pytest.fixture(scope="module")
def pack() -> yara_x.Rules:
    rules, warnings = _compile_pack()
    assert warnings == [], warnings
    return rules


@pytest.fixture(scope="module")
def webroot(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("webroot")
    return root, build_webroot(root)


def _meta(rule) -> dict[str, object]:
    return dict(rule.metadata)


def _scan(rules: yara_x.Rules, data: bytes) -> list:
    return list(yara_x.Scanner(rules).scan(data).matching_rules)


# --------------------------------------------------------------------------------------
# (a) the pack compiles and carries its meta
# --------------------------------------------------------------------------------------


def test_pack_file_is_shipped_as_package_data():
    assert PACK.is_file(), PACK
    text = PACK.read_text(encoding="utf-8")
    assert text.lstrip().startswith("/*"), "the pack starts with its header comment"
    header = text[: text.index("*/")]
    for key in REQUIRED_META:
        assert key in header, f"header comment does not explain meta field {key!r}"


def test_pack_compiles_without_warnings_with_a_bare_compiler():
    rules, warnings = _compile_pack(lint=False)
    assert warnings == []
    assert len(list(rules)) >= 20


def test_every_rule_has_valid_meta_and_unique_id(pack):
    source_names = re.findall(r"^\s*rule\s+(\w+)", PACK.read_text(encoding="utf-8"), re.M)
    compiled = list(pack)
    assert [r.identifier for r in compiled] == source_names
    ids: dict[str, str] = {}
    for rule in compiled:
        meta = _meta(rule)
        assert len(rule.metadata) == len(meta), f"{rule.identifier}: duplicate meta keys"
        missing = [k for k in REQUIRED_META if k not in meta]
        assert not missing, f"{rule.identifier} lacks {missing}"
        assert all(isinstance(meta[k], str) for k in REQUIRED_META), rule.identifier
        assert ID.fullmatch(meta["id"]), meta["id"]
        assert meta["id"] not in ids, f"{meta['id']} used by {ids.get(meta['id'])} too"
        ids[meta["id"]] = rule.identifier
        assert meta["author"] == "tidehunt"
        assert meta["date"] == PACK_DATE
        date.fromisoformat(meta["date"])
        assert meta["reference"].startswith("https://")
        assert meta["severity"] in SEVERITIES
        assert len(meta["description"]) >= 20
        techniques = meta["mitre_attack"].split(",")
        assert all(TECHNIQUE.fullmatch(t) for t in techniques), meta["mitre_attack"]
        assert len(set(techniques)) == len(techniques)
        assert "T1505.003" in techniques, rule.identifier
        if "tunnel" in rule.tags:
            assert {"T1090", "T1572"} <= set(techniques), rule.identifier
        if "obfuscated" in rule.tags or "encoded" in rule.tags:
            assert "T1027" in techniques, rule.identifier
    # ids are stable and dense: th-yara-0001 .. th-yara-NNNN in file order
    assert list(ids) == [f"th-yara-{i:04d}" for i in range(1, len(ids) + 1)]


# --------------------------------------------------------------------------------------
# (b) planted shells are found, clean look-alikes are not
# --------------------------------------------------------------------------------------


def test_fixture_shape(webroot):
    root, manifest = webroot
    shells = sorted(p for p, label in manifest.items() if label == "shell")
    cleans = sorted(p for p, label in manifest.items() if label == "clean")
    assert set(manifest.values()) == {"shell", "clean"}
    assert len(shells) >= 14 and len(cleans) >= 14
    assert set(shells) == set(SHELL_KINDS)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(manifest)
    for part in ("var/www/html/", "inetpub/wwwroot/", "opt/tomcat/webapps/"):
        assert any(p.startswith(part) for p in shells), part
        assert any(p.startswith(part) for p in cleans), part
    jquery = root / "var/www/html/wp-includes/js/jquery/jquery.min.js"
    assert jquery.stat().st_size >= 28_000
    assert (root / "inetpub/wwwroot/images/logo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (root / "var/www/html/wp-content/uploads/2024/05/spacer.gif").read_bytes()[:6] \
        == b"GIF89a"
    klass = root / "opt/tomcat/work/Catalina/localhost/ROOT/org/apache/jsp/index_jsp.class"
    assert klass.read_bytes()[:4] == b"\xca\xfe\xba\xbe"
    assert {"china_chopper", "regeorg", "memshell", "behinder", "jsp_cmd",
            "aspx_cmd"} <= set(SHELL_KINDS.values())
    # building twice gives the same bytes (deterministic fixture)
    again = root.parent / (root.name + "-again")
    assert build_webroot(again) == manifest
    for rel in manifest:
        assert (again / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_pack_finds_every_shell_and_no_clean_file(pack, webroot):
    root, manifest = webroot
    missed: list[str] = []
    false_hits: dict[str, list[str]] = {}
    fired: set[str] = set()
    for rel, label in sorted(manifest.items()):
        hits = _scan(pack, (root / rel).read_bytes())
        if label == "shell":
            if not hits:
                missed.append(f"{rel} ({SHELL_KINDS[rel]})")
            fired.update(r.identifier for r in hits)
        elif hits:
            false_hits[rel] = [f"{r.identifier}[{_meta(r)['severity']}]" for r in hits]
    assert not missed, f"planted shells the pack missed: {missed}"
    serious = {rel: hs for rel, hs in false_hits.items()
               if any("[critical]" in h or "[high]" in h for h in hs)}
    assert not serious, f"clean files matched at high/critical: {serious}"
    assert not false_hits, f"clean files matched: {false_hits}"
    unused = [r.identifier for r in pack if r.identifier not in fired]
    assert not unused, f"rules that match no planted shell: {unused}"


def test_each_shell_kind_hits_a_rule_of_at_least_high_severity(pack, webroot):
    root, _manifest = webroot
    weak = {}
    for rel in SHELL_KINDS:
        severities = {_meta(r)["severity"] for r in _scan(pack, (root / rel).read_bytes())}
        if not severities & {"critical", "high"}:
            weak[rel] = sorted(severities)
    assert not weak, weak


# --------------------------------------------------------------------------------------
# variants: whitespace, case and line-ending changes still match; benign shapes do not
# --------------------------------------------------------------------------------------

VARIANTS = [
    ("th-yara-0001", '<?PHP @EVAL ( $_POST [ "x" ] ) ; ?>'),
    ("th-yara-0001", "<?php\r\nassert(\r\n    $_REQUEST['k']\r\n);\r\n"),
    ("th-yara-0001", "<?php @eval(base64_decode($_REQUEST['z0']));"),
    ("th-yara-0002", '<% eval (Request . Item [ "pwd" ] , "unsafe" ) ; %>'),
    ("th-yara-0002", '<%@ Page Language = "JScript" Debug="true" %><% eval(Request.Form("c")) %>'),
    ("th-yara-0003", '<% Class.forName( request.getParameter("d") ).newInstance(); %>'),
    ("th-yara-0004", "<?php $f = create_function('', $_POST['body']); $f();"),
    ("th-yara-0004", "<?php call_user_func($_GET['cb'], $_GET['arg']);"),
    ("th-yara-0005", "<?php passthru(  $_SERVER['HTTP_X_RUN']  );"),
    ("th-yara-0005", "<?php echo `ls {$_GET['d']}`;"),
    ("th-yara-0005", "<?php $p = popen($_COOKIE['c'], 'r');"),
    ("th-yara-0005", "<?php proc_open($_POST['c'], $spec, $pipes);"),
    ("th-yara-0006", "<?php $c = $_POST['c']; exec($c, $out); echo implode(\"\\n\", $out);"),
    ("th-yara-0007", "<?php eval(strrev(base64_decode(str_rot13($s))));"),
    ("th-yara-0007", "<?php $a = strrev('tressa'); $a($_POST['q']);"),
    ("th-yara-0009", "<?php $_GET['a']($_GET['b']);"),
    ("th-yara-0009", "<?php $x = 'as' . 'sert'; $x($_REQUEST['v']);"),
    ("th-yara-0011", '<% Runtime.getRuntime( ).exec( request.getParameter( "c" ) ); %>'),
    ("th-yara-0012", '<%@ Page Language="VB" %><script runat="server">Sub Page_Load()\n'
                     "Dim p As New System.Diagnostics.Process()\n"
                     'p.StartInfo.FileName = "powershell.exe"\n'
                     'p.StartInfo.Arguments = Request.QueryString("a")\n'
                     "p.Start()\nEnd Sub</script>"),
    ("th-yara-0019", '<%@ Page Language="C#" %><% System.Reflection.Assembly.Load('
                     'System.Convert.FromBase64String(HttpContext.Current.Request["k"]))'
                     '.CreateInstance("X"); %>'),
]

BENIGN = [
    "<?php // core never passes $_POST data to eval() or assert() ?>",
    "<?php $ids = array_map( 'intval', $_POST['ids'] );",
    "<?php echo esc_html( $_GET['q'] );",
    "<?php header('Content-Type: image/gif'); "
    "echo base64_decode('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7');",
    '<?php $n = $pdo->exec( "DELETE FROM t WHERE id=" . (int) $_GET["id"] );',
    "<?php $r = curl_exec( $ch ); $q = $_GET['q']; echo esc_html( $q );",
    "<?php $cmd = 'convert ' . escapeshellarg( $tmp ); exec( $cmd, $out );",
    "<?php $action = $_REQUEST['action']; $ok = exec_allowed( $action );",
    "<?php $clean = preg_replace( '/[^a-z0-9]/i', '', $_GET['slug'] );",
    '<%@ Page Language="C#" %><%= Server.HtmlEncode(Request.QueryString["name"]) %>',
    '<%@ Page Language="C#" %><% var c = new SqlCommand("SELECT 1", conn); '
    'Response.Write(Request.Form["q"]); %>',
    '<%@ page %><%= org.owasp.encoder.Encode.forHtml(request.getParameter("q")) %>',
    '<% String d = request.getParameter("d"); Class.forName("org.h2.Driver"); %>',
    '<% String u = request.getParameter("u"); String drv = "org.h2.Driver"; '
    "Class.forName(drv).newInstance(); %>",
    '<%@ Page Language="C#" %><% SqlCommand cmd = new SqlCommand("SELECT 1", conn); '
    'Process.Start("thumbgen.exe"); '
    'Response.Write(Server.HtmlEncode(Request.QueryString["q"])); %>',
    '$.ajax({type:"POST",url:u,data:d});var r=eval("("+t+")");new WebSocket(w);',
]


@pytest.mark.parametrize(("rule_id", "text"), VARIANTS)
def test_variant_is_found(pack, rule_id, text):
    ids = {_meta(r)["id"] for r in _scan(pack, text.encode())}
    assert rule_id in ids, ids


@pytest.mark.parametrize("text", BENIGN)
def test_benign_shape_is_not_flagged(pack, text):
    hits = [(r.identifier, _meta(r)["severity"]) for r in _scan(pack, text.encode())]
    assert hits == []


# --------------------------------------------------------------------------------------
# (c) third-party web-shell rule sets compile with yara_x
# --------------------------------------------------------------------------------------

THIRD_PARTY = ("yara/signature-base", "yara/nsa-mitigating-web-shells")

#: External variables the signature-base web-shell rules use (THOR/LOKI define them).
EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")

#: Files yara_x refuses with its default (strict) regex syntax, with every error it
#: reports as (code, line, fragment of title or label). Both E014s are regexes with an
#: unescaped literal ``{`` (``/\${\$...}/`` and ``/\(\)\s*{\s*...}/``) that libyara
#: accepts but yara_x rejects unless ``relaxed_re_syntax=True``; the two E009s follow
#: from them: the private rules holding those regexes are dropped, so the rules whose
#: conditions name them see undeclared identifiers. With relaxed syntax the file compiles.
KNOWN_INCOMPATIBLE: dict[str, set[tuple[str, int, str]]] = {
    "nsa-mitigating-web-shells/extended.webshell_detection.yara": {
        ("E014", 84, "repetition quantifier expects a valid decimal"),
        ("E014", 114, "repetition quantifier expects a valid decimal"),
        ("E009", 478, "unknown identifier `ObfuscatedPhp`"),
        ("E009", 488, "unknown identifier `DodgyPhp`"),
    },
}


def _third_party_files() -> list[Path]:
    files: list[Path] = []
    for rel in THIRD_PARTY:
        base = corpus_path(rel)
        if not base.is_dir():
            pytest.skip(f"{base} is not present")
        found = sorted(p for p in base.iterdir() if p.suffix in (".yar", ".yara"))
        assert found, f"no .yar/.yara files in {base}"
        files += found
    return files


def _compile_third_party(path: Path, *, relaxed: bool = False):
    compiler = yara_x.Compiler(relaxed_re_syntax=relaxed)
    for name in EXTERNALS:
        compiler.define_global(name, "")
    try:
        compiler.add_source(path.read_text(encoding="utf-8", errors="replace"),
                            origin=str(path))
        compiler.build()
    except yara_x.CompileError:
        return compiler.errors()
    return []


def _error_key(err: dict) -> tuple[str, int, str]:
    return err["code"], err["line"], " ".join(
        [err.get("title", "")] + [lab.get("text", "") for lab in err.get("labels", [])])


def test_third_party_rule_sets_compile_with_externals():
    files = _third_party_files()
    unexpected: dict[str, list[str]] = {}
    stale: list[str] = []
    compiled = 0
    for path in files:
        key = f"{path.parent.name}/{path.name}"
        errors = [_error_key(e) for e in _compile_third_party(path)]
        expected = KNOWN_INCOMPATIBLE.get(key)
        if expected is None:
            if errors:
                unexpected[key] = [f"{c}@{line}: {text}" for c, line, text in errors]
            else:
                compiled += 1
            continue
        if not errors:
            stale.append(key)
            continue
        got = {(c, line) for c, line, _ in errors}
        want = {(c, line) for c, line, _ in expected}
        assert got == want, f"{key}: yara_x errors changed: {errors}"
        for code, line, fragment in expected:
            texts = [t for c, n, t in errors if (c, n) == (code, line)]
            assert any(fragment in t for t in texts), (key, code, line, texts)
    assert not unexpected, f"third-party rule files that no longer compile: {unexpected}"
    assert not stale, f"now compile, drop from KNOWN_INCOMPATIBLE: {stale}"
    assert compiled == len(files) - len(KNOWN_INCOMPATIBLE)
    assert compiled >= 15


def test_known_incompatible_files_compile_with_relaxed_regex_syntax():
    by_key = {f"{p.parent.name}/{p.name}": p for p in _third_party_files()}
    for key in KNOWN_INCOMPATIBLE:
        assert key in by_key, f"{key} is no longer in the corpus"
        assert _compile_third_party(by_key[key], relaxed=True) == [], key


def test_signature_base_needs_the_external_variables():
    """Without the globals, the ext-vars file fails: the globals are load-bearing."""
    path = corpus_path("yara/signature-base/gen_webshells_ext_vars.yar")
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    compiler = yara_x.Compiler()
    with pytest.raises(yara_x.CompileError, match="unknown identifier"):
        compiler.add_source(path.read_text(encoding="utf-8"), origin=str(path))
