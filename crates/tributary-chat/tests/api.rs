//! REST API tests in process (`Router::oneshot`) on SQLite and the embedded bus.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tributary_chat::api::openapi::document;
use tributary_chat::app::{self, Backends};
use tributary_chat::ChatSettings;
use tributary_storage::{Database, SqlConfig};

/// The chat API on SQLite and the embedded bus under `dir`, with `dir` as
/// its one import root and `dir/b` as its backup directory.
async fn router(dir: &std::path::Path) -> axum::Router {
    router_with(
        dir,
        ChatSettings {
            import_roots: vec![dir.to_owned()],
            backup_dir: dir.join("b"),
            ..ChatSettings::default()
        },
    )
    .await
}

async fn router_with(dir: &std::path::Path, settings: ChatSettings) -> axum::Router {
    let db = Database::connect(
        &format!("sqlite://{}", dir.join("c.db").display()),
        &SqlConfig::default(),
    )
    .await
    .expect("db");
    let bus = tributary_bus::connect(
        &format!("sqlite://{}", dir.join("bus.db").display()),
        &Default::default(),
    )
    .await
    .expect("bus");
    let svc = app::build(
        &Backends {
            db,
            bus,
            objects: None,
        },
        &settings,
    )
    .await
    .expect("service");
    // As `chat-api` serves it: with the shared HTTP layers.
    tributary_runtime::http::layered(
        tributary_chat::api::router(svc),
        "chat-api",
        tributary_runtime::http::HttpLimits::default(),
    )
}

async fn call(r: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let resp = r.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// (method, path) of every operation the REST API must serve and document.
const OPERATIONS: [(&str, &str); 11] = [
    ("get", "/openapi.json"),
    ("post", "/api/chat/import"),
    ("post", "/api/chat/import/upload"),
    ("post", "/api/chat/messages/search"),
    ("post", "/api/chat/messages/count"),
    ("post", "/api/chat/messages/delete"),
    ("get", "/api/chat/users"),
    ("get", "/api/chat/users/{id}"),
    ("get", "/api/chat/audit"),
    ("post", "/api/chat/backup"),
    ("post", "/api/chat/restore"),
];

/// Methods probed on every documented path.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

// Proves: the derived OpenAPI document lists exactly OPERATIONS; every
// documented operation is routed (answers 2xx to a valid request, never the
// router's 404 "no such route" or 405); every other method on a documented
// path is 405 (so no undocumented handler hides there); and `/openapi.json`
// serves the derived OpenAPI 3.1 document.
#[tokio::test]
async fn openapi_matches_routes() {
    let dir = tempfile::tempdir().expect("tmp");
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).expect("mkdir");
    std::fs::write(
        export.join("result.json"),
        r#"{"name":"C","type":"personal_chat","id":1,"messages":[{"id":1,"type":"message","date":"2021-01-01T10:00:00","date_unixtime":"1609495200","from":"Al","from_id":"user1","text":"hi there","text_entities":[]}]}"#,
    )
    .expect("write");
    let r = router(dir.path()).await;
    let doc = serde_json::to_value(document()).expect("document json");
    let (status, served) = call(&r, "GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let served: serde_json::Value = serde_json::from_str(&served).expect("served json");
    assert_eq!(served, doc, "/openapi.json serves the derived document");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = tributary_runtime::openapi::documented_operations(&doc);
    let listed = tributary_runtime::openapi::sorted_operations(&OPERATIONS);
    assert_eq!(documented, listed);

    let backup_dir = dir.path().join("b");
    for (method, path) in OPERATIONS {
        let (uri, body) = match path {
            "/api/chat/import" => (
                path.to_owned(),
                format!(r#"{{"path":{:?}}}"#, export.display().to_string()),
            ),
            "/api/chat/messages/search" => (
                path.to_owned(),
                r#"{"filter":{"query":"hi"},"sorts":[{"field":"created","desc":true}],"take":5}"#
                    .to_owned(),
            ),
            "/api/chat/import/upload" => (
                format!("{path}?name=result.json"),
                std::fs::read_to_string(export.join("result.json")).expect("export"),
            ),
            "/api/chat/messages/count" => (path.to_owned(), r#"{"text":"hi"}"#.to_owned()),
            "/api/chat/messages/delete" => (path.to_owned(), r#"{"filter":{"id":999}}"#.to_owned()),
            "/api/chat/users/{id}" => ("/api/chat/users/user1".to_owned(), String::new()),
            "/api/chat/audit" => (
                "/api/chat/audit?level=warn&take=5".to_owned(),
                String::new(),
            ),
            "/api/chat/backup" => (
                path.to_owned(),
                format!(
                    r#"{{"target":{{"dir":{:?}}}}}"#,
                    backup_dir.display().to_string()
                ),
            ),
            "/api/chat/restore" => (
                path.to_owned(),
                format!(
                    r#"{{"source":{{"path":{:?}}}}}"#,
                    backup_dir.display().to_string()
                ),
            ),
            _ => (path.to_owned(), String::new()),
        };
        let (status, text) = call(&r, &method.to_uppercase(), &uri, &body).await;
        assert!(status.is_success(), "{method} {uri}: {status} {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("{\"error\"")),
            "{method} {uri}: {text}"
        );
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let uri = path.replace("{id}", "user1");
        for method in METHODS {
            if item.get(method).is_none() {
                let (status, text) = call(&r, &method.to_uppercase(), &uri, "{}").await;
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri} is served but not documented: {text}"
                );
            }
        }
    }
    let (_, count) = call(&r, "POST", "/api/chat/messages/count", "{}").await;
    assert_eq!(count, r#"{"count":1}"#);
}

// Proves: every role override (`rest::ROLES`) names an operation of the
// derived document (method and route template), so a typo or a renamed
// route cannot silently fall back to the method's default role.
#[test]
fn role_overrides_name_documented_operations() {
    let doc = serde_json::to_value(document()).expect("document json");
    assert!(!tributary_chat::api::rest::ROLES.is_empty());
    for role in tributary_chat::api::rest::ROLES {
        let method = role.0.to_ascii_lowercase();
        assert!(
            doc["paths"][role.1].get(&method).is_some(),
            "ROLES names {} {}, which is not a documented operation",
            role.0,
            role.1
        );
    }
}

// Proves: bad requests become 400 with a reason, not 500.
#[tokio::test]
async fn bad_requests_are_400() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = router(dir.path()).await;
    let (s, text) = call(&r, "POST", "/api/chat/messages/delete", "{}").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    let (s, _) = call(&r, "POST", "/api/chat/messages/search", r#"{"take":0}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(&r, "GET", "/api/chat/audit?level=loud", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(&r, "POST", "/api/chat/backup", r#"{"target":"objects"}"#).await;
    assert_eq!(s, StatusCode::OK, "jobs report errors in the stream");
}

// Proves: REST errors use the platform's one body and status mapping: a search with a
// malformed filter is 400 `invalid_argument` naming the field, an unknown route is 404
// `not_found`, an unsafe delete is 400 `invalid_argument` — all `{"code","message"}`.
#[tokio::test]
async fn errors_share_one_body_and_mapping() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = router(dir.path()).await;
    let (status, body) = call(
        &r,
        "POST",
        "/api/chat/messages/search",
        r#"{"filter":{"min_created":"not a date"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(v["code"], "invalid_argument", "{body}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("min_created")),
        "names the field: {body}"
    );

    let (status, body) = call(&r, "POST", "/api/chat/messages/delete", r#"{"filter":{}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("\"code\":\"invalid_argument\""), "{body}");

    let (status, body) = call(&r, "GET", "/api/chat/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
}

// Proves the API never reaches outside its configured roots: with none set, server paths and
// directories are refused (403) for import, backup and restore; with a root, a path outside it is
// 403 alike whether it exists or not, a symlink out of it too, a backup directory climbing out
// too, a missing file inside is 404; an upload over the limit is 413 before it is read; an
// uploaded file is imported, and a parse error in it does not echo the file's content.
#[tokio::test]
async fn server_paths_stay_under_their_roots_and_uploads_import() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("result.json"), "{}").expect("write");
    std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
    std::fs::create_dir_all(root.join("backups")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, root.join("backups/out")).expect("symlink");
    let p = |p: &std::path::Path| serde_json::json!(p.display().to_string()).to_string();

    let closed = router_with(dir.path(), ChatSettings::default()).await;
    for (uri, body) in [
        ("/api/chat/import", format!(r#"{{"path":{}}}"#, p(&outside))),
        (
            "/api/chat/backup",
            format!(r#"{{"target":{{"dir":{}}}}}"#, p(&outside)),
        ),
        (
            "/api/chat/restore",
            format!(r#"{{"source":{{"path":{}}}}}"#, p(&outside)),
        ),
    ] {
        let (s, text) = call(&closed, "POST", uri, &body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}: {text}");
        assert!(text.contains("permission_denied"), "{text}");
    }
    // One writer per embedded bus file: the first service lets it go first.
    drop(closed);

    let r = router_with(
        dir.path(),
        ChatSettings {
            import_roots: vec![root.clone()],
            backup_dir: root.join("backups"),
            max_upload_bytes: 1000,
            ..ChatSettings::default()
        },
    )
    .await;
    let mut answers = Vec::new();
    for path in [
        outside.join("result.json"),
        outside.join("missing.json"),
        root.join("link/result.json"),
        root.join("../outside/result.json"),
    ] {
        let (s, text) = call(
            &r,
            "POST",
            "/api/chat/import",
            &format!(r#"{{"path":{}}}"#, p(&path)),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{}: {text}", path.display());
        answers.push(text.replace(&path.display().to_string(), "PATH"));
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "one answer for all: {answers:?}"
    );
    let (s, text) = call(
        &r,
        "POST",
        "/api/chat/import",
        &format!(r#"{{"path":{}}}"#, p(&root.join("nope.json"))),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{text}");
    for d in ["../../outside", "out/x", "/tmp"] {
        let (s, text) = call(
            &r,
            "POST",
            "/api/chat/backup",
            &format!(r#"{{"target":{{"dir":"{d}"}}}}"#),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{d}: {text}");
    }
    assert!(
        !outside.join("x").exists(),
        "nothing created through the symlink"
    );
    let (s, text) = call(
        &r,
        "POST",
        "/api/chat/backup",
        r#"{"target":{"dir":"daily"}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(text.contains("\"done\""), "{text}");
    assert!(root.join("backups/daily").is_dir());

    let req = |name: &str, body: String| {
        Request::builder()
            .method("POST")
            .uri(format!("/api/chat/import/upload?name={name}"))
            .header("content-length", body.len())
            .body(Body::from(body))
            .expect("request")
    };
    let resp = r
        .clone()
        .oneshot(req("big.json", "x".repeat(1001)))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let export = r#"{"name":"C","type":"personal_chat","id":1,"messages":[{"id":1,"type":"message","date":"2021-01-01T10:00:00","date_unixtime":"1609495200","from":"Al","from_id":"user1","text":"hi","text_entities":[]}]}"#;
    let resp = r
        .clone()
        .oneshot(req("result.json", export.into()))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes())
        .into_owned();
    assert!(text.contains(r#""inserted":1"#), "{text}");

    let secret = r#"{"name":"C","type":"personal_chat","id":1,"messages":"SECRET_TOKEN_123"}"#;
    let resp = r
        .clone()
        .oneshot(req("result.json", secret.into()))
        .await
        .expect("response");
    let text = String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes())
        .into_owned();
    assert!(
        text.contains(r#""files_failed":1"#),
        "the bad file is reported: {text}"
    );
    assert!(
        text.contains("result.json"),
        "named by its upload name: {text}"
    );
    assert!(!text.contains("SECRET_TOKEN_123"), "content echoed: {text}");
    assert!(
        !text.contains("tributary-chat-upload-"),
        "spool path shown: {text}"
    );
}
