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
