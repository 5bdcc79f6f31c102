//! The Kafka adapter: Apache Kafka or any Kafka-protocol broker through
//! `rdkafka` (bundled librdkafka).
//!
//! Producer: `acks=all`, idempotence on by default (ordering per partition
//! survives retries), `partitioner=murmur2_random` (Kafka's Java default, so
//! keys land where the embedded bus puts them). Consumer:
//! `enable.auto.offset.store=false` — only offsets stored through
//! [`Consumer::store`] are committed (auto-commit every `commit_interval`,
//! and synchronously on close).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::port::{
    CleanupPolicy, Consumer, ConsumerOptions, EventBus, PartitionLag, StartFrom, TopicConfig,
};
use crate::record::{Delivery, Message, Record};
use crate::{Error, Result};

/// Settings of the Kafka adapter.
#[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Replication factor of topics this adapter creates (use 3 on a real cluster).
    pub replication_factor: i32,
    /// Idempotent producer (keeps per-partition order across retries).
    pub idempotence: bool,
    /// How long a record may wait for acknowledgement before its send fails.
    pub delivery_timeout_ms: u32,
    /// Producer batching delay.
    pub linger_ms: u32,
    /// Longest a consumer's fetch waits for data (librdkafka
    /// `fetch.wait.max.ms`, default 500). Kafka answers a fetch as soon as
    /// data arrives; tansu holds every fetch this long, so on tansu it is
    /// each consumer hop's latency floor. Lower costs the broker more fetch
    /// requests: at 10 ms the whole test suite's consumers overloaded one
    /// tansu (group sessions timed out), so the default stays librdkafka's.
    pub fetch_wait_max_ms: u32,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`).
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), tributary_platform::url::redact_value(k, v)))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("replication_factor", &self.replication_factor)
            .field("idempotence", &self.idempotence)
            .field("delivery_timeout_ms", &self.delivery_timeout_ms)
            .field("linger_ms", &self.linger_ms)
            .field("fetch_wait_max_ms", &self.fetch_wait_max_ms)
            .field("options", &options)
            .finish()
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            replication_factor: 1,
            idempotence: true,
            delivery_timeout_ms: 120_000,
            linger_ms: 5,
            fetch_wait_max_ms: 500,
            options: BTreeMap::new(),
        }
    }
}

/// A connection to a Kafka cluster.
pub struct KafkaBus {
    brokers: String,
    safe_url: String,
    config: KafkaConfig,
    producer: FutureProducer<QuietContext>,
    admin: Arc<AdminClient<QuietContext>>,
}

/// Parses `kafka://host:port,host:port` into librdkafka's `bootstrap.servers`.
pub fn parse_brokers(url: &str) -> Result<String> {
    let safe = tributary_platform::url::redact(url);
    let rest = url
        .strip_prefix("kafka://")
        .ok_or_else(|| Error::InvalidUrl {
            url: safe.clone(),
            reason: "expected kafka://host:port[,host:port]".into(),
        })?;
    let rest = rest.split(['/', '?']).next().unwrap_or_default();
    // Credentials belong in `bus.kafka.options` (SASL); never echo them.
    let rest = rest.rsplit('@').next().unwrap_or_default();
    let mut out = Vec::new();
    for b in rest.split(',').filter(|s| !s.is_empty()) {
        let (host, port) = b.rsplit_once(':').ok_or_else(|| Error::InvalidUrl {
            url: safe.clone(),
            reason: format!("broker {b:?} lacks a port"),
        })?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(Error::InvalidUrl {
                url: safe.clone(),
                reason: format!("broker {b:?} is not host:port"),
            });
        }
        out.push(b.to_string());
    }
    if out.is_empty() {
        return Err(Error::InvalidUrl {
            url: safe,
            reason: "no broker given".into(),
        });
    }
    Ok(out.join(","))
}

impl KafkaBus {
    /// Connects to the brokers of `url` and checks that one answers.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] or [`Error::Unreachable`], naming the URL.
    pub async fn connect(url: &str, config: &KafkaConfig) -> Result<Self> {
        let brokers = parse_brokers(url)?;
        let safe_url = tributary_platform::url::redact(url);
        let mut pc = base_config(&brokers, config);
        pc.set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", config.idempotence.to_string())
            .set("linger.ms", config.linger_ms.to_string())
            .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
            .set("queue.buffering.max.messages", "1000000");
        let producer: FutureProducer<QuietContext> =
            pc.create_with_context(QuietContext::default())?;
        let admin: AdminClient<QuietContext> =
            base_config(&brokers, config).create_with_context(QuietContext::default())?;
        let bus = Self {
            brokers,
            safe_url,
            config: config.clone(),
            producer,
            admin: Arc::new(admin),
        };
        bus.ping().await.map_err(|e| Error::Unreachable {
            url: bus.safe_url.clone(),
            reason: e.to_string(),
        })?;
        Ok(bus)
    }

    /// The underlying producer (for benchmarks comparing against raw rdkafka).
    pub fn raw_producer(&self) -> &FutureProducer<QuietContext> {
        &self.producer
    }

    /// `bootstrap.servers` of this bus.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The value of config `name` of `topic` as the broker reports it
    /// (`None` when it reports none, as some Kafka-protocol brokers do).
    ///
    /// # Errors
    /// When the broker does not answer the DescribeConfigs request.
    pub async fn topic_config(&self, topic: &str, name: &str) -> Result<Option<String>> {
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
            .await?;
        for r in results {
            match r {
                Ok(resource) => {
                    if let Some(entry) = resource.get(name) {
                        return Ok(entry.value.clone());
                    }
                }
                Err(e) => {
                    return Err(Error::InvalidTopic {
                        topic: topic.to_string(),
                        reason: format!("describe configs: {e}"),
                    })
                }
            }
        }
        Ok(None)
    }

    async fn metadata_partitions(&self, topic: Option<String>) -> Result<Option<i32>> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(topic.as_deref(), Duration::from_secs(5))?;
            Ok(match topic {
                None => None,
                Some(t) => md
                    .topics()
                    .iter()
                    .find(|mt| mt.name() == t)
                    .filter(|mt| mt.error().is_none() && !mt.partitions().is_empty())
                    .map(|mt| i32::try_from(mt.partitions().len()).unwrap_or(i32::MAX)),
            })
        })
        .await
        .map_err(|e| Error::Timeout(format!("metadata task: {e}")))?
    }
}

fn base_config(brokers: &str, config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "tributary")
        .set("log_level", "4");
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

#[async_trait::async_trait]
impl EventBus for KafkaBus {
    async fn create_topic_with(&self, topic: &str, config: &TopicConfig) -> Result<()> {
        crate::validate_topic(topic, config.partitions)?;
        let mut new = NewTopic::new(
            topic,
            config.partitions,
            TopicReplication::Fixed(self.config.replication_factor),
        );
        if config.cleanup == CleanupPolicy::Compact {
            new = new.set("cleanup.policy", "compact");
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self.admin.create_topics([&new], &opts).await?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::InvalidTopic {
                        topic: name,
                        reason: code.to_string(),
                    })
                }
            }
        }
        // Wait until the topic is visible in metadata so the first send succeeds.
        for _ in 0..100 {
            if self
                .metadata_partitions(Some(topic.to_string()))
                .await?
                .is_some()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout(format!(
            "topic {topic} not visible after creation"
        )))
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        self.metadata_partitions(Some(topic.to_string()))
            .await?
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
    }

    fn send(&self, record: Record) -> BoxFuture<'static, Result<Delivery>> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(KHeader {
                key: k,
                value: Some(&v[..]),
            });
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic).headers(headers);
        // An empty value goes out as null: Kafka's tombstone on a compacted
        // topic (consumers of this adapter read it back as empty).
        if !record.value.is_empty() {
            fr = fr.payload(&record.value[..]);
        }
        if let Some(k) = &record.key {
            fr = fr.key(&k[..]);
        }
        if let Some(ts) = record.timestamp_ms {
            fr = fr.timestamp(ts);
        }
        // Enqueue now (keeps per-key order for sequential callers); when the
        // local queue is full, wait for librdkafka to drain it.
        let mut waited = Duration::ZERO;
        loop {
            match self.producer.send_result(fr) {
                Ok(df) => {
                    return async move {
                        match df.await {
                            Ok(Ok(d)) => Ok(Delivery {
                                partition: d.partition,
                                offset: d.offset,
                            }),
                            Ok(Err((e, _))) => Err(Error::Kafka(e)),
                            Err(_) => Err(Error::Closed),
                        }
                    }
                    .boxed();
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if waited
                        < Duration::from_millis(u64::from(self.config.delivery_timeout_ms)) =>
                {
                    fr = back;
                    self.producer.poll(Duration::from_millis(5));
                    waited += Duration::from_millis(5);
                }
                Err((e, _)) => return futures::future::ready(Err(Error::Kafka(e))).boxed(),
            }
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| Error::Timeout(format!("flush task: {e}")))??;
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        let mut cc = base_config(&self.brokers, &self.config);
        cc.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                options.commit_interval.as_millis().max(1).to_string(),
            )
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set(
                "fetch.wait.max.ms",
                self.config.fetch_wait_max_ms.max(1).to_string(),
            )
            .set(
                "auto.offset.reset",
                match options.start_from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        for (k, v) in &self.config.options {
            cc.set(k, v);
        }
        let consumer: StreamConsumer<QuietContext> =
            cc.create_with_context(QuietContext::default())?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(Box::new(KafkaConsumer {
            inner: Arc::new(consumer),
            stored: HashMap::new(),
            start_from: options.start_from,
        }))
    }

    async fn ping(&self) -> Result<()> {
        self.metadata_partitions(None).await.map(|_| ())
    }

    fn describe(&self) -> String {
        self.safe_url.clone()
    }
}

struct KafkaConsumer {
    inner: Arc<StreamConsumer<QuietContext>>,
    /// Next offset per partition as stored by [`Consumer::store`] (what
    /// [`Consumer::lag`] counts from before the commit reaches the broker).
    stored: HashMap<(String, i32), i64>,
    start_from: StartFrom,
}

/// Longest wait for one broker answer of [`Consumer::lag`].
const LAG_TIMEOUT: Duration = Duration::from_secs(3);

/// The lag of `c`'s assigned partitions (blocking: broker round trips for
/// the committed offsets and each partition's watermarks).
fn kafka_lag(
    c: &StreamConsumer<QuietContext>,
    stored: &HashMap<(String, i32), i64>,
    start_from: StartFrom,
) -> Result<Vec<PartitionLag>> {
    let assignment = c.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = c.committed_offsets(assignment.clone(), LAG_TIMEOUT)?;
    let mut out = Vec::with_capacity(assignment.count());
    for e in assignment.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let (low, high) = c.fetch_watermarks(topic, partition, LAG_TIMEOUT)?;
        let committed = committed
            .find_partition(topic, partition)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0);
        // A stored offset of a partition once revoked may be older than what its
        // owner committed meanwhile: the larger one is where the group is.
        let known = match (
            stored.get(&(topic.to_owned(), partition)).copied(),
            committed,
        ) {
            (Some(s), Some(c)) => Some(s.max(c)),
            (s, c) => s.or(c),
        };
        let position = known.unwrap_or(match start_from {
            StartFrom::Earliest => low,
            StartFrom::Latest => high,
        });
        out.push(PartitionLag {
            topic: topic.to_owned(),
            partition,
            end_offset: high,
            position: position.max(low),
        });
    }
    Ok(out)
}

/// Client context that turns librdkafka's repeated connection errors into
/// one warning per distinct error per 30 s (librdkafka retries by itself;
/// readiness shows the outage), instead of an error line every 50 ms.
#[derive(Default)]
pub struct QuietContext {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl QuietContext {
    fn first_in_a_while(&self, key: &str) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match last.get(key) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(30) => false,
            _ => {
                last.insert(key.to_string(), now);
                true
            }
        }
    }
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                if self.first_in_a_while(fac) {
                    tracing::warn!(facility = fac, "librdkafka: {log_message}");
                }
            }
            _ => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.first_in_a_while(&error.to_string()) {
            tracing::warn!(error = %error, "kafka client: {reason} (retrying; repeats muted for 30 s)");
        }
    }
}

impl ConsumerContext for QuietContext {}

fn is_no_offset(e: &KafkaError) -> bool {
    matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
}

#[async_trait::async_trait]
impl Consumer for KafkaConsumer {
    async fn recv(&mut self) -> Result<Message> {
        loop {
            match self.inner.recv().await {
                Ok(m) => {
                    let headers = m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| {
                                    (
                                        h.key.to_string(),
                                        bytes::Bytes::copy_from_slice(h.value.unwrap_or_default()),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    return Ok(Message {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(bytes::Bytes::copy_from_slice),
                        value: bytes::Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                        headers,
                        timestamp_ms: m.timestamp().to_millis(),
                    });
                }
                Err(e) => {
                    // Broker trouble: librdkafka reconnects by itself; keep polling.
                    tracing::warn!(error = %e, "kafka consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn store(&mut self, message: &Message) -> Result<()> {
        match self
            .inner
            .store_offset(&message.topic, message.partition, message.offset)
        {
            Ok(()) => {
                self.stored.insert(
                    (message.topic.clone(), message.partition),
                    message.offset + 1,
                );
                Ok(())
            }
            // The partition was revoked meanwhile: its new owner re-reads it.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State))
            | Err(KafkaError::StoreOffset(RDKafkaErrorCode::UnknownPartition)) => {
                tracing::debug!(topic = %message.topic, partition = message.partition, "offset of a revoked partition not stored");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn commit(&mut self) -> Result<()> {
        let c = self.inner.clone();
        let res = tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync))
            .await
            .map_err(|e| Error::Timeout(format!("commit task: {e}")))?;
        match res {
            Ok(()) => Ok(()),
            Err(e) if is_no_offset(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.inner
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lag(&self) -> BoxFuture<'static, Result<Vec<PartitionLag>>> {
        let c = self.inner.clone();
        let stored = self.stored.clone();
        let start_from = self.start_from;
        // The client is shared with the poll loop; its blocking calls go to a
        // blocking thread, which also drops this handle.
        let task = tokio::task::spawn_blocking(move || kafka_lag(&c, &stored, start_from));
        Box::pin(async move {
            task.await
                .map_err(|e| Error::Timeout(format!("lag task: {e}")))?
        })
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        let res = self.commit().await;
        self.inner.unsubscribe();
        let c = self.inner.clone();
        drop(self);
        // Dropping the last handle runs rd_kafka_consumer_close (blocking).
        let _ = tokio::task::spawn_blocking(move || drop(c)).await;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves broker lists parse and bad URLs are rejected with the URL named.
    #[test]
    fn parses_broker_lists() {
        assert_eq!(
            parse_brokers("kafka://a:1,b:2").ok().as_deref(),
            Some("a:1,b:2")
        );
        let e = parse_brokers("kafka://u:secret@a").expect_err("no port");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(parse_brokers("kafka://").is_err());
        assert!(parse_brokers("kafka://a:notaport").is_err());
    }
}
