//! Spawned-binary tests of the chat archive: the real `tributary up` on
//! free ports and a fresh data directory, driven by the real `tributary
//! chat ...` CLI over the chat REST API; and the audit log of the process,
//! fed by every service in it (a logistics warning shows up in the chat
//! audit query).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_testkit::spawn::{any_port_env, free_port, http_get};

/// The status of `GET path` (`Host: 127.0.0.1`), or `None` when nothing answers.
fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|r| r.0)
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

/// `tributary` with a clean configuration environment (the test kit's).
fn tributary() -> Command {
    tributary_testkit::spawn::command(bin())
}

/// A running `tributary up`, killed if a test fails before stopping it.
struct Up {
    child: Child,
    admin: SocketAddr,
    chat: SocketAddr,
    grpc: SocketAddr,
    _dir: tempfile::TempDir,
    data: PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    /// Starts `tributary up` with every listener on a free port and `envs` on top.
    fn start(envs: &[(&str, &str)]) -> Up {
        let dir = tributary_testkit::temp_dir();
        let data = dir.path().join("data");
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let chat: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = tributary()
            .args(["up", "--data-dir"])
            .arg(&data)
            .envs(any_port_env(bin()))
            .env("TRIBUTARY__ADMIN__LISTEN", admin.to_string())
            .env("TRIBUTARY__CHAT__LISTEN", chat.to_string())
            .env("TRIBUTARY__CHAT__GRPC_LISTEN", grpc.to_string())
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tributary up");
        Up {
            child,
            admin,
            chat,
            grpc,
            _dir: dir,
            data,
        }
    }

    fn server(&self) -> String {
        format!("http://{}", self.chat)
    }

    /// Waits until `addr` answers `path` with 200, or fails with the stderr.
    fn wait_for(&mut self, addr: SocketAddr, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(addr, path) != Some(200) {
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                let _ = self.child.kill();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{path} on {addr} not 200 within 30 s; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `tributary chat --server URL ARGS...`; its stdout, or a panic
    /// with both streams when it fails.
    fn chat(&self, args: &[&str]) -> String {
        let out = tributary()
            .args(["chat", "--server", &self.server()])
            .args(args)
            .output()
            .expect("run tributary chat");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tributary chat {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Repeats `tributary chat ARGS` until `done(stdout)`, for state the
    /// consumers reach asynchronously.
    fn chat_until(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.chat(args);
            if done(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "tributary chat {args:?} never got there; last output:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the process must exit 0 within 20 s.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                assert!(st.success(), "exit status after SIGTERM: {st}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes a single-chat Telegram JSON export of `n` messages by Alice,
/// Bob and Carol in turn (`user1`..`user3`); even ones mention rust.
fn write_export(dir: &Path, n: i64) {
    let who = [("Alice", "user1"), ("Bob", "user2"), ("Carol", "user3")];
    let base = 1_700_000_000i64;
    let messages: Vec<serde_json::Value> = (1..=n)
        .map(|i| {
            let (from, from_id) = who[usize::try_from((i - 1) % 3).expect("index")];
            let secs = base + i * 60;
            // The export's local time; UTC here.
            let local = chrono::DateTime::from_timestamp(secs, 0)
                .expect("time")
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let text = format!(
                "hello {} number {i}",
                if i % 2 == 0 { "rust" } else { "golang" }
            );
            serde_json::json!({
                "id": i,
                "type": "message",
                "date": local,
                "date_unixtime": secs.to_string(),
                "from": from,
                "from_id": from_id,
                "text": text,
                "text_entities": [{"type": "plain", "text": text}],
            })
        })
        .collect();
    let export = serde_json::json!({
        "name": "CLI chat",
        "type": "personal_chat",
        "id": 4242,
        "messages": messages,
    });
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_vec_pretty(&export).expect("json"),
    )
    .expect("write export");
}

/// `ID\tNAME\tCOUNT` lines of `tributary chat users`, sorted.
fn users(out: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let id = f.next()?.to_owned();
            let count = f.nth(1)?.trim().parse().ok()?;
            Some((id, count))
        })
        .collect();
    v.sort();
    v
}

/// The text after " to " in `backed up N messages (B bytes) to LOCATION`.
fn backup_location(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("backed up 30 messages"))
        .unwrap_or_else(|| panic!("no backup summary in {out:?}"));
    line.rsplit_once(" to ")
        .map(|(_, loc)| loc.trim().to_owned())
        .unwrap_or_else(|| panic!("no location in {line:?}"))
}

// Proves the chat archive works end to end in the real binary: `tributary
// up` becomes ready; the `tributary chat` CLI imports an export (twice:
// one copy; again over gRPC with `--grpc`, the same `--json` report as
// over REST), counts (also full-text), searches with sort and paging (JSON
// lines), shows per-user counts that follow the archive (also after a
// delete), backs up to a directory and to the object store, and restores
// both to identical search results; SIGTERM then stops the process with 0.
#[test]
fn chat_cli_against_up_imports_searches_backs_up_and_restores() {
    let started = Instant::now();
    let work = tributary_testkit::temp_dir();
    let backups = work.path().join("backups");
    let mut up = Up::start(&[(
        "TRIBUTARY__CHAT__BACKUP_DIR",
        backups.to_str().expect("utf-8"),
    )]);
    let admin = up.admin;
    up.wait_for(admin, "/readyz");
    let export = work.path().join("export");
    write_export(&export, 30);
    let export_arg = export.to_str().expect("utf-8 path");

    let first = up.chat(&["import", export_arg]);
    assert!(
        first.contains("30 parsed, 30 new, 0 already stored"),
        "{first}"
    );
    let again = up.chat(&["import", export_arg]);
    assert!(
        again.contains("30 parsed, 0 new, 30 already stored"),
        "{again}"
    );
    let grpc = up.grpc.to_string();
    let over_grpc = up.chat(&["import", export_arg, "--grpc", &grpc]);
    assert_eq!(over_grpc, again, "the same import over gRPC");
    let report: serde_json::Value =
        serde_json::from_str(&up.chat(&["import", export_arg, "--grpc", &grpc, "--json"]))
            .expect("one JSON report");
    assert_eq!(report["parsed"], 30, "{report}");
    assert_eq!(report["inserted"], 0, "{report}");
    assert_eq!(report["duplicates"], 30, "{report}");
    let over_rest: serde_json::Value =
        serde_json::from_str(&up.chat(&["import", export_arg, "--json"])).expect("JSON");
    assert_eq!(report, over_rest);
    assert_eq!(up.chat(&["count"]).trim(), "30");
    assert_eq!(up.chat(&["count", "--query", "rust"]).trim(), "15");
    assert_eq!(
        up.chat(&["count", "--user", "user2", "--chat-id", "4242"])
            .trim(),
        "10"
    );

    let page = up.chat(&[
        "search",
        "--chat-id",
        "4242",
        "--sort",
        "id:desc",
        "--take",
        "3",
        "--skip",
        "1",
        "--json",
    ]);
    let ids: Vec<i64> = page
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            v["id"].as_i64().expect("id")
        })
        .collect();
    assert_eq!(ids, [29, 28, 27], "{page}");
    let everything = ["search", "--sort", "id", "--take", "1000", "--json"];
    let before = up.chat(&everything);
    assert_eq!(before.lines().count(), 30);

    let expected: Vec<(String, i64)> = ["user1", "user2", "user3"]
        .iter()
        .map(|u| ((*u).to_owned(), 10))
        .collect();
    up.chat_until(&["users"], |out| users(out) == expected);
    assert_eq!(up.chat(&["users", "user3"]).trim(), "user3\tCarol\t10");

    // `--dir` is relative to `chat.backup_dir`; the export was uploaded
    // (no import roots are set: the server reads no path of ours).
    let to_dir = up.chat(&["backup", "--dir", "nightly"]);
    let file = backup_location(&to_dir);
    assert!(Path::new(&file).is_file(), "{to_dir}");
    assert!(Path::new(&file).starts_with(&backups), "{file}");
    let to_objects = up.chat(&["backup", "--objects"]);
    let key = backup_location(&to_objects);
    // Keys are relative to `chat.backup_prefix` in the object store.
    assert!(
        up.data.join("objects/chat-backups").join(&key).is_file(),
        "object {key} not in the object store under the data directory"
    );

    for restore in [
        vec!["restore", backups.to_str().expect("utf-8")],
        vec!["restore", "--object", key.as_str()],
    ] {
        assert_eq!(up.chat(&["delete", "--all"]).trim(), "deleted 30");
        assert_eq!(up.chat(&["count"]).trim(), "0");
        up.chat_until(&["users"], |out| users(out).is_empty());
        let restored = up.chat(&restore);
        assert!(restored.contains("30 new"), "{restore:?}: {restored}");
        assert_eq!(up.chat(&everything), before, "{restore:?}");
        up.chat_until(&["users"], |out| users(out) == expected);
    }
    up.stop();
    eprintln!(
        "chat CLI against up: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// Proves every service of the process ships its log records to the audit
// log, named after the service that logged them: a warning of the
// logistics relay (it cannot create a topic with an invalid name) is
// queryable through `tributary chat audit --service logistics-relay`.
#[test]
fn a_logistics_warning_reaches_the_chat_audit_log() {
    let mut up = Up::start(&[("TRIBUTARY__LOGISTICS__RELAY__TOPIC", "not a topic!")]);
    // /readyz stays 503 (the relay has no topic); the chat API answers.
    let chat = up.chat;
    up.wait_for(chat, "/api/chat/users");
    let out = up.chat_until(
        &["audit", "--service", "logistics-relay", "--level", "warn"],
        |out| out.contains("cannot create the relay topic"),
    );
    let line = out
        .lines()
        .find(|l| l.contains("cannot create the relay topic"))
        .expect("line");
    assert!(
        line.contains(" WARN ") && line.contains(" logistics-relay "),
        "{line}"
    );
    assert!(line.contains("not a topic!"), "fields kept: {line}");
    up.stop();
}
