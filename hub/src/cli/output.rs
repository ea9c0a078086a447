//! Rendering for humans (aligned tables, `describe` pages) and for scripts (JSON, YAML).
//!
//! Every function here is pure: it takes the objects and the current time and returns text, so
//! the exact output is covered by unit tests.

use std::collections::BTreeMap;
use std::io::Write;

use chaoshub_schema::api::{
    AdapterInfo, EnvironmentObject, EventRecord, ExperimentObject, HaltStatus, TargetPhase,
    TargetRecord,
};
use chaoshub_schema::Target;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::client::CliError;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// Pretty-printed JSON; listings are `{"items": [...]}`.
    Json,
    /// YAML; listings are `items: [...]`.
    Yaml,
}

/// Writes to stdout, treating a closed pipe (`chaoshub get experiments | head -1`) as success
/// rather than panicking the way `print!` does.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Serialises a value as JSON or YAML, ending with a newline.
pub fn render_structured<T: Serialize + ?Sized>(
    format: OutputFormat,
    value: &T,
) -> Result<String, CliError> {
    let mut text = match format {
        OutputFormat::Json | OutputFormat::Table => serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Protocol(format!("cannot render JSON: {e}")))?,
        OutputFormat::Yaml => chaoshub_schema::document::to_yaml(value)
            .map_err(|e| CliError::Protocol(format!("cannot render YAML: {e}")))?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A listing as scripts see it: the same `items` envelope as the API's pages.
#[derive(Serialize)]
pub struct ItemList<'a, T> {
    pub items: &'a [T],
}

/// Columns aligned on the widest cell, three spaces apart, like kubectl. A cell may hold several
/// lines; its row is then as tall as its tallest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

const COLUMN_GAP: &str = "   ";

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                for line in cell.lines() {
                    widths[i] = widths[i].max(width(line));
                }
            }
        }
        let mut out = String::new();
        render_row(&mut out, &self.headers, &widths);
        for row in &self.rows {
            render_row(&mut out, row, &widths);
        }
        out
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn render_row(out: &mut String, row: &[String], widths: &[usize]) {
    let cells: Vec<Vec<&str>> = row
        .iter()
        .map(|c| {
            let lines: Vec<&str> = c.lines().collect();
            if lines.is_empty() {
                vec![""]
            } else {
                lines
            }
        })
        .collect();
    let height = cells.iter().map(Vec::len).max().unwrap_or(1);
    for line_index in 0..height {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let text = cell.get(line_index).copied().unwrap_or("");
            if i > 0 {
                line.push_str(COLUMN_GAP);
            }
            line.push_str(text);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(width(text));
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Formats the time since `timestamp` (RFC 3339) the way kubectl's AGE column does: two units
/// while the smaller one still carries information (`5m30s`, `3h12m`, `2d4h`), one after.
pub fn format_age(timestamp: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(then) => human_duration((now - then.with_timezone(&Utc)).num_seconds()),
        Err(_) => "<unknown>".to_string(),
    }
}

/// A non-negative number of seconds in kubectl's short form; negative values (a clock ahead of
/// ours) read as `0s`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (minute, hour, day, year) = (60, 3600, 86_400, 365 * 86_400);
    if s < 2 * minute {
        format!("{s}s")
    } else if s < 10 * minute {
        let rem = s % minute;
        if rem == 0 {
            format!("{}m", s / minute)
        } else {
            format!("{}m{}s", s / minute, rem)
        }
    } else if s < 3 * hour {
        format!("{}m", s / minute)
    } else if s < 8 * hour {
        let rem = (s % hour) / minute;
        if rem == 0 {
            format!("{}h", s / hour)
        } else {
            format!("{}h{}m", s / hour, rem)
        }
    } else if s < 2 * day {
        format!("{}h", s / hour)
    } else if s < 8 * day {
        let rem = (s % day) / hour;
        if rem == 0 {
            format!("{}d", s / day)
        } else {
            format!("{}d{}h", s / day, rem)
        }
    } else if s < year {
        format!("{}d", s / day)
    } else {
        let rem = (s % year) / day;
        if rem == 0 {
            format!("{}y", s / year)
        } else {
            format!("{}y{}d", s / year, rem)
        }
    }
}

/// `k=v,k2=v2`, or `<none>`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn or_none(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "<none>".to_string(),
    }
}

/// `networkchaos/web-delay`: how the CLI names an object in one-line messages.
pub fn object_ref(kind: &str, name: &str) -> String {
    format!("{}/{}", kind.to_ascii_lowercase(), name)
}

/// The reference of an experiment as the hub returned it.
pub fn experiment_ref(object: &ExperimentObject) -> String {
    let name = object
        .metadata
        .name
        .as_deref()
        .or(object.metadata.uid.as_deref())
        .unwrap_or("?");
    object_ref(&object.kind, name)
}

/// `injected/total`.
pub fn target_counts(targets: &[TargetRecord]) -> String {
    let injected = targets
        .iter()
        .filter(|t| t.phase == TargetPhase::Injected)
        .count();
    format!("{injected}/{}", targets.len())
}

pub fn experiments_table(items: &[ExperimentObject], now: DateTime<Utc>) -> Table {
    let mut table = Table::new(&[
        "NAME",
        "NAMESPACE",
        "KIND",
        "ACTION",
        "ENV",
        "PHASE",
        "TARGETS",
        "AGE",
        "UID",
    ]);
    for e in items {
        let status = &e.status;
        table.push(vec![
            or_none(e.metadata.name.as_deref()),
            e.metadata.namespace_or_default().to_string(),
            e.kind.clone(),
            if status.actions.is_empty() {
                "-".into()
            } else {
                status.actions.join(",")
            },
            or_none(Some(&status.environment)),
            status.phase.to_string(),
            target_counts(&status.targets),
            format_age(&status.created_at, now),
            or_none(e.metadata.uid.as_deref()),
        ]);
    }
    table
}

pub fn environments_table(items: &[EnvironmentObject]) -> Table {
    let mut table = Table::new(&["NAME", "ADAPTER", "ENDPOINT", "REACHABLE", "LABELS"]);
    for e in items {
        // The adapter's last check (`status`); `<none>` where it reports none or has not yet.
        let reachable = e
            .status
            .as_ref()
            .map(|s| match (s.reachable, s.problems.len()) {
                (false, _) => "no",
                (true, 0) => "yes",
                (true, _) => "yes, with problems",
            });
        table.push(vec![
            or_none(e.metadata.name.as_deref()),
            e.spec.adapter.clone(),
            or_none(e.spec.endpoint.as_deref()),
            or_none(reachable),
            format_labels(&e.spec.labels),
        ]);
    }
    table
}

/// Widest line of the CAPABILITIES column before it wraps.
const CAPABILITY_WIDTH: usize = 48;

/// `Kind: action, action` per kind, wrapped at [`CAPABILITY_WIDTH`] columns.
pub fn format_capabilities(adapter: &AdapterInfo) -> String {
    let mut by_kind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &adapter.capabilities {
        by_kind.entry(&c.kind).or_default().push(&c.action);
    }
    let mut lines = Vec::new();
    for (kind, actions) in by_kind {
        let mut line = format!("{kind}:");
        for (i, action) in actions.iter().enumerate() {
            let piece = if i + 1 < actions.len() {
                format!("{action},")
            } else {
                action.to_string()
            };
            if width(&line) + 1 + width(&piece) > CAPABILITY_WIDTH && line.contains(' ') {
                lines.push(line);
                line = format!("  {piece}");
            } else {
                line.push(' ');
                line.push_str(&piece);
            }
        }
        lines.push(line);
    }
    if adapter.dynamic_capabilities {
        lines.push("(more per environment)".to_string());
    }
    if lines.is_empty() {
        return "<none>".to_string();
    }
    lines.join("\n")
}

pub fn adapters_table(items: &[AdapterInfo]) -> Table {
    let mut table = Table::new(&["TYPE", "CAPABILITIES", "DESCRIPTION"]);
    for a in items {
        table.push(vec![
            a.adapter_type.clone(),
            format_capabilities(a),
            a.description.clone(),
        ]);
    }
    table
}

/// `adapters --matrix`: one line per row, one column per adapter, then the refusal messages
/// (numbered, each once) so the table stays narrow.
pub fn conformance_table(matrix: &chaoshub_schema::api::ConformanceMatrix) -> String {
    let mut headers = vec!["ROW"];
    headers.extend(matrix.adapters.iter().map(String::as_str));
    let mut table = Table::new(&headers);
    let mut notes: Vec<String> = Vec::new();
    for row in &matrix.rows {
        let mut cells = vec![row.id.clone()];
        for a in &matrix.adapters {
            let text = match row.cells.get(a) {
                Some(c) if c.state == "supported" && c.measured.is_some() => "✓".to_string(),
                Some(c) if c.state == "supported" => "✓d".to_string(),
                Some(c) => {
                    let message = c.message.clone().unwrap_or_default();
                    let n = match notes.iter().position(|n| *n == message) {
                        Some(i) => i + 1,
                        None => {
                            notes.push(message);
                            notes.len()
                        }
                    };
                    let mark = if c.state == "refused" {
                        "✗"
                    } else {
                        c.state.as_str()
                    };
                    format!("{mark}{n}")
                }
                None => "-".to_string(),
            };
            cells.push(text);
        }
        table.push(cells);
    }
    let mut out = table.render();
    out.push_str("\n✓ measured on the real far side   ✓d declared (accepted, no measuring test)\n");
    for (i, n) in notes.iter().enumerate() {
        out.push_str(&format!("{}. {n}\n", i + 1));
    }
    out
}

pub fn targets_table(items: &[Target]) -> Table {
    let mut table = Table::new(&["NAME", "ID", "KIND", "NAMESPACE", "LABELS"]);
    for t in items {
        table.push(vec![
            t.name.clone(),
            t.id.clone(),
            t.kind.clone(),
            or_none(t.namespace.as_deref()),
            format_labels(&t.labels),
        ]);
    }
    table
}

pub const EVENT_HEADERS: [&str; 6] = ["ID", "TIME", "EVENT", "EXPERIMENT", "TARGET", "MESSAGE"];

pub fn event_row(e: &EventRecord) -> Vec<String> {
    vec![
        e.id.to_string(),
        e.time.clone(),
        e.name.clone(),
        e.experiment_uid.clone().unwrap_or_else(|| "-".into()),
        e.target.clone().unwrap_or_else(|| "-".into()),
        e.message.clone(),
    ]
}

pub fn events_table(items: &[EventRecord]) -> Table {
    let mut table = Table::new(&EVENT_HEADERS);
    for e in items {
        table.push(event_row(e));
    }
    table
}

/// Column widths for events printed one at a time (`events --follow`), where later rows cannot
/// widen earlier ones: wide enough for an RFC 3339 time, a typical event name and a UUID.
pub const EVENT_STREAM_WIDTHS: [usize; 6] = [6, 24, 36, 36, 16, 0];

/// One line of the streamed events view; a cell longer than its column pushes the rest right.
pub fn event_stream_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push_str(COLUMN_GAP);
        }
        line.push_str(cell);
        let pad = EVENT_STREAM_WIDTHS
            .get(i)
            .copied()
            .unwrap_or(0)
            .saturating_sub(width(cell));
        line.extend(std::iter::repeat_n(' ', pad));
    }
    let mut line = line.trim_end().to_string();
    line.push('\n');
    line
}

fn timestamp_line(value: Option<&str>, now: DateTime<Utc>) -> String {
    match value {
        Some(t) if !t.is_empty() => match DateTime::parse_from_rfc3339(t) {
            Ok(parsed) => {
                let delta = (now - parsed.with_timezone(&Utc)).num_seconds();
                if delta >= 0 {
                    format!("{t} ({} ago)", human_duration(delta))
                } else {
                    format!("{t} (in {})", human_duration(-delta))
                }
            }
            Err(_) => t.to_string(),
        },
        _ => "<none>".to_string(),
    }
}

/// The `describe experiment` page.
pub fn describe_experiment(
    object: &ExperimentObject,
    events: &[EventRecord],
    now: DateTime<Utc>,
) -> String {
    let s = &object.status;
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", or_none(object.metadata.name.as_deref())),
        (
            "Namespace",
            object.metadata.namespace_or_default().to_string(),
        ),
        ("Kind", format!("{} ({})", object.kind, object.api_version)),
        ("UID", or_none(object.metadata.uid.as_deref())),
        ("Phase", s.phase.to_string()),
        ("Desired", format!("{:?}", s.desired)),
        ("Reason", or_none(s.reason.as_deref())),
        ("Environment", or_none(Some(&s.environment))),
        ("Adapter", or_none(Some(&s.adapter))),
        (
            "Actions",
            if s.actions.is_empty() {
                "<none>".into()
            } else {
                s.actions.join(", ")
            },
        ),
        ("Created", timestamp_line(Some(&s.created_at), now)),
        ("Started", timestamp_line(s.started_at.as_deref(), now)),
        ("Deadline", timestamp_line(s.deadline.as_deref(), now)),
    ];
    if let Some(ms) = s.remaining_ms {
        let remaining = std::time::Duration::from_millis(ms);
        fields.push((
            "Remaining",
            chaoshub_schema::duration::format_duration(remaining),
        ));
    }
    fields.push(("Ended", timestamp_line(s.ended_at.as_deref(), now)));
    if let Some(d) = &s.drift {
        let mut line = format!(
            "{} found gone, {} re-injected (on_drift {})",
            d.drifts, d.reinjections, d.on_drift
        );
        if let (Some(at), Some(target)) = (&d.last_drift_at, &d.last_drift_target) {
            line.push_str(&format!("; last {at} on {target}"));
        }
        if let Some(message) = &d.last_drift_message {
            line.push_str(&format!(": {message}"));
        }
        fields.push(("Drift", line));
    }
    if s.archived {
        fields.push(("Archived", "true".into()));
    }
    if !object.metadata.labels.is_empty() {
        fields.push(("Labels", format_labels(&object.metadata.labels)));
    }
    let label_width = fields.iter().map(|(k, _)| width(k)).max().unwrap_or(0) + 2;
    let mut out = String::new();
    for (key, value) in &fields {
        let label = format!("{key}:");
        out.push_str(&format!("{label:<label_width$}{value}\n"));
    }

    out.push_str(&format!(
        "Targets ({} injected, {} matched):\n",
        target_counts(&s.targets),
        s.matched
    ));
    if s.targets.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut table = Table::new(&[
            "TARGET",
            "ID",
            "PHASE",
            "INJECTED AT",
            "RECOVERED AT",
            "ERROR",
        ]);
        for t in &s.targets {
            table.push(vec![
                t.target.name.clone(),
                t.target.id.clone(),
                format!("{:?}", t.phase),
                t.injected_at.clone().unwrap_or_else(|| "-".into()),
                t.recovered_at.clone().unwrap_or_else(|| "-".into()),
                t.error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&indent(&table.render()));
    }

    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut table = Table::new(&["TIME", "EVENT", "TARGET", "MESSAGE"]);
        for e in events {
            table.push(vec![
                e.time.clone(),
                e.name.clone(),
                e.target.clone().unwrap_or_else(|| "-".into()),
                e.message.clone(),
            ]);
        }
        out.push_str(&indent(&table.render()));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The halt switch in one or two lines.
pub fn describe_halt(status: &HaltStatus) -> String {
    if !status.halted {
        return "chaos is not halted: new experiments may start\n".to_string();
    }
    let mut out = String::from("chaos is HALTED: no experiment may start");
    if let Some(since) = &status.since {
        out.push_str(&format!(" (since {since})"));
    }
    if let Some(by) = &status.by {
        out.push_str(&format!(" by {by}"));
    }
    out.push('\n');
    if let Some(reason) = &status.reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    if !status.stopped.is_empty() {
        out.push_str(&format!(
            "stopped {} experiment(s): {}\n",
            status.stopped.len(),
            status.stopped.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::api::{Capability, ExperimentPhase, TargetPhase};
    use chaoshub_schema::meta::ObjectMeta;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn target(name: &str) -> Target {
        Target {
            environment: "staging".into(),
            adapter: "docker".into(),
            kind: "container".into(),
            id: format!("{name}-id"),
            name: name.into(),
            namespace: None,
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            annotations: BTreeMap::new(),
        }
    }

    fn record(name: &str, phase: TargetPhase) -> TargetRecord {
        TargetRecord {
            target: target(name),
            injection_id: format!("{name}-0"),
            phase,
            injections: 1,
            injected_at: Some("2024-05-01T11:55:01Z".into()),
            recovered_at: None,
            error: None,
            drifted_at: None,
            details: serde_json::Value::Null,
        }
    }

    fn experiment(
        name: &str,
        namespace: Option<&str>,
        kind: &str,
        phase: ExperimentPhase,
        created: &str,
        targets: Vec<TargetRecord>,
    ) -> ExperimentObject {
        ExperimentObject {
            api_version: "chaos-mesh.org/v1alpha1".into(),
            kind: kind.into(),
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: namespace.map(Into::into),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: json!({}),
            // Built from JSON so fields the schema adds later take their defaults.
            status: serde_json::from_value(json!({
                "phase": phase,
                "desired": "Run",
                "environment": "staging",
                "adapter": "docker",
                "actions": ["delay"],
                "createdAt": created,
                "targets": targets,
            }))
            .unwrap(),
        }
    }

    fn fixed_experiments() -> Vec<ExperimentObject> {
        let mut stress = experiment(
            "cpu-burn",
            Some("payments"),
            "StressChaos",
            ExperimentPhase::Failed,
            "2024-04-28T09:30:00Z",
            vec![record("api-1", TargetPhase::Failed)],
        );
        stress.status.actions = vec!["cpu".into(), "memory".into()];
        stress.status.environment = "prod-eu".into();
        vec![
            experiment(
                "web-delay",
                None,
                "NetworkChaos",
                ExperimentPhase::Running,
                "2024-05-01T11:54:30Z",
                vec![
                    record("web-1", TargetPhase::Injected),
                    record("web-2", TargetPhase::Injected),
                    record("web-3", TargetPhase::Pending),
                ],
            ),
            stress,
            experiment(
                "kill-one",
                Some("default"),
                "PodChaos",
                ExperimentPhase::Pending,
                "2024-05-01T11:59:58Z",
                vec![],
            ),
        ]
    }

    #[test]
    fn experiments_table_snapshot() {
        let text = experiments_table(&fixed_experiments(), now()).render();
        let expected = "\
NAME        NAMESPACE   KIND           ACTION       ENV       PHASE     TARGETS   AGE     UID
web-delay   default     NetworkChaos   delay        staging   Running   2/3       5m30s   uid-web-delay
cpu-burn    payments    StressChaos    cpu,memory   prod-eu   Failed    0/1       3d2h    uid-cpu-burn
kill-one    default     PodChaos       delay        staging   Pending   0/0       2s      uid-kill-one
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn table_aligns_multi_line_cells_and_trims_trailing_spaces() {
        let mut table = Table::new(&["A", "B", "C"]);
        table.push(vec!["x".into(), "one\ntwo-two".into(), "".into()]);
        table.push(vec!["longer".into(), "b".into(), "c".into()]);
        assert_eq!(
            table.render(),
            "A        B         C\nx        one\n         two-two\nlonger   b         c\n"
        );
    }

    #[test]
    fn adapters_table_wraps_capabilities() {
        let mut caps = vec![Capability::new("StressChaos", "cpu")];
        for action in [
            "delay",
            "loss",
            "duplicate",
            "corrupt",
            "bandwidth",
            "partition",
        ] {
            caps.push(Capability::new("NetworkChaos", action));
        }
        let adapters = vec![AdapterInfo {
            adapter_type: "native".into(),
            description: "hosts running chaos-agent".into(),
            capabilities: caps,
            dynamic_capabilities: false,
        }];
        let text = adapters_table(&adapters).render();
        let expected = "\
TYPE     CAPABILITIES                                     DESCRIPTION
native   NetworkChaos: delay, loss, duplicate, corrupt,   hosts running chaos-agent
           bandwidth, partition
         StressChaos: cpu
";
        assert_eq!(text, expected, "got:\n{text}");
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn environments_and_targets_tables() {
        let env: EnvironmentObject = serde_json::from_value(json!({
            "apiVersion": "chaoshub.dev/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": "staging"},
            "spec": {"adapter": "docker", "endpoint": "unix:///var/run/docker.sock",
                     "labels": {"tier": "test", "region": "eu"}}
        }))
        .unwrap();
        let bare: EnvironmentObject = serde_json::from_value(json!({
            "apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": "lab"}, "spec": {"adapter": "native"}
        }))
        .unwrap();
        let cluster: EnvironmentObject = serde_json::from_value(json!({
            "apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": "eu"}, "spec": {"adapter": "kubernetes"},
            "status": {"reachable": false, "checkedAt": "2026-01-01T00:00:00.000Z",
                       "problems": ["connection refused"]}
        }))
        .unwrap();
        assert_eq!(
            environments_table(&[env, bare, cluster]).render(),
            "NAME      ADAPTER      ENDPOINT                      REACHABLE   LABELS\n\
             staging   docker       unix:///var/run/docker.sock   <none>      region=eu,tier=test\n\
             lab       native       <none>                        <none>      <none>\n\
             eu        kubernetes   <none>                        no          <none>\n"
        );
        assert_eq!(
            targets_table(&[target("web-1")]).render(),
            "NAME    ID         KIND        NAMESPACE   LABELS\n\
             web-1   web-1-id   container   <none>      app=web\n"
        );
    }

    #[test]
    fn age_formatting() {
        let cases = [
            (0, "0s"),
            (-5, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 12 * 60, "3h12m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86_400 + 4 * 3600, "2d4h"),
            (30 * 86_400, "30d"),
            (366 * 86_400, "1y1d"),
        ];
        for (secs, expected) in cases {
            assert_eq!(human_duration(secs), expected, "{secs}s");
        }
        assert_eq!(format_age("2024-05-01T11:59:00Z", now()), "60s");
        assert_eq!(format_age("2024-05-01T13:59:00+02:00", now()), "60s");
        assert_eq!(format_age("yesterday", now()), "<unknown>");
    }

    #[test]
    fn describe_shows_status_targets_and_events() {
        let mut e = fixed_experiments().remove(0);
        e.status.started_at = Some("2024-05-01T11:55:00Z".into());
        e.status.deadline = Some("2024-05-01T12:05:00Z".into());
        e.status.targets[2].error = Some("container not running".into());
        e.status.matched = 5;
        let events = vec![EventRecord {
            id: 7,
            time: "2024-05-01T11:55:01Z".into(),
            name: "chaoshub.target.injected".into(),
            experiment_uid: Some("uid-web-delay".into()),
            environment: Some("staging".into()),
            target: Some("web-1".into()),
            message: "delay 100ms injected".into(),
            attributes: BTreeMap::new(),
        }];
        let text = describe_experiment(&e, &events, now());
        let expected = "\
Name:        web-delay
Namespace:   default
Kind:        NetworkChaos (chaos-mesh.org/v1alpha1)
UID:         uid-web-delay
Phase:       Running
Desired:     Run
Reason:      <none>
Environment: staging
Adapter:     docker
Actions:     delay
Created:     2024-05-01T11:54:30Z (5m30s ago)
Started:     2024-05-01T11:55:00Z (5m ago)
Deadline:    2024-05-01T12:05:00Z (in 5m)
Ended:       <none>
Targets (2/3 injected, 5 matched):
  TARGET   ID         PHASE      INJECTED AT            RECOVERED AT   ERROR
  web-1    web-1-id   Injected   2024-05-01T11:55:01Z   -              -
  web-2    web-2-id   Injected   2024-05-01T11:55:01Z   -              -
  web-3    web-3-id   Pending    2024-05-01T11:55:01Z   -              container not running
Events:
  TIME                   EVENT                      TARGET   MESSAGE
  2024-05-01T11:55:01Z   chaoshub.target.injected   web-1    delay 100ms injected
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn structured_output_round_trips() {
        let items = fixed_experiments();
        let json = render_structured(OutputFormat::Json, &ItemList { items: &items }).unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["items"][1]["metadata"]["name"], "cpu-burn");
        let yaml = render_structured(OutputFormat::Yaml, &items[0]).unwrap();
        let back: ExperimentObject = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, items[0]);
    }

    #[test]
    fn halt_description() {
        let off = HaltStatus::default();
        assert_eq!(
            describe_halt(&off),
            "chaos is not halted: new experiments may start\n"
        );
        let on = HaltStatus {
            halted: true,
            since: Some("2024-05-01T12:00:00Z".into()),
            reason: Some("incident 42".into()),
            by: Some("oncall".into()),
            stopped: vec!["uid-1".into()],
        };
        assert_eq!(
            describe_halt(&on),
            "chaos is HALTED: no experiment may start (since 2024-05-01T12:00:00Z) by oncall\n\
             reason: incident 42\nstopped 1 experiment(s): uid-1\n"
        );
    }
}
