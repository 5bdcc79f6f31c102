//! `shop-filter`: `shop_products` -> the live filter -> passing products
//! to `analytic_products_filtered`, byte for byte, keyed by `product_id`,
//! with the original event time in a header. A record that is not a
//! product is dead-lettered to `shop_products.dlq`. Deliveries are not
//! waited for one by one: the runner keeps up to its `max_in_flight`
//! outstanding and stores offsets in order as they are acknowledged
//! ([`Handler::handle_deferred`]).

use std::sync::atomic::{AtomicU64, Ordering};

use tributary_bus::runner::{Ack, Handler, HandlerError};
use tributary_bus::{Bus, Message, Record};

use super::control::ControlView;
use super::{event_time, reject, retry, ConsumerHealth, EVENT_TIME_HEADER};
use crate::domain::Product;
use crate::metrics as m;

/// Service name (metrics label).
pub const SERVICE: &str = "shop-filter";

/// The filter's record handler.
pub struct FilterHandler {
    bus: Bus,
    output: String,
    view: ControlView,
    health: ConsumerHealth,
    passed: AtomicU64,
    dropped: AtomicU64,
    /// Metric handles, looked up once instead of per record.
    series: Series,
}

struct Series {
    records_in: metrics::Counter,
    records_out: metrics::Counter,
    passed: metrics::Counter,
    dropped: metrics::Counter,
    pass_ratio: metrics::Gauge,
}

impl std::fmt::Debug for FilterHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterHandler")
            .field("bus", &self.bus.describe())
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl FilterHandler {
    /// A handler writing to `output`, matching with the filter of `view`.
    pub fn new(bus: Bus, output: String, view: ControlView, health: ConsumerHealth) -> Self {
        Self {
            bus,
            output,
            view,
            health,
            passed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            series: Series {
                records_in: metrics::counter!(m::RECORDS_IN, "service" => SERVICE),
                records_out: metrics::counter!(m::RECORDS_OUT, "service" => SERVICE),
                passed: metrics::counter!(m::FILTER_PASSED),
                dropped: metrics::counter!(m::FILTER_DROPPED),
                pass_ratio: metrics::gauge!(m::FILTER_PASS_RATIO),
            },
        }
    }

    fn ratio(&self) {
        let p = self.passed.load(Ordering::Relaxed) as f64;
        let d = self.dropped.load(Ordering::Relaxed) as f64;
        if p + d > 0.0 {
            self.series.pass_ratio.set(p / (p + d));
        }
    }
}

#[async_trait::async_trait]
impl Handler for FilterHandler {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        match self.handle_deferred(msg).await? {
            Some(ack) => ack.await,
            None => Ok(()),
        }
    }

    /// Filters and produces without waiting for the delivery: the runner
    /// goes on with the next products (sent in order) and stores offsets
    /// in order as deliveries are acknowledged.
    async fn handle_deferred(&self, msg: &Message) -> Result<Option<Ack>, HandlerError> {
        self.series.records_in.increment(1);
        let product = Product::parse(&msg.value).map_err(|e| reject(SERVICE, "product", e))?;
        // The filter is chosen and the offset recorded under one lock, so a
        // replica's ack names exactly the first record a new filter applies to.
        let filter = self.view.with(|c| {
            c.next_offsets.insert(msg.partition, msg.offset + 1);
            c.filter.clone()
        });
        if !filter.passes(&product) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.series.dropped.increment(1);
            self.ratio();
            return Ok(None);
        }
        let mut record = Record {
            topic: self.output.clone(),
            key: Some(product.product_id.clone().into_bytes().into()),
            value: msg.value.clone(),
            headers: msg
                .headers
                .iter()
                .filter(|(n, _)| n != EVENT_TIME_HEADER)
                .cloned()
                .collect(),
            // The product's event time travels as the record's timestamp too.
            timestamp_ms: Some(event_time(msg)),
        };
        record = record.header(EVENT_TIME_HEADER, event_time(msg).to_string());
        let delivery = self.bus.send(record);
        self.passed.fetch_add(1, Ordering::Relaxed);
        self.series.passed.increment(1);
        self.ratio();
        let health = self.health.clone();
        let out = self.series.records_out.clone();
        Ok(Some(Box::pin(async move {
            let sent = delivery
                .await
                .map(|_| ())
                .map_err(|e| retry("produce to the filtered topic", e));
            health.track(sent)?;
            out.increment(1);
            Ok(())
        })))
    }
}
