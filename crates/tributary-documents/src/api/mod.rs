//! The REST API of `docs-api`, served through `tributary_runtime::http`
//! (body limit, timeout, request id, one error body):
//!
//! - `GET /api/docs/documents?url=URL`: one document in the wire shape
//!   (404 `not_found` when the url was never merged);
//! - `GET /api/docs/documents?limit=N&after=URL`: a page in url (byte)
//!   order, `{"documents": [...], "next_after": URL | null}`;
//! - `POST /api/docs/updates`: an NDJSON body of updates in the wire
//!   shape; each line is produced as it is to the input topic keyed by its
//!   `Url` (a line that is not a JSON object with a non-blank string `Url`
//!   fails the whole request with 400 naming the line, and nothing is
//!   produced); answers `{"accepted": n}` once every record is durable.
//!   Other problems (a missing `FetchTime`, ...) are the executor's: such
//!   updates reach the dead-letter topic;
//! - `GET /api/docs/stats`: `{"documents": n, "outbox_pending": m}`;
//! - `GET /openapi.json`: the OpenAPI 3.1 document of exactly these routes.
//!
//! Every route is registered through [`utoipa_axum::routes!`] together with
//! its `#[utoipa::path]` documentation, so none can be served undocumented;
//! the schemas are derived from the types the handlers read and write.

use std::sync::Arc;

use axum::extract::State;
use axum::Router;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tributary_bus::{Bus, Record};
use tributary_runtime::http::Query;
use tributary_runtime::{ApiError, ErrorBody};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Document;
use crate::settings::DocsSettings;
use crate::store::{DocStore, StoreError};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The documents table.
    pub store: DocStore,
    /// The bus (ingest produces to the input topic).
    pub bus: Bus,
    /// The `[docs]` settings.
    pub settings: Arc<DocsSettings>,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sql(_) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

/// Query of `GET /api/docs/documents`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentsQuery {
    /// One url: answer that document (not with `limit`/`after`).
    pub url: Option<String>,
    /// Page size (default `docs.page_default`, at most `docs.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Keyset: urls after this one.
    pub after: Option<String>,
}

/// A page of documents.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DocumentPage {
    /// Documents in the wire shape, in url order.
    #[schema(value_type = Vec<Document>)]
    pub documents: Vec<serde_json::Value>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// Answer of `POST /api/docs/updates`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Accepted {
    /// Updates produced to the input topic.
    pub accepted: usize,
}

/// Answer of `GET /api/docs/stats`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Stats {
    /// Documents in the table.
    pub documents: u64,
    /// Merged documents in the outbox, not yet on the output topic.
    pub outbox_pending: i64,
}

/// Title and description of the document.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Tributary documents",
    description = "Documents merged from unordered, duplicated updates: read one or a page, ingest NDJSON updates to the input topic, counts. Every error is `{\"code\", \"message\"}` (schema `ErrorBody`)."
))]
struct ApiDoc;

/// Every route with its documentation (the only place routes are added).
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(documents))
        .routes(routes!(ingest))
        .routes(routes!(stats))
}

/// The router with `GET /openapi.json` (without the shared layers;
/// `http::serve` adds them).
pub fn router(state: ApiState) -> Router {
    let (router, _document) = tributary_runtime::openapi::with_document(routes(), |_| {});
    router.with_state(state)
}

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    tributary_runtime::openapi::with_document(routes(), |_| {}).1
}

/// The 200 body of `GET /api/docs/documents`: one or a page (documentation
/// only; the handler answers [`Document`] or [`DocumentPage`]). Untagged,
/// as the handler writes them: either object itself, not `{"One": ...}`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum DocumentOrPage {
    /// With `url`.
    One(Document),
    /// Without `url`.
    Page(DocumentPage),
}

fn wire(doc: &Document) -> serde_json::Value {
    serde_json::to_value(doc).unwrap_or_default()
}

/// One document, or a page of documents
#[utoipa::path(get, path = "/api/docs/documents", operation_id = "documents",
    params(DocumentsQuery),
    responses(
        (status = 200, description = "With `url`: that document (schema `Document`); else a page (schema `DocumentPage`)",
            body = inline(DocumentOrPage)),
        (status = 400, description = "Bad query (unknown parameter, `url` with `limit`/`after`, `limit` out of range)", body = ErrorBody),
        (status = 404, description = "No document with this `url`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn documents(
    State(st): State<ApiState>,
    Query(q): Query<DocumentsQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    if let Some(url) = q.url {
        if q.limit.is_some() || q.after.is_some() {
            return Err(ApiError::invalid(
                "url: give either url, or limit/after for a page",
            ));
        }
        return match st.store.get(&url).await? {
            Some(doc) => Ok(axum::Json(wire(&doc)).into_response()),
            None => Err(ApiError::not_found(format!("no document with url {url:?}"))),
        };
    }
    let limit = q.limit.unwrap_or(st.settings.page_default);
    if limit == 0 || limit > st.settings.page_max {
        return Err(ApiError::invalid(format!(
            "limit: must be 1..={}, got {limit}",
            st.settings.page_max
        )));
    }
    let docs = st.store.list(q.after.as_deref(), limit).await?;
    let next_after = (docs.len() == limit as usize)
        .then(|| docs.last().map(|d| d.url.clone()))
        .flatten();
    Ok(axum::Json(DocumentPage {
        documents: docs.iter().map(wire).collect(),
        next_after,
    })
    .into_response())
}

/// The `Url` of one NDJSON line, or why the line is refused.
fn line_url(line: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("Url") {
        Some(serde_json::Value::String(u)) if !u.trim().is_empty() => Ok(u.clone()),
        Some(serde_json::Value::String(_)) => Err("`Url` is blank".into()),
        Some(_) => Err("`Url` is not a string".into()),
        None if v.is_object() => Err("no `Url`".into()),
        None => Err("not a JSON object".into()),
    }
}

/// Ingest updates (NDJSON)
#[utoipa::path(post, path = "/api/docs/updates", operation_id = "ingest",
    request_body(content = Document, content_type = "application/x-ndjson",
        description = "One update per line in the wire shape; each line needs a non-blank string `Url`, blank lines are skipped"),
    responses(
        (status = 200, description = "Every update produced to the input topic", body = Accepted),
        (status = 400, description = "A line is not a JSON object with a non-blank string `Url` (nothing produced)", body = ErrorBody),
        (status = 503, description = "The bus is unavailable", body = ErrorBody),
    ))]
async fn ingest(State(st): State<ApiState>, body: Bytes) -> Result<axum::Json<Accepted>, ApiError> {
    let mut records = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let url = line_url(line).map_err(|e| ApiError::invalid(format!("line {}: {e}", i + 1)))?;
        records.push(Record::new(
            st.settings.input_topic.clone(),
            Bytes::from(url.into_bytes()),
            body.slice_ref(line),
        ));
    }
    let n = records.len();
    // Sent in order (each record is enqueued before `send` returns, so one
    // url's updates keep their order), acknowledged together.
    let sends: Vec<_> = records.into_iter().map(|r| st.bus.send(r)).collect();
    for res in futures::future::join_all(sends).await {
        res.map_err(|e| ApiError::unavailable(anyhow::anyhow!("produce to the input topic: {e}")))?;
    }
    Ok(axum::Json(Accepted { accepted: n }))
}

/// Counts
#[utoipa::path(get, path = "/api/docs/stats", operation_id = "stats",
    responses(
        (status = 200, description = "Documents and pending outbox entries", body = Stats),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn stats(State(st): State<ApiState>) -> Result<axum::Json<Stats>, ApiError> {
    let documents = st.store.count().await?;
    let outbox_pending = st
        .store
        .outbox()
        .pending()
        .await
        .map_err(StoreError::from)?;
    Ok(axum::Json(Stats {
        documents,
        outbox_pending,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: routes are only added through `routes!` (with their
    // documentation) — this file never calls axum's undocumented `route`.
    #[test]
    fn routes_are_only_added_with_their_documentation() {
        tributary_runtime::openapi::assert_routes_documented("api/mod.rs", include_str!("mod.rs"));
    }

    // Proves: the derived schemas follow the types (the wire shape's names,
    // the page's documents) and every operation documents the error body.
    #[test]
    fn schemas_follow_the_types() {
        let doc = tributary_runtime::openapi::assert_error_bodies(&document(), &["400", "503"]);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Document"]["required"],
            serde_json::json!(["Url", "PubDate", "FetchTime", "Text", "FirstFetchTime"])
        );
        assert_eq!(
            schemas["DocumentPage"]["properties"]["documents"]["items"]["$ref"],
            "#/components/schemas/Document"
        );
        let params = &doc["paths"]["/api/docs/documents"]["get"]["parameters"];
        let names: Vec<_> = params
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].clone())
            .collect();
        assert_eq!(names, ["url", "limit", "after"]);
        // The 200 body is either object as it is (untagged), as the handler
        // writes it; schemathesis found `{"One": ...}` wrappers here once.
        let ok = &doc["paths"]["/api/docs/documents"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["oneOf"];
        assert_eq!(ok[0]["$ref"], "#/components/schemas/Document", "{ok}");
        assert_eq!(ok[1]["$ref"], "#/components/schemas/DocumentPage", "{ok}");
    }
}
