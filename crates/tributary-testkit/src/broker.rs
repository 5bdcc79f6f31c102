//! A private Kafka-protocol broker for one test: the real `tansu` binary
//! (installed by `scripts/backends.sh`) on a free port of 127.0.0.1 with
//! SQLite storage in a temporary directory of its own, so a test can
//! SIGKILL it, stop it and start it again on the same port and the same
//! data without touching the rig's shared broker that other tests use.
//!
//! The binary is found as `$TRIBUTARY_TANSU`, else `tansu` on `PATH`, else
//! `~/.cargo/bin/tansu`. When it is missing, [`PrivateTansu::start`] skips
//! the test (returns `None`, with a line on stderr), or fails it under CI,
//! the way [`crate::backend`] does.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::spawn::free_port;
use crate::{in_ci, temp_dir};

/// The environment variable that names the `tansu` binary to use.
pub const TANSU_ENV: &str = "TRIBUTARY_TANSU";

/// How long a start or restart may take until the broker answers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `tansu` binary: `$TRIBUTARY_TANSU`, `tansu` on `PATH`, or
/// `~/.cargo/bin/tansu`; `None` when none exists.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(TANSU_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin").join("tansu"));
    on_path.chain(cargo_home).find(|p| p.is_file())
}

/// A `tansu` broker of the test's own, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct PrivateTansu {
    bin: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl PrivateTansu {
    /// Starts a private broker on a free port with SQLite storage in a new
    /// temporary directory and waits until it answers a metadata request.
    /// `None` when the `tansu` binary is missing outside CI (the test
    /// should return early).
    ///
    /// # Panics
    /// Under CI when the binary is missing; when the broker does not answer
    /// within 60 s (with its log).
    pub async fn start() -> Option<Self> {
        let Some(bin) = tansu_binary() else {
            let msg = format!(
                "the tansu binary was not found (${TANSU_ENV}, PATH, ~/.cargo/bin/tansu); \
                 scripts/backends.sh start installs it"
            );
            if in_ci() {
                panic!("a private broker is required under CI but {msg}");
            }
            eprintln!("skipping: {msg}");
            return None;
        };
        let mut t = Self {
            bin,
            port: free_port(),
            dir: temp_dir(),
            child: None,
            starts: 0,
        };
        t.spawn();
        t.wait_ready(READY_TIMEOUT).await;
        Some(t)
    }

    /// `kafka://127.0.0.1:PORT`, the bus URL of this broker.
    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// Its port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id (0 while stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The directory that holds its storage (`tansu.db`) and its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the broker wrote so far, over every start.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "tansu is still running");
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path().display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone the tansu log handle: {e}"));
        let listen = format!("tcp://127.0.0.1:{}", self.port);
        // As scripts/backends.sh starts the shared one; its flags also read
        // OTEL_EXPORTER_OTLP_ENDPOINT, SCHEMA_REGISTRY, ... from the environment.
        let child = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .args(["broker", "--cluster-id", "tributary-private"])
            .args(["--listener-url", &listen])
            .args(["--advertised-listener-url", &listen])
            // The file lands in the current directory: the temporary one.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Waits until the broker answers a metadata request through the
    /// project's Kafka adapter (rdkafka); returns how long that took.
    ///
    /// # Panics
    /// When it exits first or does not answer within `timeout` (with its log).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        let url = self.url();
        let config = tributary_bus::BusConfig::default();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu on port {} exited with {st} (start {}); log:\n{}",
                    self.port,
                    self.starts,
                    self.log_text()
                );
            }
            // A cheap port check first: a metadata fetch against nothing waits its full timeout.
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                // `connect` fetches the cluster's metadata and fails when nothing answers it.
                if tributary_bus::connect(&url, &config).await.is_ok() {
                    return t0.elapsed();
                }
            }
            assert!(
                t0.elapsed() < timeout,
                "tansu on port {} did not answer within {timeout:?} (start {}); log:\n{}",
                self.port,
                self.starts,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap_or_else(|e| panic!("kill {sig} {pid}: {e}"));
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// SIGKILL (the process gets no chance to flush anything), then reaps it.
    ///
    /// # Panics
    /// When it is not running.
    pub fn kill9(&mut self) {
        assert!(self.child.is_some(), "tansu is not running");
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for it to exit; SIGKILL after
    /// that (said on stderr). Returns the exit status.
    ///
    /// # Panics
    /// When it is not running.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        assert!(self.child.is_some(), "tansu is not running");
        self.signal("-TERM");
        let deadline = Instant::now() + timeout;
        loop {
            let Some(c) = self.child.as_mut() else {
                panic!("tansu is not running");
            };
            if let Some(st) = c.try_wait().ok().flatten() {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "tansu pid {} did not exit within {timeout:?} of SIGTERM; SIGKILL",
                    c.id()
                );
                let _ = c.kill();
                let st = c
                    .wait()
                    .unwrap_or_else(|e| panic!("wait for tansu after SIGKILL: {e}"));
                self.child = None;
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker again on the same port and the same storage (after
    /// [`PrivateTansu::kill9`] or [`PrivateTansu::stop`]) and waits until it
    /// answers; returns how long that took.
    ///
    /// # Panics
    /// When it is still running, or does not answer within 60 s.
    pub async fn restart(&mut self) -> Duration {
        self.spawn();
        self.wait_ready(READY_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{read_topic_until, unique};

    async fn send(url: &str, topic: &str, from: usize, to: usize) {
        let bus = tributary_bus::connect(url, &tributary_bus::BusConfig::default())
            .await
            .unwrap();
        for i in from..to {
            bus.send(tributary_bus::Record::new(
                topic,
                format!("k{}", i % 7),
                format!("v{i}"),
            ))
            .await
            .unwrap();
        }
    }

    async fn count(url: &str, topic: &str, want: usize) -> usize {
        read_topic_until(url, topic, Duration::from_secs(60), |got| got.len() >= want)
            .await
            .len()
    }

    // Proves the private broker keeps acknowledged records across a SIGKILL and a SIGTERM, on its port.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn private_tansu_keeps_acked_records_across_kill_and_stop() {
        let Some(mut broker) = PrivateTansu::start().await else {
            return;
        };
        let url = broker.url();
        let topic = unique("private");
        tributary_bus::connect(&url, &tributary_bus::BusConfig::default())
            .await
            .unwrap()
            .create_topic(&topic, 3)
            .await
            .unwrap();
        send(&url, &topic, 0, 50).await;
        let pid = broker.pid();
        broker.kill9();
        assert_eq!(broker.pid(), 0);
        assert!(
            TcpStream::connect_timeout(&broker.addr(), Duration::from_millis(500)).is_err(),
            "port still open after SIGKILL"
        );
        broker.restart().await;
        assert_ne!(broker.pid(), pid);
        assert_eq!(broker.url(), url, "same port after a restart");
        assert_eq!(count(&url, &topic, 50).await, 50, "after SIGKILL");
        send(&url, &topic, 50, 80).await;
        broker.stop(Duration::from_secs(10));
        broker.restart().await;
        assert_eq!(count(&url, &topic, 80).await, 80, "after SIGTERM");
    }
}
