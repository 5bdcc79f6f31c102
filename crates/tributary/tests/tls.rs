//! TLS on the process's own listeners: `tributary up` with `[server]
//! tls_cert_file`/`tls_key_file` serves the admin server, every REST API
//! and every gRPC API over TLS only, and the CLI reaches them through
//! `https://` addresses with `TRIBUTARY_CA_FILE` naming the test's CA.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tributary_testkit::spawn::{command, free_port, http_get, run_cli, Tributary};
use tributary_testkit::tls::TestCa;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

fn cli(args: &[&str], ca: Option<&Path>) -> (bool, String) {
    let ca = ca.map(|p| p.to_string_lossy().into_owned());
    let env: Vec<(&str, &str)> = ca
        .iter()
        .map(|c| ("TRIBUTARY_CA_FILE", c.as_str()))
        .collect();
    run_cli(bin(), args, &env)
}

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

// Proves: with a certificate configured, the admin server answers
// `/readyz` over HTTPS and refuses plaintext; the REST APIs answer over
// HTTPS; the CLI reaches REST (docs, chat) and gRPC (logistics, the chat
// upload) over
// `https://` when it trusts the CA (TRIBUTARY_CA_FILE) and fails on the
// certificate when it does not; a key that does not exist stops the start
// with a message naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_speaks_tls_when_a_certificate_is_set() {
    let dir = tributary_testkit::temp_dir();
    let ca = TestCa::generate(&dir.path().join("ca"), "tributary-ca").expect("a test CA (openssl)");
    let data = dir.path().join("data");
    let (chat, chat_grpc, grpc, docs) = (free_port(), free_port(), free_port(), free_port());
    let (chat_s, chat_grpc_s, grpc_s, docs_s) = (
        local(chat).to_string(),
        local(chat_grpc).to_string(),
        local(grpc).to_string(),
        local(docs).to_string(),
    );
    let cert = ca.server_cert.display().to_string();
    let key = ca.server_key.display().to_string();
    let mut up = Tributary::start(
        bin(),
        &["up", "--data-dir", &data.to_string_lossy()],
        &[
            ("TRIBUTARY__SERVER__TLS_CERT_FILE", &cert),
            ("TRIBUTARY__SERVER__TLS_KEY_FILE", &key),
            ("TRIBUTARY__CHAT__LISTEN", &chat_s),
            ("TRIBUTARY__CHAT__GRPC_LISTEN", &chat_grpc_s),
            ("TRIBUTARY__LOGISTICS__GRPC_LISTEN", &grpc_s),
            ("TRIBUTARY__DOCS__HTTP_LISTEN", &docs_s),
        ],
        &dir.path().join("log"),
    );

    let pem = std::fs::read(&ca.ca_cert).expect("read CA");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"))
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    let ready = format!("https://localhost:{}/readyz", up.admin.port());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match https.get(&ready).send().await {
            Ok(r) if r.status() == 200 => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "/readyz over TLS: {other:?}\n{}",
                    up.log_text()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    // Plaintext to a TLS listener gets no HTTP answer.
    assert_eq!(http_get(up.admin, "/livez"), None);
    assert_eq!(http_get(local(docs), "/api/docs/stats"), None);
    let stats = https
        .get(format!("https://localhost:{docs}/api/docs/stats"))
        .send()
        .await
        .expect("docs REST over TLS");
    assert_eq!(stats.status(), 200);

    let ca_file = Some(ca.ca_cert.as_path());
    let docs_api = format!("https://localhost:{docs}");
    let (ok, out) = cli(&["docs", "stats", "--api", &docs_api], ca_file);
    assert!(ok, "docs stats over https: {out}");
    let chat_api = format!("https://localhost:{chat}");
    let (ok, out) = cli(&["chat", "users", "--server", &chat_api], ca_file);
    assert!(ok, "chat users over https: {out}");
    let grpc_addr = format!("https://localhost:{grpc}");
    let (ok, out) = cli(&["logistics", "list", "--addr", &grpc_addr], ca_file);
    assert!(ok, "logistics list over gRPC + TLS: {out}");
    // A chat upload over gRPC client streaming, through TLS.
    let export = dir.path().join("result.json");
    std::fs::write(
        &export,
        r#"{"name":"C","type":"personal_chat","id":1,"messages":[{"id":1,"type":"message","date":"2021-01-01T10:00:00","date_unixtime":"1609495200","from":"Al","from_id":"user1","text":"hi","text_entities":[]}]}"#,
    )
    .expect("write export");
    let chat_grpc_addr = format!("https://localhost:{chat_grpc}");
    let export_s = export.to_string_lossy();
    let (ok, out) = cli(
        &["chat", "import", &export_s, "--grpc", &chat_grpc_addr],
        ca_file,
    );
    assert!(
        ok && out.contains("1 parsed, 1 new"),
        "chat upload over gRPC + TLS: {out}"
    );
    // Without the CA the certificate is unknown: refused, for REST and gRPC.
    let (ok, out) = cli(&["docs", "stats", "--api", &docs_api], None);
    assert!(!ok, "docs stats trusted an unknown CA: {out}");
    let (ok, out) = cli(&["logistics", "list", "--addr", &grpc_addr], None);
    assert!(!ok, "logistics list trusted an unknown CA: {out}");
    let st = up.stop(Duration::from_secs(20));
    assert!(st.success(), "{st}\n{}", up.log_text());

    // A key file that is not there: the start fails naming the setting.
    let out = command(bin())
        .args(["up", "--data-dir", &data.to_string_lossy()])
        .env("TRIBUTARY__SERVER__TLS_CERT_FILE", &cert)
        .env("TRIBUTARY__SERVER__TLS_KEY_FILE", "/nonexistent/key.pem")
        .env("TRIBUTARY__ADMIN__LISTEN", local(free_port()).to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("server.tls_key_file /nonexistent/key.pem"),
        "{err}"
    );
}
