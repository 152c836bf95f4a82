//! Compiles `proto/` with protox (pure Rust, no protoc needed) into OUT_DIR,
//! plus one encoded descriptor set that every server uses for reflection.
use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "switchyard/common/v1/chat.proto",
        "switchyard/provider/v1/provider.proto",
        "switchyard/catalog/v1/catalog.proto",
        "switchyard/metering/v1/metering.proto",
        "switchyard/router/v1/router.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("switchyard_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
