"""Plugin registry: one line per plugin, resolved lazily; import failures kept as data.

``SOURCES`` maps a registered name (the plugin's ``NAME``, its CLI name and module name)
to ``"module:Class"``. ``tests/test_conformance.py`` proves every module is registered.
"""

from __future__ import annotations

import importlib
from typing import Any

from tidehunt.errors import TidehuntError

SOURCES: dict[str, str] = {
    "evtx": "tidehunt.sources.evtx:EvtxSource",
    "windows_json": "tidehunt.sources.windows_json:WindowsJsonSource",
    "iis_w3c": "tidehunt.sources.iis_w3c:IisW3cSource",
    "access_log": "tidehunt.sources.access_log:AccessLogSource",
    "email_mime": "tidehunt.sources.email_mime:EmailMimeSource",
    "mbox": "tidehunt.sources.mbox:MboxSource",
    "outlook_msg": "tidehunt.sources.outlook_msg:OutlookMsgSource",
    "entra_signin": "tidehunt.sources.entra_signin:EntraSigninSource",
    "okta_log": "tidehunt.sources.okta_log:OktaLogSource",
    "auth_csv": "tidehunt.sources.auth_csv:AuthCsvSource",
    "m365_audit": "tidehunt.sources.m365_audit:M365AuditSource",
    "gws_audit": "tidehunt.sources.gws_audit:GwsAuditSource",
    "zeek": "tidehunt.sources.zeek:ZeekSource",
    "squid": "tidehunt.sources.squid:SquidSource",
    "net_export": "tidehunt.sources.net_export:NetExportSource",
}

DETECTORS: dict[str, str] = {
    "sigma": "tidehunt.detect.sigma.detector:SigmaDetector",
    "analytics": "tidehunt.detect.analytics.detector:AnalyticsDetector",
}

_A = "tidehunt.detect.analytics."
ANALYTICS: dict[str, str] = {
    "web_command_request": _A + "web_command_request:WebCommandRequest",
    "web_tunnel_request": _A + "web_tunnel_request:WebTunnelRequest",
    "http_auth_bruteforce": _A + "http_auth_bruteforce:HttpAuthBruteforce",
    "war_deploy": _A + "war_deploy:WarDeploy",
    "new_script_after_deploy": _A + "new_script_after_deploy:NewScriptAfterDeploy",
    "rare_script_post": _A + "rare_script_post:RareScriptPost",
    "command_output_sizes": _A + "command_output_sizes:CommandOutputSizes",
    "script_in_static_folder": _A + "script_in_static_folder:ScriptInStaticFolder",
    "long_encoded_parameter": _A + "long_encoded_parameter:LongEncodedParameter",
    "sql_injection_request": _A + "sql_injection_request:SqlInjectionRequest",
    "scanbox_beacon": _A + "scanbox_beacon:ScanboxBeacon",
    "web_scan": _A + "web_scan:WebScan",
    "webroot_yara": _A + "webroot_yara:WebrootYara",
    "webroot_script_heuristics": _A + "webroot_script_heuristics:WebrootScriptHeuristics",
    "webroot_timestomp": _A + "webroot_timestomp:WebrootTimestomp",
    "webroot_orphan_jsp_class": _A + "webroot_orphan_jsp_class:WebrootOrphanJspClass",
    "webroot_misplaced_script": _A + "webroot_misplaced_script:WebrootMisplacedScript",
    "webroot_baseline_change": _A + "webroot_baseline_change:WebrootBaselineChange",
    "web_request_to_flagged_file": _A + "web_request_to_flagged_file:WebRequestToFlaggedFile",
    "web_shell_host_chain": _A + "web_shell_host_chain:WebShellHostChain",
    "site_watering_hole": _A + "site_watering_hole:SiteWateringHole",
    "site_watering_hole_visit": _A + "site_watering_hole_visit:SiteWateringHoleVisit",
    "mail_lookalike_domain": _A + "mail_lookalike_domain:MailLookalikeDomain",
    "mail_sender_mismatch": _A + "mail_sender_mismatch:MailSenderMismatch",
    "mail_attachment_exploit": _A + "mail_attachment_exploit:MailAttachmentExploit",
    "mail_attachment_macro": _A + "mail_attachment_macro:MailAttachmentMacro",
    "mail_template_injection": _A + "mail_template_injection:MailTemplateInjection",
    "mail_attachment_executable": _A + "mail_attachment_executable:MailAttachmentExecutable",
    "mail_attachment_container": _A + "mail_attachment_container:MailAttachmentContainer",
    "mail_display_name_spoof": _A + "mail_display_name_spoof:MailDisplayNameSpoof",
    "mail_first_seen_domain": _A + "mail_first_seen_domain:MailFirstSeenDomain",
    "mail_internal_spearphish": _A + "mail_internal_spearphish:MailInternalSpearphish",
    "mail_host_chain": _A + "mail_host_chain:MailHostChain",
    "intel_match": _A + "intel_match:IntelMatch",
    "vuln_exposure": _A + "vuln_exposure:VulnExposure",
    "auth_single_factor": _A + "auth_single_factor:AuthSingleFactor",
    "auth_mfa_fatigue": _A + "auth_mfa_fatigue:AuthMfaFatigue",
    "auth_impossible_travel": _A + "auth_impossible_travel:AuthImpossibleTravel",
    "auth_risky_network": _A + "auth_risky_network:AuthRiskyNetwork",
    "auth_session_reuse": _A + "auth_session_reuse:AuthSessionReuse",
    "auth_service_interactive": _A + "auth_service_interactive:AuthServiceInteractive",
    "cloud_mass_transfer": _A + "cloud_mass_transfer:CloudMassTransfer",
    "cloud_external_sharing": _A + "cloud_external_sharing:CloudExternalSharing",
    "cloud_oauth_consent": _A + "cloud_oauth_consent:CloudOauthConsent",
    "cloud_mail_forwarding": _A + "cloud_mail_forwarding:CloudMailForwarding",
    "net_cloud_upload": _A + "net_cloud_upload:NetCloudUpload",
    "net_upload_asymmetric": _A + "net_upload_asymmetric:NetUploadAsymmetric",
    "net_first_contact_server": _A + "net_first_contact_server:NetFirstContactServer",
    "net_staging_upload": _A + "net_staging_upload:NetStagingUpload",
    "net_storage_api_tool": _A + "net_storage_api_tool:NetStorageApiTool",
    "net_beacon": _A + "net_beacon:NetBeacon",
    "net_long_connection": _A + "net_long_connection:NetLongConnection",
    "dns_tunnel": _A + "dns_tunnel:DnsTunnel",
    "net_smb_public": _A + "net_smb_public:NetSmbPublic",
    "net_risky_network": _A + "net_risky_network:NetRiskyNetwork",
    "net_zone_violation": _A + "net_zone_violation:NetZoneViolation",
    "logon_zone_violation": _A + "logon_zone_violation:LogonZoneViolation",
    "logon_service_interactive": _A + "logon_service_interactive:LogonServiceInteractive",
    "http_exe_download": _A + "http_exe_download:HttpExeDownload",
    "http_webdav_upload": _A + "http_webdav_upload:HttpWebdavUpload",
    "tls_self_signed": _A + "tls_self_signed:TlsSelfSigned",
}

RENDERERS: dict[str, str] = {
    "jsonl": "tidehunt.render.jsonl",
    "csv_timeline": "tidehunt.render.csv_timeline",
    "terminal": "tidehunt.render.terminal",
    "html": "tidehunt.render.html",
    "timesketch": "tidehunt.render.timesketch",
    "ecs": "tidehunt.render.ecs",
    "navigator": "tidehunt.render.navigator",
    "stix": "tidehunt.render.stix",
    "misp": "tidehunt.render.misp",
}

_KINDS: dict[str, dict[str, str]] = {
    "sources": SOURCES,
    "detectors": DETECTORS,
    "renderers": RENDERERS,
    "analytics": ANALYTICS,
}

FAILED: dict[str, str] = {}


class RegistryError(TidehuntError):
    """Unknown plugin name or a plugin that failed to import."""


def targets(kind: str) -> dict[str, str]:
    """Registered names of a kind mapped to their ``module:Class`` (or module) targets."""
    return dict(_KINDS[kind])


def load(kind: str, name: str) -> Any:
    """Import and return the registered plugin."""
    try:
        target = _KINDS[kind][name]
    except KeyError:
        raise RegistryError(f"no {kind[:-1]} called {name!r}; known: "
                            f"{', '.join(sorted(_KINDS[kind]))}") from None
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        FAILED[f"{kind}:{name}"] = str(exc)
        raise RegistryError(f"{kind[:-1]} {name!r} failed to import: {exc}") from exc
    return getattr(mod, attr) if attr else mod


#: all_of's answers: kind -> (its registrations when asked, the plugins that imported)
_ALL_OF: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, Any]]] = {}


def all_of(kind: str) -> dict[str, Any]:
    """Every plugin of a kind that imports; failures are kept in FAILED.

    Remembered per kind while its registrations stay the same: ingest asks for every
    Source once per evidence file.
    """
    key = tuple(_KINDS[kind].items())
    cached = _ALL_OF.get(kind)
    if cached is not None and cached[0] == key:
        return dict(cached[1])
    out = {}
    for name in _KINDS[kind]:
        try:
            out[name] = load(kind, name)
        except RegistryError:
            continue
    _ALL_OF[kind] = (key, out)
    return dict(out)

