//! Reading a topic back exactly: as many records as its partitions'
//! watermarks say.

use std::time::Duration;

use tributary_bus::Message;

/// How many records `topic` holds on Kafka: the sum over its partitions of
/// high minus low watermark, from the broker (rdkafka).
pub async fn kafka_topic_size(bus_url: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let brokers = tributary_bus::kafka::parse_brokers(bus_url).unwrap();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        let timeout = Duration::from_secs(10);
        let md = c.fetch_metadata(Some(&topic), timeout).unwrap();
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
        assert!(partitions > 0, "{topic}: no partitions in the metadata");
        (0..partitions)
            .map(|p| {
                let (low, high) = c
                    .fetch_watermarks(&topic, i32::try_from(p).unwrap(), timeout)
                    .unwrap();
                high - low
            })
            .sum()
    })
    .await
    .unwrap()
}

/// Reads `topic` from the start under a new group (tansu does not reliably
/// evict a SIGKILLed member of an old one) until it has `on_topic` records
/// or `timeout` passes, and asserts it got exactly `on_topic` (`what`: the
/// assertion's message).
pub async fn read_exactly(
    bus_url: &str,
    topic: &str,
    on_topic: i64,
    timeout: Duration,
    what: &str,
) -> Vec<Message> {
    let records =
        tributary_testkit::read_topic_until(bus_url, topic, timeout, |got: &[Message]| {
            got.len() as i64 >= on_topic
        })
        .await;
    assert_eq!(records.len() as i64, on_topic, "{what}");
    records
}
