//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and
//! generates prost messages plus tonic client and server code. The encoded
//! descriptor set is written to OUT_DIR for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/logistic_package_api/v1/logistic_package_api.proto",
        "proto/logistic_package_api/v1/package_event.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("logistics_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
