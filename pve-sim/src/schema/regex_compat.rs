//! Translation of PVE's Perl regular expressions to the `regex` crate, with a
//! process-wide cache of compiled patterns.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;

/// Rewrites Perl-only syntax: `(?^:` / `(?^i:` groups, `{,n}` quantifiers and
/// `\0` escapes.
pub fn perl_to_rust(pattern: &str) -> String {
    let mut out = pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:");
    out = out.replace("{,", "{0,");
    out = out.replace("\\0", "\\x00");
    out
}

static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();

/// Compiles `pattern` anchored at both ends, like PVE's `m/^$pattern$/`.
/// Returns `None` when the pattern cannot be expressed with `regex`.
pub fn anchored(pattern: &str) -> Option<Regex> {
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .entry(pattern.to_string())
        .or_insert_with(|| {
            // Bounded repetitions of Unicode classes (`[\w\s]{0,256}`) need
            // more than the default compiled-size limit.
            let re = regex::RegexBuilder::new(&format!("^(?:{})$", perl_to_rust(pattern)))
                .size_limit(64 << 20)
                .build();
            if let Err(e) = &re {
                tracing::warn!(pattern, error = %e, "schema pattern not supported, not enforced");
            }
            re.ok()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_groups_are_translated() {
        let re = anchored(r"(?^i:[a-z0-9_][a-z0-9_\-\+\.]*)(?:;(?^i:[a-z0-9_][a-z0-9_\-\+\.]*))*")
            .expect("compiles");
        assert!(re.is_match("Tag1;tag-2"));
        assert!(!re.is_match(";bad"));
        let re = anchored(r"[A-Za-z0-9\-_\s]{,16}").expect("compiles");
        assert!(re.is_match("abc"));
        assert!(!re.is_match("abcdefghijklmnopq"));
    }
}
