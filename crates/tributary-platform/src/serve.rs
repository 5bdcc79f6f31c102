//! The HTTP/1.1 connection loop of every server of the project (each
//! system's REST API and the admin server), in place of `axum::serve`, which
//! has neither a header read timeout nor a connection cap:
//!
//! - a client must send a request's whole header within
//!   [`ServerConfig::header_read_timeout_ms`] or its connection is closed
//!   (slow-loris clients that trickle header bytes cannot hold connections;
//!   counted in `tributary_http_header_timeouts_total{server}`);
//! - at most [`ServerConfig::max_connections`] connections per listener are
//!   served at once; further ones wait in the listen backlog until a slot
//!   frees, so a flood exhausts neither file descriptors nor memory (logged
//!   once per saturation, `tributary_http_connections{server}` is the gauge);
//! - shutdown stops accepting, lets each connection finish its request in
//!   flight (bounded by the API's request timeout) and returns when all are
//!   closed.
//!
//! With `[server] tls_cert_file`/`tls_key_file` set, every connection is
//! TLS ([`crate::tls`]); the handshake must finish within the header read
//! timeout too.
//!
//! Body read time is bounded by each API's request timeout (the body is
//! read inside the handler, under the timeout layer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::telemetry::Series;

/// Gauge: open connections, by `server`.
pub const CONNECTIONS: &str = "tributary_http_connections";
/// Counter: connections closed because the request header did not arrive in time, by `server`.
pub const HEADER_TIMEOUTS: &str = "tributary_http_header_timeouts_total";

/// The series [`serve`] emits for the server named `server`, to register at
/// start ([`crate::telemetry::register`]).
pub fn series(server: &str) -> Vec<Series> {
    vec![
        Series::gauge(CONNECTIONS).label("server", server),
        Series::counter(HEADER_TIMEOUTS).label("server", server),
    ]
}

static CURRENT: OnceLock<ServerConfig> = OnceLock::new();

/// Makes `config` the one every later [`serve`] uses (the binary calls this
/// once at start; later calls are ignored).
pub fn install(config: ServerConfig) {
    let _ = CURRENT.set(config);
}

/// The installed configuration, or the defaults.
pub fn current() -> ServerConfig {
    CURRENT.get().cloned().unwrap_or_default()
}

/// Serves `app` on `listener` until `shutdown`, with the installed
/// [`ServerConfig`] (module docs). `server` names the server in logs and
/// metrics.
///
/// # Errors
/// Never for a single connection (its errors are logged); only when the
/// listener fails for good.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    server: &str,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, app, server, &current(), shutdown).await
}

/// [`serve`] with an explicit configuration.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    server: &str,
    config: &ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max = config.max_connections.max(1);
    let header_timeout = Duration::from_millis(config.header_read_timeout_ms.max(1));
    let slots = Arc::new(Semaphore::new(max));
    let tracker = TaskTracker::new();
    let saturated = Arc::new(AtomicBool::new(false));
    let name = server.to_owned();
    let gauge = metrics::gauge!(CONNECTIONS, "server" => name.clone());
    let tls = crate::tls::http_server_config(config)
        .map_err(|e| std::io::Error::other(format!("{server}: {e:#}")))?
        .map(tokio_rustls::TlsAcceptor::from);
    loop {
        if slots.available_permits() == 0 && !saturated.swap(true, Ordering::Relaxed) {
            tracing::warn!(server = %name, max_connections = max,
                "connection limit reached; new connections wait in the listen backlog until one closes");
        }
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(server = %name, error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        let name = name.clone();
        let gauge = gauge.clone();
        let saturated = saturated.clone();
        gauge.increment(1.0);
        let tls = tls.clone();
        tracker.spawn(async move {
            let result = match tls {
                None => drive(TokioIo::new(stream), svc, header_timeout, &shutdown).await,
                // The handshake shares the header deadline: a client that
                // stalls in it is closed like one that trickles a header.
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            drive(TokioIo::new(tls_stream), svc, header_timeout, &shutdown).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(server = %name, %peer, error = %e, "TLS handshake failed; connection closed");
                            Ok(())
                        }
                        Err(_) => {
                            metrics::counter!(HEADER_TIMEOUTS, "server" => name.clone())
                                .increment(1);
                            tracing::debug!(server = %name, %peer, "TLS handshake not finished in time; connection closed");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics::counter!(HEADER_TIMEOUTS, "server" => name.clone())
                        .increment(1);
                    tracing::debug!(server = %name, %peer, "request header not received in time; connection closed");
                } else {
                    tracing::debug!(server = %name, %peer, error = %e, "connection ended with an error");
                }
            }
            gauge.decrement(1.0);
            drop(permit);
            saturated.store(false, Ordering::Relaxed);
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Serves one connection (plain or TLS) until it ends; on shutdown it
/// finishes the request in flight first.
async fn drive<I>(
    io: I,
    svc: TowerToHyperService<Router>,
    header_timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::routing::get;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn started(
        config: ServerConfig,
    ) -> (
        std::net::SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            serve_with(listener, app, "test", &config, s).await.unwrap();
        });
        (addr, stop, task)
    }

    async fn get_ok(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Reads until the server closes the connection (EOF or reset); returns
    /// how long that took.
    async fn closed_after(mut c: TcpStream) -> Duration {
        let t0 = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            }
        }
    }

    // Proves slow-loris clients (headers trickled, never finished) holding every connection
    // slot are cut off by the header read timeout, after which a normal request is served;
    // and that the cap holds the extra client back until a slot frees.
    #[tokio::test]
    async fn trickling_headers_are_cut_off_and_the_cap_holds() {
        let (addr, stop, task) = started(ServerConfig {
            header_read_timeout_ms: 300,
            max_connections: 4,
            ..ServerConfig::default()
        })
        .await;
        let mut trickling = Vec::new();
        for _ in 0..4 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
            trickling.push(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting = tokio::spawn(get_ok(addr));
        let closed = futures::future::join_all(trickling.into_iter().map(closed_after));
        let closed = tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("the server must close connections whose header never completes");
        assert_eq!(closed.len(), 4);
        let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting client is served once slots free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        stop.cancel();
        task.await.unwrap();
    }

    // Proves the cap: with one slot held by an idle keep-alive client, a second client is
    // not served until the first one leaves.
    #[tokio::test]
    async fn second_client_waits_for_a_free_slot() {
        let (addr, stop, task) = started(ServerConfig {
            header_read_timeout_ms: 60_000,
            max_connections: 1,
            ..ServerConfig::default()
        })
        .await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        first
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = first.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let second = tokio::spawn(get_ok(addr));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "the second client must wait while the slot is held"
        );
        drop(first);
        let answer = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("served after the first client left")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        stop.cancel();
        task.await.unwrap();
    }
}
