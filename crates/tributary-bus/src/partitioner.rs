//! Kafka's default partitioner for keyed records: `murmur2(key) & 0x7fffffff
//! % partitions`, bit-for-bit the Java client's `Utils.murmur2`. The Kafka
//! adapter configures librdkafka with `partitioner=murmur2_random`, which is
//! the same function, so a key lands on the same partition number on both
//! adapters and on Java producers.

/// Kafka's murmur2 hash of `data` (as a signed 32-bit value, like Java's).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    // Java: `int h = seed ^ length` with length an int.
    #[allow(clippy::cast_possible_truncation)]
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`.
///
/// # Panics
/// Never for `partitions > 0`; callers validate the partition count.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves our murmur2 equals Kafka's Java implementation on its own test vectors
    // (org.apache.kafka.common.utils.UtilsTest#testMurmur2).
    #[test]
    fn matches_kafka_test_vectors() {
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), *expected, "murmur2({input:?})");
        }
    }

    // Proves partitions are always in range, including for negative hashes.
    #[test]
    fn partition_in_range() {
        for i in 0..1000 {
            let p = partition_for_key(format!("key-{i}").as_bytes(), 7);
            assert!((0..7).contains(&p));
        }
    }
}
