//! The rules of the settings tree: path rules, per-path validation, the
//! shallow merge, masking of secret-bearing paths, role gates, one
//! transaction per write.

use serde_json::{Map, Value};

use super::schema::{self, ROOTS, SECRET_ROOTS};
use super::store;
use super::{BodyKind, SettingsError};
use crate::auth::{Identity, Role};
use crate::db::{now_ms, Db};
use crate::validate::FieldErrors;

/// Longest accepted path (the original's limit), in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Most segments in a path, the root included.
pub const MAX_DEPTH: usize = 8;
/// Longest segment.
pub const MAX_SEGMENT_LEN: usize = 128;
/// Largest stored root document (serialized JSON).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// What a masked secret reads as.
pub const MASK: &str = "********";

/// A parsed path: `segments[0]` is a known root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsPath {
    pub segments: Vec<String>,
}

impl SettingsPath {
    pub fn root(&self) -> &str {
        &self.segments[0]
    }
    pub fn rest(&self) -> &[String] {
        &self.segments[1..]
    }
    pub fn joined(&self) -> String {
        self.segments.join("/")
    }
}

/// Parse a settings path. `Ok(None)` is the whole tree (empty, `/` or
/// `settings`). Rules: at most 512 bytes; a leading `settings/` and outer
/// slashes are dropped; segments are 1..128 characters of `A-Z a-z 0-9 _ -`
/// (so never empty, `.`, `..` or any of the original's forbidden `.#$[]`);
/// at most 8 segments; the first one is a known root.
pub fn parse_path(raw: &str) -> Result<Option<SettingsPath>, SettingsError> {
    let bad = |reason: String| SettingsError::InvalidPath {
        path: raw.chars().take(MAX_PATH_LEN).collect(),
        reason,
    };
    if raw.len() > MAX_PATH_LEN {
        return Err(bad(format!("longer than {MAX_PATH_LEN} bytes")));
    }
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() || trimmed == "settings" {
        return Ok(None);
    }
    let mut segments: Vec<&str> = trimmed.split('/').collect();
    if segments[0] == "settings" {
        segments.remove(0);
    }
    if segments.len() > MAX_DEPTH {
        return Err(bad(format!("deeper than {MAX_DEPTH} segments")));
    }
    for s in &segments {
        if s.is_empty() {
            return Err(bad("empty path segment".into()));
        }
        if s.len() > MAX_SEGMENT_LEN {
            return Err(bad(format!(
                "path segment longer than {MAX_SEGMENT_LEN} characters"
            )));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad(format!(
                "invalid path segment `{}`: only A-Z, a-z, 0-9, `_` and `-`",
                s.chars().take(MAX_SEGMENT_LEN).collect::<String>()
            )));
        }
    }
    if !ROOTS.contains(&segments[0]) {
        return Err(bad(format!(
            "unknown settings root `{}`; known: {}",
            segments[0],
            ROOTS.join(", ")
        )));
    }
    Ok(Some(SettingsPath {
        segments: segments.into_iter().map(str::to_string).collect(),
    }))
}

/// A value read or written, with the last change of its root document.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Epoch ms of the root document's last write (none: never written).
    pub updated_at: Option<i64>,
}

pub struct SettingsService {
    db: Db,
}

impl SettingsService {
    pub fn new(db: Db) -> SettingsService {
        SettingsService { db }
    }

    /// The whole tree of the caller's tenant (`GET /settings`), secrets
    /// masked for non-admins.
    pub async fn tree(&self, who: &Identity) -> Result<Value, SettingsError> {
        let scope = who.require(Role::Viewer)?;
        let rows = store::all(self.db.reader(), &scope).await?;
        let mut tree = Map::new();
        for row in rows {
            let mut doc = decode(&row.data)?;
            if doc.is_null() {
                continue;
            }
            if !who.has(Role::Admin) {
                mask(&row.root, &mut doc);
            }
            tree.insert(row.root, doc);
        }
        Ok(Value::Object(tree))
    }

    /// The value at `raw` (null when absent); the whole tree for an empty path.
    pub async fn read(&self, who: &Identity, raw: &str) -> Result<Entry, SettingsError> {
        let scope = who.require(Role::Viewer)?;
        let Some(path) = parse_path(raw)? else {
            return Ok(Entry {
                value: self.tree(who).await?,
                updated_at: None,
            });
        };
        let row = store::get(self.db.reader(), &scope, path.root()).await?;
        let (mut doc, updated_at) = match row {
            Some(r) => (decode(&r.data)?, Some(r.updated_at)),
            None => (Value::Null, None),
        };
        if !who.has(Role::Admin) {
            mask(path.root(), &mut doc);
        }
        Ok(Entry {
            value: at(&doc, path.rest()).cloned().unwrap_or(Value::Null),
            updated_at: updated_at.filter(|_| !doc.is_null()),
        })
    }

    /// Write `body` at `raw` (PUT and PATCH alike, as the original): a
    /// shallow merge when both the stored value and the body are objects
    /// (a `null` member deletes that key), else a replacement (`null`
    /// deletes the value). The root document that results is validated as
    /// a whole, then stored — all in one transaction.
    pub async fn write(
        &self,
        who: &Identity,
        raw: &str,
        body: Value,
    ) -> Result<Entry, SettingsError> {
        let path = parse_path(raw)?.ok_or_else(|| SettingsError::InvalidPath {
            path: raw.to_string(),
            reason: "write a root key (e.g. `theme`), not the whole tree".into(),
        })?;
        let root = path.root().to_string();
        let needed = if SECRET_ROOTS.contains(&root.as_str()) {
            Role::Admin
        } else {
            Role::Operator
        };
        let scope = who.require(needed)?;
        let kind = body_kind(&path);
        if body.is_null() && !schema::null_allowed(&path.segments) {
            return Err(SettingsError::InvalidBody {
                kind,
                fields: FieldErrors::one("body", "must not be null at this path"),
            });
        }

        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let mut doc = decode(&store::lock(&mut tx, &scope, &root, now).await?)?;
        apply(&mut doc, path.rest(), body);
        let errors = schema::validate_root(&root, &doc);
        if !errors.is_empty() {
            return Err(SettingsError::InvalidBody {
                kind,
                fields: relative(errors, path.rest()),
            });
        }
        let text = doc.to_string();
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(SettingsError::InvalidBody {
                kind,
                fields: FieldErrors::one(
                    "body",
                    format!("the `{root}` document would exceed {MAX_DOCUMENT_BYTES} bytes"),
                ),
            });
        }
        store::save(&mut tx, &scope, &root, &text, now, who.user_id.as_str()).await?;
        tx.commit().await?;

        if !who.has(Role::Admin) {
            mask(&root, &mut doc);
        }
        Ok(Entry {
            value: at(&doc, path.rest()).cloned().unwrap_or(Value::Null),
            updated_at: Some(now),
        })
    }
}

/// Which of the original's error codes a bad body gets: the three typed
/// paths of the newer generation have their own.
fn body_kind(path: &SettingsPath) -> BodyKind {
    match (path.root(), path.rest().first().map(String::as_str)) {
        ("api_keys", _) => BodyKind::ApiKeys,
        ("proxy", _) => BodyKind::Proxy,
        ("notifications", Some("events")) => BodyKind::NotificationEvents,
        _ => BodyKind::Other,
    }
}

fn decode(text: &str) -> Result<Value, SettingsError> {
    serde_json::from_str(text)
        .map_err(|e| SettingsError::Store(crate::db::StoreError::Corrupt(format!("settings: {e}"))))
}

/// The value at `rest` below `doc`.
fn at<'a>(doc: &'a Value, rest: &[String]) -> Option<&'a Value> {
    rest.iter().try_fold(doc, |v, k| v.get(k))
}

/// Write `body` at `rest` below `doc` (see [`SettingsService::write`]).
pub fn apply(doc: &mut Value, rest: &[String], body: Value) {
    let Some((key, deeper)) = rest.split_first() else {
        merge(doc, body);
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(map) = doc else {
        unreachable!("made an object above")
    };
    if deeper.is_empty() && body.is_null() {
        map.remove(key);
        return;
    }
    let child = map.entry(key.clone()).or_insert(Value::Null);
    apply(child, deeper, body);
}

/// The shallow merge: object into object key by key (`null` deletes a
/// key); anything else replaces.
fn merge(target: &mut Value, body: Value) {
    match (target, body) {
        (Value::Object(t), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    t.insert(k, v);
                }
            }
        }
        (target, Value::Object(b)) => {
            *target = Value::Object(b.into_iter().filter(|(_, v)| !v.is_null()).collect());
        }
        (target, other) => *target = other,
    }
}

/// Field paths relative to the written body: `hardware.cores` written at
/// `vmgenerator/hardware` is reported as `cores`.
fn relative(errors: FieldErrors, rest: &[String]) -> FieldErrors {
    if rest.is_empty() {
        return errors;
    }
    let prefix = rest.join(".");
    FieldErrors(
        errors
            .0
            .into_iter()
            .map(|(k, m)| {
                let k = if k == prefix {
                    "body".to_string()
                } else if let Some(s) = k.strip_prefix(&format!("{prefix}.")) {
                    s.to_string()
                } else if let Some(s) = k.strip_prefix(&prefix).filter(|s| s.starts_with('[')) {
                    s.to_string()
                } else {
                    k
                };
                (k, m)
            })
            .collect(),
    )
}

/// Mask a secret-bearing root for non-admins: every non-empty string value
/// (except the non-secret `chat_id`) reads as [`MASK`].
pub fn mask(root: &str, doc: &mut Value) {
    if SECRET_ROOTS.contains(&root) {
        mask_strings(doc, None);
    }
}

fn mask_strings(v: &mut Value, key: Option<&str>) {
    match v {
        Value::String(s) if !s.is_empty() && key != Some("chat_id") => *s = MASK.to_string(),
        Value::Object(m) => m.iter_mut().for_each(|(k, v)| mask_strings(v, Some(k))),
        Value::Array(a) => a.iter_mut().for_each(|v| mask_strings(v, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(raw: &str) -> Vec<String> {
        parse_path(raw).unwrap().unwrap().segments
    }

    #[test]
    fn paths() {
        assert_eq!(p("settings/theme"), ["theme"]);
        assert_eq!(
            p("/schedule/templates/t-1/"),
            ["schedule", "templates", "t-1"]
        );
        assert!(parse_path("").unwrap().is_none());
        assert!(parse_path("settings").unwrap().is_none());
        for bad in [
            "theme//x",
            "theme/../x",
            "theme/a.b",
            "theme/$",
            "nope",
            "theme/a b",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert!(parse_path(&format!("theme/{}", "x".repeat(600))).is_err());
        assert!(parse_path(&format!("theme/{}", "x".repeat(129))).is_err());
    }

    #[test]
    fn merge_rules() {
        let mut d = json!({"a": 1, "b": {"c": 2}});
        apply(&mut d, &[], json!({"a": null, "b": {"d": 3}, "e": 4}));
        assert_eq!(d, json!({"b": {"d": 3}, "e": 4}));
        apply(&mut d, &["b".into(), "x".into()], json!(5));
        assert_eq!(d, json!({"b": {"d": 3, "x": 5}, "e": 4}));
        apply(&mut d, &["e".into()], Value::Null);
        assert_eq!(d, json!({"b": {"d": 3, "x": 5}}));
        apply(&mut d, &["b".into()], json!([1]));
        assert_eq!(d, json!({"b": [1]}));
    }

    #[test]
    fn masking() {
        let mut d = json!({"ipqs": {"api_key": "k", "enabled": true}, "telegram": {"bot_token": "t", "chat_id": "c"}, "x": ["s", ""]});
        mask("api_keys", &mut d);
        assert_eq!(
            d,
            json!({"ipqs": {"api_key": MASK, "enabled": true}, "telegram": {"bot_token": MASK, "chat_id": "c"}, "x": [MASK, ""]})
        );
    }
}
