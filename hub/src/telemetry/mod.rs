//! Observability of the hub (DESIGN.md §7): OpenTelemetry export of the event log and of one
//! trace per experiment (`otlp`), Prometheus `/metrics` (`metrics`), and the data values of
//! running faults (`fault_values`).
//!
//! The engine holds one [`Telemetry`] handle and forwards every stored event to it
//! ([`Telemetry::on_events`]) and wraps every adapter call in an [`AdapterCall`]. Prometheus
//! metrics are always kept (atomic counters); OTLP export exists only when an endpoint is
//! configured, and otherwise every OTLP path is a single `None` check.

pub mod config;
pub mod fault_values;
pub mod metrics;
pub mod otlp;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use chaoshub_schema::api::{EventRecord, ExperimentPhase};
use chaoshub_schema::Target;
use opentelemetry::trace::SpanId;
use opentelemetry::KeyValue;

pub use config::{OtlpProtocol, OtlpSettings, TelemetryConfig};
pub use metrics::{metrics_response, track_request, HubMetrics};
pub use otlp::OtlpPipeline;

use crate::events;
use crate::store::ExperimentRow;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Otlp(#[from] otlp::OtlpError),
}

/// The hub's telemetry: Prometheus metrics, and OTLP export when configured. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    metrics: Arc<HubMetrics>,
    otlp: Option<Arc<OtlpPipeline>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp", &self.otlp.as_ref().map(|o| o.protocol.as_str()))
            .finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::metrics_only()
    }
}

/// Which adapter call an [`AdapterCall`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterOp {
    /// `inject` followed by `status` until the fault reads back as in place.
    Inject,
    Recover,
    /// `pause` of a fault the environment holds paused in place (a span, no counter).
    Pause,
    /// `resume` of a fault paused in place (a span, no counter).
    Resume,
}

impl AdapterOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Inject => "inject",
            Self::Recover => "recover",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

impl Telemetry {
    /// Metrics only; nothing is exported.
    pub fn metrics_only() -> Self {
        Self {
            metrics: Arc::new(HubMetrics::new()),
            otlp: None,
        }
    }

    /// From the `[telemetry]` section and the standard `OTEL_*` variables. Must run inside a
    /// Tokio runtime when an endpoint is set.
    pub fn from_config(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let settings = config.resolve().map_err(TelemetryError::Config)?;
        match settings {
            None => Ok(Self::metrics_only()),
            Some(s) => Self::with_otlp(&s),
        }
    }

    pub fn with_otlp(settings: &OtlpSettings) -> Result<Self, TelemetryError> {
        let pipeline = OtlpPipeline::new(settings)?;
        tracing::info!(
            protocol = settings.protocol.as_str(),
            logs = settings
                .logs_endpoint
                .as_deref()
                .unwrap_or("from OTEL_* variables"),
            traces = settings
                .traces_endpoint
                .as_deref()
                .unwrap_or("from OTEL_* variables"),
            "exporting events and experiment traces over otlp"
        );
        Ok(Self {
            metrics: Arc::new(HubMetrics::new()),
            otlp: Some(Arc::new(pipeline)),
        })
    }

    pub fn metrics(&self) -> &Arc<HubMetrics> {
        &self.metrics
    }

    /// Whether OTLP export is on.
    pub fn is_exporting(&self) -> bool {
        self.otlp.is_some()
    }

    /// Everything that follows from events just stored. `row` is the experiment as stored
    /// with them, when the engine has it (recovery lateness needs its deadline).
    pub fn on_events(&self, row: Option<&ExperimentRow>, records: &[EventRecord]) {
        for e in records {
            self.metrics
                .events
                .get_or_create(&metrics::EventLabels {
                    name: e.name.clone(),
                })
                .inc();
            if e.name == events::TARGET_RECOVERED {
                if let Some(row) = row {
                    self.observe_lateness(row, e);
                }
            }
            if let Some(otlp) = &self.otlp {
                otlp.on_event(e);
            }
        }
    }

    /// An audit entry just stored: exported as an OTLP log record when exporting.
    pub fn on_audit(&self, record: &chaoshub_schema::auth::AuditRecord) {
        if let Some(otlp) = &self.otlp {
            otlp.on_audit(record);
        }
    }

    /// Lateness is measured only for removals the deadline called for (the experiment ends
    /// as Finished), not for pauses, stops or rollbacks.
    fn observe_lateness(&self, row: &ExperimentRow, e: &EventRecord) {
        if row.status.next_phase != Some(ExperimentPhase::Finished) {
            return;
        }
        let (Some(deadline), Ok(at)) = (
            row.status.deadline.as_deref().and_then(crate::time::parse),
            chrono::DateTime::parse_from_rfc3339(&e.time),
        ) else {
            return;
        };
        let late = (at.with_timezone(&chrono::Utc) - deadline).num_microseconds();
        if let Some(us) = late {
            self.metrics
                .lateness
                .get_or_create(&metrics::AdapterLabels {
                    adapter: row.status.adapter.clone(),
                })
                .observe(us as f64 / 1e6);
        }
    }

    /// The context adapter calls of one experiment share (cheap to clone into each task).
    pub fn adapter_calls(&self, row: &ExperimentRow) -> AdapterCalls {
        AdapterCalls {
            inner: Arc::new(CallsInner {
                telemetry: self.clone(),
                uid: row.uid.clone(),
                adapter: row.status.adapter.clone(),
                environment: row.status.environment.clone(),
            }),
        }
    }

    /// Exports what is queued now (blocking; call from a blocking context).
    pub fn flush(&self) {
        if let Some(otlp) = &self.otlp {
            otlp.flush();
        }
    }

    /// Exports what is queued and stops exporting (blocking; call from a blocking context).
    pub fn shutdown(&self) {
        if let Some(otlp) = &self.otlp {
            otlp.shutdown();
        }
    }
}

struct CallsInner {
    telemetry: Telemetry,
    uid: String,
    adapter: String,
    environment: String,
}

/// Adapter calls of one experiment; see [`Telemetry::adapter_calls`].
#[derive(Clone)]
pub struct AdapterCalls {
    inner: Arc<CallsInner>,
}

impl AdapterCalls {
    /// Starts measuring one adapter call on one target.
    pub fn start(&self, op: AdapterOp, target: &Target, injection_id: &str) -> AdapterCall {
        let span = self.inner.telemetry.otlp.as_ref().map(|otlp| PendingSpan {
            parent: otlp.current_span(&self.inner.uid),
            start: SystemTime::now(),
            target_id: target.id.clone(),
            target_name: target.name.clone(),
            injection_id: injection_id.to_string(),
        });
        AdapterCall {
            calls: self.clone(),
            op,
            started: Instant::now(),
            span,
        }
    }
}

struct PendingSpan {
    parent: SpanId,
    start: SystemTime,
    target_id: String,
    target_name: String,
    injection_id: String,
}

/// One adapter call being measured; [`finish`](AdapterCall::finish) records it.
pub struct AdapterCall {
    calls: AdapterCalls,
    op: AdapterOp,
    started: Instant,
    span: Option<PendingSpan>,
}

impl AdapterCall {
    /// Records the outcome: counters, the confirmation latency of a successful injection, and
    /// (when exporting) a span under the experiment's current phase.
    pub fn finish(self, error: Option<&str>) {
        let inner = &self.calls.inner;
        let metrics = &inner.telemetry.metrics;
        let labels = metrics::CallLabels {
            adapter: inner.adapter.clone(),
            environment: inner.environment.clone(),
            outcome: if error.is_none() {
                "success"
            } else {
                "failure"
            }
            .to_string(),
        };
        match self.op {
            AdapterOp::Inject => {
                metrics.injections.get_or_create(&labels).inc();
                if error.is_none() {
                    metrics
                        .confirmation
                        .get_or_create(&metrics::AdapterLabels {
                            adapter: inner.adapter.clone(),
                        })
                        .observe(self.started.elapsed().as_secs_f64());
                }
            }
            AdapterOp::Recover => {
                metrics.recoveries.get_or_create(&labels).inc();
            }
            AdapterOp::Pause | AdapterOp::Resume => {}
        }
        if let (Some(otlp), Some(span)) = (&inner.telemetry.otlp, self.span) {
            let mut attrs = vec![
                KeyValue::new("chaoshub.experiment.uid", inner.uid.clone()),
                KeyValue::new("chaoshub.adapter", inner.adapter.clone()),
                KeyValue::new("chaoshub.environment", inner.environment.clone()),
                KeyValue::new("chaoshub.target.id", span.target_id),
                KeyValue::new("chaoshub.target.name", span.target_name),
                KeyValue::new("chaoshub.injection.id", span.injection_id),
            ];
            if let Some(e) = error {
                attrs.push(KeyValue::new("error", e.to_string()));
            }
            otlp.adapter_span(
                &inner.uid,
                span.parent,
                self.op.as_str(),
                attrs,
                span.start,
                SystemTime::now(),
                error,
            );
        }
    }
}
