//! Compiles `proto/agent.proto` with protox (a Rust protobuf compiler), so building needs no
//! system `protoc`. Code is generated only with the `grpc` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_none() {
        return Ok(());
    }
    let descriptors = protox::compile(["proto/agent.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Small per-stream buffers: a hub holds a stream per agent (`agent::AgentCodec`).
        .codec_path("crate::agent::AgentCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
