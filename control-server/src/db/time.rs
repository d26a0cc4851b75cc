//! Time and id helpers of the storage format.

/// Current time as Unix epoch milliseconds (the storage format).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Render stored epoch milliseconds as RFC 3339 for the API.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parse an RFC 3339 timestamp or epoch milliseconds (list filters).
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// A new time-ordered id (UUIDv7, text).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
