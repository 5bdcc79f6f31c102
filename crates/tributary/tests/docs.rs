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

use tributary_documents::domain::{generate_updates, reference_merge, Document, GenParams};
use tributary_testkit::spawn::{command, stdout_ok as ok, Tributary};

mod common;

use common::bin;
use common::docs::{feed, last_per_url, store_of, table};

fn docs_cli(api: SocketAddr, args: &[&str]) -> Output {
    let api = format!("http://{api}");
    command(bin())
        .args(["docs", "--api", &api])
        .args(args)
        .output()
        .expect("run tributary docs")
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
    let out =
        tributary_testkit::read_topic(&bus_url, "doc-updates-outgoing", Duration::from_secs(3))
            .await;
    assert_eq!(last_per_url(&out), want, "last output per url");
    let dead =
        tributary_testkit::read_topic(&bus_url, "doc-updates-dead", Duration::from_secs(3)).await;
    let dead_values: Vec<String> = dead
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect();
    assert_eq!(dead_values.len(), poison.len(), "{dead_values:?}");
    for p in poison {
        assert!(dead_values.iter().any(|v| v == p), "{p} not dead-lettered");
    }
}

/// A generated stream already on its own new input topic.
struct Fed {
    input: String,
    updates: usize,
    want: BTreeMap<String, Document>,
}

/// Generates `updates` shuffled updates (20% duplicates) over `urls` from
/// `seed`, writes them to a new unique topic of `partitions` on `bus_url`
/// and returns it with the reference merge.
async fn fed_stream(bus_url: &str, partitions: i32, seed: u64, urls: usize, updates: usize) -> Fed {
    let stream = generate_updates(
        seed,
        &GenParams {
            urls,
            updates,
            duplicates: 0.2,
            shuffle: true,
        },
    )
    .unwrap();
    let input = tributary_testkit::unique("doc-in");
    feed(bus_url, &input, partitions, &stream).await;
    Fed {
        input,
        updates: stream.len(),
        want: reference_merge(stream.iter().cloned()),
    }
}

/// The settings every spawned executor of these tests gets: its backends,
/// data directory, input topic and batch size; audit off.
fn executor_env<'a>(
    sql: &'a str,
    bus: &'a str,
    data: &'a str,
    input: &'a str,
    batch_max: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TRIBUTARY__SQL__URL", sql),
        ("TRIBUTARY__BUS__URL", bus),
        ("TRIBUTARY__DATA_DIR", data),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
        ("TRIBUTARY__DOCS__INPUT_TOPIC", input),
        ("TRIBUTARY__DOCS__BATCH_MAX", batch_max),
    ]
}

/// Waits until the table equals `want` and, when a relay runs (`relayed`),
/// the outbox is empty.
async fn wait_state(
    store: &tributary_documents::store::DocStore,
    want: &BTreeMap<String, Document>,
    procs: &[&Tributary],
    relayed: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let drained = !relayed || store.outbox().pending().await.unwrap() == 0;
        if drained && table(store).await == *want {
            return;
        }
        let logs: Vec<String> = procs.iter().map(|t| t.log_text()).collect();
        assert!(
            Instant::now() < deadline,
            "not merged and relayed in time\n{}",
            logs.join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The output topic holds the reference merge as the last value per url;
/// returns (records, urls) for the log.
async fn check_output(
    bus_url: &str,
    topic: &str,
    patience: Duration,
    want: &BTreeMap<String, Document>,
) -> (usize, usize) {
    let out = tributary_testkit::read_topic(bus_url, topic, patience).await;
    let last = last_per_url(&out);
    assert_eq!(last.len(), want.len(), "urls on the output topic");
    assert!(
        last == *want,
        "last output per url differs from the reference merge"
    );
    (out.len(), last.len())
}

/// The stream goes straight to the input topic; `serve docs-executor
/// docs-outbox` (state, outbox and relay in one process) consumes it, is
/// SIGKILLed mid-stream (between any two steps: commit, relay send, offset
/// commit) and restarted. `regroup`: restart under a new consumer group
/// (see the Kafka variant).
async fn executor_killed_mid_stream(
    sql: String,
    bus_url: String,
    dir: &Path,
    regroup: bool,
    patience: Duration,
) {
    let output = tributary_testkit::unique("doc-out");
    let group = tributary_testkit::unique("doc-group");
    let Fed { input, want, .. } = fed_stream(&bus_url, 3, 21, 2000, 20_000).await;
    let store = store_of(&sql).await;
    let data = dir.to_string_lossy().into_owned();
    // Small batches, so the kill lands between commits.
    let mut env = executor_env(&sql, &bus_url, &data, &input, "20");
    env.push(("TRIBUTARY__DOCS__RELAY__TOPIC", output.as_str()));
    env.push(("TRIBUTARY__DOCS__GROUP", group.as_str()));
    let args = ["serve", "docs-executor", "docs-outbox"];
    let mut t = Tributary::start(bin(), &args, &env, &dir.join("executor.log"));
    t.wait_ready(Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.count().await.unwrap() < 200 {
        assert!(Instant::now() < deadline, "no progress\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.kill9();
    let at_kill = table(&store).await;
    let pending_at_kill = store.outbox().pending().await.unwrap();
    assert_ne!(at_kill, want, "the kill must land mid-stream");
    if regroup {
        let group2 = tributary_testkit::unique("doc-group");
        let mut env2 = env.clone();
        env2.push(("TRIBUTARY__DOCS__GROUP", group2.as_str()));
        t = Tributary::start(bin(), &args, &env2, &dir.join("executor.log"));
    } else {
        t.restart();
    }
    t.wait_ready(Duration::from_secs(90));
    wait_state(&store, &want, &[&t], true).await;
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    // Every committed change reached the output topic, even those whose relay send the kill
    // cut off: the last output per url is the reference merge.
    let (records, urls) = check_output(&bus_url, &output, patience, &want).await;
    eprintln!(
        "docs executor+outbox SIGKILL with {} of {} urls merged and {pending_at_kill} outputs unsent: \
         final state equal; {records} output records for {urls} urls",
        at_kill.len(),
        want.len()
    );
}

// Proves a SIGKILLed `serve docs-executor docs-outbox` loses nothing (SQLite, embedded bus):
// restarted, the table and the last output-topic record per url equal the reference merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_sigkill_loses_nothing_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    executor_killed_mid_stream(sql, bus, dir.path(), false, Duration::from_secs(15)).await;
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
    executor_killed_mid_stream(sql, kafka, dir.path(), true, Duration::from_secs(90)).await;
}

// Proves two executor replicas in one group on Kafka hand partitions over without losing or
// double-applying state: A runs alone, B joins mid-stream (rebalance; B must then merge
// part of the stream itself), A leaves on SIGTERM (rebalance; B takes every partition).
// The table and the last output per url equal the reference merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_rebalance_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    let output = tributary_testkit::unique("doc-out");
    let group = tributary_testkit::unique("doc-group");
    let fed = fed_stream(&kafka, 4, 33, 4000, 40_000).await;
    let want = &fed.want;
    let store = store_of(&sql).await;
    let data = dir.path().to_string_lossy().into_owned();
    // Small batches: the stream lasts long enough for two rebalances.
    let mut env = executor_env(&sql, &kafka, &data, &fed.input, "10");
    env.push(("TRIBUTARY__DOCS__RELAY__TOPIC", output.as_str()));
    env.push(("TRIBUTARY__DOCS__GROUP", group.as_str()));
    let args = ["serve", "docs-executor", "docs-outbox"];
    let mut a = Tributary::start(bin(), &args, &env, &dir.path().join("a.log"));
    a.wait_ready(Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.count().await.unwrap() < 100 {
        assert!(
            Instant::now() < deadline,
            "A makes no progress\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut b = Tributary::start(bin(), &args, &env, &dir.path().join("b.log"));
    b.wait_ready(Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.metric("tributary_docs_updates_in_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "B got no partition after joining\n{}\n----\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_in = a.metric("tributary_docs_updates_in_total");
    assert!(
        (a_in as usize) < fed.updates,
        "the stream must still be running when B joins"
    );
    let st = a.stop(Duration::from_secs(60));
    assert!(
        st.success(),
        "A's exit after SIGTERM: {st}\n{}",
        a.log_text()
    );
    wait_state(&store, want, &[&b], true).await;
    let b_in = b.metric("tributary_docs_updates_in_total");
    let st = b.stop(Duration::from_secs(60));
    assert!(
        st.success(),
        "B's exit after SIGTERM: {st}\n{}",
        b.log_text()
    );
    let (records, urls) = check_output(&kafka, &output, Duration::from_secs(90), want).await;
    eprintln!(
        "rebalance: A merged {a_in} updates before leaving, B {b_in}; \
         {records} output records for {urls} urls; final state equal"
    );
}

/// A Redis server of this test's own (so it can be flushed and stopped).
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) on PATH");
        let me = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while me.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "own redis-server does not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }
    fn cli(&self, args: &[&str]) -> String {
        std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill9();
    }
}

// Proves the cache is only an accelerator: with Redis FLUSHALLed and then SIGKILLed
// mid-stream, the executor keeps merging from the database, the final table and outbox equal
// the reference merge, and once Redis is back the executor uses it again (cache hits grow,
// keys reappear). Every state left in the cache equals the durable row of its url.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flushed_and_stopped_mid_stream() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus_url = format!("sqlite://{}", dir.path().join("bus.db").display());
    let port = tributary_testkit::spawn::free_port();
    let mut redis = OwnRedis::start(port);
    let cache_url = format!("redis://127.0.0.1:{port}");
    let fed = fed_stream(&bus_url, 3, 44, 2000, 30_000).await;
    let store = store_of(&sql).await;
    let data = dir.path().to_string_lossy().into_owned();
    let mut env = executor_env(&sql, &bus_url, &data, &fed.input, "10");
    env.push(("TRIBUTARY__CACHE__URL", cache_url.as_str()));
    env.push(("TRIBUTARY__DOCS__CACHE_RETRY_MS", "300"));
    let mut t = Tributary::start(
        bin(),
        &["serve", "docs-executor"],
        &env,
        &dir.path().join("x.log"),
    );
    t.wait_ready(Duration::from_secs(90));
    progress(&t, 3000.0).await;
    assert!(
        t.metric("tributary_docs_cache_hits_total") > 0.0,
        "the cache is used"
    );
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    let n = progress(&t, 6000.0).await;
    redis.kill9();
    progress(&t, n + 3000.0).await;
    let hits_down = t.metric("tributary_docs_cache_hits_total");
    let n = progress(&t, n + 6000.0).await;
    assert_eq!(
        t.metric("tributary_docs_cache_hits_total"),
        hits_down,
        "no hits while Redis is down"
    );
    assert!(
        n + 6000.0 < fed.updates as f64,
        "the stream must outlast the outage by far"
    );
    let redis = OwnRedis::start(port);
    wait_state(&store, &fed.want, &[&t], false).await;
    let hits_end = t.metric("tributary_docs_cache_hits_total");
    assert!(
        hits_end > hits_down,
        "the cache is used again once Redis is back"
    );
    // Nothing in the cache is other than the durable state of its url.
    let keys: Vec<String> = redis.cli(&["--scan"]).lines().map(str::to_owned).collect();
    assert!(!keys.is_empty(), "states were cached again");
    let db = table(&store).await;
    for chunk in keys.chunks(200) {
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(String::as_str));
        for (key, value) in chunk.iter().zip(redis.cli(&args).lines()) {
            let cached = tributary_documents::parse_update(value.as_bytes()).unwrap();
            assert_eq!(Some(&cached), db.get(&cached.url), "cache entry {key}");
        }
    }
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    eprintln!(
        "redis flush + stop mid-stream: final state equal; hits {hits_down} before the restart, \
         {hits_end} at the end; {} keys cached",
        keys.len()
    );
}

/// Waits until the process has merged at least `at` updates; returns the count.
async fn progress(t: &Tributary, at: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = t.metric("tributary_docs_updates_in_total");
        if n >= at {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "stuck at {n} updates\n{}",
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Proves the executor survives PostgreSQL cutting its connections (the test's own
// database only, three times mid-stream, as a failover does): batches caught in a
// cut roll back and are retried, nothing is lost or applied twice, and the table
// and the last output per url equal the reference merge (PostgreSQL + embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_mid_stream() {
    use tributary_testkit::{backend, cut_postgres_connections, fresh_postgres_db, Backend};
    let Some(pg) = backend(Backend::Postgres) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    let bus_url = format!("sqlite://{}", dir.path().join("bus.db").display());
    let output = tributary_testkit::unique("doc-out");
    let fed = fed_stream(&bus_url, 3, 45, 2000, 30_000).await;
    // Opened before the cuts only to migrate; the checks use a fresh pool.
    drop(store_of(&sql).await);
    let data = dir.path().to_string_lossy().into_owned();
    let mut env = executor_env(&sql, &bus_url, &data, &fed.input, "10");
    env.push(("TRIBUTARY__DOCS__RELAY__TOPIC", output.as_str()));
    let mut t = Tributary::start(
        bin(),
        &["serve", "docs-executor", "docs-outbox"],
        &env,
        &dir.path().join("x.log"),
    );
    t.wait_ready(Duration::from_secs(90));
    let mut cut = 0;
    for at in [3000.0, 8000.0, 13000.0] {
        progress(&t, at).await;
        cut += cut_postgres_connections(&sql).await.unwrap();
    }
    assert!(cut >= 3, "connections were cut ({cut})");
    let done = t.metric("tributary_docs_updates_in_total");
    assert!(
        done < fed.updates as f64,
        "the stream must outlast the cuts ({done} of {})",
        fed.updates
    );
    let store = store_of(&sql).await;
    wait_state(&store, &fed.want, &[&t], true).await;
    let retries = t.metric("tributary_docs_batch_retries_total");
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    let (records, urls) = check_output(&bus_url, &output, Duration::from_secs(15), &fed.want).await;
    eprintln!(
        "postgres connections cut 3 times ({cut} backends): final state equal; \
         {retries} batch retries; {records} output records for {urls} urls"
    );
}
