//! TLS servers of a test's own: a private certificate authority
//! ([`TestCa`]), a private PostgreSQL cluster that accepts TLS connections
//! only ([`TlsPostgres`]) and a private Redis that listens on TLS only
//! ([`TlsRedis`]). The shared PostgreSQL and Redis of the rig have no TLS,
//! so these start their own server process on a free port and kill it when
//! dropped.
//!
//! Certificates come from the `openssl` command (Debian package `openssl`);
//! the servers are the machine's `postgres` (PostgreSQL 15 under
//! `/usr/lib/postgresql/*/bin`) and `redis-server` binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::spawn::free_port;

/// A certificate authority made for one test, and one server certificate
/// it signed for `localhost` and `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate (PEM): what a client must trust.
    pub ca_cert: PathBuf,
    /// The server's certificate (PEM), signed by the CA.
    pub server_cert: PathBuf,
    /// The server's private key (PEM, unencrypted).
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("run openssl (Debian package openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl TestCa {
    /// Makes a CA named `name` and a server certificate under `dir`
    /// (P-256 keys, valid for two days).
    ///
    /// # Errors
    /// When `openssl` is missing or fails.
    pub fn generate(dir: &Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let ca_subj = format!("/CN={name}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend(ec);
        args.extend([
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", &ca_subj, "-addext",
        ]);
        args.push("basicConstraints=critical,CA:TRUE");
        openssl(dir, &args)?;
        let mut args = vec!["req", "-nodes"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(dir, &args)?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        )?;
        Ok(Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        })
    }
}

/// True when this process runs as root (`id -u` says 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args` as the `postgres` user when running as root
/// (PostgreSQL refuses to run as root), else as this user. `setpriv`
/// execs in place, so the child's PID is the program's own.
fn as_postgres_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries under /usr/lib/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .context("no /usr/lib/postgresql/*/bin/postgres on this machine")
}

/// Lets the `postgres` user (when running as root) own `path`.
fn give_to_postgres(path: &Path) -> anyhow::Result<()> {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()?;
        if !st.success() {
            bail!("chown postgres {}", path.display());
        }
    }
    Ok(())
}

/// A private PostgreSQL cluster on a free port of 127.0.0.1 that accepts
/// TLS connections only (`hostssl ... trust`, plain `host ... reject`),
/// user `postgres`, no password. Killed when dropped.
#[derive(Debug)]
pub struct TlsPostgres {
    /// The port it listens on.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// `initdb` + `postgres` with `ssl = on` and the server certificate of
    /// `ca`; returns once a TLS connection answers (within 60 s).
    ///
    /// # Errors
    /// When the PostgreSQL binaries are missing or the server does not start.
    pub async fn start(ca: &TestCa) -> anyhow::Result<Self> {
        let bin = pg_bin_dir()?;
        // Under /tmp, not the test's temp dir: the postgres user must be
        // able to reach it.
        let dir = tempfile::Builder::new()
            .prefix("tributary-pgtls-")
            .tempdir_in("/tmp")?;
        let data = dir.path().join("data");
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::copy(&ca.server_cert, &cert)?;
        std::fs::copy(&ca.server_key, &key)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        give_to_postgres(dir.path())?;
        let out = as_postgres_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .context("run initdb")?;
        if !out.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
        )?;
        give_to_postgres(&data)?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        give_to_postgres(&dir.path().join("postgres.log"))?;
        let child = as_postgres_user(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start postgres")?;
        let mut me = Self { port, child, dir };
        let url = me.url("postgres", &ca.ca_cert);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match sqlx::postgres::PgPool::connect(&url).await {
                Ok(pool) => {
                    pool.close().await;
                    return Ok(me);
                }
                Err(e) => {
                    if let Ok(Some(st)) = me.child.try_wait() {
                        bail!("private postgres exited ({st}): {}", me.log());
                    }
                    if Instant::now() > deadline {
                        bail!("private postgres not ready after 60 s: {e}; {}", me.log());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A URL of database `db` that verifies the server against `ca_cert`
    /// and its name (`sslmode=verify-full`).
    pub fn url(&self, db: &str, ca_cert: &Path) -> String {
        format!(
            "postgres://postgres@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
            self.port,
            ca_cert.display()
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // The postmaster itself (setpriv exec'd it); its backends exit
        // when they see it gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Redis on a free port of 127.0.0.1 that speaks TLS only, with
/// the server certificate of a [`TestCa`]; clients need no certificate.
/// Killed when dropped.
#[derive(Debug)]
pub struct TlsRedis {
    /// The TLS port.
    pub port: u16,
    child: Child,
}

impl TlsRedis {
    /// Starts `redis-server --port 0 --tls-port P`; returns once it answers
    /// `PING` over TLS (within 20 s).
    ///
    /// # Errors
    /// When `redis-server` is missing, has no TLS, or does not answer.
    pub fn start(ca: &TestCa) -> anyhow::Result<Self> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&ca.server_cert)
            .arg("--tls-key-file")
            .arg(&ca.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&ca.ca_cert)
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("start redis-server (Debian package redis-server)")?;
        let mut me = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pong = Command::new("redis-cli")
                .args(["--tls", "--cacert"])
                .arg(&ca.ca_cert)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
                .unwrap_or(false);
            if pong {
                return Ok(me);
            }
            if let Ok(Some(st)) = me.child.try_wait() {
                bail!("private redis-server exited ({st})");
            }
            if Instant::now() > deadline {
                bail!("private TLS redis-server does not answer PING");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `rediss://localhost:PORT` (the name the certificate carries).
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Kafka-protocol broker reached over TLS only: a `tansu`
/// (memory storage) on a hidden plaintext port, advertising
/// `localhost:PORT`, and `socat` terminating TLS with the server
/// certificate of a [`TestCa`] on `PORT` (tansu 0.6 takes `--cert`/`--key`
/// but does not use them). Every connection a client makes, bootstrap and
/// the advertised broker alike, goes through TLS. Both processes are
/// killed when dropped.
#[derive(Debug)]
pub struct TlsKafka {
    /// The TLS port clients use.
    pub port: u16,
    tansu: Child,
    socat: Child,
}

impl TlsKafka {
    /// Starts both and returns once the TLS port accepts connections.
    ///
    /// # Errors
    /// When `tansu` or `socat` is missing or does not start.
    pub fn start(ca: &TestCa) -> anyhow::Result<Self> {
        let bin = crate::broker::tansu_binary()
            .context("tansu is not installed (scripts/backends.sh start installs it)")?;
        let inner = free_port();
        let port = free_port();
        let tansu = Command::new(bin)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .args(["broker", "--cluster-id", "tributary-tls"])
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{inner}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://localhost:{port}"))
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start tansu")?;
        let socat = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
                ca.server_cert.display(),
                ca.server_key.display()
            ))
            .arg(format!("TCP:127.0.0.1:{inner}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start socat (Debian package socat)")?;
        let mut me = Self { port, tansu, socat };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let both = std::net::TcpStream::connect(("127.0.0.1", inner)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if both {
                return Ok(me);
            }
            if let Ok(Some(st)) = me.tansu.try_wait() {
                bail!("private tansu exited ({st})");
            }
            if let Ok(Some(st)) = me.socat.try_wait() {
                bail!("socat exited ({st})");
            }
            if Instant::now() > deadline {
                bail!("private TLS broker does not accept connections");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kafka://localhost:PORT` (the name the certificate carries).
    pub fn url(&self) -> String {
        format!("kafka://localhost:{}", self.port)
    }
}

impl Drop for TlsKafka {
    fn drop(&mut self) {
        for c in [&mut self.socat, &mut self.tansu] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
