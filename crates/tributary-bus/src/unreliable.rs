//! A fault-injecting wrapper for tests: wraps any bus and, while switched
//! "down", makes it behave like an unreachable broker — sends, pings and
//! topic creation fail with [`Error::Unreachable`], and consumers receive
//! nothing — until switched back up. (After neon's `UnreliableWrapper`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};

use crate::port::{Consumer, ConsumerOptions, EventBus, TopicConfig};
use crate::record::{Delivery, Message, Record};
use crate::{Bus, Error, Result};

/// Switch shared by an [`Unreliable`] bus and its consumers.
#[derive(Clone, Default, Debug)]
pub struct Outage(Arc<AtomicBool>);

impl Outage {
    /// Starts or ends the outage.
    pub fn set_down(&self, down: bool) {
        self.0.store(down, Ordering::SeqCst);
    }

    /// Whether the bus is down now.
    pub fn is_down(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.is_down() {
            Err(Error::Unreachable {
                url: "unreliable://".into(),
                reason: format!("injected outage during {what}"),
            })
        } else {
            Ok(())
        }
    }
}

/// A bus that fails on demand.
pub struct Unreliable {
    inner: Bus,
    outage: Outage,
}

impl Unreliable {
    /// Wraps `inner`; the returned [`Outage`] switches failures on and off.
    pub fn wrap(inner: Bus) -> (Bus, Outage) {
        let outage = Outage::default();
        (
            Arc::new(Self {
                inner,
                outage: outage.clone(),
            }),
            outage,
        )
    }
}

#[async_trait::async_trait]
impl EventBus for Unreliable {
    async fn create_topic_with(&self, topic: &str, config: &TopicConfig) -> Result<()> {
        self.outage.check("create_topic")?;
        self.inner.create_topic_with(topic, config).await
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        self.outage.check("partitions")?;
        self.inner.partitions(topic).await
    }

    fn send(&self, record: Record) -> BoxFuture<'static, Result<Delivery>> {
        match self.outage.check("send") {
            Err(e) => futures::future::ready(Err(e)).boxed(),
            Ok(()) => self.inner.send(record),
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<()> {
        self.outage.check("flush")?;
        self.inner.flush(timeout).await
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        self.outage.check("subscribe")?;
        let inner = self.inner.subscribe(group, topics, options).await?;
        Ok(Box::new(UnreliableConsumer {
            inner,
            outage: self.outage.clone(),
        }))
    }

    async fn ping(&self) -> Result<()> {
        self.outage.check("ping")?;
        self.inner.ping().await
    }

    fn describe(&self) -> String {
        format!("unreliable({})", self.inner.describe())
    }
}

struct UnreliableConsumer {
    inner: Box<dyn Consumer>,
    outage: Outage,
}

#[async_trait::async_trait]
impl Consumer for UnreliableConsumer {
    async fn recv(&mut self) -> Result<Message> {
        // Like a consumer cut off from its broker: nothing arrives meanwhile.
        while self.outage.is_down() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.recv().await
    }

    fn store(&mut self, message: &Message) -> Result<()> {
        self.inner.store(message)
    }

    async fn commit(&mut self) -> Result<()> {
        self.outage.check("commit")?;
        self.inner.commit().await
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.inner.assignment()
    }

    fn lag(&self) -> BoxFuture<'static, Result<Vec<crate::port::PartitionLag>>> {
        if let Err(e) = self.outage.check("lag") {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.inner.lag()
    }

    async fn close(self: Box<Self>) -> Result<()> {
        self.inner.close().await
    }
}
