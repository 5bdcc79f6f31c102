//! `shop-emulator`: emulated stores publishing products to `shop_products`
//! (key = `product_id`) at `shop.emulator_rate` per second, up to
//! `shop.emulator_count` products (`0`: until stopped).

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tributary_bus::{Bus, Record};

use crate::domain::Emulator;

/// Service name (metrics label).
pub const SERVICE: &str = "shop-emulator";

/// The seed to use: `seed`, or from the clock when it is 0.
pub fn seed_or_clock(seed: u64) -> u64 {
    if seed != 0 {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| {
            u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
        })
}

/// The `(seconds between ticks, products per tick)` of `rate` per second:
/// ticks of at least 10 ms.
pub fn pacing(rate: u32) -> (Duration, u64) {
    let rate = u64::from(rate.max(1));
    let per_tick = rate.div_ceil(100);
    (
        Duration::from_secs_f64(per_tick as f64 / rate as f64),
        per_tick,
    )
}

/// Emits products until `count` (0: no limit) or `shutdown`. A failed send
/// is logged and the product skipped (an emulator has nothing to catch up).
pub async fn run(
    bus: Bus,
    topic: String,
    rate: u32,
    count: u64,
    seed: u64,
    shutdown: CancellationToken,
) {
    if rate == 0 {
        tracing::info!("shop emulator off (shop.emulator_rate = 0)");
        shutdown.cancelled().await;
        return;
    }
    let seed = seed_or_clock(seed);
    let mut emulator = Emulator::new(seed);
    let (period, per_tick) = pacing(rate);
    tracing::info!(rate, count, seed, %topic, "shop emulator started");
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    while count == 0 || sent < count {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let n = if count == 0 {
            per_tick
        } else {
            per_tick.min(count - sent)
        };
        let sends: Vec<_> = (0..n)
            .map(|_| {
                let p = emulator.next_product(chrono::Utc::now());
                let value = serde_json::to_vec(&p).unwrap_or_default();
                bus.send(Record::new(
                    topic.clone(),
                    Bytes::from(p.product_id.into_bytes()),
                    Bytes::from(value),
                ))
            })
            .collect();
        metrics::counter!(crate::metrics::RECORDS_IN, "service" => SERVICE).increment(n);
        for r in futures::future::join_all(sends).await {
            match r {
                Ok(_) => super::count_out(SERVICE, 1),
                Err(e) => tracing::warn!(error = %e, "emulated product not sent"),
            }
        }
        sent += n;
    }
    tracing::info!(sent, "shop emulator done; idle");
    shutdown.cancelled().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the pacing gives the asked rate with ticks no shorter than 10 ms.
    #[test]
    fn pacing_matches_the_rate() {
        for rate in [1u32, 30, 99, 100, 250, 10_000] {
            let (period, n) = pacing(rate);
            let got = n as f64 / period.as_secs_f64();
            assert!((got - f64::from(rate)).abs() < 1e-6, "{rate}: {got}");
            assert!(period.as_secs_f64() >= 0.009_999, "{rate}: {period:?}");
        }
        assert_eq!(pacing(30), (Duration::from_secs_f64(1.0 / 30.0), 1));
    }
}
