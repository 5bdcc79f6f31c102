//! `shop-sink`: upserts products (`shop_products`), filtered products
//! (`analytic_products_filtered`) and recommendations (`personal_recom`,
//! deduplicated by their idempotent key) into their tables; the runner
//! stores an offset only after its upsert. A record that is not the wire
//! shape goes to `<topic>.dlq`.

use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::Message;

use super::{count_in, count_out, event_time, reject, retry, ConsumerHealth};
use crate::domain::{Product, Recommendation};
use crate::store::{ProductTable, ShopStore};

/// Service name (metrics label).
pub const SERVICE: &str = "shop-sink";

/// The sink's record handler.
#[derive(Debug)]
pub struct SinkHandler {
    store: ShopStore,
    products_topic: String,
    filtered_topic: String,
    health: ConsumerHealth,
}

impl SinkHandler {
    /// A sink writing to `store`; records of `products_topic` and
    /// `filtered_topic` are products, every other topic's recommendations.
    pub fn new(
        store: ShopStore,
        products_topic: String,
        filtered_topic: String,
        health: ConsumerHealth,
    ) -> Self {
        Self {
            store,
            products_topic,
            filtered_topic,
            health,
        }
    }
}

#[async_trait::async_trait]
impl Handler for SinkHandler {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        count_in(SERVICE);
        let table = if msg.topic == self.products_topic {
            Some(ProductTable::All)
        } else if msg.topic == self.filtered_topic {
            Some(ProductTable::Filtered)
        } else {
            None
        };
        let written = match table {
            Some(table) => {
                let p = Product::parse(&msg.value).map_err(|e| reject(SERVICE, "product", e))?;
                self.store
                    .upsert_product(table, &p, event_time(msg))
                    .await
                    .map_err(|e| retry("upsert a product", e))
            }
            None => {
                let r = Recommendation::parse(&msg.value)
                    .map_err(|e| reject(SERVICE, "recommendation", e))?;
                self.store
                    .upsert_recommendation(&r)
                    .await
                    .map(|_| ())
                    .map_err(|e| retry("upsert a recommendation", e))
            }
        };
        self.health.track(written)?;
        count_out(SERVICE, 1);
        Ok(())
    }
}
