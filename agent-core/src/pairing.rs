//! Pairing input parser: every form an operator may paste (inventory §4.1).
//!
//! Accepted, tried in this order:
//! 1. raw JSON (`{"v":1,"pairing_code":…}`), legacy keys `code`, `serverUrl`,
//!    `proxmox_defaults`, `proxmoxUrl`… included;
//! 2. a URL: `botmox://pair?bundle=…|code=…`, `https://server/agent/pair?bundle=…`,
//!    `…?pairing_code=…` / `…?code=…` or a path `…/pair/<code>`;
//! 3. a base64url bundle (padding optional);
//! 4. a raw pairing code (the server URL must then come from elsewhere).

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use botmox_protocol::ProxmoxHint;
use serde_json::{Map, Value};

/// Which form the input had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingForm {
    Bundle,
    Json,
    UrlWithBundle,
    UrlWithCode,
    UrlWithPath,
    BotmoxUri,
    RawCode,
}

/// A parsed and validated pairing input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingInput {
    pub form: PairingForm,
    pub pairing_code: String,
    /// `https://host[:port]` without a trailing slash, when known.
    pub server_url: Option<String>,
    /// Lower-case hex SHA-256 of the server certificate to pin.
    pub server_cert_sha256: Option<String>,
    pub proxmox: Option<ProxmoxHint>,
    /// Not part of the input: the customer's explicit consent to a
    /// cleartext `http://` server on a non-loopback host
    /// (`--allow-insecure-http`, the tray's checkbox); see [`check_transport`].
    pub allow_insecure_http: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    #[error("the pairing input is empty: paste the bundle, pairing URL or pairing code")]
    Empty,
    #[error("the pairing JSON is invalid: {0}")]
    BadJson(String),
    #[error("the pairing bundle is not valid base64url text (was it cut off when copying?)")]
    BadBase64,
    #[error("the pairing bundle does not contain valid JSON (was it cut off when copying?): {0}")]
    BundleNotJson(String),
    #[error(
        "pairing format version {0} is not supported by this agent (expected 1); update the agent"
    )]
    UnsupportedVersion(u64),
    #[error("the pairing data has no pairing code (expected `pairing_code` or `code`)")]
    MissingCode,
    #[error("the pairing code {0:?} is malformed: expected 4-128 letters, digits, '-' or '_'")]
    BadCode(String),
    #[error("the server URL {0:?} is invalid: it must be an http:// or https:// URL with a host")]
    BadServerUrl(String),
    #[error("the server certificate fingerprint must be 64 hex characters (SHA-256), got {0:?}")]
    BadFingerprint(String),
    #[error("the URL could not be parsed: {0}")]
    BadUrl(String),
    #[error("unsupported link scheme {0:?}: expected https://, http:// or botmox://pair?…")]
    UnsupportedScheme(String),
    #[error("unsupported botmox:// link: expected botmox://pair?bundle=… or botmox://pair?code=…")]
    BadBotmoxUri,
    #[error(
        "the URL has no `bundle`, `pairing_code` or `code` parameter and no /pair/<code> path"
    )]
    UrlWithoutCode,
    #[error("the field `{0}` must be a string")]
    NotAString(&'static str),
    #[error("the input is neither a pairing bundle, a pairing URL nor a pairing code")]
    Unrecognized,
    #[error("a pairing code alone does not say which server to use: pass --server-url URL")]
    ServerUrlRequired,
    #[error("the server URL {0:?} is plain http://: the agent token would travel in clear. Use https://, or accept the risk explicitly with --allow-insecure-http (tray: \"Allow unencrypted http://\"); http:// is accepted without it only for loopback hosts")]
    InsecureHttp(String),
}

impl PairingInput {
    /// Fills the server URL from `fallback` when the input had none, and
    /// fails if it is still unknown.
    pub fn require_server(mut self, fallback: Option<&str>) -> Result<Self, PairingError> {
        if self.server_url.is_none() {
            if let Some(f) = fallback {
                self.server_url = Some(normalize_server_url(f)?);
            }
        }
        if self.server_url.is_none() {
            return Err(PairingError::ServerUrlRequired);
        }
        Ok(self)
    }

    /// Refuses a cleartext server URL unless allowed (see
    /// [`check_transport`]); records the consent in the input.
    pub fn require_secure_transport(
        mut self,
        allow_insecure_http: bool,
    ) -> Result<Self, PairingError> {
        if let Some(url) = &self.server_url {
            check_transport(url, allow_insecure_http)?;
        }
        self.allow_insecure_http = allow_insecure_http;
        Ok(self)
    }
}

/// Whether `url`'s host is a loopback address (`localhost`, `127.0.0.0/8`,
/// `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `https://` always; `http://` only for a loopback host or with the
/// customer's explicit `allow_insecure_http`.
pub fn check_transport(url: &str, allow_insecure_http: bool) -> Result<(), PairingError> {
    let scheme = url::Url::parse(url)
        .map(|u| u.scheme().to_string())
        .map_err(|_| PairingError::BadServerUrl(url.to_string()))?;
    if scheme == "http" && !allow_insecure_http && !is_loopback_url(url) {
        return Err(PairingError::InsecureHttp(url.to_string()));
    }
    Ok(())
}

/// Parses any pairing input form.
pub fn parse(input: &str) -> Result<PairingInput, PairingError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(PairingError::Empty);
    }
    if text.starts_with('{') {
        let v: Value =
            serde_json::from_str(text).map_err(|e| PairingError::BadJson(e.to_string()))?;
        return from_json(&v, PairingForm::Json);
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return parse_url(text, scheme);
    }
    // A bundle is base64url of JSON, so it starts with "eyJ" ('{"').
    let looks_like_bundle = text.starts_with("eyJ") || text.starts_with("ey");
    let decoded = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(text));
    match decoded {
        Ok(bytes) if bytes.first() == Some(&b'{') => {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| PairingError::BundleNotJson(e.to_string()))?;
            from_json(&v, PairingForm::Bundle)
        }
        Err(_) if looks_like_bundle && text.len() > 24 => Err(PairingError::BadBase64),
        _ => {
            if text.chars().any(char::is_whitespace) {
                return Err(PairingError::Unrecognized);
            }
            if !is_valid_code(text) {
                if text.len() > 128 {
                    return Err(PairingError::Unrecognized);
                }
                return Err(PairingError::BadCode(text.to_string()));
            }
            Ok(PairingInput {
                form: PairingForm::RawCode,
                pairing_code: text.to_string(),
                server_url: None,
                server_cert_sha256: None,
                proxmox: None,
                allow_insecure_http: false,
            })
        }
    }
}

fn is_valid_code(code: &str) -> bool {
    (4..=128).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_code(code: &str) -> Result<String, PairingError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(PairingError::MissingCode);
    }
    if !is_valid_code(code) {
        return Err(PairingError::BadCode(code.to_string()));
    }
    Ok(code.to_string())
}

/// `https://host:port/` → `https://host:port`; rejects other schemes.
pub fn normalize_server_url(raw: &str) -> Result<String, PairingError> {
    let bad = || PairingError::BadServerUrl(raw.to_string());
    let u = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad());
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// Accepts `ab12…` (64 hex) or `AB:12:…`; returns lower-case hex without colons.
pub fn normalize_fingerprint(raw: &str) -> Result<String, PairingError> {
    let hex: String = raw
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PairingError::BadFingerprint(raw.to_string()));
    }
    Ok(hex.to_ascii_lowercase())
}

fn str_field(
    obj: &Map<String, Value>,
    keys: &[&'static str],
) -> Result<Option<String>, PairingError> {
    for k in keys {
        match obj.get(*k) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(Value::String(s)) => return Ok(Some(s.trim().to_string())),
            Some(_) => return Err(PairingError::NotAString(k)),
        }
    }
    Ok(None)
}

fn from_json(v: &Value, form: PairingForm) -> Result<PairingInput, PairingError> {
    let obj = v
        .as_object()
        .ok_or_else(|| PairingError::BadJson("expected a JSON object".into()))?;
    if let Some(ver) = obj.get("v") {
        match ver.as_u64() {
            Some(1) => {}
            Some(n) => return Err(PairingError::UnsupportedVersion(n)),
            None => return Err(PairingError::BadJson("`v` must be a number".into())),
        }
    }
    let code = str_field(obj, &["pairing_code", "code", "pairingCode"])?
        .ok_or(PairingError::MissingCode)?;
    let pairing_code = check_code(&code)?;
    let server_url = str_field(obj, &["server_url", "serverUrl"])?
        .map(|s| normalize_server_url(&s))
        .transpose()?;
    let server_cert_sha256 = str_field(obj, &["server_cert_sha256", "serverCertSha256"])?
        .map(|s| normalize_fingerprint(&s))
        .transpose()?;
    let proxmox = match obj.get("proxmox").or_else(|| obj.get("proxmox_defaults")) {
        Some(Value::Object(p)) => hint(
            str_field(p, &["url", "proxmoxUrl"])?,
            str_field(p, &["username", "proxmoxUsername"])?,
            str_field(p, &["node", "proxmoxNode"])?,
        ),
        Some(Value::Null) | None => None,
        Some(_) => return Err(PairingError::BadJson("`proxmox` must be an object".into())),
    };
    Ok(PairingInput {
        form,
        pairing_code,
        server_url,
        server_cert_sha256,
        proxmox,
        allow_insecure_http: false,
    })
}

fn hint(
    url: Option<String>,
    username: Option<String>,
    node: Option<String>,
) -> Option<ProxmoxHint> {
    if url.is_none() && username.is_none() && node.is_none() {
        None
    } else {
        Some(ProxmoxHint {
            url,
            username,
            node,
        })
    }
}

fn parse_url(text: &str, scheme: &str) -> Result<PairingInput, PairingError> {
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "botmox") {
        return Err(PairingError::UnsupportedScheme(scheme));
    }
    let u = url::Url::parse(text).map_err(|e| PairingError::BadUrl(e.to_string()))?;
    let query = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| {
            u.query_pairs()
                .find(|(k, v)| k == n && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let is_botmox = scheme == "botmox";
    if is_botmox && u.host_str() != Some("pair") {
        return Err(PairingError::BadBotmoxUri);
    }
    let query_server = query(&["server_url", "serverUrl"])
        .map(|s| normalize_server_url(&s))
        .transpose()?;
    let origin_server = if is_botmox {
        None
    } else {
        Some(normalize_server_url(&u.origin().ascii_serialization())?)
    };
    let query_hint = hint(
        query(&["proxmox_url"]),
        query(&["proxmox_username"]),
        query(&["proxmox_node"]),
    );
    let query_fp = query(&["server_cert_sha256", "fingerprint"])
        .map(|s| normalize_fingerprint(&s))
        .transpose()?;

    if let Some(bundle) = query(&["bundle"]) {
        let mut p = match parse(&bundle)? {
            p if p.form == PairingForm::Bundle || p.form == PairingForm::Json => p,
            _ => return Err(PairingError::BadBase64),
        };
        p.form = if is_botmox {
            PairingForm::BotmoxUri
        } else {
            PairingForm::UrlWithBundle
        };
        if p.server_url.is_none() {
            p.server_url = query_server.or(origin_server);
        }
        if p.server_cert_sha256.is_none() {
            p.server_cert_sha256 = query_fp;
        }
        if p.proxmox.is_none() {
            p.proxmox = query_hint;
        }
        return Ok(p);
    }
    let (code, form) = if let Some(code) = query(&["pairing_code", "code"]) {
        (
            code,
            if is_botmox {
                PairingForm::BotmoxUri
            } else {
                PairingForm::UrlWithCode
            },
        )
    } else {
        let segs: Vec<&str> = u
            .path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).collect())
            .unwrap_or_default();
        match segs.iter().position(|s| *s == "pair") {
            Some(i) if i + 1 < segs.len() && !is_botmox => {
                (segs[i + 1].to_string(), PairingForm::UrlWithPath)
            }
            _ if is_botmox => return Err(PairingError::BadBotmoxUri),
            _ => return Err(PairingError::UrlWithoutCode),
        }
    };
    Ok(PairingInput {
        form,
        pairing_code: check_code(&code)?,
        server_url: query_server.or(origin_server),
        server_cert_sha256: query_fp,
        proxmox: query_hint,
        allow_insecure_http: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use botmox_protocol::PairingBundle;

    fn bundle() -> PairingBundle {
        PairingBundle {
            v: 1,
            pairing_code: "bmxp_0123456789abcdef".into(),
            server_url: "https://botmox.lan:8443".into(),
            server_cert_sha256: Some("AB".repeat(32)),
            proxmox: Some(ProxmoxHint {
                url: Some("https://pve:8006".into()),
                username: Some("root@pam".into()),
                node: Some("pve".into()),
            }),
        }
    }

    fn enc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn base64url_bundle() {
        let p = parse(&bundle().encode()).unwrap();
        assert_eq!(p.form, PairingForm::Bundle);
        assert_eq!(p.pairing_code, "bmxp_0123456789abcdef");
        assert_eq!(p.server_url.as_deref(), Some("https://botmox.lan:8443"));
        assert_eq!(p.server_cert_sha256, Some("ab".repeat(32)));
        assert_eq!(p.proxmox.unwrap().node.as_deref(), Some("pve"));
        // with padding and whitespace
        let padded = URL_SAFE.encode(serde_json::to_vec(&bundle()).unwrap());
        assert_eq!(
            parse(&format!("  {padded}\n")).unwrap().form,
            PairingForm::Bundle
        );
    }

    #[test]
    fn legacy_bundle_keys_and_null_server() {
        let json = r#"{"v":1,"code":"0123456789abcdef0123456789abcdef","serverUrl":null,
            "proxmox_defaults":{"proxmoxUrl":"https://10.0.0.2:8006","proxmoxNode":"h1"}}"#;
        let b = URL_SAFE_NO_PAD.encode(json);
        let p = parse(&b).unwrap();
        assert_eq!(p.server_url, None);
        let h = p.proxmox.clone().unwrap();
        assert_eq!(h.url.as_deref(), Some("https://10.0.0.2:8006"));
        assert_eq!(h.username, None);
        assert_eq!(
            p.clone().require_server(None).unwrap_err(),
            PairingError::ServerUrlRequired
        );
        let p = p.require_server(Some("https://srv/")).unwrap();
        assert_eq!(p.server_url.as_deref(), Some("https://srv"));
    }

    #[test]
    fn raw_json() {
        let p = parse(r#"{"pairing_code":"BMX-ABCD1234","server_url":"http://127.0.0.1:3002/"}"#)
            .unwrap();
        assert_eq!(p.form, PairingForm::Json);
        assert_eq!(p.server_url.as_deref(), Some("http://127.0.0.1:3002"));
    }

    #[test]
    fn url_with_bundle() {
        let b = bundle().encode();
        let p = parse(&format!(
            "https://other.example/agent/pair?bundle={}",
            enc(&b)
        ))
        .unwrap();
        assert_eq!(p.form, PairingForm::UrlWithBundle);
        // the bundle's own server wins over the URL's origin
        assert_eq!(p.server_url.as_deref(), Some("https://botmox.lan:8443"));
        let p = parse(&format!("botmox://pair?bundle={}", enc(&b))).unwrap();
        assert_eq!(p.form, PairingForm::BotmoxUri);
        assert_eq!(p.pairing_code, "bmxp_0123456789abcdef");
    }

    #[test]
    fn url_with_code_and_path() {
        let p = parse("https://botmox.lan:8443/agent/pair?pairing_code=bmxp_abcd&proxmox_url=https%3A%2F%2Fpve%3A8006&proxmox_node=n1").unwrap();
        assert_eq!(p.form, PairingForm::UrlWithCode);
        assert_eq!(p.server_url.as_deref(), Some("https://botmox.lan:8443"));
        assert_eq!(p.proxmox.unwrap().node.as_deref(), Some("n1"));
        let p =
            parse("http://10.1.1.1/x?code=BMX-ABCD1234&server_url=https://api.example").unwrap();
        assert_eq!(p.server_url.as_deref(), Some("https://api.example"));
        let p = parse("https://botmox.lan/pair/bmxp_abcdef").unwrap();
        assert_eq!(p.form, PairingForm::UrlWithPath);
        assert_eq!(p.pairing_code, "bmxp_abcdef");
        let p = parse("botmox://pair?code=BMX-ABCD1234").unwrap();
        assert_eq!(p.form, PairingForm::BotmoxUri);
        assert_eq!(p.server_url, None);
        let p = parse(&format!(
            "botmox://pair?code=BMX-ABCD1234&server_url=https://s:1&server_cert_sha256={}",
            "cd".repeat(32)
        ))
        .unwrap();
        assert_eq!(p.server_url.as_deref(), Some("https://s:1"));
        assert_eq!(p.server_cert_sha256, Some("cd".repeat(32)));
    }

    #[test]
    fn raw_code() {
        let p = parse("BMX-ABCD1234").unwrap();
        assert_eq!(p.form, PairingForm::RawCode);
        assert_eq!(p.server_url, None);
        let p = parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(p.pairing_code, "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn malformed_inputs_have_clear_errors() {
        assert_eq!(parse("   ").unwrap_err(), PairingError::Empty);
        assert!(matches!(
            parse("{not json").unwrap_err(),
            PairingError::BadJson(_)
        ));
        assert!(matches!(
            parse("[1,2]").unwrap_err(),
            PairingError::BadCode(_)
        ));
        // truncated bundle: valid base64 of cut-off JSON
        let b = bundle().encode();
        assert!(matches!(
            parse(&b[..b.len() / 2 - (b.len() / 2) % 4]).unwrap_err(),
            PairingError::BundleNotJson(_)
        ));
        // truncated to an impossible base64 length
        let cut = &b[..41];
        assert_eq!(parse(cut).unwrap_err(), PairingError::BadBase64);
        let mut v2 = bundle();
        v2.v = 2;
        assert_eq!(
            parse(&v2.encode()).unwrap_err(),
            PairingError::UnsupportedVersion(2)
        );
        assert_eq!(
            parse(r#"{"v":1,"server_url":"https://s"}"#).unwrap_err(),
            PairingError::MissingCode
        );
        assert!(matches!(
            parse(r#"{"code":"ab"}"#).unwrap_err(),
            PairingError::BadCode(_)
        ));
        assert!(matches!(
            parse(r#"{"code":"abcd","server_url":"ftp://x"}"#).unwrap_err(),
            PairingError::BadServerUrl(_)
        ));
        assert!(matches!(
            parse(r#"{"code":"abcd","server_cert_sha256":"zz"}"#).unwrap_err(),
            PairingError::BadFingerprint(_)
        ));
        assert_eq!(
            parse(r#"{"code":5}"#).unwrap_err(),
            PairingError::NotAString("code")
        );
        assert_eq!(
            parse("ftp://host/pair/abcd").unwrap_err(),
            PairingError::UnsupportedScheme("ftp".into())
        );
        assert_eq!(
            parse("botmox://other?code=abcd").unwrap_err(),
            PairingError::BadBotmoxUri
        );
        assert_eq!(
            parse("botmox://pair").unwrap_err(),
            PairingError::BadBotmoxUri
        );
        assert_eq!(
            parse("https://botmox.lan/agent/pair").unwrap_err(),
            PairingError::UrlWithoutCode
        );
        assert!(matches!(
            parse("https://botmox.lan/agent/pair?bundle=%%%").unwrap_err(),
            PairingError::BadCode(_) | PairingError::BadBase64
        ));
        assert!(matches!(
            parse("https://botmox.lan/x?code=a%20b").unwrap_err(),
            PairingError::BadCode(_)
        ));
        assert!(matches!(
            parse("https://[::1/x").unwrap_err(),
            PairingError::BadUrl(_)
        ));
        assert_eq!(parse("two words").unwrap_err(), PairingError::Unrecognized);
        assert!(matches!(
            parse("a!b@c#d").unwrap_err(),
            PairingError::BadCode(_)
        ));
        // messages are human readable
        assert!(PairingError::ServerUrlRequired
            .to_string()
            .contains("--server-url"));
    }

    #[test]
    fn fingerprint_forms() {
        let colon = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        assert_eq!(normalize_fingerprint(&colon).unwrap(), "ab".repeat(32));
        assert_eq!(
            normalize_fingerprint(&format!("sha256:{}", "0f".repeat(32))).unwrap(),
            "0f".repeat(32)
        );
        assert!(normalize_fingerprint("abc").is_err());
    }
}
