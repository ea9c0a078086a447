//! OTLP export: every stored event becomes a log record with its stable `event.name`, and each
//! experiment becomes one trace.
//!
//! The trace is derived from the event stream, so it needs no state beyond what the events
//! carry: the trace id is the experiment's UID (a UUID is 128 bits, like a trace id), the root
//! span id is derived from it, and each phase (`injecting`, `running`, `paused`, `recovering`)
//! is a child span that starts at the event opening the phase and ends at the event closing it.
//! Spans are built when they end, with their real start and end times, so nothing is held open
//! across an await. Adapter calls (inject + read-back, recover) are children of the phase span
//! in force when they start. Log records carry the trace context of that phase, so a backend
//! links every event to its place in the trace.
//!
//! A hub restart loses the in-memory phase bookkeeping: the trace id stays the same (it is the
//! UID), the phase that was open is not exported, and the root span of such an experiment
//! starts at the first event the new hub process saw.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use chaoshub_schema::api::EventRecord;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{
    LogExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider, Span as SdkSpan,
};
use opentelemetry_sdk::Resource;

use super::config::{OtlpProtocol, OtlpSettings};
use crate::events;

/// Name of the instrumentation scope of every exported record and span.
pub const SCOPE: &str = "chaoshub";

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("cannot build the OTLP {signal} exporter ({protocol}): {message}")]
    Exporter {
        signal: &'static str,
        protocol: &'static str,
        message: String,
    },
}

struct OpenPhase {
    name: &'static str,
    span_id: SpanId,
    start: SystemTime,
}

struct ExperimentTrace {
    root_start: SystemTime,
    phase: Option<OpenPhase>,
}

thread_local! {
    /// The ids of the span being built on this thread (`OtlpPipeline::build_span`).
    static PRESET_IDS: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// The tracer's id generator. The hub's trace and root/phase span ids are derived from the
/// experiment (see `trace_id_of`, `root_span_id_of`) or chosen before the span is built, and
/// since opentelemetry 0.32 a `SpanBuilder` cannot carry ids: the SDK draws them from its id
/// generator while it builds the span, on the calling thread. So this one hands out the ids
/// `build_span` set for that call, and random ones for anything else.
#[derive(Debug, Default)]
struct PresetIds {
    random: RandomIdGenerator,
}

impl IdGenerator for PresetIds {
    fn new_trace_id(&self) -> TraceId {
        let (trace_id, span_id) = PRESET_IDS.get();
        PRESET_IDS.set((None, span_id));
        trace_id.unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        let (trace_id, span_id) = PRESET_IDS.get();
        PRESET_IDS.set((trace_id, None));
        span_id.unwrap_or_else(|| self.random.new_span_id())
    }
}

/// The OTLP log and trace pipelines with the per-experiment phase bookkeeping.
pub struct OtlpPipeline {
    logger_provider: SdkLoggerProvider,
    tracer_provider: SdkTracerProvider,
    logger: SdkLogger,
    tracer: SdkTracer,
    traces: Mutex<HashMap<String, ExperimentTrace>>,
    pub protocol: OtlpProtocol,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The trace id of an experiment: its UUID, or a hash of any other UID.
pub fn trace_id_of(uid: &str) -> TraceId {
    match uuid::Uuid::parse_str(uid) {
        Ok(u) if !u.is_nil() => TraceId::from_bytes(*u.as_bytes()),
        _ => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            uid.hash(&mut h);
            let a = h.finish();
            "trace".hash(&mut h);
            let b = h.finish();
            TraceId::from(((a as u128) << 64) | (b as u128) | 1)
        }
    }
}

/// The span id of an experiment's root span, derived from its UID so every part of the hub
/// (and a restarted hub) agrees on it.
pub fn root_span_id_of(uid: &str) -> SpanId {
    let bytes = trace_id_of(uid).to_bytes();
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = bytes[i] ^ bytes[i + 8].rotate_left(3);
    }
    if id == [0u8; 8] {
        id[7] = 1;
    }
    SpanId::from_bytes(id)
}

fn random_span_id() -> SpanId {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return SpanId::from(v);
        }
    }
}

fn remote_parent(trace_id: TraceId, span_id: SpanId) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// Event names as `&'static str` (the log record API wants one). Names outside the known set
/// are interned once each; there are only as many as the code defines.
fn static_event_name(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        events::EXPERIMENT_CREATED,
        events::EXPERIMENT_INJECTING,
        events::EXPERIMENT_RUNNING,
        events::EXPERIMENT_PAUSED,
        events::EXPERIMENT_RESUMED,
        events::EXPERIMENT_RECOVERING,
        events::EXPERIMENT_FINISHED,
        events::EXPERIMENT_FAILED,
        events::EXPERIMENT_ABORTED,
        events::EXPERIMENT_ARCHIVED,
        events::EXPERIMENT_PAUSE_REQUESTED,
        events::EXPERIMENT_RESUME_REQUESTED,
        events::EXPERIMENT_STOP_REQUESTED,
        events::TARGET_INJECTED,
        events::TARGET_RECOVERED,
        events::TARGET_FAILED,
        events::TARGET_DRIFTED,
        events::TARGET_REINJECTED,
        events::HALT_SET,
        events::HALT_RELEASED,
        events::ENVIRONMENT_REGISTERED,
        events::ENVIRONMENT_DELETED,
        events::HUB_STARTED,
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == name) {
        return k;
    }
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = lock(INTERNED.get_or_init(Default::default));
    if let Some(k) = set.get(name) {
        return k;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

fn event_time(e: &EventRecord) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(&e.time)
        .map(SystemTime::from)
        .unwrap_or_else(|_| SystemTime::now())
}

/// The phase an event opens, if it opens one.
fn phase_opened_by(name: &str) -> Option<&'static str> {
    match name {
        events::EXPERIMENT_INJECTING => Some("injecting"),
        events::EXPERIMENT_RUNNING => Some("running"),
        events::EXPERIMENT_PAUSED => Some("paused"),
        events::EXPERIMENT_RECOVERING => Some("recovering"),
        _ => None,
    }
}

fn is_terminal(name: &str) -> bool {
    matches!(
        name,
        events::EXPERIMENT_FINISHED | events::EXPERIMENT_FAILED | events::EXPERIMENT_ABORTED
    )
}

/// Events that change the phase (and so close the open phase span).
fn is_transition(name: &str) -> bool {
    phase_opened_by(name).is_some() || is_terminal(name) || name == events::EXPERIMENT_RESUMED
}

fn experiment_attributes(e: &EventRecord, uid: &str) -> Vec<KeyValue> {
    let mut attrs = vec![KeyValue::new("chaoshub.experiment.uid", uid.to_string())];
    if let Some(env) = &e.environment {
        attrs.push(KeyValue::new("chaoshub.environment", env.clone()));
    }
    for key in [
        "chaoshub.experiment.name",
        "chaoshub.experiment.namespace",
        "chaoshub.experiment.kind",
        "chaoshub.experiment.action",
        "chaoshub.adapter",
    ] {
        if let Some(v) = e.attributes.get(key) {
            attrs.push(KeyValue::new(key, v.clone()));
        }
    }
    attrs
}

impl OtlpPipeline {
    /// Builds both exporters. Must run inside a Tokio runtime (the gRPC channel spawns its
    /// connection task there); exports themselves run on the SDK's own background threads.
    pub fn new(settings: &OtlpSettings) -> Result<Self, OtlpError> {
        // The HTTP exporter builds its own reqwest client, which takes the process's rustls
        // provider.
        chaoshub_adapters::install_crypto_provider();
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let timeout = settings.timeout_ms.map(Duration::from_millis);
        let headers: HashMap<String, String> = settings
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let protocol = settings.protocol;
        let err = |signal: &'static str| {
            move |e: opentelemetry_otlp::ExporterBuildError| OtlpError::Exporter {
                signal,
                protocol: protocol.as_str(),
                message: e.to_string(),
            }
        };
        let (log_exporter, span_exporter) = match protocol {
            OtlpProtocol::HttpProtobuf => {
                let mut logs = LogExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary);
                let mut spans = SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary);
                if let Some(e) = &settings.logs_endpoint {
                    logs = logs.with_endpoint(e.clone());
                }
                if let Some(e) = &settings.traces_endpoint {
                    spans = spans.with_endpoint(e.clone());
                }
                if let Some(t) = timeout {
                    logs = logs.with_timeout(t);
                    spans = spans.with_timeout(t);
                }
                if !headers.is_empty() {
                    logs = logs.with_headers(headers.clone());
                    spans = spans.with_headers(headers);
                }
                (
                    logs.build().map_err(err("logs"))?,
                    spans.build().map_err(err("traces"))?,
                )
            }
            OtlpProtocol::Grpc => {
                let metadata = || {
                    let mut headers = axum::http::HeaderMap::new();
                    for (k, v) in &settings.headers {
                        if let (Ok(key), Ok(value)) = (
                            axum::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                            axum::http::HeaderValue::from_str(v),
                        ) {
                            headers.insert(key, value);
                        }
                    }
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers)
                };
                let mut logs = LogExporter::builder()
                    .with_tonic()
                    .with_protocol(Protocol::Grpc);
                let mut spans = SpanExporter::builder()
                    .with_tonic()
                    .with_protocol(Protocol::Grpc);
                if let Some(e) = &settings.logs_endpoint {
                    logs = logs.with_endpoint(e.clone());
                }
                if let Some(e) = &settings.traces_endpoint {
                    spans = spans.with_endpoint(e.clone());
                }
                if let Some(t) = timeout {
                    logs = logs.with_timeout(t);
                    spans = spans.with_timeout(t);
                }
                if !settings.headers.is_empty() {
                    logs = logs.with_metadata(metadata());
                    spans = spans.with_metadata(metadata());
                }
                (
                    logs.build().map_err(err("logs"))?,
                    spans.build().map_err(err("traces"))?,
                )
            }
        };
        let logger_provider = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(log_exporter)
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_id_generator(PresetIds::default())
            .with_batch_exporter(span_exporter)
            .build();
        let logger = logger_provider.logger(SCOPE);
        let tracer = tracer_provider.tracer(SCOPE);
        Ok(Self {
            logger_provider,
            tracer_provider,
            logger,
            tracer,
            traces: Mutex::new(HashMap::new()),
            protocol,
        })
    }

    /// Exports one stored event as a log record, and advances the experiment's trace.
    pub fn on_event(&self, e: &EventRecord) {
        let at = event_time(e);
        let context = e
            .experiment_uid
            .as_deref()
            .map(|uid| (uid, self.advance_trace(uid, e, at)));
        let mut record = self.logger.create_log_record();
        record.set_event_name(static_event_name(&e.name));
        record.set_timestamp(at);
        record.set_observed_timestamp(SystemTime::now());
        let failed = e.name == events::EXPERIMENT_FAILED || e.name == events::TARGET_FAILED;
        if failed {
            record.set_severity_number(Severity::Warn);
            record.set_severity_text("WARN");
        } else {
            record.set_severity_number(Severity::Info);
            record.set_severity_text("INFO");
        }
        record.set_body(AnyValue::from(e.message.clone()));
        record.add_attribute("chaoshub.event.id", e.id);
        if let Some(uid) = &e.experiment_uid {
            record.add_attribute("chaoshub.experiment.uid", uid.clone());
        }
        if let Some(env) = &e.environment {
            record.add_attribute("chaoshub.environment", env.clone());
        }
        if let Some(target) = &e.target {
            record.add_attribute("chaoshub.target.id", target.clone());
        }
        for (k, v) in &e.attributes {
            if k != "chaoshub.target.id" {
                record.add_attribute(k.clone(), v.clone());
            }
        }
        if let Some((uid, span_id)) = context {
            record.set_trace_context(trace_id_of(uid), span_id, Some(TraceFlags::SAMPLED));
        }
        self.logger.emit(record);
    }

    /// One audit entry as a log record named `chaoshub.audit.<outcome>`.
    pub fn on_audit(&self, a: &chaoshub_schema::auth::AuditRecord) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(match a.outcome.as_str() {
            "success" => "chaoshub.audit.success",
            "denied" => "chaoshub.audit.denied",
            _ => "chaoshub.audit.failure",
        });
        record.set_timestamp(
            crate::time::parse(&a.time)
                .map(SystemTime::from)
                .unwrap_or_else(SystemTime::now),
        );
        record.set_observed_timestamp(SystemTime::now());
        if a.outcome == "success" {
            record.set_severity_number(Severity::Info);
            record.set_severity_text("INFO");
        } else {
            record.set_severity_number(Severity::Warn);
            record.set_severity_text("WARN");
        }
        record.set_body(AnyValue::from(format!(
            "{} {} by {}: {}",
            a.method, a.path, a.principal, a.status
        )));
        record.add_attribute("chaoshub.audit.id", a.id);
        record.add_attribute("chaoshub.audit.principal", a.principal.clone());
        if let Some(role) = a.role {
            record.add_attribute("chaoshub.audit.role", role.as_str());
        }
        record.add_attribute("chaoshub.audit.source", a.source.clone());
        record.add_attribute("chaoshub.audit.method", a.method.clone());
        record.add_attribute("chaoshub.audit.route", a.route.clone());
        if let Some(object) = &a.object {
            record.add_attribute("chaoshub.audit.object", object.clone());
        }
        record.add_attribute("chaoshub.audit.outcome", a.outcome.clone());
        record.add_attribute("chaoshub.audit.status", i64::from(a.status));
        self.logger.emit(record);
    }

    /// Closes and opens phase spans as the event says; returns the span the event belongs to.
    fn advance_trace(&self, uid: &str, e: &EventRecord, at: SystemTime) -> SpanId {
        let root = root_span_id_of(uid);
        let mut traces = lock(&self.traces);
        if !is_transition(&e.name) {
            return traces
                .get(uid)
                .and_then(|t| t.phase.as_ref().map(|p| p.span_id))
                .unwrap_or(root);
        }
        let trace = traces.entry(uid.to_string()).or_insert(ExperimentTrace {
            root_start: at,
            phase: None,
        });
        if let Some(phase) = trace.phase.take() {
            self.end_phase(uid, e, phase, at);
        }
        if is_terminal(&e.name) {
            let start = trace.root_start;
            traces.remove(uid);
            drop(traces);
            self.end_root(uid, e, start, at);
            return root;
        }
        let opened = phase_opened_by(&e.name).map(|name| OpenPhase {
            name,
            span_id: random_span_id(),
            start: at,
        });
        let id = opened.as_ref().map(|p| p.span_id).unwrap_or(root);
        trace.phase = opened;
        id
    }

    fn end_phase(&self, uid: &str, closing: &EventRecord, phase: OpenPhase, at: SystemTime) {
        let mut attrs = experiment_attributes(closing, uid);
        attrs.push(KeyValue::new("chaoshub.phase", phase.name));
        attrs.push(KeyValue::new(
            "chaoshub.phase.ended_by",
            closing.name.clone(),
        ));
        let builder = self
            .tracer
            .span_builder(format!("chaoshub.phase {}", phase.name))
            .with_kind(SpanKind::Internal)
            .with_start_time(phase.start)
            .with_attributes(attrs);
        let mut span = self.build_span(
            builder,
            &remote_parent(trace_id_of(uid), root_span_id_of(uid)),
            None,
            Some(phase.span_id),
        );
        if closing.name == events::EXPERIMENT_FAILED {
            span.set_status(Status::error(closing.message.clone()));
        }
        span.end_with_timestamp(at.max(phase.start));
    }

    fn end_root(&self, uid: &str, last: &EventRecord, start: SystemTime, at: SystemTime) {
        let mut attrs = experiment_attributes(last, uid);
        let outcome = last.name.rsplit('.').next().unwrap_or_default().to_string();
        attrs.push(KeyValue::new("chaoshub.experiment.outcome", outcome));
        let name = match (
            last.attributes.get("chaoshub.experiment.kind"),
            last.attributes.get("chaoshub.experiment.name"),
        ) {
            (Some(kind), Some(name)) => format!("chaoshub.experiment {kind} {name}"),
            _ => "chaoshub.experiment".to_string(),
        };
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attrs);
        let mut span = self.build_span(
            builder,
            &Context::new(),
            Some(trace_id_of(uid)),
            Some(root_span_id_of(uid)),
        );
        if last.name == events::EXPERIMENT_FAILED {
            span.set_status(Status::error(last.message.clone()));
        }
        span.end_with_timestamp(at.max(start));
    }

    /// Builds a span under `parent` with the given ids (random where `None`; a span with a valid
    /// parent takes the parent's trace id whatever is given) through `PresetIds`.
    fn build_span(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent: &Context,
        trace_id: Option<TraceId>,
        span_id: Option<SpanId>,
    ) -> SdkSpan {
        PRESET_IDS.set((trace_id, span_id));
        let span = self.tracer.build_with_context(builder, parent);
        PRESET_IDS.set((None, None));
        span
    }

    /// The span an adapter call starting now belongs under: the open phase, else the root.
    pub fn current_span(&self, uid: &str) -> SpanId {
        lock(&self.traces)
            .get(uid)
            .and_then(|t| t.phase.as_ref().map(|p| p.span_id))
            .unwrap_or_else(|| root_span_id_of(uid))
    }

    /// Exports one finished adapter call as a span.
    #[allow(clippy::too_many_arguments)]
    pub fn adapter_span(
        &self,
        uid: &str,
        parent: SpanId,
        operation: &'static str,
        attrs: Vec<KeyValue>,
        start: SystemTime,
        end: SystemTime,
        error: Option<&str>,
    ) {
        let builder = self
            .tracer
            .span_builder(format!("chaoshub.adapter.{operation}"))
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attrs);
        let mut span = self.build_span(
            builder,
            &remote_parent(trace_id_of(uid), parent),
            None,
            None,
        );
        if let Some(e) = error {
            span.set_status(Status::error(e.to_string()));
        }
        span.end_with_timestamp(end.max(start));
    }

    /// Exports what is queued and stops both pipelines. Blocking.
    pub fn shutdown(&self) {
        if let Err(e) = self.logger_provider.shutdown() {
            tracing::warn!(error = %e, "otlp log export did not shut down cleanly");
        }
        if let Err(e) = self.tracer_provider.shutdown() {
            tracing::warn!(error = %e, "otlp trace export did not shut down cleanly");
        }
    }

    /// Exports what is queued now. Blocking.
    pub fn flush(&self) {
        let _ = self.logger_provider.force_flush();
        let _ = self.tracer_provider.force_flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_the_uid() {
        let uid = "6f1c3a52-8f0e-4d7e-9d1a-2b3c4d5e6f70";
        assert_eq!(
            format!("{}", trace_id_of(uid)),
            "6f1c3a528f0e4d7e9d1a2b3c4d5e6f70"
        );
        assert_eq!(root_span_id_of(uid), root_span_id_of(uid));
        assert_ne!(root_span_id_of(uid), SpanId::INVALID);
        assert_ne!(trace_id_of("not-a-uuid"), TraceId::INVALID);
    }

    #[test]
    fn unknown_event_names_are_interned_once() {
        let a = static_event_name("chaoshub.agent.registered");
        let b = static_event_name("chaoshub.agent.registered");
        assert!(std::ptr::eq(a, b));
        assert_eq!(
            static_event_name(events::EXPERIMENT_RUNNING),
            events::EXPERIMENT_RUNNING
        );
    }
}
