//! One JSON line per request on stdout.

use std::{io::Write, time::SystemTime};

use serde::Serialize;

/// What one access-log line says about a request.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// When the response ended, RFC 3339 UTC.
    pub ts: String,
    /// The client (trusted-proxy aware).
    pub client: String,
    /// The method.
    pub method: &'a str,
    /// The host, without port.
    pub host: &'a str,
    /// The normalized path (without query).
    pub path: &'a str,
    /// `namespace/name` of the Route, when one matched.
    pub route: Option<&'a str>,
    /// The backend, when one was chosen.
    pub backend: Option<&'a str>,
    /// The endpoint of the last attempt.
    pub endpoint: Option<&'a str>,
    /// The status sent to the client.
    pub status: u16,
    /// Milliseconds until the end of the response body.
    pub duration_ms: f64,
    /// Response body bytes sent.
    pub bytes: u64,
}

/// Writes the record as one line. Errors (a closed stdout) are ignored: logging never fails a
/// request.
pub fn write(record: &AccessRecord<'_>) {
    let Ok(mut line) = serde_json::to_vec(record) else {
        return;
    };
    line.push(b'\n');
    let _ = std::io::stdout().lock().write_all(&line);
}

/// `SystemTime` as RFC 3339 with milliseconds, UTC (`2026-11-26T21:40:46.123Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_729_246_123);
        assert_eq!(rfc3339(t), "2026-11-26T21:40:46.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
