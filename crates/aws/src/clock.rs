//! The one clock services read, and the time formats AWS APIs write.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now. What Logs, metering and the queues store.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// ISO 8601 with milliseconds and an explicit offset, as Lambda writes `LastModified`:
/// `2024-01-02T03:04:05.678+0000`.
pub fn lambda_timestamp(ms: i64) -> String {
    let t = from_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// RFC 3339 in UTC (`2024-01-02T03:04:05.678Z`): rest-xml and query protocols' timestamps.
pub fn iso8601(ms: i64) -> String {
    from_ms(ms)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Seconds since the epoch with a fraction: the json protocols' timestamp format.
pub fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let ms = 1_704_164_645_678; // 2024-01-02T03:04:05.678Z
        assert_eq!(lambda_timestamp(ms), "2024-01-02T03:04:05.678+0000");
        assert_eq!(iso8601(ms), "2024-01-02T03:04:05.678Z");
        assert_eq!(epoch_seconds(ms), 1_704_164_645.678);
        assert!(now_ms() > ms);
    }
}
