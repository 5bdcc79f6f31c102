//! The live product filter of the `stream` part: which products go on to
//! `analytic_products_filtered`, decided by the product name.

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};

use super::Product;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;
/// Largest compiled regex program, in bytes (`RegexBuilder::size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Largest lazy-DFA cache per regex, in bytes (`RegexBuilder::dfa_size_limit`).
pub const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;

/// How a pattern is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// The name contains the pattern, ignoring case.
    Substring,
    /// The regex (syntax of the `regex` crate, linear time) matches somewhere
    /// in the name.
    Regex,
}

/// A filter as set through the API: the value stored in the compacted
/// control topic, so every replica and every restart applies the same one.
/// An empty pattern (of either kind) lets every product pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    /// How `pattern` is read.
    pub kind: FilterKind,
    /// The pattern; empty means "all pass".
    pub pattern: String,
    /// For [`FilterKind::Regex`]: match ignoring case (an inline `(?i)` works
    /// too). Substrings always ignore case. Absent on the wire = `false`.
    #[serde(default)]
    pub case_insensitive: bool,
    /// When it was set, ms since the Unix epoch.
    pub set_at: i64,
}

impl FilterSpec {
    /// The empty filter (all pass), the state before anything is set.
    pub fn empty(set_at: i64) -> Self {
        Self::substring("", set_at)
    }

    /// A case-insensitive substring filter.
    pub fn substring(pattern: impl Into<String>, set_at: i64) -> Self {
        Self {
            kind: FilterKind::Substring,
            pattern: pattern.into(),
            case_insensitive: true,
            set_at,
        }
    }

    /// A regex filter.
    pub fn regex(pattern: impl Into<String>, case_insensitive: bool, set_at: i64) -> Self {
        Self {
            kind: FilterKind::Regex,
            pattern: pattern.into(),
            case_insensitive,
            set_at,
        }
    }

    /// True when every product passes.
    pub fn is_empty(&self) -> bool {
        self.pattern.is_empty()
    }
}

/// Why a pattern was rejected. The caller keeps its old filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("pattern is {len} bytes long, at most {max} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid regex syntax; the message points at the problem.
    #[error("invalid regex: {0}")]
    Syntax(String),
    /// Valid, but compiles to more than [`REGEX_SIZE_LIMIT`] bytes.
    #[error(
        "regex too large: it compiles to more than {limit} bytes; use fewer or smaller repetitions"
    )]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

/// A compiled filter, matched against product names.
#[derive(Debug, Clone, Default)]
pub enum Filter {
    /// Every product passes.
    #[default]
    All,
    /// The lowercased needle; the name, lowercased, must contain it.
    Substring {
        /// Lowercased pattern.
        needle: String,
    },
    /// The name must match the regex somewhere.
    Regex(regex::Regex),
}

impl Filter {
    /// Compiles a spec.
    ///
    /// # Errors
    /// [`FilterError`] naming the problem: too long, bad regex syntax, or a
    /// regex over the size limit.
    pub fn compile(spec: &FilterSpec) -> Result<Self, FilterError> {
        let len = spec.pattern.len();
        if len > MAX_PATTERN_LEN {
            return Err(FilterError::TooLong {
                len,
                max: MAX_PATTERN_LEN,
            });
        }
        if spec.is_empty() {
            return Ok(Self::All);
        }
        match spec.kind {
            FilterKind::Substring => Ok(Self::Substring {
                needle: spec.pattern.to_lowercase(),
            }),
            FilterKind::Regex => RegexBuilder::new(&spec.pattern)
                .case_insensitive(spec.case_insensitive)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
                .build()
                .map(Self::Regex)
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(_) => FilterError::TooLarge {
                        limit: REGEX_SIZE_LIMIT,
                    },
                    regex::Error::Syntax(msg) => FilterError::Syntax(msg),
                    other => FilterError::Syntax(other.to_string()),
                }),
        }
    }

    /// Does a product with this name pass?
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Substring { needle } => contains_ignore_case(name, needle),
            Self::Regex(re) => re.is_match(name),
        }
    }

    /// Does this product pass? (Looks at its name only.)
    pub fn passes(&self, product: &Product) -> bool {
        self.matches(&product.name)
    }
}

/// `haystack` contains the already lowercased `needle`, ignoring case.
/// ASCII text is compared in place; anything else is lowercased first.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let n = needle.as_bytes();
        haystack
            .as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n))
    } else {
        haystack.to_lowercase().contains(needle)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn compile(spec: FilterSpec) -> Filter {
        Filter::compile(&spec).unwrap()
    }

    // Proves a substring filter matches anywhere in the name, ignoring case (ASCII and not).
    #[test]
    fn substring_ignores_case() {
        let f = compile(FilterSpec::substring("iPHONE", 0));
        assert!(f.matches("Apple iPhone 15 Pro"));
        assert!(f.matches("IPHONE"));
        assert!(!f.matches("Apple iPad Air"));
        let f = compile(FilterSpec::substring("ТЕЛЕФОН", 0));
        assert!(f.matches("Умный телефон X"));
        assert!(!f.matches("Apple"));
    }

    // Proves regex filters match by the regex, case-sensitive unless asked.
    #[test]
    fn regex_matches() {
        let f = compile(FilterSpec::regex(
            r"^Samsung Galaxy (S|Watch) \d+",
            false,
            0,
        ));
        assert!(f.matches("Samsung Galaxy Watch 6"));
        assert!(!f.matches("Samsung Galaxy S24 Ultra"));
        assert!(f.matches("Samsung Galaxy S 24"));
        assert!(!f.matches("samsung galaxy watch 6"));
        let f = compile(FilterSpec::regex("galaxy watch", true, 0));
        assert!(f.matches("Samsung Galaxy Watch 6"));
    }

    // Proves a bad regex is rejected with text that points at the problem.
    #[test]
    fn bad_regex_error_text() {
        let err = Filter::compile(&FilterSpec::regex("(iPhone", false, 0)).unwrap_err();
        assert!(matches!(err, FilterError::Syntax(_)));
        let text = err.to_string();
        assert!(text.starts_with("invalid regex:"), "{text}");
        assert!(text.contains("unclosed group"), "{text}");
    }

    // Proves a regex whose compiled form exceeds the size limit is rejected, as is an over-long pattern.
    #[test]
    fn huge_regex_rejected() {
        let err = Filter::compile(&FilterSpec::regex(r"\w{1000}", false, 0)).unwrap_err();
        assert_eq!(
            err,
            FilterError::TooLarge {
                limit: REGEX_SIZE_LIMIT
            }
        );
        assert!(err.to_string().contains("too large"));
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        let err = Filter::compile(&FilterSpec::substring(long, 0)).unwrap_err();
        assert!(matches!(err, FilterError::TooLong { .. }));
    }

    // Proves the empty filter (either kind, and the default) lets every name pass.
    #[test]
    fn empty_passes_all() {
        for f in [
            Filter::default(),
            compile(FilterSpec::empty(0)),
            compile(FilterSpec::regex("", false, 0)),
        ] {
            assert!(matches!(f, Filter::All));
            assert!(f.matches("anything") && f.matches(""));
        }
    }

    // Proves the control-topic value has a stable JSON shape and `case_insensitive` defaults to false.
    #[test]
    fn spec_wire_shape() {
        let spec: FilterSpec =
            serde_json::from_str(r#"{"kind":"regex","pattern":"^A","set_at":17}"#).unwrap();
        assert_eq!(spec, FilterSpec::regex("^A", false, 17));
        let json = serde_json::to_string(&FilterSpec::substring("x", 1)).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"substring","pattern":"x","case_insensitive":true,"set_at":1}"#
        );
    }
}
