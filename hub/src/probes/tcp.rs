//! TCP probes: a connection must be accepted within the timeout.

use chaoshub_schema::probe::TcpProbe;

use super::timeout_of;

pub async fn check(spec: &TcpProbe) -> Result<String, String> {
    let timeout = timeout_of(&spec.timeout);
    let started = std::time::Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&spec.address)).await {
        Ok(Ok(stream)) => {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| spec.address.clone());
            Ok(format!(
                "connected to {peer} in {} ms",
                started.elapsed().as_millis()
            ))
        }
        Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", spec.address)),
        Err(_) => Err(format!(
            "no connection to {} within {} ms",
            spec.address,
            timeout.as_millis()
        )),
    }
}
