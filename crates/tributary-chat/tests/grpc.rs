//! gRPC API tests: the chat, user, audit and backup services of a server
//! spawned in-process on 127.0.0.1:0 and called over TCP with the
//! generated clients; every scenario runs on SQLite and on PostgreSQL
//! (when the rig provides it), with the embedded bus.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use common::sample::{chat, BASE};
use common::writer;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tributary_bus::runner::{self, RunnerConfig};
use tributary_bus::Record;
use tributary_chat::app::{self, Backends};
use tributary_chat::consumers::{
    AuditHandler, UserCounterHandler, AUDIT_GROUP, USER_COUNTER_GROUP,
};
use tributary_chat::domain::events::{AuditEvent, AUDIT_TOPIC, USER_COUNTER_TOPIC};
use tributary_chat::proto::v1 as pb;
use tributary_chat::proto::v1::audit_service_client::AuditServiceClient;
use tributary_chat::proto::v1::backup_service_client::BackupServiceClient;
use tributary_chat::proto::v1::chat_service_client::ChatServiceClient;
use tributary_chat::proto::v1::user_service_client::UserServiceClient;
use tributary_chat::service::ImportReport;
use tributary_chat::{ChatService, ChatSettings};
use tributary_storage::{Database, Objects, ObjectsConfig, SqlConfig};
use tributary_testkit::{Sql, TestDb};

/// A chat system on one database and an embedded bus, with its gRPC
/// server on a free port.
struct Rig {
    svc: ChatService,
    channel: Channel,
    token: CancellationToken,
    dir: tempfile::TempDir,
    _db: TestDb,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Rig {
    fn chat(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::new(self.channel.clone())
    }
    fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }
    fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }
    fn backup(&self) -> BackupServiceClient<Channel> {
        BackupServiceClient::new(self.channel.clone())
    }
}

/// Connects to a gRPC server, retrying while it starts.
async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match endpoint.connect().await {
            Ok(ch) => return ch,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("connect {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn rig(sql: Sql) -> Option<Rig> {
    rig_with(sql, |_| {}).await
}

/// [`rig`] with its settings changed by `tweak` first.
async fn rig_with(sql: Sql, tweak: impl FnOnce(&mut ChatSettings)) -> Option<Rig> {
    let dir = tributary_testkit::temp_dir();
    let test_db = TestDb::open(sql).await?;
    let db = test_db.db.clone();
    let bus_url = format!("sqlite://{}", dir.path().join("bus.db").display());
    let bus = tributary_bus::connect(&bus_url, &Default::default())
        .await
        .expect("bus");
    let objects = Objects::open(&ObjectsConfig::from_url(format!(
        "file://{}",
        dir.path().join("objects").display()
    )))
    .expect("objects");
    let mut settings = ChatSettings {
        batch_size: 7, // small, so imports cross batch boundaries and report progress
        import_roots: vec![dir.path().to_owned()],
        backup_dir: dir.path().to_owned(),
        ..ChatSettings::default()
    };
    tweak(&mut settings);
    let backends = Backends {
        db,
        bus: bus.clone(),
        objects: Some(objects),
    };
    let svc = app::build(&backends, &settings).await.expect("build");
    let token = CancellationToken::new();
    tokio::spawn(runner::run(
        bus.clone(),
        RunnerConfig::new(USER_COUNTER_GROUP, &[USER_COUNTER_TOPIC]),
        Arc::new(UserCounterHandler::new(svc.store().clone())),
        token.clone(),
    ));
    tokio::spawn(runner::run(
        bus,
        RunnerConfig::new(AUDIT_GROUP, &[AUDIT_TOPIC]),
        Arc::new(AuditHandler::new(svc.store().clone())),
        token.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tributary_chat::api::grpc::serve(
        listener,
        svc.clone(),
        token.clone(),
    ));
    let channel = connect(addr).await;
    Some(Rig {
        svc,
        channel,
        token,
        dir,
        _db: test_db,
    })
}

fn ts(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

/// Writes `Family` (id 42, 60 messages) and `Work` (id 7, 20 messages) as
/// two JSON exports under one directory; returns it.
fn two_chats(root: &Path) -> std::path::PathBuf {
    let export = root.join("export");
    for (sub, name, id, n) in [("family", "Family", 42, 60), ("work", "Work", 7, 20)] {
        let d = export.join(sub);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join("result.json"),
            writer::json_export(name, id, &chat(name, id, n)),
        )
        .expect("write");
    }
    export
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_owned()
}

fn assert_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, contains: &str) {
    let e = r.expect_err("must fail");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(contains),
        "{:?} lacks {contains:?}",
        e.message()
    );
}

/// Reads an import/restore stream to its end: (progress messages, report).
async fn drain_import(
    mut s: tonic::Streaming<pb::ImportEvent>,
) -> Result<(usize, pb::ImportReport), tonic::Status> {
    let mut progress = 0;
    let mut report = None;
    while let Some(ev) = s.message().await? {
        assert!(report.is_none(), "nothing may follow the report");
        match ev.event {
            Some(pb::import_event::Event::Progress(_)) => progress += 1,
            Some(pb::import_event::Event::Report(r)) => report = Some(r),
            None => panic!("empty stream message"),
        }
    }
    Ok((progress, report.expect("a final report")))
}

/// Reads an export stream to its end: (progress messages, report).
async fn drain_export(
    mut s: tonic::Streaming<pb::ExportEvent>,
) -> Result<(usize, pb::BackupReport), tonic::Status> {
    let mut progress = 0;
    let mut report = None;
    while let Some(ev) = s.message().await? {
        assert!(report.is_none(), "nothing may follow the report");
        match ev.event {
            Some(pb::export_event::Event::Progress(_)) => progress += 1,
            Some(pb::export_event::Event::Report(r)) => report = Some(r),
            None => panic!("empty stream message"),
        }
    }
    Ok((progress, report.expect("a final report")))
}

async fn import(r: &Rig, path: &Path) -> (usize, pb::ImportReport) {
    let s = r
        .chat()
        .import(pb::ImportRequest {
            path: path_str(path),
        })
        .await
        .expect("import starts")
        .into_inner();
    drain_import(s).await.expect("import succeeds")
}

/// The messages of an Upload call: `start` (`name`, `size`), then `bytes`
/// in `chunk`-sized data messages.
fn upload_messages(
    name: &str,
    size: Option<u64>,
    bytes: &[u8],
    chunk: usize,
) -> Vec<pb::UploadRequest> {
    use pb::upload_request::Part;
    let start = pb::UploadRequest {
        part: Some(Part::Start(pb::UploadStart {
            name: name.to_owned(),
            size,
        })),
    };
    std::iter::once(start)
        .chain(bytes.chunks(chunk).map(|c| pb::UploadRequest {
            part: Some(Part::Data(bytes::Bytes::copy_from_slice(c))),
        }))
        .collect()
}

/// Uploads `messages` with ChatService/Upload and reads the answer to its
/// end: (progress messages, report), or the status the call ends with.
async fn upload_raw(
    r: &Rig,
    messages: Vec<pb::UploadRequest>,
) -> Result<(usize, pb::ImportReport), tonic::Status> {
    let s = r
        .chat()
        .upload(futures::stream::iter(messages))
        .await?
        .into_inner();
    drain_import(s).await
}

/// Uploads `bytes` as `name` (size declared, 1000-byte chunks).
async fn upload(
    r: &Rig,
    name: &str,
    bytes: &[u8],
) -> Result<(usize, pb::ImportReport), tonic::Status> {
    upload_raw(
        r,
        upload_messages(name, Some(bytes.len() as u64), bytes, 1000),
    )
    .await
}

/// Uploads `bytes` as `name` to the REST API of the rig's service
/// (`POST /api/chat/import/upload`): the report of its done line.
async fn rest_upload(r: &Rig, name: &str, bytes: &[u8]) -> ImportReport {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/chat/import/upload?name={name}"))
        .header("content-length", bytes.len())
        .body(axum::body::Body::from(bytes.to_vec()))
        .expect("request");
    let resp = tributary_chat::api::router(r.svc.clone())
        .oneshot(req)
        .await
        .expect("response");
    assert_eq!(resp.status(), axum::http::StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let done = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("done").cloned())
        .unwrap_or_else(|| panic!("no done line in {}", String::from_utf8_lossy(&body)));
    serde_json::from_value(done).expect("an import report")
}

async fn count(r: &Rig, filter: pb::MessageFilter) -> u64 {
    r.chat()
        .count(pb::CountRequest {
            filter: Some(filter),
        })
        .await
        .expect("count")
        .into_inner()
        .count
}

/// Every message in (chat, id) order, as the API returns it.
async fn everything(r: &Rig) -> Vec<pb::Message> {
    r.chat()
        .search(pb::SearchRequest {
            take: Some(10_000),
            sorts: vec![
                pb::Sort {
                    field: pb::SortField::Chat.into(),
                    desc: false,
                },
                pb::Sort {
                    field: pb::SortField::Id.into(),
                    desc: false,
                },
            ],
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .messages
}

/// How long to wait for the consumers; waiting ends as soon as the state
/// is reached.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until GetUsersMessagesCount equals the archive's own counts;
/// returns them.
async fn users_settle(r: &Rig) -> Vec<pb::UserCount> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        r.svc.publish_outbox().await.expect("publish");
        let truth = r.svc.store().archive_user_counts().await.expect("truth");
        let counted = r
            .users()
            .get_users_messages_count(pb::GetUsersMessagesCountRequest { limit: None })
            .await
            .expect("users")
            .into_inner()
            .users;
        let pairs: Vec<(String, i64)> = counted.iter().map(|u| (u.id.clone(), u.count)).collect();
        if pairs == truth {
            return counted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts never matched the archive: {truth:?} vs {pairs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(r) = super::rig(super::Sql::Sqlite).await { super::$name(r).await } })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(r) = super::rig(super::Sql::Postgres).await { super::$name(r).await } })* }
    };
}

on_both!(
    import_count_search_delete,
    users_follow_the_archive,
    audit_query_mirrors_the_filter,
    export_and_restore_round_trip,
    bad_requests_are_invalid_argument,
    upload_imports_like_the_rest_upload,
);

// Proves: Import streams progress then one report and is idempotent;
// Count honours each filter field; Search applies filter, sorts, take and
// skip and returns every message field; Delete deletes only what the
// filter selects and refuses an empty filter unless `all` is set.
async fn import_count_search_delete(r: Rig) {
    let export = two_chats(r.dir.path());
    let (progress, report) = import(&r, &export).await;
    assert!(progress >= 1, "progress before the report");
    assert_eq!(
        (
            report.files,
            report.parsed,
            report.inserted,
            report.duplicates
        ),
        (2, 80, 80, 0)
    );
    let (_, again) = import(&r, &export).await;
    assert_eq!((again.inserted, again.duplicates), (0, 80));

    assert_eq!(count(&r, pb::MessageFilter::default()).await, 80);
    let family = || pb::MessageFilter {
        chat_ids: vec![42],
        ..Default::default()
    };
    assert_eq!(count(&r, family()).await, 60);
    // Even, non-service messages of Family: 30 even minus 6 multiples of 10.
    let rust = pb::MessageFilter {
        text: Some("rust".into()),
        ..family()
    };
    assert_eq!(count(&r, rust).await, 24);
    let golang = pb::MessageFilter {
        query: Some("golang".into()),
        ..family()
    };
    assert_eq!(count(&r, golang).await, 24);
    let by_name = pb::MessageFilter {
        chat_names: vec!["Work".into()],
        id: Some(3),
        ..Default::default()
    };
    assert_eq!(count(&r, by_name).await, 1);
    // max_created alone restricts (the seed's bug was to need min_created).
    let early = pb::MessageFilter {
        max_created: Some(ts(BASE + 10 * 3600)),
        ..family()
    };
    assert_eq!(count(&r, early).await, 10);

    // Bob (user2) in Family between hours 10 and 50, newest first, page 2 of 5.
    let bob = pb::MessageFilter {
        user_ids: vec!["user2".into()],
        min_created: Some(ts(BASE + 10 * 3600)),
        max_created: Some(ts(BASE + 50 * 3600)),
        ..family()
    };
    let page = r
        .chat()
        .search(pb::SearchRequest {
            filter: Some(bob.clone()),
            take: Some(5),
            skip: 2,
            sorts: vec![pb::Sort {
                field: pb::SortField::Created.into(),
                desc: true,
            }],
        })
        .await
        .expect("search")
        .into_inner()
        .messages;
    let ids: Vec<i64> = page.iter().map(|m| m.id).collect();
    // Bob's ids in 10..=50: 13 16 19 22 28 31 34 37 43 46 49; newest first, skip 2.
    assert_eq!(ids, [43, 37, 34, 31, 28]);
    let m = &page[0];
    assert_eq!(m.chat, "name:Family");
    assert_eq!(m.chat_id, Some(42));
    assert_eq!(m.kind, i32::from(pb::MessageKind::Message));
    assert_eq!(m.from.as_deref(), Some("Bob"));
    assert_eq!(
        (m.from_id.as_deref(), m.user.as_deref()),
        (Some("user2"), Some("user2"))
    );
    assert_eq!(m.text, "message 43 about golang topic");
    assert_eq!(m.created, Some(ts(BASE + 43 * 3600)));
    let d = m.date.as_ref().expect("date");
    assert_eq!(d.offset_seconds, Some(3 * 3600));
    assert_eq!(d.local, "2020-09-15T10:26:40");

    // Two sort keys: sender ascending, then id descending, over Work's rust messages.
    let sorted = r
        .chat()
        .search(pb::SearchRequest {
            filter: Some(pb::MessageFilter {
                chat_ids: vec![7],
                text: Some("rust".into()),
                ..Default::default()
            }),
            sorts: vec![
                pb::Sort {
                    field: pb::SortField::User.into(),
                    desc: false,
                },
                pb::Sort {
                    field: pb::SortField::Id.into(),
                    desc: true,
                },
            ],
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .messages;
    let got: Vec<(String, i64)> = sorted
        .iter()
        .map(|m| (m.user.clone().unwrap_or_default(), m.id))
        .collect();
    let mut want: Vec<(String, i64)> = chat("Work", 7, 20)
        .iter()
        .filter(|m| m.text.contains("rust"))
        .map(|m| (m.from_id.clone().unwrap_or_default(), m.id))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    assert_eq!(got, want);

    // The empty-filter guard, then filtered and whole deletes.
    assert_code(
        r.chat()
            .delete(pb::DeleteRequest {
                filter: None,
                all: false,
            })
            .await,
        Code::InvalidArgument,
        "all=true",
    );
    let deleted = r
        .chat()
        .delete(pb::DeleteRequest {
            filter: Some(bob),
            all: false,
        })
        .await
        .expect("delete")
        .into_inner()
        .deleted;
    assert_eq!(deleted, 11);
    assert_eq!(count(&r, family()).await, 49);
    assert_eq!(count(&r, pb::MessageFilter::default()).await, 69);
    let all = r
        .chat()
        .delete(pb::DeleteRequest {
            filter: None,
            all: true,
        })
        .await
        .expect("delete all")
        .into_inner()
        .deleted;
    assert_eq!(all, 69);
    assert_eq!(count(&r, pb::MessageFilter::default()).await, 0);
}

// Proves: GetUsersMessagesCount equals the archive's own per-sender counts
// once the events are consumed, after an import and after a delete;
// `limit` keeps the largest; GetUser answers a known sender with its name
// and an unknown one with count 0.
async fn users_follow_the_archive(r: Rig) {
    let export = two_chats(r.dir.path());
    import(&r, &export).await;
    let users = users_settle(&r).await;
    // 64 regular messages (every fifth is a service notice, counted for nobody).
    assert_eq!(users.iter().map(|u| u.count).sum::<i64>(), 64);
    assert!(
        users.windows(2).all(|w| w[0].count >= w[1].count),
        "{users:?}"
    );

    let top = r
        .users()
        .get_users_messages_count(pb::GetUsersMessagesCountRequest { limit: Some(1) })
        .await
        .expect("top")
        .into_inner()
        .users;
    assert_eq!(top, users[..1]);

    let bob = r
        .users()
        .get_user(pb::GetUserRequest { id: "user2".into() })
        .await
        .expect("user")
        .into_inner()
        .user
        .expect("user set");
    assert_eq!(bob.name.as_deref(), Some("Bob"));
    assert_eq!(
        Some(bob.count),
        users.iter().find(|u| u.id == "user2").map(|u| u.count)
    );
    let nobody = r
        .users()
        .get_user(pb::GetUserRequest {
            id: "user999".into(),
        })
        .await
        .expect("unknown user")
        .into_inner()
        .user
        .expect("user set");
    assert_eq!(
        (nobody.id.as_str(), nobody.name, nobody.count),
        ("user999", None, 0)
    );

    r.chat()
        .delete(pb::DeleteRequest {
            filter: Some(pb::MessageFilter {
                user_ids: vec!["user2".into()],
                ..Default::default()
            }),
            all: false,
        })
        .await
        .expect("delete bob");
    let after = users_settle(&r).await;
    assert!(after.iter().all(|u| u.id != "user2"), "{after:?}");
}

// Proves: records shipped on the audit topic become queryable, and Query
// mirrors AuditFilter: service, minimum level, time range, paging, newest
// first; an unknown level or take 0 is INVALID_ARGUMENT.
async fn audit_query_mirrors_the_filter(r: Rig) {
    let service = tributary_testkit::unique("grpc-test");
    for (i, level) in ["INFO", "WARN", "ERROR"].into_iter().enumerate() {
        let ev = AuditEvent {
            id: uuid::Uuid::new_v4().to_string(),
            service: service.clone(),
            level: level.into(),
            message: format!("record {i}"),
            created: DateTime::from_timestamp(BASE + i as i64 * 60, 0).expect("valid"),
            target: "tributary_chat::tests".into(),
            fields: "{}".into(),
        };
        let payload = serde_json::to_vec(&ev).expect("json");
        r.svc
            .bus()
            .send(Record::new(
                AUDIT_TOPIC,
                ev.id.clone().into_bytes(),
                payload,
            ))
            .await
            .expect("send");
    }
    let query = |q: pb::QueryRequest| {
        let mut c = r.audit();
        async move { c.query(q).await.map(|r| r.into_inner().records) }
    };
    let mine = || pb::QueryRequest {
        service: Some(service.clone()),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let all = loop {
        let got = query(mine()).await.expect("query");
        if got.len() == 3 {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "records: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let messages: Vec<&str> = all.iter().map(|a| a.message.as_str()).collect();
    assert_eq!(
        messages,
        ["record 2", "record 1", "record 0"],
        "newest first"
    );
    assert_eq!(all[0].level, "ERROR");
    assert_eq!(all[0].created, Some(ts(BASE + 120)));
    assert_eq!(all[0].target, "tributary_chat::tests");

    let warn = query(pb::QueryRequest {
        level: Some("warn".into()),
        ..mine()
    })
    .await
    .expect("warn");
    assert_eq!(warn.len(), 2);
    let range = query(pb::QueryRequest {
        from: Some(ts(BASE + 30)),
        to: Some(ts(BASE + 90)),
        ..mine()
    })
    .await
    .expect("range");
    assert_eq!(range.len(), 1);
    assert_eq!(range[0].message, "record 1");
    let paged = query(pb::QueryRequest {
        take: Some(1),
        skip: 1,
        ..mine()
    })
    .await
    .expect("page");
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].message, "record 1");

    assert_code(
        query(pb::QueryRequest {
            level: Some("loud".into()),
            ..mine()
        })
        .await,
        Code::InvalidArgument,
        "loud",
    );
    assert_code(
        query(pb::QueryRequest {
            take: Some(0),
            ..mine()
        })
        .await,
        Code::InvalidArgument,
        "take",
    );
}

// Proves: Export writes a filtered CSV file to a directory and a Parquet
// object to the object store, streaming progress then the report; after
// the archive is wiped, Restore from the path and from the object key
// brings back identical messages (restore is an idempotent import);
// missing targets are INVALID_ARGUMENT and missing sources NOT_FOUND.
async fn export_and_restore_round_trip(r: Rig) {
    let export = two_chats(r.dir.path());
    import(&r, &export).await;
    let before = everything(&r).await;
    assert_eq!(before.len(), 80);

    let dir = r.dir.path().join("backups");
    let s = r
        .backup()
        .export(pb::ExportRequest {
            format: pb::BackupFormat::Csv.into(),
            filter: Some(pb::MessageFilter {
                chat_ids: vec![42],
                ..Default::default()
            }),
            target: Some(pb::export_request::Target::Dir(path_str(&dir))),
        })
        .await
        .expect("export starts")
        .into_inner();
    let (progress, csv) = drain_export(s).await.expect("csv export");
    assert!(progress >= 1, "progress before the report");
    assert_eq!(csv.messages, 60);
    assert!(csv.location.ends_with(".csv"), "{}", csv.location);
    let csv_len = std::fs::metadata(&csv.location).expect("csv file").len();
    assert_eq!(csv_len, csv.bytes);

    let s = r
        .backup()
        .export(pb::ExportRequest {
            format: pb::BackupFormat::Parquet.into(),
            filter: None,
            target: Some(pb::export_request::Target::Objects(
                pb::ObjectStoreTarget {},
            )),
        })
        .await
        .expect("export starts")
        .into_inner();
    let (_, parquet) = drain_export(s).await.expect("parquet export");
    assert_eq!(parquet.messages, 80);
    assert!(
        parquet.location.ends_with(".parquet"),
        "{}",
        parquet.location
    );

    r.chat()
        .delete(pb::DeleteRequest {
            filter: None,
            all: true,
        })
        .await
        .expect("wipe");
    assert_eq!(count(&r, pb::MessageFilter::default()).await, 0);

    let restore = |source: pb::restore_request::Source| {
        let mut c = r.backup();
        async move {
            let s = c
                .restore(pb::RestoreRequest {
                    source: Some(source),
                })
                .await?
                .into_inner();
            drain_import(s).await
        }
    };
    let (_, from_path) = restore(pb::restore_request::Source::Path(csv.location.clone()))
        .await
        .expect("restore csv");
    assert_eq!((from_path.inserted, from_path.duplicates), (60, 0));
    let (_, from_object) = restore(pb::restore_request::Source::ObjectKey(
        parquet.location.clone(),
    ))
    .await
    .expect("restore parquet");
    assert_eq!((from_object.inserted, from_object.duplicates), (20, 60));
    assert_eq!(everything(&r).await, before);

    // Requests that cannot be served.
    assert_code(
        r.backup()
            .export(pb::ExportRequest {
                format: pb::BackupFormat::Csv.into(),
                filter: None,
                target: None,
            })
            .await,
        Code::InvalidArgument,
        "target",
    );
    assert_code(
        r.backup()
            .export(pb::ExportRequest {
                format: 9,
                filter: None,
                target: Some(pb::export_request::Target::Dir(path_str(&dir))),
            })
            .await,
        Code::InvalidArgument,
        "format",
    );
    assert_code(
        restore(pb::restore_request::Source::Path(path_str(
            &r.dir.path().join("no-such-backup.csv"),
        )))
        .await,
        Code::NotFound,
        "no-such-backup.csv",
    );
    assert_code(
        restore(pb::restore_request::Source::ObjectKey(
            "no-such-backup.csv".into(),
        ))
        .await,
        Code::NotFound,
        "no-such-backup.csv",
    );
    assert_code(
        r.backup()
            .restore(pb::RestoreRequest { source: None })
            .await,
        Code::InvalidArgument,
        "source",
    );
}

// Proves: bad requests become INVALID_ARGUMENT with the reason (bad
// filters, page sizes and sort fields, bad timestamps, empty paths) —
// also when the error surfaces inside a stream — and a missing import
// path is NOT_FOUND.
async fn bad_requests_are_invalid_argument(r: Rig) {
    let backwards = pb::MessageFilter {
        min_created: Some(ts(BASE + 100)),
        max_created: Some(ts(BASE)),
        ..Default::default()
    };
    assert_code(
        r.chat()
            .count(pb::CountRequest {
                filter: Some(backwards.clone()),
            })
            .await,
        Code::InvalidArgument,
        "min_created",
    );
    assert_code(
        r.chat()
            .search(pb::SearchRequest {
                filter: Some(pb::MessageFilter {
                    query: Some("  ...  ".into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "query",
    );
    assert_code(
        r.chat()
            .search(pb::SearchRequest {
                take: Some(0),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "take",
    );
    assert_code(
        r.chat()
            .search(pb::SearchRequest {
                sorts: vec![pb::Sort {
                    field: pb::SortField::Unspecified.into(),
                    desc: false,
                }],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "sorts",
    );
    assert_code(
        r.chat()
            .delete(pb::DeleteRequest {
                filter: Some(pb::MessageFilter {
                    max_created: Some(prost_types::Timestamp {
                        seconds: 0,
                        nanos: -5,
                    }),
                    ..Default::default()
                }),
                all: false,
            })
            .await,
        Code::InvalidArgument,
        "filter.max_created",
    );
    assert_code(
        r.chat()
            .import(pb::ImportRequest {
                path: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "path",
    );
    // A missing path under the import root is refused before the job starts;
    // one outside the root alike, whether it exists or not.
    let missing = r.dir.path().join("missing-export");
    assert_code(
        r.chat()
            .import(pb::ImportRequest {
                path: path_str(&missing),
            })
            .await,
        Code::NotFound,
        "missing-export",
    );
    for outside in ["/etc/passwd", "/no/such/file"] {
        assert_code(
            r.chat()
                .import(pb::ImportRequest {
                    path: outside.into(),
                })
                .await,
            Code::PermissionDenied,
            "chat.import_roots",
        );
    }
    // Errors of the job itself arrive in the stream.
    let s = r
        .backup()
        .export(pb::ExportRequest {
            format: pb::BackupFormat::Csv.into(),
            filter: Some(backwards),
            target: Some(pb::export_request::Target::Dir(path_str(
                &r.dir.path().join("never"),
            ))),
        })
        .await
        .expect("stream opens")
        .into_inner();
    assert_code(drain_export(s).await, Code::InvalidArgument, "min_created");
}

// Proves: the standard health service reports every chat service as
// SERVING and server reflection lists the four services and health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let Some(r) = rig(Sql::Sqlite).await else {
        return;
    };
    let services = [
        "tributary.chat.v1.ChatService",
        "tributary.chat.v1.UserService",
        "tributary.chat.v1.AuditService",
        "tributary.chat.v1.BackupService",
    ];
    for service in services {
        let status = HealthClient::new(r.channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }

    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(r.channel.clone())
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream
        .message()
        .await
        .expect("reflection answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in services.into_iter().chain(["grpc.health.v1.Health"]) {
        assert!(names.iter().any(|n| n == service), "{service} in {names:?}");
    }
}

// Proves: the shared gRPC server's message limit (4 MiB by default) holds
// for chat: a 5 MB request is refused with OUT_OF_RANGE naming the size,
// and the connection keeps serving normal calls afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused() {
    let Some(r) = rig(Sql::Sqlite).await else {
        return;
    };
    let sort = pb::Sort {
        field: pb::SortField::Id.into(),
        desc: true,
    };
    let err = r
        .chat()
        .search(pb::SearchRequest {
            sorts: vec![sort; 1_250_000],
            ..Default::default()
        })
        .await
        .expect_err("a 5 MB request must be refused");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    let ok = r
        .chat()
        .search(pb::SearchRequest {
            take: Some(1),
            ..Default::default()
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

// Proves: `app::serve_api` (the chat-api service) serves gRPC on `grpc_listen` next to REST,
// reports both addresses and ready, and stops cleanly (returns Ok) when the shutdown token fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_run_serves_grpc_and_stops() {
    let dir = tributary_testkit::temp_dir();
    let db = Database::connect(
        &format!("sqlite://{}", dir.path().join("chat.db").display()),
        &SqlConfig::default(),
    )
    .await
    .expect("db");
    let bus = tributary_bus::connect(
        &format!("sqlite://{}", dir.path().join("bus.db").display()),
        &Default::default(),
    )
    .await
    .expect("bus");
    let grpc = free_addr();
    let settings = ChatSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        grpc_listen: grpc,
        import_roots: vec![dir.path().to_owned()],
        ..ChatSettings::default()
    };
    let token = CancellationToken::new();
    let backends = Backends {
        db,
        bus,
        objects: None,
    };
    let svc = app::build(&backends, &settings).await.expect("build");
    let readiness = tributary_platform::Readiness::default();
    let started = readiness.service("chat-api");
    let run = {
        let (started, token) = (started.clone(), token.clone());
        tokio::spawn(async move { app::serve_api(svc, &settings, &started, token).await })
    };
    let channel = connect(grpc).await;
    let status = started.snapshot();
    assert_eq!(status.state, tributary_platform::ServiceState::Ready);
    assert_eq!(status.listening.len(), 2, "{status:?}");
    assert!(status.listening.contains(&grpc), "{status:?}");
    let n = ChatServiceClient::new(channel)
        .count(pb::CountRequest { filter: None })
        .await
        .expect("count over gRPC")
        .into_inner()
        .count;
    assert_eq!(n, 0);
    token.cancel();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("stops within 20 s")
        .expect("no panic")
        .expect("clean stop");
}

// Proves: a client that goes away mid-import cancels the import: storing
// stops (at a batch boundary) instead of running on to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_stops_when_the_client_goes_away() {
    let Some(r) = rig(Sql::Sqlite).await else {
        return;
    };
    const TOTAL: i64 = 30_000; // ~4,300 batches of 7: far longer than the test needs to cancel
    let export = r.dir.path().join("big");
    std::fs::create_dir_all(&export).expect("mkdir");
    std::fs::write(
        export.join("result.json"),
        writer::json_export("Big", 1, &chat("Big", 1, TOTAL)),
    )
    .expect("write");
    let mut s = r
        .chat()
        .import(pb::ImportRequest {
            path: path_str(&export),
        })
        .await
        .expect("import starts")
        .into_inner();
    let first = s.message().await.expect("stream").expect("a message");
    assert!(
        matches!(first.event, Some(pb::import_event::Event::Progress(_))),
        "{first:?}"
    );
    drop(s);
    // Storing stops: the count settles (two equal reads in a row) below the total.
    let mut last = count(&r, pb::MessageFilter::default()).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = count(&r, pb::MessageFilter::default()).await;
        if now == last {
            break;
        }
        last = now;
    }
    assert!(last < TOTAL as u64, "import ran to the end: {last}");
}

// Proves: ChatService/Upload (a start message, then 1000-byte data
// messages) imports a real export (a zip of a directory, a JSON file, an
// HTML file) exactly like the REST upload of the same bytes: the same
// report, count and messages on a cleared archive, with progress on the
// way; a second upload finds every message stored (idempotent); a parse
// error in an upload is reported by the upload's name without quoting it.
async fn upload_imports_like_the_rest_upload(r: Rig) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (rel, name) in [
        ("zip/export.zip", "export.zip"),
        ("json/full_account/result.json", "result.json"),
        ("html/single_chat/messages.html", "messages.html"),
    ] {
        let bytes = std::fs::read(fixtures.join(rel)).expect("fixture");
        let over_rest = rest_upload(&r, name, &bytes).await;
        assert!(over_rest.inserted > 0, "{rel}: {over_rest:?}");
        let stored = everything(&r).await;
        assert_eq!(stored.len() as u64, over_rest.inserted, "{rel}");
        r.svc
            .delete(&Default::default(), true)
            .await
            .expect("delete all");
        assert_eq!(count(&r, Default::default()).await, 0);

        let (progress, report) = upload(&r, name, &bytes).await.expect("upload");
        assert!(progress > 0, "{rel}: progress on the way");
        assert_eq!(ImportReport::from(report), over_rest, "{rel}");
        assert_eq!(everything(&r).await, stored, "{rel}");

        let (_, again) = upload(&r, name, &bytes).await.expect("upload again");
        assert_eq!(
            (again.inserted, again.duplicates),
            (0, over_rest.inserted),
            "{rel}"
        );
        r.svc
            .delete(&Default::default(), true)
            .await
            .expect("delete all");
    }

    let secret = br#"{"name":"C","type":"personal_chat","id":1,"messages":"SECRET_TOKEN_123"}"#;
    let (_, report) = upload(&r, "dir/result.json", secret).await.expect("upload");
    assert_eq!(report.files_failed, 1, "{report:?}");
    let text = format!("{report:?}");
    assert!(text.contains("result.json"), "named by the upload: {text}");
    assert!(!text.contains("SECRET_TOKEN_123"), "content echoed: {text}");
    assert!(
        !text.contains("tributary-chat-upload-"),
        "spool path shown: {text}"
    );
}

// Proves: an upload is refused and nothing is imported when it is over
// `chat.max_upload_bytes` (RESOURCE_EXHAUSTED, like the REST 413: at once
// for a declared size, when the limit is crossed for an undeclared or
// understated one), when it ends short of its declared size, when data
// comes first, a second start follows or a data message is over 1 MiB
// (INVALID_ARGUMENT); the error texts never quote the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_or_malformed_are_refused() {
    let Some(r) = rig_with(Sql::Sqlite, |s| s.max_upload_bytes = 2000).await else {
        return;
    };
    let export = writer::json_export("Big", 5, &chat("Big", 5, 40));
    assert!(export.len() > 2000, "the export must be over the limit");
    let bytes = export.as_bytes();
    let declared = upload_raw(
        &r,
        upload_messages("result.json", Some(bytes.len() as u64), bytes, 500),
    )
    .await;
    assert_code(declared, Code::ResourceExhausted, "chat.max_upload_bytes");
    let undeclared = upload_raw(&r, upload_messages("result.json", None, bytes, 500)).await;
    assert_code(undeclared, Code::ResourceExhausted, "chat.max_upload_bytes");
    let understated = upload_raw(&r, upload_messages("result.json", Some(100), bytes, 500)).await;
    assert_code(
        understated,
        Code::ResourceExhausted,
        "chat.max_upload_bytes",
    );

    let small = writer::json_export("Small", 6, &chat("Small", 6, 2));
    assert!(small.len() < 2000, "{}", small.len());
    let small = small.as_bytes();
    let short = upload_raw(
        &r,
        upload_messages("result.json", Some(small.len() as u64 + 1), small, 500),
    )
    .await;
    assert_code(short, Code::InvalidArgument, "declared");
    let mut data_first = upload_messages("result.json", None, small, 500);
    data_first.remove(0);
    assert_code(
        upload_raw(&r, data_first).await,
        Code::InvalidArgument,
        "start",
    );
    let mut two_starts = upload_messages("result.json", None, small, 500);
    two_starts.push(two_starts[0].clone());
    assert_code(
        upload_raw(&r, two_starts).await,
        Code::InvalidArgument,
        "second start",
    );
    assert_code(
        upload_raw(&r, upload_messages("..", None, small, 500)).await,
        Code::InvalidArgument,
        "name",
    );
    assert_eq!(count(&r, Default::default()).await, 0, "nothing imported");
    drop(r);
    let Some(r) = rig_with(Sql::Sqlite, |s| s.max_upload_bytes = 4 << 20).await else {
        return;
    };
    let big_chunk = vec![b' '; tributary_chat::api::grpc::MAX_UPLOAD_CHUNK + 1];
    let over_chunk = upload_raw(
        &r,
        upload_messages("result.json", None, &big_chunk, big_chunk.len()),
    )
    .await;
    assert_code(
        over_chunk,
        Code::InvalidArgument,
        "over the 1048576 allowed",
    );
    assert_eq!(count(&r, Default::default()).await, 0, "nothing imported");
    // The same export fits under a larger limit.
    let (_, report) = upload(&r, "result.json", bytes).await.expect("upload");
    assert_eq!(report.inserted, 40, "{report:?}");
}
