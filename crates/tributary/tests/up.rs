//! Spawned-binary tests: `tributary up` on a fresh data directory becomes
//! ready, shuts down cleanly on SIGTERM, and bad backend URLs fail with one
//! clear line that names the URL without its password.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Minimal HTTP/1.0 GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((status, body))
}

/// Every service listener on a free port, so tests never clash with each other or the machine.
const SERVICE_PORTS_ANY: [(&str, &str); 4] = [
    ("TRIBUTARY__LOGISTICS__GRPC_LISTEN", "127.0.0.1:0"),
    ("TRIBUTARY__LOGISTICS__HTTP_LISTEN", "127.0.0.1:0"),
    ("TRIBUTARY__CHAT__LISTEN", "127.0.0.1:0"),
    ("TRIBUTARY__CHAT__GRPC_LISTEN", "127.0.0.1:0"),
];

fn tributary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    // Start from a clean configuration environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY__") || k == "TRIBUTARY_CONFIG" {
            c.env_remove(k);
        }
    }
    c
}

// Proves the README's run command works on a fresh directory: /readyz answers 200 with
// every embedded backend checked, /metrics answers, and SIGTERM stops the process cleanly.
#[test]
fn up_becomes_ready_and_stops_on_sigterm() {
    let dir = tributary_testkit::temp_dir();
    let port = free_port();
    let mut child = tributary()
        .args(["up", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TRIBUTARY__ADMIN__LISTEN", format!("127.0.0.1:{port}"))
        .envs(SERVICE_PORTS_ANY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tributary up");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Some((200, body)) = get(addr, "/readyz") {
            break body;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("not ready within 30 s; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for check in ["sql", "bus", "objects", "cache"] {
        assert!(
            ready.contains(check),
            "{check} missing from /readyz: {ready}"
        );
    }
    assert_eq!(get(addr, "/livez").map(|r| r.0), Some(200));
    let (status, metrics) = get(addr, "/metrics").expect("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tributary_build_info"), "{metrics}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "exit status after SIGTERM: {st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(dir.path().join("data/bus.db").exists());
    assert!(dir.path().join("data/tributary.db").exists());
}

fn fails_with(envs: &[(&str, &str)]) -> String {
    let dir = tributary_testkit::temp_dir();
    let mut cmd = tributary();
    cmd.args(["up", "--data-dir"])
        .arg(dir.path())
        .env(
            "TRIBUTARY__ADMIN__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("TRIBUTARY__SQL__ACQUIRE_TIMEOUT_SECS", "1")
        .envs(SERVICE_PORTS_ANY);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    assert!(!out.status.success(), "must fail: {envs:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// Proves an unreachable PostgreSQL URL fails fast with one line naming it, password masked.
#[test]
fn unreachable_backend_is_named_without_password() {
    let err = fails_with(&[(
        "TRIBUTARY__SQL__URL",
        "postgres://app:hunter2@127.0.0.1:1/x",
    )]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
}

// Proves malformed URLs and unknown configuration keys are rejected with their name.
#[test]
fn malformed_configuration_is_named() {
    let err = fails_with(&[("TRIBUTARY__BUS__URL", "amqp://broker")]);
    assert!(
        err.contains("amqp://broker") && err.contains("kafka://"),
        "{err}"
    );
    let err = fails_with(&[("TRIBUTARY__SQL__ULR", "x")]);
    assert!(err.contains("ulr"), "{err}");
}
