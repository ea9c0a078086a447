//! Fixtures: real upstream TCP servers (echo, bulk sender), environments, fault requests, and
//! measurements through a proxy. Every server stops when its handle is dropped.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaoshub_adapters::toxiproxy::ToxiproxyAdapter;
use chaoshub_adapters::{Adapter, Environment, FaultRequest, Injection};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Target;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const ENV_NAME: &str = "proxies";

/// A real TCP server; aborted on drop.
pub struct Upstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Echoes every byte back.
pub async fn echo_server() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Upstream { addr, task }
}

/// Reads a decimal byte count and a newline, sends that many bytes, then closes.
pub async fn bulk_server() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while socket.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                    request.push(byte[0]);
                }
                let n: usize = String::from_utf8_lossy(&request)
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let chunk = vec![b'x'; 16 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    if socket.write_all(&chunk[..k]).await.is_err() {
                        return;
                    }
                    left -= k;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    Upstream { addr, task }
}

pub fn env(url: &str) -> Environment {
    env_with(url, json!({}))
}

pub fn env_with(url: &str, settings: Value) -> Environment {
    Environment {
        name: ENV_NAME.into(),
        spec: EnvironmentSpec {
            adapter: "toxiproxy".into(),
            endpoint: Some(url.to_string()),
            description: None,
            labels: Default::default(),
            settings: settings.as_object().cloned().unwrap_or_default(),
        },
    }
}

/// A fault request from a manifest in YAML, as the hub would build it.
pub fn fault(yaml: &str, injection_id: &str) -> FaultRequest {
    let manifest = chaoshub_schema::parse_one(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let actions = manifest.fault().unwrap().actions();
    FaultRequest {
        experiment_uid: injection_id
            .rsplit_once('-')
            .map_or(injection_id, |(uid, _)| uid)
            .to_string(),
        injection_id: injection_id.to_string(),
        name: manifest.metadata.name.clone().unwrap_or_default(),
        namespace: "default".into(),
        manifest: Arc::new(manifest),
        actions,
        deadline: None,
    }
}

/// A ProxyChaos manifest: `action` with its attribute block (YAML flow mapping) and options.
pub fn proxy_chaos(proxy: &str, action: &str, block: Option<&str>, extra: &str) -> String {
    let block = block
        .map(|b| format!("  {action}: {b}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: ProxyChaos\nmetadata: {{name: t-{}}}\nspec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{name: {proxy}}}\n{block}{extra}",
        action.replace('_', "-")
    )
}

/// A NetworkChaos manifest with the given action block lines (indented by two spaces).
pub fn network_chaos(proxy: &str, action: &str, body: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: net-{action}}}\nspec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{name: {proxy}}}\n{body}"
    )
}

/// The target the adapter discovers for a proxy name.
pub async fn target(env: &Environment, proxy: &str) -> Target {
    ToxiproxyAdapter::new()
        .discover(env)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == proxy)
        .unwrap_or_else(|| panic!("proxy {proxy} was not discovered"))
}

pub fn injection(fault: &FaultRequest, target: &Target, details: Value) -> Injection {
    Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: fault.kind().to_string(),
        actions: fault.actions.clone(),
        target: target.clone(),
        details,
    }
}

/// Median round trip of a one-byte ping over one connection through `addr`.
pub async fn median_round_trip(addr: SocketAddr, samples: usize) -> Duration {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(samples);
    let mut byte = [0u8; 1];
    for _ in 0..samples {
        let start = Instant::now();
        socket.write_all(b"p").await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut byte))
            .await
            .expect("no echo within 10 s")
            .unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// How long receiving `bytes` from the bulk server through `addr` takes (request to last byte).
pub async fn transfer_time(addr: SocketAddr, bytes: usize) -> Duration {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    socket
        .write_all(format!("{bytes}\n").as_bytes())
        .await
        .unwrap();
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while received < bytes {
        let n = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf))
            .await
            .expect("transfer stalled for 30 s")
            .unwrap();
        assert!(n > 0, "connection closed after {received} of {bytes} bytes");
        received += n;
    }
    start.elapsed()
}

/// Whether one echo round trip through `addr` completes within `wait`.
pub async fn echoes_within(addr: SocketAddr, wait: Duration) -> bool {
    let Ok(mut socket) = TcpStream::connect(addr).await else {
        return false;
    };
    if socket.write_all(b"p").await.is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, socket.read_exact(&mut byte)).await,
        Ok(Ok(_))
    )
}
