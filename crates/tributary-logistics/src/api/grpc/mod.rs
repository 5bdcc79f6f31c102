//! gRPC API: `logistic_package_api.v1.LogisticPackageApiService`, server
//! reflection (v1 and v1alpha) and the standard `grpc.health.v1` service.

use tonic::{Request, Response, Status};

use crate::domain::Package;
use crate::proto::v1 as pb;
use crate::proto::v1::logistic_package_api_service_server::{
    LogisticPackageApiService, LogisticPackageApiServiceServer,
};
use crate::service::{CreateInput, PackageService, Transport, UpdateInput};
use tributary_runtime::grpc::{GrpcLimits, GrpcServer};

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

/// The name of the logistics gRPC server (logs, errors, the `server` label of its metrics).
pub const GRPC_SERVER: &str = "logistics gRPC API";

/// The gRPC API: the package service (with the shared message limits),
/// health and reflection, served by the runtime's [`GrpcServer`].
pub fn server(svc: PackageService, limits: GrpcLimits) -> GrpcServer {
    GrpcServer::new(GRPC_SERVER, limits)
        .descriptors(crate::proto::FILE_DESCRIPTOR_SET)
        .service(tributary_runtime::limit_messages!(
            LogisticPackageApiServiceServer::new(GrpcApi { svc }),
            limits
        ))
}
