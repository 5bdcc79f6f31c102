//! Generated protobuf and gRPC code (`proto/`), and the encoded descriptor
//! set for server reflection.
#![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]

/// `tributary.shop.v1`: the filter and ingest services.
pub mod v1 {
    tonic::include_proto!("tributary.shop.v1");
}

/// The encoded `FileDescriptorSet` of every proto file of this crate.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shop_descriptor.bin"));
