//! The shop gRPC API in process, on the embedded bus + SQLite, over a real
//! TCP listener: the filter is set, refused (bad pattern, the old one
//! stays), read and cleared, and records are ingested to their topics
//! with their key and event time, or refused naming the record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tributary_bus::{BusConfig, ConsumerOptions};
use tributary_shop::api::ApiState;
use tributary_shop::pipeline::control::{ControlView, Follower};
use tributary_shop::proto::v1 as pb;
use tributary_shop::proto::v1::filter_service_client::FilterServiceClient;
use tributary_shop::proto::v1::ingest_service_client::IngestServiceClient;
use tributary_shop::settings::ShopSettings;
use tributary_shop::store::ShopStore;
use tributary_storage::{Database, SqlConfig};

// Proves the filter and ingest services answer like the REST routes: a good filter is stored
// and read back, a bad regex is INVALID_ARGUMENT naming the problem with the old filter kept,
// clear empties it; ingested records land keyed by their key with the given event time, and a
// record without its key fails the call naming it, producing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_and_ingest_over_grpc() {
    let dir = tributary_testkit::temp_dir();
    let db_url = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus_url = format!("sqlite://{}", dir.path().join("bus.db").display());
    let db = Database::connect(&db_url, &SqlConfig::default())
        .await
        .unwrap();
    let store = ShopStore::open(&db).await.unwrap();
    let bus = tributary_bus::connect(&bus_url, &BusConfig::default())
        .await
        .unwrap();
    let settings = Arc::new(ShopSettings::default());
    for t in [&settings.products_topic, &settings.prompts_topic] {
        bus.create_topic(t, 2).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let control = ControlView::default();
    Follower {
        bus: bus.clone(),
        topic: settings.control_topic.clone(),
        replica: "api-test".into(),
        ack: false,
        view: control.clone(),
    }
    .start(shutdown.clone())
    .await
    .unwrap();
    let state = ApiState {
        store,
        bus: bus.clone(),
        settings: settings.clone(),
        control,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(tributary_shop::api::grpc::serve(
        listener,
        state,
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut filters = FilterServiceClient::new(channel.clone());
    let mut ingest = IngestServiceClient::new(channel);

    let v = filters
        .set_filter(pb::SetFilterRequest {
            pattern: "iPhone".into(),
            regex: false,
            case_insensitive: false,
        })
        .await
        .unwrap()
        .into_inner();
    let f = v.filter.clone().unwrap();
    assert_eq!(
        (f.kind.as_str(), f.pattern.as_str()),
        ("substring", "iPhone")
    );
    assert!(v.control_offset.is_some());
    let bad = filters
        .set_filter(pb::SetFilterRequest {
            pattern: "(iPhone".into(),
            regex: true,
            case_insensitive: true,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("unclosed group"), "{bad:?}");
    let now = filters
        .get_filter(pb::GetFilterRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.filter, v.filter, "the old filter stays");
    let cleared = filters
        .clear_filter(pb::ClearFilterRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.filter.unwrap().pattern, "");

    let a = ingest
        .ingest_products(pb::IngestRequest {
            records: vec![
                r#"{"product_id":"p1","name":"a"}"#.into(),
                r#"{"product_id":"p2","name":"b"}"#.into(),
            ],
            event_time_ms: Some(1_234_567),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.accepted, 2);
    let refused = ingest
        .ingest_prompts(pb::IngestRequest {
            records: vec![r#"{"id":"x"}"#.into(), r#"{"find":"no id"}"#.into()],
            event_time_ms: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("record 2: no `id`"),
        "{refused:?}"
    );
    let negative = ingest
        .ingest_prompts(pb::IngestRequest {
            records: vec![r#"{"id":"x"}"#.into()],
            event_time_ms: Some(-1),
        })
        .await
        .unwrap_err();
    assert_eq!(
        negative.code(),
        tonic::Code::InvalidArgument,
        "{negative:?}"
    );

    let mut c = bus
        .subscribe(
            "check",
            &[
                settings.products_topic.clone(),
                settings.prompts_topic.clone(),
            ],
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), c.recv()).await {
            got.push(m);
        }
    }
    let mut keys: Vec<_> = got
        .iter()
        .map(|m| {
            (
                m.topic.clone(),
                String::from_utf8_lossy(m.key.as_deref().unwrap()).into_owned(),
                m.timestamp_ms,
            )
        })
        .collect();
    keys.sort();
    let p = settings.products_topic.clone();
    assert_eq!(
        keys,
        vec![
            (p.clone(), "p1".to_owned(), Some(1_234_567)),
            (p, "p2".to_owned(), Some(1_234_567)),
        ],
        "only the products; the refused prompts produced nothing"
    );
    // Nothing else arrives (the refused prompt call produced none).
    let more = tokio::time::timeout(Duration::from_millis(700), c.recv()).await;
    assert!(!matches!(more, Ok(Ok(_))), "{more:?}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
