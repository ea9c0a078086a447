//! The console's pages and forms. Each reads what it shows from the REST API through the
//! session's `Caller` and acts through it; nothing here touches the store or the engine.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chaoshub_schema::api::{
    AdapterInfo, AgentInfo, ConformanceMatrix, DryRunResult, EnvironmentObject, EventRecord,
    ExperimentObject, ExperimentPhase, ExperimentStatus, HaltStatus, Page,
};
use chaoshub_schema::suite::SuiteRunSummary;
use chaoshub_schema::template::{ParameterType, TemplateDetail, TemplateList, TemplateParameter};
use serde_json::Value;

use super::html::{self, esc, url, Nav, Refresh};
use super::{check_form, html_response, local_path, ApiFailure, Ctx, Failure};

type PageResult = Result<Response, Failure>;

fn ok(ctx: &Ctx, title: &str, nav: Nav, refresh: Refresh, body: &str) -> PageResult {
    Ok(html_response(
        StatusCode::OK,
        html::page(title, nav, Some(&ctx.session), refresh, body),
    ))
}

/// The point in time the request for a live page arrived, before any state was read for it: its
/// script asks for events from then on. An event that lands while the page is being rendered is
/// therefore replayed (one refresh too many at worst) and never lost (a page stuck on a phase
/// the experiment has left).
fn live_since(body: &mut String, ctx: &Ctx) {
    let _ = write!(
        body,
        "<span hidden id=\"rendered-at\" data-since=\"{}\"></span>",
        esc(&crate::time::format(ctx.arrived))
    );
}

/// How long a fault stays in force, as HTML: what is left of the duration while paused, the
/// time to the deadline otherwise (the script counts it down; the server's figure is what a
/// page without script shows), or "open-ended" for an experiment without a duration.
fn time_left(s: &ExperimentStatus, now: chrono::DateTime<chrono::Utc>) -> String {
    if s.phase == ExperimentPhase::Paused {
        if let Some(ms) = s.remaining_ms {
            return format!("{} (paused)", html::duration_ms(ms));
        }
    }
    match s.deadline.as_deref().and_then(crate::time::parse) {
        Some(deadline) => {
            let ms = u64::try_from((deadline - now).num_milliseconds()).unwrap_or(0);
            format!(
                "<span class=\"countdown\" data-deadline=\"{}\">{}</span>",
                esc(&crate::time::format(deadline)),
                html::duration_ms(ms)
            )
        }
        None => "open-ended".into(),
    }
}

/// Every agent, following the listing's pages (the API hands out at most 5,000 at a time): the
/// console counts and lists them per environment.
async fn all_agents(ctx: &Ctx) -> Result<Page<AgentInfo>, ApiFailure> {
    let mut all = ctx
        .api
        .get::<Page<AgentInfo>>("/api/v1/agents?limit=5000")
        .await?;
    while let Some(token) = all.continue_token.take() {
        let next = ctx
            .api
            .get::<Page<AgentInfo>>(&format!(
                "/api/v1/agents?limit=5000&continue={}",
                url(&token)
            ))
            .await?;
        all.items.extend(next.items);
        all.continue_token = next.continue_token;
    }
    Ok(all)
}

// ---------------------------------------------------------------------------------------------
// Overview

pub async fn overview(ctx: Ctx) -> PageResult {
    let since = crate::time::format(crate::time::now() - chrono::Duration::minutes(30));
    let events_uri = format!("/api/v1/events?since={}&limit=2000", url(&since));
    let (halt, running, envs, agents, events) = tokio::join!(
        ctx.api.get::<HaltStatus>("/api/v1/halt"),
        ctx.api
            .get::<Page<ExperimentObject>>("/api/v1/experiments?phase=Running&limit=200"),
        ctx.api
            .get::<Page<EnvironmentObject>>("/api/v1/environments"),
        all_agents(&ctx),
        ctx.api.get::<Page<EventRecord>>(&events_uri),
    );
    let (halt, running, envs, agents, events) = (halt?, running?, envs?, agents?, events?);
    let mut counts = Vec::new();
    for phase in [
        ExperimentPhase::Pending,
        ExperimentPhase::Injecting,
        ExperimentPhase::Paused,
        ExperimentPhase::Recovering,
    ] {
        let page: Page<ExperimentObject> = ctx
            .api
            .get(&format!(
                "/api/v1/experiments?phase={}&limit=1000",
                phase.as_str()
            ))
            .await?;
        counts.push((phase, page.items.len()));
    }
    counts.insert(2, (ExperimentPhase::Running, running.items.len()));

    let mut b = String::with_capacity(16 * 1024);
    live_since(&mut b, &ctx);
    b.push_str(&halt_panel(&ctx, &halt));

    b.push_str("<section aria-labelledby=\"in-force\"><h2 id=\"in-force\">Faults in force</h2>");
    if running.items.is_empty() {
        b.push_str("<p class=\"empty\">No fault is in force.</p>");
    } else {
        b.push_str("<table class=\"grid\" id=\"faults\"><thead><tr><th scope=\"col\">Experiment</th><th scope=\"col\">Environment</th><th scope=\"col\">Targets</th><th scope=\"col\">Value in force</th><th scope=\"col\">Time left</th><th scope=\"col\"><span class=\"sr\">Actions</span></th></tr></thead><tbody>");
        for e in &running.items {
            let uid = e.metadata.uid.clone().unwrap_or_default();
            let targets: Vec<String> = e
                .status
                .targets
                .iter()
                .map(|t| esc(&t.target.name))
                .collect();
            let left = time_left(&e.status, ctx.arrived);
            let _ = write!(
                b,
                "<tr><td><a href=\"/experiments/{}\">{}</a> <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                url(&uid),
                esc(e.metadata.name.as_deref().unwrap_or("")),
                esc(&e.kind),
                esc(&e.status.environment),
                targets.join(", "),
                values_in_force(e),
                left
            );
            if ctx.may("POST", "/api/v1/experiments/{id}/stop") {
                b.push_str(&html::button_form(
                    &ctx.session,
                    &format!("/experiments/{}/stop", url(&uid)),
                    "Stop",
                    "danger",
                    "/",
                    None,
                ));
            }
            b.push_str("</td></tr>");
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    b.push_str("<div class=\"cols\"><section aria-labelledby=\"by-phase\"><h2 id=\"by-phase\">Active experiments by phase</h2><ul class=\"counts\">");
    for (phase, n) in &counts {
        let _ = write!(
            b,
            "<li><a href=\"/experiments?phase={0}\">{1} <strong>{2}</strong></a></li>",
            phase.as_str(),
            html::phase_badge(phase.as_str()),
            n
        );
    }
    b.push_str("</ul><p class=\"muted\">Ended: <a href=\"/experiments?phase=Finished\">finished</a> · <a href=\"/experiments?phase=Failed\">failed</a> · <a href=\"/experiments?phase=Aborted\">aborted</a></p></section>");

    b.push_str("<section aria-labelledby=\"envs\"><h2 id=\"envs\">Environments and agents</h2>");
    if envs.items.is_empty() {
        b.push_str("<p class=\"empty\">No environment is registered.</p>");
    } else {
        b.push_str("<ul class=\"plain\">");
        for env in &envs.items {
            let name = env.metadata.name.clone().unwrap_or_default();
            let env_agents: Vec<&AgentInfo> = agents
                .items
                .iter()
                .filter(|a| a.environment == name)
                .collect();
            let healthy = env_agents.iter().filter(|a| a.health == "healthy").count();
            let _ = write!(
                b,
                "<li><a href=\"/environments#env-{}\">{}</a> <span class=\"muted\">{}</span>",
                esc(&name),
                esc(&name),
                esc(&env.spec.adapter)
            );
            if !env_agents.is_empty() {
                let class = if healthy == env_agents.len() {
                    "ok"
                } else {
                    "bad"
                };
                let _ = write!(
                    b,
                    " <span class=\"badge health-{class}\">{healthy}/{} agents healthy</span>",
                    env_agents.len()
                );
            }
            b.push_str("</li>");
        }
        b.push_str("</ul>");
    }
    b.push_str("</section></div>");

    b.push_str("<section aria-labelledby=\"last-events\"><h2 id=\"last-events\">Last events</h2>");
    let last: Vec<&EventRecord> = events.items.iter().rev().take(15).collect();
    if last.is_empty() {
        b.push_str("<p class=\"empty\">No event in the last 30 minutes.</p>");
    } else {
        events_table(&mut b, last.into_iter());
    }
    b.push_str("</section>");
    ok(&ctx, "Overview", Nav::Overview, Refresh::Live, &b)
}

fn halt_panel(ctx: &Ctx, halt: &HaltStatus) -> String {
    let mut b = String::new();
    let admin = ctx.may("POST", "/api/v1/halt");
    if halt.halted {
        let _ = write!(
            b,
            "<section class=\"halt halted\" aria-labelledby=\"halt-h\"><h2 id=\"halt-h\">Halted</h2><p>Every experiment was stopped and new ones are refused since {}{}{}.</p>",
            halt.since.as_deref().map(html::time).unwrap_or_default(),
            halt.by
                .as_deref()
                .map(|by| format!(" by <strong class=\"halted-by\">{}</strong>", esc(by)))
                .unwrap_or_default(),
            halt.reason
                .as_deref()
                .map(|r| format!(": <q>{}</q>", esc(r)))
                .unwrap_or_default()
        );
        if admin {
            b.push_str(&html::button_form(
                &ctx.session,
                "/unhalt",
                "Release the halt",
                "primary",
                "/",
                None,
            ));
        }
        b.push_str("</section>");
    } else if admin {
        let _ = write!(
            b,
            "<section class=\"halt\" aria-labelledby=\"halt-h\"><h2 id=\"halt-h\">Halt everything</h2>\
<form method=\"post\" action=\"/halt\" class=\"halt-form\">{}\
<p>Stops every running experiment and refuses new ones until released.</p>\
<label for=\"halt-reason\">Reason</label><input id=\"halt-reason\" name=\"reason\" required maxlength=\"500\">\
<label for=\"halt-confirm\">Type <kbd>HALT</kbd> to confirm</label><input id=\"halt-confirm\" name=\"confirm\" required pattern=\"HALT\" autocomplete=\"off\">\
<button class=\"danger big\">Halt all experiments</button></form></section>",
            html::csrf_field(&ctx.session)
        );
    }
    b
}

/// The values a fault imposes, or its actions when it imposes no measurable value.
fn values_in_force(e: &ExperimentObject) -> String {
    let values = super::fault_values(e);
    if values.is_empty() {
        return esc(&e.status.actions.join(", "));
    }
    values
        .iter()
        .map(|(label, v, unit)| format!("{label} {} {unit}", super::trim(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn events_table<'a>(b: &mut String, events: impl Iterator<Item = &'a EventRecord>) {
    b.push_str("<table class=\"grid events\"><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Event</th><th scope=\"col\">Message</th></tr></thead><tbody>");
    for e in events {
        let name = e.name.trim_start_matches("chaoshub.");
        let link = e
            .experiment_uid
            .as_deref()
            .map(|u| format!(" <a href=\"/experiments/{}\">experiment</a>", url(u)))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}{}</td></tr>",
            html::time(&e.time),
            esc(name),
            esc(&e.message),
            link
        );
    }
    b.push_str("</tbody></table>");
}

// ---------------------------------------------------------------------------------------------
// Experiments

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    phase: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    env: Option<String>,
    archived: Option<String>,
    #[serde(rename = "continue")]
    cont: Option<String>,
}

const PAGE_SIZE: usize = 50;

pub async fn experiments(ctx: Ctx, Query(q): Query<ListQuery>) -> PageResult {
    let mut api = format!("/api/v1/experiments?limit={PAGE_SIZE}");
    let mut keep = String::new();
    let fields = [
        ("phase", &q.phase),
        ("kind", &q.kind),
        ("namespace", &q.namespace),
        ("env", &q.env),
    ];
    for (k, v) in fields {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let _ = write!(api, "&{k}={}", url(v));
            let _ = write!(keep, "&{k}={}", url(v));
        }
    }
    let archived = q.archived.as_deref() == Some("true");
    if archived {
        api.push_str("&archived=true");
        keep.push_str("&archived=true");
    }
    if let Some(c) = q.cont.as_deref().filter(|v| !v.is_empty()) {
        let _ = write!(api, "&continue={}", url(c));
    }
    let page: Page<ExperimentObject> = ctx.api.get(&api).await?;

    let mut b = String::with_capacity(32 * 1024);
    live_since(&mut b, &ctx);
    b.push_str(
        "<form method=\"get\" action=\"/experiments\" class=\"filters\" aria-label=\"Filters\">",
    );
    b.push_str("<label>Phase <select name=\"phase\"><option value=\"\">any</option>");
    for p in ExperimentPhase::ALL {
        let sel = if q.phase.as_deref() == Some(p.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(b, "<option{sel}>{}</option>", p.as_str());
    }
    b.push_str("</select></label>");
    for (k, label) in [
        ("kind", "Kind"),
        ("namespace", "Namespace"),
        ("env", "Environment"),
    ] {
        let v = match k {
            "kind" => &q.kind,
            "namespace" => &q.namespace,
            _ => &q.env,
        };
        let _ = write!(
            b,
            "<label>{label} <input name=\"{k}\" value=\"{}\" size=\"14\"></label>",
            esc(v.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        b,
        "<label><input type=\"checkbox\" name=\"archived\" value=\"true\"{}> Archived</label><button>Filter</button></form>",
        if archived { " checked" } else { "" }
    );
    if page.items.is_empty() {
        b.push_str("<p class=\"empty\">No experiment matches.</p>");
    } else {
        b.push_str("<table class=\"grid\" id=\"experiments\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Kind</th><th scope=\"col\">Phase</th><th scope=\"col\">Environment</th><th scope=\"col\">Targets</th><th scope=\"col\">Created</th></tr></thead><tbody>");
        for e in &page.items {
            let _ = write!(
                b,
                "<tr><td><a href=\"/experiments/{}\">{}</a> <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                url(e.metadata.uid.as_deref().unwrap_or("")),
                esc(e.metadata.name.as_deref().unwrap_or("")),
                esc(e.metadata.namespace.as_deref().unwrap_or("default")),
                esc(&e.kind),
                html::phase_badge(e.status.phase.as_str()),
                esc(&e.status.environment),
                e.status.targets.len(),
                html::time(&e.status.created_at)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if q.cont.is_some() {
        let _ = write!(
            b,
            "<a href=\"/experiments?{}\">First page</a>",
            keep.trim_start_matches('&')
        );
    }
    if let Some(next) = &page.continue_token {
        let _ = write!(
            b,
            " <a href=\"/experiments?continue={}{}\" rel=\"next\">Next page</a>",
            url(next),
            keep
        );
    }
    b.push_str("</nav>");
    ok(&ctx, "Experiments", Nav::Experiments, Refresh::Live, &b)
}

pub async fn experiment(ctx: Ctx, Path(uid): Path<String>) -> PageResult {
    let e: ExperimentObject = ctx
        .api
        .get(&format!("/api/v1/experiments/{}", url(&uid)))
        .await?;
    let uid = e.metadata.uid.clone().unwrap_or(uid);
    let events: Page<EventRecord> = ctx
        .api
        .get(&format!(
            "/api/v1/events?experiment={}&limit=1000",
            url(&uid)
        ))
        .await?;
    let name = e.metadata.name.clone().unwrap_or_default();
    let s = &e.status;
    let mut b = String::with_capacity(32 * 1024);
    live_since(&mut b, &ctx);
    let _ = write!(
        b,
        "<p class=\"lead\">{} {} in <strong>{}</strong> (<span class=\"muted\">{}</span>) · namespace {}{}</p>",
        html::phase_badge(s.phase.as_str()),
        esc(&e.kind),
        esc(&s.environment),
        esc(&s.adapter),
        esc(e.metadata.namespace.as_deref().unwrap_or("default")),
        s.reason
            .as_deref()
            .map(|r| format!(" · <q>{}</q>", esc(r)))
            .unwrap_or_default()
    );

    // Buttons: only those the session's role passes and the phase allows.
    b.push_str("<div class=\"actions\">");
    let here = format!("/experiments/{}", url(&uid));
    let active = !s.phase.is_terminal();
    let steer = [
        (
            "pause",
            "Pause",
            "",
            matches!(
                s.phase,
                ExperimentPhase::Pending | ExperimentPhase::Injecting | ExperimentPhase::Running
            ),
            "/api/v1/experiments/{id}/pause",
            "POST",
            None,
        ),
        (
            "resume",
            "Resume",
            "primary",
            s.phase == ExperimentPhase::Paused,
            "/api/v1/experiments/{id}/resume",
            "POST",
            None,
        ),
        (
            "stop",
            "Stop",
            "danger",
            active,
            "/api/v1/experiments/{id}/stop",
            "POST",
            None,
        ),
        (
            "delete",
            "Delete",
            "danger",
            true,
            "/api/v1/experiments/{id}",
            "DELETE",
            Some("Delete this experiment (its faults are removed first)?"),
        ),
    ];
    for (op, label, class, applies, route, method, confirm) in steer {
        if applies && ctx.may(method, route) {
            b.push_str(&html::button_form(
                &ctx.session,
                &format!("{here}/{op}"),
                label,
                class,
                &here,
                confirm,
            ));
        }
    }
    if ctx.may("POST", "/api/v1/experiments") {
        let _ = write!(
            b,
            "<a class=\"button\" href=\"/new?from={}\">Run again…</a>",
            url(&uid)
        );
    }
    b.push_str("</div>");

    b.push_str("<div class=\"cols\"><section aria-labelledby=\"facts\"><h2 id=\"facts\">Status</h2><dl class=\"facts\">");
    let facts = [
        ("Created", Some(html::time(&s.created_at))),
        ("Created by", s.created_by.as_deref().map(esc)),
        ("Started", s.started_at.as_deref().map(html::time)),
        ("Deadline", s.deadline.as_deref().map(html::time)),
        ("Time left", active.then(|| time_left(s, ctx.arrived))),
        ("Ended", s.ended_at.as_deref().map(html::time)),
        ("Actions", Some(esc(&s.actions.join(", ")))),
        ("Value in force", Some(values_in_force(&e))),
        ("Targets matched", Some(s.matched.to_string())),
    ];
    for (k, v) in facts {
        if let Some(v) = v {
            let _ = write!(b, "<dt>{k}</dt><dd>{v}</dd>");
        }
    }
    b.push_str("</dl></section>");

    b.push_str("<section aria-labelledby=\"timeline\"><h2 id=\"timeline\">Timeline</h2>");
    b.push_str(&super::svg::timeline(&e, &events.items));
    b.push_str("</section></div>");

    // Faults on agents' hosts: their CPU and memory from shortly before the fault until it
    // ended (the hub keeps 15 minutes of heartbeats).
    if s.adapter == "native" && !s.targets.is_empty() {
        if let Some(section) = agent_usage_section(&ctx, s).await {
            b.push_str(&section);
        }
    }
    // An experiment a suite ran: its case's steady-state probes over the same time.
    if let Some(run_id) = e.metadata.labels.get("chaoshub.dev/suite-run") {
        let run: Option<chaoshub_schema::suite::SuiteRun> = ctx
            .api
            .get(&format!("/api/v1/suites/runs/{}", url(run_id)))
            .await
            .ok();
        let case = run.as_ref().and_then(|run| {
            run.cases
                .iter()
                .enumerate()
                .find(|(_, c)| c.experiments.iter().any(|x| x.uid == uid))
        });
        if let Some((index, chart)) =
            case.and_then(|(i, c)| super::svg::probes(c).map(|chart| (i, chart)))
        {
            let _ = write!(
                b,
                "<section aria-labelledby=\"probes\"><h2 id=\"probes\">Steady state</h2><p>Probes of suite run <a href=\"/suites/{}#case-{index}\">{}</a> while this experiment ran.</p>{chart}</section>",
                url(run_id),
                esc(run_id)
            );
        }
    }
    if let Some(wf) = &s.workflow {
        b.push_str("<section aria-labelledby=\"wf\"><h2 id=\"wf\">Workflow</h2>");
        b.push_str(&super::svg::workflow(wf));
        b.push_str("</section>");
    }
    if let Some(sch) = &s.schedule {
        b.push_str(&schedule_section(sch));
    }

    b.push_str("<section aria-labelledby=\"targets\"><h2 id=\"targets\">Targets</h2>");
    if s.targets.is_empty() {
        b.push_str("<p class=\"empty\">No target recorded yet.</p>");
    } else {
        b.push_str("<table class=\"grid\"><thead><tr><th scope=\"col\">Target</th><th scope=\"col\">Kind</th><th scope=\"col\">State</th><th scope=\"col\">Injected</th><th scope=\"col\">Recovered</th><th scope=\"col\">Error</th></tr></thead><tbody>");
        for t in &s.targets {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.target.name),
                esc(&t.target.kind),
                html::phase_badge(&format!("{:?}", t.phase)),
                t.injected_at.as_deref().map(html::time).unwrap_or_default(),
                t.recovered_at
                    .as_deref()
                    .map(html::time)
                    .unwrap_or_default(),
                esc(t.error.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    b.push_str("<section aria-labelledby=\"events\"><h2 id=\"events\">Events</h2>");
    events_table(&mut b, events.items.iter());
    b.push_str("</section>");

    let _ = write!(
        b,
        "<section aria-labelledby=\"manifest\"><h2 id=\"manifest\">Manifest</h2><pre class=\"yaml\"><code>{}</code></pre></section>",
        esc(&manifest_yaml(&e))
    );
    ok(&ctx, &name, Nav::Experiments, Refresh::Live, &b)
}

fn schedule_section(sch: &chaoshub_schema::api::ScheduleStatus) -> String {
    let mut b = String::from(
        "<section aria-labelledby=\"sched\"><h2 id=\"sched\">Schedule</h2><dl class=\"facts\">",
    );
    let _ = write!(
        b,
        "<dt>Next run</dt><dd>{}</dd><dt>Last run</dt><dd>{}</dd><dt>Missed</dt><dd>{}</dd><dt>Skipped</dt><dd>{}</dd></dl>",
        sch.next_scheduled_time
            .as_deref()
            .map(html::time)
            .unwrap_or_else(|| "—".into()),
        sch.last_scheduled_time
            .as_deref()
            .map(html::time)
            .unwrap_or_else(|| "—".into()),
        sch.missed,
        sch.skipped
    );
    if !sch.history.is_empty() {
        b.push_str("<table class=\"grid\"><thead><tr><th scope=\"col\">Fire time</th><th scope=\"col\">Run</th><th scope=\"col\">Phase</th><th scope=\"col\">Error</th></tr></thead><tbody>");
        for run in sch.history.iter().rev() {
            let name = match &run.uid {
                Some(uid) => format!(
                    "<a href=\"/experiments/{}\">{}</a>",
                    url(uid),
                    esc(&run.name)
                ),
                None => esc(&run.name),
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{name}</td><td>{}</td><td>{}</td></tr>",
                html::time(&run.scheduled_time),
                run.phase
                    .map(|p| html::phase_badge(p.as_str()))
                    .unwrap_or_default(),
                esc(run.error.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
    b
}

/// The manifest as submitted (without the hub's status and bookkeeping metadata), as YAML.
fn manifest_yaml(e: &ExperimentObject) -> String {
    let mut metadata = serde_json::Map::new();
    if let Some(n) = &e.metadata.name {
        metadata.insert("name".into(), Value::String(n.clone()));
    }
    if let Some(n) = &e.metadata.namespace {
        metadata.insert("namespace".into(), Value::String(n.clone()));
    }
    if !e.metadata.labels.is_empty() {
        metadata.insert("labels".into(), serde_json::json!(e.metadata.labels));
    }
    if !e.metadata.annotations.is_empty() {
        metadata.insert(
            "annotations".into(),
            serde_json::json!(e.metadata.annotations),
        );
    }
    let doc = serde_json::json!({
        "apiVersion": e.api_version,
        "kind": e.kind,
        "metadata": metadata,
        "spec": e.spec,
    });
    chaoshub_schema::document::to_yaml(&doc).unwrap_or_else(|e| format!("# {e}"))
}

#[derive(serde::Deserialize)]
pub struct BackForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    back: Option<String>,
}

/// Pause, resume, stop or delete: the API's own routes.
pub async fn steer(
    ctx: Ctx,
    headers: HeaderMap,
    Path((uid, op)): Path<(String, String)>,
    Form(form): Form<BackForm>,
) -> PageResult {
    check_form(&ctx, &headers, &form.csrf)?;
    let base = format!("/api/v1/experiments/{}", url(&uid));
    let (method, uri) = match op.as_str() {
        "pause" | "resume" | "stop" => (Method::POST, format!("{base}/{op}")),
        "delete" => (Method::DELETE, base),
        _ => {
            return Err(Failure::Form(
                StatusCode::NOT_FOUND,
                format!("no action {op:?} (pause, resume, stop or delete)"),
            ))
        }
    };
    let _: Value = ctx.api.send(method, &uri, None).await?;
    let back = if op == "delete" {
        "/experiments".to_string()
    } else {
        local_path(form.back.as_deref())
    };
    Ok(Redirect::to(&back).into_response())
}

#[derive(serde::Deserialize)]
pub struct HaltForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    reason: String,
}

pub async fn halt(ctx: Ctx, headers: HeaderMap, Form(form): Form<HaltForm>) -> PageResult {
    check_form(&ctx, &headers, &form.csrf)?;
    if form.confirm.trim() != "HALT" {
        return Err(Failure::Form(
            StatusCode::BAD_REQUEST,
            "type HALT in the confirmation field to halt everything".into(),
        ));
    }
    if form.reason.trim().is_empty() {
        return Err(Failure::Form(
            StatusCode::BAD_REQUEST,
            "give the reason for the halt".into(),
        ));
    }
    let body = serde_json::json!({ "reason": form.reason.trim() }).to_string();
    let _: HaltStatus = ctx
        .api
        .send(
            Method::POST,
            "/api/v1/halt",
            Some(("application/json", body)),
        )
        .await?;
    Ok(Redirect::to("/").into_response())
}

pub async fn unhalt(ctx: Ctx, headers: HeaderMap, Form(form): Form<BackForm>) -> PageResult {
    check_form(&ctx, &headers, &form.csrf)?;
    let _: HaltStatus = ctx.api.send(Method::DELETE, "/api/v1/halt", None).await?;
    Ok(Redirect::to("/").into_response())
}

// ---------------------------------------------------------------------------------------------
// New experiment

#[derive(serde::Deserialize, Default)]
pub struct NewQuery {
    from: Option<String>,
}

const SAMPLE: &str = "apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  name: web-delay
spec:
  action: delay
  mode: all
  selector:
    labelSelectors:
      app: web
  delay:
    latency: 100ms
  duration: 2m
";

pub async fn new_form(ctx: Ctx, Query(q): Query<NewQuery>) -> PageResult {
    let yaml = match q.from.as_deref() {
        Some(uid) => {
            let e: ExperimentObject = ctx
                .api
                .get(&format!("/api/v1/experiments/{}", url(uid)))
                .await?;
            manifest_yaml(&e)
        }
        None => SAMPLE.to_string(),
    };
    editor_page(&ctx, &yaml, "", None).await
}

#[derive(serde::Deserialize)]
pub struct NewForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    yaml: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    op: String,
}

/// What the editor shows under the text: a dry run's plan, or the API's refusal.
enum Outcome {
    Plan(Box<DryRunResult>),
    Refused(ApiFailure),
}

pub async fn new_submit(ctx: Ctx, headers: HeaderMap, Form(form): Form<NewForm>) -> PageResult {
    check_form(&ctx, &headers, &form.csrf)?;
    let env = form.env.trim();
    let env_q = if env.is_empty() {
        String::new()
    } else {
        format!("&env={}", url(env))
    };
    let body = Some(("application/yaml", form.yaml.clone()));
    if form.op == "start" {
        match ctx
            .api
            .send::<ExperimentObject>(
                Method::POST,
                &format!("/api/v1/experiments?{}", env_q.trim_start_matches('&')),
                body,
            )
            .await
        {
            Ok(created) => {
                let uid = created.metadata.uid.unwrap_or_default();
                return Ok(Redirect::to(&format!("/experiments/{}", url(&uid))).into_response());
            }
            Err(f) if f.status == 401 => return Err(f.into()),
            Err(f) => {
                return editor_page(&ctx, &form.yaml, env, Some(Outcome::Refused(f))).await;
            }
        }
    }
    let outcome = match ctx
        .api
        .send::<DryRunResult>(
            Method::POST,
            &format!("/api/v1/experiments?dryRun=true{env_q}"),
            body,
        )
        .await
    {
        Ok(plan) => Outcome::Plan(Box::new(plan)),
        Err(f) if f.status == 401 => return Err(f.into()),
        Err(f) => Outcome::Refused(f),
    };
    editor_page(&ctx, &form.yaml, env, Some(outcome)).await
}

async fn editor_page(ctx: &Ctx, yaml: &str, env: &str, outcome: Option<Outcome>) -> PageResult {
    let envs: Page<EnvironmentObject> = ctx.api.get("/api/v1/environments").await?;
    let mut b = String::with_capacity(16 * 1024);
    let refused = matches!(outcome, Some(Outcome::Refused(_)));
    match &outcome {
        Some(Outcome::Refused(f)) => {
            let _ = write!(
                b,
                "<div class=\"notice error\" role=\"alert\" id=\"errors\"><p>{}</p>",
                esc(&f.body.message)
            );
            if !f.body.details.is_empty() {
                b.push_str("<ul class=\"field-errors\">");
                for d in &f.body.details {
                    let _ = write!(
                        b,
                        "<li data-path=\"{0}\"><code>{1}</code> {2}</li>",
                        esc(&d.path),
                        if d.path.is_empty() {
                            "(document)".to_string()
                        } else {
                            esc(&d.path)
                        },
                        esc(&d.message)
                    );
                }
                b.push_str("</ul>");
            }
            b.push_str("</div>");
        }
        Some(Outcome::Plan(plan)) => {
            b.push_str("<section class=\"notice ok\" id=\"plan\" aria-labelledby=\"plan-h\"><h2 id=\"plan-h\">Dry run: valid</h2>");
            if let Some(p) = &plan.plan {
                let _ = write!(
                    b,
                    "<p>{} {} on <strong>{}</strong> ({}), mode {}, {} of {} matching targets{}:</p><ul>",
                    esc(&p.kind),
                    esc(&p.actions.join(", ")),
                    esc(&p.environment),
                    esc(&p.adapter),
                    esc(&p.mode),
                    p.targets.len(),
                    p.matched,
                    p.duration
                        .as_deref()
                        .map(|d| format!(" for {}", esc(d)))
                        .unwrap_or_default()
                );
                for t in &p.targets {
                    let _ = write!(
                        b,
                        "<li>{} <span class=\"muted\">{} {}</span></li>",
                        esc(&t.name),
                        esc(&t.kind),
                        esc(&t.id)
                    );
                }
                b.push_str("</ul>");
            }
            for w in &plan.warnings {
                b.push_str(&html::notice("warn", w));
            }
            b.push_str("</section>");
        }
        None => {}
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/new\" class=\"editor\" id=\"editor\">{}\
<label for=\"yaml\">Manifest (YAML or JSON)</label>\
<div class=\"code-area\"><textarea id=\"yaml\" name=\"yaml\" rows=\"22\" spellcheck=\"false\" autocapitalize=\"off\"{}>{}</textarea></div>\
<label for=\"env\">Environment</label><select id=\"env\" name=\"env\"><option value=\"\">as in the manifest (spec.environment)</option>",
        html::csrf_field(&ctx.session),
        if refused { " aria-invalid=\"true\" aria-describedby=\"errors\"" } else { "" },
        esc(yaml)
    );
    environment_options(&mut b, &envs.items, env);
    b.push_str("</select><div class=\"actions\"><button name=\"op\" value=\"check\" class=\"secondary\">Validate and dry run</button>");
    if matches!(outcome, Some(Outcome::Plan(_))) {
        b.push_str(
            "<button name=\"op\" value=\"start\" class=\"primary\" id=\"start\">Start</button>",
        );
    } else {
        b.push_str("<button name=\"op\" value=\"start\" class=\"primary\" id=\"start\" title=\"starts without a dry run\">Start without dry run</button>");
    }
    b.push_str("</div></form>");
    let status = if refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(html_response(
        status,
        html::page(
            "New experiment",
            Nav::New,
            Some(&ctx.session),
            Refresh::Static,
            &b,
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// Environments and agents

pub async fn environments(ctx: Ctx) -> PageResult {
    let (envs, agents, adapters, matrix) = tokio::join!(
        ctx.api
            .get::<Page<EnvironmentObject>>("/api/v1/environments"),
        all_agents(&ctx),
        ctx.api.get::<Page<AdapterInfo>>("/api/v1/adapters"),
        ctx.api.get::<ConformanceMatrix>("/api/v1/conformance"),
    );
    let (envs, agents, adapters, matrix) = (envs?, agents?, adapters?, matrix?);
    let mut b = String::with_capacity(16 * 1024);
    live_since(&mut b, &ctx);
    b.push_str("<p>What each adapter type can run, and what a test measured on a real far side: <a href=\"/conformance\">the conformance matrix</a>.</p>");
    if envs.items.is_empty() {
        b.push_str("<p class=\"empty\">No environment is registered (<code>chaoshub env add</code> or <code>POST /api/v1/environments</code>).</p>");
    }
    for env in &envs.items {
        let name = env.metadata.name.clone().unwrap_or_default();
        let _ = write!(
            b,
            "<section class=\"card\" id=\"env-{0}\" aria-labelledby=\"env-h-{0}\"><h2 id=\"env-h-{0}\">{0} <span class=\"muted\">{1}</span></h2>",
            esc(&name),
            esc(&env.spec.adapter)
        );
        if let Some(d) = &env.spec.description {
            let _ = write!(b, "<p>{}</p>", esc(d));
        }
        b.push_str("<dl class=\"facts\">");
        if let Some(ep) = &env.spec.endpoint {
            let _ = write!(b, "<dt>Endpoint</dt><dd><code>{}</code></dd>", esc(ep));
        }
        if !env.spec.labels.is_empty() {
            let labels: Vec<String> = env
                .spec
                .labels
                .iter()
                .map(|(k, v)| format!("<code>{}={}</code>", esc(k), esc(v)))
                .collect();
            let _ = write!(b, "<dt>Labels</dt><dd>{}</dd>", labels.join(" "));
        }
        if let Some(st) = &env.status {
            environment_status(&mut b, st);
        }
        if matrix.adapters.contains(&env.spec.adapter) {
            conformance_summary(&mut b, &matrix, &env.spec.adapter);
        } else if let Some(a) = adapters
            .items
            .iter()
            .find(|a| a.adapter_type == env.spec.adapter)
        {
            let mut by_kind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for c in &a.capabilities {
                by_kind.entry(&c.kind).or_default().push(&c.action);
            }
            let caps: Vec<String> = by_kind
                .iter()
                .map(|(k, acts)| format!("{} ({})", esc(k), esc(&acts.join(", "))))
                .collect();
            let _ = write!(
                b,
                "<dt>Adapter can run</dt><dd>{}{}</dd>",
                caps.join("; "),
                if a.dynamic_capabilities {
                    " <span class=\"muted\">(and what the environment reports)</span>"
                } else {
                    ""
                }
            );
        }
        b.push_str("</dl>");
        let env_agents: Vec<&AgentInfo> = agents
            .items
            .iter()
            .filter(|a| a.environment == name)
            .collect();
        if !env_agents.is_empty() {
            b.push_str("<table class=\"grid\"><thead><tr><th scope=\"col\">Agent</th><th scope=\"col\">Health</th><th scope=\"col\">Last heartbeat</th><th scope=\"col\">Faults held</th><th scope=\"col\">Host now</th><th scope=\"col\">Kernel mechanisms</th><th scope=\"col\">Version</th></tr></thead><tbody>");
            for a in env_agents {
                let mech = serde_json::to_value(&a.mechanisms)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .map(|m| {
                        m.iter()
                            .filter(|(_, v)| v.as_bool() == Some(true))
                            .map(|(k, _)| k.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let _ = write!(
                    b,
                    "<tr><td>{} <span class=\"muted\">{}</span></td><td><span class=\"badge health-{}\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&a.name),
                    esc(&a.hostname),
                    if a.health == "healthy" { "ok" } else { "bad" },
                    esc(&a.health),
                    a.last_heartbeat
                        .map(|t| html::time(&crate::time::format(t)))
                        .unwrap_or_default(),
                    a.active_faults,
                    a.usage
                        .as_ref()
                        .map(|u| format!(
                            "CPU {:.0} % · memory {:.1} of {:.1} GiB · load {:.2}",
                            u.cpu_percent,
                            u.mem_used_bytes as f64 / f64::from(1u32 << 30),
                            u.mem_total_bytes as f64 / f64::from(1u32 << 30),
                            u.load1
                        ))
                        .unwrap_or_else(|| "not reported".into()),
                    esc(&mech),
                    esc(&a.version)
                );
            }
            b.push_str("</tbody></table>");
        }
        b.push_str("</section>");
    }
    ok(
        &ctx,
        "Environments and agents",
        Nav::Environments,
        Refresh::Live,
        &b,
    )
}

/// The CPU and memory chart of the agents an experiment's targets are (at most four), from
/// 30 s before the first injection; `None` when no agent has samples for that time.
async fn agent_usage_section(ctx: &Ctx, s: &ExperimentStatus) -> Option<String> {
    let parse = |t: &Option<String>| t.as_deref().and_then(crate::time::parse);
    let from = s
        .targets
        .iter()
        .filter_map(|t| parse(&t.injected_at))
        .min()?;
    let until = s
        .targets
        .iter()
        .filter_map(|t| parse(&t.recovered_at))
        .max()
        .filter(|_| s.phase.is_terminal())
        .unwrap_or_else(crate::time::now);
    let since = crate::time::format(from - chrono::Duration::seconds(30));
    // The (at most four) agents are asked at once: the page waits for the slowest, not the sum.
    let end = until + chrono::Duration::seconds(30);
    let asks = s.targets.iter().take(4).map(|t| {
        let uri = format!(
            "/api/v1/agents/{}/{}/usage?since={}",
            url(&t.target.environment),
            url(&t.target.id),
            url(&since)
        );
        async move {
            let page = ctx
                .api
                .get::<Page<chaoshub_schema::api::AgentUsage>>(&uri)
                .await
                .ok()?;
            let samples: Vec<_> = page.items.into_iter().filter(|u| u.at <= end).collect();
            (!samples.is_empty()).then(|| (t.target.name.clone(), samples))
        }
    });
    let series: Vec<_> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let chart = super::svg::usage(&series, Some((from, until)))?;
    Some(format!(
        "<section aria-labelledby=\"usage\"><h2 id=\"usage\">Agent hosts</h2><p>CPU and memory of the targets' hosts, reported with each heartbeat.</p>{chart}</section>"
    ))
}

/// What the adapter's last check of the far side found (`EnvironmentStatus`): reachable or
/// not, when, the problems in plain words, and each detail as text (lists joined, nothing
/// shown as raw JSON).
fn environment_status(b: &mut String, st: &chaoshub_schema::api::EnvironmentStatus) {
    fn text(v: &Value) -> String {
        match v {
            Value::Null => "unknown".into(),
            Value::String(s) => s.clone(),
            Value::Bool(true) => "yes".into(),
            Value::Bool(false) => "no".into(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) if items.is_empty() => "none".into(),
            Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{k}: {}", text(v)))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
    let _ = write!(
        b,
        "<dt>Far side</dt><dd>{} <span class=\"muted\">checked {}</span>",
        if st.reachable {
            "<span class=\"badge health-ok\">reachable</span>"
        } else {
            "<span class=\"badge health-bad\">unreachable</span>"
        },
        html::time(&st.checked_at)
    );
    if !st.problems.is_empty() {
        b.push_str("<ul class=\"plain problems\">");
        for p in &st.problems {
            let _ = write!(b, "<li>{}</li>", esc(p));
        }
        b.push_str("</ul>");
    }
    b.push_str("</dd>");
    for (key, value) in &st.details {
        // camelCase keys as words: `chaosMeshVersion` → "chaos mesh version".
        let mut label = String::new();
        for c in key.chars() {
            if c.is_ascii_uppercase() {
                label.push(' ');
                label.push(c.to_ascii_lowercase());
            } else {
                label.push(c);
            }
        }
        let _ = write!(b, "<dt>{}</dt><dd>{}</dd>", esc(&label), esc(&text(value)));
    }
}

/// An environment's adapter in the conformance matrix: counts by state, and the supported
/// faults by kind, each marked when a test measured its effect on a real far side.
fn conformance_summary(b: &mut String, matrix: &ConformanceMatrix, adapter: &str) {
    let cells: Vec<(
        &chaoshub_schema::api::ConformanceRow,
        &chaoshub_schema::api::ConformanceCell,
    )> = matrix
        .rows
        .iter()
        .filter_map(|r| Some((r, r.cells.get(adapter)?)))
        .collect();
    let count = |state: &str| cells.iter().filter(|(_, c)| c.state == state).count();
    let measured = cells.iter().filter(|(_, c)| c.measured.is_some()).count();
    let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (row, cell) in &cells {
        if cell.state != "supported" && cell.state != "dynamic" {
            continue;
        }
        let what = match &row.option {
            Some(o) => format!("{} ({})", esc(&row.action), esc(o)),
            None => esc(&row.action),
        };
        let entry = match &cell.measured {
            Some(m) => format!(
                "<span class=\"measured\" title=\"{}\">{what} ✓</span>",
                esc(&format!("{} — {}", m.figure, m.test))
            ),
            None => what,
        };
        let list = by_kind.entry(row.kind.as_str()).or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
    let _ = write!(
        b,
        "<dt>Conformance</dt><dd><a href=\"/conformance#adapter-{0}\">{1} supported</a> ({measured} measured ✓) · {2} refused · {3} not applicable{4}",
        esc(adapter),
        count("supported"),
        count("refused"),
        count("n/a"),
        if count("dynamic") > 0 {
            format!(" · {} declared by the environment", count("dynamic"))
        } else {
            String::new()
        }
    );
    if !by_kind.is_empty() {
        b.push_str("<ul class=\"plain caps\">");
        for (kind, entries) in &by_kind {
            let _ = write!(
                b,
                "<li><strong>{}</strong>: {}</li>",
                esc(kind),
                entries.join(", ")
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</dd>");
}

/// `/conformance`: every row of the matrix against every adapter type, with the refusal's
/// message, why a cell is not applicable, and the measured figure with its test.
pub async fn conformance(ctx: Ctx) -> PageResult {
    let matrix: ConformanceMatrix = ctx.api.get("/api/v1/conformance").await?;
    let mut b = String::with_capacity(32 * 1024);
    b.push_str("<p class=\"lead\">Each Chaos Mesh kind and action against each adapter type: <strong>measured</strong> (a test measured the effect on a real far side; hover for the figure and the test), <strong>supported</strong> (accepted, no measuring test here), <strong>refused</strong> (a 422 saying what runs instead) or <strong>n/a</strong> (impossible on that far side). The same cells decide every submission (docs/conformance.md; <code>GET /api/v1/conformance</code>).</p>");
    b.push_str("<div class=\"scroll\"><table class=\"grid matrix\"><thead><tr><th scope=\"col\">Fault</th>");
    for a in &matrix.adapters {
        let _ = write!(b, "<th scope=\"col\" id=\"adapter-{0}\">{0}</th>", esc(a));
    }
    b.push_str("</tr></thead><tbody>");
    for row in &matrix.rows {
        let _ = write!(b, "<tr><th scope=\"row\">{}</th>", esc(&row.id));
        for a in &matrix.adapters {
            let Some(cell) = row.cells.get(a) else {
                b.push_str("<td></td>");
                continue;
            };
            let (class, text, title) = match (&cell.measured, cell.state.as_str()) {
                (Some(m), _) => (
                    "cell-measured",
                    format!("measured: {}", m.figure),
                    format!("{} ({})", m.test, m.measured),
                ),
                (None, "supported") => (
                    "cell-supported",
                    "supported".to_string(),
                    "no measuring test on this project's machines".to_string(),
                ),
                (None, state) => (
                    if state == "refused" {
                        "cell-refused"
                    } else {
                        "cell-na"
                    },
                    state.to_string(),
                    cell.message.clone().unwrap_or_default(),
                ),
            };
            let _ = write!(
                b,
                "<td class=\"{class}\" title=\"{}\">{}</td>",
                esc(&title),
                esc(&text)
            );
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table></div>");
    ok(&ctx, "Conformance", Nav::Environments, Refresh::Static, &b)
}

// ---------------------------------------------------------------------------------------------
// Catalog

#[derive(serde::Deserialize, Default)]
pub struct CatalogQuery {
    q: Option<String>,
    category: Option<String>,
    tag: Option<String>,
    adapter: Option<String>,
    kind: Option<String>,
}

pub async fn catalog(ctx: Ctx, Query(q): Query<CatalogQuery>) -> PageResult {
    let mut api = String::from("/api/v1/templates?");
    let mut set = Vec::new();
    for (k, v) in [
        ("q", &q.q),
        ("category", &q.category),
        ("tag", &q.tag),
        ("adapter", &q.adapter),
        ("kind", &q.kind),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let _ = write!(api, "{k}={}&", url(v));
            set.push((k, v.to_string()));
        }
    }
    let list: TemplateList = ctx.api.get(api.trim_end_matches(['&', '?'])).await?;
    let mut b = String::with_capacity(32 * 1024);
    let _ = write!(
        b,
        "<form method=\"get\" action=\"/catalog\" class=\"filters\" role=\"search\"><label>Search <input type=\"search\" name=\"q\" value=\"{}\"></label><button>Search</button></form><div class=\"catalog\"><aside aria-label=\"Facets\">",
        esc(q.q.as_deref().unwrap_or(""))
    );
    let facets = [
        ("category", "Category", &list.facets.category),
        ("kind", "Kind", &list.facets.kind),
        ("adapter", "Adapter", &list.facets.adapter),
        ("tag", "Tag", &list.facets.tag),
    ];
    for (key, label, counts) in facets {
        let _ = write!(b, "<h2>{label}</h2><ul class=\"plain facets\">");
        for (value, n) in counts.iter() {
            let active = set.iter().any(|(k, v)| k == &key && v == value);
            let mut params: Vec<(&str, String)> =
                set.iter().filter(|(k, _)| *k != key).cloned().collect();
            if !active {
                params.push((key, value.clone()));
            }
            let href: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", url(v)))
                .collect();
            let _ = write!(
                b,
                "<li><a href=\"/catalog?{}\"{}>{} <span class=\"muted\">{n}</span></a></li>",
                href.join("&"),
                if active {
                    " aria-current=\"true\" class=\"active\""
                } else {
                    ""
                },
                esc(value)
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(
        b,
        "</aside><div><p class=\"muted\">{} templates</p><ul class=\"cards\">",
        list.total
    );
    for t in &list.items {
        let _ = write!(
            b,
            "<li class=\"card\"><h3><a href=\"/catalog/{}\">{}</a></h3><p>{}</p><p class=\"muted\">{} · {} {} · {}</p></li>",
            url(&t.name),
            esc(&t.title),
            esc(&t.description),
            esc(&t.category),
            esc(&t.kind),
            esc(&t.actions.join(", ")),
            esc(&t.adapters.join(", "))
        );
    }
    b.push_str("</ul></div></div>");
    let remotes: Result<Page<chaoshub_schema::template_spec::CatalogObject>, _> =
        ctx.api.get("/api/v1/catalogs").await;
    if let Ok(remotes) = remotes {
        if !remotes.items.is_empty() {
            remote_catalogs(&mut b, &remotes.items);
        }
    }
    ok(&ctx, "Catalog", Nav::Catalog, Refresh::Static, &b)
}

pub async fn template(ctx: Ctx, Path(name): Path<String>) -> PageResult {
    template_page(&ctx, &name, &BTreeMap::new(), "", None).await
}

fn parameters_of(detail: &TemplateDetail) -> Vec<TemplateParameter> {
    detail
        .template
        .pointer("/spec/parameters")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

enum TemplateOutcome {
    Rendered(String),
    Refused(ApiFailure),
}

async fn template_page(
    ctx: &Ctx,
    name: &str,
    values: &BTreeMap<String, String>,
    env: &str,
    outcome: Option<TemplateOutcome>,
) -> PageResult {
    let detail: TemplateDetail = ctx
        .api
        .get(&format!("/api/v1/templates/{}", url(name)))
        .await?;
    let envs: Page<EnvironmentObject> = ctx.api.get("/api/v1/environments").await?;
    let s = &detail.summary;
    let mut b = String::with_capacity(16 * 1024);
    let _ = write!(
        b,
        "<p class=\"lead\">{}</p><p class=\"muted\">{} · {} {} · adapters: {} · tags: {}</p>",
        esc(&s.description),
        esc(&s.category),
        esc(&s.kind),
        esc(&s.actions.join(", ")),
        esc(&s.adapters.join(", ")),
        esc(&s.tags.join(", "))
    );
    if s.kind == "Workflow" {
        let _ = write!(
            b,
            "<p><a href=\"/workflows/new?template={}\" id=\"edit-in-builder\">Edit in the workflow builder</a></p>",
            esc(&url(name))
        );
    }
    // The form's outcome: what a Preview (the script's live one too, which swaps this block
    // from the same page rendered for the form's current values) or a refused Run produced.
    b.push_str("<div id=\"template-result\" aria-live=\"polite\">");
    match &outcome {
        Some(TemplateOutcome::Refused(f)) => {
            let mut text = f.body.message.clone();
            for d in &f.body.details {
                let _ = write!(text, "; {}: {}", d.path, d.message);
            }
            b.push_str(&html::notice("error", &text));
        }
        Some(TemplateOutcome::Rendered(yaml)) => {
            let _ = write!(
                b,
                "<section aria-labelledby=\"preview\"><h2 id=\"preview\">Preview</h2><pre class=\"yaml\" id=\"rendered\"><code>{}</code></pre></section>",
                esc(yaml)
            );
        }
        None => {}
    }
    b.push_str("</div>");
    let may_run = ctx.may("POST", "/api/v1/templates/{name}/run");
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/catalog/{}\" class=\"editor\" id=\"template-form\">{}<fieldset><legend>Parameters</legend>",
        esc(&url(name)),
        html::csrf_field(&ctx.session)
    );
    for p in parameters_of(&detail) {
        let id = format!("p-{}", esc(&p.name));
        let current = values
            .get(&p.name)
            .cloned()
            .or_else(|| p.default.as_ref().map(value_text))
            .unwrap_or_default();
        let desc = format!(
            "<small id=\"{id}-d\">{}{}</small>",
            esc(&p.description),
            range_text(&p)
        );
        let required = if p.required { " required" } else { "" };
        match p.param_type {
            ParameterType::Boolean => {
                let _ = write!(
                    b,
                    "<div class=\"field\"><label><input type=\"checkbox\" id=\"{id}\" name=\"p.{0}\" value=\"true\"{1} aria-describedby=\"{id}-d\"> {0}</label>{desc}</div>",
                    esc(&p.name),
                    if current == "true" { " checked" } else { "" }
                );
            }
            ParameterType::Enum => {
                let _ = write!(
                    b,
                    "<div class=\"field\"><label for=\"{id}\">{}</label><select id=\"{id}\" name=\"p.{}\" aria-describedby=\"{id}-d\"{required}>",
                    esc(&p.name),
                    esc(&p.name)
                );
                for v in &p.values {
                    let _ = write!(
                        b,
                        "<option{}>{}</option>",
                        if *v == current { " selected" } else { "" },
                        esc(v)
                    );
                }
                let _ = write!(b, "</select>{desc}</div>");
            }
            ParameterType::Integer | ParameterType::Number | ParameterType::Percent => {
                let step = if p.param_type == ParameterType::Integer {
                    "1"
                } else {
                    "any"
                };
                let min = p
                    .min
                    .as_ref()
                    .map(|m| format!(" min=\"{}\"", esc(&value_text(m))))
                    .unwrap_or_else(|| {
                        if p.param_type == ParameterType::Percent {
                            " min=\"0\"".into()
                        } else {
                            String::new()
                        }
                    });
                let max = p
                    .max
                    .as_ref()
                    .map(|m| format!(" max=\"{}\"", esc(&value_text(m))))
                    .unwrap_or_else(|| {
                        if p.param_type == ParameterType::Percent {
                            " max=\"100\"".into()
                        } else {
                            String::new()
                        }
                    });
                let _ = write!(
                    b,
                    "<div class=\"field\"><label for=\"{id}\">{0}</label><input type=\"number\" step=\"{step}\"{min}{max} id=\"{id}\" name=\"p.{0}\" value=\"{1}\" aria-describedby=\"{id}-d\"{required}>{desc}</div>",
                    esc(&p.name),
                    esc(&current)
                );
            }
            ParameterType::String | ParameterType::Duration => {
                let _ = write!(
                    b,
                    "<div class=\"field\"><label for=\"{id}\">{0}</label><input id=\"{id}\" name=\"p.{0}\" value=\"{1}\" aria-describedby=\"{id}-d\"{required}>{desc}</div>",
                    esc(&p.name),
                    esc(&current)
                );
            }
        }
    }
    b.push_str("</fieldset><label for=\"env\">Environment</label><select id=\"env\" name=\"env\">");
    environment_options(&mut b, &envs.items, env);
    b.push_str("</select><div class=\"actions\"><button name=\"op\" value=\"preview\" class=\"secondary\">Preview</button>");
    if may_run {
        b.push_str("<button name=\"op\" value=\"run\" class=\"primary\" id=\"run\">Run on environment</button>");
    }
    b.push_str("</div></form>");
    let status = if matches!(outcome, Some(TemplateOutcome::Refused(_))) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(html_response(
        status,
        html::page(
            &s.title,
            Nav::Catalog,
            Some(&ctx.session),
            Refresh::Static,
            &b,
        ),
    ))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn range_text(p: &TemplateParameter) -> String {
    let mut parts = vec![format!("{:?}", p.param_type).to_ascii_lowercase()];
    if let Some(m) = &p.min {
        parts.push(format!("min {}", value_text(m)));
    }
    if let Some(m) = &p.max {
        parts.push(format!("max {}", value_text(m)));
    }
    if let Some(d) = &p.default {
        parts.push(format!("default {}", value_text(d)));
    }
    format!(" <span class=\"muted\">({})</span>", esc(&parts.join(", ")))
}

/// Preview (render) or run a template with the form's parameters, through the API.
pub async fn template_submit(
    ctx: Ctx,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    check_form(&ctx, &headers, &get("_csrf"))?;
    let detail: TemplateDetail = ctx
        .api
        .get(&format!("/api/v1/templates/{}", url(&name)))
        .await?;
    let mut values = BTreeMap::new();
    let mut parameters = serde_json::Map::new();
    for p in parameters_of(&detail) {
        let raw = fields
            .iter()
            .find(|(n, _)| n.strip_prefix("p.") == Some(p.name.as_str()))
            .map(|(_, v)| v.trim().to_string());
        let value = match (p.param_type, raw) {
            (ParameterType::Boolean, raw) => {
                values.insert(p.name.clone(), raw.clone().unwrap_or_default());
                Some(Value::Bool(raw.as_deref() == Some("true")))
            }
            (_, None) => None,
            (_, Some(r)) if r.is_empty() => None,
            (ParameterType::Integer, Some(r)) => {
                values.insert(p.name.clone(), r.clone());
                Some(
                    r.parse::<i64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(r)),
                )
            }
            (ParameterType::Number | ParameterType::Percent, Some(r)) => {
                values.insert(p.name.clone(), r.clone());
                Some(
                    r.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or(Value::String(r)),
                )
            }
            (_, Some(r)) => {
                values.insert(p.name.clone(), r.clone());
                Some(Value::String(r))
            }
        };
        if let Some(v) = value {
            parameters.insert(p.name.clone(), v);
        }
    }
    let env = get("env");
    let mut request = serde_json::json!({ "parameters": parameters });
    if !env.is_empty() {
        request["env"] = Value::String(env.clone());
    }
    let body = Some(("application/json", request.to_string()));
    if get("op") == "run" {
        match ctx
            .api
            .send::<ExperimentObject>(
                Method::POST,
                &format!("/api/v1/templates/{}/run", url(&name)),
                body,
            )
            .await
        {
            Ok(created) => {
                let uid = created.metadata.uid.unwrap_or_default();
                Ok(Redirect::to(&format!("/experiments/{}", url(&uid))).into_response())
            }
            Err(f) if f.status == 401 => Err(f.into()),
            Err(f) => {
                template_page(
                    &ctx,
                    &name,
                    &values,
                    &env,
                    Some(TemplateOutcome::Refused(f)),
                )
                .await
            }
        }
    } else {
        let outcome = match ctx
            .api
            .send::<Value>(
                Method::POST,
                &format!("/api/v1/templates/{}/render", url(&name)),
                body,
            )
            .await
        {
            Ok(rendered) => {
                let manifest = rendered.get("manifest").cloned().unwrap_or(rendered);
                TemplateOutcome::Rendered(
                    chaoshub_schema::document::to_yaml(&manifest)
                        .unwrap_or_else(|e| format!("# {e}")),
                )
            }
            Err(f) if f.status == 401 => return Err(f.into()),
            Err(f) => TemplateOutcome::Refused(f),
        };
        let page = template_page(&ctx, &name, &values, &env, Some(outcome)).await;
        // The script's live preview shows a refusal in the page (a 422 there would only add a
        // failed request to the browser's console while someone is still typing).
        if get("live") == "1" {
            return page.map(|mut response| {
                *response.status_mut() = StatusCode::OK;
                response
            });
        }
        page
    }
}

// ---------------------------------------------------------------------------------------------
// Schedules, workflows and suites

pub async fn orchestration(ctx: Ctx) -> PageResult {
    let (schedules, workflows) = tokio::join!(
        ctx.api
            .get::<Page<ExperimentObject>>("/api/v1/experiments?kind=Schedule&limit=100"),
        ctx.api
            .get::<Page<ExperimentObject>>("/api/v1/experiments?kind=Workflow&limit=100"),
    );
    let (schedules, workflows) = (schedules?, workflows?);
    let mut b = String::with_capacity(16 * 1024);
    live_since(&mut b, &ctx);
    b.push_str("<section aria-labelledby=\"sch\"><h2 id=\"sch\">Schedules</h2>");
    if schedules.items.is_empty() {
        b.push_str("<p class=\"empty\">No schedule.</p>");
    } else {
        b.push_str("<table class=\"grid\"><thead><tr><th scope=\"col\">Schedule</th><th scope=\"col\">Phase</th><th scope=\"col\">Next run</th><th scope=\"col\">Last run</th><th scope=\"col\">Runs</th></tr></thead><tbody>");
        for e in &schedules.items {
            let sch = e.status.schedule.as_deref();
            let _ = write!(
                b,
                "<tr><td><a href=\"/experiments/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                url(e.metadata.uid.as_deref().unwrap_or("")),
                esc(e.metadata.name.as_deref().unwrap_or("")),
                html::phase_badge(e.status.phase.as_str()),
                sch.and_then(|s| s.next_scheduled_time.as_deref())
                    .map(html::time)
                    .unwrap_or_else(|| "—".into()),
                sch.and_then(|s| s.last_scheduled_time.as_deref())
                    .map(html::time)
                    .unwrap_or_else(|| "—".into()),
                sch.map(|s| s.history.len()).unwrap_or(0)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section><section aria-labelledby=\"wfs\"><h2 id=\"wfs\">Workflows</h2><p><a href=\"/workflows/new\">Build a workflow</a> by dragging nodes.</p>");
    if workflows.items.is_empty() {
        b.push_str("<p class=\"empty\">No workflow.</p>");
    }
    for e in &workflows.items {
        let _ = write!(
            b,
            "<article class=\"card\"><h3><a href=\"/experiments/{}\">{}</a> {}</h3>",
            url(e.metadata.uid.as_deref().unwrap_or("")),
            esc(e.metadata.name.as_deref().unwrap_or("")),
            html::phase_badge(e.status.phase.as_str())
        );
        if let Some(wf) = &e.status.workflow {
            b.push_str(&super::svg::workflow(wf));
        }
        let _ = write!(
            b,
            "<p><a href=\"/workflows/new?from={}\">Open a copy in the workflow builder</a></p></article>",
            url(e.metadata.uid.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</section>");
    ok(
        &ctx,
        "Schedules and workflows",
        Nav::Orchestration,
        Refresh::Live,
        &b,
    )
}

pub async fn suites(ctx: Ctx) -> PageResult {
    let runs: Page<SuiteRunSummary> = ctx.api.get("/api/v1/suites/runs").await?;
    let mut b = String::with_capacity(8 * 1024);
    live_since(&mut b, &ctx);
    if runs.items.is_empty() {
        b.push_str("<p class=\"empty\">No suite run (<code>chaoshub run suite.yaml</code>).</p>");
    } else {
        b.push_str("<table class=\"grid\"><thead><tr><th scope=\"col\">Suite</th><th scope=\"col\">Verdict</th><th scope=\"col\">Cases</th><th scope=\"col\">Passed</th><th scope=\"col\">Failed</th><th scope=\"col\">Errors</th><th scope=\"col\">Started</th></tr></thead><tbody>");
        for r in &runs.items {
            let _ = write!(
                b,
                "<tr><td><a href=\"/suites/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                url(&r.id),
                esc(&r.suite),
                html::phase_badge(r.phase.as_str()),
                r.summary.cases,
                r.summary.passed,
                r.summary.failed,
                r.summary.errors,
                html::time(&r.created_at)
            );
        }
        b.push_str("</tbody></table>");
    }
    ok(&ctx, "Suites", Nav::Suites, Refresh::Live, &b)
}

pub async fn suite_run(ctx: Ctx, Path(id): Path<String>) -> PageResult {
    let run: chaoshub_schema::suite::SuiteRun = ctx
        .api
        .get(&format!("/api/v1/suites/runs/{}", url(&id)))
        .await?;
    let mut b = String::with_capacity(16 * 1024);
    live_since(&mut b, &ctx);
    let _ = write!(
        b,
        "<p class=\"lead\">{} · {} cases, {} passed, {} failed, {} errors, {} skipped</p>",
        html::phase_badge(run.phase.as_str()),
        run.summary.cases,
        run.summary.passed,
        run.summary.failed,
        run.summary.errors,
        run.summary.skipped
    );
    b.push_str("<table class=\"grid\"><thead><tr><th scope=\"col\">Experiment</th><th scope=\"col\">Environment</th><th scope=\"col\">Outcome</th><th scope=\"col\">Message</th><th scope=\"col\">Runs</th></tr></thead><tbody>");
    for c in &run.cases {
        let exps: Vec<String> = c
            .experiments
            .iter()
            .map(|x| {
                format!(
                    "<a href=\"/experiments/{}\">{}</a> {}",
                    url(&x.uid),
                    esc(&x.name),
                    html::phase_badge(&x.phase)
                )
            })
            .collect();
        let outcome = format!("{:?}", c.outcome);
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.experiment),
            esc(&c.environment),
            html::phase_badge(&outcome),
            esc(c.message.as_deref().unwrap_or("")),
            exps.join("<br>")
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<p class=\"actions\"><a href=\"/suites/{0}/junit.xml\" download>JUnit report (XML)</a> · <a href=\"/suites/{0}/report.json\" download>JSON journal</a></p>",
        url(&run.id)
    );
    b.push_str("<section aria-labelledby=\"evidence\"><h2 id=\"evidence\">Evidence by case</h2>");
    for (i, c) in run.cases.iter().enumerate() {
        case_evidence(&mut b, i, c);
    }
    b.push_str("</section><section aria-labelledby=\"log\"><h2 id=\"log\">Log</h2><ul class=\"plain log\">");
    for l in &run.log {
        let _ = write!(b, "<li>{} {}</li>", html::time(&l.at), esc(&l.message));
    }
    b.push_str("</ul></section>");
    ok(&ctx, &run.suite, Nav::Suites, Refresh::Live, &b)
}

/// One case's evidence, folded: the steady-state probe results before, during and after the
/// fault, and a threshold search's steps (chart and table).
fn case_evidence(b: &mut String, index: usize, c: &chaoshub_schema::suite::SuiteCase) {
    let probes = [
        ("before", &c.steady_state.before),
        ("during", &c.steady_state.during),
        ("after", &c.steady_state.after),
    ];
    let count: usize = probes.iter().map(|(_, p)| p.len()).sum();
    let _ = write!(
        b,
        "<details class=\"case\" id=\"case-{index}\"{}><summary>{} on {} · {} · expected to {} · {count} probe result(s){}</summary>",
        if matches!(c.outcome, chaoshub_schema::suite::CaseOutcome::Passed) { "" } else { " open" },
        esc(&c.experiment),
        esc(&c.environment),
        html::phase_badge(&format!("{:?}", c.outcome)),
        match c.expect {
            chaoshub_schema::suite::Expectation::Hold => "hold",
            chaoshub_schema::suite::Expectation::Deviate => "deviate",
        },
        if c.threshold.is_some() { " · threshold search" } else { "" }
    );
    if let Some(chart) = super::svg::probes(c) {
        b.push_str(&chart);
    }
    if count > 0 {
        b.push_str("<table class=\"grid\"><caption>Steady-state probes</caption><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Probe</th><th scope=\"col\">At</th><th scope=\"col\">Result</th><th scope=\"col\">Took</th><th scope=\"col\">Evidence</th></tr></thead><tbody>");
        for (when, results) in probes {
            for p in results.iter() {
                let _ = write!(
                    b,
                    "<tr><td>{when}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td><code class=\"evidence\">{}</code></td></tr>",
                    esc(&p.probe),
                    html::time(&p.at),
                    if p.ok { "<span class=\"badge phase-succeeded\">ok</span>" } else { "<span class=\"badge phase-failed\">failed</span>" },
                    p.duration_ms,
                    esc(&p.detail)
                );
            }
        }
        b.push_str("</tbody></table>");
    }
    if let Some(t) = &c.threshold {
        let unit = t.unit.as_deref().unwrap_or("");
        let _ = write!(
            b,
            "<p>Threshold search on <code>{}</code>: tolerated up to <strong>{}</strong>, first failing at <strong>{}</strong> (ended by {}).</p>",
            esc(&t.parameter),
            t.tolerated.map(|v| format!("{} {}", super::trim(v), esc(unit))).unwrap_or_else(|| "none".into()),
            t.first_failing.map(|v| format!("{} {}", super::trim(v), esc(unit))).unwrap_or_else(|| "none".into()),
            esc(&t.ended_by)
        );
        if !t.steps.is_empty() {
            b.push_str(&super::svg::threshold(t));
            b.push_str("<table class=\"grid\"><caption>Steps</caption><thead><tr><th scope=\"col\">Step</th><th scope=\"col\">Value</th><th scope=\"col\">Verdict</th><th scope=\"col\">Detail</th><th scope=\"col\">Experiment</th></tr></thead><tbody>");
            for (i, s) in t.steps.iter().enumerate() {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    i + 1,
                    super::trim(s.value),
                    esc(unit),
                    if s.tolerated {
                        "tolerated"
                    } else {
                        "broke the steady state"
                    },
                    esc(&s.detail),
                    s.experiment_uid
                        .as_deref()
                        .map(|u| format!("<a href=\"/experiments/{}\">{}</a>", url(u), esc(u)))
                        .unwrap_or_default()
                );
            }
            b.push_str("</tbody></table>");
        }
    }
    if count == 0 && c.threshold.is_none() {
        b.push_str("<p class=\"muted\">No probe results were recorded for this case.</p>");
    }
    b.push_str("</details>");
}

/// Remote catalogs and the state of their cached copies: when the index was last checked and
/// the templates last fetched, the last refresh's error (the cached templates stay in use), and
/// the templates refused with why.
fn remote_catalogs(b: &mut String, remotes: &[chaoshub_schema::template_spec::CatalogObject]) {
    b.push_str("<section aria-labelledby=\"remotes\"><h2 id=\"remotes\">Remote catalogs</h2><table class=\"grid\"><thead><tr><th scope=\"col\">Catalog</th><th scope=\"col\">Templates</th><th scope=\"col\">Last checked</th><th scope=\"col\">Last updated</th><th scope=\"col\">Index changed</th><th scope=\"col\">State</th></tr></thead><tbody>");
    let when = |t: &Option<String>| {
        t.as_deref()
            .map(html::time)
            .unwrap_or_else(|| "never".into())
    };
    for r in remotes {
        let state = match &r.last_error {
            Some(e) => format!(
                "<span class=\"badge phase-failed\">refresh failed</span> {} <span class=\"muted\">(the cached copy stays in use)</span>",
                esc(e)
            ),
            None if r.last_checked.is_none() => {
                "<span class=\"badge phase-pending\">not fetched yet</span>".into()
            }
            None => "<span class=\"badge phase-succeeded\">up to date</span>".into(),
        };
        let _ = write!(
            b,
            "<tr><td><strong>{}</strong><br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}",
            esc(&r.name),
            esc(&r.url),
            r.templates,
            when(&r.last_checked),
            when(&r.last_updated),
            r.last_change.as_deref().map(esc).unwrap_or_else(|| "—".into()),
        );
        if !r.rejected.is_empty() {
            let _ = write!(
                b,
                "<details><summary>{} template(s) refused</summary><ul class=\"plain\">",
                r.rejected.len()
            );
            for t in &r.rejected {
                let _ = write!(
                    b,
                    "<li><strong>{}</strong>: {}</li>",
                    esc(&t.name),
                    esc(&t.message)
                );
            }
            b.push_str("</ul></details>");
        }
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table></section>");
}

/// A suite run's reports as downloads (`junit.xml`, `report.json`), read through the API with
/// the session's token like every page.
pub async fn suite_report(ctx: Ctx, Path((id, file)): Path<(String, String)>) -> PageResult {
    let (api, ext) = match file.as_str() {
        "junit.xml" => (format!("/api/v1/suites/runs/{}/junit", url(&id)), "xml"),
        "report.json" => (format!("/api/v1/suites/runs/{}", url(&id)), "json"),
        _ => {
            return Err(Failure::Api(ApiFailure {
                status: 404,
                body: chaoshub_schema::api::ErrorBody {
                    code: "not_found".into(),
                    message: format!("no report {file:?}: junit.xml or report.json"),
                    details: vec![],
                },
            }))
        }
    };
    let mut response = ctx.api.raw(Method::GET, &api, None).await;
    if response.status().is_success() {
        let name: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
            "attachment; filename=\"suite-run-{name}.{ext}\""
        )) {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_DISPOSITION, v);
        }
        return Ok(response);
    }
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| chaoshub_schema::api::ErrorBody {
        code: "unknown".into(),
        message: String::from_utf8_lossy(&bytes).into_owned(),
        details: vec![],
    });
    Err(Failure::Api(ApiFailure { status, body }))
}

/// One `<option>` per registered environment (`name (adapter)`), `selected` marking the chosen
/// one: the environment pickers of the editor and of a template's form.
fn environment_options(b: &mut String, envs: &[EnvironmentObject], selected: &str) {
    for e in envs {
        let name = e.metadata.name.as_deref().unwrap_or("");
        let _ = write!(
            b,
            "<option value=\"{0}\"{1}>{0} ({2})</option>",
            esc(name),
            if name == selected { " selected" } else { "" },
            esc(&e.spec.adapter)
        );
    }
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::template_spec::{CatalogObject, RejectedTemplate};

    fn remote(name: &str) -> CatalogObject {
        CatalogObject {
            name: name.into(),
            url: format!("https://catalogs.example/{name}/index.yaml"),
            last_change: None,
            last_checked: None,
            last_updated: None,
            last_error: None,
            templates: 0,
            rejected: vec![],
        }
    }

    #[test]
    fn an_environment_status_is_text_not_json() {
        let st: chaoshub_schema::api::EnvironmentStatus = serde_json::from_value(serde_json::json!({
            "reachable": false, "checkedAt": "2026-12-07T07:00:00Z",
            "problems": ["the API server did not answer: connection refused"],
            "details": {"chaosMesh": true, "chaosMeshVersion": null, "servedKinds": ["NetworkChaos", "PodChaos"],
                        "missingPermissions": [], "serverVersion": "v1.26.1", "extra": {"a": 1}},
        }))
        .unwrap();
        let mut b = String::new();
        super::environment_status(&mut b, &st);
        assert!(!b.contains('{') && !b.contains('['), "{b}");
        assert!(b.contains(">unreachable</span>"), "{b}");
        assert!(
            b.contains("<li>the API server did not answer: connection refused</li>"),
            "{b}"
        );
        assert!(
            b.contains("<dt>chaos mesh version</dt><dd>unknown</dd>"),
            "{b}"
        );
        assert!(b.contains("<dt>chaos mesh</dt><dd>yes</dd>"), "{b}");
        assert!(
            b.contains("<dt>served kinds</dt><dd>NetworkChaos, PodChaos</dd>"),
            "{b}"
        );
        assert!(
            b.contains("<dt>missing permissions</dt><dd>none</dd>"),
            "{b}"
        );
        assert!(b.contains("<dt>extra</dt><dd>a: 1</dd>"), "{b}");
    }

    #[test]
    fn an_environment_card_summarises_its_adapter_column() {
        let matrix: chaoshub_schema::api::ConformanceMatrix = serde_json::from_value(serde_json::json!({
            "adapters": ["docker", "toxiproxy"],
            "rows": [
                {"id": "NetworkChaos/delay", "kind": "NetworkChaos", "action": "delay", "manifest": "",
                 "cells": {"docker": {"state": "supported", "measured": {"row": "NetworkChaos/delay", "adapter": "docker",
                     "figure": "+101 ms RTT for 100ms", "test": "adapters/tests/docker.rs delay", "command": "cargo test", "measured": "2026-12-01"}},
                           "toxiproxy": {"state": "supported"}}},
                {"id": "NetworkChaos/delay (jitter)", "kind": "NetworkChaos", "action": "delay", "option": "jitter", "manifest": "",
                 "cells": {"docker": {"state": "supported"}, "toxiproxy": {"state": "refused", "message": "no jitter"}}},
                {"id": "PodChaos/pod-kill", "kind": "PodChaos", "action": "pod-kill", "manifest": "",
                 "cells": {"docker": {"state": "supported"}, "toxiproxy": {"state": "n/a", "message": "a proxy has no process"}}},
            ],
        }))
        .unwrap();
        let mut b = String::new();
        super::conformance_summary(&mut b, &matrix, "docker");
        assert!(
            b.contains(">3 supported</a> (1 measured ✓) · 0 refused · 0 not applicable"),
            "{b}"
        );
        assert!(b.contains("href=\"/conformance#adapter-docker\""), "{b}");
        assert!(b.contains("<li><strong>NetworkChaos</strong>: <span class=\"measured\" title=\"+101 ms RTT for 100ms — adapters/tests/docker.rs delay\">delay ✓</span>, delay (jitter)</li>"), "{b}");
        assert!(
            b.contains("<li><strong>PodChaos</strong>: pod-kill</li>"),
            "{b}"
        );
        let mut b = String::new();
        super::conformance_summary(&mut b, &matrix, "toxiproxy");
        assert!(
            b.contains(">1 supported</a> (0 measured ✓) · 1 refused · 1 not applicable"),
            "{b}"
        );
        assert!(!b.contains("PodChaos"), "{b}");
    }

    #[test]
    fn remote_catalogs_show_their_refresh_state_not_json() {
        let fresh = CatalogObject {
            last_change: Some("2026-12-01".into()),
            last_checked: Some("2026-12-07T07:00:00Z".into()),
            last_updated: Some("2026-12-01T10:00:00Z".into()),
            templates: 12,
            ..remote("acme")
        };
        let failing = CatalogObject {
            last_checked: Some("2026-12-06T07:00:00Z".into()),
            last_error: Some("GET index.yaml: 503 <Service Unavailable>".into()),
            templates: 3,
            rejected: vec![RejectedTemplate {
                name: "odd".into(),
                message: "spec.kind: unknown kind \"Odd\"".into(),
            }],
            ..remote("flaky")
        };
        let mut b = String::new();
        super::remote_catalogs(&mut b, &[fresh, failing, remote("new")]);
        assert!(!b.contains('{'), "no raw JSON: {b}");
        assert_eq!(b.matches("<tr><td><strong>").count(), 3, "{b}");
        assert!(
            b.contains("<strong>acme</strong>") && b.contains(">up to date</span>"),
            "{b}"
        );
        assert!(
            b.contains("<td>12</td>") && b.contains("<td>2026-12-01</td>"),
            "{b}"
        );
        // The error is escaped and says the cached copy stays in use.
        assert!(
            b.contains(">refresh failed</span> GET index.yaml: 503 &lt;Service Unavailable&gt;"),
            "{b}"
        );
        assert!(b.contains("the cached copy stays in use"), "{b}");
        assert!(
            b.contains("<summary>1 template(s) refused</summary>"),
            "{b}"
        );
        assert!(
            b.contains("<strong>odd</strong>: spec.kind: unknown kind &quot;Odd&quot;"),
            "{b}"
        );
        assert!(
            b.contains(">not fetched yet</span>") && b.contains("<td>never</td>"),
            "{b}"
        );
    }
}
