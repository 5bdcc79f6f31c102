//! The docs REST API against its derived OpenAPI document (SQLite temp
//! file, the embedded bus): the document lists exactly the served routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use tributary_documents::api::{self, ApiState};
use tributary_documents::settings::DocsSettings;
use tributary_documents::store::DocStore;
use tributary_storage::{Database, SqlConfig};

/// The API as `docs-api` serves it: with the shared HTTP layers.
async fn router(dir: &std::path::Path) -> axum::Router {
    let db = Database::connect(
        &format!("sqlite://{}", dir.join("docs.db").display()),
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
    let settings = Arc::new(DocsSettings::default());
    bus.create_topic(&settings.input_topic, settings.partitions)
        .await
        .expect("topic");
    let store = DocStore::open(&db).await.expect("store");
    tributary_runtime::http::layered(
        api::router(ApiState {
            store,
            bus,
            settings,
        }),
        "docs-api",
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
const OPERATIONS: [(&str, &str); 4] = [
    ("get", "/openapi.json"),
    ("get", "/api/docs/documents"),
    ("post", "/api/docs/updates"),
    ("get", "/api/docs/stats"),
];

/// Methods probed on every documented path.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

// Proves: `/openapi.json` serves the derived OpenAPI 3.1 document, which
// lists exactly OPERATIONS; every documented operation is routed (a valid
// request gets 2xx, never the router's 404 "no such route" or 405); every
// other method on a documented path is 405 (no undocumented handler hides
// there).
#[tokio::test]
async fn openapi_document_matches_routes() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = router(dir.path()).await;
    let doc = serde_json::to_value(api::document()).expect("document json");
    let (status, served) = call(&r, "GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let served: serde_json::Value = serde_json::from_str(&served).expect("served json");
    assert_eq!(served, doc, "/openapi.json serves the derived document");
    assert_eq!(doc["openapi"], "3.1.0");

    let documented = tributary_runtime::openapi::documented_operations(&doc);
    let listed = tributary_runtime::openapi::sorted_operations(&OPERATIONS);
    assert_eq!(documented, listed);

    for (method, path) in OPERATIONS {
        let body = match path {
            "/api/docs/updates" => "{\"Url\":\"https://a.example/\",\"FetchTime\":1}\n",
            _ => "",
        };
        let (status, text) = call(&r, &method.to_uppercase(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {text}");
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let (status, text) = call(&r, &method.to_uppercase(), path, "{}").await;
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
