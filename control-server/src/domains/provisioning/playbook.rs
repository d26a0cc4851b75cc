//! Playbook validation (inventory §2.15): YAML that parses to a mapping
//! with `name` and at least one role; unknown roles are warnings.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Largest playbook accepted, in bytes.
pub const MAX_PLAYBOOK_BYTES: usize = 65_536;

/// Roles the Winsible runner ships; others only warn.
pub const KNOWN_ROLES: &[&str] = &[
    "base-system",
    "privacy-debloat",
    "network-config",
    "common-apps",
    "personalization",
    "nvidia-driver",
    "syncthing",
    "proxifier",
    "post-reboot",
];

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct PlaybookIssue {
    /// Where in the document (`roles[1].role`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct PlaybookCheck {
    pub valid: bool,
    pub errors: Vec<PlaybookIssue>,
    pub warnings: Vec<PlaybookIssue>,
}

fn issue(path: Option<&str>, message: impl Into<String>) -> PlaybookIssue {
    PlaybookIssue {
        path: path.map(str::to_string),
        message: message.into(),
    }
}

/// Validate a playbook's text.
pub fn check(content: &str) -> PlaybookCheck {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if content.trim().is_empty() {
        errors.push(issue(None, "content is empty"));
    } else if content.len() > MAX_PLAYBOOK_BYTES {
        errors.push(issue(
            None,
            format!("content is larger than {MAX_PLAYBOOK_BYTES} bytes"),
        ));
    } else {
        match serde_norway::from_str::<Value>(content) {
            Err(e) => errors.push(issue(None, format!("YAML parse error: {e}"))),
            Ok(Value::Object(doc)) => {
                match doc.get("name") {
                    Some(Value::String(s)) if !s.trim().is_empty() => {}
                    _ => errors.push(issue(Some("name"), "a non-empty string is required")),
                }
                match doc.get("roles") {
                    Some(Value::Array(roles)) if !roles.is_empty() => {
                        for (i, r) in roles.iter().enumerate() {
                            let path = format!("roles[{i}].role");
                            match r.get("role") {
                                Some(Value::String(name)) if !name.trim().is_empty() => {
                                    if !KNOWN_ROLES.contains(&name.as_str()) {
                                        warnings.push(issue(
                                            Some(&path),
                                            format!("unknown role \"{name}\": make sure the runner has it"),
                                        ));
                                    }
                                }
                                _ => errors
                                    .push(issue(Some(&path), "a non-empty string is required")),
                            }
                        }
                    }
                    _ => errors.push(issue(
                        Some("roles"),
                        "a list of at least one role is required",
                    )),
                }
                for key in ["vars"] {
                    if doc.get(key).is_some_and(|v| !v.is_object() && !v.is_null()) {
                        errors.push(issue(Some(key), "must be a mapping"));
                    }
                }
                for key in ["pre_checks", "notifications"] {
                    if doc.get(key).is_some_and(|v| !v.is_array() && !v.is_null()) {
                        errors.push(issue(Some(key), "must be a list"));
                    }
                }
            }
            Ok(_) => errors.push(issue(
                None,
                "the playbook must be a YAML mapping with name and roles",
            )),
        }
    }
    PlaybookCheck {
        valid: errors.is_empty(),
        errors,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playbook_rules() {
        let ok = check("name: lab\nroles:\n  - role: base-system\n  - role: custom-thing\n");
        assert!(ok.valid, "{ok:?}");
        assert_eq!(ok.warnings.len(), 1);
        assert_eq!(ok.warnings[0].path.as_deref(), Some("roles[1].role"));
        for (bad, want) in [
            ("", "empty"),
            ("name: [unclosed", "YAML parse error"),
            ("- a\n- b\n", "mapping"),
            ("roles:\n  - role: x\n", "name"),
            ("name: x\n", "roles"),
            ("name: x\nroles: []\n", "roles"),
            ("name: x\nroles:\n  - when: y\n", "roles[0].role"),
            ("name: x\nroles:\n  - role: a\nvars: 3\n", "vars"),
        ] {
            let c = check(bad);
            assert!(!c.valid, "{bad:?}");
            let text = format!("{:?}", c.errors);
            assert!(text.contains(want), "{bad:?}: {text}");
        }
        let big = format!(
            "name: x\nroles:\n  - role: a\n#{}\n",
            "x".repeat(MAX_PLAYBOOK_BYTES)
        );
        assert!(!check(&big).valid);
    }
}
