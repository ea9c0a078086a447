//! Telemetry overhead bench: hub throughput with OTLP export off, and on towards an in-process
//! receiver over HTTP/protobuf and over gRPC.
//!
//! Two measurements per configuration, through the real hub in-process (SQLite store on disk):
//! - `events/s`: `Engine::record` of single events (store append, SSE publish, metrics, and
//!   the OTLP log record when exporting);
//! - `experiments/s`: whole experiments (submit over REST, select, inject + read back on 4
//!   targets, run 10 ms, recover, finish), 8 at a time, with an in-bench adapter whose faults
//!   are map entries, so the hub and its telemetry are what is measured.
//!
//! Run: `cargo bench -p chaoshub --bench telemetry_overhead` (`-- --quick` for a short run).
//! Results: docs/benchmarks.md, section "Telemetry overhead".

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chaoshub::config::HubConfig;
use chaoshub::events::hub_event;
use chaoshub::telemetry::TelemetryConfig;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::{json, Value};

#[path = "common/instant_adapter.rs"]
mod instant_adapter;

/// Counts what the receiver decoded, so the bench can check the export really happened.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<(usize, usize)>>);

#[tonic::async_trait]
impl LogsService for Counts {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let n: usize = request
            .into_inner()
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        self.0.lock().unwrap().0 += n;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Counts {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.lock().unwrap().1 += n;
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn http_receiver(counts: Counts) -> String {
    let (c1, c2) = (counts.clone(), counts);
    let app = axum::Router::new()
        .route(
            "/v1/logs",
            axum::routing::post(move |body: Bytes| async move {
                let r = ExportLogsServiceRequest::decode(body).unwrap();
                let n: usize = r
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .map(|s| s.log_records.len())
                    .sum();
                c1.0.lock().unwrap().0 += n;
                ExportLogsServiceResponse::default().encode_to_vec()
            }),
        )
        .route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                let r = ExportTraceServiceRequest::decode(body).unwrap();
                let n: usize = r
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                c2.0.lock().unwrap().1 += n;
                ExportTraceServiceResponse::default().encode_to_vec()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn grpc_receiver(counts: Counts) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(counts.clone()))
            .add_service(TraceServiceServer::new(counts))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    format!("http://{addr}")
}

struct Measured {
    events_per_sec: f64,
    experiments_per_sec: f64,
    exported: (usize, usize),
}

async fn measure(
    telemetry: TelemetryConfig,
    counts: Counts,
    events: usize,
    experiments: usize,
) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        telemetry,
        ..Default::default()
    };
    config.engine.resync_interval_ms = 200;
    let (hub, url, client) = instant_adapter::start_hub(config, usize::MAX).await;

    // Events.
    let engine = hub.hub.engine.clone();
    let started = Instant::now();
    for i in 0..events {
        engine
            .record(&[hub_event("chaoshub.bench.event", format!("event {i}"))])
            .unwrap();
    }
    let events_per_sec = events as f64 / started.elapsed().as_secs_f64();

    // Experiments, 8 in flight.
    let started = Instant::now();
    let mut next = 0;
    while next < experiments {
        let batch: Vec<usize> = (next..(next + 8).min(experiments)).collect();
        next += batch.len();
        let mut uids = Vec::new();
        for i in batch {
            let manifest = json!({
                "apiVersion": "chaos-mesh.org/v1alpha1",
                "kind": "NetworkChaos",
                "metadata": {"name": format!("bench-{i}")},
                "spec": {"environment": "bench", "action": "delay", "mode": "all",
                         "selector": {"labelSelectors": {"app": "web"}},
                         "delay": {"latency": "10ms"}, "duration": "10ms"}
            });
            let created: Value = client
                .post(format!("{url}/api/v1/experiments"))
                .json(&manifest)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            uids.push(created["metadata"]["uid"].as_str().unwrap().to_string());
        }
        for uid in uids {
            loop {
                let v: Value = client
                    .get(format!("{url}/api/v1/experiments/{uid}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                match v["status"]["phase"].as_str() {
                    Some("Finished") => break,
                    Some("Failed") | Some("Aborted") => panic!("experiment ended badly: {v}"),
                    _ => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        }
    }
    let experiments_per_sec = experiments as f64 / started.elapsed().as_secs_f64();
    hub.shutdown().await;
    let exported = *counts.0.lock().unwrap();
    Measured {
        events_per_sec,
        experiments_per_sec,
        exported,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (events, experiments, rounds) = if quick {
        (2000, 40, 1)
    } else {
        (10_000, 200, 3)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("telemetry overhead: {events} events, {experiments} experiments (4 targets each), best of {rounds}");
        for (name, protocol) in [("otlp off", None), ("otlp http/protobuf", Some("http/protobuf")), ("otlp grpc", Some("grpc"))] {
            let mut best: Option<Measured> = None;
            for _ in 0..rounds {
                let counts = Counts::default();
                let telemetry = match protocol {
                    None => TelemetryConfig::default(),
                    Some(p) => TelemetryConfig {
                        endpoint: Some(if p == "grpc" {
                            grpc_receiver(counts.clone()).await
                        } else {
                            http_receiver(counts.clone()).await
                        }),
                        protocol: Some(p.to_string()),
                        ..Default::default()
                    },
                };
                let m = measure(telemetry, counts, events, experiments).await;
                if protocol.is_some() {
                    // Every event and every experiment's spans reached the receiver.
                    assert!(m.exported.0 >= events, "only {} log records exported", m.exported.0);
                    assert!(m.exported.1 >= experiments, "only {} spans exported", m.exported.1);
                }
                best = Some(match best {
                    Some(b) if b.experiments_per_sec >= m.experiments_per_sec => Measured {
                        events_per_sec: b.events_per_sec.max(m.events_per_sec),
                        ..b
                    },
                    Some(b) => Measured {
                        events_per_sec: b.events_per_sec.max(m.events_per_sec),
                        ..m
                    },
                    None => m,
                });
            }
            let b = best.unwrap();
            println!(
                "{name:<20} events/s={:>9.0}  experiments/s={:>7.1}  exported logs={} spans={}",
                b.events_per_sec, b.experiments_per_sec, b.exported.0, b.exported.1
            );
        }
    });
}
