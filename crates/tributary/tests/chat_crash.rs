//! Crash test of the real binary, the chat import promise: `tributary serve
//! chat-api chat-outbox chat-users` takes an upload of a large Telegram
//! export (`tributary chat import FILE --server URL`) and is killed with
//! SIGKILL while the import is storing it (once 30% of the messages are
//! stored; the test checks fewer than 90% were), restarted on the same data, and the same file is
//! imported again. The archive must then hold exactly the export: total
//! messages, messages per user (archive counts and the per-user counter fed
//! through the outbox and the bus), users; nothing lost, nothing doubled.
//! Run on SQLite and on PostgreSQL (the embedded bus in both).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tributary_testkit::spawn::{command, free_port, http_get, stdout_ok, Tributary};
use tributary_testkit::{backend, fresh_postgres_db, Backend};

mod common;

use common::bin;

/// Messages in the export.
const MESSAGES: i64 = 40_000;
/// Senders, with uneven shares: message `i` is by `SENDER[i % 10]`.
const SENDER: [usize; 10] = [0, 0, 0, 1, 1, 2, 3, 4, 5, 6];
const USERS: usize = 7;

/// Writes a single-chat Telegram JSON export of [`MESSAGES`] messages;
/// returns the expected messages per user key (`user1`..`user7`).
fn write_export(file: &Path) -> BTreeMap<String, i64> {
    let base = 1_700_000_000i64;
    let mut want = BTreeMap::new();
    let messages: Vec<serde_json::Value> = (1..=MESSAGES)
        .map(|i| {
            let u = SENDER[usize::try_from(i % 10).unwrap()] + 1;
            *want.entry(format!("user{u}")).or_insert(0) += 1;
            let secs = base + i * 7;
            let local = chrono::DateTime::from_timestamp(secs, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let text = format!("message {i} from sender {u} about the crash test");
            serde_json::json!({
                "id": i,
                "type": "message",
                "date": local,
                "date_unixtime": secs.to_string(),
                "from": format!("Sender {u}"),
                "from_id": format!("user{u}"),
                "text": text,
                "text_entities": [{"type": "plain", "text": text}],
            })
        })
        .collect();
    let export = serde_json::json!({
        "name": "crash chat",
        "type": "personal_chat",
        "id": 777,
        "messages": messages,
    });
    std::fs::write(file, serde_json::to_vec(&export).unwrap()).unwrap();
    assert_eq!(want.len(), USERS);
    want
}

fn chat(server: &str, args: &[&str]) -> String {
    let out = command(bin())
        .args(["chat", "--server", server])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    stdout_ok(&out)
}

/// Messages stored, or `None` while the server does not answer.
fn count(server: &str, user: Option<&str>) -> Option<i64> {
    let mut c = command(bin());
    c.args(["chat", "--server", server, "count"]);
    if let Some(u) = user {
        c.args(["--user", u]);
    }
    let out = c.stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The per-user counter (`GET /api/chat/users`): user key -> count.
fn counter(addr: SocketAddr) -> BTreeMap<String, i64> {
    let Some((200, body)) = http_get(addr, "/api/chat/users?limit=1000") else {
        return BTreeMap::new();
    };
    let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    v.iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_owned(),
                u["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn import(server: &str, file: &Path) -> Child {
    command(bin())
        .args(["chat", "--server", server, "import"])
        .arg(file)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn import_killed_mid_way(sql_url: String, what: &str, dir: &Path) {
    let t_start = Instant::now();
    let file = dir.join("result.json");
    let want = write_export(&file);
    let bus_url = format!("sqlite://{}", dir.join("bus.db").display());
    let data = dir.join("data");
    let data_s = data.to_string_lossy().into_owned();
    let chat_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let listen = chat_addr.to_string();
    let server = format!("http://{chat_addr}");
    let env = [
        ("TRIBUTARY__SQL__URL", sql_url.as_str()),
        ("TRIBUTARY__BUS__URL", bus_url.as_str()),
        ("TRIBUTARY__DATA_DIR", data_s.as_str()),
        ("TRIBUTARY__CHAT__LISTEN", listen.as_str()),
        // Small batches: many commits, so the kill lands between and inside them.
        ("TRIBUTARY__CHAT__BATCH_SIZE", "50"),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
    ];
    let mut t = Tributary::start(
        bin(),
        &["serve", "chat-api", "chat-outbox", "chat-users"],
        &env,
        &dir.join("chat.log"),
    );
    t.wait_ready(Duration::from_secs(60));

    let mut upload = import(&server, &file);
    let import_started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stored;
    loop {
        stored = count(&server, None).unwrap_or(0);
        if stored >= MESSAGES * 3 / 10 {
            break;
        }
        assert!(
            upload.try_wait().unwrap().is_none(),
            "the import ended before the kill ({stored} stored): {:?}",
            upload.wait_with_output()
        );
        assert!(
            Instant::now() < deadline,
            "import too slow:\n{}",
            t.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill_after = import_started.elapsed();
    t.kill9();
    let out = upload.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the import must fail when the server dies: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    t.restart();
    t.wait_ready(Duration::from_secs(60));
    let at_restart = count(&server, None).unwrap();
    let fraction = at_restart as f64 / MESSAGES as f64;
    assert!(
        (0.1..0.9).contains(&fraction),
        "the kill must land between 10% and 90% of the import ({at_restart} of {MESSAGES} stored)"
    );

    let t_again = Instant::now();
    let report: serde_json::Value = serde_json::from_str(&chat(
        &server,
        &["import", &file.to_string_lossy(), "--json"],
    ))
    .unwrap();
    let reimport = t_again.elapsed();
    assert_eq!(report["parsed"], MESSAGES, "{report}");
    assert_eq!(
        report["inserted"].as_i64().unwrap() + at_restart,
        MESSAGES,
        "{report}"
    );
    assert_eq!(
        report["duplicates"].as_i64().unwrap(),
        at_restart,
        "{report}"
    );

    // The archive: total and per user.
    assert_eq!(count(&server, None), Some(MESSAGES), "total messages");
    for (u, n) in &want {
        assert_eq!(count(&server, Some(u)), Some(*n), "messages of {u}");
    }
    // The per-user counter (outbox -> bus -> chat-users) catches up exactly.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut users = counter(chat_addr);
    while users != want {
        assert!(
            Instant::now() < deadline,
            "per-user counts {users:?}, want {want:?}\n{}",
            t.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
        users = counter(chat_addr);
    }
    // And stays there (no late duplicate applied).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(counter(chat_addr), want, "per-user counts after settling");
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    eprintln!(
        "chat SIGKILL mid-import ({what}): {MESSAGES} messages, {USERS} users; killed {kill_after:?} after the upload \
         started with {stored} counted, {at_restart} stored after the restart ({:.0}% of the export); re-import: \
         {} new, {} already stored in {reimport:?}; archive {MESSAGES} messages, per-user archive counts and counter \
         equal the export; test took {:?}",
        fraction * 100.0,
        report["inserted"],
        report["duplicates"],
        t_start.elapsed()
    );
}

// Proves an import cut by a SIGKILL of the server and run again leaves the
// archive equal to the export, nothing lost or doubled (SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_survives_sigkill_sqlite() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("chat.db").display());
    import_killed_mid_way(sql, "SQLite", dir.path()).await;
}

// Proves the same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_survives_sigkill_postgres() {
    let Some(pg) = backend(Backend::Postgres) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    import_killed_mid_way(sql, "PostgreSQL", dir.path()).await;
}
