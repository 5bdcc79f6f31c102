//! Spawned-binary tests of the access baseline: with `[auth]` tokens
//! configured every API (chat REST, logistics gRPC, the chat gRPC upload,
//! the admin server's `/metrics`) answers 401 (UNAUTHENTICATED) without a
//! token and 403 (PERMISSION_DENIED) for a role too low, the probes stay
//! open, and the CLI sends its token from `TRIBUTARY_TOKEN`;
//! an open API refuses to bind a non-loopback address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tributary_platform::auth::hash_token;
use tributary_testkit::spawn::{any_port_env, command, free_port, http_get, run_cli, Tributary};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

/// GET `path` with `Host: host` and an optional bearer token: the status.
fn get(addr: SocketAddr, path: &str, host: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"))
}

fn cli(args: &[&str], token: Option<&str>) -> (bool, String) {
    let env: Vec<(&str, &str)> = token.map(|t| ("TRIBUTARY_TOKEN", t)).into_iter().collect();
    run_cli(bin(), args, &env)
}

// Proves the "Done when" of the access baseline end to end on `tributary up`.
#[test]
fn tokens_guard_every_api_and_the_cli_sends_one() {
    let dir = tributary_testkit::temp_dir();
    let data = dir.path().join("data");
    let tokens = format!(
        "[{{name=\"reader\",role=\"read\",sha256=\"{}\"}},{{name=\"ops\",role=\"admin\",sha256=\"{}\"}}]",
        hash_token("reader-secret"),
        hash_token("ops-secret")
    );
    let chat: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let chat_grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let chat_grpc_s = chat_grpc.to_string();
    let docs: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let imports: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let shop: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (chat_s, grpc_s) = (chat.to_string(), grpc.to_string());
    let (docs_s, imports_s, shop_s) = (docs.to_string(), imports.to_string(), shop.to_string());
    let mut up = Tributary::start(
        bin(),
        &["up", "--data-dir", &data.to_string_lossy()],
        &[
            ("TRIBUTARY__AUTH__TOKENS", &tokens),
            ("TRIBUTARY__CHAT__LISTEN", &chat_s),
            ("TRIBUTARY__CHAT__GRPC_LISTEN", &chat_grpc_s),
            ("TRIBUTARY__LOGISTICS__GRPC_LISTEN", &grpc_s),
            ("TRIBUTARY__DOCS__HTTP_LISTEN", &docs_s),
            ("TRIBUTARY__IMPORTS__HTTP_LISTEN", &imports_s),
            ("TRIBUTARY__SHOP__HTTP_LISTEN", &shop_s),
        ],
        &dir.path().join("log"),
    );
    up.wait_ready(Duration::from_secs(60));
    let log = up.log_text();
    assert!(
        !log.contains("reader-secret") && !log.contains("ops-secret"),
        "{log}"
    );

    // Probes open; metrics and the APIs guarded.
    assert_eq!(http_get(up.admin, "/livez").map(|r| r.0), Some(200));
    assert_eq!(get(up.admin, "/metrics", "127.0.0.1", None), 401);
    assert_eq!(
        get(up.admin, "/metrics", "127.0.0.1", Some("reader-secret")),
        200
    );
    assert_eq!(get(chat, "/api/chat/users", "127.0.0.1", None), 401);
    assert_eq!(
        get(chat, "/api/chat/users", "127.0.0.1", Some("wrong")),
        401
    );
    assert_eq!(
        get(chat, "/api/chat/users", "127.0.0.1", Some("reader-secret")),
        200
    );
    // DNS rebinding: a valid token from a page on another name is still refused.
    assert_eq!(
        get(
            chat,
            "/api/chat/users",
            "attacker.example",
            Some("ops-secret")
        ),
        403
    );

    // The CLI: chat over REST, logistics over gRPC.
    let server = format!("http://{chat}");
    let (ok, out) = cli(&["chat", "users", "--server", &server], None);
    assert!(
        !ok && out.contains("401") || out.to_lowercase().contains("token"),
        "{out}"
    );
    let (ok, out) = cli(
        &["chat", "users", "--server", &server],
        Some("reader-secret"),
    );
    assert!(ok, "{out}");
    let addr = format!("http://{grpc}");
    let (ok, out) = cli(&["logistics", "list", "--addr", &addr], None);
    assert!(!ok && out.contains("Unauthenticated"), "{out}");
    let (ok, out) = cli(
        &["logistics", "list", "--addr", &addr],
        Some("reader-secret"),
    );
    assert!(ok, "{out}");
    let create = [
        "logistics",
        "create",
        "--addr",
        &addr,
        "--title",
        "Box",
        "--material",
        "paper",
        "--maximum-volume",
        "10",
    ];
    let (ok, out) = cli(&create, Some("reader-secret"));
    assert!(
        !ok && out.contains("PermissionDenied") && out.contains("needs write"),
        "{out}"
    );
    let (ok, out) = cli(&create, Some("ops-secret"));
    assert!(ok, "{out}");
    // A chat upload over gRPC (client streaming) needs write.
    let export = dir.path().join("result.json");
    std::fs::write(
        &export,
        r#"{"name":"C","type":"personal_chat","id":1,"messages":[{"id":1,"type":"message","date":"2021-01-01T10:00:00","date_unixtime":"1609495200","from":"Al","from_id":"user1","text":"hi","text_entities":[]}]}"#,
    )
    .expect("write export");
    let upload = [
        "chat",
        "import",
        export.to_str().expect("utf-8"),
        "--grpc",
        &chat_grpc_s,
    ];
    let (ok, out) = cli(&upload, None);
    assert!(!ok && out.contains("Unauthenticated"), "{out}");
    let (ok, out) = cli(&upload, Some("reader-secret"));
    assert!(
        !ok && out.contains("PermissionDenied") && out.contains("needs write"),
        "{out}"
    );
    let (ok, out) = cli(&upload, Some("ops-secret"));
    assert!(ok && out.contains("1 parsed, 1 new"), "{out}");
    // The other systems' clients (one shared client: tributary_runtime::client::Api).
    for (system, addr, read) in [
        ("docs", docs, "stats"),
        ("imports", imports, "list"),
        ("shop", shop, "stats"),
    ] {
        let api = format!("http://{addr}");
        let (ok, out) = cli(&[system, read, "--api", &api], None);
        assert!(
            !ok && out.contains("401"),
            "{system} {read} without a token: {out}"
        );
        let (ok, out) = cli(&[system, read, "--api", &api], Some("reader-secret"));
        assert!(ok, "{system} {read} with a read token: {out}");
    }
    let st = up.stop(Duration::from_secs(20));
    assert!(st.success(), "{st}\n{}", up.log_text());
}

// Proves an API without tokens refuses a non-loopback address (and says
// how to proceed): `serve chat-api` exits non-zero naming the address; with
// `auth.allow_anonymous` it starts there.
#[test]
fn open_api_refuses_a_public_address() {
    let dir = tributary_testkit::temp_dir();
    let public = format!("0.0.0.0:{}", free_port());
    let data = dir.path().to_string_lossy().into_owned();
    let out = command(bin())
        .args(["serve", "chat-api"])
        .envs(any_port_env(bin()))
        .env("TRIBUTARY__DATA_DIR", &data)
        .env(
            "TRIBUTARY__ADMIN__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("TRIBUTARY__CHAT__LISTEN", &public)
        .stdout(Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse: {err}");
    assert!(
        err.contains("allow_anonymous") && err.contains(&public),
        "{err}"
    );

    let mut up = Tributary::start(
        bin(),
        &["serve", "chat-api"],
        &[
            ("TRIBUTARY__DATA_DIR", &data),
            ("TRIBUTARY__CHAT__LISTEN", &public),
            ("TRIBUTARY__AUTH__ALLOW_ANONYMOUS", "true"),
        ],
        &dir.path().join("log"),
    );
    up.wait_ready(Duration::from_secs(60));
    let st = up.stop(Duration::from_secs(20));
    assert!(st.success(), "{st}\n{}", up.log_text());
}
