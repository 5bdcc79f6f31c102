//! HTTP/JSON API: the same five operations as gRPC under `/v1/packages`,
//! and the OpenAPI 3.0 document of exactly these routes at `/openapi.json`.

mod error;
pub mod openapi;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use error::AppError;

use crate::domain::{Package, ValidationError};
use crate::service::{CreateInput, PackageService, Transport, UpdateInput};

/// Body of `POST /v1/packages`. Absent fields take their zero value and are
/// then validated, as in gRPC.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateBody {
    /// 1..32 characters.
    pub title: String,
    /// 1..32 characters.
    pub material: String,
    /// > 0, cm³.
    pub maximum_volume: f32,
    /// Reusable or not.
    pub reusable: bool,
}

/// Body of `PUT /v1/packages/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateBody {
    /// New title.
    pub title: Option<String>,
    /// New material.
    pub material: Option<String>,
    /// New maximum volume.
    pub maximum_volume: Option<f32>,
    /// New reusable flag.
    pub reusable: Option<bool>,
}

/// Query of `GET /v1/packages`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListQuery {
    /// Rows to skip.
    pub offset: u64,
    /// Page size (0 = default).
    pub limit: u64,
    /// Cursor: only ids greater than this.
    pub after_id: Option<u64>,
}

/// A package as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackageJson {
    /// Id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Material.
    pub material: String,
    /// Maximum volume, cm³.
    pub maximum_volume: f32,
    /// Reusable.
    pub reusable: bool,
    /// RFC 3339.
    pub created: chrono::DateTime<chrono::Utc>,
    /// RFC 3339, absent when never updated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
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

/// The HTTP router (without the request-scope layer).
pub fn router(svc: PackageService) -> Router {
    Router::new()
        .route("/v1/packages", get(list).post(create))
        .route(
            "/v1/packages/{id}",
            get(describe).put(update).delete(remove),
        )
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .with_state(svc)
}

fn path_id(raw: &str) -> Result<u64, AppError> {
    raw.parse::<u64>().map_err(|_| {
        AppError::from(crate::Error::Invalid(ValidationError::new(
            "id",
            format!("must be a positive integer, got {raw:?}"),
        )))
    })
}

#[derive(Serialize)]
struct IdBody {
    id: u64,
}

#[derive(Serialize)]
struct OkBody {
    ok: bool,
}

#[derive(Serialize)]
struct PackageBody {
    package: PackageJson,
}

#[derive(Serialize)]
struct PackagesBody {
    packages: Vec<PackageJson>,
}

async fn create(
    State(svc): State<PackageService>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<Json<IdBody>, AppError> {
    let Json(b) = body?;
    let input = CreateInput {
        title: b.title,
        material: b.material,
        maximum_volume: b.maximum_volume,
        reusable: b.reusable,
    };
    let p = svc.create(Transport::Http, input).await?;
    Ok(Json(IdBody { id: p.id.as_u64() }))
}

async fn describe(
    State(svc): State<PackageService>,
    Path(id): Path<String>,
) -> Result<Json<PackageBody>, AppError> {
    let p = svc.describe(Transport::Http, path_id(&id)?).await?;
    Ok(Json(PackageBody { package: p.into() }))
}

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

async fn update(
    State(svc): State<PackageService>,
    Path(id): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<OkBody>, AppError> {
    let id = path_id(&id)?;
    let Json(b) = body?;
    let input = UpdateInput {
        title: b.title,
        material: b.material,
        maximum_volume: b.maximum_volume,
        reusable: b.reusable,
    };
    svc.update(Transport::Http, id, input).await?;
    Ok(Json(OkBody { ok: true }))
}

async fn remove(
    State(svc): State<PackageService>,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, AppError> {
    svc.remove(Transport::Http, path_id(&id)?).await?;
    Ok(Json(OkBody { ok: true }))
}
