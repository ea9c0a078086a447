//! OpenTelemetry export: an in-process OTLP receiver (the collector's HTTP endpoints
//! `/v1/logs` and `/v1/traces` decoding protobuf, and the gRPC `LogsService` / `TraceService`)
//! receives what one experiment produces. The receiver stands in for an OpenTelemetry
//! Collector, which is not packaged for this machine; the wire format is the real OTLP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use chaoshub::telemetry::TelemetryConfig;
use chaoshub_adapters::AdapterRegistry;
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
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::oneshot;

use super::support::{authed_client, config, delay_yaml, MemoryAdapter, Sandbox};

const T: Duration = Duration::from_secs(10);

/// What the receiver got, in arrival order, with the resource's `service.name`.
#[derive(Default)]
struct Received {
    logs: Vec<(String, LogRecord)>,
    spans: Vec<(String, Span)>,
}

type Shared = Arc<Mutex<Received>>;

fn service_name(attrs: &[KeyValue]) -> String {
    attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(string_of)
        .unwrap_or_default()
}

fn string_of(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        AnyValueKind::StringValue(s) => Some(s.clone()),
        AnyValueKind::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn attrs(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .filter_map(|kv| Some((kv.key.clone(), string_of(kv)?)))
        .collect()
}

impl Received {
    fn add_logs(&mut self, req: ExportLogsServiceRequest) {
        for rl in req.resource_logs {
            let service = service_name(
                rl.resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or(&[]),
            );
            for sl in rl.scope_logs {
                for r in sl.log_records {
                    self.logs.push((service.clone(), r));
                }
            }
        }
    }

    fn add_spans(&mut self, req: ExportTraceServiceRequest) {
        for rs in req.resource_spans {
            let service = service_name(
                rs.resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or(&[]),
            );
            for ss in rs.scope_spans {
                for s in ss.spans {
                    self.spans.push((service.clone(), s));
                }
            }
        }
    }
}

/// A receiver serving until dropped.
struct Receiver {
    endpoint: String,
    received: Shared,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn protobuf(bytes: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
        bytes,
    )
        .into_response()
}

/// The collector's OTLP/HTTP endpoints.
async fn http_receiver() -> Receiver {
    let received: Shared = Arc::default();
    let (r1, r2) = (received.clone(), received.clone());
    let app = axum::Router::new()
        .route(
            "/v1/logs",
            post(move |body: Bytes| async move {
                let req = ExportLogsServiceRequest::decode(body).expect("protobuf logs request");
                r1.lock().unwrap().add_logs(req);
                protobuf(ExportLogsServiceResponse::default().encode_to_vec())
            }),
        )
        .route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                let req = ExportTraceServiceRequest::decode(body).expect("protobuf traces request");
                r2.lock().unwrap().add_spans(req);
                protobuf(ExportTraceServiceResponse::default().encode_to_vec())
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Receiver {
        endpoint: format!("http://{addr}"),
        received,
        stop: Some(stop),
    }
}

#[derive(Clone)]
struct GrpcCollector(Shared);

#[tonic::async_trait]
impl LogsService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().add_logs(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().add_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The collector's OTLP/gRPC services.
async fn grpc_receiver() -> Receiver {
    let received: Shared = Arc::default();
    let collector = GrpcCollector(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(collector.clone()))
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    Receiver {
        endpoint: format!("http://{addr}"),
        received,
        stop: Some(stop),
    }
}

/// A sandbox hub exporting to `telemetry`.
async fn sandbox_exporting(telemetry: TelemetryConfig) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let adapter = MemoryAdapter::with_targets(4);
    let mut cfg = config(dir.path());
    cfg.telemetry = telemetry;
    let mut registry = AdapterRegistry::builtin();
    registry.register(Arc::new(adapter.clone()));
    let hub = chaoshub::server::start_with(cfg, registry).await.unwrap();
    assert!(hub.hub.engine.telemetry().is_exporting());
    let s = Sandbox {
        url: hub.url(),
        hub: Some(hub),
        client: authed_client(dir.path()),
        adapter,
        dir,
        tweak: |_| {},
    };
    let (code, body) = s
        .post_yaml(
            "/api/v1/environments",
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: mem}\nspec: {adapter: memory}\n",
        )
        .await;
    assert!(code == 201 || code == 200, "{code} {body}");
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one experiment against a hub exporting over `protocol` and checks the events and the
/// trace the receiver got.
async fn one_experiment_is_exported(protocol: &str, receiver: Receiver) {
    let mut s = sandbox_exporting(TelemetryConfig {
        endpoint: Some(receiver.endpoint.clone()),
        protocol: Some(protocol.into()),
        service_name: Some("chaoshub-test".into()),
        ..Default::default()
    })
    .await;
    let (code, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("web-delay", Some("300ms"), ""),
        )
        .await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Finished", T).await;
    let (_, stored) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    // Shutting the hub down flushes both exporters.
    s.stop().await;

    let received = receiver.received.lock().unwrap();
    let trace_id = uid.replace('-', "");

    // Logs: every stored event of the experiment, in order, with its name and attributes.
    let logs: Vec<&LogRecord> = received
        .logs
        .iter()
        .filter(|(service, r)| {
            service == "chaoshub-test"
                && attrs(&r.attributes).get("chaoshub.experiment.uid") == Some(&uid)
        })
        .map(|(_, r)| r)
        .collect();
    let names: Vec<&str> = logs.iter().map(|r| r.event_name.as_str()).collect();
    let stored_names: Vec<&str> = stored["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, stored_names, "exported events differ from the log");
    assert_eq!(
        names,
        [
            "chaoshub.experiment.created",
            "chaoshub.experiment.injecting",
            "chaoshub.target.injected",
            "chaoshub.target.injected",
            "chaoshub.experiment.running",
            "chaoshub.experiment.recovering",
            "chaoshub.target.recovered",
            "chaoshub.target.recovered",
            "chaoshub.experiment.finished",
        ]
    );
    let ids: Vec<String> = logs
        .iter()
        .map(|r| attrs(&r.attributes)["chaoshub.event.id"].clone())
        .collect();
    let stored_ids: Vec<String> = stored["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].to_string())
        .collect();
    assert_eq!(ids, stored_ids);
    for r in &logs {
        let a = attrs(&r.attributes);
        assert_eq!(a["chaoshub.experiment.name"], "web-delay");
        assert_eq!(a["chaoshub.experiment.namespace"], "default");
        assert_eq!(a["chaoshub.experiment.kind"], "NetworkChaos");
        assert_eq!(a["chaoshub.experiment.action"], "delay");
        assert_eq!(a["chaoshub.environment"], "mem");
        if r.event_name.starts_with("chaoshub.target.") {
            assert!(a["chaoshub.target.id"].starts_with("host-"), "{a:?}");
            assert_eq!(a["chaoshub.adapter"], "memory");
        }
        assert!(r.time_unix_nano > 0);
        assert!(
            r.body.is_some(),
            "the event message is the body of {}",
            r.event_name
        );
        assert_eq!(hex(&r.trace_id), trace_id, "log records carry the trace");
        assert_eq!(r.span_id.len(), 8);
    }

    // Traces: one trace (the uid) with a root span, the phases under it, and the adapter
    // calls under their phase.
    let spans: Vec<&Span> = received
        .spans
        .iter()
        .filter(|(service, sp)| service == "chaoshub-test" && hex(&sp.trace_id) == trace_id)
        .map(|(_, sp)| sp)
        .collect();
    let all_traces: std::collections::BTreeSet<String> = received
        .spans
        .iter()
        .map(|(_, sp)| hex(&sp.trace_id))
        .collect();
    assert_eq!(
        all_traces.len(),
        1,
        "one experiment is one trace: {all_traces:?}"
    );
    let roots: Vec<&&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root span");
    let root = roots[0];
    assert_eq!(root.name, "chaoshub.experiment NetworkChaos web-delay");
    assert_eq!(
        attrs(&root.attributes)["chaoshub.experiment.outcome"],
        "finished"
    );
    let by_name = |name: &str| -> Vec<&&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let mut previous_end = 0;
    for phase in ["injecting", "running", "recovering"] {
        let found = by_name(&format!("chaoshub.phase {phase}"));
        assert_eq!(found.len(), 1, "one {phase} span in {:?}", names_of(&spans));
        let span = found[0];
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{phase} is a child of the root"
        );
        assert!(span.start_time_unix_nano >= root.start_time_unix_nano);
        assert!(span.end_time_unix_nano <= root.end_time_unix_nano);
        assert!(
            span.start_time_unix_nano >= previous_end,
            "phases follow each other"
        );
        previous_end = span.end_time_unix_nano;
    }
    let running = by_name("chaoshub.phase running")[0];
    let running_ms = (running.end_time_unix_nano - running.start_time_unix_nano) / 1_000_000;
    assert!(
        (250..2000).contains(&running_ms),
        "the running span lasts the 300ms duration, got {running_ms} ms"
    );
    for (call, phase) in [
        ("chaoshub.adapter.inject", "chaoshub.phase injecting"),
        ("chaoshub.adapter.recover", "chaoshub.phase recovering"),
    ] {
        let parent = by_name(phase)[0];
        let calls = by_name(call);
        assert_eq!(calls.len(), 2, "one {call} span per target");
        for c in calls {
            assert_eq!(c.parent_span_id, parent.span_id, "{call} is under {phase}");
            let a = attrs(&c.attributes);
            assert!(a["chaoshub.target.id"].starts_with("host-"));
            assert_eq!(a["chaoshub.adapter"], "memory");
        }
    }
}

fn names_of(spans: &[&Span]) -> Vec<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

#[tokio::test]
async fn otlp_http_receives_events_in_order_and_one_trace_with_phase_spans() {
    one_experiment_is_exported("http/protobuf", http_receiver().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_receives_events_in_order_and_one_trace_with_phase_spans() {
    one_experiment_is_exported("grpc", grpc_receiver().await).await;
}

#[tokio::test]
async fn nothing_is_exported_without_an_endpoint() {
    let s = Sandbox::start(1).await;
    let hub = s.hub.as_ref().unwrap();
    assert!(
        !hub.hub.engine.telemetry().is_exporting(),
        "no [telemetry] endpoint and no OTEL_EXPORTER_OTLP_* variable: no exporter"
    );
}
