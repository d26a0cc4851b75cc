//! Field-level validation errors, shared by every domain. Plain data: the
//! HTTP layer turns them into a 400 `VALIDATION_ERROR` with `details.fields`.

/// Field errors, in the order found: `(field path, message)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
    }
    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.add(field, message);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// One error for one field.
    pub fn one(field: &str, message: impl Into<String>) -> FieldErrors {
        let mut f = FieldErrors::default();
        f.add(field, message);
        f
    }
    /// `Ok(())` when nothing was added, else these errors.
    pub fn into_fields(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Is `c` a character display strings must not carry: C0/C1 controls
/// (NUL included), DEL, or a bidirectional override/isolate that can make
/// text render differently from what is stored (U+202A–U+202E,
/// U+2066–U+2069)?
pub fn is_forbidden_in_display(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl FieldErrors {
    /// A one-line display string (name, label, reason): at most `max`
    /// characters, no control characters, no bidi overrides.
    pub fn display_text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if let Some(c) = value.chars().find(|c| is_forbidden_in_display(*c)) {
            self.add(
                field,
                format!(
                    "must not contain control characters or bidirectional overrides (found U+{:04X})",
                    c as u32
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_text_refuses_controls_and_bidi() {
        for bad in [
            "a\u{0}b",
            "a\nb",
            "tab\there",
            "\u{1b}[31m",
            "x\u{85}",
            "\u{202E}evil",
            "a\u{2066}b",
            "del\u{7f}",
        ] {
            let mut f = FieldErrors::default();
            f.display_text("name", bad, 100);
            assert_eq!(f.0.len(), 1, "{bad:?} accepted");
            assert!(f.0[0].1.contains("U+"), "{:?}", f.0);
        }
        for good in ["Lab 1", "Büro — Прага", "日本", "emoji 🚀", ""] {
            let mut f = FieldErrors::default();
            f.display_text("name", good, 100);
            assert!(f.is_empty(), "{good:?} refused: {:?}", f.0);
        }
        let mut f = FieldErrors::default();
        f.display_text("name", &"x".repeat(11), 10);
        assert_eq!(f.0[0].1, "must be at most 10 characters");
    }
}
