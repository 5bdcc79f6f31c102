//! Spawned-binary helper: start the real `tributary` with every service
//! listener on a free port, wait for `/readyz`, kill it with SIGKILL or
//! stop it with SIGTERM, restart it on the same data.
//!
//! Cargo gives `CARGO_BIN_EXE_tributary` only to the binary crate's own
//! tests, so the caller passes the binary's path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; a small race remains).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// Minimal HTTP/1.0 GET: `(status, body)`, or `None` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((status, body))
}

/// The stdout of a finished client command; panics with its stderr when it failed.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stdout of a finished `--json` client command, one JSON value a line;
/// panics when it failed or a line is not JSON.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout_ok(out)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object a line: {e}: {l}"))
        })
        .collect()
}

/// `tributary` with a clean configuration environment.
pub fn command(bin: &Path) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY__")
            || k == "TRIBUTARY_CONFIG"
            || k == "TRIBUTARY_CHAT_SERVER"
            || k == "TRIBUTARY_TOKEN"
        {
            c.env_remove(k);
        }
    }
    c
}

/// Runs the client command `bin ARGS` ([`command`]: no inherited
/// `TRIBUTARY_*` settings) with `env` on top and stdin closed: whether it
/// succeeded, and its stdout followed by its stderr.
pub fn run_cli(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = command(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The environment that moves every service listener of this build to a
/// free port: `TRIBUTARY__<KEY>=127.0.0.1:0` for each key that
/// `tributary services --json` lists under `listens`.
pub fn any_port_env(bin: &Path) -> Vec<(String, String)> {
    let out = command(bin)
        .args(["services", "--json"])
        .output()
        .unwrap_or_else(|e| panic!("run {} services --json: {e}", bin.display()));
    assert!(out.status.success(), "services --json failed: {out:?}");
    let mut env = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("services --json line {line:?}: {e}"));
        for key in v["listens"].as_array().into_iter().flatten() {
            if let Some(key) = key.as_str() {
                let var = format!("TRIBUTARY__{}", key.replace('.', "__").to_ascii_uppercase());
                env.push((var, "127.0.0.1:0".to_owned()));
            }
        }
    }
    env
}

/// What `/readyz` said when it turned 200.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The JSON body.
    pub body: serde_json::Value,
}

impl Ready {
    /// Every address a service reported, by service name.
    pub fn listening(&self) -> Vec<(String, SocketAddr)> {
        let mut out = Vec::new();
        for s in self.body["services"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or_default().to_owned();
            for a in s["listening"].as_array().into_iter().flatten() {
                if let Some(addr) = a.as_str().and_then(|a| a.parse().ok()) {
                    out.push((name.clone(), addr));
                }
            }
        }
        out
    }

    /// The address the service `name` reported first.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.listening()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }
}

/// A running `tributary` process, killed when dropped.
#[derive(Debug)]
pub struct Tributary {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// The admin server's address.
    pub admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Tributary {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Tributary {
    /// Starts `bin ARGS` (e.g. `up --data-dir D` or `serve chat-api`) with
    /// every listener on a free port, the admin server on a free port,
    /// stderr to `log`, and `env` on top.
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let mut all = any_port_env(bin);
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        all.push(("TRIBUTARY__ADMIN__LISTEN".into(), admin.to_string()));
        let mut t = Self {
            bin: bin.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: all,
            child: None,
            admin,
            log: log.to_owned(),
        };
        t.spawn();
        t
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let child = command(&self.bin)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// The sum of every series of the metric `name` on the process's
    /// `/metrics` (0 when absent or the process does not answer).
    pub fn metric(&self, name: &str) -> f64 {
        let Some((200, body)) = http_get(self.admin, "/metrics") else {
            return 0.0;
        };
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.strip_prefix(name))
            .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            .filter_map(|rest| rest.split_whitespace().last())
            .filter_map(|v| v.parse::<f64>().ok())
            .sum()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What the process wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/readyz` every `poll` until it answers 200 (and returns what
    /// it said) or `timeout` passes (panics with the log).
    pub fn wait_ready_every(&mut self, timeout: Duration, poll: Duration) -> Ready {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((200, body)) = http_get(self.admin, "/readyz") {
                let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                return Ready { body };
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tributary exited with {st} before ready; log:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!("not ready within {timeout:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(poll);
        }
    }

    /// [`Tributary::wait_ready_every`] with a 100 ms poll.
    pub fn wait_ready(&mut self, timeout: Duration) -> Ready {
        self.wait_ready_every(timeout, Duration::from_millis(100))
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill {sig}: {e}"));
        assert!(status.success(), "kill {sig} {}", self.pid());
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + timeout;
        loop {
            let Some(c) = self.child.as_mut() else {
                panic!("not running");
            };
            if let Some(st) = c.try_wait().ok().flatten() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "did not stop within {timeout:?} of SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the same command again (after [`Tributary::kill9`] or [`Tributary::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }
}
