//! Go-style duration strings (`"90s"`, `"5m"`, `"1h30m"`, `"250ms"`), as in every
//! Terraform `timeouts` block.

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` pairs, units `ms`, `s`, `m`, `h`,
/// and the bare `"0"`. Fractions are allowed (`"1.5h"`). Negative values are refused.
///
/// ```
/// use immutable_provider::duration::parse;
/// use std::time::Duration;
/// assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse("5 minutes").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("an empty string is not a duration".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total = 0f64;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "{text:?} is not a duration: expected a number at {:?}",
                &s[start..]
            ));
        }
        let number: f64 = s[start..i]
            .parse()
            .map_err(|_| format!("{text:?} is not a duration: bad number {:?}", &s[start..i]))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let seconds_per_unit = match &s[unit_start..i] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "{text:?} is not a duration: missing unit (ms, s, m or h) after {number}"
                ))
            }
            other => {
                return Err(format!(
                    "{text:?} is not a duration: unknown unit {other:?}; use ms, s, m or h"
                ))
            }
        };
        total += number * seconds_per_unit;
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way Go prints it (`10m0s`, `1h30m0s`, `2.5s`), for messages.
pub fn format(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".into();
    }
    let hours = total_ms / 3_600_000;
    let minutes = (total_ms / 60_000) % 60;
    let ms = total_ms % 60_000;
    let seconds = if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.3}", ms as f64 / 1000.0);
        format!("{}s", s.trim_end_matches('0'))
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_terraform_users_write() {
        for (text, secs) in [
            ("0", 0.0),
            ("0s", 0.0),
            ("90s", 90.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("2m30s", 150.0),
            ("100ms", 0.1),
        ] {
            assert_eq!(
                parse(text).unwrap(),
                Duration::from_secs_f64(secs),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for text in ["", "5", "5 m", "-5s", "5d", "m5", "1h-3m"] {
            assert!(parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(600)), "10m0s");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
