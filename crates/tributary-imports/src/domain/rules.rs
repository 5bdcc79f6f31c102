//! Validation rules: their stable names, the [`Violation`] report and the
//! format checks shared by several fields.

use serde::Serialize;
use serde_json::Value;

/// One broken rule in one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// RFC 6901 pointer to the field, e.g. `/offices/2/latitude`
    /// (empty for the whole document).
    pub pointer: String,
    /// Stable rule name from [`RULES`], e.g. `office.latitude_range`.
    pub rule: &'static str,
    /// The offending value (strings as is, anything else as JSON),
    /// at most 100 characters.
    pub value: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Longest [`Violation::value`], in characters.
pub const MAX_VALUE_CHARS: usize = 100;

impl Violation {
    /// A violation of `rule` at `pointer` by `value`.
    pub fn new(
        pointer: &str,
        rule: &'static str,
        value: &Value,
        message: impl Into<String>,
    ) -> Self {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value = if text.chars().count() > MAX_VALUE_CHARS {
            let mut cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
            cut.push('…');
            cut
        } else {
            text
        };
        Violation {
            pointer: pointer.to_string(),
            rule,
            value,
            message: message.into(),
        }
    }
}

/// Every rule name with a one-line description, in report order.
#[rustfmt::skip]
pub const RULES: &[(&str, &str)] = &[
    ("name.required", "`name` is present and not blank"),
    ("permalink.required", "`permalink` is present and not blank"),
    ("permalink.format", "`permalink` is ASCII letters, digits, '-', '_' or '.' only"),
    ("founded.year_plausible", "`founded_year` is in 1800..=current year + 1"),
    ("founded.month_range", "`founded_month` is in 1..=12"),
    ("founded.day_valid", "`founded_day` exists in its month (and needs a month)"),
    ("deadpooled.year_plausible", "`deadpooled_year` is in 1800..=current year + 1 (0, 1: unknown)"),
    ("office.latitude_range", "`offices[i].latitude` is in -90..=90"),
    ("office.longitude_range", "`offices[i].longitude` is in -180..=180"),
    ("email.format", "`email_address` looks like local@domain.tld"),
    ("url.format", "`homepage_url`, `crunchbase_url`, `blog_url`, `blog_feed_url`: http(s) URLs"),
    ("money.parse", "`total_money_raised` parses as a money string like \"$39.8M\""),
    ("employees.non_negative", "`number_of_employees` is not negative"),
    ("created_at.parse", "`created_at` is a $date object or a date string that parses"),
    ("updated_at.parse", "`updated_at` is a date string (or $date object) that parses"),
    ("type.document", "the record is a JSON object"),
    ("type.name", "`name` is a string"),
    ("type.permalink", "`permalink` is a string"),
    ("type.category_code", "`category_code` is a string"),
    ("type.homepage_url", "`homepage_url` is a string"),
    ("type.crunchbase_url", "`crunchbase_url` is a string"),
    ("type.blog_url", "`blog_url` is a string"),
    ("type.blog_feed_url", "`blog_feed_url` is a string"),
    ("type.twitter_username", "`twitter_username` is a string"),
    ("type.email_address", "`email_address` is a string"),
    ("type.total_money_raised", "`total_money_raised` is a string"),
    ("type.number_of_employees", "`number_of_employees` is an integer"),
    ("type.founded_year", "`founded_year` is an integer"),
    ("type.founded_month", "`founded_month` is an integer"),
    ("type.founded_day", "`founded_day` is an integer"),
    ("type.deadpooled_year", "`deadpooled_year` is an integer"),
    ("type.created_at", "`created_at` is a string or an object"),
    ("type.updated_at", "`updated_at` is a string or an object"),
    ("type.offices", "`offices` is an array"),
    ("type.office", "each element of `offices` is an object"),
    ("type.office.latitude", "`offices[i].latitude` is a number"),
    ("type.office.longitude", "`offices[i].longitude` is a number"),
];

/// A permalink: non-empty ASCII letters, digits, `-`, `_`, `.`.
pub fn is_permalink(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A DNS-like host: dot-separated labels of letters, digits, `-` and `_`,
/// with at least one dot.
fn is_host(h: &str) -> bool {
    h.len() <= 253
        && h.contains('.')
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// An email address: `local@host` with a dotted host, no spaces.
pub fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, host)) => {
            !local.is_empty()
                && local.len() <= 64
                && !local
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '@')
                && is_host(host)
        }
        None => false,
    }
}

/// An `http` or `https` URL with a dotted host (or `localhost`), an
/// optional port, and no whitespace.
pub fn is_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return false;
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return false,
        None => host_port,
    };
    host == "localhost" || is_host(host)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Proves the format checks accept the real data's shapes and reject junk.
    #[test]
    fn format_checks() {
        for ok in [
            "http://wetpaint-inc.com",
            "https://www.digg.com/about?x=1#y",
            "HTTP://a.b:8080/",
            "http://my_site.blogspot.com",
        ] {
            assert!(is_url(ok), "{ok}");
        }
        for bad in [
            "wetpaint-inc.com",
            "ftp://a.b",
            "http://",
            "http://nodot",
            "http://a b.com",
            "http://a.b:x/",
            "http://.com",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
        for ok in ["info@wetpaint.com", "first.last+tag@mail.example.co.uk"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "info at wetpaint.com",
            "@x.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_permalink("abc2") && is_permalink("wetpaint-social_v2.0"));
        assert!(!is_permalink("has space") && !is_permalink("a/b") && !is_permalink(""));
    }

    // Proves rule names are unique and values are cut to 100 characters.
    #[test]
    fn table_and_truncation() {
        let mut names: Vec<_> = RULES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
        let v = Violation::new("/x", "name.required", &Value::String("é".repeat(300)), "m");
        assert_eq!(v.value.chars().count(), MAX_VALUE_CHARS);
        let v = Violation::new("/x", "type.name", &serde_json::json!(12), "m");
        assert_eq!(v.value, "12");
    }
}
