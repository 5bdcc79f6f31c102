//! Kafka over TLS (`security.protocol = ssl`, librdkafka built with
//! OpenSSL): a private broker reached only through TLS, with a certificate
//! authority made for the test (the rig's shared broker has no TLS).
//! Outside CI a machine without tansu or socat skips; under `CI=true` that
//! fails.

use std::time::Duration;

use tributary_bus::{connect, BusConfig, ConsumerOptions, Record};
use tributary_testkit::tls::{TestCa, TlsKafka};
use tributary_testkit::{in_ci, temp_dir};

fn tls_config(ca: &std::path::Path, timeout_ms: u32) -> BusConfig {
    let mut config = BusConfig::default();
    let o = &mut config.kafka.options;
    o.insert("security.protocol".into(), "ssl".into());
    o.insert("ssl.ca.location".into(), ca.display().to_string());
    config.kafka.delivery_timeout_ms = timeout_ms;
    config
}

// Proves: with `security.protocol=ssl` and the test CA, topics are created,
// records sent and read back through a TLS-only broker (so the build
// supports SSL: without OpenSSL librdkafka refuses the setting), and a
// client that trusts another CA is refused at connect (the broker is
// unreachable for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_tls_against_a_private_ca() {
    let dir = temp_dir();
    let started = TestCa::generate(&dir.path().join("ca"), "tributary-ca")
        .and_then(|ca| Ok((TlsKafka::start(&ca)?, ca)));
    let (broker, ca) = match started {
        Ok(v) => v,
        Err(e) if in_ci() => panic!("a private TLS broker is required under CI: {e:#}"),
        Err(e) => {
            eprintln!("skipped: private TLS broker: {e:#}");
            return;
        }
    };
    let other = TestCa::generate(&dir.path().join("other"), "other-ca").expect("other CA");

    let bus = connect(&broker.url(), &tls_config(&ca.ca_cert, 30_000))
        .await
        .expect("connect over TLS");
    bus.create_topic("tls-roundtrip", 1)
        .await
        .expect("create a topic over TLS");
    for i in 0..10 {
        bus.send(Record::new(
            "tls-roundtrip",
            format!("k{i}"),
            format!("v{i}"),
        ))
        .await
        .expect("send over TLS");
    }
    let mut c = bus
        .subscribe(
            "tls-group",
            &["tls-roundtrip".to_string()],
            ConsumerOptions::default(),
        )
        .await
        .expect("subscribe over TLS");
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .expect("records within 60 s over TLS")
            .expect("recv");
        got.push(String::from_utf8_lossy(&m.value).into_owned());
    }
    got.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(got, want);

    let refused = connect(&broker.url(), &tls_config(&other.ca_cert, 5_000)).await;
    let Err(e) = refused else {
        panic!("a client trusting another CA connected");
    };
    assert!(
        matches!(e, tributary_bus::Error::Unreachable { .. }),
        "{e:?}"
    );
}
