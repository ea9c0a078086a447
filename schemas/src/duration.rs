//! Chaos Mesh durations: Go-style `time.Duration` strings as the CRDs constrain them.

use std::time::Duration;

/// Parses a Chaos Mesh duration (`30s`, `1.5m`, `100ms`, `1h30m`).
///
/// Chaos Mesh's CRDs constrain `duration` with the pattern
/// `^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$`-style units, and Go's `time.ParseDuration` also accepts
/// compound values such as `1h30m`; both are accepted here. The error says what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(
            "must be a duration such as 30s, 500ms, 1.5m or 1h30m; got an empty string".into(),
        );
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || {
        format!(
            "must be a duration such as 30s, 500ms, 1.5m or 1h30m (units ns, us, ms, s, m, h); got {text:?}"
        )
    };
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_nanos: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac_start {
                return Err(bad());
            }
        }
        let number: f64 = s[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() && bytes[i] != b'.' {
            i += 1;
        }
        let scale = match &s[unit_start..i] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total_nanos += number * scale;
    }
    // Go's Duration is an int64 of nanoseconds: about 292 years.
    if !total_nanos.is_finite() || total_nanos > i64::MAX as f64 {
        return Err(format!(
            "duration {text:?} is too long (the maximum is about 292 years)"
        ));
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

/// Formats a duration the way Chaos Mesh users write them (`1h30m`, `45s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    let h = secs / 3600;
    secs %= 3600;
    let m = secs / 60;
    secs %= 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "10", "10x", "1.s", "-5s", "5 s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
