//! The `Workflow` reconciler: runs a Chaos Mesh workflow's template tree over stored state.
//!
//! When a workflow starts, its whole tree is expanded into `status.workflow.nodes` (every node
//! `Pending`), so the plan is visible from the first moment and a pass needs nothing but the
//! stored status to know where it is. Each pass then walks the tree from the entry node and
//! moves what it can:
//! - `Serial` runs its children one after another; `Parallel` starts them all and ends when
//!   all have ended. A failed chaos child fails its Serial/Parallel parent and so the workflow.
//! - `Suspend` waits for its `deadline`.
//! - a chaos template becomes a child experiment named `<workflow>-<template>`; its duration is
//!   capped by the node's `deadline`, and the node ends when the child ends (or, should the
//!   child still be running, when the deadline passes and it is stopped).
//! - `Schedule` becomes a child Schedule, stopped when the node's deadline passes.
//! - `StatusCheck` runs the check in the hub; a failure ends the node `Failed` and, with
//!   `abortWithStatusCheck: true`, aborts the whole workflow: every running child is stopped
//!   at once and the workflow ends `Aborted` with the check's reason.
//! - any node whose `deadline` passes is ended `DeadlineExceeded`, its whole subtree stopped,
//!   and the workflow moves on, as in Chaos Mesh; the entry node's deadline bounds the workflow.
//!
//! Children are created with deterministic names, so a pass interrupted between creating a
//! child and storing its uid finds it again instead of creating a second one. Status checks
//! run in memory; after a restart a running check is started again from the beginning.

pub mod check;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chaoshub_schema::api::{
    DesiredState, ExperimentPhase, WorkflowNode, WorkflowNodePhase, WorkflowStatus,
};
use chaoshub_schema::chaosmesh::{WorkflowSpec, WorkflowTemplate, WorkflowTemplateType};
use chaoshub_schema::duration::{format_duration, parse_duration};
use chaoshub_schema::Kind;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;

use crate::engine::{Controller, Due, Engine};
use crate::events;
use crate::orchestration::{self, event, ChildRequest, Children};
use crate::store::{ExperimentRow, NewEvent, StoreError};
use crate::time;
use check::CheckOutcome;

/// The most nodes a workflow may expand to (templates can be reused, so a small spec can
/// describe a large tree).
pub const MAX_NODES: usize = 200;

/// Status checks running in this process, by (workflow uid, node name). The one in-memory
/// piece of a workflow: after a restart a running check is started again.
pub type Checks = Mutex<HashMap<(String, String), CheckRun>>;

/// The `Workflow` controller; it owns the status checks its nodes run.
pub struct WorkflowController {
    children: Arc<dyn Children>,
    checks: Checks,
}

impl WorkflowController {
    pub fn new(children: Arc<dyn Children>) -> Self {
        WorkflowController {
            children,
            checks: Mutex::new(HashMap::new()),
        }
    }
}

impl Controller for WorkflowController {
    fn name(&self) -> &'static str {
        "workflow"
    }

    fn handles(&self, kind: &str) -> bool {
        kind == Kind::Workflow.as_str()
    }

    fn due(&self, engine: &Engine, row: &ExperimentRow, now: DateTime<Utc>) -> Due {
        orchestration::parent_due(row, now, || due(engine, &self.checks, row, now))
    }

    fn reconcile<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(reconcile(engine, self.children.as_ref(), &self.checks, row))
    }
}

/// A status check running in this process for one workflow node.
pub struct CheckRun {
    cancel: watch::Sender<bool>,
    outcome: Arc<Mutex<Option<CheckOutcome>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Expands the template tree from `entry` into nodes, parents before children, each named
/// `<workflow>-<template>` (with `-<n>` when a template occurs more than once). Pure; used at
/// submission to refuse cycles and oversized trees, and when the workflow starts.
/// Errors are (field path below `spec`, message).
pub fn plan(workflow: &str, spec: &WorkflowSpec) -> Result<Vec<WorkflowNode>, (String, String)> {
    let index: HashMap<&str, usize> = spec
        .templates
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    if !index.contains_key(spec.entry.as_str()) {
        return Err((
            ".entry".into(),
            format!("names no template: {:?}", spec.entry),
        ));
    }
    // First pass: count occurrences (for names) and refuse cycles and oversized trees.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut total = 0usize;
    let mut stack: Vec<&str> = Vec::new();
    fn visit<'a>(
        name: &'a str,
        spec: &'a WorkflowSpec,
        index: &HashMap<&str, usize>,
        counts: &mut HashMap<&'a str, usize>,
        total: &mut usize,
        stack: &mut Vec<&'a str>,
    ) -> Result<(), (String, String)> {
        let Some(&i) = index.get(name) else {
            return Err((".templates".into(), format!("names no template: {name:?}")));
        };
        if stack.contains(&name) {
            // Point at the children list that closes the cycle.
            let closing = stack
                .last()
                .and_then(|p| index.get(p))
                .copied()
                .unwrap_or(i);
            return Err((
                format!(".templates[{closing}].children"),
                format!(
                    "template {name:?} contains itself ({} → {name}); a workflow's templates must form a tree",
                    stack.join(" → ")
                ),
            ));
        }
        *total += 1;
        if *total > MAX_NODES {
            return Err((
                ".templates".into(),
                format!("the workflow expands to more than {MAX_NODES} nodes"),
            ));
        }
        *counts.entry(name).or_default() += 1;
        stack.push(name);
        for child in &spec.templates[i].children {
            visit(child, spec, index, counts, total, stack)?;
        }
        stack.pop();
        Ok(())
    }
    visit(
        &spec.entry,
        spec,
        &index,
        &mut counts,
        &mut total,
        &mut stack,
    )?;

    let mut nodes: Vec<WorkflowNode> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    fn build<'a>(
        name: &'a str,
        parent: Option<String>,
        ctx: &mut BuildCtx<'a, '_>,
    ) -> Result<String, (String, String)> {
        let i = ctx.index[name];
        let template = &ctx.spec.templates[i];
        let n = {
            let k = ctx.seen.entry(name).or_default();
            *k += 1;
            *k
        };
        let raw = if ctx.counts[name] == 1 {
            format!("{}-{name}", ctx.workflow)
        } else {
            format!("{}-{name}-{n}", ctx.workflow)
        };
        let node_name = dns_name(&raw);
        chaoshub_schema::parse::check_dns_name(&node_name).map_err(|e| {
            (
                format!(".templates[{i}].name"),
                format!("the node name {node_name:?} derived from it {e}"),
            )
        })?;
        if ctx.nodes.iter().any(|n| n.name == node_name) {
            return Err((
                format!(".templates[{i}].name"),
                format!("the node name {node_name:?} derived from it collides with another template's; rename one of them"),
            ));
        }
        let at = ctx.nodes.len();
        ctx.nodes.push(WorkflowNode {
            name: node_name.clone(),
            template: name.to_string(),
            template_type: template.type_name(),
            parent,
            children: Vec::new(),
            phase: WorkflowNodePhase::Pending,
            started_at: None,
            deadline: None,
            ended_at: None,
            experiment: None,
            reason: None,
        });
        let mut children = Vec::new();
        for child in &template.children {
            children.push(build(child, Some(node_name.clone()), ctx)?);
        }
        ctx.nodes[at].children = children;
        Ok(node_name)
    }
    struct BuildCtx<'a, 'b> {
        workflow: &'b str,
        spec: &'a WorkflowSpec,
        index: &'b HashMap<&'a str, usize>,
        counts: &'b HashMap<&'a str, usize>,
        seen: &'b mut HashMap<&'a str, usize>,
        nodes: &'b mut Vec<WorkflowNode>,
    }
    let mut ctx = BuildCtx {
        workflow,
        spec,
        index: &index,
        counts: &counts,
        seen: &mut seen,
        nodes: &mut nodes,
    };
    build(&spec.entry, None, &mut ctx)?;
    Ok(nodes)
}

/// Lower-case letters, digits, `-` and `.`; anything else becomes `-`.
fn dns_name(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// When the workflow wants its next pass: the earliest deadline of a running node, or now
/// when a status check has finished.
pub fn due(
    engine: &Engine,
    checks: &Checks,
    row: &ExperimentRow,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let status = row.status.workflow.as_ref()?;
    let checks = lock(checks);
    let mut next: Option<DateTime<Utc>> = None;
    for node in status
        .nodes
        .iter()
        .filter(|n| n.phase == WorkflowNodePhase::Running)
    {
        if let Some(run) = checks.get(&(row.uid.clone(), node.name.clone())) {
            if lock(&run.outcome).is_some() {
                return Some(DateTime::<Utc>::MIN_UTC);
            }
        }
        if let Some(d) = node.deadline.as_deref().and_then(time::parse) {
            // A chaos child ending by itself at the node's deadline pokes this workflow when
            // it has; until then the passed deadline asks for nothing.
            if d <= now && at_deadline(engine, row, node) == ChildAtDeadline::Ending {
                continue;
            }
            next = Some(next.map_or(d, |n| n.min(d)));
        }
    }
    next
}

/// A chaos node's child as its node's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildAtDeadline {
    /// The child has ended: the node follows its outcome.
    Ended,
    /// The child runs until the node's deadline (its own end is capped by it) and is ending
    /// by itself: it will end `Finished`, and the node `Succeeded`.
    Ending,
    /// Anything else (no child yet, one still waiting to be injected, paused, or one that
    /// would outlive the deadline): the deadline cuts the node short.
    Cut,
}

fn is_chaos(template_type: &str) -> bool {
    !matches!(
        template_type,
        "Serial" | "Parallel" | "Suspend" | "StatusCheck" | "Task" | "Schedule"
    )
}

fn at_deadline(engine: &Engine, row: &ExperimentRow, node: &WorkflowNode) -> ChildAtDeadline {
    let (Some(uid), Some(deadline)) = (
        node.experiment.as_deref(),
        node.deadline.as_deref().and_then(time::parse),
    ) else {
        return ChildAtDeadline::Cut;
    };
    if !is_chaos(&node.template_type) {
        return ChildAtDeadline::Cut;
    }
    let child = match engine.store().get_experiment(uid) {
        Ok(Some(child)) => child,
        Ok(None) => return ChildAtDeadline::Cut,
        Err(e) => {
            tracing::warn!(workflow = %row.uid, node = %node.name, error = %e, "cannot read a workflow child");
            return ChildAtDeadline::Cut;
        }
    };
    let s = &child.status;
    if s.phase.is_terminal() {
        return ChildAtDeadline::Ended;
    }
    let capped = s
        .deadline
        .as_deref()
        .and_then(time::parse)
        .is_some_and(|d| d <= deadline);
    match (s.phase, s.desired, s.next_phase) {
        (ExperimentPhase::Running, DesiredState::Run, _) if capped => ChildAtDeadline::Ending,
        (ExperimentPhase::Recovering, DesiredState::Run, Some(ExperimentPhase::Finished)) => {
            ChildAtDeadline::Ending
        }
        _ => ChildAtDeadline::Cut,
    }
}

fn experiment_uids(status: &WorkflowStatus) -> Vec<String> {
    status
        .nodes
        .iter()
        .filter_map(|n| n.experiment.clone())
        .collect()
}

/// Cancels every status check of this workflow running in this process.
fn cancel_checks(checks: &Checks, uid: &str) {
    let mut checks = lock(checks);
    checks.retain(|(wf, _), run| {
        if wf == uid {
            let _ = run.cancel.send(true);
            false
        } else {
            true
        }
    });
}

/// One pass over a workflow.
pub async fn reconcile(
    engine: &Arc<Engine>,
    children: &dyn Children,
    checks: &Checks,
    mut row: ExperimentRow,
) -> Result<(), StoreError> {
    let spec: WorkflowSpec = match serde_json::from_value(row.spec.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            let status = row.status.workflow.clone().map(|w| *w).unwrap_or_default();
            return end(
                engine,
                checks,
                &mut row,
                status,
                ExperimentPhase::Failed,
                &format!("the stored workflow no longer parses: {e}"),
            );
        }
    };
    let mut status = row.status.workflow.clone().map(|w| *w).unwrap_or_default();
    let now = engine.now();
    let mut events = Vec::new();
    match (row.status.phase, row.status.desired) {
        (p, _) if p.is_terminal() => return Ok(()),
        (ExperimentPhase::Recovering, _) => {
            let next = row.status.next_phase.unwrap_or(ExperimentPhase::Aborted);
            let why = row.status.reason.clone().unwrap_or_default();
            return end(engine, checks, &mut row, status, next, &why);
        }
        (_, DesiredState::Stop) => {
            let why = row
                .desired_reason
                .clone()
                .unwrap_or_else(|| "stopped".into());
            let mut pass = Pass::new(engine, checks, &row, &spec, now);
            pass.end_running(&mut status, WorkflowNodePhase::Aborted, &why);
            events.append(&mut pass.events);
            orchestration::save(engine, &row, events)?;
            return end(
                engine,
                checks,
                &mut row,
                status,
                ExperimentPhase::Aborted,
                &why,
            );
        }
        (ExperimentPhase::Pending, DesiredState::Run) => {
            let halt = engine.store().halt_status()?;
            if halt.halted {
                let why = format!("halted: {}", halt.reason.unwrap_or_default());
                return end(
                    engine,
                    checks,
                    &mut row,
                    status,
                    ExperimentPhase::Aborted,
                    &why,
                );
            }
            let nodes = match plan(&row.name, &spec) {
                Ok(nodes) => nodes,
                Err((path, message)) => {
                    return end(
                        engine,
                        checks,
                        &mut row,
                        status,
                        ExperimentPhase::Failed,
                        &format!("spec{path}: {message}"),
                    )
                }
            };
            status = WorkflowStatus {
                entry: spec.entry.clone(),
                nodes,
            };
            row.status.phase = ExperimentPhase::Running;
            row.status.started_at = Some(time::format(now));
            events.push(event(
                &row,
                events::EXPERIMENT_RUNNING,
                format!("workflow started at its entry {:?}", spec.entry),
                &[],
            ));
        }
        (ExperimentPhase::Pending | ExperimentPhase::Running, DesiredState::Pause) => {
            orchestration::steer_children(
                engine,
                &experiment_uids(&status),
                DesiredState::Pause,
                "its workflow was paused",
            )?;
            // Checks start again from the beginning on resume.
            cancel_checks(checks, &row.uid);
            row.status.phase = ExperimentPhase::Paused;
            row.status.workflow = Some(Box::new(status));
            let ev = event(
                &row,
                events::EXPERIMENT_PAUSED,
                "workflow paused: running children paused, no node starts until it is resumed (node deadlines keep running)",
                &[],
            );
            return orchestration::save(engine, &row, vec![ev]);
        }
        (ExperimentPhase::Paused, DesiredState::Run) => {
            orchestration::steer_children(
                engine,
                &experiment_uids(&status),
                DesiredState::Run,
                "its workflow was resumed",
            )?;
            row.status.phase = ExperimentPhase::Running;
            events.push(event(
                &row,
                events::EXPERIMENT_RESUMED,
                "workflow resumed",
                &[],
            ));
        }
        (ExperimentPhase::Paused, _) => return Ok(()),
        _ => {}
    }

    // Walk the tree until nothing more moves now; children are created between walks.
    let mut verdict = None;
    for _ in 0..16 {
        let mut pass = Pass::new(engine, checks, &row, &spec, now);
        pass.step(&mut status, 0);
        events.append(&mut pass.events);
        let to_create = std::mem::take(&mut pass.to_create);
        verdict = pass.verdict.take();
        let changed = pass.changed;
        drop(pass);
        if verdict.is_some() {
            break;
        }
        for i in &to_create {
            create_node_child(
                engine,
                children,
                &row,
                &spec,
                &mut status,
                *i,
                now,
                &mut events,
            )
            .await;
        }
        if !changed && to_create.is_empty() {
            break;
        }
    }
    let root = status.nodes.first().map(|n| (n.phase, n.reason.clone()));
    let outcome = match (verdict, root) {
        (Some(Verdict::Abort(reason)), _) => Some((ExperimentPhase::Aborted, reason)),
        (_, Some((WorkflowNodePhase::Failed, reason))) => Some((
            ExperimentPhase::Failed,
            reason.unwrap_or_else(|| "a node failed".into()),
        )),
        (_, Some((phase, reason))) if phase.is_done() => {
            let failed_checks: Vec<String> = status
                .nodes
                .iter()
                .filter(|n| {
                    n.phase == WorkflowNodePhase::Failed && n.template_type == "StatusCheck"
                })
                .map(|n| format!("{} ({})", n.name, n.reason.clone().unwrap_or_default()))
                .collect();
            let mut why = match phase {
                WorkflowNodePhase::DeadlineExceeded => {
                    reason.unwrap_or_else(|| "the entry's deadline passed".into())
                }
                _ => "every node ended".to_string(),
            };
            if !failed_checks.is_empty() {
                why.push_str(&format!(
                    "; status checks failed without aborting: {}",
                    failed_checks.join(", ")
                ));
            }
            Some((ExperimentPhase::Finished, why))
        }
        _ => None,
    };
    match outcome {
        Some((phase, why)) => {
            if phase != ExperimentPhase::Finished {
                // Whatever still runs is cut short by the workflow's end.
                let mut pass = Pass::new(engine, checks, &row, &spec, now);
                pass.end_running(
                    &mut status,
                    WorkflowNodePhase::Aborted,
                    &format!("the workflow ended: {why}"),
                );
                events.append(&mut pass.events);
            }
            row.status.workflow = Some(Box::new(status.clone()));
            orchestration::save(engine, &row, events)?;
            end(engine, checks, &mut row, status, phase, &why)
        }
        None => {
            row.status.workflow = Some(Box::new(status));
            orchestration::save(engine, &row, events)
        }
    }
}

/// How a walk ended the workflow early.
enum Verdict {
    /// A StatusCheck with `abortWithStatusCheck` failed.
    Abort(String),
}

/// One walk over the node tree at one instant.
struct Pass<'a> {
    engine: &'a Arc<Engine>,
    checks: &'a Checks,
    row: &'a ExperimentRow,
    templates: HashMap<&'a str, &'a WorkflowTemplate>,
    now: DateTime<Utc>,
    events: Vec<NewEvent>,
    /// Nodes whose child experiment must be created.
    to_create: Vec<usize>,
    verdict: Option<Verdict>,
    changed: bool,
}

impl<'a> Pass<'a> {
    fn new(
        engine: &'a Arc<Engine>,
        checks: &'a Checks,
        row: &'a ExperimentRow,
        spec: &'a WorkflowSpec,
        now: DateTime<Utc>,
    ) -> Self {
        Pass {
            engine,
            checks,
            row,
            templates: spec
                .templates
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            now,
            events: Vec::new(),
            to_create: Vec::new(),
            verdict: None,
            changed: false,
        }
    }

    fn node_event(&mut self, node: &WorkflowNode, name: &str, message: String) {
        self.events.push(event(
            self.row,
            name,
            message,
            &[
                ("chaoshub.workflow.node", node.name.clone()),
                ("chaoshub.workflow.template", node.template.clone()),
                ("chaoshub.workflow.node.phase", format!("{:?}", node.phase)),
            ],
        ));
    }

    /// Ends one node (which must not be done yet) with `phase`.
    fn end_node(
        &mut self,
        status: &mut WorkflowStatus,
        i: usize,
        phase: WorkflowNodePhase,
        reason: Option<String>,
    ) {
        let node = &mut status.nodes[i];
        node.phase = phase;
        node.reason = reason;
        node.ended_at = Some(time::format(self.now));
        let node = node.clone();
        self.changed = true;
        let why = node
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        self.node_event(
            &node,
            events::WORKFLOW_NODE_ENDED,
            format!("node {} {:?}{why}", node.name, node.phase),
        );
        if node.template_type == "StatusCheck" {
            if let Some(run) = lock(self.checks).remove(&(self.row.uid.clone(), node.name.clone()))
            {
                let _ = run.cancel.send(true);
            }
        }
        if let Some(uid) = &node.experiment {
            // The node no longer wants its experiment; a finished one is left alone.
            let _ = orchestration::steer_children(
                self.engine,
                std::slice::from_ref(uid),
                DesiredState::Stop,
                &format!("workflow node {} ended{why}", node.name),
            );
        }
    }

    /// Ends `i` with `phase` and every unfinished node below it `Aborted`.
    fn end_subtree(
        &mut self,
        status: &mut WorkflowStatus,
        i: usize,
        phase: WorkflowNodePhase,
        reason: String,
    ) {
        let children: Vec<usize> = status.nodes[i]
            .children
            .iter()
            .filter_map(|c| status.nodes.iter().position(|n| &n.name == c))
            .collect();
        for c in children {
            if !status.nodes[c].phase.is_done() {
                let why = format!("{} ended: {reason}", status.nodes[i].name);
                self.end_subtree(status, c, WorkflowNodePhase::Aborted, why);
            }
        }
        if !status.nodes[i].phase.is_done() {
            self.end_node(status, i, phase, Some(reason));
        }
    }

    /// Ends every unfinished node (the workflow is stopping).
    fn end_running(&mut self, status: &mut WorkflowStatus, phase: WorkflowNodePhase, reason: &str) {
        if !status.nodes.is_empty() {
            self.end_subtree(status, 0, phase, reason.to_string());
        }
    }

    fn start(&mut self, status: &mut WorkflowStatus, i: usize, template: &WorkflowTemplate) {
        let node = &mut status.nodes[i];
        node.phase = WorkflowNodePhase::Running;
        node.started_at = Some(time::format(self.now));
        if let Some(d) = template
            .deadline
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
        {
            let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            node.deadline = self.now.checked_add_signed(d).map(time::format);
        }
        let node = node.clone();
        self.changed = true;
        let until = node
            .deadline
            .as_deref()
            .map(|d| format!(" (deadline {d})"))
            .unwrap_or_default();
        self.node_event(
            &node,
            events::WORKFLOW_NODE_STARTED,
            format!("node {} ({}) started{until}", node.name, node.template_type),
        );
    }

    fn step(&mut self, status: &mut WorkflowStatus, i: usize) {
        if self.verdict.is_some() || status.nodes[i].phase.is_done() {
            return;
        }
        let Some(template) = self
            .templates
            .get(status.nodes[i].template.as_str())
            .copied()
        else {
            let why = format!(
                "template {:?} is missing from the stored spec",
                status.nodes[i].template
            );
            return self.end_node(status, i, WorkflowNodePhase::Failed, Some(why));
        };
        if status.nodes[i].phase == WorkflowNodePhase::Pending {
            self.start(status, i, template);
        }
        if let Some(deadline) = status.nodes[i].deadline.as_deref().and_then(time::parse) {
            if deadline <= self.now {
                match at_deadline(self.engine, self.row, &status.nodes[i]) {
                    ChildAtDeadline::Ended => return self.step_child(status, i),
                    ChildAtDeadline::Ending => return,
                    ChildAtDeadline::Cut => {}
                }
                let why = format!(
                    "deadline {} passed",
                    template.deadline.as_deref().unwrap_or_default()
                );
                return self.end_subtree(status, i, WorkflowNodePhase::DeadlineExceeded, why);
            }
        }
        let children: Vec<usize> = status.nodes[i]
            .children
            .iter()
            .filter_map(|c| status.nodes.iter().position(|n| &n.name == c))
            .collect();
        match template.template_type {
            WorkflowTemplateType::Suspend => {
                if status.nodes[i].deadline.is_none() {
                    self.end_node(status, i, WorkflowNodePhase::Succeeded, None);
                }
            }
            WorkflowTemplateType::Serial => {
                for c in children {
                    self.step(status, c);
                    if self.verdict.is_some() {
                        return;
                    }
                    let child = &status.nodes[c];
                    if !child.phase.is_done() {
                        return;
                    }
                    if fatal(child) {
                        let why = format!(
                            "{} failed: {}",
                            child.name,
                            child.reason.clone().unwrap_or_default()
                        );
                        return self.end_subtree(status, i, WorkflowNodePhase::Failed, why);
                    }
                }
                self.end_node(status, i, WorkflowNodePhase::Succeeded, None);
            }
            WorkflowTemplateType::Parallel => {
                for &c in &children {
                    self.step(status, c);
                    if self.verdict.is_some() {
                        return;
                    }
                }
                if let Some(failed) = children
                    .iter()
                    .map(|&c| &status.nodes[c])
                    .find(|n| fatal(n))
                {
                    let why = format!(
                        "{} failed: {}",
                        failed.name,
                        failed.reason.clone().unwrap_or_default()
                    );
                    return self.end_subtree(status, i, WorkflowNodePhase::Failed, why);
                }
                if children.iter().all(|&c| status.nodes[c].phase.is_done()) {
                    self.end_node(status, i, WorkflowNodePhase::Succeeded, None);
                }
            }
            WorkflowTemplateType::StatusCheck => self.step_check(status, i, template),
            WorkflowTemplateType::Task => {
                self.end_node(
                    status,
                    i,
                    WorkflowNodePhase::Failed,
                    Some("Task templates are not supported by this hub".into()),
                );
            }
            // A chaos template or a Schedule: follow the child experiment.
            _ => self.step_child(status, i),
        }
    }

    fn step_child(&mut self, status: &mut WorkflowStatus, i: usize) {
        let Some(uid) = status.nodes[i].experiment.clone() else {
            self.to_create.push(i);
            return;
        };
        let child = match self.engine.store().get_experiment(&uid) {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(workflow = %self.row.uid, error = %e, "cannot read a workflow child");
                return;
            }
        };
        let Some(child) = child else {
            return self.end_node(
                status,
                i,
                WorkflowNodePhase::Failed,
                Some(format!("its experiment {uid} is gone")),
            );
        };
        let reason = child.status.reason.clone();
        match child.status.phase {
            ExperimentPhase::Finished => {
                self.end_node(status, i, WorkflowNodePhase::Succeeded, reason)
            }
            ExperimentPhase::Failed => self.end_node(
                status,
                i,
                WorkflowNodePhase::Failed,
                Some(format!(
                    "experiment {} failed: {}",
                    child.name,
                    reason.unwrap_or_default()
                )),
            ),
            ExperimentPhase::Aborted => self.end_node(
                status,
                i,
                WorkflowNodePhase::Aborted,
                Some(format!(
                    "experiment {} was aborted: {}",
                    child.name,
                    reason.unwrap_or_default()
                )),
            ),
            _ => {}
        }
    }

    fn step_check(&mut self, status: &mut WorkflowStatus, i: usize, template: &WorkflowTemplate) {
        let key = (self.row.uid.clone(), status.nodes[i].name.clone());
        let outcome = {
            let checks = lock(self.checks);
            checks.get(&key).map(|run| lock(&run.outcome).clone())
        };
        match outcome {
            None => {
                let Some(spec) = template.status_check.as_deref().cloned() else {
                    return self.end_node(
                        status,
                        i,
                        WorkflowNodePhase::Failed,
                        Some("statusCheck is missing".into()),
                    );
                };
                spawn_check(self.engine, self.checks, key, spec);
            }
            Some(None) => {}
            Some(Some(outcome)) => {
                lock(self.checks).remove(&key);
                if outcome.succeeded {
                    self.end_node(
                        status,
                        i,
                        WorkflowNodePhase::Succeeded,
                        Some(outcome.reason),
                    );
                } else {
                    let reason =
                        format!("status check {} failed: {}", template.name, outcome.reason);
                    self.end_node(status, i, WorkflowNodePhase::Failed, Some(reason.clone()));
                    if template.abort_with_status_check == Some(true) {
                        self.verdict = Some(Verdict::Abort(reason));
                    }
                }
            }
        }
    }
}

/// Whether a node's failure fails its parent. A status check that fails without
/// `abortWithStatusCheck` is recorded and the workflow goes on, as in Chaos Mesh.
fn fatal(node: &WorkflowNode) -> bool {
    node.phase == WorkflowNodePhase::Failed && node.template_type != "StatusCheck"
}

fn spawn_check(
    engine: &Arc<Engine>,
    checks: &Checks,
    key: (String, String),
    spec: chaoshub_schema::chaosmesh::StatusCheckSpec,
) {
    let (cancel, rx) = watch::channel(false);
    let outcome = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&outcome);
    // A weak handle: a check outliving its hub (shut down in a test, say) must not act on the
    // store afterwards.
    let weak = Arc::downgrade(engine);
    let uid = key.0.clone();
    tokio::spawn(async move {
        let result = check::run(&spec, rx).await;
        *lock(&slot) = Some(result);
        if let Some(engine) = weak.upgrade() {
            engine.trigger(&uid);
        }
    });
    lock(checks).insert(key, CheckRun { cancel, outcome });
}

/// Creates the child experiment of a chaos or Schedule node.
#[allow(clippy::too_many_arguments)]
async fn create_node_child(
    engine: &Arc<Engine>,
    children: &dyn Children,
    row: &ExperimentRow,
    spec: &WorkflowSpec,
    status: &mut WorkflowStatus,
    i: usize,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) {
    let node = status.nodes[i].clone();
    let Some(ti) = spec.templates.iter().position(|t| t.name == node.template) else {
        return;
    };
    let template = &spec.templates[ti];
    let stored = &row.spec["templates"][ti];
    let (kind, mut child_spec) = if template.template_type == WorkflowTemplateType::Schedule {
        ("Schedule".to_string(), stored["schedule"].clone())
    } else {
        let kind = template.type_name();
        let field = orchestration::embedded_field(&kind);
        (kind, stored[field.as_str()].clone())
    };
    if kind != "Schedule" {
        // The node's deadline caps the chaos: the child never runs past it, and its fault's
        // lease on the far side says so too.
        if let Some(deadline) = node.deadline.as_deref().and_then(time::parse) {
            let Ok(left) = (deadline - now).to_std() else {
                return; // the next walk ends the node
            };
            let own = child_spec
                .get("duration")
                .and_then(Value::as_str)
                .and_then(|d| parse_duration(d).ok());
            if own.is_none_or(|d| d > left) {
                child_spec["duration"] = Value::String(format_duration(
                    left.max(std::time::Duration::from_millis(1)),
                ));
            }
        }
    }
    let mut annotations = vec![(orchestration::NODE_ANNOTATION, node.template.clone())];
    if kind != "Schedule" {
        // The duration above counts from the injection, a moment after now; the absolute end
        // makes the child's fault end exactly at the node's deadline, so a node whose deadline
        // is its chaos's only duration sees its child end `Finished`, not cut short.
        if let Some(deadline) = &node.deadline {
            annotations.push((crate::engine::END_BY_ANNOTATION, deadline.clone()));
        }
    }
    let result = orchestration::create_child(
        engine,
        children,
        row,
        ChildRequest {
            name: &node.name,
            kind: &kind,
            spec: child_spec,
            annotations,
        },
    )
    .await;
    match result {
        Ok(uid) => {
            status.nodes[i].experiment = Some(uid.clone());
            events.push(event(
                row,
                events::WORKFLOW_NODE_STARTED,
                format!(
                    "node {} created experiment {} ({kind})",
                    node.name, node.name
                ),
                &[
                    ("chaoshub.workflow.node", node.name.clone()),
                    ("chaoshub.workflow.child", uid),
                ],
            ));
        }
        Err(reason) => {
            let node = &mut status.nodes[i];
            node.phase = WorkflowNodePhase::Failed;
            node.ended_at = Some(time::format(now));
            node.reason = Some(format!("its experiment could not be created: {reason}"));
            events.push(event(
                row,
                events::WORKFLOW_NODE_ENDED,
                format!(
                    "node {} failed: its experiment could not be created: {reason}",
                    node.name
                ),
                &[("chaoshub.workflow.node", node.name.clone())],
            ));
        }
    }
}

/// Stops every child and check, then ends the workflow in `phase` once no child is active
/// (`Recovering` until then).
fn end(
    engine: &Arc<Engine>,
    checks: &Checks,
    row: &mut ExperimentRow,
    status: WorkflowStatus,
    phase: ExperimentPhase,
    why: &str,
) -> Result<(), StoreError> {
    cancel_checks(checks, &row.uid);
    let uids = experiment_uids(&status);
    orchestration::steer_children(
        engine,
        &uids,
        DesiredState::Stop,
        &format!("its workflow ended: {why}"),
    )?;
    row.status.workflow = Some(Box::new(status));
    row.status.reason = Some(why.to_string());
    if orchestration::any_live(engine, &uids)? {
        let mut events = Vec::new();
        if row.status.phase != ExperimentPhase::Recovering {
            row.status.phase = ExperimentPhase::Recovering;
            row.status.next_phase = Some(phase);
            events.push(event(
                row,
                events::EXPERIMENT_RECOVERING,
                format!("stopping every child: {why}"),
                &[],
            ));
        }
        return orchestration::save(engine, row, events);
    }
    row.status.phase = phase;
    row.status.next_phase = None;
    row.status.ended_at = Some(time::format(engine.now()));
    let (name, message) = match phase {
        ExperimentPhase::Finished => (events::EXPERIMENT_FINISHED, format!("finished: {why}")),
        ExperimentPhase::Failed => (events::EXPERIMENT_FAILED, format!("failed: {why}")),
        _ => (events::EXPERIMENT_ABORTED, format!("aborted: {why}")),
    };
    let ev = event(row, name, message, &[]);
    orchestration::save(engine, row, vec![ev])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> WorkflowSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn plan_expands_the_tree_parents_first() {
        let s = spec(
            "entry: main\ntemplates:\n- {name: main, templateType: Serial, children: [a, pause, a]}\n- {name: pause, templateType: Suspend, deadline: 1s}\n- name: a\n  templateType: Parallel\n  children: [pause]\n",
        );
        let nodes = plan("wf", &s).unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "wf-main",
                "wf-a-1",
                "wf-pause-1",
                "wf-pause-2",
                "wf-a-2",
                "wf-pause-3"
            ]
        );
        assert_eq!(nodes[0].children, ["wf-a-1", "wf-pause-2", "wf-a-2"]);
        assert_eq!(nodes[1].parent.as_deref(), Some("wf-main"));
    }

    #[test]
    fn plan_refuses_cycles_and_huge_trees() {
        let s = spec("entry: a\ntemplates:\n- {name: a, templateType: Serial, children: [b]}\n- {name: b, templateType: Parallel, children: [a]}\n");
        let (path, message) = plan("wf", &s).unwrap_err();
        assert_eq!(path, ".templates[1].children");
        assert!(message.contains("contains itself"), "{message}");
        // Ten levels of two children each: 2^10 leaves.
        let mut yaml = "entry: l0\ntemplates:\n".to_string();
        for l in 0..10 {
            yaml.push_str(&format!(
                "- {{name: l{l}, templateType: Parallel, children: [l{}, l{}]}}\n",
                l + 1,
                l + 1
            ));
        }
        yaml.push_str("- {name: l10, templateType: Suspend, deadline: 1s}\n");
        let (_, message) = plan("wf", &spec(&yaml)).unwrap_err();
        assert!(message.contains("more than 200 nodes"), "{message}");
    }

    #[test]
    fn node_names_are_dns_names() {
        assert_eq!(dns_name("WF-Step_One"), "wf-step-one");
        assert_eq!(dns_name("-x-"), "x");
    }
}
