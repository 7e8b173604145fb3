"""The declared tables of a case store. Adding a table or column bumps SCHEMA_VERSION."""

from __future__ import annotations

from tidehunt.model.fields import FieldSpec, FieldType, TableSchema

SCHEMA_VERSION = 4

F = FieldType

#: Provenance columns every table starts with.
COMMON: tuple[FieldSpec, ...] = (
    FieldSpec("ts", F.DATETIME, "Event time in UTC"),
    FieldSpec("host", F.STRING, "Host the event was recorded on"),
    FieldSpec("_source", F.STRING, "NAME of the Source that read the row"),
    FieldSpec("_artefact", F.STRING, "Manifest id of the evidence file"),
    FieldSpec("_locator", F.STRING, "Where in the evidence: record id, line or offset"),
)

WINDOWS = TableSchema(
    name="windows",
    doc=(
        "Windows event log records (EVTX and JSON exports). Keeps Sigma/Sysmon field names "
        "(Image, CommandLine, ...) as extra string columns so SigmaHQ rules run unmapped."
    ),
    fields=(
        *COMMON,
        FieldSpec("channel", F.STRING, "Event log channel, e.g. Security"),
        FieldSpec("provider", F.STRING, "Provider name, e.g. Microsoft-Windows-Sysmon"),
        FieldSpec("event_id", F.INT, "Event ID"),
        FieldSpec("record_id", F.INT, "EventRecordID in the log"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
    ),
    open_columns=True,
    dictionary_pages=False,
    extra_types=(
        ("Image", F.PATH),
        ("ParentImage", F.PATH),
        ("TargetFilename", F.PATH),
        ("ImageLoaded", F.PATH),
        ("CommandLine", F.COMMAND_LINE),
        ("ParentCommandLine", F.COMMAND_LINE),
        ("User", F.USER),
        ("SubjectUserName", F.USER),
        ("TargetUserName", F.USER),
        ("SourceIp", F.IP),
        ("DestinationIp", F.IP),
        ("IpAddress", F.IP),
        ("DestinationHostname", F.DOMAIN),
        ("QueryName", F.DOMAIN),
    ),
)

WEB_ACCESS = TableSchema(
    name="web_access",
    doc=(
        "One row per request line of a web server or load-balancer access log (IIS W3C, "
        "Apache/Nginx/Tomcat common or combined, Atlassian, AWS ELB/ALB/NLB). Values are "
        "as logged (URIs not decoded); '-' is stored as null. Fields a W3C header names "
        "that have no column here are kept as extra string columns named w3c_<field>."
    ),
    fields=(
        *COMMON,
        FieldSpec("client_ip", F.IP, "Client address (c-ip, %h)"),
        FieldSpec("client_port", F.INT, "Client port, where logged (ELB)"),
        FieldSpec("xff", F.IP, "X-Forwarded-For as logged (proxied client chain)"),
        FieldSpec("server_ip", F.IP, "Server address (s-ip) or load-balancer target"),
        FieldSpec("server_port", F.INT, "Server port (s-port)"),
        FieldSpec("site", F.STRING, "Site or load balancer name (s-sitename, ELB name)"),
        FieldSpec("vhost", F.DOMAIN, "Host header or the host of an absolute request URL"),
        FieldSpec("method", F.STRING, "HTTP method"),
        FieldSpec("uri_stem", F.URL, "Path part of the request URI, as logged"),
        FieldSpec("uri_query", F.STRING, "Query string without the '?', as logged"),
        FieldSpec("protocol", F.STRING, "HTTP version or listener protocol"),
        FieldSpec("status", F.INT, "HTTP status returned to the client"),
        FieldSpec("substatus", F.INT, "IIS sc-substatus"),
        FieldSpec("win32_status", F.INT, "IIS sc-win32-status"),
        FieldSpec("bytes_sent", F.INT, "Response bytes sent to the client"),
        FieldSpec("bytes_received", F.INT, "Request bytes received from the client"),
        FieldSpec("time_taken_ms", F.INT, "Time taken in milliseconds"),
        FieldSpec("user", F.USER, "Authenticated user name"),
        FieldSpec("user_agent", F.STRING, "User-Agent (IIS '+' turned back into spaces)"),
        FieldSpec("referer", F.URL, "Referer"),
        FieldSpec("cookie", F.STRING, "Cookie header, where logged"),
        FieldSpec("format", F.STRING, "Log layout the line was read as, e.g. iis_w3c"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
        FieldSpec("line", F.INT, "Line number in the (decompressed) log"),
    ),
    open_columns=True,
)

FILE = TableSchema(
    name="file",
    doc=(
        "Files of a scanned tree (a web root) with hashes, content type, the scan's "
        "heuristics and its YARA-X matches. ts is the modification time; _locator the "
        "path relative to the root."
    ),
    fields=(
        *COMMON,
        FieldSpec("origin", F.STRING, "Where the file came from: webroot (a scanned folder) "
                  "or mail (an attachment, or a file inside one)"),
        FieldSpec("root", F.PATH, "The scanned folder, or the mail file, as given"),
        FieldSpec("path", F.PATH, "Path relative to the root, '/'-separated"),
        FieldSpec("abs_path", F.PATH, "Real path of the file when it was scanned"),
        FieldSpec("name", F.STRING, "File name"),
        FieldSpec("ext", F.STRING, "Lower-case extension without the dot"),
        FieldSpec("size", F.INT, "Size in bytes"),
        FieldSpec("mtime", F.DATETIME, "Modification time"),
        FieldSpec("ctime", F.DATETIME, "Inode change time (not settable by touch)"),
        FieldSpec("atime", F.DATETIME, "Access time"),
        FieldSpec("sha256", F.HASH_SHA256, "SHA-256 of the content"),
        FieldSpec("md5", F.HASH_MD5, "MD5 of the content"),
        FieldSpec("kind", F.STRING, "Type from content: php, aspx, asp, jsp, html, js, "
                  "image, pe, class, archive, text, binary, empty"),
        FieldSpec("server_script", F.BOOL, "Content a web server executes (php/asp/aspx/jsp)"),
        FieldSpec("entropy", F.FLOAT, "Shannon entropy of the content, bits per byte"),
        FieldSpec("compress_ratio", F.FLOAT, "zlib-compressed size / size"),
        FieldSpec("longest_token", F.INT, "Longest run of non-space characters"),
        FieldSpec("dangerous", F.STRING, "Dangerous functions found, e.g. eval, Runtime.exec"),
        FieldSpec("dangerous_count", F.INT, "Distinct dangerous functions"),
        FieldSpec("dangerous_per_kb", F.FLOAT, "Dangerous-function calls per KiB of content "
                  "(density: a small file full of them is a shell, a big library is not)"),
        FieldSpec("siblings", F.INT, "Other files in the same folder"),
        FieldSpec("sibling_mtime_delta_s", F.INT,
                  "Seconds between the mtime and the median mtime of its siblings"),
        FieldSpec("ctime_gap_s", F.INT, "ctime minus mtime in seconds"),
        FieldSpec("baseline", F.STRING, "Against the baseline: new, modified, unchanged"),
        FieldSpec("yara", F.STRING, "YARA-X matches as a JSON list of {rule, namespace, id, "
                  "severity, techniques, description, offset}"),
        FieldSpec("scan_note", F.STRING, "Why content was not (fully) scanned, if so"),
    ),
)

SITE_SCRIPT = TableSchema(
    name="site_script",
    doc=(
        "One row per script tag of a saved copy of a site (scan-site): where it loads from, "
        "the hash of its code, the ScanBox traits in it and its state against a baseline."
    ),
    fields=(
        *COMMON,
        FieldSpec("page", F.URL, "Page (URL or path in the copy) that loads the script"),
        FieldSpec("src", F.URL, "The script tag's src as written; null for inline code"),
        FieldSpec("origin", F.URL, "scheme://host of a third-party script; null if local"),
        FieldSpec("third_party", F.BOOL, "Loaded from another origin than the site's"),
        FieldSpec("code_sha256", F.STRING, "CSP hash (sha256-...) of inline code or of a "
                  "local script file's content"),
        FieldSpec("traits", F.STRING, "ScanBox traits found: keylogger, plugin_enumeration, "
                  "software_probe, webrtc_local_ip, beacon_grammar"),
        FieldSpec("baseline", F.STRING, "Against the baseline: new or known"),
        FieldSpec("size", F.INT, "Characters of script code read"),
        FieldSpec("source_file", F.PATH, "The site copy (folder or WARC) as given"),
    ),
)

MAIL = TableSchema(
    name="mail",
    doc="One row per e-mail message (.eml, mbox, Outlook .msg); ts is its Date header.",
    fields=(
        *COMMON,
        FieldSpec("message_id", F.STRING, "Message-ID"),
        FieldSpec("subject", F.STRING, "Subject, decoded from any charset"),
        FieldSpec("from_addr", F.EMAIL, "From address"),
        FieldSpec("from_name", F.STRING, "From display name, decoded"),
        FieldSpec("from_domain", F.DOMAIN, "Domain of the From address, lower case"),
        FieldSpec("sender", F.EMAIL, "Sender address"),
        FieldSpec("reply_to", F.EMAIL, "Reply-To address"),
        FieldSpec("return_path", F.EMAIL, "Return-Path address"),
        FieldSpec("to", F.STRING, "To addresses, comma-separated"),
        FieldSpec("cc", F.STRING, "Cc addresses, comma-separated"),
        FieldSpec("received_hops", F.INT, "Number of Received headers"),
        FieldSpec("received", F.STRING, "Received chain as JSON: from, by, with, time, raw"),
        FieldSpec("spf", F.STRING, "SPF verdict (Authentication-Results or Received-SPF)"),
        FieldSpec("dkim", F.STRING, "DKIM verdict"),
        FieldSpec("dmarc", F.STRING, "DMARC verdict"),
        FieldSpec("arc", F.STRING, "ARC verdict"),
        FieldSpec("x_originating_ip", F.IP, "X-Originating-IP"),
        FieldSpec("body_text", F.STRING, "Plain-text body (first 1M characters)"),
        FieldSpec("body_html", F.STRING, "HTML body (first 1M characters)"),
        FieldSpec("urls", F.URL, "Every URL in the bodies, refanged, one per line"),
        FieldSpec("url_count", F.INT, "Number of distinct URLs"),
        FieldSpec("attachment_count", F.INT, "Attachments, nested ones included"),
        FieldSpec("headers", F.STRING, "The full header set as a JSON list of [name, value]"),
        FieldSpec("defects", F.STRING, "What the parser found malformed"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
    ),
)

MAIL_ATTACHMENT = TableSchema(
    name="mail_attachment",
    doc="One row per attachment of a message, nested ones (depth > 0) included.",
    fields=(
        *COMMON,
        FieldSpec("message_id", F.STRING, "Message-ID of the carrying message"),
        FieldSpec("mail_locator", F.STRING, "_locator of the carrying mail row"),
        FieldSpec("filename", F.PATH, "Name made safe (no folders, control or RTL characters)"),
        FieldSpec("filename_raw", F.STRING, "Name as the message gives it"),
        FieldSpec("content_type", F.STRING, "Declared MIME type"),
        FieldSpec("disposition", F.STRING, "Content-Disposition (attachment, inline)"),
        FieldSpec("size", F.INT, "Decoded size in bytes"),
        FieldSpec("sha256", F.HASH_SHA256, "SHA-256 of the decoded content"),
        FieldSpec("md5", F.HASH_MD5, "MD5 of the decoded content"),
        FieldSpec("kind", F.STRING, "Type from content (as the file table)"),
        FieldSpec("depth", F.INT, "0 for a direct attachment, 1 inside an attached message..."),
        FieldSpec("parent", F.STRING, "The message or attachment it came out of"),
        FieldSpec("note", F.STRING, "Why it is not (fully) analysed, if so"),
        FieldSpec("how", F.STRING, "How it came out of its parent: attachment, zip member, "
                  "OLE Package, decrypted content..."),
        FieldSpec("indicators", F.STRING, "Indicator IDs found, comma-separated "
                  "(vba_autoexec, equation_editor, remote_template, lnk_command...)"),
        FieldSpec("severity", F.STRING, "Highest indicator level"),
        FieldSpec("analysis", F.STRING, "Indicators as a JSON list of {id, severity, detail, "
                  "technique, cve}"),
        FieldSpec("cves", F.STRING, "CVE IDs the indicators name, comma-separated"),
        FieldSpec("urls", F.URL, "External targets: remote templates, links, DDE commands"),
        FieldSpec("lnk_target", F.PATH, "Shortcut target (LnkParse3)"),
        FieldSpec("lnk_arguments", F.STRING, "Shortcut command-line arguments"),
        FieldSpec("lnk_json", F.STRING, "Shortcut fields as JSON: working folder, icon, "
                  "machine ID"),
        FieldSpec("doc_title", F.STRING, "Document title (metadata)"),
        FieldSpec("doc_author", F.STRING, "Document author (metadata)"),
        FieldSpec("macros", F.STRING, "VBA source (first 64 KiB)"),
        FieldSpec("encrypted", F.BOOL, "Encrypted document or archive"),
        FieldSpec("password", F.STRING, "Password that opened it, if one did"),
        FieldSpec("lure_themes", F.STRING, "Lure themes of its name, the subject and its "
                  "metadata: research, cv, interview, conference, shipping"),
        FieldSpec("lure_score", F.INT, "Lure theme words found (0-10)"),
        FieldSpec("yara", F.STRING, "YARA-X matches as JSON (as in the file table)"),
        FieldSpec("extracted", F.PATH, "Copy in the case, relative to it "
                  "(extracted/<sha256[:2]>/<sha256>), read-only, never executed"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
    ),
)

INDICATOR = TableSchema(
    name="indicator",
    doc="One row per threat-intel indicator loaded into the case (hunt --intel, the bundled "
        "APT40 pack, fetched feeds); ts is when it was last (else first) seen.",
    fields=(
        *COMMON,
        FieldSpec("type", F.STRING, "ip, domain, url, md5, sha1, sha256, email, filename, "
                  "user-agent"),
        FieldSpec("value", F.STRING, "The value, refanged and normalised as matched"),
        FieldSpec("source", F.STRING, "Feed or report it comes from"),
        FieldSpec("first_seen", F.DATETIME, "First seen / valid from"),
        FieldSpec("last_seen", F.DATETIME, "Last seen / modified"),
        FieldSpec("valid_until", F.DATETIME, "Expiry the feed gives (STIX valid_until)"),
        FieldSpec("confidence", F.INT, "Confidence 0-100 as the feed gives it"),
        FieldSpec("to_ids", F.BOOL, "Marked for detection (MISP to_ids; STIX: true)"),
        FieldSpec("tags", F.STRING, "Tags, labels and kill-chain phases, comma-separated"),
        FieldSpec("context", F.STRING, "Description, comment, event info"),
        FieldSpec("ref", F.STRING, "STIX id or MISP attribute UUID"),
        FieldSpec("source_file", F.PATH, "Intel file as given"),
    ),
)

INVENTORY = TableSchema(
    name="inventory",
    doc="One row per product on a host, from an inventory CSV or a CycloneDX SBOM "
        "(hunt --inventory); ts is when it was loaded.",
    fields=(
        *COMMON,
        FieldSpec("product", F.STRING, "Product or component name"),
        FieldSpec("vendor", F.STRING, "Vendor, publisher or group"),
        FieldSpec("version", F.STRING, "Version as given"),
        FieldSpec("purl", F.STRING, "Package URL (SBOM)"),
        FieldSpec("cpe", F.STRING, "CPE name, if given"),
        FieldSpec("internet_facing", F.BOOL, "Reachable from the internet, if known"),
        FieldSpec("custom", F.BOOL, "Built in-house (no vendor advisory covers it)"),
        FieldSpec("source_file", F.PATH, "Inventory file as given"),
    ),
)

AUTH = TableSchema(
    name="auth",
    doc="One row per sign-in or MFA event of an identity provider or remote-access "
        "appliance (Entra ID, Okta, VPN CSV).",
    fields=(
        *COMMON,
        FieldSpec("user", F.USER, "Account (UPN, e-mail or login), lower case"),
        FieldSpec("app", F.STRING, "Application or resource signed in to"),
        FieldSpec("src_ip", F.IP, "Client address"),
        FieldSpec("result", F.STRING, "success or failure"),
        FieldSpec("failure_reason", F.STRING, "Why it failed"),
        FieldSpec("mfa", F.STRING, "Second factor: push, otp, sms, call, fido, none"),
        FieldSpec("mfa_result", F.STRING, "sent, approved, denied (or as logged)"),
        FieldSpec("interactive", F.BOOL, "A person signed in (not a service or token)"),
        FieldSpec("session_id", F.STRING, "Session or correlation ID"),
        FieldSpec("token_id", F.STRING, "Token identifier"),
        FieldSpec("device", F.STRING, "Device name or OS"),
        FieldSpec("user_agent", F.STRING, "Client user agent"),
        FieldSpec("country", F.STRING, "Country as the provider logged it"),
        FieldSpec("city", F.STRING, "City as the provider logged it"),
        FieldSpec("lat", F.FLOAT, "Latitude as the provider logged it"),
        FieldSpec("lon", F.FLOAT, "Longitude as the provider logged it"),
        FieldSpec("provider", F.STRING, "entra, okta or csv"),
        FieldSpec("event", F.STRING, "Event type (Okta eventType; sign-in)"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
    ),
)

CLOUD_AUDIT = TableSchema(
    name="cloud_audit",
    doc="One row per cloud audit event (Microsoft 365 unified audit log, Google Workspace "
        "Reports API): file transfers, sharing, OAuth consent, mailbox rules.",
    fields=(
        *COMMON,
        FieldSpec("user", F.USER, "Acting account, lower case"),
        FieldSpec("operation", F.STRING, "Operation or event name (FileDownloaded, "
                  "New-InboxRule, download, change_document_visibility...)"),
        FieldSpec("workload", F.STRING, "Workload or application (SharePoint, Exchange, "
                  "drive, token...)"),
        FieldSpec("object", F.STRING, "File, item or mailbox acted on"),
        FieldSpec("src_ip", F.IP, "Client address"),
        FieldSpec("target", F.STRING, "Who it was shared or forwarded to"),
        FieldSpec("visibility", F.STRING, "Sharing type or new visibility"),
        FieldSpec("app", F.STRING, "Application consented to or granted a token"),
        FieldSpec("detail", F.STRING, "Parameters as JSON (cmdlet parameters, event fields)"),
        FieldSpec("provider", F.STRING, "m365 or google"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
    ),
)

_NET = (
    *COMMON,
    FieldSpec("uid", F.STRING, "Zeek connection UID (joins the logs of one connection)"),
    FieldSpec("src_ip", F.IP, "Originator address (id.orig_h)"),
    FieldSpec("src_port", F.INT, "Originator port"),
    FieldSpec("dst_ip", F.IP, "Responder address (id.resp_h)"),
    FieldSpec("dst_port", F.INT, "Responder port"),
)
_NET_TAIL = (
    FieldSpec("line", F.INT, "Line of the log"),
    FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
)
NET_CONN = TableSchema(
    name="net_conn",
    doc=("One row per connection: Zeek conn.log, and firewall and flow exports (Palo Alto "
         "traffic CSV, nfdump CSV, generic firewall CSV or mapped exports); host is the "
         "sensor or firewall when the log names it. Flow records are as the exporter wrote "
         "them: unidirectional NetFlow gives each direction as its own row."),
    fields=(*_NET,
            FieldSpec("proto", F.STRING, "tcp, udp, icmp"),
            FieldSpec("service", F.STRING, "Protocol Zeek recognised (dns, ssl, http...)"),
            FieldSpec("duration", F.FLOAT, "Seconds"),
            FieldSpec("bytes_out", F.INT, "Payload bytes sent by the originator"),
            FieldSpec("bytes_in", F.INT, "Payload bytes sent by the responder"),
            FieldSpec("conn_state", F.STRING, "Zeek connection state (SF, S0, REJ...)"),
            FieldSpec("local_orig", F.BOOL, "Originator in Site::local_nets"),
            FieldSpec("local_resp", F.BOOL, "Responder in Site::local_nets"),
            FieldSpec("orig_pkts", F.INT, "Packets from the originator"),
            FieldSpec("resp_pkts", F.INT, "Packets from the responder"),
            FieldSpec("history", F.STRING, "Zeek connection history"),
            FieldSpec("action", F.STRING, "Firewall verdict as logged (allow, deny, drop, "
                      "reset-both...); null for Zeek and plain flow records"),
            FieldSpec("device", F.STRING, "Firewall or flow exporter that logged the "
                      "connection (name, serial or address, as logged)"),
            *_NET_TAIL),
)
PROXY = TableSchema(
    name="proxy",
    doc=("One row per request a web proxy handled (Squid, Blue Coat/Symantec ProxySG ELFF, "
         "Zscaler NSS, or a mapped export). Values are as logged; bytes are from the "
         "client's side of the proxy: bytes_out what the client sent, bytes_in what it got. "
         "host is the proxy when the log names it."),
    fields=(*COMMON,
            FieldSpec("src_ip", F.IP, "Client address (c-ip, cip)"),
            FieldSpec("user", F.USER, "Authenticated user name, as logged"),
            FieldSpec("method", F.STRING, "Request method (CONNECT for tunnels)"),
            FieldSpec("url", F.URL, "URL as logged; host:port for CONNECT"),
            FieldSpec("url_host", F.DOMAIN, "Host part of the URL, lower case, no port"),
            FieldSpec("dst_ip", F.IP, "Address of the server the proxy contacted, if logged"),
            FieldSpec("dst_port", F.INT, "Server port: as logged or in the URL, else the "
                      "scheme's default (80 http, 443 https, 21 ftp)"),
            FieldSpec("status_code", F.INT, "HTTP status returned to the client"),
            FieldSpec("bytes_out", F.INT, "Bytes from the client to the proxy (request); "
                      "null when the log does not say (Squid's native format)"),
            FieldSpec("bytes_in", F.INT, "Bytes from the proxy to the client (response)"),
            FieldSpec("user_agent", F.STRING, "User-Agent"),
            FieldSpec("action", F.STRING, "Proxy verdict or cache action as logged "
                      "(TCP_TUNNEL, TCP_DENIED, Allowed, Blocked...)"),
            FieldSpec("category", F.STRING, "URL category, if the product logs one"),
            FieldSpec("content_type", F.STRING, "Response content type"),
            FieldSpec("duration", F.FLOAT, "Seconds the proxy took"),
            FieldSpec("line", F.INT, "Line of the log"),
            FieldSpec("source_file", F.PATH, "Evidence path as given on the command line")),
)
DNS = TableSchema(
    name="dns",
    doc="One row per DNS request/response (Zeek dns.log).",
    fields=(*_NET,
            FieldSpec("proto", F.STRING, "udp or tcp"),
            FieldSpec("query", F.DOMAIN, "Name asked for, lower case"),
            FieldSpec("qtype_name", F.STRING, "A, AAAA, TXT, ..."),
            FieldSpec("rcode_name", F.STRING, "NOERROR, NXDOMAIN, ..."),
            FieldSpec("answers", F.STRING, "Answers, comma-separated"),
            *_NET_TAIL),
)
HTTP = TableSchema(
    name="http",
    doc="One row per HTTP request (Zeek http.log).",
    fields=(*_NET,
            FieldSpec("method", F.STRING, "Request method"),
            FieldSpec("http_host", F.DOMAIN, "Host header"),
            FieldSpec("uri", F.URL, "Request URI"),
            FieldSpec("referrer", F.URL, "Referer"),
            FieldSpec("user_agent", F.STRING, "User-Agent"),
            FieldSpec("request_body_len", F.INT, "Bytes uploaded in the body"),
            FieldSpec("response_body_len", F.INT, "Bytes downloaded in the body"),
            FieldSpec("status_code", F.INT, "Response status"),
            FieldSpec("resp_mime_types", F.STRING, "MIME types of the response"),
            *_NET_TAIL),
)
TLS = TableSchema(
    name="tls",
    doc="One row per TLS session (Zeek ssl.log).",
    fields=(*_NET,
            FieldSpec("version", F.STRING, "TLS version"),
            FieldSpec("cipher", F.STRING, "Cipher suite"),
            FieldSpec("server_name", F.DOMAIN, "SNI, lower case"),
            FieldSpec("established", F.BOOL, "Handshake completed"),
            FieldSpec("subject", F.STRING, "Certificate subject"),
            FieldSpec("issuer", F.STRING, "Certificate issuer"),
            FieldSpec("ja3", F.STRING, "JA3 client fingerprint (if the log has it)"),
            *_NET_TAIL),
)
NET_EVENT = TableSchema(
    name="net_event",
    doc="One row per record of the other Zeek logs (files, smb_*, rdp, kerberos, ntlm, "
        "dce_rpc, notice, weird, x509, pe, ...): the log name and every field as JSON.",
    fields=(*_NET,
            FieldSpec("log", F.STRING, "Zeek log (path): files, smb_files, rdp, ..."),
            FieldSpec("fields", F.STRING, "Every field of the record as JSON"),
            *_NET_TAIL),
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (WINDOWS, WEB_ACCESS, FILE,
                                                      SITE_SCRIPT, MAIL, MAIL_ATTACHMENT,
                                                      INDICATOR, INVENTORY, AUTH,
                                                      CLOUD_AUDIT, NET_CONN, DNS, HTTP,
                                                      TLS, NET_EVENT, PROXY)}

#: Sigma field names that map onto a declared column of the windows table.
WINDOWS_ALIASES: dict[str, str] = {
    "EventID": "event_id",
    "Channel": "channel",
    "Provider_Name": "provider",
    "Computer": "host",
    "EventRecordID": "record_id",
}
