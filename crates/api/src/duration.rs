//! Durations as users write them in manifests: `500ms`, `10s`, `1m30s`, `2h`.
//!
//! The grammar is Gateway API's (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): whole numbers only, so a
//! value means the same thing to the API server's schema check, to `portcullis check` and to the
//! data plane.

use std::time::Duration;

/// The pattern every duration field carries in the CRD schema.
pub const DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";

/// Parses a manifest duration such as `1m30s` or `250ms`.
///
/// Returns `None` for anything the CRD pattern would refuse, so callers can name the field in
/// their error. `0s` is a valid duration; what zero means is up to the field (for timeouts it
/// disables the timeout, as in Gateway API).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut parts = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 5 {
            return None;
        }
        let value: u64 = text[start..i].parse().ok()?;
        let unit = match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'm'), Some(b's')) => {
                i += 2;
                Duration::from_millis(value)
            }
            (Some(b'h'), _) => {
                i += 1;
                Duration::from_secs(value * 3600)
            }
            (Some(b'm'), _) => {
                i += 1;
                Duration::from_secs(value * 60)
            }
            (Some(b's'), _) => {
                i += 1;
                Duration::from_secs(value)
            }
            _ => return None,
        };
        total += unit;
        parts += 1;
        if parts > 4 {
            return None;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("1h1m1s1ms"),
            Some(Duration::from_millis(3_661_001))
        );
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        let pattern = regex::Regex::new(DURATION_PATTERN).expect("pattern compiles");
        for bad in [
            "",
            "0",
            "1.5s",
            "s",
            "10",
            "1d",
            "123456s",
            "1s1s1s1s1s",
            "-1s",
            " 1s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should be refused");
            assert!(!pattern.is_match(bad), "{bad:?} should fail the pattern");
        }
    }
}
