//! The merge rule: how versions of one url combine.
//!
//! A [`Document`] stands for two versions: the *first* `(first_fetch_time,
//! pub_date)` and the *latest* `(fetch_time, text)`; an incoming update with
//! `FirstFetchTime` unknown (0) has both at its own `fetch_time`. The join
//! of two documents takes, independently,
//!
//! - the latest side with the larger key `(fetch_time, text)`: larger
//!   `fetch_time` wins; on equal `fetch_time` the lexicographically larger
//!   `text` (byte order of UTF-8, = Rust `str` order) wins;
//! - the first side with the smaller key `(first_fetch_time, pub_date)`:
//!   smaller first fetch time wins; on a tie the smaller `pub_date` wins.
//!
//! Max and min over total orders, so the join is commutative, associative
//! and idempotent, and the state is a pure function of the *set* of updates
//! seen: `text, fetch_time` = max by `(fetch_time, text)`; `pub_date,
//! first_fetch_time` = min by `(first fetch time, pub_date)`; so
//! `first_fetch_time` = the smallest fetch time seen.
//!
//! Decision on a sent `FirstFetchTime > 0` (smaller than `FetchTime`; larger
//! is rejected by [`parse_update`](super::parse_update)): it is honoured, the
//! update vouching for an earlier version fetched then with its `PubDate`.
//! That is exactly what a merged document says, so our own output (or
//! another replica's state) is a valid input and merges by the same join.
//!
//! # The same rule in SQL
//!
//! Table `documents (url TEXT PRIMARY KEY, pub_date BIGINT, fetch_time
//! BIGINT, text TEXT, first_fetch_time BIGINT)` (SQLite: `INTEGER`), storing
//! [`Document::normalized`] rows (first_fetch_time never 0). Bind the
//! normalized update; in both databases every `SET` expression reads the
//! row as it was before the update, so their order does not matter.
//!
//! PostgreSQL (`COLLATE "C"` makes text comparison byte order, as in Rust):
//!
//! ```sql
//! INSERT INTO documents (url, pub_date, fetch_time, text, first_fetch_time)
//! VALUES ($1, $2, $3, $4, $5)
//! ON CONFLICT (url) DO UPDATE SET
//!   text = CASE
//!     WHEN excluded.fetch_time > documents.fetch_time
//!       OR (excluded.fetch_time = documents.fetch_time
//!           AND excluded.text COLLATE "C" > documents.text COLLATE "C")
//!     THEN excluded.text ELSE documents.text END,
//!   fetch_time = GREATEST(documents.fetch_time, excluded.fetch_time),
//!   pub_date = CASE
//!     WHEN excluded.first_fetch_time < documents.first_fetch_time
//!       OR (excluded.first_fetch_time = documents.first_fetch_time
//!           AND excluded.pub_date < documents.pub_date)
//!     THEN excluded.pub_date ELSE documents.pub_date END,
//!   first_fetch_time = LEAST(documents.first_fetch_time, excluded.first_fetch_time)
//! WHERE excluded.fetch_time > documents.fetch_time
//!    OR (excluded.fetch_time = documents.fetch_time
//!        AND excluded.text COLLATE "C" > documents.text COLLATE "C")
//!    OR excluded.first_fetch_time < documents.first_fetch_time
//!    OR (excluded.first_fetch_time = documents.first_fetch_time
//!        AND excluded.pub_date < documents.pub_date)
//! RETURNING url, pub_date, fetch_time, text, first_fetch_time
//! ```
//!
//! SQLite (3.35+; default `BINARY` collation is already byte order;
//! two-argument `max`/`min` are the scalar functions): the same statement
//! with `?1..?5` for the parameters, no `COLLATE "C"`, and
//! `fetch_time = max(documents.fetch_time, excluded.fetch_time)`,
//! `first_fetch_time = min(documents.first_fetch_time, excluded.first_fetch_time)`.
//!
//! The `WHERE` is "the update wins on either side"; when it is false no row
//! is written or returned, which is exactly [`Outcome::Unchanged`] from
//! [`apply`] (a new url is always inserted and returned). A multi-row
//! `VALUES` batch must hold each url once (PostgreSQL refuses to update a
//! row twice in one statement): pre-merge the batch per url with [`merge`],
//! which gives the same result because the join is associative.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Document, Error};

fn latest_key(d: &Document) -> (u64, &str) {
    (d.fetch_time, &d.text)
}

fn first_key(d: &Document) -> (u64, u64) {
    (d.first_known_fetch_time(), d.pub_date)
}

/// Joins two documents of the same url (see the [module docs](self)); the
/// result is [normalized](Document::normalized).
///
/// Precondition: `a.url == b.url` (callers look the state up by the
/// update's url). Checked by `debug_assert!`; in release builds a mismatch
/// keeps `a.url`.
pub fn merge(a: &Document, b: &Document) -> Document {
    debug_assert_eq!(a.url, b.url, "merge of documents of different urls");
    let latest = if latest_key(b) > latest_key(a) { b } else { a };
    let first = if first_key(b) < first_key(a) { b } else { a };
    Document {
        url: a.url.clone(),
        pub_date: first.pub_date,
        fetch_time: latest.fetch_time,
        text: latest.text.clone(),
        first_fetch_time: first.first_known_fetch_time(),
    }
}

/// What applying one update did to the stored state of its url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The merged state differs from the stored one (or the url is new):
    /// store it, and emit it.
    Changed(Document),
    /// The update changes nothing (a duplicate, or older on both sides).
    Unchanged,
}

/// Applies `update` to the stored state of its url (`None`: not seen yet).
/// `Unchanged` exactly when `merge(state, update) == *state`.
pub fn apply(state: Option<&Document>, update: &Document) -> Outcome {
    match state {
        None => Outcome::Changed(update.clone().normalized()),
        Some(state) => {
            let merged = merge(state, update);
            if merged == *state {
                Outcome::Unchanged
            } else {
                Outcome::Changed(merged)
            }
        }
    }
}

/// When the executor emits the merged document to the output topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmitPolicy {
    /// Only when the merged state changed (the default).
    #[default]
    Changed,
    /// After every valid update, changed or not (the seed's behaviour); on
    /// [`Outcome::Unchanged`] the stored state is emitted.
    Always,
}

impl EmitPolicy {
    /// Whether to emit after an update with this outcome.
    pub fn emits(self, outcome: &Outcome) -> bool {
        matches!(
            (self, outcome),
            (Self::Always, _) | (_, Outcome::Changed(_))
        )
    }
}

impl FromStr for EmitPolicy {
    type Err = Error;

    /// Parses `changed` or `always` (exact, lowercase).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "changed" => Ok(Self::Changed),
            "always" => Ok(Self::Always),
            other => Err(Error::UnknownEmitPolicy(other.to_owned())),
        }
    }
}

/// The expected final state of every url after a whole stream, by folding
/// [`merge`]; to check end-to-end runs against. Documents are normalized.
pub fn reference_merge(updates: impl IntoIterator<Item = Document>) -> BTreeMap<String, Document> {
    let mut states: BTreeMap<String, Document> = BTreeMap::new();
    for update in updates {
        match states.get_mut(&update.url) {
            Some(state) => *state = merge(state, &update),
            None => {
                states.insert(update.url.clone(), update.normalized());
            }
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Small value ranges so that ties on fetch_time and text are frequent.
    fn doc() -> impl Strategy<Value = Document> {
        (0u64..4, 1u64..6, "[ab]{0,2}", 0u64..7).prop_map(|(pub_date, fetch, text, first)| {
            Document {
                url: "u".into(),
                pub_date,
                fetch_time: fetch,
                text,
                first_fetch_time: first,
            }
        })
    }

    fn fold(docs: &[Document]) -> Option<Document> {
        reference_merge(docs.iter().cloned()).remove("u")
    }

    fn doc_at(fetch_time: u64, pub_date: u64, text: &str) -> Document {
        Document {
            url: "u".into(),
            pub_date,
            fetch_time,
            text: text.into(),
            first_fetch_time: 0,
        }
    }

    proptest! {
        #[test]
        fn order_and_duplicates_do_not_matter(
            docs in prop::collection::vec(doc(), 1..8),
            dups in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            shuffle_seed in any::<u64>(),
        ) {
            // Proves any permutation, with any updates redelivered, merges to the same document.
            let mut stream = docs.clone();
            stream.extend(dups.iter().map(|i| i.get(&docs).clone()));
            let mut rng = crate::domain::generate::SplitMix64::new(shuffle_seed);
            rng.shuffle(&mut stream);
            prop_assert_eq!(fold(&stream), fold(&docs));
        }

        #[test]
        fn merge_is_idempotent(a in doc()) {
            // Proves merge(a, a) only normalizes a, and leaves a normalized a unchanged.
            let n = a.clone().normalized();
            prop_assert_eq!(merge(&a, &a), n.clone());
            prop_assert_eq!(merge(&n, &n), n);
        }

        #[test]
        fn merge_is_commutative_and_associative(a in doc(), b in doc(), c in doc()) {
            // Proves the join is commutative and associative.
            prop_assert_eq!(merge(&a, &b), merge(&b, &a));
            prop_assert_eq!(merge(&merge(&a, &b), &c), merge(&a, &merge(&b, &c)));
        }

        #[test]
        fn result_is_max_latest_and_min_first(docs in prop::collection::vec(doc(), 1..8)) {
            // Proves state = max by (fetch_time, text), min by (first fetch, pub_date).
            let got = fold(&docs).expect("one url");
            let latest = docs.iter().map(|d| (d.fetch_time, d.text.clone())).max();
            let first = docs.iter().map(|d| (d.first_known_fetch_time(), d.pub_date)).min();
            prop_assert_eq!(Some((got.fetch_time, got.text)), latest);
            prop_assert_eq!(Some((got.first_fetch_time, got.pub_date)), first);
        }

        #[test]
        fn apply_unchanged_iff_merge_is_identity(s in doc(), u in doc()) {
            // Proves apply reports Unchanged exactly when merge(state, update) == state.
            for state in [s.clone(), s.normalized()] {
                let merged = merge(&state, &u);
                match apply(Some(&state), &u) {
                    Outcome::Unchanged => prop_assert_eq!(&merged, &state),
                    Outcome::Changed(d) => {
                        prop_assert_ne!(&merged, &state);
                        prop_assert_eq!(d, merged);
                    }
                }
            }
        }
    }

    #[test]
    fn ties_are_deterministic() {
        // Proves ties pick the larger text and the smaller pub_date, in either argument order.
        let a = doc_at(10, 5, "apple");
        let b = doc_at(10, 3, "banana");
        for m in [merge(&a, &b), merge(&b, &a)] {
            assert_eq!(
                (m.text.as_str(), m.pub_date, m.fetch_time),
                ("banana", 3, 10)
            );
            assert_eq!(m.first_fetch_time, 10);
        }
    }

    #[test]
    fn sides_come_from_different_versions() {
        // Proves text comes from the latest fetch and pub_date from the earliest, in any order.
        let stream = [
            doc_at(20, 2, "mid"),
            doc_at(30, 3, "new"),
            doc_at(10, 1, "old"),
        ];
        let m = fold(&stream).expect("one url");
        assert_eq!((m.text.as_str(), m.fetch_time), ("new", 30));
        assert_eq!((m.pub_date, m.first_fetch_time), (1, 10));
    }

    #[test]
    fn sent_first_fetch_time_is_honoured() {
        // Proves a known FirstFetchTime vouches for an earlier first version with its PubDate.
        let mut merged_elsewhere = doc_at(30, 1, "new");
        merged_elsewhere.first_fetch_time = 10;
        let m = merge(&doc_at(20, 2, "mid"), &merged_elsewhere);
        assert_eq!(
            (m.pub_date, m.first_fetch_time, m.text.as_str()),
            (1, 10, "new")
        );
    }

    #[test]
    fn apply_new_url_and_duplicate() {
        // Proves a new url is Changed (normalized) and its redelivery Unchanged.
        let u = doc_at(10, 1, "t");
        let Outcome::Changed(state) = apply(None, &u) else {
            panic!("new url must change");
        };
        assert_eq!(state.first_fetch_time, 10);
        assert_eq!(apply(Some(&state), &u), Outcome::Unchanged);
    }

    #[test]
    fn emit_policy_parse_and_emits() {
        // Proves EmitPolicy parses "changed"/"always", rejects others, and gates emission.
        assert_eq!("changed".parse::<EmitPolicy>(), Ok(EmitPolicy::Changed));
        assert_eq!("always".parse::<EmitPolicy>(), Ok(EmitPolicy::Always));
        assert!("Always".parse::<EmitPolicy>().is_err());
        assert!(!EmitPolicy::Changed.emits(&Outcome::Unchanged));
        assert!(EmitPolicy::Always.emits(&Outcome::Unchanged));
        assert!(EmitPolicy::Changed.emits(&Outcome::Changed(doc_at(1, 1, ""))));
    }
}
