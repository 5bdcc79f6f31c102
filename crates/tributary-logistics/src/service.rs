//! The operations behind both APIs: validation, the repository call,
//! metrics and logs. gRPC and HTTP are thin translations of these.

use std::time::Instant;

use crate::domain::{NewPackage, Package, PackageId, PackageUpdate, Page, PageLimits};
use crate::metrics;
use crate::store::Store;
use crate::{Error, Result};

/// Which API a request came through (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// gRPC.
    Grpc,
    /// HTTP/JSON.
    Http,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// Fields of a create request as a client sent them.
#[derive(Debug, Clone, Default)]
pub struct CreateInput {
    /// Title.
    pub title: String,
    /// Material.
    pub material: String,
    /// Maximum volume.
    pub maximum_volume: f32,
    /// Reusable.
    pub reusable: bool,
}

/// Fields of an update request as a client sent them.
#[derive(Debug, Clone, Default)]
pub struct UpdateInput {
    /// New title.
    pub title: Option<String>,
    /// New material.
    pub material: Option<String>,
    /// New maximum volume.
    pub maximum_volume: Option<f32>,
    /// New reusable flag.
    pub reusable: Option<bool>,
}

/// The package operations. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PackageService {
    store: Store,
    limits: PageLimits,
}

impl PackageService {
    /// A service over `store` with paging policy `limits`.
    pub fn new(store: Store, limits: PageLimits) -> Self {
        Self { store, limits }
    }

    /// CreatePackageV1.
    pub async fn create(&self, t: Transport, input: CreateInput) -> Result<Package> {
        observe("CreatePackageV1", t, async {
            let new = NewPackage::parse(
                input.title,
                input.material,
                input.maximum_volume,
                input.reusable,
            )?;
            tracing::debug!(?new, "creating package");
            let p = self.store.create(&new).await?;
            ::metrics::counter!(metrics::CUD_EVENTS).increment(1);
            tracing::debug!(id = %p.id, "package created");
            Ok(p)
        })
        .await
    }

    /// DescribePackageV1.
    pub async fn describe(&self, t: Transport, id: u64) -> Result<Package> {
        observe("DescribePackageV1", t, async {
            let id = PackageId::parse(id)?.ok_or(Error::NotFound)?;
            let p = self.store.describe(id).await?;
            tracing::debug!(package = ?p, "package found");
            Ok(p)
        })
        .await
    }

    /// ListPackagesV1.
    pub async fn list(
        &self,
        t: Transport,
        offset: u64,
        limit: u64,
        after_id: Option<u64>,
    ) -> Result<Vec<Package>> {
        observe("ListPackagesV1", t, async {
            let page = Page::resolve(offset, limit, after_id, self.limits);
            let list = self.store.list(page).await?;
            tracing::debug!(?page, n = list.len(), "packages listed");
            Ok(list)
        })
        .await
    }

    /// UpdatePackageV1.
    pub async fn update(&self, t: Transport, id: u64, input: UpdateInput) -> Result<Package> {
        observe("UpdatePackageV1", t, async {
            let id = PackageId::parse(id)?;
            let update = PackageUpdate::parse(
                input.title,
                input.material,
                input.maximum_volume,
                input.reusable,
            )?
            .ok_or(Error::NoChanges)?;
            let id = id.ok_or(Error::NotFound)?;
            tracing::debug!(%id, ?update, "updating package");
            let p = self.store.update(id, &update).await?;
            ::metrics::counter!(metrics::CUD_EVENTS).increment(1);
            Ok(p)
        })
        .await
    }

    /// RemovePackageV1.
    pub async fn remove(&self, t: Transport, id: u64) -> Result<Package> {
        observe("RemovePackageV1", t, async {
            let id = PackageId::parse(id)?.ok_or(Error::NotFound)?;
            let p = self.store.remove(id).await?;
            ::metrics::counter!(metrics::CUD_EVENTS).increment(1);
            tracing::debug!(%id, "package removed");
            Ok(p)
        })
        .await
    }
}

async fn observe<T>(
    rpc: &'static str,
    t: Transport,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let started = Instant::now();
    let res = f.await;
    let status = match &res {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    metrics::request(rpc, t.label(), status, started.elapsed());
    if let Err(e) = &res {
        if !e.is_internal() {
            tracing::debug!(rpc, error = %e, "request rejected");
        }
    }
    res
}
