//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and
//! generates prost messages plus tonic client and server code. The encoded
//! descriptor set is written to OUT_DIR for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/tributary/shop/v1/shop_service.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("shop_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
