//! Service scenarios through the public API (`ChatService`, the consumers,
//! the audit layer), each written once and run on three rigs:
//! `sqlite` (SQLite, embedded bus, `file://` objects), `postgres`
//! (PostgreSQL, embedded bus, `file://` objects) and `real` (PostgreSQL,
//! Kafka, S3: every production adapter), the real backends from the test
//! rig (required under CI, skipped with a note otherwise).
//!
//! Isolation on the shared broker: the chat topics and consumer groups have
//! fixed names, so each `real` rig uses the test kit's [`TestBus`], which
//! wraps its Kafka bus in [`tributary_bus::namespaced::Namespaced`] with a
//! unique prefix — topics and groups become `t-XXXXXXXXXXXX.user-message-counter` etc. A unique
//! group alone would not do: every test's counter would still read every
//! other test's count events and the counts would not equal its archive.
//! Each rig also gets its own database ([`TestDb`]) and its own S3 key
//! prefix ([`TestObjects`]).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::sample::{chat, BASE};
use common::writer;
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::{self, RunnerConfig};
use tributary_chat::app::{self, Backends};
use tributary_chat::consumers::{
    AuditHandler, UserCounterHandler, AUDIT_GROUP, USER_COUNTER_GROUP,
};
use tributary_chat::domain::events::{AUDIT_TOPIC, USER_COUNTER_TOPIC};
use tributary_chat::domain::{AuditFilter, MessageFilter, SearchRequest, Sort, SortField};
use tributary_chat::service::{BackupTarget, ImportReport, RestoreSource};
use tributary_chat::{ChatService, ChatSettings, Message};
use tributary_testkit::{BusKind, Sql, StoreKind as Store, TestBus, TestDb, TestObjects};

/// A running chat system on one database, one bus and one object store.
struct Rig {
    svc: ChatService,
    token: CancellationToken,
    dir: tempfile::TempDir,
    _ports: (TestDb, TestBus, TestObjects),
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn rig(sql: Sql, bus: BusKind, store: Store) -> Option<Rig> {
    let dir = tributary_testkit::temp_dir();
    let db = TestDb::open(sql).await?;
    let bus = TestBus::open(bus).await?;
    let objects = TestObjects::open(store)?;
    let settings = ChatSettings {
        batch_size: 7, // small, so every test crosses batch boundaries
        ..ChatSettings::default()
    };
    let backends = Backends {
        db: db.db.clone(),
        bus: bus.bus.clone(),
        objects: Some(objects.objects.clone()),
    };
    let svc = app::build(&backends, &settings).await.expect("build");
    let token = CancellationToken::new();
    let handler = Arc::new(UserCounterHandler::new(svc.store().clone()));
    tokio::spawn(runner::run(
        bus.bus.clone(),
        RunnerConfig::new(USER_COUNTER_GROUP, &[USER_COUNTER_TOPIC]),
        handler,
        token.clone(),
    ));
    let audit = Arc::new(AuditHandler::new(svc.store().clone()));
    tokio::spawn(runner::run(
        bus.bus.clone(),
        RunnerConfig::new(AUDIT_GROUP, &[AUDIT_TOPIC]),
        audit,
        token.clone(),
    ));
    Some(Rig {
        svc,
        token,
        dir,
        _ports: (db, bus, objects),
    })
}

fn write_json(dir: &Path, name: &str, id: i64, msgs: &[Message]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("result.json"), writer::json_export(name, id, msgs)).expect("write");
}

fn write_html(dir: &Path, name: &str, msgs: &[Message]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (file, body) in writer::html_export(name, msgs, 4) {
        std::fs::write(dir.join(file), body).expect("write");
    }
}

async fn import(svc: &ChatService, path: &Path) -> ImportReport {
    svc.import(path, &|_| {}).await.expect("import")
}

fn all(take: u32) -> SearchRequest {
    SearchRequest {
        take: Some(take),
        ..Default::default()
    }
}

/// How long to wait for the consumers: a Kafka group join takes seconds
/// (more on tansu under load); waiting ends as soon as the state is reached.
const PATIENCE: Duration = Duration::from_secs(90);

/// Waits until the consumer-maintained counts equal the archive's own.
async fn counts_settle(svc: &ChatService) -> Vec<(String, i64)> {
    let mut last = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        svc.publish_outbox().await.expect("publish");
        let truth = svc.store().archive_user_counts().await.expect("truth");
        let counted: Vec<(String, i64)> = svc
            .users(None)
            .await
            .expect("users")
            .into_iter()
            .map(|u| (u.id, u.count))
            .collect();
        if truth == counted {
            return truth;
        }
        last = (truth, counted);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "counts never matched the archive: archive {:?} vs counted {:?}",
        last.0, last.1
    );
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(r) = super::rig(super::Sql::Sqlite, super::BusKind::Embedded, super::Store::Dir).await { super::$name(r).await } })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(r) = super::rig(super::Sql::Postgres, super::BusKind::Embedded, super::Store::Dir).await { super::$name(r).await } })* }
        mod real { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { if let Some(r) = super::rig(super::Sql::Postgres, super::BusKind::Kafka, super::Store::S3).await { super::$name(r).await } })* }
    };
}

on_both!(
    double_import_and_delete_keep_counts_exact,
    json_and_html_of_one_chat_store_one_copy,
    backup_wipe_restore_gives_identical_results,
    broken_file_is_reported_and_the_rest_imported,
    every_filter_is_honoured,
    audit_records_are_shipped_stored_and_queried,
    applied_event_ids_are_pruned_by_age,
);

// Proves: importing the same export twice stores one copy and the user
// counts (fed by events from what was actually inserted/deleted) equal the
// archive after the second import and after a filtered delete.
async fn double_import_and_delete_keep_counts_exact(r: Rig) {
    let msgs = chat("Family", 42, 60);
    let dir = r.dir.path().join("export");
    write_json(&dir, "Family", 42, &msgs);
    let first = import(&r.svc, &dir).await;
    assert_eq!(
        (first.parsed, first.inserted, first.duplicates),
        (60, 60, 0)
    );
    let second = import(&r.svc, &dir).await;
    assert_eq!(
        (second.parsed, second.inserted, second.duplicates),
        (60, 0, 60)
    );
    assert_eq!(
        r.svc.count(&MessageFilter::default()).await.expect("count"),
        60
    );
    let counts = counts_settle(&r.svc).await;
    // 48 regular messages (every 5th is a service notice, which counts for nobody).
    assert_eq!(counts.iter().map(|c| c.1).sum::<i64>(), 48);

    let bob = MessageFilter {
        user_ids: vec!["user2".into()],
        ..Default::default()
    };
    let bobs = r.svc.count(&bob).await.expect("count");
    assert!(bobs > 0);
    assert_eq!(r.svc.delete(&bob, false).await.expect("delete"), bobs);
    assert_eq!(r.svc.delete(&bob, false).await.expect("delete again"), 0);
    let counts = counts_settle(&r.svc).await;
    assert!(counts.iter().all(|c| c.0 != "user2"), "{counts:?}");
    assert_eq!(r.svc.user("user2").await.expect("user").count, 0);
    // An empty filter never deletes by accident.
    assert!(r
        .svc
        .delete(&MessageFilter::default(), false)
        .await
        .is_err());
    assert_eq!(
        r.svc
            .delete(&MessageFilter::default(), true)
            .await
            .expect("all"),
        60 - bobs
    );
    assert!(counts_settle(&r.svc).await.is_empty());
}

// Proves: a JSON and an HTML export of the same chat (HTML has no chat id)
// collide on (chat, message id): one copy, and the HTML pass reports them
// as duplicates; the chat-id filter finds the chat.
async fn json_and_html_of_one_chat_store_one_copy(r: Rig) {
    let msgs = chat("Work chat", 77, 23);
    let root = r.dir.path().join("both");
    write_json(&root.join("a_json"), "Work chat", 77, &msgs);
    write_html(&root.join("b_html"), "Work chat", &msgs);
    let rep = import(&r.svc, &root).await;
    assert_eq!(rep.parsed, 46, "{rep:?}");
    assert_eq!(rep.inserted, 23);
    assert_eq!(rep.duplicates, 23);
    let by_id = MessageFilter {
        chat_ids: vec![77],
        ..Default::default()
    };
    assert_eq!(r.svc.count(&by_id).await.expect("count"), 23);
    counts_settle(&r.svc).await;

    // HTML first, then JSON: still one copy; the chat id learnt from JSON
    // makes the HTML-imported chat findable by id.
    let other = chat("Other chat", 78, 9);
    write_html(&root.join("c_html_only"), "Other chat", &other);
    import(&r.svc, &root.join("c_html_only")).await;
    write_json(&root.join("d_json_later"), "Other chat", 78, &other);
    let rep = import(&r.svc, &root.join("d_json_later")).await;
    assert_eq!((rep.inserted, rep.duplicates), (0, 9));
    let by_id = MessageFilter {
        chat_ids: vec![78],
        ..Default::default()
    };
    assert_eq!(r.svc.count(&by_id).await.expect("count"), 9);
    counts_settle(&r.svc).await;
}

// Proves: backup in each format (CSV and Parquet, to a directory and to
// the object store) -> delete everything -> restore gives exactly the same
// search results, a second restore changes nothing (idempotent restore),
// backup names never collide and carry the format's extension, and a
// Parquet backup is one Parquet file (magic at both ends).
async fn backup_wipe_restore_gives_identical_results(r: Rig) {
    let mut msgs = chat("Backup chat", 5, 40);
    msgs[3].text = "quotes \" and, commas\nand lines".into();
    msgs[4].links.push(tributary_chat::Link {
        text: "x".into(),
        href: "https://e.x/?a=1&b=2".into(),
    });
    let dir = r.dir.path().join("export");
    write_json(&dir, "Backup chat", 5, &msgs);
    import(&r.svc, &dir).await;
    write_html(
        &r.dir.path().join("html2"),
        "Html chat",
        &chat("Html chat", 6, 11),
    );
    import(&r.svc, &r.dir.path().join("html2")).await;
    let req = SearchRequest {
        sorts: vec![Sort {
            field: SortField::Created,
            desc: true,
        }],
        take: Some(1000),
        ..Default::default()
    };
    let before = r.svc.search(&req).await.expect("search");
    assert_eq!(before.len(), 51);

    use tributary_chat::service::BackupFormat;
    for format in [BackupFormat::Csv, BackupFormat::Parquet] {
        let ext = format!(".{}", format.extension());
        let to_dir = r.dir.path().join(format!("backups-{}", format.extension()));
        let rep = r
            .svc
            .backup(
                &MessageFilter::default(),
                &BackupTarget::Dir(to_dir.clone()),
                format,
                &|_| {},
            )
            .await
            .expect("backup");
        assert_eq!(rep.messages, 51, "{format:?}");
        assert!(rep.location.ends_with(&ext), "{rep:?}");
        let file = std::fs::read(&rep.location).expect("read backup");
        assert_eq!(file.len() as u64, rep.bytes, "{format:?}");
        if format == BackupFormat::Parquet {
            assert!(file.starts_with(b"PAR1") && file.ends_with(b"PAR1"));
        }
        let rep2 = r
            .svc
            .backup(
                &MessageFilter::default(),
                &BackupTarget::Dir(to_dir.clone()),
                format,
                &|_| {},
            )
            .await
            .expect("backup");
        assert_ne!(rep.location, rep2.location, "backup names never collide");
        std::fs::remove_file(&rep2.location).expect("remove second");
        let obj = r
            .svc
            .backup(
                &MessageFilter::default(),
                &BackupTarget::Objects,
                format,
                &|_| {},
            )
            .await
            .expect("backup to objects");
        assert_eq!(obj.messages, 51);
        assert!(obj.location.ends_with(&ext), "{obj:?}");

        for source in [
            RestoreSource::Path(to_dir.clone()),
            RestoreSource::Object(obj.location.clone()),
        ] {
            r.svc
                .delete(&MessageFilter::default(), true)
                .await
                .expect("wipe");
            assert_eq!(
                r.svc.count(&MessageFilter::default()).await.expect("count"),
                0
            );
            let restored = r.svc.restore(&source, &|_| {}).await.expect("restore");
            assert_eq!(
                (restored.inserted, restored.files_failed),
                (51, 0),
                "{format:?} {source:?} {restored:?}"
            );
            assert_eq!(
                r.svc.search(&req).await.expect("search"),
                before,
                "{format:?} {source:?}"
            );
            let again = r
                .svc
                .restore(&source, &|_| {})
                .await
                .expect("restore again");
            assert_eq!((again.inserted, again.duplicates), (0, 51));
        }
    }
    counts_settle(&r.svc).await;
}

// Proves: a broken file inside a directory is reported with its file and
// position, and every good file is still imported.
async fn broken_file_is_reported_and_the_rest_imported(r: Rig) {
    let root = r.dir.path().join("mixed");
    write_json(&root.join("good"), "Good", 1, &chat("Good", 1, 12));
    let bad = writer::json_export("Bad", 2, &chat("Bad", 2, 12));
    std::fs::create_dir_all(root.join("zbad")).expect("mkdir");
    std::fs::write(root.join("zbad/result.json"), &bad[..bad.len() / 2]).expect("write");
    let rep = import(&r.svc, &root).await;
    assert_eq!(rep.files_failed, 1, "{rep:?}");
    let err = rep
        .errors
        .iter()
        .find(|e| e.file.contains("zbad"))
        .expect("reported");
    assert!(
        err.position.contains("line") || err.position.contains("byte"),
        "{err:?}"
    );
    let good = MessageFilter {
        chat_names: vec!["Good".into()],
        ..Default::default()
    };
    assert_eq!(r.svc.count(&good).await.expect("count"), 12);
    counts_settle(&r.svc).await;
}

// Proves: each filter of the spec restricts on its own (max without min,
// too), sorting and paging work, and bad requests are refused.
async fn every_filter_is_honoured(r: Rig) {
    let dir = r.dir.path().join("f");
    write_json(&dir.join("a"), "Alpha", 10, &chat("Alpha", 10, 30));
    write_json(&dir.join("b"), "Beta", 20, &chat("Beta", 20, 10));
    import(&r.svc, &dir).await;
    let count = |f: MessageFilter| {
        let svc = r.svc.clone();
        async move { svc.count(&f).await.expect("count") }
    };
    let at = |i: i64| {
        Utc.timestamp_opt(BASE + i * 3600, 0)
            .single()
            .expect("time")
    };
    assert_eq!(
        count(MessageFilter {
            id: Some(3),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(MessageFilter {
            min_created: Some(at(25)),
            ..Default::default()
        })
        .await,
        6
    );
    assert_eq!(
        count(MessageFilter {
            max_created: Some(at(2)),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(MessageFilter {
            min_created: Some(at(2)),
            max_created: Some(at(3)),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(MessageFilter {
            text: Some("message 1 ".into()),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(MessageFilter {
            text: Some("RUST".into()),
            ..Default::default()
        })
        .await,
        0
    );
    // Full text: 'rust' words, case-insensitive, both words required.
    let rust = count(MessageFilter {
        query: Some("Rust".into()),
        ..Default::default()
    })
    .await;
    let rust_topic = count(MessageFilter {
        query: Some("rust topic".into()),
        ..Default::default()
    })
    .await;
    let rust_golang = count(MessageFilter {
        query: Some("rust golang".into()),
        ..Default::default()
    })
    .await;
    assert_eq!((rust, rust_topic, rust_golang), (16, 16, 0));
    assert_eq!(
        count(MessageFilter {
            user_ids: vec!["user1".into(), "user3".into()],
            ..Default::default()
        })
        .await,
        21
    );
    assert_eq!(
        count(MessageFilter {
            chat_ids: vec![20],
            ..Default::default()
        })
        .await,
        10
    );
    assert_eq!(
        count(MessageFilter {
            chat_names: vec!["Alpha".into()],
            chat_ids: vec![20],
            ..Default::default()
        })
        .await,
        0
    );

    let page = |skip: u64| SearchRequest {
        filter: MessageFilter {
            chat_ids: vec![10],
            ..Default::default()
        },
        sorts: vec![Sort {
            field: SortField::Id,
            desc: true,
        }],
        take: Some(5),
        skip,
    };
    let ids: Vec<i64> = r
        .svc
        .search(&page(0))
        .await
        .expect("page")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [30, 29, 28, 27, 26]);
    let ids: Vec<i64> = r
        .svc
        .search(&page(5))
        .await
        .expect("page")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [25, 24, 23, 22, 21]);
    let by_created = SearchRequest {
        sorts: vec![
            Sort {
                field: SortField::Created,
                desc: false,
            },
            Sort {
                field: SortField::Chat,
                desc: true,
            },
        ],
        take: Some(2),
        ..Default::default()
    };
    let first: Vec<(String, i64)> = r
        .svc
        .search(&by_created)
        .await
        .expect("sorted")
        .iter()
        .map(|m| (m.chat_name.clone(), m.id))
        .collect();
    assert_eq!(first, [("Beta".to_owned(), 1), ("Alpha".to_owned(), 1)]);
    assert!(r
        .svc
        .search(&SearchRequest {
            take: Some(0),
            ..Default::default()
        })
        .await
        .is_err());
    assert!(r
        .svc
        .count(&MessageFilter {
            min_created: Some(at(3)),
            max_created: Some(at(2)),
            ..Default::default()
        })
        .await
        .is_err());
    assert_eq!(r.svc.search(&all(1000)).await.expect("all").len(), 40);
}

// Proves: WARN+ records pass through the audit layer, the shipper and the
// audit consumer into the store, and can be queried by service, level and
// time range; INFO records are not shipped.
async fn audit_records_are_shipped_stored_and_queried(r: Rig) {
    use tracing_subscriber::layer::SubscriberExt;
    use tributary_runtime::audit::{audit_layer, ship, SERVICE_SPAN};
    let (layer, queue) = audit_layer(&Default::default(), "process");
    let bus = r.svc_bus();
    tokio::spawn(ship(queue, bus, r.token.clone()));
    let started = Utc::now();
    {
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);
        tracing::info_span!(SERVICE_SPAN, service = "svc_a").in_scope(|| {
            tracing::warn!(target: "svc_a::x", user = 7, "disk almost full");
            tracing::info!(target: "svc_a", "not shipped");
        });
        tracing::info_span!(SERVICE_SPAN, service = "svc_b").in_scope(|| {
            tracing::error!(target: "svc_b", "it broke");
        });
    }
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        got = r.svc.audit(&AuditFilter::default()).await.expect("audit");
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 2, "{got:?}");
    let a = r
        .svc
        .audit(&AuditFilter {
            service: Some("svc_a".into()),
            ..Default::default()
        })
        .await
        .expect("a");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].message, "disk almost full");
    assert!(a[0].fields.contains("\"user\":7"), "{}", a[0].fields);
    let errors = r
        .svc
        .audit(&AuditFilter {
            level: Some("error".into()),
            ..Default::default()
        })
        .await
        .expect("e");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].service, "svc_b");
    let in_range = AuditFilter {
        from: Some(started),
        to: Some(Utc::now()),
        ..Default::default()
    };
    assert_eq!(r.svc.audit(&in_range).await.expect("range").len(), 2);
    let before = AuditFilter {
        to: Some(started - chrono::Duration::seconds(1)),
        ..Default::default()
    };
    assert!(r.svc.audit(&before).await.expect("before").is_empty());
}

impl Rig {
    fn svc_bus(&self) -> tributary_bus::Bus {
        self.svc.bus()
    }
}

/// A count event as the consumer receives it from the bus.
fn count_message(ev: &tributary_chat::domain::events::UserCountEvent) -> tributary_bus::Message {
    tributary_bus::Message {
        topic: USER_COUNTER_TOPIC.into(),
        partition: 0,
        offset: 0,
        key: Some(ev.user.clone().into_bytes().into()),
        value: serde_json::to_vec(ev).expect("json").into(),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

// Proves: pruning deletes the ids of count events applied before the
// cutoff (in batches, until none is left) and keeps the recent ones; a
// recent event delivered again is still ignored, so counts stay exact;
// and the periodic pruning task of the user counter does the same on its own.
async fn applied_event_ids_are_pruned_by_age(r: Rig) {
    use tributary_bus::runner::Handler as _;
    use tributary_chat::consumers::{prune_applied_before, run_pruning};
    let store = r.svc.store().clone();
    let dir = r.dir.path().join("old");
    write_json(&dir, "Old chat", 1, &chat("Old chat", 1, 20));
    import(&r.svc, &dir).await;
    counts_settle(&r.svc).await;
    let old = store.applied_event_ids().await.expect("ids");
    assert!(old > 0);

    tokio::time::sleep(Duration::from_millis(50)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dir = r.dir.path().join("new");
    write_json(&dir, "New chat", 2, &chat("New chat", 2, 20));
    import(&r.svc, &dir).await;
    counts_settle(&r.svc).await;
    let handler = UserCounterHandler::new(store.clone());
    let recent = tributary_chat::domain::events::UserCountEvent {
        event_id: "recent-redelivered".into(),
        user: "user9".into(),
        name: Some("Dave".into()),
        delta: 5,
    };
    handler
        .handle(&count_message(&recent))
        .await
        .expect("apply");
    let total = store.applied_event_ids().await.expect("ids");
    assert!(total > old + 1, "{total} ids, {old} old");

    let deleted = prune_applied_before(&store, cutoff, 2)
        .await
        .expect("prune");
    assert_eq!(
        deleted,
        u64::try_from(old).expect("count"),
        "only the old ids"
    );
    assert_eq!(store.applied_event_ids().await.expect("ids"), total - old);
    assert_eq!(
        prune_applied_before(&store, cutoff, 2)
            .await
            .expect("again"),
        0
    );

    // Redelivery of a recent event changes nothing.
    handler
        .handle(&count_message(&recent))
        .await
        .expect("redelivered");
    assert_eq!(r.svc.user("user9").await.expect("user").count, 5);
    assert_eq!(store.applied_event_ids().await.expect("ids"), total - old);

    // The periodic task: with a retention of 100 ms every id goes soon.
    let token = CancellationToken::new();
    let task = {
        let (store, token) = (store.clone(), token.clone());
        tokio::spawn(async move {
            run_pruning(
                &store,
                Duration::from_millis(100),
                Duration::from_millis(50),
                3,
                &token,
            )
            .await;
        })
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.applied_event_ids().await.expect("ids") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pruning task left ids behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    task.await.expect("pruning task");
}
