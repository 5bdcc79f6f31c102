//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and
//! generates prost messages plus tonic client and server code. The encoded
//! descriptor set is written to OUT_DIR for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tributary/chat/v1/types.proto",
        "proto/tributary/chat/v1/chat_service.proto",
        "proto/tributary/chat/v1/user_service.proto",
        "proto/tributary/chat/v1/audit_service.proto",
        "proto/tributary/chat/v1/backup_service.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("chat_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Upload chunks as `bytes::Bytes`: spooled and sent without a copy.
        .bytes(".tributary.chat.v1.UploadRequest")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
