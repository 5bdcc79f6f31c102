//! The imports services against real backends, each scenario on SQLite +
//! embedded bus + file objects and on PostgreSQL + Kafka + S3 (the test
//! kit's ports). Proves: every upload shape gets the right answer and
//! event and nothing half-stored stays in the object store; the same bytes
//! (gzipped or not) are stored once; the processor loads every valid
//! record exactly once (last record of a permalink wins), reports every bad
//! one (rows and `ValidationError` events), ends with `ImportCompleted`,
//! changes nothing when the event is redelivered or the upload reprocessed;
//! a completed file uploaded again is a duplicate that emits nothing; a
//! poison event reaches the dead-letter topic; a JSON Schema kind loads into
//! the generic table and names the failing keyword; an object store that
//! fails makes an upload 503 with nothing emitted; a database that goes
//! away makes the processor retry until it is back, losing nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tributary_bus::{ConsumerOptions, Message, Record};
use tributary_imports::api::{self, ApiState, UploadAnswer, UploadStatus};
use tributary_imports::kinds::Kinds;
use tributary_imports::processor::{Outcome, Processor};
use tributary_imports::settings::ImportsSettings;
use tributary_imports::store::{CompanyQuery, UploadStore};
use tributary_imports::{events, generate, system, validate};
use tributary_storage::Objects;
use tributary_testkit::{unique, BusKind, Sql, StoreKind, TestBus, TestDb, TestObjects};

struct Rig {
    db: TestDb,
    bus: TestBus,
    _objects: TestObjects,
    objects: Objects,
    store: UploadStore,
    settings: Arc<ImportsSettings>,
    kinds: Arc<Kinds>,
    router: axum::Router,
}

async fn rig(
    sql: Sql,
    bus: BusKind,
    store: StoreKind,
    edit: impl FnOnce(&mut ImportsSettings),
) -> Option<Rig> {
    let db = TestDb::open(sql).await?;
    let bus = TestBus::open(bus).await?;
    let objects_port = TestObjects::open(store)?;
    let objects = objects_port.objects.with_prefix("imports").unwrap();
    let mut settings = ImportsSettings {
        retry_base_ms: 20,
        ..ImportsSettings::default()
    };
    settings.relay.poll_interval_ms = 10;
    edit(&mut settings);
    let settings = Arc::new(settings);
    let kinds = Kinds::load(&settings).unwrap();
    let store = UploadStore::open(&db.db).await.unwrap();
    let router = tributary_runtime::http::layered(
        api::router(ApiState {
            store: store.clone(),
            objects: objects.clone(),
            bus: bus.bus.clone(),
            settings: settings.clone(),
            kinds: kinds.clone(),
            started: Instant::now(),
        }),
        "imports-api",
        api::limits(&settings),
    );
    Some(Rig {
        db,
        bus,
        _objects: objects_port,
        objects,
        store,
        settings,
        kinds,
        router,
    })
}

async fn call(r: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn post(path: &str, body: impl Into<Body>, gzip: bool) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if gzip {
        b = b.header("content-encoding", "gzip");
    }
    b.body(body.into()).unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn accepted(r: &axum::Router, path: &str, body: Vec<u8>, gzip: bool) -> UploadAnswer {
    let (status, text) = call(r, post(path, body, gzip)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn status_of(r: &axum::Router, id: &str) -> UploadStatus {
    let (s, text) = call(
        r,
        Request::get(format!("/api/imports/uploads/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Every event in the imports outbox: (kind, key, payload JSON).
async fn outbox(store: &UploadStore) -> Vec<(String, String, serde_json::Value)> {
    store
        .outbox()
        .claim(&unique("reader"), Duration::from_secs(600), 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8(e.key).unwrap(),
                serde_json::from_slice(&e.payload).unwrap(),
            )
        })
        .collect()
}

/// Reads `topic` with a fresh group until `done` holds (or the patience runs out).
async fn read_until(bus: &TestBus, topic: &str, done: impl Fn(&[Message]) -> bool) -> Vec<Message> {
    let mut consumer = bus
        .bus
        .subscribe(
            &unique("reader"),
            &[topic.to_owned()],
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + bus.patience();
    while !done(&out) && Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            out.push(m);
        }
    }
    consumer.close().await.unwrap();
    out
}

const UPLOAD: &str = "/api/imports/import/company/shapes";

async fn shapes_scenario(sql: Sql, bus: BusKind, store: StoreKind) {
    let Some(rig) = rig(sql, bus, store, |s| {
        s.max_body_bytes = 4096;
    })
    .await
    else {
        return;
    };
    let r = &rig.router;
    let one = br#"{"name":"Wetpaint","permalink":"wetpaint"}"#.to_vec();
    let a = accepted(r, UPLOAD, one.clone(), false).await;
    assert_eq!((a.records, a.format.as_str()), (1, "object"));
    assert_eq!(a.size, one.len() as u64);
    let arr = accepted(
        r,
        UPLOAD,
        br#"[{"name":"A","permalink":"a"}, {"name":"B","permalink":"b"}]"#.to_vec(),
        false,
    )
    .await;
    assert_eq!((arr.records, arr.format.as_str()), (2, "array"));
    let nd =
        b"{\"name\":\"A\",\"permalink\":\"a\"}\n{\"name\":\"B\",\"permalink\":\"b\"}\n{\"x\":1}\n"
            .to_vec();
    let n = accepted(r, "/import/company/nd", nd.clone(), false).await;
    assert_eq!((n.records, n.format.as_str()), (3, "ndjson"));
    // gzip: decoded on the fly; the checksum is over the decoded bytes, so
    // it is the same upload as the plain one (not completed yet: resumed).
    let g = accepted(r, UPLOAD, gz(&nd), true).await;
    assert_eq!(
        (g.checksum.as_str(), g.size, g.records),
        (n.checksum.as_str(), n.size, 3)
    );
    assert_eq!(g.resumes.as_deref(), Some(n.request_id.as_str()));
    assert_eq!(g.duplicate_of, None);
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&one);
    let b = accepted(r, UPLOAD, bom, false).await;
    assert_eq!((b.records, b.format.as_str()), (1, "object"));

    let refused: Vec<(&str, Vec<u8>, bool, StatusCode, &str)> = vec![
        (
            "empty",
            Vec::new(),
            false,
            StatusCode::BAD_REQUEST,
            "empty body",
        ),
        (
            "blank",
            b"  \n ".to_vec(),
            false,
            StatusCode::BAD_REQUEST,
            "empty body",
        ),
        (
            "garbage",
            b"{\"a\":1}\n x".to_vec(),
            false,
            StatusCode::BAD_REQUEST,
            "line 2, column 2",
        ),
        (
            "cut",
            b"{\"a\": [1, 2".to_vec(),
            false,
            StatusCode::BAD_REQUEST,
            "unexpected end of body",
        ),
        (
            "scalar",
            b"[{\"a\":1}, 2]".to_vec(),
            false,
            StatusCode::BAD_REQUEST,
            "line 1, column 11",
        ),
        (
            "large",
            format!("[{}]", vec![one_str(); 200].join(",")).into_bytes(),
            false,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 4096",
        ),
        (
            "bomb",
            gz(&format!("[{}]", vec![one_str(); 200].join(",")).into_bytes()),
            true,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 4096",
        ),
        (
            "badgzip",
            b"not gzip at all".to_vec(),
            true,
            StatusCode::BAD_REQUEST,
            "gzip",
        ),
        (
            "cutgzip",
            gz(&nd)[..20].to_vec(),
            true,
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (what, body, gzip, want, text) in &refused {
        let (s, got) = call(r, post(UPLOAD, body.clone(), *gzip)).await;
        assert_eq!(s, *want, "{what}: {got}");
        assert!(got.contains(text), "{what}: {got}");
        let code = if *want == StatusCode::PAYLOAD_TOO_LARGE {
            "resource_exhausted"
        } else {
            "invalid_argument"
        };
        assert!(got.contains(code), "{what}: {got}");
    }
    // A body stream that breaks off (the client went away).
    let broken = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(Bytes::from_static(b"{\"name\":\"A\",")),
        Err(std::io::Error::other("connection reset")),
    ]);
    let (s, got) = call(r, post(UPLOAD, Body::from_stream(broken), false)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{got}");
    assert!(got.contains("ended early"), "{got}");
    // Unknown kind: 404 naming the known ones, nothing recorded.
    let (s, got) = call(r, post("/api/imports/import/planet/x", one.clone(), false)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{got}");
    assert!(got.contains("known kinds: company"), "{got}");
    // Unsupported encoding.
    let req = Request::post(UPLOAD)
        .header("content-encoding", "br")
        .body(Body::from(one.clone()))
        .unwrap();
    let (s, got) = call(r, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{got}");

    // Nothing half-stored: only the final objects of accepted bodies.
    let objects = rig.objects.list("").await.unwrap();
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let mut want: Vec<String> = [&a.checksum, &arr.checksum, &n.checksum, &b.checksum]
        .iter()
        .map(|c| format!("files/{c}"))
        .collect();
    want.sort();
    assert_eq!(keys, want, "objects: {keys:?}");
    let stored = rig
        .objects
        .get(&format!("files/{}", n.checksum))
        .await
        .unwrap();
    assert_eq!(&stored[..], &nd[..]);

    // Events: one FileExtractSuccess per accepted upload (key = name), one
    // FileExtractError per refused body (line and column for syntax).
    let events = outbox(&rig.store).await;
    let count = |k: &str| events.iter().filter(|e| e.0 == k).count();
    assert_eq!(count("FileExtractSuccess"), 5, "{events:?}");
    assert_eq!(count("FileExtractError"), refused.len() + 1, "{events:?}");
    let garbage = events
        .iter()
        .find(|e| e.0 == "FileExtractError" && e.2["line"] == 2)
        .expect("the trailing-garbage error");
    assert_eq!(
        (garbage.1.as_str(), garbage.2["column"].as_u64()),
        ("shapes", Some(2))
    );
    let nd_event = events
        .iter()
        .find(|e| e.2["request_id"] == n.request_id.as_str())
        .unwrap();
    assert_eq!(nd_event.1, "nd");
    assert_eq!(nd_event.2["records"], 3);
    assert_eq!(nd_event.2["checksum"], n.checksum.as_str());

    // Status of a refused upload says why; the list has them all.
    let (s, text) = call(
        r,
        Request::get("/api/imports/uploads?limit=100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let page: api::UploadPage = serde_json::from_str(&text).unwrap();
    assert_eq!(page.uploads.len(), 5 + refused.len() + 1);
    // Paging by two (uploads of one millisecond neither skipped nor repeated).
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let (s, text) = call(
            r,
            Request::get(format!("/api/imports/uploads?limit=2{q}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{text}");
        let p: api::UploadPage = serde_json::from_str(&text).unwrap();
        paged.extend(p.uploads.into_iter().map(|u| u.request_id));
        match p.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let all: Vec<String> = page.uploads.iter().map(|u| u.request_id.clone()).collect();
    assert_eq!(paged, all);
    let failed = page.uploads.iter().filter(|u| u.state == "failed").count();
    assert_eq!(failed, refused.len() + 1);
    assert!(page
        .uploads
        .iter()
        .all(|u| u.state == "failed" || u.state == "stored"));
    drop(rig.db);
}

fn one_str() -> &'static str {
    r#"{"name":"Wetpaint","permalink":"wetpaint"}"#
}

fn run_services(rig: &Rig, token: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let relay = tributary_runtime::outbox::Relay::new(
        rig.store.outbox(),
        rig.bus.bus.clone(),
        rig.settings.relay.clone(),
        system::encoder(rig.settings.files_topic.clone()),
    );
    let t = token.clone();
    let relay = tokio::spawn(async move { relay.run(t).await.unwrap() });
    let processor = Arc::new(Processor::new(
        rig.store.clone(),
        rig.objects.clone(),
        rig.settings.clone(),
        rig.kinds.clone(),
    ));
    let (bus, cfg, t) = (
        rig.bus.bus.clone(),
        system::runner_config(&rig.settings),
        token.clone(),
    );
    let consumer = tokio::spawn(async move {
        tributary_bus::runner::run(bus, cfg, processor, t)
            .await
            .unwrap();
    });
    vec![relay, consumer]
}

async fn wait_done(rig: &Rig, id: &str) -> UploadStatus {
    let deadline = Instant::now() + rig.bus.patience() + Duration::from_secs(30);
    loop {
        let s = status_of(&rig.router, id).await;
        if s.state == "completed" || s.state == "failed" {
            return s;
        }
        assert!(Instant::now() < deadline, "upload {id} still {}", s.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn load_scenario(sql: Sql, bus: BusKind, store: StoreKind) {
    let Some(rig) = rig(sql, bus, store, |s| {
        s.batch_size = 16;
        s.status_errors = 5;
    })
    .await
    else {
        return;
    };
    rig.bus
        .bus
        .create_topic(&rig.settings.files_topic, 3)
        .await
        .unwrap();
    rig.bus
        .bus
        .create_topic(rig.settings.events_topic(), 3)
        .await
        .unwrap();
    let token = CancellationToken::new();
    let tasks = run_services(&rig, &token);

    // 300 generated companies, ~15% broken, permalinks repeating.
    let docs: Vec<serde_json::Value> = generate::companies(7, 300, 0.15).map(|g| g.doc).collect();
    let body = generate::ndjson(&docs);
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        match validate(d) {
            Ok(c) => {
                want.insert(c.permalink, i as u64);
            }
            Err(_) => bad.push(i as u64),
        }
    }
    assert!(
        !bad.is_empty() && want.len() < 300 - bad.len(),
        "the data has bad records and repeated permalinks"
    );

    let first = accepted(
        &rig.router,
        "/api/imports/import/company/crunchbase",
        body.clone(),
        false,
    )
    .await;
    assert_eq!(first.records, 300);
    let done = wait_done(&rig, &first.request_id).await;
    assert_eq!(done.state, "completed", "{done:?}");
    assert_eq!((done.records, done.processed), (300, 300));
    assert_eq!(done.rejected, bad.len() as u64);
    assert_eq!(done.loaded, 300 - bad.len() as u64);
    assert_eq!(done.errors.len(), 5, "the first status_errors errors");
    assert_eq!(done.errors[0].record, bad[0]);

    // Every valid permalink once, written by its last record.
    let mut table: BTreeMap<String, u64> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = rig
            .store
            .companies(&CompanyQuery {
                name: None,
                limit: Some(100),
                after: after.clone(),
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.permalink.clone());
        for c in page {
            assert_eq!(c.request_id, first.request_id);
            assert_eq!(c.document["permalink"], c.permalink.as_str());
            table.insert(c.permalink, c.record);
        }
    }
    assert_eq!(table, want);
    assert_eq!(rig.store.company_count().await.unwrap(), want.len() as u64);
    // Name query: case-insensitive substring.
    let some = want.keys().next().unwrap().clone();
    let name = docs[want[&some] as usize]["name"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let hits = rig
        .store
        .companies(&CompanyQuery {
            name: Some(name.clone()),
            limit: Some(1000),
            after: None,
        })
        .await
        .unwrap();
    assert!(hits.iter().any(|c| c.permalink == some), "{name}");
    assert!(hits.iter().all(|c| c.name.to_uppercase().contains(&name)));

    // Every bad record in the errors (paged) and on the events topic.
    let mut errors = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let q = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let (s, text) = call(
            &rig.router,
            Request::get(format!(
                "/api/imports/uploads/{}/errors?limit=7{q}",
                first.request_id
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{text}");
        let page: api::ErrorPage = serde_json::from_str(&text).unwrap();
        errors.extend(page.errors.iter().map(|e| e.record));
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(errors, bad);
    let events_topic = rig.settings.events_topic().to_owned();
    let n_bad = bad.len();
    let msgs = read_until(&rig.bus, &events_topic, |m| {
        m.iter().any(|m| {
            m.header("type")
                .is_some_and(|t| &t[..] == b"ImportCompleted")
        }) && m
            .iter()
            .filter(|m| {
                m.header("type")
                    .is_some_and(|t| &t[..] == b"ValidationError")
            })
            .count()
            >= n_bad
    })
    .await;
    let typed = |t: &str| -> Vec<serde_json::Value> {
        msgs.iter()
            .filter(|m| m.header("type").is_some_and(|h| &h[..] == t.as_bytes()))
            .map(|m| serde_json::from_slice(&m.value).unwrap())
            .collect()
    };
    let mut reported: Vec<u64> = typed("ValidationError")
        .iter()
        .map(|v| v["record"].as_u64().unwrap())
        .collect();
    reported.sort_unstable();
    assert_eq!(reported, bad, "one ValidationError per bad record");
    let v0 = &typed("ValidationError")[0];
    assert!(
        v0["rule"]
            .as_str()
            .is_some_and(|r| tributary_imports::RULES.iter().any(|(n, _)| *n == r)),
        "{v0}"
    );
    let completed = typed("ImportCompleted");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["loaded"], 300 - n_bad as u64);
    assert_eq!(completed[0]["rejected"], n_bad as u64);

    // Redelivery of the same event changes nothing.
    let files = read_until(&rig.bus, &rig.settings.files_topic, |m| !m.is_empty()).await;
    assert_eq!(files.len(), 1);
    let event = events::parse_file_event(&files[0].value).unwrap();
    assert_eq!(files[0].key.as_deref(), Some(&b"crunchbase"[..]));
    let processor = Processor::new(
        rig.store.clone(),
        rig.objects.clone(),
        rig.settings.clone(),
        rig.kinds.clone(),
    );
    assert_eq!(processor.process(&event).await.unwrap(), Outcome::Skipped);
    assert_eq!(rig.store.company_count().await.unwrap(), want.len() as u64);

    // The same bytes again, gzipped: a duplicate, nothing emitted.
    let before = rig.store.outbox().pending().await.unwrap();
    let again = accepted(
        &rig.router,
        "/api/imports/import/company/again",
        gz(&body),
        true,
    )
    .await;
    assert_eq!(
        again.duplicate_of.as_deref(),
        Some(first.request_id.as_str())
    );
    assert_eq!(again.checksum, first.checksum);
    let dup = status_of(&rig.router, &again.request_id).await;
    assert_eq!(
        (dup.state.as_str(), dup.loaded, dup.rejected),
        ("completed", done.loaded, done.rejected)
    );
    assert_eq!(
        dup.errors.len(),
        5,
        "a duplicate shows the errors of its first upload"
    );
    assert!(rig.store.outbox().pending().await.unwrap() <= before);
    assert_eq!(
        rig.objects.list("files").await.unwrap().len(),
        1,
        "stored once"
    );

    // Reprocessing the first upload: counts reset and rebuilt, the table unchanged.
    let (s, text) = call(
        &rig.router,
        Request::post(format!(
            "/api/imports/uploads/{}/reprocess",
            first.request_id
        ))
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{text}");
    let redo = wait_done(&rig, &first.request_id).await;
    assert_eq!(
        (redo.state.as_str(), redo.loaded, redo.rejected),
        ("completed", done.loaded, done.rejected)
    );
    assert_eq!(rig.store.company_count().await.unwrap(), want.len() as u64);
    let (s, text) = call(
        &rig.router,
        Request::post(format!(
            "/api/imports/uploads/{}/reprocess",
            again.request_id
        ))
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a duplicate is not reprocessed: {text}"
    );

    // A poison event goes to the dead-letter topic; the partition moves on.
    rig.bus
        .bus
        .send(Record::new(
            rig.settings.files_topic.clone(),
            Bytes::from_static(b"x"),
            Bytes::from_static(b"{not json"),
        ))
        .await
        .unwrap();
    let later = accepted(
        &rig.router,
        "/api/imports/import/company/later",
        br#"{"name":"Late","permalink":"late-co"}"#.to_vec(),
        false,
    )
    .await;
    let dlq = read_until(&rig.bus, &rig.settings.dead_letter_topic(), |m| {
        !m.is_empty()
    })
    .await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(&dlq[0].value[..], b"{not json");
    assert!(dlq[0].header("dlq.error").is_some());
    assert_eq!(wait_done(&rig, &later.request_id).await.loaded, 1);

    token.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

// Proves the checkpoint guard: a batch that does not start at the stored
// checkpoint (another run got ahead) writes nothing.
async fn guard_scenario(sql: Sql) {
    let Some(rig) = rig(sql, BusKind::Embedded, StoreKind::Dir, |_| {}).await else {
        return;
    };
    let a = accepted(
        &rig.router,
        UPLOAD,
        br#"{"name":"A","permalink":"a"}"#.to_vec(),
        false,
    )
    .await;
    rig.store.start_processing(&a.request_id).await.unwrap();
    let batch = tributary_imports::store::Batch {
        from: 5,
        to: 6,
        valid: 1,
        ..Default::default()
    };
    assert!(!rig.store.load_batch(&a.request_id, &batch).await.unwrap());
    let batch = tributary_imports::store::Batch {
        from: 0,
        to: 1,
        valid: 1,
        ..Default::default()
    };
    assert!(rig.store.load_batch(&a.request_id, &batch).await.unwrap());
    assert!(
        !rig.store.load_batch(&a.request_id, &batch).await.unwrap(),
        "the same batch twice"
    );
    let u = rig.store.get(&a.request_id).await.unwrap().unwrap();
    assert_eq!((u.processed, u.loaded), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_sqlite_embedded_dir() {
    shapes_scenario(Sql::Sqlite, BusKind::Embedded, StoreKind::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_postgres_kafka_s3() {
    shapes_scenario(Sql::Postgres, BusKind::Kafka, StoreKind::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_sqlite_embedded_dir() {
    load_scenario(Sql::Sqlite, BusKind::Embedded, StoreKind::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_postgres_kafka_s3() {
    load_scenario(Sql::Postgres, BusKind::Kafka, StoreKind::S3).await;
}

#[tokio::test]
async fn checkpoint_guard_sqlite() {
    guard_scenario(Sql::Sqlite).await;
}

#[tokio::test]
async fn checkpoint_guard_postgres() {
    guard_scenario(Sql::Postgres).await;
}

// Proves an object store that fails makes an upload 503 with nothing
// announced: no `FileExtractSuccess` in the outbox, the upload `failed`
// with the cause (file objects whose directory is replaced by a file).
#[tokio::test]
async fn object_store_away_answers_503_and_emits_nothing() {
    let Some(rig) = rig(Sql::Sqlite, BusKind::Embedded, StoreKind::Dir, |_| {}).await else {
        return;
    };
    let root = rig
        ._objects
        .config
        .url
        .trim_start_matches("file://")
        .to_owned();
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let (s, text) = call(
        &rig.router,
        post(UPLOAD, br#"{"name":"A","permalink":"a"}"#.to_vec(), false),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("\"code\":\"unavailable\""), "{text}");
    assert!(outbox(&rig.store).await.is_empty(), "nothing emitted");
    let list = rig.store.recent(None, 10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, "failed");
    assert!(
        list[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("object store")),
        "{:?}",
        list[0].error
    );
}

/// A kind declared by a JSON Schema: valid records land in the generic
/// table by natural key (last one wins), invalid ones are reported with the
/// failing keyword; unknown kinds list it.
async fn schema_scenario(sql: Sql, bus: BusKind, store: StoreKind) {
    let dir = tributary_testkit::temp_dir();
    let schema = dir.path().join("product.schema.json");
    std::fs::write(
        &schema,
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["sku", "title", "price"],
            "properties": {
                "sku": {"type": "string", "minLength": 1},
                "title": {"type": "string"},
                "price": {"type": "number", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        })
        .to_string(),
    )
    .unwrap();
    let Some(rig) = rig(sql, bus, store, |s| {
        s.batch_size = 3;
        s.kinds = vec![tributary_imports::settings::SchemaKindSettings {
            name: "product".into(),
            schema: schema.clone(),
            key: "/sku".into(),
        }];
    })
    .await
    else {
        return;
    };
    rig.bus
        .bus
        .create_topic(&rig.settings.files_topic, 3)
        .await
        .unwrap();
    rig.bus
        .bus
        .create_topic(rig.settings.events_topic(), 3)
        .await
        .unwrap();
    let token = CancellationToken::new();
    let tasks = run_services(&rig, &token);
    let body = br#"{"sku":"a-1","title":"Kettle","price":20,"extra":{"kept":true}}
{"sku":"a-2","title":"Mug","price":-3}
{"sku":"a-3","title":"Plate","price":5,"tags":["x",1]}
{"title":"No sku","price":1}
{"sku":"a-1","title":"Kettle v2","price":25}
{"sku":"a-4","title":"Bowl","price":7.5}
"#;
    let a = accepted(
        &rig.router,
        "/api/imports/import/product/catalogue",
        body.to_vec(),
        false,
    )
    .await;
    let done = wait_done(&rig, &a.request_id).await;
    assert_eq!(
        (
            done.state.as_str(),
            done.records,
            done.loaded,
            done.rejected
        ),
        ("completed", 6, 3, 3),
        "{done:?}"
    );
    let rules: Vec<(u64, &str, &str)> = done
        .errors
        .iter()
        .map(|e| (e.record, e.rule.as_str(), e.pointer.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            (1, "schema.minimum", "/price"),
            (2, "schema.type", "/tags/1"),
            (3, "schema.required", "")
        ]
    );
    let (s, text) = call(
        &rig.router,
        Request::get("/api/imports/records?kind=product&limit=2")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let page: api::RecordPage = serde_json::from_str(&text).unwrap();
    let keys: Vec<(&str, u64)> = page
        .records
        .iter()
        .map(|r| (r.key.as_str(), r.record))
        .collect();
    assert_eq!(keys, [("a-1", 4), ("a-4", 5)]);
    assert_eq!(page.records[0].document["title"], "Kettle v2");
    assert_eq!(page.next_after.as_deref(), Some("a-4"));
    let (s, text) = call(
        &rig.router,
        Request::get("/api/imports/kinds")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<api::KindView> = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(names, ["company", "product"]);
    assert_eq!(kinds[1].natural_key, "/sku");
    let (s, text) = call(
        &rig.router,
        post("/api/imports/import/planet/x", b"{}".to_vec(), false),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(text.contains("known kinds: company, product"), "{text}");
    token.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_kind_sqlite_embedded_dir() {
    schema_scenario(Sql::Sqlite, BusKind::Embedded, StoreKind::Dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_kind_postgres_kafka_s3() {
    schema_scenario(Sql::Postgres, BusKind::Kafka, StoreKind::S3).await;
}

/// Runs one statement on the rig's PostgreSQL server (its maintenance database).
async fn pg_admin(sql: &str) {
    let base = tributary_testkit::backend(tributary_testkit::Backend::Postgres).unwrap();
    let db = tributary_storage::Database::connect(&base, &tributary_storage::SqlConfig::default())
        .await
        .unwrap();
    sqlx::query(sql)
        .execute(db.as_postgres().unwrap())
        .await
        .unwrap();
    db.close().await;
}

// Proves a database that goes away mid-way makes the processor retry (its
// readiness red, the partition waiting), and that once it is back the
// upload completes with every record loaded once: nothing lost or skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_away_processor_retries_postgres() {
    let Some(rig) = rig(Sql::Postgres, BusKind::Embedded, StoreKind::Dir, |s| {
        s.batch_size = 10;
        s.retry_max_ms = 300;
    })
    .await
    else {
        return;
    };
    let name = rig.db.url.rsplit('/').next().unwrap().to_owned();
    rig.bus
        .bus
        .create_topic(&rig.settings.files_topic, 3)
        .await
        .unwrap();
    rig.bus
        .bus
        .create_topic(rig.settings.events_topic(), 3)
        .await
        .unwrap();
    let token = CancellationToken::new();
    let relay = tributary_runtime::outbox::Relay::new(
        rig.store.outbox(),
        rig.bus.bus.clone(),
        rig.settings.relay.clone(),
        system::encoder(rig.settings.files_topic.clone()),
    );
    let t = token.clone();
    let relay = tokio::spawn(async move { relay.run(t).await.unwrap() });
    let docs: Vec<serde_json::Value> = generate::companies(3, 200, 0.0).map(|g| g.doc).collect();
    let want: std::collections::BTreeSet<String> = docs
        .iter()
        .filter_map(|d| validate(d).ok().map(|c| c.permalink))
        .collect();
    let a = accepted(&rig.router, UPLOAD, generate::ndjson(&docs), false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.store.outbox().pending().await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "the relay did not send the event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The database goes away: no new connections, the open ones cut.
    pg_admin(&format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
    ))
    .await;
    pg_admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let processor = Arc::new(Processor::new(
        rig.store.clone(),
        rig.objects.clone(),
        rig.settings.clone(),
        rig.kinds.clone(),
    ));
    let health = processor.health();
    let (bus, cfg, t) = (
        rig.bus.bus.clone(),
        system::runner_config(&rig.settings),
        token.clone(),
    );
    let consumer = tokio::spawn(async move {
        tributary_bus::runner::run(bus, cfg, processor, t)
            .await
            .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health.is_failing() {
        assert!(
            Instant::now() < deadline,
            "the processor never noticed the database was away"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg_admin(&format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
    ))
    .await;
    let done = wait_done(&rig, &a.request_id).await;
    assert_eq!(
        (done.state.as_str(), done.loaded, done.rejected),
        ("completed", 200, 0),
        "{done:?}"
    );
    assert_eq!(rig.store.company_count().await.unwrap(), want.len() as u64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while health.is_failing() {
        assert!(Instant::now() < deadline, "readiness stays red");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    relay.await.unwrap();
    consumer.await.unwrap();
}
