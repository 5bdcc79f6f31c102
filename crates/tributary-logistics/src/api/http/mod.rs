//! HTTP/JSON API: the same five operations as gRPC under `/v1/packages`,
//! and the OpenAPI 3.1 document of exactly these routes at `/openapi.json`.
//! Every route is registered through [`utoipa_axum::routes!`] together with
//! its `#[utoipa::path]` documentation, so none can be served undocumented.

mod error;
pub mod openapi;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tributary_runtime::ErrorBody;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::AppError;

use crate::domain::{Package, ValidationError};
use crate::service::{CreateInput, PackageService, Transport, UpdateInput};

/// Body of `POST /v1/packages`. Absent fields take their zero value and are
/// then validated, as in gRPC (so title, material and maximum_volume are
/// documented as required: their zero values are rejected).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = CreatePackage)]
pub struct CreateBody {
    /// 1..32 characters.
    #[schema(required = true, min_length = 1, max_length = 32)]
    pub title: String,
    /// 1..32 characters.
    #[schema(required = true, min_length = 1, max_length = 32)]
    pub material: String,
    /// > 0, cm³.
    #[schema(required = true, exclusive_minimum = 0)]
    pub maximum_volume: f32,
    /// Reusable or not.
    pub reusable: bool,
}

/// Body of `PUT /v1/packages/{id}`: the fields to change (at least one).
/// An absent field stays as it is; an explicit `null` is refused (400), as
/// no field can be cleared.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = UpdatePackage)]
pub struct UpdateBody {
    /// New title, 1..32 characters.
    #[schema(min_length = 1, max_length = 32)]
    #[serde(deserialize_with = "not_null")]
    pub title: Option<String>,
    /// New material, 1..32 characters.
    #[schema(min_length = 1, max_length = 32)]
    #[serde(deserialize_with = "not_null")]
    pub material: Option<String>,
    /// New maximum volume, > 0, cm³.
    #[schema(exclusive_minimum = 0)]
    #[serde(deserialize_with = "not_null")]
    pub maximum_volume: Option<f32>,
    /// New reusable flag.
    #[serde(deserialize_with = "not_null")]
    pub reusable: Option<bool>,
}

/// A present field must hold a value: `null` would otherwise read as
/// "absent" and the change be dropped silently.
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom(
            "null is not a value here; leave the field out to keep it unchanged",
        )),
    }
}

/// A JSON body that must be an object: serde's derived structs also take
/// an array (the fields in order), which no client means. Syntax errors
/// and oversize bodies keep their rejections (400, 413).
fn object_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, AppError> {
    let Json(v) = body?;
    if !v.is_object() {
        return Err(tributary_runtime::ApiError::invalid(
            "body: expected a JSON object",
        ));
    }
    serde_json::from_value(v)
        .map_err(|e| tributary_runtime::ApiError::invalid(format!("body: {e}")))
}

/// Query of `GET /v1/packages`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows to skip; ignored with after_id.
    pub offset: u64,
    /// Page size; 0 or absent = server default, clamped to the server maximum.
    pub limit: u64,
    /// Cursor: only packages with a greater id.
    pub after_id: Option<u64>,
}

/// A package as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Package)]
pub struct PackageJson {
    /// Id.
    pub id: u64,
    /// Title, 1..32 characters.
    pub title: String,
    /// Material, 1..32 characters.
    pub material: String,
    /// Maximum volume, cm³.
    pub maximum_volume: f32,
    /// Reusable.
    pub reusable: bool,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub created: chrono::DateTime<chrono::Utc>,
    /// RFC 3339, absent when never updated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Package> for PackageJson {
    fn from(p: Package) -> Self {
        Self {
            id: p.id.as_u64(),
            title: p.title,
            material: p.material,
            maximum_volume: p.maximum_volume,
            reusable: p.reusable,
            created: p.created,
            updated: p.updated,
        }
    }
}

/// Every route with its documentation (the only place routes are added).
pub(super) fn routes() -> OpenApiRouter<PackageService> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(create, list))
        .routes(routes!(describe, update, remove))
}

/// The HTTP router with `GET /openapi.json` (without the request-scope
/// layer).
pub fn router(svc: PackageService) -> Router {
    let (router, _document) = tributary_runtime::openapi::with_document(routes(), openapi::adjust);
    router.with_state(svc)
}

fn path_id(raw: &str) -> Result<u64, AppError> {
    raw.parse::<u64>().map_err(|_| {
        AppError::from(crate::Error::Invalid(ValidationError::new(
            "id",
            format!("must be a positive integer, got {raw:?}"),
        )))
    })
}

/// Answer of create.
#[derive(Serialize, utoipa::ToSchema)]
struct IdBody {
    /// Id of the new package.
    id: u64,
}

/// Answer of update and remove.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Ok)]
struct OkBody {
    /// Always true.
    ok: bool,
}

/// Answer of describe.
#[derive(Serialize, utoipa::ToSchema)]
struct PackageBody {
    package: PackageJson,
}

/// Answer of list.
#[derive(Serialize, utoipa::ToSchema)]
struct PackagesBody {
    packages: Vec<PackageJson>,
}

const BAD_REQUEST: &str =
    "invalid_argument: the message names the field (or says no changes specified)";
const NOT_FOUND: &str = "not_found: package not found";
const INTERNAL: &str = "internal: internal error (no details)";

/// Create a package
#[utoipa::path(post, path = "/v1/packages", operation_id = "CreatePackageV1",
    request_body = CreateBody,
    responses(
        (status = 200, description = "Created", body = IdBody),
        (status = 400, description = BAD_REQUEST, body = ErrorBody),
        (status = 500, description = INTERNAL, body = ErrorBody),
    ))]
async fn create(
    State(svc): State<PackageService>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<IdBody>, AppError> {
    let b: CreateBody = object_body(body)?;
    let input = CreateInput {
        title: b.title,
        material: b.material,
        maximum_volume: b.maximum_volume,
        reusable: b.reusable,
    };
    let p = svc.create(Transport::Http, input).await?;
    Ok(Json(IdBody { id: p.id.as_u64() }))
}

/// One package
#[utoipa::path(get, path = "/v1/packages/{id}", operation_id = "DescribePackageV1",
    params(("id" = u64, Path, minimum = 1, description = "Package id")),
    responses(
        (status = 200, description = "The package", body = PackageBody),
        (status = 400, description = BAD_REQUEST, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 500, description = INTERNAL, body = ErrorBody),
    ))]
async fn describe(
    State(svc): State<PackageService>,
    Path(id): Path<String>,
) -> Result<Json<PackageBody>, AppError> {
    let p = svc.describe(Transport::Http, path_id(&id)?).await?;
    Ok(Json(PackageBody { package: p.into() }))
}

/// A page of packages by id
#[utoipa::path(get, path = "/v1/packages", operation_id = "ListPackagesV1",
    params(ListQuery),
    responses(
        (status = 200, description = "The page", body = PackagesBody),
        (status = 400, description = BAD_REQUEST, body = ErrorBody),
        (status = 500, description = INTERNAL, body = ErrorBody),
    ))]
async fn list(
    State(svc): State<PackageService>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PackagesBody>, AppError> {
    let Query(q) = q?;
    let list = svc
        .list(Transport::Http, q.offset, q.limit, q.after_id)
        .await?;
    Ok(Json(PackagesBody {
        packages: list.into_iter().map(Into::into).collect(),
    }))
}

/// Change a package
#[utoipa::path(put, path = "/v1/packages/{id}", operation_id = "UpdatePackageV1",
    params(("id" = u64, Path, minimum = 1, description = "Package id")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Changed", body = OkBody),
        (status = 400, description = BAD_REQUEST, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 500, description = INTERNAL, body = ErrorBody),
    ))]
async fn update(
    State(svc): State<PackageService>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<OkBody>, AppError> {
    let id = path_id(&id)?;
    let b: UpdateBody = object_body(body)?;
    let input = UpdateInput {
        title: b.title,
        material: b.material,
        maximum_volume: b.maximum_volume,
        reusable: b.reusable,
    };
    svc.update(Transport::Http, id, input).await?;
    Ok(Json(OkBody { ok: true }))
}

/// Remove a package
#[utoipa::path(delete, path = "/v1/packages/{id}", operation_id = "RemovePackageV1",
    params(("id" = u64, Path, minimum = 1, description = "Package id")),
    responses(
        (status = 200, description = "Removed", body = OkBody),
        (status = 400, description = BAD_REQUEST, body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 500, description = INTERNAL, body = ErrorBody),
    ))]
async fn remove(
    State(svc): State<PackageService>,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, AppError> {
    svc.remove(Transport::Http, path_id(&id)?).await?;
    Ok(Json(OkBody { ok: true }))
}

#[cfg(test)]
mod tests {
    // Proves: routes are only added through `routes!` (with their
    // documentation) — this file never calls axum's undocumented `route`.
    #[test]
    fn routes_are_only_added_with_their_documentation() {
        tributary_runtime::openapi::assert_routes_documented("http/mod.rs", include_str!("mod.rs"));
    }
}
