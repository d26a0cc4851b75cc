//! Secret redaction for logs and diagnostics: by key name at any depth and by
//! value (every secret the agent loads or stores is registered here).

use std::sync::{Mutex, OnceLock};

use serde_json::Value;

pub const REDACTED: &str = "[REDACTED]";

fn registry() -> &'static Mutex<Vec<String>> {
    static R: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers a secret value so it is replaced wherever it shows up.
/// Values shorter than 4 characters are ignored (too many false hits).
pub fn register_secret(value: &str) {
    let v = value.trim();
    if v.len() < 4 {
        return;
    }
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if !r.iter().any(|s| s == v) {
        r.push(v.to_string());
        // longest first so a secret containing another is replaced whole
        r.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `password|token|secret|authorization|cookie|key|passphrase` (case-insensitive).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // ids and names are not secrets even if they contain "token"/"key"
    if k.ends_with("_id")
        || (k.ends_with("id") && k.contains("token"))
        || k.ends_with("expires_at")
        || k == "secret_store"
    {
        return false;
    }
    [
        "password",
        "passwd",
        "token",
        "secret",
        "authorization",
        "cookie",
        "key",
        "passphrase",
        "csrf",
        "ticket",
    ]
    .iter()
    .any(|p| k.contains(p))
}

/// Replaces registered secret values and `key=value` / `key: value` pairs
/// with a secret-looking key in free text.
pub fn redact_text(text: &str) -> String {
    let mut out = text.to_string();
    {
        let r = registry().lock().unwrap_or_else(|e| e.into_inner());
        for s in r.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
    }
    static KV: OnceLock<regex::Regex> = OnceLock::new();
    let re = KV.get_or_init(|| {
        regex::Regex::new(
            r#"(?i)\b((?:[a-z_-]*)(?:password|passwd|secret|token|passphrase|api_key|apikey|PVEAuthCookie|PVEAPIToken=[^=\s]+))(\s*[=:]\s*)([^\s,;&"'}]+)"#,
        )
        .expect("static regex")
    });
    re.replace_all(&out, |c: &regex::Captures<'_>| {
        if &c[3] == REDACTED {
            c[0].to_string()
        } else {
            format!("{}{}{REDACTED}", &c[1], &c[2])
        }
    })
    .into_owned()
}

/// Redacts a JSON value in place: secret keys at any depth, registered
/// values in strings, and JSON documents embedded in strings.
pub fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_key(k) && !val.is_null() && !matches!(val, Value::Bool(_)) {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_json(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_json),
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                if let Ok(mut inner) = serde_json::from_str::<Value>(t) {
                    redact_json(&mut inner);
                    *s = inner.to_string();
                    return;
                }
            }
            *s = redact_text(s);
        }
        _ => {}
    }
}

/// Redacts one log line: JSON lines structurally, other text by patterns.
pub fn redact_line(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(mut v) => {
            redact_json(&mut v);
            v.to_string()
        }
        Err(_) => redact_text(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_text() {
        register_secret("hunter2-value-xyz");
        let mut v = serde_json::json!({
            "password": "p1", "token": "t1",
            "nested": {"api_key": "k1", "token_id": "root@pam!x"},
            "note": "the value hunter2-value-xyz leaked",
            "details": "{\"client_secret\":\"s3\"}",
            "has_password": true
        });
        redact_json(&mut v);
        let s = v.to_string();
        for secret in ["p1", "t1", "k1", "hunter2-value-xyz", "s3"] {
            assert!(
                !s.contains(&format!("\"{secret}\"")) && !s.contains(secret),
                "{secret} in {s}"
            );
        }
        assert_eq!(v["nested"]["token_id"], "root@pam!x");
        assert_eq!(v["has_password"], true);
        let t = redact_text("login password=abc123 token: zzz9 PVEAPIToken=root@pam!x=uuid-1");
        assert!(
            !t.contains("abc123") && !t.contains("zzz9") && !t.contains("uuid-1"),
            "{t}"
        );
    }
}
