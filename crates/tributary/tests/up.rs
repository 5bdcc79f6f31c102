//! Spawned-binary tests of the process model: `tributary up` on a fresh data
//! directory becomes ready only once every service accepts connections and
//! shuts down cleanly on SIGTERM; each service runs alone under `serve`;
//! bad backend URLs fail with one clear line that names the URL without its
//! password.

use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tributary_testkit::spawn::{any_port_env, command, free_port, http_get, Tributary};
use tributary_testkit::{backend, fresh_postgres_db, Backend};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

/// The service names of this build, from `tributary services --json`.
fn services() -> Vec<String> {
    let out = command(bin())
        .args(["services", "--json"])
        .output()
        .expect("services");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["name"].as_str().expect("name").to_owned()
        })
        .collect()
}

// Proves the README's run command works on a fresh directory: /readyz answers 200 with
// every embedded backend and every service checked, /metrics answers, and SIGTERM stops
// the process cleanly.
#[test]
fn up_becomes_ready_and_stops_on_sigterm() {
    let dir = tributary_testkit::temp_dir();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let mut up = Tributary::start(
        bin(),
        &["up", "--data-dir", &data_arg],
        &[],
        &dir.path().join("log"),
    );
    let ready = up.wait_ready(Duration::from_secs(60));
    let text = ready.body.to_string();
    for check in ["sql", "bus", "objects", "cache"] {
        assert!(
            text.contains(&format!("\"name\":\"{check}")),
            "{check} missing from /readyz: {text}"
        );
    }
    for svc in services() {
        assert!(
            text.contains(&format!("\"{svc}\"")),
            "service {svc} missing from /readyz: {text}"
        );
    }
    assert_eq!(http_get(up.admin, "/livez").map(|r| r.0), Some(200));
    let (status, metrics) = http_get(up.admin, "/metrics").expect("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tributary_build_info"), "{metrics}");
    let st = up.stop(Duration::from_secs(20));
    assert!(
        st.success(),
        "exit status after SIGTERM: {st}\n{}",
        up.log_text()
    );
    assert!(data.join("bus.db").exists());
    assert!(data.join("tributary.db").exists());
}

// Proves every series the shipped Grafana dashboards and Prometheus rules query is in the
// /metrics of a fresh `tributary up` before any traffic (issue #9 item 7): scrapes every server
// of the process that serves /metrics (the admin server; API listeners too if one does) and
// runs `scripts/check_dashboards.py --metrics` on the merged text.
#[test]
fn dashboard_series_exist_in_a_fresh_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tributary_testkit::temp_dir();
    let data_arg = dir.path().join("data").to_string_lossy().into_owned();
    let mut up = Tributary::start(
        bin(),
        &["up", "--data-dir", &data_arg],
        &[],
        &dir.path().join("log"),
    );
    let ready = up.wait_ready(Duration::from_secs(60));
    let (status, mut text) = http_get(up.admin, "/metrics").expect("admin /metrics");
    assert_eq!(status, 200, "admin /metrics: {text}");
    let mut scraped = vec![format!("admin {}", up.admin)];
    for (svc, addr) in ready.listening() {
        if let Some((200, body)) = http_get(addr, "/metrics") {
            if body.contains("# TYPE ") {
                text.push_str(&body);
                scraped.push(format!("{svc} {addr}"));
            }
        }
    }
    let st = up.stop(Duration::from_secs(20));
    assert!(
        st.success(),
        "exit status after SIGTERM: {st}\n{}",
        up.log_text()
    );
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).expect("write the scrape");
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/check_dashboards.py"))
        .arg("--root")
        .arg(&root)
        .arg("--metrics")
        .arg(&file)
        .output()
        .expect("run python3 scripts/check_dashboards.py");
    assert!(
        out.status.success(),
        "dashboard series missing from the /metrics of {scraped:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `up` `rounds` times on `sql` (a fresh URL each round from
/// `sql_url`); each time polls /readyz every 5 ms and, the moment it is
/// 200, connects to every address every service reported.
fn ready_means_accepting(rounds: usize, sql_url: &dyn Fn() -> Option<String>) {
    let expected = any_port_env(bin()).len();
    for round in 0..rounds {
        let dir = tributary_testkit::temp_dir();
        let data_arg = dir.path().join("data").to_string_lossy().into_owned();
        let mut env = Vec::new();
        let url = sql_url();
        if let Some(url) = &url {
            env.push(("TRIBUTARY__SQL__URL", url.as_str()));
        }
        let mut up = Tributary::start(
            bin(),
            &["up", "--data-dir", &data_arg],
            &env,
            &dir.path().join("log"),
        );
        let ready = up.wait_ready_every(Duration::from_secs(60), Duration::from_millis(5));
        let addrs = ready.listening();
        assert_eq!(
            addrs.len(),
            expected,
            "round {round}: every listener is reported: {}",
            ready.body
        );
        for (svc, addr) in &addrs {
            TcpStream::connect_timeout(addr, Duration::from_secs(1)).unwrap_or_else(|e| {
                panic!("round {round}: /readyz was 200 but {svc} at {addr} refused: {e}")
            });
        }
        up.kill9();
    }
}

// Proves /readyz never answers 200 before every service of the process accepts connections
// (SQLite): 20 starts in a row, each connecting to every port the moment /readyz turns 200.
#[test]
fn readyz_is_200_only_when_every_port_accepts_sqlite() {
    ready_means_accepting(20, &|| None);
}

// Proves the same on PostgreSQL, a fresh database each start (so migrations run every time).
#[test]
fn readyz_is_200_only_when_every_port_accepts_postgres() {
    let Some(base) = backend(Backend::Postgres) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    ready_means_accepting(20, &|| {
        Some(rt.block_on(fresh_postgres_db(&base)).expect("db"))
    });
}

// Proves every service runs alone under `serve NAME` against PostgreSQL + Kafka, reports
// ready, and stops cleanly on SIGTERM.
#[test]
fn each_service_serves_alone_on_postgres_and_kafka() {
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(fresh_postgres_db(&pg)).expect("db");
    for svc in services() {
        let dir = tributary_testkit::temp_dir();
        let mut p = Tributary::start(
            bin(),
            &["serve", &svc],
            &[
                ("TRIBUTARY__SQL__URL", &db),
                ("TRIBUTARY__BUS__URL", &kafka),
                ("TRIBUTARY__DATA_DIR", &dir.path().to_string_lossy()),
            ],
            &dir.path().join("log"),
        );
        let ready = p.wait_ready(Duration::from_secs(90));
        let names: Vec<&str> = ready.body["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, vec![svc.as_str()], "serve runs only {svc}");
        let st = p.stop(Duration::from_secs(30));
        assert!(st.success(), "{svc}: exit status {st}\n{}", p.log_text());
    }
}

fn fails_with(envs: &[(&str, &str)]) -> String {
    let dir = tributary_testkit::temp_dir();
    let mut cmd = command(bin());
    cmd.args(["up", "--data-dir"])
        .arg(dir.path())
        .env(
            "TRIBUTARY__ADMIN__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("TRIBUTARY__SQL__ACQUIRE_TIMEOUT_SECS", "1")
        .envs(any_port_env(bin()))
        .stdout(Stdio::null());
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

// Proves malformed URLs, unknown configuration keys and unknown sections are rejected with their name.
#[test]
fn malformed_configuration_is_named() {
    let err = fails_with(&[("TRIBUTARY__BUS__URL", "amqp://broker")]);
    assert!(
        err.contains("amqp://broker") && err.contains("kafka://"),
        "{err}"
    );
    let err = fails_with(&[("TRIBUTARY__SQL__ULR", "x")]);
    assert!(err.contains("ulr"), "{err}");
    let err = fails_with(&[("TRIBUTARY__CHTA__LISTEN", "x")]);
    assert!(err.contains("chta") && err.contains("chat"), "{err}");
}

// Proves `tributary migrate` applies every system's migrations once, in its own namespace,
// also when two processes run it at once on one SQLite file.
#[test]
fn migrate_twice_at_once_applies_once() {
    let dir = tributary_testkit::temp_dir();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let run = || {
        command(bin())
            .args(["migrate", "--json"])
            .env("TRIBUTARY__SQL__URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn migrate")
    };
    let (a, b) = (run(), run());
    let mut applied = 0;
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            applied += v["applied"].as_array().map_or(0, Vec::len);
        }
    }
    let out = command(bin())
        .args(["migrate", "--json"])
        .env("TRIBUTARY__SQL__URL", &url)
        .output()
        .expect("third run");
    assert!(out.status.success());
    let again: usize = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["applied"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert!(applied > 0, "something was applied");
    assert_eq!(again, 0, "nothing left to apply");
}
