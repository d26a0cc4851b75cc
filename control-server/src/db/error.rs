//! Storage errors. They know nothing of HTTP: the HTTP layer maps them once.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A stored value the code does not understand (e.g. an unknown enum
    /// string): the database and the code disagree.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Map a unique-constraint violation to `Conflict(message)`.
    pub fn unique_or(e: sqlx::Error, message: impl Into<String>) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            let msg = db.message().to_ascii_lowercase();
            if db.is_unique_violation() || msg.contains("unique") || msg.contains("duplicate") {
                return StoreError::Conflict(message.into());
            }
        }
        StoreError::Database(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
