//! gRPC API: `logistic_package_api.v1.LogisticPackageApiService`, server
//! reflection (v1 and v1alpha) and the standard `grpc.health.v1` service.

use tonic::{Request, Response, Status};

use super::RequestScopeLayer;
use crate::domain::Package;
use crate::proto::v1 as pb;
use crate::proto::v1::logistic_package_api_service_server::{
    LogisticPackageApiService, LogisticPackageApiServiceServer,
};
use crate::service::{CreateInput, PackageService, Transport, UpdateInput};

/// The gRPC handler.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    svc: PackageService,
}

/// Converts a time to a protobuf timestamp.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

impl From<Package> for pb::Package {
    fn from(p: Package) -> Self {
        pb::Package {
            id: p.id.as_u64(),
            title: p.title,
            material: p.material,
            maximum_volume: p.maximum_volume,
            reusable: p.reusable,
            created: Some(timestamp(p.created)),
            updated: p.updated.map(timestamp),
        }
    }
}

#[tonic::async_trait]
impl LogisticPackageApiService for GrpcApi {
    async fn create_package_v1(
        &self,
        req: Request<pb::CreatePackageV1Request>,
    ) -> Result<Response<pb::CreatePackageV1Response>, Status> {
        let r = req.into_inner();
        let input = CreateInput {
            title: r.title,
            material: r.material,
            maximum_volume: r.maximum_volume,
            reusable: r.reusable,
        };
        let p = self.svc.create(Transport::Grpc, input).await?;
        Ok(Response::new(pb::CreatePackageV1Response {
            id: p.id.as_u64(),
        }))
    }

    async fn describe_package_v1(
        &self,
        req: Request<pb::DescribePackageV1Request>,
    ) -> Result<Response<pb::DescribePackageV1Response>, Status> {
        let p = self
            .svc
            .describe(Transport::Grpc, req.into_inner().id)
            .await?;
        Ok(Response::new(pb::DescribePackageV1Response {
            package: Some(p.into()),
        }))
    }

    async fn list_packages_v1(
        &self,
        req: Request<pb::ListPackagesV1Request>,
    ) -> Result<Response<pb::ListPackagesV1Response>, Status> {
        let r = req.into_inner();
        let list = self
            .svc
            .list(Transport::Grpc, r.offset, r.limit, r.after_id)
            .await?;
        Ok(Response::new(pb::ListPackagesV1Response {
            packages: list.into_iter().map(Into::into).collect(),
        }))
    }

    async fn update_package_v1(
        &self,
        req: Request<pb::UpdatePackageV1Request>,
    ) -> Result<Response<pb::UpdatePackageV1Response>, Status> {
        let r = req.into_inner();
        let input = UpdateInput {
            title: r.title,
            material: r.material,
            maximum_volume: r.maximum_volume,
            reusable: r.reusable,
        };
        self.svc.update(Transport::Grpc, r.id, input).await?;
        Ok(Response::new(pb::UpdatePackageV1Response { ok: true }))
    }

    async fn remove_package_v1(
        &self,
        req: Request<pb::RemovePackageV1Request>,
    ) -> Result<Response<pb::RemovePackageV1Response>, Status> {
        self.svc
            .remove(Transport::Grpc, req.into_inner().id)
            .await?;
        Ok(Response::new(pb::RemovePackageV1Response { ok: true }))
    }
}

/// The full gRPC router: the package service, reflection and health.
///
/// # Errors
/// When the embedded descriptor set cannot be decoded (a build bug).
pub async fn router(
    svc: PackageService,
    scope: RequestScopeLayer,
) -> anyhow::Result<
    tonic::transport::server::Router<
        tower::layer::util::Stack<RequestScopeLayer, tower::layer::util::Identity>,
    >,
> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<LogisticPackageApiServiceServer<GrpcApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(tonic::transport::Server::builder()
        .layer(scope)
        .add_service(LogisticPackageApiServiceServer::new(GrpcApi { svc }))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}
