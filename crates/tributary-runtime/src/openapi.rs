//! What the REST APIs share about their OpenAPI 3.1 documents: each API
//! registers its routes through `utoipa_axum::routes!` (route and
//! `#[utoipa::path]` documentation together) into one
//! [`OpenApiRouter`]; [`with_document`] adds `GET /openapi.json` serving the
//! document derived from exactly these routes, and
//! [`assert_routes_documented`] is the source check that no route is added
//! around them.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The serialized document `GET /openapi.json` answers.
#[derive(Clone)]
struct Served(Bytes);

/// This document
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn openapi_json(Extension(Served(doc)): Extension<Served>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

/// `routes` plus `GET /openapi.json`, split into the axum router and the
/// document of all its routes; `adjust` edits the document first (for what
/// the derive cannot say). `/openapi.json` serves exactly the document
/// returned.
pub fn with_document<S>(routes: OpenApiRouter<S>, adjust: fn(&mut OpenApi)) -> (Router<S>, OpenApi)
where
    S: Clone + Send + Sync + 'static,
{
    let (router, mut doc) = routes.routes(routes!(openapi_json)).split_for_parts();
    adjust(&mut doc);
    // Serializing an `OpenApi` (strings, maps, numbers) cannot fail.
    let served = serde_json::to_vec(&doc).unwrap_or_default();
    (router.layer(Extension(Served(served.into()))), doc)
}

/// Every `(method, path)` of a served document (its JSON), sorted; with
/// [`sorted_operations`] of a list, what a coverage test compares.
pub fn documented_operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect();
    out.sort();
    out
}

/// `(method, path)` pairs as owned strings, sorted.
pub fn sorted_operations(ops: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ops
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    out.sort();
    out
}

/// Panics when the code of `source` (the part before its first
/// `#[cfg(test)]`) adds a route other than through `routes!`, i.e. without
/// its documentation; `file` names it in the message. For a unit test:
/// `assert_routes_documented("rest.rs", include_str!("rest.rs"))`.
pub fn assert_routes_documented(file: &str, source: &str) {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    for undocumented in [
        ".route(",
        ".route_service(",
        ".nest_service(",
        "axum::routing",
    ] {
        assert!(!code.contains(undocumented), "{file} calls {undocumented}");
    }
}

/// Panics unless `doc` is OpenAPI 3.1, with the shared
/// [`ErrorBody`](crate::ErrorBody) schema (`code`, `message` required), and
/// every operation but `GET /openapi.json` documents that body for each of
/// `statuses`. Returns `doc` as JSON, for the API's own checks.
pub fn assert_error_bodies(doc: &OpenApi, statuses: &[&str]) -> serde_json::Value {
    let json = serde_json::to_value(doc).unwrap_or_default();
    assert!(
        json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "not OpenAPI 3.1: {}",
        json["openapi"]
    );
    assert_eq!(
        json["components"]["schemas"]["ErrorBody"]["required"],
        serde_json::json!(["code", "message"])
    );
    let paths = json["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in paths.iter().filter(|(p, _)| *p != "/openapi.json") {
        for (method, op) in item.as_object().into_iter().flatten() {
            for status in statuses {
                assert_eq!(
                    op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    // Proves: `/openapi.json` is documented and serves the returned document.
    #[tokio::test]
    async fn serves_the_returned_document() {
        let (router, doc) = with_document(OpenApiRouter::<()>::new(), |d| {
            d.info.title = "t".into();
        });
        assert_eq!(doc.info.title, "t");
        assert!(doc.paths.paths.contains_key("/openapi.json"));
        let req = axum::http::Request::get("/openapi.json")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, serde_json::to_value(&doc).unwrap());
    }

    // Proves: the source check passes documented routes and test code, and
    // catches a plain route.
    #[test]
    fn source_check() {
        assert_routes_documented(
            "x.rs",
            "r.routes(routes!(h))\n#[cfg(test)]\nmod tests { r.route(\"/\", get(h)) }",
        );
        let bad = std::panic::catch_unwind(|| {
            assert_routes_documented("x.rs", "Router::new().route(\"/\", get(h))");
        });
        assert!(bad.is_err());
    }
}
