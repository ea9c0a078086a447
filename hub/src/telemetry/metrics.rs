//! Prometheus metrics of the hub (`GET /metrics`, OpenMetrics text).
//!
//! Counters and histograms are updated as things happen (adapter calls, events, API requests);
//! the experiment gauges and the data metrics of running experiments are read from the store at
//! scrape time, so they are right after a restart and cost nothing between scrapes.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chaoshub_schema::api::{ExperimentPhase, TargetPhase};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::fault_values::{fault_values, FaultQuantity};
use crate::store::{Store, StoreError};

/// Content type of the exposition (OpenMetrics text, which Prometheus negotiates).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub adapter: String,
    pub environment: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterLabels {
    pub adapter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

fn confirmation_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

fn lateness_histogram() -> Histogram {
    // Negative values (recovered before the deadline) fall in the first bucket.
    Histogram::new([
        -1.0, 0.0, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

fn http_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The metrics the hub updates as it works.
pub struct HubMetrics {
    registry: Registry,
    pub injections: Family<CallLabels, Counter>,
    pub recoveries: Family<CallLabels, Counter>,
    pub confirmation: Family<AdapterLabels, Histogram, fn() -> Histogram>,
    pub lateness: Family<AdapterLabels, Histogram, fn() -> Histogram>,
    pub http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pub events: Family<EventLabels, Counter>,
}

impl std::fmt::Debug for HubMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubMetrics").finish_non_exhaustive()
    }
}

impl Default for HubMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HubMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chaoshub");
        let injections = Family::<CallLabels, Counter>::default();
        let recoveries = Family::<CallLabels, Counter>::default();
        let confirmation: Family<AdapterLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(confirmation_histogram);
        let lateness: Family<AdapterLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(lateness_histogram);
        let http: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(http_histogram);
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "injections",
            "Injections into targets by adapter and outcome (success: the fault was read back in place)",
            injections.clone(),
        );
        registry.register(
            "recoveries",
            "Fault removals from targets by adapter and outcome",
            recoveries.clone(),
        );
        registry.register_with_unit(
            "injection_confirmation",
            "Time from the inject call until the adapter read the fault back in place",
            Unit::Seconds,
            confirmation.clone(),
        );
        registry.register_with_unit(
            "recovery_lateness",
            "When a fault was removed relative to the experiment's deadline (actual minus deadline)",
            Unit::Seconds,
            lateness.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Duration of REST API requests until the response head",
            Unit::Seconds,
            http.clone(),
        );
        registry.register(
            "events",
            "Events recorded in the event log by name",
            events.clone(),
        );
        Self {
            registry,
            injections,
            recoveries,
            confirmation,
            lateness,
            http,
            events,
        }
    }

    /// The whole exposition: live metrics plus what the store says now.
    pub fn render(&self, store: &dyn Store) -> Result<String, StoreError> {
        let snapshot = StoreSnapshot::read(store)?;
        let mut scrape = Registry::with_prefix("chaoshub");
        scrape.register_collector(Box::new(snapshot));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scrape);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        Ok(out)
    }
}

/// One data-metric sample of a running experiment on one target.
#[derive(Debug, Clone)]
struct FaultSample {
    labels: Vec<(String, String)>,
    value: f64,
}

/// What the store says at scrape time.
#[derive(Debug, Default)]
struct StoreSnapshot {
    /// (phase, kind, environment) → count.
    experiments: BTreeMap<(String, String, String), u64>,
    faults: BTreeMap<FaultQuantity, Vec<FaultSample>>,
    halted: bool,
}

impl StoreSnapshot {
    fn read(store: &dyn Store) -> Result<Self, StoreError> {
        let mut s = StoreSnapshot::default();
        for count in store.count_experiments()? {
            s.experiments
                .insert((count.phase, count.kind, count.environment), count.count);
        }
        for row in store.active_experiments()? {
            if row.status.phase != ExperimentPhase::Running {
                continue;
            }
            let values = fault_values(&row.kind, &row.status.actions, &row.spec);
            if values.is_empty() {
                continue;
            }
            for record in &row.status.targets {
                if record.phase != TargetPhase::Injected {
                    continue;
                }
                let labels = vec![
                    ("namespace".to_string(), row.namespace.clone()),
                    ("experiment".to_string(), row.name.clone()),
                    ("uid".to_string(), row.uid.clone()),
                    ("kind".to_string(), row.kind.clone()),
                    ("action".to_string(), row.status.actions.join(",")),
                    ("environment".to_string(), row.status.environment.clone()),
                    ("adapter".to_string(), row.status.adapter.clone()),
                    ("target".to_string(), record.target.name.clone()),
                    ("target_id".to_string(), record.target.id.clone()),
                ];
                for (q, v) in &values {
                    s.faults.entry(*q).or_default().push(FaultSample {
                        labels: labels.clone(),
                        value: *v,
                    });
                }
            }
        }
        s.halted = store.halt_status()?.halted;
        Ok(s)
    }
}

impl Collector for StoreSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "experiments",
                "Experiments (not archived) by phase, kind and environment",
                None,
                gauge.metric_type(),
            )?;
            for ((phase, kind, environment), count) in &self.experiments {
                let labels = [
                    ("phase", phase.as_str()),
                    ("kind", kind.as_str()),
                    ("environment", environment.as_str()),
                ];
                ConstGauge::new(*count as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        for q in FaultQuantity::ALL {
            let Some(samples) = self.faults.get(&q) else {
                continue;
            };
            let gauge = ConstGauge::new(0f64);
            let mut family =
                encoder.encode_descriptor(q.metric_name(), q.help(), None, gauge.metric_type())?;
            for sample in samples {
                ConstGauge::new(sample.value).encode(family.encode_family(&sample.labels)?)?;
            }
        }
        let halted = ConstGauge::new(self.halted as i64);
        let m = encoder.encode_descriptor(
            "halted",
            "1 while halt-all blocks new experiments",
            None,
            halted.metric_type(),
        )?;
        halted.encode(m)?;
        Ok(())
    }
}

/// Axum middleware: records the duration of every API request by method, route template and
/// status.
pub async fn track_request(
    State(metrics): State<std::sync::Arc<HubMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    metrics
        .http
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The `/metrics` answer.
pub fn metrics_response(metrics: &HubMetrics, store: &dyn Store) -> Response {
    match metrics.render(store) {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "cannot read the store for /metrics");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the store: {e}\n"),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every metric family the hub can expose, by base name.
    fn known_families() -> BTreeSet<String> {
        let mut names: BTreeSet<String> = [
            "chaoshub_injections",
            "chaoshub_recoveries",
            "chaoshub_injection_confirmation_seconds",
            "chaoshub_recovery_lateness_seconds",
            "chaoshub_http_request_duration_seconds",
            "chaoshub_events",
            "chaoshub_experiments",
            "chaoshub_halted",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for q in FaultQuantity::ALL {
            names.insert(format!("chaoshub_{}", q.metric_name()));
        }
        names
    }

    fn referenced(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(pos) = text[i..].find("chaoshub_") {
            let start = i + pos;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            out.insert(text[start..end].to_string());
            i = end;
        }
        out
    }

    fn family_of(sample: &str) -> String {
        for suffix in ["_bucket", "_count", "_sum", "_total"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                return base.to_string();
            }
        }
        sample.to_string()
    }

    #[test]
    fn registered_families_are_the_documented_ones() {
        let m = HubMetrics::new();
        m.injections
            .get_or_create(&CallLabels {
                adapter: "a".into(),
                environment: "e".into(),
                outcome: "success".into(),
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &m.registry).unwrap();
        assert!(text.contains(
            "chaoshub_injections_total{adapter=\"a\",environment=\"e\",outcome=\"success\"} 1"
        ));
        let known = known_families();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(known.contains(name), "{name} is not in the known list");
        }
    }

    #[test]
    fn shipped_dashboard_and_alerts_use_only_exposed_metrics() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let known = known_families();
        for file in [
            "grafana/chaoshub-dashboard.json",
            "prometheus/chaoshub-alerts.yml",
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            if file.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&text).unwrap();
            }
            for name in referenced(&text) {
                if name == "chaoshub_" {
                    continue;
                }
                assert!(
                    known.contains(&family_of(&name)),
                    "{file} uses {name}, which the hub does not expose"
                );
            }
        }
    }
}
