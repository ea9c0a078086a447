//! Server-drawn SVG: an experiment's timeline (its phases and each target's time under the
//! fault), the value in force over the experiment's time, agent hosts' CPU and memory, a
//! workflow's node graph, a suite case's steady-state probes over time, and a threshold
//! search's steps. Colours
//! come from classes in the stylesheet, so both themes apply; every figure has a text
//! alternative (`<title>` and the tables next to it).

use std::fmt::Write;

use chaoshub_schema::api::{EventRecord, ExperimentObject, WorkflowStatus};
use chaoshub_schema::suite::{SuiteCase, ThresholdResult};
use chrono::{DateTime, Utc};

use super::html::esc;

const WIDTH: f64 = 720.0;
const LABEL: f64 = 150.0;
const ROW: f64 = 24.0;

/// Which phase an event starts, when it starts one.
fn phase_of(event: &str) -> Option<&'static str> {
    Some(match event.strip_prefix("chaoshub.experiment.")? {
        "created" => "Pending",
        "injecting" | "resumed" => "Injecting",
        "running" => "Running",
        "paused" => "Paused",
        "recovering" => "Recovering",
        "finished" => "Finished",
        "failed" => "Failed",
        "aborted" => "Aborted",
        _ => return None,
    })
}

struct Axis {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Axis {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.end - self.start).num_milliseconds().max(1) as f64;
        let at = (t - self.start).num_milliseconds().clamp(0, span as i64) as f64;
        LABEL + at / span * (WIDTH - LABEL - 10.0)
    }

    fn ticks(&self, out: &mut String, top: f64, bottom: f64) {
        let span = (self.end - self.start).num_milliseconds().max(1);
        for i in 0..=4 {
            let t = self.start + chrono::Duration::milliseconds(span * i / 4);
            let x = self.x(t);
            let label = crate::time::format(t);
            let short = label
                .split_once('T')
                .map(|(_, t)| t.split('.').next().unwrap_or(t).to_string())
                .unwrap_or(label);
            let _ = write!(
                out,
                "<line class=\"grid-line\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{short}</text>",
                bottom + 14.0
            );
        }
    }
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    crate::time::parse(t)
}

/// The experiment's phases over time and, per target, the span it was under the fault, with a
/// step chart of the value in force under them.
pub fn timeline(e: &ExperimentObject, events: &[EventRecord]) -> String {
    let s = &e.status;
    let now = crate::time::now();
    let Some(start) = parse(&s.created_at) else {
        return String::new();
    };
    let end = s
        .ended_at
        .as_deref()
        .and_then(parse)
        .unwrap_or(now)
        .max(start + chrono::Duration::seconds(1));
    let axis = Axis { start, end };
    let mut segments: Vec<(DateTime<Utc>, &str)> = events
        .iter()
        .filter_map(|ev| Some((parse(&ev.time)?, phase_of(&ev.name)?)))
        .collect();
    segments.sort_by_key(|(t, _)| *t);
    if segments.is_empty() {
        segments.push((start, s.phase.as_str()));
    }
    let rows = 1 + s.targets.len();
    let chart_top = 12.0 + rows as f64 * ROW + 30.0;
    let values = super::fault_values(e);
    let chart_h = if values.is_empty() { 0.0 } else { 90.0 };
    let height = chart_top + chart_h + if values.is_empty() { 0.0 } else { 40.0 };
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-labelledby=\"tl-title\"><title id=\"tl-title\">Timeline of the experiment's phases and targets</title>"
    );
    let y0 = 12.0;
    let _ = write!(
        out,
        "<text class=\"row-label\" x=\"4\" y=\"{:.1}\">phase</text>",
        y0 + 16.0
    );
    for (i, (t, phase)) in segments.iter().enumerate() {
        let until = segments.get(i + 1).map(|(t, _)| *t).unwrap_or(end);
        let (x1, x2) = (axis.x(*t), axis.x(until));
        let terminal = matches!(*phase, "Finished" | "Failed" | "Aborted");
        let w = if terminal { 3.0 } else { (x2 - x1).max(2.0) };
        let _ = write!(
            out,
            "<rect class=\"seg phase-{}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{phase} from {}</title></rect>",
            phase.to_ascii_lowercase(),
            y0 + 4.0,
            ROW - 8.0,
            esc(&crate::time::format(*t))
        );
        if !terminal && x2 - x1 > 60.0 {
            let _ = write!(
                out,
                "<text class=\"seg-label\" x=\"{:.1}\" y=\"{:.1}\">{phase}</text>",
                x1 + 4.0,
                y0 + 16.0
            );
        }
    }
    for (i, t) in s.targets.iter().enumerate() {
        let y = y0 + (i + 1) as f64 * ROW;
        let name: String = t.target.name.chars().take(20).collect();
        let _ = write!(
            out,
            "<text class=\"row-label\" x=\"4\" y=\"{:.1}\">{}</text>",
            y + 16.0,
            esc(&name)
        );
        if let Some(from) = t.injected_at.as_deref().and_then(parse) {
            let until = t.recovered_at.as_deref().and_then(parse).unwrap_or(end);
            let (x1, x2) = (axis.x(from), axis.x(until));
            let _ = write!(
                out,
                "<rect class=\"seg target-{}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} injected {}{}</title></rect>",
                if t.error.is_some() { "failed" } else { "injected" },
                y + 4.0,
                (x2 - x1).max(2.0),
                ROW - 8.0,
                esc(&t.target.name),
                esc(t.injected_at.as_deref().unwrap_or("")),
                t.recovered_at
                    .as_deref()
                    .map(|r| format!(", recovered {}", esc(r)))
                    .unwrap_or_default()
            );
        }
    }
    let bottom = y0 + rows as f64 * ROW;
    axis.ticks(&mut out, y0, bottom);

    // The value in force: its level while the fault was in force (Running), zero otherwise.
    if let Some((label, value, unit)) = values.first() {
        let top = chart_top;
        let base = top + chart_h;
        let max = value.max(f64::MIN_POSITIVE) * 1.25;
        let y_of = |v: f64| base - v / max * chart_h;
        let _ = write!(
            out,
            "<text class=\"row-label\" x=\"4\" y=\"{:.1}\">{}</text><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {unit}</text><text class=\"tick\" x=\"{:.1}\" y=\"{base:.1}\" text-anchor=\"end\">0</text>\
<line class=\"axis\" x1=\"{LABEL}\" y1=\"{top:.1}\" x2=\"{LABEL}\" y2=\"{base:.1}\"/><line class=\"axis\" x1=\"{LABEL}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/>",
            top + 12.0,
            esc(label),
            LABEL - 4.0,
            y_of(*value) + 4.0,
            super::trim(*value),
            LABEL - 4.0,
            WIDTH - 10.0
        );
        let mut points = format!("{LABEL:.1},{base:.1}");
        for (i, (t, phase)) in segments.iter().enumerate() {
            let until = segments.get(i + 1).map(|(t, _)| *t).unwrap_or(end);
            let level = if *phase == "Running" { *value } else { 0.0 };
            let _ = write!(
                points,
                " {:.1},{:.1} {:.1},{:.1}",
                axis.x(*t),
                y_of(level),
                axis.x(until),
                y_of(level)
            );
        }
        let _ = write!(
            out,
            "<polyline class=\"value-line\" fill=\"none\" points=\"{points}\"/><text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">— {} in force ({unit})</text>",
            LABEL + 4.0,
            base + 30.0,
            esc(label)
        );
        axis.ticks(&mut out, top, base);
    }
    out.push_str("</svg>");
    out
}

/// A workflow's node tree, one column per depth, with each node's state as its colour and text.
pub fn workflow(wf: &WorkflowStatus) -> String {
    let mut placed: Vec<(usize, usize, &chaoshub_schema::api::WorkflowNode)> = Vec::new();
    let mut row = 0;
    fn place<'a>(
        wf: &'a WorkflowStatus,
        name: &str,
        depth: usize,
        row: &mut usize,
        out: &mut Vec<(usize, usize, &'a chaoshub_schema::api::WorkflowNode)>,
    ) {
        if depth > 32 || out.len() > 500 {
            return;
        }
        let Some(node) = wf.nodes.iter().find(|n| n.name == name) else {
            return;
        };
        out.push((depth, *row, node));
        if node.children.is_empty() {
            *row += 1;
        }
        for child in &node.children {
            place(wf, child, depth + 1, row, out);
        }
        if !node.children.is_empty() && out.last().is_some_and(|(d, _, _)| *d == depth) {
            *row += 1;
        }
    }
    let root = wf
        .nodes
        .iter()
        .find(|n| n.parent.is_none())
        .map(|n| n.name.clone())
        .unwrap_or_else(|| wf.entry.clone());
    place(wf, &root, 0, &mut row, &mut placed);
    if placed.is_empty() {
        return "<p class=\"empty\">No node has started yet.</p>".into();
    }
    let (bw, bh, gx, gy) = (170.0, 38.0, 30.0, 12.0);
    let depth = placed.iter().map(|(d, _, _)| *d).max().unwrap_or(0) + 1;
    let rows = placed.iter().map(|(_, r, _)| *r).max().unwrap_or(0) + 1;
    let w = depth as f64 * (bw + gx) + 10.0;
    let h = rows as f64 * (bh + gy) + 10.0;
    let pos = |d: usize, r: usize| (5.0 + d as f64 * (bw + gx), 5.0 + r as f64 * (bh + gy));
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<svg class=\"workflow\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" role=\"img\" aria-labelledby=\"wf-title\"><title id=\"wf-title\">Workflow nodes and their states</title>"
    );
    for (d, r, node) in &placed {
        if let Some(parent) = &node.parent {
            if let Some((pd, pr, _)) = placed.iter().find(|(_, _, n)| &n.name == parent) {
                let (px, py) = pos(*pd, *pr);
                let (x, y) = pos(*d, *r);
                let _ = write!(
                    out,
                    "<path class=\"edge\" fill=\"none\" d=\"M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {x:.1},{:.1}\"/>",
                    px + bw,
                    py + bh / 2.0,
                    px + bw + gx / 2.0,
                    py + bh / 2.0,
                    x - gx / 2.0,
                    y + bh / 2.0,
                    y + bh / 2.0
                );
            }
        }
    }
    for (d, r, node) in &placed {
        let (x, y) = pos(*d, *r);
        let phase = format!("{:?}", node.phase);
        let label: String = node.template.chars().take(22).collect();
        let _ = write!(
            out,
            "<g class=\"node phase-{}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw}\" height=\"{bh}\" rx=\"6\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text><text class=\"node-state\" x=\"{:.1}\" y=\"{:.1}\">{} · {}</text><title>{} ({}): {}{}</title></g>",
            phase.to_ascii_lowercase(),
            x + 8.0,
            y + 16.0,
            esc(&label),
            x + 8.0,
            y + 31.0,
            esc(&node.template_type),
            esc(&phase),
            esc(&node.template),
            esc(&node.template_type),
            esc(&phase),
            node.reason
                .as_deref()
                .map(|r| format!(" — {}", esc(r)))
                .unwrap_or_default()
        );
    }
    out.push_str("</svg>");
    out
}

/// A threshold search's steps: the value tried at each step (x: step, y: value), each point
/// marked tolerated or broke, with the tolerated and first failing values as lines.
pub fn threshold(t: &ThresholdResult) -> String {
    const H: f64 = 200.0;
    const TOP: f64 = 16.0;
    const LEFT: f64 = 70.0;
    let unit = t.unit.as_deref().unwrap_or("");
    let max = t
        .steps
        .iter()
        .map(|s| s.value)
        .chain(t.tolerated)
        .chain(t.first_failing)
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.15;
    let base = TOP + H;
    let y_of = |v: f64| base - v.max(0.0) / max * H;
    let n = t.steps.len().max(1) as f64;
    let x_of = |i: usize| LEFT + 20.0 + i as f64 * (WIDTH - LEFT - 40.0) / (n - 1.0).max(1.0);
    let mut out = format!(
        "<svg class=\"chart threshold\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-labelledby=\"th-title\"><title id=\"th-title\">Threshold search on {}: {} step(s), tolerated {}, first failing {}</title>",
        base + 52.0,
        esc(&t.parameter),
        t.steps.len(),
        t.tolerated.map(|v| format!("{} {unit}", super::trim(v))).unwrap_or_else(|| "none".into()),
        t.first_failing.map(|v| format!("{} {unit}", super::trim(v))).unwrap_or_else(|| "none".into()),
    );
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base:.1}\"/><line class=\"axis\" x1=\"{LEFT}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
        WIDTH - 10.0,
        LEFT - 4.0,
        base + 4.0,
        LEFT - 4.0,
        TOP + 8.0,
        super::trim(max / 1.15),
        esc(unit)
    );
    for (value, class, label) in [
        (t.tolerated, "limit-ok", "tolerated"),
        (t.first_failing, "limit-bad", "first failing"),
    ] {
        if let Some(v) = value {
            let y = y_of(v);
            let _ = write!(
                out,
                "<line class=\"{class}\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label} {} {}</text>",
                WIDTH - 10.0,
                WIDTH - 12.0,
                y - 4.0,
                super::trim(v),
                esc(unit)
            );
        }
    }
    let mut points = String::new();
    for (i, s) in t.steps.iter().enumerate() {
        let _ = write!(
            points,
            "{}{:.1},{:.1}",
            if i == 0 { "" } else { " " },
            x_of(i),
            y_of(s.value)
        );
    }
    if t.steps.len() > 1 {
        let _ = write!(
            out,
            "<polyline class=\"value-line\" fill=\"none\" points=\"{points}\"/>"
        );
    }
    for (i, s) in t.steps.iter().enumerate() {
        let (x, y) = (x_of(i), y_of(s.value));
        let (class, word) = if s.tolerated {
            ("step-ok", "tolerated")
        } else {
            ("step-bad", "broke the steady state")
        };
        let _ = write!(
            out,
            "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\"><title>step {}: {} {} {word}</title></circle><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            i + 1,
            super::trim(s.value),
            esc(unit),
            base + 14.0,
            i + 1
        );
    }
    let legend = base + 38.0;
    let _ = write!(
        out,
        "<circle class=\"step-ok\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\">tolerated</text><circle class=\"step-bad\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\">broke the steady state</text><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\" text-anchor=\"end\">x: step of the search · y: {} ({})</text>",
        LEFT + 4.0,
        legend - 4.0,
        LEFT + 12.0,
        LEFT + 84.0,
        legend - 4.0,
        LEFT + 92.0,
        WIDTH - 10.0,
        esc(&t.parameter),
        esc(unit)
    );
    out.push_str("</svg>");
    out
}

/// A suite case's steady-state probes over time: each probe's measured duration (its latency,
/// in ms) at each evaluation before, during and after the fault, each point marked passed or
/// failed, over a band for each span a fault was in place (first target injected to last
/// recovered). `None` when the case has no probe result.
pub fn probes(case: &SuiteCase) -> Option<String> {
    const H: f64 = 160.0;
    const TOP: f64 = 16.0;
    let results: Vec<_> = [
        &case.steady_state.before,
        &case.steady_state.during,
        &case.steady_state.after,
    ]
    .into_iter()
    .flatten()
    .filter_map(|r| Some((parse(&r.at)?, r)))
    .collect();
    let start = results.iter().map(|(t, _)| *t).min()?;
    let mut end = results.iter().map(|(t, _)| *t).max()?;
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = case
        .experiments
        .iter()
        .filter_map(|e| {
            let from = e
                .targets
                .iter()
                .filter_map(|t| t.injected_at.as_deref().and_then(parse))
                .min()
                .or_else(|| e.started_at.as_deref().and_then(parse))?;
            let until = e
                .targets
                .iter()
                .filter_map(|t| t.recovered_at.as_deref().and_then(parse))
                .max()
                .or_else(|| e.ended_at.as_deref().and_then(parse))
                .unwrap_or(end);
            Some((from, until))
        })
        .collect();
    end = windows.iter().map(|(_, u)| *u).fold(end, DateTime::max);
    let axis = Axis { start, end };
    let max = results
        .iter()
        .map(|(_, r)| r.duration_ms as f64)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.15;
    let base = TOP + H;
    let y_of = |ms: f64| base - ms / max * H;
    let mut names: Vec<&str> = Vec::new();
    for (_, r) in &results {
        if !names.contains(&r.probe.as_str()) {
            names.push(&r.probe);
        }
    }
    let failed = results.iter().filter(|(_, r)| !r.ok).count();
    let mut out = format!(
        "<svg class=\"chart probes\" viewBox=\"0 0 {WIDTH} {:.0}\" role=\"img\" aria-labelledby=\"pr-title\"><title id=\"pr-title\">Steady-state probes of {} on {}: {} result(s), {failed} failed, slowest {} ms</title>",
        base + 56.0,
        esc(&case.experiment),
        esc(&case.environment),
        results.len(),
        results.iter().map(|(_, r)| r.duration_ms).max().unwrap_or(0),
    );
    for (from, until) in &windows {
        let (x1, x2) = (axis.x(*from), axis.x(*until));
        let _ = write!(
            out,
            "<rect class=\"fault-window\" x=\"{x1:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{H}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">fault in place</text>",
            (x2 - x1).max(1.0),
            x1 + 3.0,
            TOP + 10.0
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LABEL}\" y1=\"{TOP}\" x2=\"{LABEL}\" y2=\"{base:.1}\"/><line class=\"axis\" x1=\"{LABEL}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text><text class=\"tick\" x=\"{:.1}\" y=\"{base:.1}\" text-anchor=\"end\">0</text><text class=\"row-label\" x=\"4\" y=\"{:.1}\">probe time</text>",
        WIDTH - 10.0,
        LABEL - 4.0,
        TOP + 8.0,
        super::trim(max / 1.15),
        LABEL - 4.0,
        TOP + H / 2.0
    );
    for name in &names {
        let mut points = String::new();
        for (t, r) in results.iter().filter(|(_, r)| r.probe == *name) {
            let _ = write!(
                points,
                "{}{:.1},{:.1}",
                if points.is_empty() { "" } else { " " },
                axis.x(*t),
                y_of(r.duration_ms as f64)
            );
        }
        let _ = write!(
            out,
            "<polyline class=\"probe-line\" fill=\"none\" points=\"{points}\"/>"
        );
    }
    for (t, r) in &results {
        let _ = write!(
            out,
            "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"><title>{} at {}: {} in {} ms</title></circle>",
            if r.ok { "probe-ok" } else { "probe-bad" },
            axis.x(*t),
            y_of(r.duration_ms as f64),
            esc(&r.probe),
            esc(&r.at),
            if r.ok { "passed" } else { "failed" },
            r.duration_ms
        );
    }
    axis.ticks(&mut out, TOP, base);
    let legend = base + 44.0;
    let _ = write!(
        out,
        "<circle class=\"probe-ok\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\">passed</text><circle class=\"probe-bad\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\">failed</text><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\" text-anchor=\"end\">— time each evaluation took (ms): {}</text>",
        LABEL + 4.0,
        legend - 4.0,
        LABEL + 12.0,
        LABEL + 70.0,
        legend - 4.0,
        LABEL + 78.0,
        WIDTH - 10.0,
        esc(&names.join(", "))
    );
    out.push_str("</svg>");
    Some(out)
}

/// Agent hosts' usage over an experiment's time: CPU busy share and memory in use (both in %),
/// one line per agent in each panel, over the span the fault was in place. `None` when no
/// agent reported a sample.
pub fn usage(
    series: &[(String, Vec<chaoshub_schema::api::AgentUsage>)],
    fault: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Option<String> {
    const PANEL: f64 = 110.0;
    const GAP: f64 = 46.0;
    const TOP: f64 = 16.0;
    let all = series.iter().flat_map(|(_, s)| s.iter());
    let start = all.clone().map(|u| u.at).min()?;
    let end = all
        .map(|u| u.at)
        .max()?
        .max(start + chrono::Duration::seconds(1));
    let axis = Axis { start, end };
    let height = TOP + 2.0 * PANEL + GAP + 56.0;
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    let peak_cpu = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|u| u.cpu_percent))
        .fold(0.0f32, f32::max);
    let mut out = format!(
        "<svg class=\"chart usage\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-labelledby=\"us-title\"><title id=\"us-title\">CPU and memory of {}: CPU peaked at {:.0} %</title>",
        esc(&names.join(", ")),
        peak_cpu
    );
    type Figure = fn(&chaoshub_schema::api::AgentUsage) -> f64;
    let panels: [(&str, Figure); 2] = [
        ("CPU busy", |u| f64::from(u.cpu_percent)),
        ("memory used", |u| {
            if u.mem_total_bytes == 0 {
                0.0
            } else {
                u.mem_used_bytes as f64 / u.mem_total_bytes as f64 * 100.0
            }
        }),
    ];
    for (i, (label, value)) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP);
        let base = top + PANEL;
        let y_of = |v: f64| base - v.clamp(0.0, 100.0) / 100.0 * PANEL;
        if let Some((from, until)) = fault {
            let (x1, x2) = (axis.x(from), axis.x(until));
            let _ = write!(
                out,
                "<rect class=\"fault-window\" x=\"{x1:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PANEL}\"/>",
                (x2 - x1).max(1.0)
            );
        }
        let _ = write!(
            out,
            "<text class=\"row-label\" x=\"4\" y=\"{:.1}\">{label} (%)</text><line class=\"axis\" x1=\"{LABEL}\" y1=\"{top:.1}\" x2=\"{LABEL}\" y2=\"{base:.1}\"/><line class=\"axis\" x1=\"{LABEL}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">100</text><text class=\"tick\" x=\"{:.1}\" y=\"{base:.1}\" text-anchor=\"end\">0</text>",
            top + PANEL / 2.0,
            WIDTH - 10.0,
            LABEL - 4.0,
            top + 8.0,
            LABEL - 4.0,
        );
        for (n, (_, samples)) in series.iter().enumerate() {
            let mut points = String::new();
            for u in samples {
                let _ = write!(
                    points,
                    "{}{:.1},{:.1}",
                    if points.is_empty() { "" } else { " " },
                    axis.x(u.at),
                    y_of(value(u))
                );
            }
            if !points.is_empty() {
                let _ = write!(
                    out,
                    "<polyline class=\"usage-line series-{}\" fill=\"none\" points=\"{points}\"/>",
                    n % 4
                );
            }
        }
        axis.ticks(&mut out, top, base);
    }
    let legend = height - 10.0;
    let mut x = LABEL;
    for (n, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            "<line class=\"usage-line series-{}\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\">{}</text>",
            n % 4,
            legend - 4.0,
            x + 18.0,
            legend - 4.0,
            x + 22.0,
            esc(name)
        );
        x += 40.0 + name.chars().count() as f64 * 7.0;
    }
    if fault.is_some() {
        let _ = write!(
            out,
            "<text class=\"legend\" x=\"{:.1}\" y=\"{legend:.1}\" text-anchor=\"end\">shaded: the fault in place</text>",
            WIDTH - 10.0
        );
    }
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::suite::{ThresholdResult, ThresholdStep};

    fn step(value: f64, tolerated: bool) -> ThresholdStep {
        ThresholdStep {
            value,
            tolerated,
            detail: format!("probe at {value}"),
            experiment_uid: None,
        }
    }

    #[test]
    fn threshold_chart_marks_each_step_and_both_limits() {
        let t = ThresholdResult {
            parameter: "spec.delay.latency".into(),
            unit: Some("ms".into()),
            tolerated: Some(250.0),
            first_failing: Some(375.0),
            steps: vec![
                step(100.0, true),
                step(500.0, false),
                step(250.0, true),
                step(375.0, false),
            ],
            ended_by: "converged".into(),
        };
        let svg = super::threshold(&t);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("<title id=\"th-title\">Threshold search on spec.delay.latency: 4 step(s), tolerated 250 ms, first failing 375 ms</title>"), "{svg}");
        // Two tolerated and two failing steps, plus one of each in the legend.
        assert_eq!(svg.matches("class=\"step-ok\"").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"step-bad\"").count(), 3, "{svg}");
        assert!(
            svg.contains("<title>step 2: 500 ms broke the steady state</title>"),
            "{svg}"
        );
        assert!(svg.contains("class=\"limit-ok\"") && svg.contains("tolerated 250 ms"));
        assert!(svg.contains("class=\"limit-bad\"") && svg.contains("first failing 375 ms"));
        assert!(svg.contains("<polyline class=\"value-line\""));
        // The largest value sits highest: y grows downwards.
        let cy = |n: usize| -> f64 {
            let at = svg.match_indices("<circle ").nth(n).unwrap().0;
            let rest = &svg[at..];
            let v = &rest[rest.find("cy=\"").unwrap() + 4..];
            v[..v.find('"').unwrap()].parse().unwrap()
        };
        assert!(cy(1) < cy(3) && cy(3) < cy(2) && cy(2) < cy(0), "{svg}");
    }

    fn probe(at: &str, ok: bool, duration_ms: u64) -> chaoshub_schema::probe::ProbeResult {
        chaoshub_schema::probe::ProbeResult {
            probe: "web-ok".into(),
            at: at.into(),
            ok,
            duration_ms,
            detail: String::new(),
        }
    }

    #[test]
    fn probe_chart_draws_each_result_over_the_fault_window() {
        let case: chaoshub_schema::suite::SuiteCase = serde_json::from_value(serde_json::json!({
            "experiment": "web-delay", "environment": "lab", "expect": "hold", "outcome": "Failed",
            "experiments": [{"uid": "u1", "name": "web-delay", "kind": "NetworkChaos", "phase": "Finished",
                "startedAt": "2026-12-07T10:00:01Z", "endedAt": "2026-12-07T10:00:05Z",
                "targets": [{"target": {"environment": "lab", "adapter": "memory", "kind": "host", "id": "h", "name": "h"},
                    "injectionId": "u1-0", "phase": "Recovered",
                    "injectedAt": "2026-12-07T10:00:02Z", "recoveredAt": "2026-12-07T10:00:04Z"}]}],
            "steadyState": {"before": [], "during": [], "after": []},
        }))
        .unwrap();
        assert!(super::probes(&case).is_none(), "no result, no chart");
        let mut case = case;
        case.steady_state.before = vec![probe("2026-12-07T10:00:00Z", true, 2)];
        case.steady_state.during = vec![
            probe("2026-12-07T10:00:02.500Z", true, 110),
            probe("2026-12-07T10:00:03.500Z", false, 400),
        ];
        case.steady_state.after = vec![probe("2026-12-07T10:00:06Z", true, 3)];
        let svg = super::probes(&case).unwrap();
        assert!(
            svg.contains("4 result(s), 1 failed, slowest 400 ms"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"probe-ok\"").count(), 3 + 1, "{svg}");
        assert_eq!(svg.matches("class=\"probe-bad\"").count(), 1 + 1, "{svg}");
        assert!(svg.contains("<title>web-ok at 2026-12-07T10:00:03.500Z: failed in 400 ms</title>"));
        // The band spans the targets' time under the fault (10:00:02–10:00:04 of 10:00:00–06).
        let at = svg.find("<rect class=\"fault-window\"").unwrap();
        let rect = &svg[at..at + svg[at..].find("/>").unwrap()];
        let attr = |name: &str| -> f64 {
            let v = &rect[rect.find(&format!("{name}=\"")).unwrap() + name.len() + 2..];
            v[..v.find('"').unwrap()].parse().unwrap()
        };
        let span = super::WIDTH - super::LABEL - 10.0;
        assert!(
            (attr("x") - (super::LABEL + span / 3.0)).abs() < 0.2,
            "{rect}"
        );
        assert!((attr("width") - span / 3.0).abs() < 0.2, "{rect}");
        assert!(!svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn usage_chart_has_a_line_per_agent_in_each_panel() {
        use chaoshub_schema::api::AgentUsage;
        let t0 = crate::time::parse("2026-12-07T10:00:00Z").unwrap();
        let sample = |s: i64, cpu: f32| AgentUsage {
            at: t0 + chrono::Duration::seconds(s),
            cpu_percent: cpu,
            mem_used_bytes: 1 << 30,
            mem_total_bytes: 4 << 30,
            load1: 0.5,
        };
        assert!(super::usage(&[], None).is_none());
        assert!(super::usage(&[("a".into(), vec![])], None).is_none());
        let series = vec![
            (
                "agent-a".to_string(),
                (0..10)
                    .map(|s| sample(s, if (3..7).contains(&s) { 95.0 } else { 5.0 }))
                    .collect(),
            ),
            ("agent-b".to_string(), vec![sample(0, 1.0), sample(9, 2.0)]),
        ];
        let fault = Some((
            t0 + chrono::Duration::seconds(3),
            t0 + chrono::Duration::seconds(7),
        ));
        let svg = super::usage(&series, fault).unwrap();
        assert!(svg.contains("<title id=\"us-title\">CPU and memory of agent-a, agent-b: CPU peaked at 95 %</title>"), "{svg}");
        // Two panels × two agents, plus one legend line per agent.
        assert_eq!(
            svg.matches("<polyline class=\"usage-line series-0\"")
                .count(),
            2,
            "{svg}"
        );
        assert_eq!(
            svg.matches("<polyline class=\"usage-line series-1\"")
                .count(),
            2,
            "{svg}"
        );
        assert_eq!(
            svg.matches("<rect class=\"fault-window\"").count(),
            2,
            "{svg}"
        );
        assert!(svg.contains("CPU busy (%)") && svg.contains("memory used (%)"));
        // Memory at 25 %: a quarter of the panel's height above its base.
        let panel = 110.0;
        let memory_base = 16.0 + 2.0 * panel + 46.0;
        assert!(
            svg.contains(&format!(",{:.1}", memory_base - panel / 4.0)),
            "{svg}"
        );
        assert!(!svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn a_search_without_steps_or_unit_still_draws_axes() {
        let t = ThresholdResult {
            parameter: "p".into(),
            unit: None,
            tolerated: None,
            first_failing: None,
            steps: vec![],
            ended_by: "error".into(),
        };
        let svg = super::threshold(&t);
        assert!(svg.contains("tolerated none, first failing none"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
