//! Dates of the real data: partial founding dates and the three shapes of
//! timestamps (`{"$date": ms}`, `{"$date": "ISO"}`,
//! `{"$date": {"$numberLong": "ms"}}`) plus `Fri May 25 06:51:27 UTC 2007`.

use super::{Error, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A calendar date known to the year, the month or the day. Built only
/// by validation, so the month is in 1..=12 and the day exists in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartialDate {
    /// Year, e.g. 2005.
    pub year: i32,
    /// Month 1..=12, if known.
    pub month: Option<u8>,
    /// Day of the month, if known (only with a month).
    pub day: Option<u8>,
}

/// Days in `month` (1..=12) of `year`; 0 for a month out of range.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses a timestamp value: a `$date` object (milliseconds since the
/// epoch as a number or `$numberLong` string, or an ISO 8601 string) or a
/// date string (see [`parse_date_string`]).
pub fn parse_timestamp(value: &Value) -> Result<DateTime<Utc>> {
    match value {
        Value::String(s) => parse_date_string(s),
        Value::Object(map) => match map.get("$date") {
            Some(Value::Number(n)) => {
                let ms = match (n.as_i64(), n.as_f64()) {
                    (Some(ms), _) => ms,
                    (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e17 => f as i64,
                    _ => return Err(Error::Date("$date milliseconds out of range")),
                };
                from_millis(ms)
            }
            Some(Value::String(s)) => parse_date_string(s),
            Some(Value::Object(inner)) => match inner.get("$numberLong") {
                Some(Value::String(s)) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| Error::Date("$numberLong is not an integer"))
                    .and_then(from_millis),
                _ => Err(Error::Date("$date object without $numberLong")),
            },
            _ => Err(Error::Date("object without $date")),
        },
        _ => Err(Error::Date("expected a string or a $date object")),
    }
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or(Error::Date("milliseconds out of range"))
}

/// Parses RFC 3339 (`2007-05-25T06:51:27Z`, offsets converted to UTC) or
/// the Java `Date::toString` form used by the data set
/// (`Fri May 25 06:51:27 UTC 2007`, zone `UTC` or `GMT`; the weekday must
/// match the date).
pub fn parse_date_string(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let normalized = text.replacen(" GMT ", " UTC ", 1);
    NaiveDateTime::parse_from_str(&normalized, "%a %b %d %H:%M:%S UTC %Y")
        .map(|t| t.and_utc())
        .map_err(|_| Error::Date("expected RFC 3339 or 'Fri May 25 06:51:27 UTC 2007'"))
}

/// Formats a timestamp the way the data set writes `updated_at`.
pub fn format_java(t: &DateTime<Utc>) -> String {
    t.format("%a %b %d %H:%M:%S UTC %Y").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    // Proves every timestamp shape of the data set parses to the same instant.
    #[test]
    fn timestamp_table() {
        let want = DateTime::parse_from_rfc3339("2007-05-25T06:51:27Z")
            .unwrap()
            .with_timezone(&Utc);
        for v in [
            json!({"$date": 1180075887000i64}),
            json!({"$date": 1180075887000.0}),
            json!({"$date": "2007-05-25T06:51:27Z"}),
            json!({"$date": "2007-05-25T08:51:27.000+02:00"}),
            json!({"$date": {"$numberLong": "1180075887000"}}),
            json!("Fri May 25 06:51:27 UTC 2007"),
            json!("Fri May 25 06:51:27 GMT 2007"),
            json!("2007-05-25T06:51:27Z"),
        ] {
            assert_eq!(parse_timestamp(&v), Ok(want), "{v}");
        }
        assert_eq!(
            format_java(&want),
            "Fri May 25 06:51:27 UTC 2007",
            "round trip"
        );
    }

    // Proves malformed timestamps are errors, not silently wrong instants.
    #[test]
    fn timestamp_errors() {
        for v in [
            json!("Mon May 25 06:51:27 UTC 2007"), // wrong weekday
            json!("Fri May 32 06:51:27 UTC 2007"),
            json!("yesterday"),
            json!(""),
            json!({"$date": "not a date"}),
            json!({"$date": {"$numberLong": "12x"}}),
            json!({"$date": 1.5}),
            json!({"$date": null}),
            json!({"date": 1}),
            json!(1180075887000i64),
            json!(true),
        ] {
            assert!(parse_timestamp(&v).is_err(), "{v} should not parse");
        }
    }

    // Proves month lengths follow the Gregorian calendar, leap years included.
    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(2004, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2005, 4), 30);
        assert_eq!(days_in_month(2005, 12), 31);
        assert_eq!(days_in_month(2005, 13), 0);
    }
}
