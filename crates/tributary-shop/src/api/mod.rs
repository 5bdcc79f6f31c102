//! The REST API of `shop-api`, served through `tributary_runtime::http`
//! (body limit, timeout, request id, auth, one error body):
//!
//! - `POST /api/shop/products`, `POST /api/shop/prompts`: NDJSON bodies in
//!   the wire shape; each line is produced as it is to the products /
//!   prompts topic keyed by its `product_id` / `id` (a line that is not a
//!   JSON object with that non-blank string field fails the whole request
//!   with 400 naming the line, and nothing is produced). Every other check
//!   is the consumers': such records reach `<topic>.dlq`. `?event_time_ms=`
//!   stamps every line with that producer timestamp (the join's event
//!   time); without it, records carry the time they are produced;
//! - `GET /api/shop/filter`: the filter in force, when it was set, and per
//!   filter replica the offsets from which it applies;
//! - `PUT /api/shop/filter`: sets it (`{"pattern", "regex", "case_insensitive"}`),
//!   validated first (400 naming the problem; the old filter stays), stored
//!   on the control topic; answers once this API has applied it;
//! - `DELETE /api/shop/filter`: clears it (all pass);
//! - `GET /api/shop/products?name=&filtered=&limit=`, `GET
//!   /api/shop/recommendations?user=&limit=`, `GET /api/shop/stats`: reads
//!   of the sink's tables;
//! - `GET /openapi.json`.
//!
//! The gRPC API ([`grpc`], `shop.grpc_listen`) serves the filter and
//! ingest operations through the same functions.

pub mod grpc;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Router;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tributary_bus::{Bus, Record};
use tributary_runtime::http::{Json, Query};
use tributary_runtime::{ApiError, ErrorBody};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Filter, FilterKind, FilterSpec, Product, Recommendation};
use crate::pipeline::control::{ControlView, ReplicaAck, FILTER_KEY};
use crate::pipeline::now_ms;
use crate::settings::ShopSettings;
use crate::store::{Counts, ProductTable, ShopStore, StoreError};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The sink's tables.
    pub store: ShopStore,
    /// The bus (ingest, filter control).
    pub bus: Bus,
    /// The `[shop]` settings.
    pub settings: Arc<ShopSettings>,
    /// This API's view of the control topic.
    pub control: ControlView,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sql(_) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

/// Answer of the ingest routes.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Accepted {
    /// Records produced to the topic.
    pub accepted: usize,
}

/// Query of the ingest routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// Event time of every line of this request, ms since the epoch: the
    /// records' producer timestamp, which the join windows on. Absent: the
    /// time they are produced.
    #[param(minimum = 0)]
    pub event_time_ms: Option<i64>,
}

/// Body of `PUT /api/shop/filter`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFilter {
    /// The pattern; empty lets every product pass.
    pub pattern: String,
    /// Read `pattern` as a regex (syntax of the `regex` crate) instead of a
    /// case-insensitive substring.
    #[serde(default)]
    pub regex: bool,
    /// For a regex: ignore case.
    #[serde(default)]
    pub case_insensitive: bool,
}

/// The filter as stored on the control topic.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FilterBody {
    /// `substring` or `regex`.
    pub kind: String,
    /// The pattern; empty = all pass.
    pub pattern: String,
    /// Whether a regex ignores case (substrings always do).
    pub case_insensitive: bool,
    /// When it was set, ms since the epoch (0: never set).
    pub set_at: i64,
}

impl From<&FilterSpec> for FilterBody {
    fn from(s: &FilterSpec) -> Self {
        Self {
            kind: match s.kind {
                FilterKind::Substring => "substring",
                FilterKind::Regex => "regex",
            }
            .into(),
            pattern: s.pattern.clone(),
            case_insensitive: s.case_insensitive,
            set_at: s.set_at,
        }
    }
}

/// Answer of the filter routes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FilterView {
    /// The filter in force.
    pub filter: FilterBody,
    /// Offset of its record on the control topic (`null`: never set).
    pub control_offset: Option<i64>,
    /// The latest report of each filter replica (a replica that applied
    /// the current filter has its `set_at`).
    pub replicas: Vec<ReplicaAck>,
}

/// Query of `GET /api/shop/products`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductsQuery {
    /// Only products whose name contains this (case-insensitive).
    pub name: Option<String>,
    /// Read the filtered products' table instead of all products.
    #[serde(default)]
    pub filtered: bool,
    /// At most this many (default and largest: `shop.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// Query of `GET /api/shop/recommendations`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// The user.
    pub user: String,
    /// At most this many (default and largest: `shop.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// One line of `POST /api/shop/products` as the API checks it
/// (documentation only): a JSON object with a non-blank string
/// `product_id`; the consumers check the rest (`schemas/product.schema.json`,
/// a product that breaks it goes to the dead-letter topic).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ProductLine {
    /// The record key: not blank.
    #[schema(pattern = r"[^\s\u0085]")]
    product_id: String,
}

/// One line of `POST /api/shop/prompts` as the API checks it
/// (documentation only): a JSON object with a non-blank string `id`; the
/// consumers check the rest (`schemas/prompt.schema.json`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PromptLine {
    /// The record key: not blank.
    #[schema(pattern = r"[^\s\u0085]")]
    id: String,
}

/// Title and description of the document.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Tributary shop",
    description = "Shop streams: ingest products and search prompts (NDJSON) to their topics, set the live product filter, read products and recommendations. Every error is `{\"code\", \"message\"}` (schema `ErrorBody`)."
))]
struct ApiDoc;

/// Every route with its documentation (the only place routes are added).
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ingest_products))
        .routes(routes!(ingest_prompts))
        .routes(routes!(get_filter, set_filter, clear_filter))
        .routes(routes!(products))
        .routes(routes!(recommendations))
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

/// The string field `field` of one NDJSON line (the record's key), or why
/// the line is refused.
fn line_key(line: &[u8], field: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    match v.get(field) {
        Some(serde_json::Value::String(u)) if !u.trim().is_empty() => Ok(u.clone()),
        Some(serde_json::Value::String(_)) => Err(format!("`{field}` is blank")),
        Some(_) => Err(format!("`{field}` is not a string")),
        None if v.is_object() => Err(format!("no `{field}`")),
        None => Err("not a JSON object".into()),
    }
}

/// Produces `records` (numbered, each one JSON object) to `topic` keyed
/// by their string field `field`, all stamped with `event_time_ms` when
/// given. Checks every record first: one without its key fails the whole
/// call naming it (`what` and number), and nothing is produced. Blank
/// records are skipped.
pub(crate) async fn ingest_records(
    bus: &Bus,
    topic: &str,
    field: &str,
    lines: impl Iterator<Item = (usize, Bytes)>,
    event_time_ms: Option<i64>,
    what: &str,
) -> Result<Accepted, ApiError> {
    if let Some(ms) = event_time_ms.filter(|ms| *ms < 0) {
        // Kafka refuses negative timestamps; refuse them here on every bus.
        return Err(ApiError::invalid(format!(
            "event_time_ms {ms} is negative (ms since the epoch)"
        )));
    }
    let mut records = Vec::new();
    for (n, line) in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key =
            line_key(&line, field).map_err(|e| ApiError::invalid(format!("{what} {n}: {e}")))?;
        let mut record = Record::new(topic.to_owned(), Bytes::from(key.into_bytes()), line);
        record.timestamp_ms = event_time_ms;
        records.push(record);
    }
    let n = records.len();
    let sends: Vec<_> = records.into_iter().map(|r| bus.send(r)).collect();
    for res in futures::future::join_all(sends).await {
        res.map_err(|e| ApiError::unavailable(anyhow::anyhow!("produce to {topic}: {e}")))?;
    }
    Ok(Accepted { accepted: n })
}

/// The lines of an NDJSON body, numbered from 1 (a trailing `\r` cut).
fn ndjson_lines(body: &Bytes) -> impl Iterator<Item = (usize, Bytes)> + '_ {
    body.split(|b| *b == b'\n').enumerate().map(|(i, raw)| {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        (i + 1, body.slice_ref(line))
    })
}

async fn ingest(
    bus: &Bus,
    topic: &str,
    field: &str,
    body: &Bytes,
    event_time_ms: Option<i64>,
) -> Result<Accepted, ApiError> {
    ingest_records(bus, topic, field, ndjson_lines(body), event_time_ms, "line").await
}

/// Ingest products (NDJSON)
#[utoipa::path(post, path = "/api/shop/products", operation_id = "ingest_products",
    params(IngestQuery),
    request_body(content = ProductLine, content_type = "application/x-ndjson",
        description = "One product per line in the wire shape; each needs a non-blank string `product_id` (the key); blank lines are skipped"),
    responses(
        (status = 200, description = "Every line produced to the products topic", body = Accepted),
        (status = 400, description = "A line is not a JSON object with a non-blank string `product_id`, or `event_time_ms` is negative (nothing produced)", body = ErrorBody),
        (status = 503, description = "The bus is unavailable", body = ErrorBody),
    ))]
async fn ingest_products(
    State(st): State<ApiState>,
    Query(q): Query<IngestQuery>,
    body: Bytes,
) -> Result<axum::Json<Accepted>, ApiError> {
    ingest(
        &st.bus,
        &st.settings.products_topic,
        "product_id",
        &body,
        q.event_time_ms,
    )
    .await
    .map(axum::Json)
}

/// Ingest search prompts (NDJSON)
#[utoipa::path(post, path = "/api/shop/prompts", operation_id = "ingest_prompts",
    params(IngestQuery),
    request_body(content = PromptLine, content_type = "application/x-ndjson",
        description = "One prompt `{id, user_id, find}` per line; each needs a non-blank string `id` (the key); blank lines are skipped"),
    responses(
        (status = 200, description = "Every line produced to the prompts topic", body = Accepted),
        (status = 400, description = "A line is not a JSON object with a non-blank string `id`, or `event_time_ms` is negative (nothing produced)", body = ErrorBody),
        (status = 503, description = "The bus is unavailable", body = ErrorBody),
    ))]
async fn ingest_prompts(
    State(st): State<ApiState>,
    Query(q): Query<IngestQuery>,
    body: Bytes,
) -> Result<axum::Json<Accepted>, ApiError> {
    ingest(
        &st.bus,
        &st.settings.prompts_topic,
        "id",
        &body,
        q.event_time_ms,
    )
    .await
    .map(axum::Json)
}

pub(crate) fn view(control: &ControlView) -> FilterView {
    let c = control.snapshot();
    FilterView {
        filter: FilterBody::from(&c.spec),
        control_offset: c.control_offset,
        replicas: c.acks.into_values().collect(),
    }
}

/// The filter in force
#[utoipa::path(get, path = "/api/shop/filter", operation_id = "get_filter",
    responses(
        (status = 200, description = "The filter, when it was set, and what each replica reported", body = FilterView),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "Unavailable", body = ErrorBody),
    ))]
async fn get_filter(State(st): State<ApiState>) -> Result<axum::Json<FilterView>, ApiError> {
    Ok(axum::Json(view(&st.control)))
}

pub(crate) async fn store_filter(st: &ApiState, spec: FilterSpec) -> Result<FilterView, ApiError> {
    Filter::compile(&spec).map_err(|e| ApiError::invalid(format!("pattern: {e}")))?;
    let value = serde_json::to_vec(&spec).map_err(ApiError::internal)?;
    let delivery = st
        .bus
        .send(Record::new(
            st.settings.control_topic.clone(),
            FILTER_KEY.as_bytes().to_vec(),
            value,
        ))
        .await
        .map_err(|e| ApiError::unavailable(anyhow::anyhow!("write the control topic: {e}")))?;
    if !st
        .control
        .wait_applied(delivery.offset, Duration::from_secs(10))
        .await
    {
        return Err(ApiError::unavailable(anyhow::anyhow!(
            "the filter was stored (control offset {}) but this API has not read it back within 10 s",
            delivery.offset
        )));
    }
    Ok(view(&st.control))
}

/// Set the filter
#[utoipa::path(put, path = "/api/shop/filter", operation_id = "set_filter",
    request_body = SetFilter,
    responses(
        (status = 200, description = "Stored on the control topic and applied by this API; replicas follow within a second", body = FilterView),
        (status = 400, description = "A bad pattern (named; the old filter stays) or body", body = ErrorBody),
        (status = 503, description = "The bus is unavailable", body = ErrorBody),
    ))]
async fn set_filter(
    State(st): State<ApiState>,
    Json(body): Json<SetFilter>,
) -> Result<axum::Json<FilterView>, ApiError> {
    store_filter(&st, spec_of(&body)).await.map(axum::Json)
}

/// The filter a `SetFilter` asks for, set now.
pub(crate) fn spec_of(body: &SetFilter) -> FilterSpec {
    if body.regex {
        FilterSpec::regex(body.pattern.clone(), body.case_insensitive, now_ms())
    } else {
        FilterSpec::substring(body.pattern.clone(), now_ms())
    }
}

/// The empty filter (all pass), set now.
pub(crate) fn cleared() -> FilterSpec {
    FilterSpec::empty(now_ms())
}

/// Clear the filter (all pass)
#[utoipa::path(delete, path = "/api/shop/filter", operation_id = "clear_filter",
    responses(
        (status = 200, description = "The empty filter stored and applied by this API", body = FilterView),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "The bus is unavailable", body = ErrorBody),
    ))]
async fn clear_filter(State(st): State<ApiState>) -> Result<axum::Json<FilterView>, ApiError> {
    store_filter(&st, cleared()).await.map(axum::Json)
}

fn limit(st: &ApiState, limit: Option<u32>) -> Result<u32, ApiError> {
    let max = st.settings.page_max.max(1);
    let l = limit.unwrap_or(max);
    if l == 0 || l > max {
        return Err(ApiError::invalid(format!(
            "limit: must be 1..={max}, got {l}"
        )));
    }
    Ok(l)
}

/// Products as the sink stored them
#[utoipa::path(get, path = "/api/shop/products", operation_id = "products",
    params(ProductsQuery),
    responses(
        (status = 200, description = "Products in the wire shape, in product id order", body = Vec<Object>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn products(
    State(st): State<ApiState>,
    Query(q): Query<ProductsQuery>,
) -> Result<axum::Json<Vec<Product>>, ApiError> {
    let l = limit(&st, q.limit)?;
    let table = if q.filtered {
        ProductTable::Filtered
    } else {
        ProductTable::All
    };
    Ok(axum::Json(
        st.store.products(table, q.name.as_deref(), l).await?,
    ))
}

/// A user's recommendations
#[utoipa::path(get, path = "/api/shop/recommendations", operation_id = "recommendations",
    params(RecommendationsQuery),
    responses(
        (status = 200, description = "Recommendations `{prompt_id, user_id, find, product, matched_at}`, oldest match first", body = Vec<Object>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn recommendations(
    State(st): State<ApiState>,
    Query(q): Query<RecommendationsQuery>,
) -> Result<axum::Json<Vec<Recommendation>>, ApiError> {
    let l = limit(&st, q.limit)?;
    Ok(axum::Json(st.store.recommendations(&q.user, l).await?))
}

/// Row counts of the sink's tables
#[utoipa::path(get, path = "/api/shop/stats", operation_id = "stats",
    responses(
        (status = 200, description = "Products, filtered products, recommendations", body = Counts),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn stats(State(st): State<ApiState>) -> Result<axum::Json<Counts>, ApiError> {
    Ok(axum::Json(st.store.counts().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: routes are only added through `routes!` (with their documentation).
    #[test]
    fn routes_are_only_added_with_their_documentation() {
        tributary_runtime::openapi::assert_routes_documented("api/mod.rs", include_str!("mod.rs"));
    }

    // Proves: every operation documents the error body and the filter routes share one path.
    #[test]
    fn document_lists_the_routes() {
        let doc = tributary_runtime::openapi::assert_error_bodies(&document(), &["400", "503"]);
        let ops = tributary_runtime::openapi::documented_operations(&doc);
        let want = tributary_runtime::openapi::sorted_operations(&[
            ("post", "/api/shop/products"),
            ("get", "/api/shop/products"),
            ("post", "/api/shop/prompts"),
            ("get", "/api/shop/filter"),
            ("put", "/api/shop/filter"),
            ("delete", "/api/shop/filter"),
            ("get", "/api/shop/recommendations"),
            ("get", "/api/shop/stats"),
            ("get", "/openapi.json"),
        ]);
        assert_eq!(ops, want);
        // JSON object keys are strings: the integer-keyed map of offsets
        // must not be documented with integer `propertyNames` (the
        // schemathesis step found every filter answer violating that).
        let applies = &doc["components"]["schemas"]["ReplicaAck"]["properties"]["applies_from"];
        assert_eq!(applies["propertyNames"]["type"], "string", "{applies}");
        assert_eq!(
            applies["additionalProperties"]["type"], "integer",
            "{applies}"
        );
        let ack = serde_json::to_value(crate::pipeline::control::ReplicaAck {
            replica: "r".into(),
            set_at: 1,
            control_offset: 2,
            applies_from: [(0, 518), (1, 487)].into(),
            applied_at: 3,
        })
        .unwrap_or_default();
        let valid = jsonschema::draft202012::new(applies).map(|v| v.is_valid(&ack["applies_from"]));
        assert_eq!(valid.ok(), Some(true), "{ack}");
        // An ingest line's schema says what `line_key` checks: the key is a
        // non-blank string (Rust's whitespace, U+0085 too).
        for (schema, key) in [("ProductLine", "product_id"), ("PromptLine", "id")] {
            let line = &doc["components"]["schemas"][schema];
            assert_eq!(line["required"], serde_json::json!([key]), "{line}");
            let v = jsonschema::draft202012::new(line).ok();
            for (value, ok) in [
                ("a", true),
                (" x ", true),
                ("", false),
                (" \t", false),
                ("\u{85}", false),
            ] {
                let record = serde_json::json!({ key: value });
                let raw = record.to_string();
                assert_eq!(line_key(raw.as_bytes(), key).is_ok(), ok, "{raw}");
                assert_eq!(
                    v.as_ref().map(|v| v.is_valid(&record)),
                    Some(ok),
                    "{schema} {raw}"
                );
            }
        }
    }

    // Proves an ingest line needs its key field as a non-blank string, and the refusal names why.
    #[test]
    fn line_key_rules() {
        assert_eq!(line_key(br#"{"id":"a"}"#, "id"), Ok("a".into()));
        assert_eq!(
            line_key(br#"{"id":" "}"#, "id"),
            Err("`id` is blank".into())
        );
        assert_eq!(
            line_key(br#"{"id":1}"#, "id"),
            Err("`id` is not a string".into())
        );
        assert_eq!(line_key(br#"{}"#, "id"), Err("no `id`".into()));
        assert_eq!(line_key(b"[1]", "id"), Err("not a JSON object".into()));
        assert!(line_key(b"{", "id")
            .unwrap_or_else(|e| e)
            .starts_with("not JSON"));
    }
}
