//! Documents streams: fed to an input topic, merged into the documents
//! table, read back per url from an output topic.

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_bus::{BusConfig, Message};
use tributary_documents::domain::Document;
use tributary_documents::store::DocStore;

/// The documents store on `sql`.
pub async fn store_of(sql: &str) -> DocStore {
    let db = tributary_storage::Database::connect(sql, &tributary_storage::SqlConfig::default())
        .await
        .unwrap();
    DocStore::open(&db).await.unwrap()
}

/// The documents table by url.
pub async fn table(store: &DocStore) -> BTreeMap<String, Document> {
    store
        .list(None, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.url.clone(), d))
        .collect()
}

/// The last document per url of `records` (key = url, checked).
pub fn last_per_url(records: &[Message]) -> BTreeMap<String, Document> {
    let mut last = BTreeMap::new();
    for m in records {
        let d = tributary_documents::parse_update(&m.value).unwrap();
        assert_eq!(m.key.as_deref(), Some(d.url.as_bytes()), "key = url");
        last.insert(d.url.clone(), d);
    }
    last
}

/// Writes `stream` to a new topic `input` of `partitions` on `bus_url`, key = url.
pub async fn feed(bus_url: &str, input: &str, partitions: i32, stream: &[Document]) {
    let bus = tributary_bus::connect(bus_url, &BusConfig::default())
        .await
        .unwrap();
    bus.create_topic(input, partitions).await.unwrap();
    for chunk in stream.chunks(5000) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|d| {
                bus.send(tributary_bus::Record::new(
                    input.to_owned(),
                    d.url.clone().into_bytes(),
                    serde_json::to_vec(d).unwrap(),
                ))
            })
            .collect();
        for r in futures::future::join_all(sends).await {
            r.unwrap();
        }
    }
    bus.flush(Duration::from_secs(30)).await.unwrap();
}
