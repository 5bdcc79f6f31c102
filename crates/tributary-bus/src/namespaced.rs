//! A namespacing wrapper: wraps any bus and prefixes every topic and
//! consumer-group name with a fixed string, so several users of one broker
//! (tests running in parallel, or deployments sharing a cluster) never see
//! each other's records or join each other's groups, while the code on top
//! keeps using its fixed topic names.
//!
//! Records and messages carry the unprefixed names on this side of the
//! wrapper: a record sent to `orders` lands in `PREFIXorders` on the broker,
//! and a message consumed from there reports topic `orders`.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::port::{Consumer, ConsumerOptions, EventBus, TopicConfig};
use crate::record::{Delivery, Message, Record};
use crate::{Bus, Result};

/// A bus whose topic and group names all start with a prefix.
pub struct Namespaced {
    inner: Bus,
    prefix: String,
}

impl Namespaced {
    /// Wraps `inner`; every topic and group name gets `prefix` in front
    /// (use a separator of Kafka's topic alphabet, e.g. `"test-1a2b."`).
    pub fn wrap(inner: Bus, prefix: impl Into<String>) -> Bus {
        std::sync::Arc::new(Self {
            inner,
            prefix: prefix.into(),
        })
    }
}

fn add(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

fn strip(prefix: &str, name: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

#[async_trait::async_trait]
impl EventBus for Namespaced {
    async fn create_topic_with(&self, topic: &str, config: &TopicConfig) -> Result<()> {
        self.inner
            .create_topic_with(&add(&self.prefix, topic), config)
            .await
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        self.inner.partitions(&add(&self.prefix, topic)).await
    }

    fn send(&self, mut record: Record) -> BoxFuture<'static, Result<Delivery>> {
        record.topic = add(&self.prefix, &record.topic);
        self.inner.send(record)
    }

    async fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner.flush(timeout).await
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        let topics: Vec<String> = topics.iter().map(|t| add(&self.prefix, t)).collect();
        let inner = self
            .inner
            .subscribe(&add(&self.prefix, group), &topics, options)
            .await?;
        Ok(Box::new(NamespacedConsumer {
            inner,
            prefix: self.prefix.clone(),
        }))
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    fn describe(&self) -> String {
        format!(
            "{} (names prefixed {:?})",
            self.inner.describe(),
            self.prefix
        )
    }
}

struct NamespacedConsumer {
    inner: Box<dyn Consumer>,
    prefix: String,
}

#[async_trait::async_trait]
impl Consumer for NamespacedConsumer {
    async fn recv(&mut self) -> Result<Message> {
        let mut m = self.inner.recv().await?;
        m.topic = strip(&self.prefix, &m.topic);
        Ok(m)
    }

    fn store(&mut self, message: &Message) -> Result<()> {
        let mut m = message.clone();
        m.topic = add(&self.prefix, &m.topic);
        self.inner.store(&m)
    }

    async fn commit(&mut self) -> Result<()> {
        self.inner.commit().await
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.inner
            .assignment()
            .into_iter()
            .map(|(t, p)| (strip(&self.prefix, &t), p))
            .collect()
    }

    fn lag(&self) -> BoxFuture<'static, Result<Vec<crate::port::PartitionLag>>> {
        let prefix = self.prefix.clone();
        let lag = self.inner.lag();
        Box::pin(async move {
            let mut out = lag.await?;
            for l in &mut out {
                l.topic = strip(&prefix, &l.topic);
            }
            Ok(out)
        })
    }

    async fn close(self: Box<Self>) -> Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: names are prefixed on the broker side only; a consumer on the
    // wrapper sees the plain topic name, and stored offsets reach the
    // prefixed group (a restarted member resumes after them).
    #[tokio::test]
    async fn prefixes_topics_and_groups_on_the_inner_bus_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/bus.db", dir.path().display());
        let raw = crate::connect(&url, &Default::default())
            .await
            .expect("bus");
        let bus = Namespaced::wrap(raw.clone(), "t1.");
        bus.create_topic("orders", 2).await.expect("create");
        assert_eq!(raw.partitions("t1.orders").await.expect("raw"), 2);
        assert!(raw.partitions("orders").await.is_err());
        assert_eq!(bus.partitions("orders").await.expect("wrapped"), 2);
        for i in 0..3 {
            bus.send(Record::new("orders", "k", format!("{i}")))
                .await
                .expect("send");
        }
        let topics = ["orders".to_owned()];
        let mut c = bus
            .subscribe("g", &topics, ConsumerOptions::default())
            .await
            .expect("subscribe");
        let first = c.recv().await.expect("recv");
        assert_eq!(first.topic, "orders");
        assert_eq!(&first.value[..], b"0");
        c.store(&first).expect("store");
        c.close().await.expect("close");
        let mut again = bus
            .subscribe("g", &topics, ConsumerOptions::default())
            .await
            .expect("resubscribe");
        let next = tokio::time::timeout(Duration::from_secs(10), again.recv())
            .await
            .expect("in time")
            .expect("recv");
        assert_eq!(&next.value[..], b"1", "resumes after the stored offset");
        again.close().await.expect("close");
    }
}
