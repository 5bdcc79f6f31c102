//! Synthetic update streams for `tributary docs produce`: deterministic for
//! a seed, with a self-contained PRNG (splitmix64).

use super::{Document, Error, Result};

/// Fetch times are `BASE_TIME + [0, FETCH_SPAN)` (seconds; a day from
/// 2024-01-01T00:00:00Z), so versions of one url sometimes tie.
const BASE_TIME: u64 = 1_704_067_200;
const FETCH_SPAN: u64 = 86_400;
/// A version's `PubDate` is up to 30 days before its `FetchTime`.
const PUB_SPAN: u64 = 30 * 86_400;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Number of distinct urls (`https://example.com/doc/{0..urls}`).
    pub urls: usize,
    /// Total number of updates, duplicates included.
    pub updates: usize,
    /// Fraction of `updates` (in `0.0..=1.0`) that are exact copies of
    /// another update (redeliveries); at least one update stays original.
    pub duplicates: f64,
    /// Shuffle the whole stream; otherwise it is in `fetch_time` order,
    /// each copy right after its original.
    pub shuffle: bool,
}

/// Generates `params.updates` updates from `seed`; the same seed and
/// params always give the same stream.
///
/// `round(updates * duplicates)` of them (at most `updates - 1`) are
/// copies, the rest are distinct versions spread round-robin over the
/// urls, so every url has an update when there are at least `urls`
/// distinct ones. `FirstFetchTime` is 0 (unknown), as from a crawler.
///
/// Errors: `duplicates` outside `0.0..=1.0` (or NaN), or `urls == 0` with
/// `updates > 0`.
pub fn generate_updates(seed: u64, params: &GenParams) -> Result<Vec<Document>> {
    if !(0.0..=1.0).contains(&params.duplicates) {
        return Err(Error::InvalidParams(format!(
            "duplicates must be in 0.0..=1.0, got {}",
            params.duplicates
        )));
    }
    let total = params.updates;
    if total == 0 {
        return Ok(Vec::new());
    }
    if params.urls == 0 {
        return Err(Error::InvalidParams("urls must be at least 1".into()));
    }
    // In range by the checks above: 0 <= product <= total.
    let copies = ((total as f64 * params.duplicates).round() as usize).min(total - 1);
    let distinct = total - copies;

    let mut rng = SplitMix64::new(seed);
    let mut versions: Vec<Document> = (0..distinct)
        .map(|i| {
            let n = i % params.urls;
            let fetch_time = BASE_TIME + rng.below(FETCH_SPAN);
            Document {
                url: format!("https://example.com/doc/{n}"),
                pub_date: fetch_time - rng.below(PUB_SPAN),
                fetch_time,
                text: format!("doc {n} version {i}"),
                first_fetch_time: 0,
            }
        })
        .collect();
    versions.sort_by_key(|d| d.fetch_time);

    let mut copies_of = vec![0usize; distinct];
    for _ in 0..copies {
        copies_of[rng.below(distinct as u64) as usize] += 1;
    }
    let mut stream = Vec::with_capacity(total);
    for (version, n) in versions.into_iter().zip(copies_of) {
        stream.extend(std::iter::repeat_n(version.clone(), n));
        stream.push(version);
    }
    if params.shuffle {
        rng.shuffle(&mut stream);
    }
    Ok(stream)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for test
/// data; not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (multiply-shift; `n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fisher-Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::*;

    fn params(urls: usize, updates: usize, duplicates: f64, shuffle: bool) -> GenParams {
        GenParams {
            urls,
            updates,
            duplicates,
            shuffle,
        }
    }

    fn generate(seed: u64, p: &GenParams) -> Vec<Document> {
        generate_updates(seed, p).expect("valid params")
    }

    #[test]
    fn splitmix64_reference_values() {
        // Proves the PRNG is splitmix64 (first outputs for seed 0 match the published ones).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn deterministic_for_a_seed() {
        // Proves the same seed gives the same stream and another seed a different one.
        let p = params(10, 200, 0.2, true);
        assert_eq!(generate(7, &p), generate(7, &p));
        assert_ne!(generate(7, &p), generate(8, &p));
    }

    #[test]
    fn counts_urls_and_duplicates() {
        // Proves M updates over exactly N urls, of which round(M * fraction) are exact copies.
        let p = params(10, 200, 0.2, true);
        let stream = generate(1, &p);
        assert_eq!(stream.len(), 200);
        assert_eq!(stream.iter().collect::<HashSet<_>>().len(), 160);
        let urls: BTreeSet<&str> = stream.iter().map(|d| d.url.as_str()).collect();
        assert_eq!(urls.len(), 10);
        assert!(stream
            .iter()
            .all(|d| parse_back(d) == d.clone().normalized()));
    }

    fn parse_back(d: &Document) -> Document {
        let bytes = serde_json::to_vec(d).expect("serializes");
        crate::parse_update(&bytes).expect("generated updates are valid")
    }

    #[test]
    fn unshuffled_is_in_order_and_shuffle_is_a_permutation() {
        // Proves unshuffled streams are in fetch_time order and shuffling only reorders.
        let ordered = generate(3, &params(4, 100, 0.3, false));
        assert!(ordered
            .windows(2)
            .all(|w| w[0].fetch_time <= w[1].fetch_time));
        let mut shuffled = generate(3, &params(4, 100, 0.3, true));
        assert_ne!(shuffled, ordered);
        let key = |d: &Document| (d.fetch_time, d.text.clone());
        shuffled.sort_by_key(key);
        let mut sorted = ordered.clone();
        sorted.sort_by_key(key);
        assert_eq!(shuffled, sorted);
    }

    #[test]
    fn edge_params() {
        // Proves edge cases: no updates, all-duplicates keeps one original, bad params fail.
        assert!(generate(1, &params(0, 0, 0.0, true)).is_empty());
        let all = generate(1, &params(3, 5, 1.0, false));
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 1);
        assert!(generate_updates(1, &params(1, 5, 1.5, false)).is_err());
        assert!(generate_updates(1, &params(1, 5, f64::NAN, false)).is_err());
        assert!(generate_updates(1, &params(0, 5, 0.0, false)).is_err());
    }
}
