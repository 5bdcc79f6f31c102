//! The `recommendations` join: prompts with filtered products on the
//! normalised name, within a window either side, on event time.
//!
//! [`JoinState`] is a pure state machine. The caller feeds it records with
//! their event times (the record timestamps) and, when a partition is idle,
//! a watermark; it returns the matches, whether the record was dropped as
//! late, and the [`StateChange`]s to persist to a changelog.
//!
//! # Ordering rule
//! For each input record the caller must publish the returned matches
//! **before or together with** (one transaction) persisting the returned
//! changes, and commit the input offset only after both. A crash between
//! the two then never loses a match: on restart the record is read again
//! from the uncommitted offset and, since the state never recorded the pair
//! as emitted, the match is emitted again. The sink dedupes by
//! [`Recommendation::key`]. The reverse order (state first) could record a
//! pair as emitted that never reached the output topic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Product, Prompt, Recommendation};

/// The join key: case-folded (lowercase), trimmed, runs of whitespace
/// collapsed to one space. `"  Apple   IPHONE 15 "` and `"apple iphone 15"`
/// are the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct JoinKey(String);

impl JoinKey {
    /// Normalises `raw` into a key.
    pub fn new(raw: &str) -> Self {
        let lower = raw.to_lowercase();
        let mut key = String::with_capacity(lower.len());
        for word in lower.split_whitespace() {
            if !key.is_empty() {
                key.push(' ');
            }
            key.push_str(word);
        }
        Self(key)
    }

    /// The normalised text (use it as the repartition key).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for JoinKey {
    fn from(raw: String) -> Self {
        Self::new(&raw)
    }
}

impl From<JoinKey> for String {
    fn from(key: JoinKey) -> Self {
        key.0
    }
}

impl std::fmt::Display for JoinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Window and grace period, in ms of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinConfig {
    /// A prompt and a product join when their event times differ by at most
    /// this much, in either direction (inclusive). Default 1 hour.
    pub window_ms: i64,
    /// How far behind `stream time - window` a record may still arrive and
    /// be joined. Default 5 minutes.
    pub grace_ms: i64,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            window_ms: 3_600_000,
            grace_ms: 300_000,
        }
    }
}

impl JoinConfig {
    /// How long a record is kept, measured back from stream time: the full
    /// width of the window (`2 × window_ms`, one window either side) plus
    /// grace. The oldest record still accepted (`stream time - window -
    /// grace`) can join one up to a window older than itself.
    pub fn retention_ms(&self) -> i64 {
        self.window_ms
            .saturating_mul(2)
            .saturating_add(self.grace_ms)
    }
}

/// One piece of state, as the changelog names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "side", rename_all = "snake_case")]
pub enum EntryId {
    /// A stored prompt.
    Prompt {
        /// Its join key.
        key: JoinKey,
        /// Its event time.
        event_time_ms: i64,
        /// Its id.
        id: Uuid,
    },
    /// A stored product.
    Product {
        /// Its join key.
        key: JoinKey,
        /// Its event time.
        event_time_ms: i64,
        /// Its id.
        product_id: String,
    },
    /// A (prompt, product) pair already emitted.
    Emitted {
        /// The prompt.
        prompt_id: Uuid,
        /// The product.
        product_id: String,
    },
}

impl EntryId {
    /// A unique, stable key for a compacted changelog topic or a table's
    /// primary key. The free-text parts come last or length-prefixed, so two
    /// different entries never share a key.
    pub fn changelog_key(&self) -> String {
        match self {
            Self::Prompt {
                key,
                event_time_ms,
                id,
            } => format!("prompt/{event_time_ms}/{id}/{key}"),
            Self::Product {
                key,
                event_time_ms,
                product_id,
            } => format!(
                "product/{event_time_ms}/{}/{product_id}/{key}",
                product_id.len()
            ),
            Self::Emitted {
                prompt_id,
                product_id,
            } => format!("emitted/{prompt_id}/{product_id}"),
        }
    }
}

/// An operation on the join state, to persist in order. Replaying the
/// changes (all of them, or a compacted log keeping the latest per
/// [`StateChange::changelog_key`]) with [`JoinState::restore`] rebuilds the
/// state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // short-lived, moved once into a log; a box buys nothing
pub enum StateChange {
    /// Store a prompt.
    PutPrompt {
        /// Its event time.
        event_time_ms: i64,
        /// The prompt.
        prompt: Prompt,
    },
    /// Store a product.
    PutProduct {
        /// Its event time.
        event_time_ms: i64,
        /// The product.
        product: Product,
    },
    /// Remember that a pair was emitted.
    PutEmitted {
        /// The prompt.
        prompt_id: Uuid,
        /// The product.
        product_id: String,
        /// The match's event time (later side); the entry expires by it.
        matched_at: i64,
    },
    /// Forget an entry (a tombstone in a compacted topic).
    Evict {
        /// What to forget.
        entry: EntryId,
    },
    /// Stream time moved to `ms` by a watermark.
    StreamTime {
        /// The new stream time.
        ms: i64,
    },
}

impl StateChange {
    /// The entry this change puts or evicts (`None` for stream time).
    pub fn entry(&self) -> Option<EntryId> {
        match self {
            Self::PutPrompt {
                event_time_ms,
                prompt,
            } => Some(EntryId::Prompt {
                key: prompt.join_key(),
                event_time_ms: *event_time_ms,
                id: prompt.id,
            }),
            Self::PutProduct {
                event_time_ms,
                product,
            } => Some(EntryId::Product {
                key: product.join_key(),
                event_time_ms: *event_time_ms,
                product_id: product.product_id.clone(),
            }),
            Self::PutEmitted {
                prompt_id,
                product_id,
                ..
            } => Some(EntryId::Emitted {
                prompt_id: *prompt_id,
                product_id: product_id.clone(),
            }),
            Self::Evict { entry } => Some(entry.clone()),
            Self::StreamTime { .. } => None,
        }
    }

    /// The key for a compacted changelog; a put and the evict of the same
    /// entry share it. Stream time always uses `stream_time`.
    pub fn changelog_key(&self) -> String {
        self.entry()
            .map_or_else(|| "stream_time".to_owned(), |e| e.changelog_key())
    }

    /// True for [`StateChange::Evict`]: write it as a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Self::Evict { .. })
    }
}

/// A record dropped because it arrived after its grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Late {
    /// The record's event time.
    pub event_time_ms: i64,
    /// Stream time when it arrived.
    pub stream_time_ms: i64,
}

/// What one input record produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "matches must be published and changes persisted (matches first)"]
pub struct JoinOutput {
    /// New (prompt, product) pairs, to publish to `personal_recom`.
    pub matches: Vec<Recommendation>,
    /// State changes to persist after (or with) publishing `matches`.
    pub changes: Vec<StateChange>,
    /// Set when the record was dropped as late (no matches, no changes).
    pub late: Option<Late>,
}

/// Sizes of the join state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateSize {
    /// Distinct join keys with stored records.
    pub keys: usize,
    /// Stored prompts and products.
    pub records: usize,
    /// Remembered emitted pairs.
    pub emitted: usize,
}

#[derive(Debug, Clone, Default)]
struct Side {
    prompts: BTreeMap<(i64, Uuid), Prompt>,
    products: BTreeMap<(i64, String), Product>,
}

/// The stream-stream join state of one partition (or of everything, on the
/// embedded bus). See the module docs for the ordering rule.
///
/// Rules: the join key is [`JoinKey`]; a prompt at `tp` and a product at
/// `tq` join when `|tp - tq| <= window_ms`; stream time is the largest event
/// time accepted (or watermark); a record older than `stream time -
/// window_ms - grace_ms` is dropped as late; records and emitted pairs
/// older than `stream time -` [`JoinConfig::retention_ms`] are evicted; each
/// (prompt id, product id) pair is emitted once while it is remembered.
#[derive(Debug, Clone, Default)]
pub struct JoinState {
    config: JoinConfig,
    stream_time: Option<i64>,
    sides: HashMap<JoinKey, Side>,
    emitted: HashMap<(Uuid, String), i64>,
    expiry: BTreeSet<(i64, EntryId)>,
}

impl JoinState {
    /// An empty state.
    pub fn new(config: JoinConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Rebuilds a state by replaying changelog entries in log order (a full
    /// log, or a compacted one without tombstones).
    pub fn restore(config: JoinConfig, entries: impl IntoIterator<Item = StateChange>) -> Self {
        let mut state = Self::new(config);
        for change in entries {
            state.apply(change);
        }
        state
    }

    /// The configuration.
    pub fn config(&self) -> JoinConfig {
        self.config
    }

    /// Stream time: the largest event time or watermark seen so far.
    pub fn stream_time(&self) -> Option<i64> {
        self.stream_time
    }

    /// Current sizes.
    pub fn size(&self) -> StateSize {
        StateSize {
            keys: self.sides.len(),
            records: self.expiry.len() - self.emitted.len(),
            emitted: self.emitted.len(),
        }
    }

    /// A prompt arrived with this event time: matches it with the stored
    /// products of its key within the window, then stores it.
    pub fn on_prompt(&mut self, prompt: Prompt, event_time_ms: i64) -> JoinOutput {
        let t = event_time_ms;
        let Some(mut out) = self.admit(t) else {
            return self.late(t);
        };
        let (lo, hi) = self.bounds(t);
        let candidates: Vec<(i64, Product)> = self
            .sides
            .get(&prompt.join_key())
            .map(|side| {
                side.products
                    .range((lo, String::new())..)
                    .take_while(|((tq, _), _)| *tq <= hi)
                    .map(|((tq, _), p)| (*tq, p.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let change = StateChange::PutPrompt {
            event_time_ms: t,
            prompt: prompt.clone(),
        };
        self.apply(change.clone());
        out.changes.push(change);
        for (tq, product) in candidates {
            self.emit(&prompt, product, t.max(tq), &mut out);
        }
        out
    }

    /// A product arrived with this event time: matches it with the stored
    /// prompts of its key within the window, then stores it.
    pub fn on_product(&mut self, product: Product, event_time_ms: i64) -> JoinOutput {
        let t = event_time_ms;
        let Some(mut out) = self.admit(t) else {
            return self.late(t);
        };
        let (lo, hi) = self.bounds(t);
        let candidates: Vec<(i64, Prompt)> = self
            .sides
            .get(&product.join_key())
            .map(|side| {
                side.prompts
                    .range((lo, Uuid::nil())..)
                    .take_while(|((tp, _), _)| *tp <= hi)
                    .map(|((tp, _), p)| (*tp, p.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let change = StateChange::PutProduct {
            event_time_ms: t,
            product: product.clone(),
        };
        self.apply(change.clone());
        out.changes.push(change);
        for (tp, prompt) in candidates {
            self.emit(&prompt, product.clone(), t.max(tp), &mut out);
        }
        out
    }

    /// Moves stream time to `watermark_ms` (if later) and evicts what fell
    /// out of retention. Use it when input is idle, so state still shrinks.
    /// Returns the changes to persist.
    pub fn advance(&mut self, watermark_ms: i64) -> Vec<StateChange> {
        if self.stream_time.is_some_and(|st| st >= watermark_ms) {
            return Vec::new();
        }
        let mut changes = vec![StateChange::StreamTime { ms: watermark_ms }];
        self.stream_time = Some(watermark_ms);
        self.evict(&mut changes);
        changes
    }

    /// `Some(late)` when a record at `t` would be dropped.
    fn lateness(&self, t: i64) -> Option<Late> {
        let st = self.stream_time?;
        let bound = st
            .saturating_sub(self.config.window_ms)
            .saturating_sub(self.config.grace_ms);
        (t < bound).then_some(Late {
            event_time_ms: t,
            stream_time_ms: st,
        })
    }

    fn late(&self, t: i64) -> JoinOutput {
        JoinOutput {
            late: self.lateness(t),
            ..JoinOutput::default()
        }
    }

    /// Accepts a record at `t` (advancing stream time and evicting), or
    /// `None` when it is late.
    fn admit(&mut self, t: i64) -> Option<JoinOutput> {
        if self.lateness(t).is_some() {
            return None;
        }
        let mut out = JoinOutput::default();
        self.stream_time = Some(self.stream_time.map_or(t, |st| st.max(t)));
        self.evict(&mut out.changes);
        Some(out)
    }

    fn bounds(&self, t: i64) -> (i64, i64) {
        let w = self.config.window_ms;
        (t.saturating_sub(w), t.saturating_add(w))
    }

    /// Emits the pair unless it was emitted before.
    fn emit(&mut self, prompt: &Prompt, product: Product, matched_at: i64, out: &mut JoinOutput) {
        let pair = (prompt.id, product.product_id.clone());
        if self.emitted.contains_key(&pair) {
            return;
        }
        let change = StateChange::PutEmitted {
            prompt_id: prompt.id,
            product_id: product.product_id.clone(),
            matched_at,
        };
        self.apply(change.clone());
        out.changes.push(change);
        out.matches.push(Recommendation {
            prompt_id: prompt.id,
            user_id: prompt.user_id.clone(),
            find: prompt.find.clone(),
            product,
            matched_at,
        });
    }

    fn evict(&mut self, changes: &mut Vec<StateChange>) {
        let Some(st) = self.stream_time else { return };
        let horizon = st.saturating_sub(self.config.retention_ms());
        while let Some((t, entry)) = self.expiry.first().cloned() {
            if t >= horizon {
                break;
            }
            self.remove(&entry);
            changes.push(StateChange::Evict { entry });
        }
    }

    /// Applies one change to the maps, keeping the expiry index in step.
    /// Puts also raise stream time to their own time (a restore then
    /// recovers stream time from the records).
    fn apply(&mut self, change: StateChange) {
        match change {
            StateChange::PutPrompt {
                event_time_ms: t,
                prompt,
            } => {
                self.raise(t);
                let key = prompt.join_key();
                let id = prompt.id;
                let side = self.sides.entry(key.clone()).or_default();
                side.prompts.insert((t, id), prompt);
                let entry = EntryId::Prompt {
                    key,
                    event_time_ms: t,
                    id,
                };
                self.expiry.insert((t, entry));
            }
            StateChange::PutProduct {
                event_time_ms: t,
                product,
            } => {
                self.raise(t);
                let key = product.join_key();
                let product_id = product.product_id.clone();
                let side = self.sides.entry(key.clone()).or_default();
                side.products.insert((t, product_id.clone()), product);
                let entry = EntryId::Product {
                    key,
                    event_time_ms: t,
                    product_id,
                };
                self.expiry.insert((t, entry));
            }
            StateChange::PutEmitted {
                prompt_id,
                product_id,
                matched_at,
            } => {
                let entry = EntryId::Emitted {
                    prompt_id,
                    product_id: product_id.clone(),
                };
                self.remove(&entry);
                self.raise(matched_at);
                self.emitted.insert((prompt_id, product_id), matched_at);
                self.expiry.insert((matched_at, entry));
            }
            StateChange::Evict { entry } => self.remove(&entry),
            StateChange::StreamTime { ms } => self.raise(ms),
        }
    }

    fn raise(&mut self, t: i64) {
        self.stream_time = Some(self.stream_time.map_or(t, |st| st.max(t)));
    }

    /// Removes an entry if present (evicting twice is harmless).
    fn remove(&mut self, entry: &EntryId) {
        match entry {
            EntryId::Prompt {
                key,
                event_time_ms,
                id,
            } => {
                if let Some(side) = self.sides.get_mut(key) {
                    side.prompts.remove(&(*event_time_ms, *id));
                }
                self.forget_key_if_empty(key);
                self.expiry.remove(&(*event_time_ms, entry.clone()));
            }
            EntryId::Product {
                key,
                event_time_ms,
                product_id,
            } => {
                if let Some(side) = self.sides.get_mut(key) {
                    side.products.remove(&(*event_time_ms, product_id.clone()));
                }
                self.forget_key_if_empty(key);
                self.expiry.remove(&(*event_time_ms, entry.clone()));
            }
            EntryId::Emitted {
                prompt_id,
                product_id,
            } => {
                if let Some(t) = self.emitted.remove(&(*prompt_id, product_id.clone())) {
                    self.expiry.remove(&(t, entry.clone()));
                }
            }
        }
    }

    fn forget_key_if_empty(&mut self, key: &JoinKey) {
        if self
            .sides
            .get(key)
            .is_some_and(|s| s.prompts.is_empty() && s.products.is_empty())
        {
            self.sides.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;
    use crate::domain::Emulator;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn cfg(grace_ms: i64) -> JoinConfig {
        JoinConfig {
            window_ms: HOUR,
            grace_ms,
        }
    }

    fn product(n: u64, name: &str) -> Product {
        let mut p = Emulator::new(1).product(n, chrono::DateTime::UNIX_EPOCH);
        p.name = name.to_owned();
        p
    }

    fn prompt(n: u128, find: &str) -> Prompt {
        Prompt {
            id: Uuid::from_u128(n),
            user_id: format!("user-{n}"),
            find: find.to_owned(),
        }
    }

    fn pairs(matches: &[Recommendation]) -> Vec<(Uuid, String)> {
        matches
            .iter()
            .map(|m| (m.prompt_id, m.product.product_id.clone()))
            .collect()
    }

    // Proves the key is case-folded, trimmed and whitespace-collapsed, and serde normalises too.
    #[test]
    fn normalisation() {
        assert_eq!(
            JoinKey::new("  Apple \t IPHONE\n15  ").as_str(),
            "apple iphone 15"
        );
        assert_eq!(JoinKey::new("ÉCRAN  Ünï"), JoinKey::new("écran ünï"));
        assert_eq!(JoinKey::new(" \t ").as_str(), "");
        let k: JoinKey = serde_json::from_str(r#"" Samsung  Galaxy ""#).unwrap();
        assert_eq!(k.as_str(), "samsung galaxy");
    }

    // Proves a prompt is answered by a product arriving within the window after it.
    #[test]
    fn prompt_then_product_matches() {
        let mut s = JoinState::new(cfg(0));
        assert!(s
            .on_prompt(prompt(1, "apple iphone 15"), 0)
            .matches
            .is_empty());
        let out = s.on_product(product(1, "Apple  iPhone 15"), 30 * MIN);
        assert_eq!(out.matches.len(), 1);
        let m = &out.matches[0];
        assert_eq!(
            (m.find.as_str(), m.user_id.as_str(), m.matched_at),
            ("apple iphone 15", "user-1", 30 * MIN)
        );
        assert_eq!(
            m.key(),
            format!("{}:{}", Uuid::from_u128(1), m.product.product_id)
        );
    }

    // Proves a prompt is answered by products seen before it within the window.
    #[test]
    fn product_then_prompt_matches() {
        let mut s = JoinState::new(cfg(0));
        let _ = s.on_product(product(1, "Sony WH-1000XM5"), 0);
        let _ = s.on_product(product(2, "Sony WH-1000XM5"), 10 * MIN);
        let out = s.on_prompt(prompt(1, "sony wh-1000xm5"), HOUR);
        assert_eq!(out.matches.len(), 2);
        assert!(out.matches.iter().all(|m| m.matched_at == HOUR));
    }

    // Proves the window is inclusive at one hour and excludes anything beyond, both directions.
    #[test]
    fn outside_window_does_not_match() {
        let mut s = JoinState::new(cfg(10 * HOUR));
        let _ = s.on_product(product(1, "x"), 0);
        let _ = s.on_product(product(2, "x"), 2 * HOUR + 1);
        let out = s.on_prompt(prompt(1, "x"), HOUR + 1);
        assert_eq!(
            pairs(&out.matches),
            vec![(Uuid::from_u128(1), product(2, "x").product_id)]
        );
        let out = s.on_prompt(prompt(2, "x"), HOUR);
        assert_eq!(out.matches.len(), 1, "exactly one hour apart still matches");
        assert!(
            s.on_prompt(prompt(3, "y"), HOUR).matches.is_empty(),
            "other key"
        );
    }

    // Proves a record within grace is still joined and one beyond grace is dropped and reported.
    #[test]
    fn late_record_dropped() {
        let mut s = JoinState::new(cfg(5 * MIN));
        let _ = s.on_product(product(1, "x"), 2 * HOUR);
        let _ = s.on_product(product(9, "z"), 4 * HOUR);
        let bound = 4 * HOUR - HOUR - 5 * MIN;
        let ok = s.on_prompt(prompt(1, "x"), bound);
        assert_eq!(
            (ok.late, ok.matches.len()),
            (None, 1),
            "late but within grace"
        );
        let out = s.on_prompt(prompt(3, "x"), bound - 1);
        let late = Late {
            event_time_ms: bound - 1,
            stream_time_ms: 4 * HOUR,
        };
        assert_eq!(
            out,
            JoinOutput {
                late: Some(late),
                ..JoinOutput::default()
            }
        );
        let size = s.size();
        assert!(s.on_product(product(2, "x"), bound - 1).late.is_some());
        assert_eq!(s.size(), size, "a late record leaves no state");
    }

    // Proves eviction keeps state within window width + grace and empties it once time passes.
    #[test]
    fn eviction_bounds_state_size() {
        let config = cfg(5 * MIN);
        let mut s = JoinState::new(config);
        let bound = (config.retention_ms() / MIN) as usize + 1;
        for i in 0..600u64 {
            let t = i as i64 * MIN;
            let _ = s.on_product(product(i, &format!("name {}", i % 7)), t);
            let _ = s.on_prompt(prompt(i as u128, &format!("name {}", i % 7)), t);
            assert!(s.size().records <= 2 * bound, "{:?} at {i}", s.size());
        }
        assert!(s.size().emitted > 0);
        let changes = s.advance(1000 * HOUR);
        assert_eq!(changes[0], StateChange::StreamTime { ms: 1000 * HOUR });
        assert!(changes[1..].iter().all(StateChange::is_tombstone));
        assert_eq!(s.size(), StateSize::default());
        assert!(s.advance(HOUR).is_empty(), "watermarks never go back");
    }

    // Proves each (prompt, product) pair is emitted once despite duplicates of either side.
    #[test]
    fn each_pair_once() {
        let mut s = JoinState::new(cfg(HOUR));
        let p = product(1, "x");
        let q = prompt(1, "x");
        assert_eq!(s.on_product(p.clone(), 0).matches.len(), 0);
        assert_eq!(s.on_prompt(q.clone(), MIN).matches.len(), 1);
        assert_eq!(s.on_prompt(q.clone(), MIN).matches.len(), 0, "redelivery");
        assert_eq!(
            s.on_product(p.clone(), 2 * MIN).matches.len(),
            0,
            "same product again"
        );
        assert_eq!(
            s.on_prompt(q, 3 * MIN).matches.len(),
            0,
            "same prompt, other time"
        );
    }

    // Proves changes survive a JSON round trip and puts share the key of their evict.
    #[test]
    fn changelog_wire_shape() {
        let mut s = JoinState::new(cfg(0));
        let mut log = s.on_product(product(1, "x"), 0).changes;
        log.extend(s.on_prompt(prompt(1, "X"), 1).changes);
        log.extend(s.advance(10 * HOUR));
        for c in &log {
            let back: StateChange =
                serde_json::from_str(&serde_json::to_string(c).unwrap()).unwrap();
            assert_eq!(&back, c);
        }
        let keys: BTreeSet<String> = log.iter().map(StateChange::changelog_key).collect();
        assert_eq!(
            keys.len(),
            4,
            "product, prompt, emitted, stream_time: {keys:?}"
        );
    }

    #[derive(Debug, Clone)]
    #[allow(clippy::large_enum_variant)]
    enum Rec {
        Prompt(Prompt, i64),
        Product(Product, i64),
        Watermark(i64),
    }

    const NAMES: [&str; 3] = [
        "Apple iPhone 15",
        "Samsung Galaxy Watch 6",
        "Sony WH-1000XM5",
    ];

    /// Prompts and products over 3 names, times on a 15-minute grid over
    /// 4 hours (so window edges are hit), small id pools (so ids repeat) and
    /// exact duplicates.
    fn records() -> impl Strategy<Value = Vec<Rec>> {
        let rec = (0u8..9, 0u64..8, 0i64..=16, 0usize..3).prop_map(|(kind, id, slot, style)| {
            let name = NAMES[(id % 3) as usize];
            let t = slot * 15 * MIN;
            if kind == 8 {
                Rec::Watermark(t + id as i64 * HOUR)
            } else if kind < 4 {
                let find = [
                    name.to_lowercase(),
                    format!("  {} ", name.to_uppercase()),
                    name.replace(' ', "  "),
                ];
                Rec::Prompt(prompt(u128::from(id) + 1, &find[style]), t)
            } else {
                Rec::Product(product(id, name), t)
            }
        });
        prop::collection::vec(rec, 0..40).prop_flat_map(|mut v| {
            let dups: Vec<Rec> = v.iter().step_by(5).cloned().collect();
            v.extend(dups);
            Just(v).prop_shuffle()
        })
    }

    fn feed(s: &mut JoinState, r: &Rec) -> JoinOutput {
        match r {
            Rec::Prompt(p, t) => s.on_prompt(p.clone(), *t),
            Rec::Product(p, t) => s.on_product(p.clone(), *t),
            Rec::Watermark(t) => JoinOutput {
                changes: s.advance(*t),
                ..JoinOutput::default()
            },
        }
    }

    /// The window rule applied to every prompt x product occurrence.
    fn brute_force(recs: &[Rec], window: i64) -> BTreeSet<(Uuid, String)> {
        let mut out = BTreeSet::new();
        for a in recs {
            for b in recs {
                if let (Rec::Prompt(p, tp), Rec::Product(q, tq)) = (a, b) {
                    if p.join_key() == q.join_key() && (tp - tq).abs() <= window {
                        out.insert((p.id, q.product_id.clone()));
                    }
                }
            }
        }
        out
    }

    /// Keeps the latest change per changelog key, drops tombstones, in log order.
    fn compact(log: &[StateChange]) -> Vec<StateChange> {
        let mut latest: HashMap<String, usize> = HashMap::new();
        for (i, c) in log.iter().enumerate() {
            latest.insert(c.changelog_key(), i);
        }
        let mut keep: Vec<usize> = latest.into_values().collect();
        keep.sort_unstable();
        keep.into_iter()
            .map(|i| log[i].clone())
            .filter(|c| !c.is_tombstone())
            .collect()
    }

    proptest! {
        // Proves for any interleaving the emitted pairs are exactly the window rule's pairs over the
        // records not dropped as late (none, with a huge grace: then each pair is emitted once).
        #[test]
        fn matches_equal_brute_force(
            recs in records(),
            grace in prop::sample::select(vec![0, 20 * MIN, 1_000 * HOUR]),
        ) {
            let mut s = JoinState::new(cfg(grace));
            let mut emitted = Vec::new();
            let mut accepted = Vec::new();
            let mut stream_time: Option<i64> = None;
            for r in &recs {
                let (t, watermark) = match r {
                    Rec::Prompt(_, t) | Rec::Product(_, t) => (*t, false),
                    Rec::Watermark(t) => (*t, true),
                };
                let late = !watermark && stream_time.is_some_and(|st| t < st - HOUR - grace);
                let out = feed(&mut s, r);
                prop_assert_eq!(out.late.is_some(), late);
                if !late {
                    stream_time = stream_time.max(Some(t));
                    accepted.push(r.clone());
                }
                emitted.extend(pairs(&out.matches));
            }
            let set: BTreeSet<_> = emitted.iter().cloned().collect();
            if grace == 1_000 * HOUR {
                prop_assert!(accepted.len() == recs.len());
                prop_assert_eq!(set.len(), emitted.len(), "a pair was emitted twice");
            }
            prop_assert_eq!(set, brute_force(&accepted, HOUR));
        }

        // Proves restoring from the changelog (full or compacted) mid-stream continues exactly as uninterrupted.
        #[test]
        fn restore_continues_identically(
            recs in records(),
            cut in any::<prop::sample::Index>(),
            grace in prop::sample::select(vec![0, 20 * MIN, 1_000 * HOUR]),
        ) {
            let config = cfg(grace);
            let mut whole = JoinState::new(config);
            let expected: Vec<_> = recs.iter().map(|r| feed(&mut whole, r)).collect();

            let k = cut.index(recs.len() + 1);
            let mut first = JoinState::new(config);
            let mut log = Vec::new();
            let mut got = Vec::new();
            for r in &recs[..k] {
                let out = feed(&mut first, r);
                log.extend(out.changes.iter().cloned());
                got.push(out);
            }
            for replay in [log.clone(), compact(&log)] {
                let mut restored = JoinState::restore(config, replay);
                prop_assert_eq!(restored.size(), first.size());
                prop_assert_eq!(restored.stream_time(), first.stream_time());
                let mut rest = got.clone();
                rest.extend(recs[k..].iter().map(|r| feed(&mut restored, r)));
                prop_assert_eq!(&rest, &expected);
                prop_assert_eq!(restored.size(), whole.size());
            }
        }
    }
}
