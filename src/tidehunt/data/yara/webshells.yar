/*
    tidehunt bundled YARA-X rule pack: web shells
    ==============================================

    Original rules written for tidehunt to find server-side web shells (MITRE ATT&CK
    T1505.003) of the kinds APT40 (Leviathan, G0065) and comparable actors deploy on
    exposed PHP, ASP.NET and Java/Tomcat servers: China Chopper one-liners, command
    shells keyed on request parameters, obfuscated PHP droppers, reGeorg and
    Neo-reGeorg style HTTP tunnels, in-memory ("memory shell") loaders for Tomcat and
    ASP.NET, and scripts that carry an encoded payload plus a decode-and-execute call.

    The rules key on code *shapes* (an execution sink fed by request input, a class
    loader fed by decrypted request bytes, a tunnel's verb grammar) rather than on
    hashes or on strings of one sample, and use regular expressions so that whitespace
    and letter-case variations still match.  They are tuned so that ordinary web-root
    content (minified JavaScript libraries, CMS core PHP, ASP.NET pages that echo
    Request.QueryString, JSPs that echo request.getParameter, PHP that serves
    base64-encoded images) does not match at high or critical severity.

    The pack uses no modules and no external variables, so it compiles with a bare
    yara_x.Compiler() and can be merged with other rule sets.

    Every rule carries these meta fields:

      id            stable identifier "th-yara-NNNN"; never reused or renumbered, so
                    findings and suppressions can refer to it across releases
      description   what the rule finds, in one sentence
      author        "tidehunt"
      date          date the rule was written or last changed in substance (YYYY-MM-DD)
      reference     a public URL describing the technique
      mitre_attack  comma-separated ATT&CK technique ids (T1505.003 always; T1090 and
                    T1572 for tunnels; T1027 for obfuscation or encoded payloads;
                    T1620 for reflective code loading)
      severity      critical | high | medium | low - how confident a match alone is
                    that the file is a web shell (critical: the code shape has no
                    legitimate use; high: very likely hostile, worth a look at once)

    Rule names are prefixed TH_ and tagged with the language and the shell family.
*/

// ---------------------------------------------------------------------------
// China Chopper and its one-liner relatives
// ---------------------------------------------------------------------------

rule TH_Webshell_ChinaChopper_PHP : webshell php china_chopper
{
    meta:
        id = "th-yara-0001"
        description = "China Chopper style PHP one-liner: eval/assert of a raw or base64-decoded request parameter"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $raw = /\b(eval|assert)\s*\(\s*(@\s*)?(stripslashes\s*\(\s*|trim\s*\(\s*)?\$_(POST|GET|REQUEST|COOKIE)\s*\[/ nocase
        $b64 = /\b(eval|assert)\s*\(\s*(@\s*)?(base64_decode|str_rot13|gzinflate|urldecode)\s*\(\s*(@\s*)?\$_(POST|GET|REQUEST|COOKIE)\s*\[/ nocase

    condition:
        any of them
}

rule TH_Webshell_ChinaChopper_ASPX : webshell aspx china_chopper
{
    meta:
        id = "th-yara-0002"
        description = "China Chopper ASPX/JScript .NET one-liner: eval of a Request value with the 'unsafe' option, or a JScript page evaluating Request input"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $unsafe = /\beval\s*\(\s*Request(\s*\.\s*(Item|Form|QueryString|Params))?\s*[\[\(]\s*["'][^"'\r\n]{1,64}["']\s*[\]\)]\s*,\s*["']unsafe["']/ nocase
        $jscript = /<%@\s*Page\s[^>]{0,200}Language\s*=\s*["']?J(ava)?Script/ nocase
        $eval_req = /\beval\s*\(\s*(HttpContext\s*\.\s*Current\s*\.\s*)?Request\s*[\.\[\(]/ nocase

    condition:
        $unsafe or ($jscript and $eval_req)
}

rule TH_Webshell_ChinaChopper_JSP_Loader : webshell jsp china_chopper
{
    meta:
        id = "th-yara-0003"
        description = "China Chopper style JSP server: class names or class bytes taken from request input and loaded with Class.forName/defineClass"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $jsp = "<%"
        $forname = /Class\s*\.\s*forName\s*\(\s*(new\s+String\s*\(\s*)?request\s*\.\s*get(Parameter|Header)\s*\(/ nocase
        $define_req = /defineClass\s*\([^;]{0,200}request\s*\.\s*get(Parameter|Header|InputStream|Reader)\s*\(/ nocase
        $equals_ctx = /\.\s*newInstance\s*\(\s*\)\s*\.\s*equals\s*\(\s*(pageContext|request|new\s+Object\s*\[)/

    condition:
        $jsp and ($forname or $define_req or $equals_ctx)
}

// ---------------------------------------------------------------------------
// PHP execution sinks fed by request input
// ---------------------------------------------------------------------------

rule TH_Webshell_PHP_Request_To_Code_Exec : webshell php
{
    meta:
        id = "th-yara-0004"
        description = "PHP code-execution sink (eval, assert, create_function, preg_replace /e, callback functions) fed directly by request input"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $eval = /\b(eval|assert|create_function)\s*\([^;\)]{0,120}(\$_(GET|POST|REQUEST|COOKIE)\b|\$_SERVER\s*\[\s*['"]HTTP_|getallheaders\s*\()/ nocase
        $callback = /\b(call_user_func(_array)?|array_map|register_shutdown_function|register_tick_function|forward_static_call(_array)?)\s*\(\s*@?\s*(\$_(GET|POST|REQUEST|COOKIE)\b|\$_SERVER\s*\[\s*['"]HTTP_)/ nocase
        $preg_e = /preg_replace\s*\(\s*['"][^'"\r\n]{1,200}[\/#~@|!%][a-zA-Z]*e[a-zA-Z]*['"]\s*,[^;]{0,200}(\$_(GET|POST|REQUEST|COOKIE)\b|\$_SERVER\s*\[\s*['"]HTTP_)/

    condition:
        any of them
}

rule TH_Webshell_PHP_Request_To_OS_Command : webshell php
{
    meta:
        id = "th-yara-0005"
        description = "PHP OS-command sink (system, shell_exec, passthru, exec, popen, proc_open, pcntl_exec, backticks) fed directly by request input"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $sink = /[^\w>:$.\\](system|shell_exec|passthru|exec|popen|proc_open|pcntl_exec)\s*\([^;\)]{0,120}(\$_(GET|POST|REQUEST|COOKIE)\b|\$_SERVER\s*\[\s*['"]HTTP_|php:\/\/input|getallheaders\s*\()/ nocase
        $backtick = /`[^`\r\n]{0,40}\$_(GET|POST|REQUEST|COOKIE)\s*\[[^`\r\n]{0,80}`/

    condition:
        any of them
}

rule TH_Webshell_PHP_Indirect_Command : webshell php
{
    meta:
        id = "th-yara-0006"
        description = "PHP file that copies request input into a variable and passes a variable to an OS-command or eval sink"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        mitre_attack = "T1505.003"
        severity = "high"

    strings:
        $php = /<\?(php|=)?/ nocase
        $assign = /\$\w{1,30}\s*=\s*@?\s*((trim|stripslashes|base64_decode|urldecode|str_rot13)\s*\(\s*)?\$_(GET|POST|REQUEST|COOKIE)\s*\[/ nocase
        $input = /\$\w{1,30}\s*=\s*@?\s*file_get_contents\s*\(\s*['"]php:\/\/input['"]/ nocase
        $sink = /[^\w>:$.\\](system|shell_exec|passthru|exec|popen|proc_open|pcntl_exec|eval|assert)\s*\(\s*@?\s*\$\w{1,30}\s*[,\)]/ nocase
        $inc_input = /\b(include|require)(_once)?\s*\(?\s*['"]php:\/\/input['"]/ nocase

    condition:
        $php and (($sink and ($assign or $input)) or $inc_input)
}

// ---------------------------------------------------------------------------
// Obfuscated PHP
// ---------------------------------------------------------------------------

rule TH_Webshell_PHP_Decode_Chain : webshell php obfuscated
{
    meta:
        id = "th-yara-0007"
        description = "PHP eval/assert of a chain of two or more decoders (gzinflate, base64_decode, str_rot13, strrev, ...) or of a reversed sink name"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1027/"
        mitre_attack = "T1505.003,T1027"
        severity = "high"

    strings:
        $chain = /\b(eval|assert)\s*\(\s*(@?\s*(gzinflate|gzuncompress|gzdecode|str_rot13|base64_decode|strrev|convert_uudecode|hex2bin|urldecode|rawurldecode)\s*\(\s*){2,}/ nocase
        $rev_name = /strrev\s*\(\s*['"](tressa|lave|metsys|cexe_llehs|urhtssap|nepop|nepo_corp|edoced_46esab|etalfnizg|noitcnuf_etaerc)['"]\s*\)/ nocase
        $rot_name = /str_rot13\s*\(\s*['"](nffreg|riny|flfgrz|furyy_rkrp|cnffgueh|onfr64_qrpbqr|tmvasyngr|perngr_shapgvba)['"]\s*\)/ nocase

    condition:
        any of them
}

rule TH_Webshell_PHP_Chr_Concat : webshell php obfuscated
{
    meta:
        id = "th-yara-0008"
        description = "PHP that spells a name with a run of chr() concatenations and has an execution sink or a variable-function call on request input"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1027/"
        mitre_attack = "T1505.003,T1027"
        severity = "high"

    strings:
        $chr = /(chr\s*\(\s*\d{1,3}\s*\)\s*\.\s*){4,}chr\s*\(\s*\d{1,3}\s*\)/ nocase
        $sink = /\b(eval|assert|create_function|system|passthru|shell_exec)\s*\(/ nocase
        $vcall = /[;\{\}\s@\(]\$\w{1,30}\s*\(\s*@?\s*\$_(GET|POST|REQUEST|COOKIE)\b/

    condition:
        $chr and ($sink or $vcall)
}

rule TH_Webshell_PHP_Variable_Function : webshell php obfuscated
{
    meta:
        id = "th-yara-0009"
        description = "PHP variable-function shell: a function name taken from request input (or assembled from string pieces) is called with request input"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF"
        mitre_attack = "T1505.003,T1027"
        severity = "critical"

    strings:
        $direct = /\$_(GET|POST|REQUEST|COOKIE)\s*\[\s*['"]?\w{0,40}['"]?\s*\]\s*\(/
        $assign = /\$\w{1,30}\s*=\s*@?\s*\$_(GET|POST|REQUEST|COOKIE)\s*\[[^\]\r\n]{1,40}\]\s*;/
        $pieces = /\$\w{1,30}\s*=\s*['"][a-z_0-9]{1,8}['"]\s*\.\s*['"][a-z_0-9]{1,8}['"]\s*(\.\s*['"][a-z_0-9]{1,8}['"]\s*)*;/ nocase
        $vcall = /[;\{\}\s@\(]\$\w{1,30}\s*\(\s*@?\s*\$_(GET|POST|REQUEST|COOKIE)\b/

    condition:
        $direct or ($vcall and ($assign or $pieces))
}

rule TH_Webshell_PHP_Eval_Long_Base64 : webshell php obfuscated encoded
{
    meta:
        id = "th-yara-0010"
        description = "PHP eval/assert fed with a very long base64 string literal, directly or through a variable"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1027/"
        mitre_attack = "T1505.003,T1027"
        severity = "high"

    strings:
        $inline = /\b(eval|assert)\s*\(\s*(@?\s*\w{2,20}\s*\(\s*){1,4}['"][A-Za-z0-9+\/=\r\n]{400,}/ nocase
        $blob_var = /\$\w{1,30}\s*=\s*['"][A-Za-z0-9+\/\r\n]{400,}={0,2}['"]\s*;/
        $eval_var = /\b(eval|assert)\s*\(\s*(@?\s*\w{2,20}\s*\(\s*){1,4}\$\w{1,30}\s*\)/ nocase

    condition:
        $inline or ($blob_var and $eval_var)
}

// ---------------------------------------------------------------------------
// JSP and ASP.NET command shells
// ---------------------------------------------------------------------------

rule TH_Webshell_JSP_Command_Exec : webshell jsp
{
    meta:
        id = "th-yara-0011"
        description = "JSP command shell: Runtime.getRuntime().exec or ProcessBuilder in a page that reads request parameters or headers (the shape of APT40 horizon.jsp / Index.jsp / Nova.jsp style shells)"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $jsp = "<%"
        $rt = /Runtime\s*\.\s*getRuntime\s*\(\s*\)\s*\.\s*exec\s*\(/
        $pb = /new\s+(java\s*\.\s*lang\s*\.\s*)?ProcessBuilder\s*\(/
        $req = /request\s*\.\s*get(Parameter|Header|ParameterValues|InputStream|Reader|QueryString)\s*\(/

    condition:
        $jsp and ($rt or $pb) and $req
}

rule TH_Webshell_ASPX_Process_Shell : webshell aspx
{
    meta:
        id = "th-yara-0012"
        description = "ASP.NET page, handler (.ashx) or service (.asmx) that starts a process (cmd.exe/powershell, redirected output) with Request or web-method input"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF"
        mitre_attack = "T1505.003"
        severity = "critical"

    strings:
        $asp_dir = /<%@\s*(Page|WebHandler|WebService|Control|Application)\b/ nocase
        $asp_run = /runat\s*=\s*["']?server/ nocase
        $proc_start = /Process\s*\.\s*Start\s*\(/ nocase
        $proc_info = /ProcessStartInfo\s*[\(\{]/ nocase
        $proc_new = /new\s+(System\s*\.\s*Diagnostics\s*\.\s*)?Process\s*\(\s*\)/ nocase
        $req = /Request\s*(\.\s*(Form|QueryString|Params|Item|Headers|Cookies)\s*)?[\[\(]/ nocase
        $cmd = /\bcmd\.exe\b|["']cmd["']|["']\/c\s/ nocase
        $ps = /\bpowershell(\.exe)?\b/ nocase
        $redir = /RedirectStandardOutput\s*=\s*true/ nocase
        $webmethod = /[\[<]\s*WebMethod\b/ nocase

    condition:
        ($asp_dir or $asp_run) and any of ($proc_*) and ($req or $webmethod)
        and ($cmd or $ps or $redir)
}

// ---------------------------------------------------------------------------
// HTTP tunnels (reGeorg / Neo-reGeorg)
// ---------------------------------------------------------------------------

rule TH_Tunnel_reGeorg : webshell tunnel regeorg
{
    meta:
        id = "th-yara-0013"
        description = "reGeorg style SOCKS-over-HTTP tunnel: CONNECT/FORWARD/READ/DISCONNECT command grammar or X-CMD/X-STATUS/X-TARGET headers next to socket code"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"
        mitre_attack = "T1505.003,T1090,T1572"
        severity = "critical"

    strings:
        $h_cmd = /["'](X-CMD|HTTP_X_CMD)["':]/ nocase
        $h_status = /["'](X-STATUS|HTTP_X_STATUS)["':]/ nocase
        $h_target = /["'](X-TARGET|HTTP_X_TARGET)["':]/ nocase
        $h_error = /["'](X-ERROR|HTTP_X_ERROR)["':]/ nocase
        $v_connect = /["']CONNECT["']/
        $v_forward = /["']FORWARD["']/
        $v_read = /["']READ["']/
        $v_disconnect = /["']DISCONNECT["']/
        $sock = /(SocketChannel|new\s+(java\s*\.\s*net\s*\.\s*)?Socket\s*\(|InetSocketAddress|fsockopen\s*\(|socket_create\s*\(|stream_socket_client\s*\(|System\s*\.\s*Net\s*\.\s*Sockets|new\s+Socket\s*\(\s*AddressFamily|IPEndPoint)/ nocase

    condition:
        $sock and (2 of ($h_*) or 3 of ($v_*))
}

rule TH_Tunnel_Session_Socket : webshell tunnel regeorg
{
    meta:
        id = "th-yara-0014"
        description = "Neo-reGeorg style tunnel: a server page that opens an outbound socket to a request-supplied target and keeps it in the HTTP session between requests"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1572/"
        mitre_attack = "T1505.003,T1090,T1572"
        severity = "high"

    strings:
        $script_a = "<%"
        $script_b = "<?php" nocase
        $open_java = /SocketChannel\s*\.\s*open\s*\(|new\s+(java\s*\.\s*net\s*\.\s*)?Socket\s*\(/
        $open_net = /new\s+(System\s*\.\s*Net\s*\.\s*Sockets\s*\.\s*)?Socket\s*\(\s*AddressFamily|new\s+(System\s*\.\s*Net\s*\.\s*Sockets\s*\.\s*)?TcpClient\s*\(/ nocase
        $open_php = /\b(fsockopen|stream_socket_client|socket_create)\s*\(/ nocase
        $sess_java = /session\s*\.\s*(setAttribute|putValue)\s*\(/
        $sess_net = /Session\s*\[\s*["']/
        $sess_php = /\$_SESSION\s*\[/
        $req_java = /request\s*\.\s*get(Header|Parameter)\s*\(/
        $req_net = /Request\s*\.\s*(Headers|QueryString|Form|Params)\s*[\[\.\(]/ nocase
        $req_php = /\$_(GET|POST|REQUEST|COOKIE|SERVER)\s*\[/
        $io = /\.\s*(read|write)\s*\(|\b(fread|fwrite|socket_read|socket_write|stream_get_contents)\s*\(|\.\s*(Receive|Send)\s*\(/

    condition:
        any of ($script_*) and any of ($open_*) and any of ($sess_*) and any of ($req_*) and $io
}

// ---------------------------------------------------------------------------
// In-memory web shells (memory shells) and reflective loaders
// ---------------------------------------------------------------------------

rule TH_Memshell_Tomcat_Filter_Injector : webshell jsp memshell
{
    meta:
        id = "th-yara-0015"
        description = "Tomcat filter memory-shell injector: obtains the StandardContext and registers a Filter at run time via FilterDef/FilterMap/ApplicationFilterConfig"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        mitre_attack = "T1505.003,T1620"
        severity = "critical"

    strings:
        $sc = "StandardContext"
        $fd = "FilterDef"
        $fm = "FilterMap"
        $afc = "ApplicationFilterConfig"
        $add = /\.\s*(addFilterDef|addFilterMapBefore|addFilterMap|addFilter)\s*\(/
        $grab = /getDeclaredField\s*\(\s*["'](context|applicationContext|standardContext|filterConfigs|_context)["']|WebappClassLoaderBase|getResources\s*\(\s*\)\s*\.\s*getContext\s*\(\s*\)/

    condition:
        $sc and $add and (($fd and $fm) or $afc or $grab)
}

rule TH_Memshell_Tomcat_Servlet_Listener_Valve : webshell jsp memshell
{
    meta:
        id = "th-yara-0016"
        description = "Tomcat servlet/listener/valve memory-shell injector: adds a Wrapper with addServletMappingDecoded, an event listener or a pipeline Valve to the running context"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        mitre_attack = "T1505.003,T1620"
        severity = "critical"

    strings:
        $sc = "StandardContext"
        $wcl = "WebappClassLoaderBase"
        $mapping = /\.\s*addServletMapping(Decoded)?\s*\(/
        $wrapper = /\.\s*createWrapper\s*\(|StandardWrapper/
        $listener = /\.\s*addApplicationEventListener\s*\(/
        $valve = /getPipeline\s*\(\s*\)\s*\.\s*addValve\s*\(/

    condition:
        ($sc or $wcl) and (($mapping and $wrapper) or $listener or $valve)
}

rule TH_Memshell_JSP_DefineClass_Request : webshell jsp memshell
{
    meta:
        id = "th-yara-0017"
        description = "JSP/Java loader that base64-decodes request input and turns it into a class with defineClass"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1620/"
        mitre_attack = "T1505.003,T1620"
        severity = "critical"

    strings:
        $define = /defineClass\s*\(|["']defineClass["']/
        $b64 = /(BASE64Decoder\s*\(\s*\)\s*\.\s*decodeBuffer|Base64\s*\.\s*getDecoder\s*\(\s*\)\s*\.\s*decode|DatatypeConverter\s*\.\s*parseBase64Binary|Base64\s*\.\s*decodeBase64)\s*\(/
        $req = /request\s*\.\s*get(Parameter|Header|InputStream|Reader)\s*\(/

    condition:
        $define and $b64 and $req
}

rule TH_Memshell_Java_AES_Class_Loader : webshell jsp memshell behinder godzilla
{
    meta:
        id = "th-yara-0018"
        description = "Behinder/Godzilla style JSP: AES-decrypts the request body with javax.crypto.Cipher and defines a class from the plaintext"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        mitre_attack = "T1505.003,T1620,T1027"
        severity = "critical"

    strings:
        $cipher = /Cipher\s*\.\s*getInstance\s*\(\s*["']AES/ nocase
        $jcrypto = /javax\s*\.\s*crypto/
        $sks = "SecretKeySpec"
        $define = /defineClass\s*\(|["']defineClass["']/
        $req = /request\s*\.\s*(get(Reader|InputStream|Parameter|Header)\s*\(|getReader\s*\(\s*\)\s*\.\s*readLine)/

    condition:
        ($cipher or ($jcrypto and $sks)) and $define and $req
}

rule TH_Memshell_ASPX_Assembly_Load : webshell aspx memshell godzilla
{
    meta:
        id = "th-yara-0019"
        description = "ASP.NET memory-resident loader: Assembly.Load of base64-decoded or AES-decrypted Request bytes, then CreateInstance"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1620/"
        mitre_attack = "T1505.003,T1620"
        severity = "critical"

    strings:
        $direct = /Assembly\s*\.\s*Load\s*\(\s*(System\s*\.\s*)?Convert\s*\.\s*FromBase64String\s*\(\s*(HttpContext\s*\.\s*Current\s*\.\s*|Context\s*\.\s*)?Request\s*[\.\[\(]/ nocase
        $load = /Assembly\s*\.\s*Load\s*\(/ nocase
        $b64 = /FromBase64String\s*\(/ nocase
        $aes = /(RijndaelManaged|AesManaged|AesCryptoServiceProvider|Aes\s*\.\s*Create)\s*\(|CreateDecryptor\s*\(/ nocase
        $req = /Request\s*(\.\s*(Form|BinaryRead|QueryString|Params|Item|InputStream)\s*)?[\[\(\.]/ nocase
        $inst = /\.\s*CreateInstance\s*\(/ nocase

    condition:
        $direct or ($load and $req and ($b64 or $aes) and $inst)
}

// ---------------------------------------------------------------------------
// Encoded payloads, polyglots, encrypted PHP loaders
// ---------------------------------------------------------------------------

rule TH_Webshell_Encoded_Payload_Exec : webshell encoded
{
    meta:
        id = "th-yara-0020"
        description = "Server script carrying an encoded executable payload (base64/hex Java class or PE, or a long base64/hex blob) together with a decode call and an execute/define call"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1027/"
        mitre_attack = "T1505.003,T1027"
        severity = "high"

    strings:
        $scr_php = "<?php" nocase
        $scr_asp = "<%"
        $scr_run = /runat\s*=\s*["']?server/ nocase
        $class_b64 = "yv66vgAAA"
        $pe_b64 = "TVqQAAMAAAAEAAAA"
        $class_hex = "cafebabe0000" nocase
        $pe_hex = "4d5a90000300000004000000" nocase
        $blob_b64 = /(base64_decode|FromBase64String|decodeBuffer|decode|parseBase64Binary)\s*\(\s*["'][A-Za-z0-9+\/]{1000,}/
        $blob_hex = /(hex2bin|pack\s*\(\s*["']H\*["']\s*,|parseHexBinary|decodeHex)\s*\(?\s*["'][0-9a-fA-F]{1000,}/
        $dec = /\b(base64_decode|gzinflate|gzuncompress|hex2bin|FromBase64String|decodeBuffer|parseBase64Binary|parseHexBinary|decodeHex)\s*\(|getDecoder\s*\(\s*\)\s*\.\s*decode\s*\(|pack\s*\(\s*["']H\*/
        $ex_php = /\b(eval|assert|create_function)\s*\(/ nocase
        $ex_java = /defineClass\s*\(|["']defineClass["']/
        $ex_net = /Assembly\s*\.\s*Load\s*\(/ nocase

    condition:
        any of ($scr_*) and any of ($class_b64, $pe_b64, $class_hex, $pe_hex, $blob_b64, $blob_hex)
        and $dec and any of ($ex_*)
}

rule TH_Webshell_PHP_In_Image : webshell php polyglot
{
    meta:
        id = "th-yara-0021"
        description = "GIF, PNG or JPEG image that also carries PHP code with an execution sink (shell disguised as, or appended to, an image)"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF"
        mitre_attack = "T1505.003,T1027"
        severity = "high"

    strings:
        $php = /<\?(php|=)/ nocase
        $sink = /\b(eval|assert|system|shell_exec|passthru|exec|popen|proc_open|create_function|include|require)\s*\(/ nocase
        $input = /\$_(GET|POST|REQUEST|COOKIE|FILES|SERVER)\s*\[|php:\/\/input/

    condition:
        (uint32be(0) == 0x47494638 or uint32be(0) == 0x89504E47 or uint16be(0) == 0xFFD8)
        and $php and $sink and $input
}

rule TH_Webshell_PHP_Encrypted_Loader : webshell php behinder godzilla
{
    meta:
        id = "th-yara-0022"
        description = "Behinder/Godzilla style PHP: decrypts the request body (openssl_decrypt or XOR with a session key) and evaluates the plaintext"
        author = "tidehunt"
        date = "2026-12-01"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        mitre_attack = "T1505.003,T1027"
        severity = "critical"

    strings:
        $input = /php:\/\/input|\$_POST\s*\[/
        $decrypt = /\bopenssl_decrypt\s*\(|\bmcrypt_decrypt\s*\(/ nocase
        $xor = /\^\s*\$\w{1,30}\s*\[\s*\$\w{1,30}\s*\+\s*1\s*&\s*15\s*\]/
        $sess_key = /\$_SESSION\s*\[\s*['"]\w{1,30}['"]\s*\]\s*=\s*\$\w{1,30}/
        $exec = /\b(eval|assert)\s*\(|\$\w{1,30}\s*\(\s*['"]\s*['"]\s*,|new\s+class\s*\(/ nocase

    condition:
        $input and ($decrypt or ($xor and $sess_key)) and $exec
}
