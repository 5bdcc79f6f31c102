//! Spawned-binary tests of the documents system: the real `tributary up`
//! (SQLite + embedded bus + in-process cache) on free ports, fed through
//! the real `tributary docs send` / `produce` over the docs REST API.
//! Proves the table and the last output per url equal the reference merge
//! of everything sent, poison lines reach the dead-letter topic, and the
//! CLI's `get`/`list`/`stats` read the merged state. A second test SIGKILLs
//! `serve docs-executor` mid-stream and restarts it: same final state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use tributary_bus::{BusConfig, ConsumerOptions, Message};
use tributary_documents::domain::{generate_updates, reference_merge, Document, GenParams};
use tributary_testkit::spawn::{command, Tributary};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

fn docs_cli(api: SocketAddr, args: &[&str]) -> Output {
    let api = format!("http://{api}");
    command(bin())
        .args(["docs", "--api", &api])
        .args(args)
        .output()
        .expect("run tributary docs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tributary docs failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_line(out: &Output) -> serde_json::Value {
    serde_json::from_str(ok(out).trim()).expect("one JSON object")
}

/// Every document, through `tributary docs list --json`.
fn listed(api: SocketAddr) -> BTreeMap<String, Document> {
    let text = ok(&docs_cli(api, &["list", "--limit", "1000000", "--json"]));
    text.lines()
        .map(|l| {
            let d = tributary_documents::parse_update(l.as_bytes()).expect("wire shape");
            (d.url.clone(), d)
        })
        .collect()
}

fn stats(api: SocketAddr) -> (u64, i64) {
    let v = json_line(&docs_cli(api, &["stats", "--json"]));
    (
        v["documents"].as_u64().unwrap(),
        v["outbox_pending"].as_i64().unwrap(),
    )
}

fn write_ndjson(path: &Path, docs: &[Document], poison: &[&str]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (i, d) in docs.iter().enumerate() {
        if i % 500 == 0 {
            if let Some(p) = poison.get(i / 500) {
                writeln!(f, "{p}").unwrap();
            }
        }
        writeln!(f, "{}", serde_json::to_string(d).unwrap()).unwrap();
    }
    f.flush().unwrap();
}

/// Waits until the table equals `want` and the outbox is drained.
fn wait_merged(api: SocketAddr, want: &BTreeMap<String, Document>, t: &Tributary) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (n, pending) = stats(api);
        if n == want.len() as u64 && pending == 0 && listed(api) == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not merged in time: {n} of {} documents, {pending} pending\n{}",
            want.len(),
            t.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads every record of `topic` on the embedded bus `url` (after the
/// process that owned the file has stopped).
async fn read_all(url: &str, topic: &str) -> Vec<Message> {
    let bus = tributary_bus::connect(url, &BusConfig::default())
        .await
        .unwrap();
    let mut c = bus
        .subscribe(
            &tributary_testkit::unique("docs-reader"),
            &[topic.to_owned()],
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(3), c.recv()).await {
        out.push(m.unwrap());
    }
    out
}

fn last_per_url(records: &[Message]) -> BTreeMap<String, Document> {
    let mut last = BTreeMap::new();
    for m in records {
        let d = tributary_documents::parse_update(&m.value).unwrap();
        assert_eq!(m.key.as_deref(), Some(d.url.as_bytes()), "key = url");
        last.insert(d.url.clone(), d);
    }
    last
}

// Proves `tributary up` merges what `docs send` and `docs produce` sent into exactly the
// reference merge (table, `docs list`/`get`, and the last output per url), dead-letters
// poison lines, and that the CLI reports refusals (a line without Url, an unknown url).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_merges_sent_streams_to_the_reference() {
    let dir = tributary_testkit::temp_dir();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let mut up = Tributary::start(
        bin(),
        &["up", "--data-dir", &data_arg],
        &[
            ("TRIBUTARY__AUDIT__ENABLED", "false"),
            ("TRIBUTARY__DOCS__BATCH_MAX", "300"),
        ],
        &dir.path().join("up.log"),
    );
    let ready = up.wait_ready(Duration::from_secs(90));
    let api = ready.addr_of("docs-api").expect("docs-api address");

    // 1. A file sent as it is, with poison lines (they have a Url, so the API accepts them).
    let sent = generate_updates(
        11,
        &GenParams {
            urls: 300,
            updates: 3000,
            duplicates: 0.2,
            shuffle: true,
        },
    )
    .unwrap();
    let poison = [
        r#"{"Url":"https://example.com/doc/1","FetchTime":"later"}"#,
        r#"{"Url":"https://example.com/doc/2","FetchTime":5,"FirstFetchTime":9}"#,
    ];
    let file = dir.path().join("updates.ndjson");
    write_ndjson(&file, &sent, &poison);
    let v = json_line(&docs_cli(api, &["send", file.to_str().unwrap(), "--json"]));
    assert_eq!(
        v["accepted"].as_u64(),
        Some((sent.len() + poison.len()) as u64)
    );

    // 2. A generated stream over the same urls, with its reference file.
    let reference_file = dir.path().join("reference.ndjson");
    let v = json_line(&docs_cli(
        api,
        &[
            "produce",
            "--urls",
            "400",
            "--updates",
            "2000",
            "--duplicates",
            "0.2",
            "--shuffle",
            "--seed",
            "5",
            "--reference",
            reference_file.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(v["accepted"].as_u64(), Some(2000));
    let produced = generate_updates(
        5,
        &GenParams {
            urls: 400,
            updates: 2000,
            duplicates: 0.2,
            shuffle: true,
        },
    )
    .unwrap();
    let written: BTreeMap<String, Document> = std::fs::read_to_string(&reference_file)
        .unwrap()
        .lines()
        .map(|l| {
            let d = tributary_documents::parse_update(l.as_bytes()).unwrap();
            (d.url.clone(), d)
        })
        .collect();
    assert_eq!(written, reference_merge(produced.iter().cloned()));

    let want = reference_merge(sent.iter().chain(&produced).cloned());
    wait_merged(api, &want, &up);

    // `get` prints one document in the wire shape; unknown urls and bad lines are refused.
    let (url, doc) = want.iter().next().unwrap();
    let got = json_line(&docs_cli(api, &["get", url]));
    assert_eq!(got, serde_json::to_value(doc).unwrap());
    let missing = docs_cli(api, &["get", "https://nowhere.example/x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"Url\":\"u\",\"FetchTime\":1}\n{\"FetchTime\":2}\n").unwrap();
    let refused = docs_cli(api, &["send", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("line 2") && err.contains("invalid_argument"),
        "{err}"
    );

    let st = up.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", up.log_text());

    // The output topic's last value per url is the reference merge; poison was dead-lettered.
    let bus_url = format!("sqlite://{}", data.join("bus.db").display());
    let out = read_all(&bus_url, "doc-updates-outgoing").await;
    assert_eq!(last_per_url(&out), want, "last output per url");
    let dead = read_all(&bus_url, "doc-updates-dead").await;
    let dead_values: Vec<String> = dead
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect();
    assert_eq!(dead_values.len(), poison.len(), "{dead_values:?}");
    for p in poison {
        assert!(dead_values.iter().any(|v| v == p), "{p} not dead-lettered");
    }
}

async fn store_of(sql: &str) -> tributary_documents::store::DocStore {
    let db = tributary_storage::Database::connect(sql, &tributary_storage::SqlConfig::default())
        .await
        .unwrap();
    tributary_documents::store::DocStore::open(&db)
        .await
        .unwrap()
}

async fn table(store: &tributary_documents::store::DocStore) -> BTreeMap<String, Document> {
    store
        .list(None, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.url.clone(), d))
        .collect()
}

/// The stream goes straight to the input topic, `serve docs-executor` alone
/// consumes it, is SIGKILLed mid-stream and restarted.
/// `regroup`: restart under a new consumer group (see the Kafka variant).
async fn executor_killed_mid_stream(sql: String, bus_url: String, dir: &Path, regroup: bool) {
    let input = tributary_testkit::unique("doc-in");
    let group = tributary_testkit::unique("doc-group");
    let stream = generate_updates(
        21,
        &GenParams {
            urls: 2000,
            updates: 20_000,
            duplicates: 0.2,
            shuffle: true,
        },
    )
    .unwrap();
    let want = reference_merge(stream.iter().cloned());
    {
        let bus = tributary_bus::connect(&bus_url, &BusConfig::default())
            .await
            .unwrap();
        bus.create_topic(&input, 3).await.unwrap();
        let sends: Vec<_> = stream
            .iter()
            .map(|d| {
                bus.send(tributary_bus::Record::new(
                    input.clone(),
                    d.url.clone().into_bytes(),
                    serde_json::to_vec(d).unwrap(),
                ))
            })
            .collect();
        for r in futures::future::join_all(sends).await {
            r.unwrap();
        }
        bus.flush(Duration::from_secs(30)).await.unwrap();
    }
    let store = store_of(&sql).await;
    let data = dir.to_string_lossy().into_owned();
    let env = [
        ("TRIBUTARY__SQL__URL", sql.as_str()),
        ("TRIBUTARY__BUS__URL", bus_url.as_str()),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
        ("TRIBUTARY__DOCS__INPUT_TOPIC", input.as_str()),
        ("TRIBUTARY__DOCS__GROUP", group.as_str()),
        // Small batches, so the kill lands between commits.
        ("TRIBUTARY__DOCS__BATCH_MAX", "20"),
    ];
    let mut t = Tributary::start(
        bin(),
        &["serve", "docs-executor"],
        &env,
        &dir.join("executor.log"),
    );
    t.wait_ready(Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.count().await.unwrap() < 200 {
        assert!(Instant::now() < deadline, "no progress\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.kill9();
    let at_kill = table(&store).await;
    assert_ne!(at_kill, want, "the kill must land mid-stream");
    if regroup {
        let group2 = tributary_testkit::unique("doc-group");
        let mut env2 = env.to_vec();
        env2.push(("TRIBUTARY__DOCS__GROUP", group2.as_str()));
        t = Tributary::start(
            bin(),
            &["serve", "docs-executor"],
            &env2,
            &dir.join("executor.log"),
        );
    } else {
        t.restart();
    }
    t.wait_ready(Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if table(&store).await == want {
            break;
        }
        assert!(Instant::now() < deadline, "not merged\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    // Every change is in the outbox (committed with it): last event per url = reference.
    let events = store
        .outbox()
        .claim("test", Duration::from_secs(600), 10_000_000)
        .await
        .unwrap();
    let mut last = BTreeMap::new();
    for e in events {
        let d = tributary_documents::parse_update(&e.payload).unwrap();
        last.insert(d.url.clone(), d);
    }
    eprintln!(
        "docs-executor SIGKILL with {} of {} urls merged: final state equal",
        at_kill.len(),
        want.len()
    );
    assert_eq!(last, want, "last outbox event per url");
}

// Proves a SIGKILLed `serve docs-executor` loses nothing (SQLite, embedded bus): restarted,
// the table and the last outbox event per url equal the reference merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_sigkill_loses_nothing_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    executor_killed_mid_stream(sql, bus, dir.path(), false).await;
}

// Proves the same on PostgreSQL and Kafka. The restart joins a new consumer
// group: tansu does not reliably evict a SIGKILLed member (no LeaveGroup),
// so a new member of the same group may wait for partitions that are never
// handed over (seen here in 4 of 7 runs; the same tansu behaviour is reported in
// nisshi-io/nisshi#625). A new group replays the topic from the start, which
// the idempotent SQL-side merge must absorb: the final state is still equal,
// nothing lost, nothing applied twice. Resuming from committed offsets after
// SIGKILL is shown on the embedded bus above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_sigkill_loses_nothing_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    executor_killed_mid_stream(sql, kafka, dir.path(), true).await;
}
