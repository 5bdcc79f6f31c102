//! Spawned-binary tests of the imports system. The first runs the real
//! `tributary up` (SQLite + embedded bus + file objects) and drives it only
//! through the real `tributary imports` CLI: generate a file, upload it
//! with `--wait`, read status, errors, kinds, the companies (count equal to
//! the distinct valid permalinks), a duplicate upload, `--strict`, a
//! malformed file. The second SIGKILLs `serve imports-api imports-processor
//! imports-outbox` in the middle of a file and restarts it: every valid
//! record is in the table exactly once, every bad record is reported,
//! the upload ends `completed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use tributary_bus::{BusConfig, ConsumerOptions};
use tributary_imports::store::{CompanyQuery, UploadStore};
use tributary_testkit::spawn::{command, json_lines, stdout_ok as ok, Tributary};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

fn cli(api: SocketAddr, args: &[&str]) -> Output {
    let api = format!("http://{api}");
    command(bin())
        .args(["imports", "--api", &api])
        .args(args)
        .output()
        .expect("run tributary imports")
}

/// Valid permalinks -> index of their last record, and the bad records.
fn expected(file: &Path) -> (BTreeMap<String, u64>, Vec<u64>) {
    let body = std::fs::read(file).unwrap();
    let (_, records) = tributary_imports::split(&body).unwrap();
    let mut want = BTreeMap::new();
    let mut bad = Vec::new();
    for r in records {
        match tributary_imports::validate(&r.parse().unwrap()) {
            Ok(c) => {
                want.insert(c.permalink, r.index as u64);
            }
            Err(_) => bad.push(r.index as u64),
        }
    }
    (want, bad)
}

// Proves `tributary up` imports a generated file uploaded with `tributary imports upload
// --wait`: `completed`, the companies count equals the distinct valid permalinks, every bad
// record is listed by `errors`; the same file again is a duplicate; `--strict` fails on
// rejected records; a malformed file is refused naming line and column; `kinds`, `list`
// and `status` answer in JSON.
#[test]
fn up_imports_a_file_through_the_cli() {
    let dir = tributary_testkit::temp_dir();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let mut up = Tributary::start(
        bin(),
        &["up", "--data-dir", &data_arg],
        &[
            ("TRIBUTARY__AUDIT__ENABLED", "false"),
            ("TRIBUTARY__IMPORTS__BATCH_SIZE", "100"),
        ],
        &dir.path().join("up.log"),
    );
    let ready = up.wait_ready(Duration::from_secs(90));
    let api = ready.addr_of("imports-api").expect("imports-api address");

    let file = dir.path().join("companies.ndjson");
    let f = file.to_str().unwrap();
    let summary = json_lines(&cli(
        api,
        &[
            "generate",
            "--records",
            "1500",
            "--invalid",
            "0.1",
            "--out",
            f,
            "--seed",
            "3",
            "--json",
        ],
    ));
    assert_eq!(summary[0]["records"], 1500);
    let (want, bad) = expected(&file);
    assert!(!bad.is_empty());

    let status = json_lines(&cli(
        api,
        &["upload", f, "--name", "test", "--wait", "--json"],
    ));
    let s = &status[0];
    assert_eq!(s["state"], "completed", "{s}\n{}", up.log_text());
    assert_eq!(s["records"], 1500);
    assert_eq!(s["loaded"], 1500 - bad.len() as u64);
    assert_eq!(s["rejected"], bad.len() as u64);
    let id = s["request_id"].as_str().unwrap().to_owned();

    let count = json_lines(&cli(api, &["companies", "--count", "--json"]));
    assert_eq!(count[0]["companies"], want.len() as u64);
    let listed = json_lines(&cli(api, &["companies", "--limit", "100000", "--json"]));
    let got: BTreeMap<String, u64> = listed
        .iter()
        .map(|c| {
            (
                c["permalink"].as_str().unwrap().to_owned(),
                c["record"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want, "each valid permalink once, from its last record");

    let errors = json_lines(&cli(api, &["errors", &id, "--json"]));
    let reported: Vec<u64> = errors
        .iter()
        .map(|e| e["record"].as_u64().unwrap())
        .collect();
    assert_eq!(reported, bad);
    let st = json_lines(&cli(api, &["status", &id, "--json"]));
    assert_eq!(
        (st[0]["state"].as_str(), st[0]["records"].as_u64()),
        (Some("completed"), Some(1500))
    );

    // The same bytes again: a duplicate of the first upload.
    let again = json_lines(&cli(api, &["upload", f, "--name", "again", "--json"]));
    assert_eq!(again[0]["duplicate_of"].as_str(), Some(id.as_str()));
    // --strict: rejected records fail the command (another file, same shape).
    let other = dir.path().join("other.json");
    let o = other.to_str().unwrap();
    ok(&cli(
        api,
        &[
            "generate",
            "--records",
            "50",
            "--invalid",
            "0.5",
            "--out",
            o,
            "--array",
            "--seed",
            "9",
        ],
    ));
    let strict = cli(api, &["upload", o, "--wait", "--strict"]);
    assert!(
        !strict.status.success(),
        "--strict with rejected records must fail"
    );
    assert!(String::from_utf8_lossy(&strict.stderr).contains("rejected"));
    // A malformed file: refused, naming line and column.
    let broken = dir.path().join("broken.ndjson");
    std::fs::write(
        &broken,
        "{\"name\":\"A\",\"permalink\":\"a\"}\n{\"name\": }\n",
    )
    .unwrap();
    let refused = cli(api, &["upload", broken.to_str().unwrap()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("line 2, column 10") && err.contains("invalid_argument"),
        "{err}"
    );

    let kinds = json_lines(&cli(api, &["kinds", "--json"]));
    assert_eq!(kinds[0]["kind"], "company");
    assert!(kinds[0]["rules"].as_array().unwrap().len() >= 30);
    let list = json_lines(&cli(api, &["list", "--json"]));
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(list.iter().filter(|u| u["state"] == "failed").count(), 1);

    let st = up.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", up.log_text());
}

async fn store_of(sql: &str) -> UploadStore {
    let db = tributary_storage::Database::connect(sql, &tributary_storage::SqlConfig::default())
        .await
        .unwrap();
    UploadStore::open(&db).await.unwrap()
}

async fn table(store: &UploadStore) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .companies(&CompanyQuery {
                name: None,
                limit: Some(1000),
                after: after.clone(),
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { return out };
        after = Some(last.permalink.clone());
        for c in page {
            assert!(
                out.insert(c.permalink, c.record).is_none(),
                "a permalink twice"
            );
        }
    }
}

/// `serve imports-api imports-processor imports-outbox` on `env` (SQL, bus
/// and object store chosen by the caller) gets a 12,000-record file, is
/// SIGKILLed in the middle of it (between any two batch commits, relay
/// sends, offset commits) and restarted (`regroup`: under a new consumer
/// group, which replays the files topic from the start; see the docs crash
/// test for why on tansu).
async fn processor_killed_mid_file(
    sql: &str,
    bus: &str,
    dir: &Path,
    env: &[(&str, &str)],
    regroup: bool,
    patience: Duration,
) {
    let files_topic = tributary_testkit::unique("processedFile");
    let events_topic = tributary_testkit::unique("importEvents");
    let group = tributary_testkit::unique("imports-processor");
    let data = dir.to_string_lossy().into_owned();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.extend([
        ("TRIBUTARY__SQL__URL", sql),
        ("TRIBUTARY__BUS__URL", bus),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
        ("TRIBUTARY__IMPORTS__FILES_TOPIC", files_topic.as_str()),
        ("TRIBUTARY__IMPORTS__RELAY__TOPIC", events_topic.as_str()),
        ("TRIBUTARY__IMPORTS__GROUP", group.as_str()),
        // Small batches, so the kill lands between commits.
        ("TRIBUTARY__IMPORTS__BATCH_SIZE", "25"),
    ]);
    let file = dir.join("big.ndjson");
    let docs: Vec<serde_json::Value> = tributary_imports::generate::companies(17, 12_000, 0.05)
        .map(|g| g.doc)
        .collect();
    std::fs::write(&file, tributary_imports::generate::ndjson(&docs)).unwrap();
    let (want, bad) = expected(&file);

    let args = [
        "serve",
        "imports-api",
        "imports-processor",
        "imports-outbox",
    ];
    let mut t = Tributary::start(bin(), &args, &env, &dir.join("imports.log"));
    let ready = t.wait_ready(Duration::from_secs(90));
    let api = ready.addr_of("imports-api").expect("imports-api address");
    let answer = json_lines(&cli(api, &["upload", file.to_str().unwrap(), "--json"]));
    let id = answer[0]["request_id"].as_str().unwrap().to_owned();
    let store = store_of(sql).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let u = store.get(&id).await.unwrap().unwrap();
        if u.processed >= 2000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {u:?}\n{}",
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.kill9();
    let at_kill = store.get(&id).await.unwrap().unwrap();
    assert_eq!(at_kill.state, "processing", "the kill must land mid-file");
    assert!(at_kill.processed < 12_000);
    if regroup {
        let group2 = tributary_testkit::unique("imports-processor");
        let mut env2 = env.clone();
        env2.push(("TRIBUTARY__IMPORTS__GROUP", group2.as_str()));
        t = Tributary::start(bin(), &args, &env2, &dir.join("imports.log"));
    } else {
        t.restart();
    }
    let ready = t.wait_ready(Duration::from_secs(90));
    let api = ready.addr_of("imports-api").expect("imports-api address");
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        let s = json_lines(&cli(api, &["status", &id, "--json"])).remove(0);
        if s["state"] == "completed" || s["state"] == "failed" {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not completed: {s}\n{}",
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["loaded"], 12_000 - bad.len() as u64);
    assert_eq!(done["rejected"], bad.len() as u64);
    assert_eq!(table(&store).await, want);
    let mut errors = Vec::new();
    let mut after = None;
    loop {
        let page = store.errors(&id, after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.record);
        errors.extend(page.iter().map(|e| e.record));
    }
    assert_eq!(errors, bad);
    // Wait for the relay to drain, then read the events topic.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.outbox().pending().await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained\n{}",
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    let bus = tributary_bus::connect_read_only(bus, &BusConfig::default())
        .await
        .unwrap();
    let mut c = bus
        .subscribe(
            &tributary_testkit::unique("reader"),
            std::slice::from_ref(&events_topic),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut reported = BTreeSet::new();
    let (mut validation, mut completed) = (0usize, 0usize);
    let mut wait = patience;
    while let Ok(m) = tokio::time::timeout(wait, c.recv()).await {
        wait = Duration::from_secs(5);
        let m = m.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.value).unwrap();
        match v["type"].as_str() {
            Some("ValidationError") => {
                validation += 1;
                reported.insert(v["record"].as_u64().unwrap());
            }
            Some("ImportCompleted") => completed += 1,
            _ => {}
        }
    }
    assert_eq!(
        reported,
        bad.iter().copied().collect::<BTreeSet<_>>(),
        "every bad record reported"
    );
    assert!(completed >= 1);
    eprintln!(
        "imports processor SIGKILL at record {} of 12000: final table equal ({} companies), \
         {} bad records, {validation} ValidationError records on the topic, {completed} ImportCompleted",
        at_kill.processed,
        want.len(),
        bad.len()
    );
}

// Proves a SIGKILLed processor loses nothing and repeats nothing (SQLite, embedded bus, file
// objects): killed in the middle of a 12,000-record file and restarted, the upload ends
// `completed`, the table holds each valid permalink once (from its last record), every bad
// record is in the errors exactly once and on the events topic (duplicates only from the
// relay's at-least-once resend), and the counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processor_sigkill_mid_file_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    processor_killed_mid_file(&sql, &bus, dir.path(), &[], false, Duration::from_secs(3)).await;
}

// Proves the same on PostgreSQL, Kafka and S3 (the restart joins a new group and replays the
// files topic; the checkpoint makes the replay resume, not repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processor_sigkill_mid_file_postgres_kafka_s3() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend, StoreKind, TestObjects};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let Some(objects) = TestObjects::open(StoreKind::S3) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    let c = &objects.config;
    let endpoint = c.endpoint.clone().unwrap_or_default();
    let region = c.region.clone().unwrap_or_default();
    let key = c.access_key_id.clone().unwrap_or_default();
    let secret = c.secret_access_key.clone().unwrap_or_default();
    let env = [
        ("TRIBUTARY__OBJECTS__URL", c.url.as_str()),
        ("TRIBUTARY__OBJECTS__ENDPOINT", endpoint.as_str()),
        ("TRIBUTARY__OBJECTS__REGION", region.as_str()),
        ("TRIBUTARY__OBJECTS__ACCESS_KEY_ID", key.as_str()),
        ("TRIBUTARY__OBJECTS__SECRET_ACCESS_KEY", secret.as_str()),
        ("TRIBUTARY__OBJECTS__ALLOW_HTTP", "true"),
    ];
    processor_killed_mid_file(
        &sql,
        &kafka,
        dir.path(),
        &env,
        true,
        Duration::from_secs(90),
    )
    .await;
}

// Proves two processor replicas on Kafka share uploads by partition: one process runs the API
// and the relay, two more run `imports-processor` in one consumer group; uploads are sent in
// waves of three (keys spread over the files topic's partitions) until both replicas have
// loaded records, then every upload ends `completed` with its file's valid and bad counts, and
// the table holds exactly the union of the valid permalinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processor_replicas_share_uploads_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    let objects = format!("file://{}", dir.path().join("objects").display());
    let files_topic = tributary_testkit::unique("processedFile");
    let events_topic = tributary_testkit::unique("importEvents");
    let group = tributary_testkit::unique("imports-processor");
    let data = dir.path().to_string_lossy().into_owned();
    let env = [
        ("TRIBUTARY__SQL__URL", sql.as_str()),
        ("TRIBUTARY__BUS__URL", kafka.as_str()),
        ("TRIBUTARY__OBJECTS__URL", objects.as_str()),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
        ("TRIBUTARY__IMPORTS__FILES_TOPIC", files_topic.as_str()),
        ("TRIBUTARY__IMPORTS__RELAY__TOPIC", events_topic.as_str()),
        ("TRIBUTARY__IMPORTS__GROUP", group.as_str()),
    ];
    let mut front = Tributary::start(
        bin(),
        &["serve", "imports-api", "imports-outbox"],
        &env,
        &dir.path().join("front.log"),
    );
    let mut replicas = [
        Tributary::start(
            bin(),
            &["serve", "imports-processor"],
            &env,
            &dir.path().join("p1.log"),
        ),
        Tributary::start(
            bin(),
            &["serve", "imports-processor"],
            &env,
            &dir.path().join("p2.log"),
        ),
    ];
    let api = front
        .wait_ready(Duration::from_secs(90))
        .addr_of("imports-api")
        .expect("imports-api address");
    for r in &mut replicas {
        r.wait_ready(Duration::from_secs(90));
    }
    let loaded = |r: &Tributary| r.metric(tributary_imports::metrics::RECORDS_LOADED);

    let mut uploads = Vec::new(); // (request id, valid records, bad records)
    let mut permalinks = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    for wave in 0u64.. {
        for i in 0..3u64 {
            let file = dir.path().join(format!("wave{wave}-file{i}.ndjson"));
            let docs: Vec<serde_json::Value> =
                tributary_imports::generate::companies(1000 + wave * 3 + i, 400, 0.05)
                    .map(|g| g.doc)
                    .collect();
            std::fs::write(&file, tributary_imports::generate::ndjson(&docs)).unwrap();
            let (want, bad) = expected(&file);
            permalinks.extend(want.keys().cloned());
            let answer = json_lines(&cli(api, &["upload", file.to_str().unwrap(), "--json"]));
            let id = answer[0]["request_id"].as_str().unwrap().to_owned();
            uploads.push((id, 400 - bad.len() as u64, bad.len() as u64));
        }
        // Let this wave land before judging whether both replicas have work.
        let settle = Instant::now() + Duration::from_secs(20);
        while Instant::now() < settle && !replicas.iter().all(|r| loaded(r) > 0.0) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if replicas.iter().all(|r| loaded(r) > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline && wave < 8,
            "after {} uploads one replica never loaded a record: {} / {}\n{}\n{}",
            uploads.len(),
            loaded(&replicas[0]),
            loaded(&replicas[1]),
            replicas[0].log_text(),
            replicas[1].log_text()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    for (id, valid, bad) in &uploads {
        let done = loop {
            let s = json_lines(&cli(api, &["status", id, "--json"])).remove(0);
            if s["state"] == "completed" || s["state"] == "failed" {
                break s;
            }
            assert!(Instant::now() < deadline, "not completed: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(done["state"], "completed", "{done}");
        assert_eq!(done["loaded"], *valid, "{done}");
        assert_eq!(done["rejected"], *bad, "{done}");
    }
    let store = store_of(&sql).await;
    let table: BTreeSet<String> = table(&store).await.into_keys().collect();
    assert_eq!(
        table, permalinks,
        "the table holds exactly the valid permalinks"
    );
    let (a, b) = (loaded(&replicas[0]), loaded(&replicas[1]));
    let total: u64 = uploads.iter().map(|u| u.1).sum();
    assert!(a + b >= total as f64, "replicas loaded {a} + {b} < {total}");
    eprintln!(
        "two replicas: {} uploads, {total} valid records; replica 1 loaded {a}, replica 2 {b} \
         (more than the total only if a rebalance repeated a batch); table {} permalinks",
        uploads.len(),
        table.len()
    );
    for r in &mut replicas {
        let st = r.stop(Duration::from_secs(30));
        assert!(st.success(), "exit after SIGTERM: {st}\n{}", r.log_text());
    }
    let st = front.stop(Duration::from_secs(30));
    assert!(
        st.success(),
        "exit after SIGTERM: {st}\n{}",
        front.log_text()
    );
}
