//! REST API tests in process (`Router::oneshot`) on SQLite and the embedded bus.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tributary_chat::api::openapi::document;
use tributary_chat::app::{self, Backends};
use tributary_chat::ChatSettings;
use tributary_storage::{Database, SqlConfig};

async fn router(dir: &std::path::Path) -> axum::Router {
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
        &ChatSettings::default(),
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
const OPERATIONS: [(&str, &str); 10] = [
    ("get", "/openapi.json"),
    ("post", "/api/chat/import"),
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
