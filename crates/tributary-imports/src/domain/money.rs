//! Money strings of the real data: `$39.8M`, `€500k`, `£1.5M`, `C$2M`,
//! `kr10M`, `USD 3M`, `$12,000`, `$0`.

use super::{Error, Result};
use serde::{Deserialize, Serialize};

/// An amount in integer minor units of an ISO 4217 currency, never negative.
/// Integers keep sums and comparisons exact; `$39.8M` is
/// `Money { minor: 3_980_000_000, currency: "USD" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units (cents; yen and won have none).
    pub minor: i64,
    /// ISO 4217 code, e.g. `USD`, `EUR`, `GBP`, `JPY`.
    pub currency: String,
}

/// Symbols and prefixes mapped to ISO codes, longest first where they share
/// a start. `kr` is taken as Swedish kronor, CrunchBase's most common use.
const SYMBOLS: &[(&str, &str)] = &[
    ("US$", "USD"),
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("AU$", "AUD"),
    ("A$", "AUD"),
    ("NZ$", "NZD"),
    ("HK$", "HKD"),
    ("S$", "SGD"),
    ("R$", "BRL"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
    ("₩", "KRW"),
    ("kr", "SEK"),
];

/// Digits after the decimal point of a currency's minor unit.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" => 0,
        _ => 2,
    }
}

impl Money {
    /// Parses a money string: a currency symbol or ISO code, digits with
    /// optional `,` thousands separators and decimals, then an optional
    /// `k`, `M` or `B` multiplier. Sub-minor-unit fractions are rounded
    /// half up.
    pub fn parse(text: &str) -> Result<Money> {
        let text = text.trim();
        let (currency, rest) = match SYMBOLS.iter().find(|(s, _)| text.starts_with(s)) {
            Some((symbol, code)) => (code.to_string(), &text[symbol.len()..]),
            None => {
                let code: String = text.chars().take_while(char::is_ascii_uppercase).collect();
                if code.len() != 3 {
                    return Err(Error::Money("no currency symbol or ISO code"));
                }
                (code, &text[3..])
            }
        };
        let rest = rest.trim_start();
        let mut mantissa: u128 = 0;
        let (mut digits, mut frac_digits, mut dot, mut used) = (0u32, 0u32, false, 0);
        for (i, c) in rest.char_indices() {
            match c {
                '0'..='9' => {
                    digits += 1;
                    if digits > 30 {
                        return Err(Error::Money("amount too large"));
                    }
                    mantissa = mantissa * 10 + u128::from(c as u8 - b'0');
                    frac_digits += u32::from(dot);
                }
                ',' if digits > 0 && !dot => {}
                '.' if !dot => dot = true,
                _ => break,
            }
            used = i + c.len_utf8();
        }
        if digits == 0 {
            return Err(Error::Money("no digits"));
        }
        if rest[..used].ends_with([',', '.']) {
            return Err(Error::Money("separator without digits after it"));
        }
        let scale: i64 = match rest[used..].trim() {
            "" => 0,
            "k" | "K" => 3,
            "m" | "M" => 6,
            "b" | "B" => 9,
            _ => return Err(Error::Money("unexpected text after the amount")),
        };
        let scale = scale + i64::from(minor_digits(&currency)) - i64::from(frac_digits);
        let minor = if scale >= 0 {
            10u128
                .checked_pow(scale as u32)
                .and_then(|p| mantissa.checked_mul(p))
        } else {
            let p = 10u128.pow((-scale) as u32);
            Some((mantissa + p / 2) / p)
        };
        let minor = minor
            .and_then(|m| i64::try_from(m).ok())
            .ok_or(Error::Money("amount too large"))?;
        Ok(Money { minor, currency })
    }

    /// The amount in major units (dollars, euros), for display.
    pub fn major(&self) -> f64 {
        self.minor as f64 / 10f64.powi(minor_digits(&self.currency) as i32)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Proves the money strings of the real data parse to exact minor units.
    #[test]
    fn money_table() {
        let table: &[(&str, i64, &str)] = &[
            ("$39.8M", 3_980_000_000, "USD"),
            ("€500k", 50_000_000, "EUR"),
            ("£1.5M", 150_000_000, "GBP"),
            ("$1.2B", 120_000_000_000, "USD"),
            ("$0", 0, "USD"),
            ("$12,000", 1_200_000, "USD"),
            ("¥100M", 100_000_000, "JPY"),
            ("C$2.25M", 225_000_000, "CAD"),
            ("kr10M", 1_000_000_000, "SEK"),
            ("USD 3M", 300_000_000, "USD"),
            ("CHF750k", 75_000_000, "CHF"),
            (" $1.005 ", 101, "USD"),
            ("$2.5m", 250_000_000, "USD"),
        ];
        for (text, minor, currency) in table {
            let m = Money::parse(text);
            assert_eq!(m.as_ref().map(|m| m.minor), Ok(*minor), "{text}");
            assert_eq!(m.map(|m| m.currency), Ok(currency.to_string()), "{text}");
        }
    }

    // Proves malformed money strings are rejected with a reason.
    #[test]
    fn money_errors() {
        for text in [
            "$abcM",
            "",
            "$",
            "12M",
            "$1.2.3M",
            "$5Q",
            "$,5",
            "$5.",
            "-$5M",
            "$-5M",
            "Usd 5",
            "$1,000,000,000,000,000,000,000,000,000,000,000",
            "$99999999999999999B",
        ] {
            assert!(Money::parse(text).is_err(), "{text} should not parse");
        }
    }

    // Proves major() undoes the minor-unit scaling per currency.
    #[test]
    fn major_units() {
        let usd = Money::parse("$39.8M").unwrap();
        assert!((usd.major() - 39_800_000.0).abs() < 1e-6);
        let jpy = Money::parse("¥5k").unwrap();
        assert!((jpy.major() - 5_000.0).abs() < 1e-9);
    }
}
