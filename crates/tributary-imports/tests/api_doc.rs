//! The imports REST API against its derived OpenAPI document (SQLite temp
//! file, the embedded bus, a file object store): the document lists exactly
//! the served routes, each of them is routed, and no other method hides on
//! a documented path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use tributary_imports::api::{self, ApiState};
use tributary_imports::settings::ImportsSettings;
use tributary_imports::store::UploadStore;
use tributary_storage::{Database, Objects, ObjectsConfig, SqlConfig};

async fn router(dir: &std::path::Path) -> (axum::Router, String) {
    let db = Database::connect(
        &format!("sqlite://{}", dir.join("imports.db").display()),
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
    let objects = Objects::open(&ObjectsConfig::from_url(format!(
        "file://{}",
        dir.join("objects").display()
    )))
    .expect("objects");
    let schema = dir.join("product.schema.json");
    std::fs::write(&schema, r#"{"type":"object","required":["sku"]}"#).expect("schema");
    let settings = Arc::new(ImportsSettings {
        kinds: vec![tributary_imports::settings::SchemaKindSettings {
            name: "product".into(),
            schema,
            key: "/sku".into(),
        }],
        ..ImportsSettings::default()
    });
    let kinds = tributary_imports::kinds::Kinds::load(&settings).expect("kinds");
    let store = UploadStore::open(&db).await.expect("store");
    let r = tributary_runtime::http::layered(
        api::router(ApiState {
            store: store.clone(),
            objects,
            bus,
            settings: settings.clone(),
            kinds,
            started: Instant::now(),
        }),
        "imports-api",
        api::limits(&settings),
    );
    // One upload, stored and marked completed (as the processor would).
    let (status, text) = call(
        &r,
        "POST",
        "/api/imports/import/company/known",
        r#"{"name":"A","permalink":"a"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).expect("answer")["request_id"]
        .as_str()
        .expect("request_id")
        .to_owned();
    store.start_processing(&id).await.expect("processing");
    store.finish(&id, None).await.expect("completed");
    (r, id)
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
const OPERATIONS: [(&str, &str); 13] = [
    ("get", "/openapi.json"),
    ("post", "/api/imports/import/{kind}/{name}"),
    ("post", "/import/{kind}/{name}"),
    ("get", "/api/imports/uploads"),
    ("get", "/api/imports/uploads/{id}"),
    ("delete", "/api/imports/uploads/{id}"),
    ("get", "/api/imports/uploads/{id}/errors"),
    ("post", "/api/imports/uploads/{id}/reprocess"),
    ("get", "/api/imports/kinds"),
    ("get", "/api/imports/companies"),
    ("get", "/api/imports/records"),
    ("get", "/liveness"),
    ("get", "/readiness"),
];

/// Methods probed on every documented path.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn concrete(path: &str, id: &str) -> String {
    path.replace("{kind}", "company")
        .replace("{name}", "doc-test")
        .replace("{id}", id)
}

// Proves: `/openapi.json` serves the derived OpenAPI 3.1 document, which
// lists exactly OPERATIONS; every documented operation is routed (a valid
// request gets 2xx, never the router's 404 "no such route" or 405); every
// other method on a documented path is 405.
#[tokio::test]
async fn openapi_document_matches_routes() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, id) = router(dir.path()).await;
    let doc = serde_json::to_value(api::document()).expect("document json");
    let (status, served) = call(&r, "GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let served: serde_json::Value = serde_json::from_str(&served).expect("served json");
    assert_eq!(served, doc, "/openapi.json serves the derived document");
    assert_eq!(doc["openapi"], "3.1.0");

    let documented = tributary_runtime::openapi::documented_operations(&doc);
    let listed = tributary_runtime::openapi::sorted_operations(&OPERATIONS);
    assert_eq!(documented, listed);

    // Deleting last: the status reads need the upload.
    let mut ops = OPERATIONS.to_vec();
    ops.sort_by_key(|(m, _)| *m == "delete");
    for (method, path) in ops {
        let body = if method == "post" {
            r#"{"name":"A","permalink":"a"}"#
        } else {
            ""
        };
        let query = if path == "/api/imports/records" {
            "?kind=product"
        } else {
            ""
        };
        let uri = format!("{}{query}", concrete(path, &id));
        let (status, text) = call(&r, &method.to_uppercase(), &uri, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {text}");
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let (status, text) =
                call(&r, &method.to_uppercase(), &concrete(path, "nope"), "{}").await;
            if item.get(method).is_some() {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(
                    !(status == StatusCode::NOT_FOUND && text.contains("no such route")),
                    "{method} {path} is documented but not routed: {text}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented: {text}"
                );
            }
        }
    }
}
