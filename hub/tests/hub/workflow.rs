//! Workflows through the API: serial order, parallel overlap, suspend (on a manual clock),
//! node deadlines, abort by a failing status check against a real local HTTP server, stop,
//! and submission of the Chaos Mesh examples.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{restart_clocked, start_clocked, MemoryCall, Sandbox};

const T: Duration = Duration::from_secs(15);

fn chaos(name: &str, action: &str, duration: &str, extra: &str) -> String {
    let body = match action {
        "loss" => "      loss: {loss: \"10\"}\n",
        _ => "      delay: {latency: 50ms}\n",
    };
    format!(
        "  - name: {name}\n    templateType: NetworkChaos\n{extra}    networkChaos:\n      action: {action}\n      mode: all\n      selector: {{labelSelectors: {{app: web}}}}\n{body}      duration: {duration}\n"
    )
}

fn workflow(name: &str, templates: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata:\n  name: {name}\nspec:\n  entry: main\n  environment: mem\n  templates:\n{templates}"
    )
}

async fn submit(s: &Sandbox, yaml: &str) -> String {
    let (code, body) = s.post_yaml("/api/v1/experiments", yaml).await;
    assert_eq!(code, 201, "{body:#}");
    body["metadata"]["uid"].as_str().unwrap().to_string()
}

async fn get(s: &Sandbox, uid: &str) -> Value {
    s.get(&format!("/api/v1/experiments/{uid}")).await.1
}

fn node<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf["status"]["workflow"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {wf:#}"))
}

fn calls(s: &Sandbox, uid: &str, op: &str) -> Vec<Instant> {
    s.adapter
        .world
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|c: &&MemoryCall| c.experiment_uid == uid && c.op == op)
        .map(|c| c.at)
        .collect()
}

#[tokio::test]
async fn serial_runs_children_one_after_another() {
    let s = Sandbox::start(4).await;
    let yaml = workflow(
        "serial",
        &format!(
            "  - {{name: main, templateType: Serial, children: [first, second]}}\n{}{}",
            chaos("first", "delay", "300ms", ""),
            chaos("second", "loss", "300ms", "")
        ),
    );
    let uid = submit(&s, &yaml).await;
    let done = s.wait_phase(&uid, "Finished", T).await;
    let a = node(&done, "serial-first")["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    let b = node(&done, "serial-second")["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    for n in ["serial-main", "serial-first", "serial-second"] {
        assert_eq!(node(&done, n)["phase"], "Succeeded", "{done:#}");
    }
    // B's fault went in only after every one of A's was removed.
    let a_recovered = calls(&s, &a, "recover");
    let b_injected = calls(&s, &b, "inject");
    assert_eq!(a_recovered.len(), 2);
    assert_eq!(b_injected.len(), 2);
    let last_a = a_recovered.iter().max().unwrap();
    let first_b = b_injected.iter().min().unwrap();
    assert!(first_b > last_a, "B was injected before A finished");
    // Children are ordinary experiments linked to the workflow, named after their node.
    let child = get(&s, &a).await;
    assert_eq!(child["metadata"]["name"], "serial-first");
    assert_eq!(child["metadata"]["labels"]["chaoshub.dev/parent"], uid);
    assert_eq!(child["status"]["phase"], "Finished");
    assert_eq!(s.adapter.active_count(), 0);
}

#[tokio::test]
async fn parallel_runs_children_together() {
    let s = Sandbox::start(4).await;
    let yaml = workflow(
        "par",
        &format!(
            "  - {{name: main, templateType: Parallel, children: [left, right]}}\n{}{}",
            chaos("left", "delay", "600ms", ""),
            chaos("right", "loss", "600ms", "")
        ),
    );
    let uid = submit(&s, &yaml).await;
    let done = s.wait_phase(&uid, "Finished", T).await;
    let a = node(&done, "par-left")["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    let b = node(&done, "par-right")["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    let injected_last = calls(&s, &a, "inject")
        .into_iter()
        .chain(calls(&s, &b, "inject"))
        .max()
        .unwrap();
    let recovered_first = calls(&s, &a, "recover")
        .into_iter()
        .chain(calls(&s, &b, "recover"))
        .min()
        .unwrap();
    assert!(
        injected_last < recovered_first,
        "both children must be in place before either ends"
    );
    assert_eq!(node(&done, "par-main")["phase"], "Succeeded");
}

#[tokio::test]
async fn suspend_waits_its_deadline_on_the_clock() {
    let clock =
        chaoshub::time::ManualClock::new(chaoshub::time::parse("2030-01-01T00:00:00Z").unwrap());
    let mut s = start_clocked(4, Arc::clone(&clock)).await;
    let yaml = workflow(
        "nap",
        &format!(
            "  - {{name: main, templateType: Serial, children: [pause, after]}}\n  - {{name: pause, templateType: Suspend, deadline: 30s}}\n{}",
            chaos("after", "delay", "5s", "")
        ),
    );
    let uid = submit(&s, &yaml).await;
    s.wait_phase(&uid, "Running", T).await;
    clock.advance(Duration::from_millis(29_999));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wf = get(&s, &uid).await;
    assert_eq!(node(&wf, "nap-pause")["phase"], "Running", "{wf:#}");
    assert!(node(&wf, "nap-after")["experiment"].is_null());
    assert_eq!(
        node(&wf, "nap-pause")["deadline"],
        "2030-01-01T00:00:30.000Z"
    );

    // The hub restarts during the suspend: the stored state carries it on.
    restart_clocked(&mut s, Arc::clone(&clock)).await;
    clock.advance(Duration::from_millis(1));
    let start = Instant::now();
    let child = loop {
        let wf = get(&s, &uid).await;
        if let Some(c) = node(&wf, "nap-after")["experiment"].as_str() {
            assert_eq!(node(&wf, "nap-pause")["phase"], "DeadlineExceeded");
            assert_eq!(
                node(&wf, "nap-pause")["endedAt"],
                "2030-01-01T00:00:30.000Z"
            );
            break c.to_string();
        }
        assert!(start.elapsed() < T, "the next node never started: {wf:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    s.wait_phase(&child, "Running", T).await;
    clock.advance(Duration::from_secs(5));
    s.wait_phase(&uid, "Finished", T).await;
}

#[tokio::test]
async fn a_node_deadline_cuts_a_longer_chaos() {
    let s = Sandbox::start(4).await;
    let yaml = workflow(
        "cut",
        &format!(
            "  - {{name: main, templateType: Serial, children: [long]}}\n{}",
            chaos("long", "delay", "1h", "    deadline: 700ms\n")
        ),
    );
    let started = Instant::now();
    let uid = submit(&s, &yaml).await;
    let done = s.wait_phase(&uid, "Finished", T).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let child_uid = node(&done, "cut-long")["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    let child = get(&s, &child_uid).await;
    // The child's own duration was capped by the node's deadline.
    let d = chaoshub_schema::duration::parse_duration(child["spec"]["duration"].as_str().unwrap())
        .unwrap();
    assert!(d <= Duration::from_millis(700), "{d:?}");
    assert!(matches!(
        node(&done, "cut-long")["phase"].as_str().unwrap(),
        "Succeeded" | "DeadlineExceeded"
    ));
    assert_eq!(s.adapter.active_count(), 0);
}

/// A real HTTP server on 127.0.0.1:0 that answers every request with `status`.
async fn http_server(status: u16) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    let app =
        axum::Router::new().fallback(move || async move { (code, "status from the test server") });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/health")
}

#[tokio::test]
async fn a_failed_status_check_aborts_the_workflow_and_recovers_its_children() {
    let s = Sandbox::start(4).await;
    let url = http_server(500).await;
    let yaml = workflow(
        "guarded",
        &format!(
            "  - {{name: main, templateType: Parallel, children: [fault, health]}}\n{}  - name: health\n    templateType: StatusCheck\n    abortWithStatusCheck: true\n    deadline: 1m\n    statusCheck:\n      mode: Continuous\n      type: HTTP\n      intervalSeconds: 1\n      failureThreshold: 2\n      http:\n        url: {url}\n        criteria: {{statusCode: \"200\"}}\n",
            chaos("fault", "delay", "1h", "")
        ),
    );
    let uid = submit(&s, &yaml).await;
    let start = Instant::now();
    let child = loop {
        let wf = get(&s, &uid).await;
        if let Some(c) = node(&wf, "guarded-fault")["experiment"].as_str() {
            break c.to_string();
        }
        assert!(start.elapsed() < T);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    s.wait_phase(&child, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 2);
    let aborted = s.wait_phase(&uid, "Aborted", T).await;
    let reason = aborted["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("status check health failed"), "{reason}");
    assert_eq!(node(&aborted, "guarded-health")["phase"], "Failed");
    assert_eq!(node(&aborted, "guarded-fault")["phase"], "Aborted");
    let child = s.wait_phase(&child, "Aborted", T).await;
    assert!(child["status"]["reason"]
        .as_str()
        .unwrap()
        .contains("status check"));
    assert_eq!(s.adapter.active_count(), 0, "children must be recovered");
}

#[tokio::test]
async fn a_passing_status_check_lets_the_workflow_finish() {
    let s = Sandbox::start(4).await;
    let url = http_server(200).await;
    let yaml = workflow(
        "healthy",
        &format!(
            "  - {{name: main, templateType: Serial, children: [health, fault]}}\n  - name: health\n    templateType: StatusCheck\n    abortWithStatusCheck: true\n    statusCheck:\n      mode: Synchronous\n      intervalSeconds: 1\n      successThreshold: 1\n      http:\n        url: {url}\n        criteria: {{statusCode: \"200-299\"}}\n{}",
            chaos("fault", "delay", "200ms", "")
        ),
    );
    let uid = submit(&s, &yaml).await;
    let done = s.wait_phase(&uid, "Finished", T).await;
    assert_eq!(node(&done, "healthy-health")["phase"], "Succeeded");
    assert_eq!(node(&done, "healthy-fault")["phase"], "Succeeded");
}

#[tokio::test]
async fn stopping_a_workflow_stops_its_children() {
    let s = Sandbox::start(4).await;
    let yaml = workflow(
        "stopme",
        &format!(
            "  - {{name: main, templateType: Serial, children: [fault, later]}}\n{}{}",
            chaos("fault", "delay", "1h", ""),
            chaos("later", "loss", "1h", "")
        ),
    );
    let uid = submit(&s, &yaml).await;
    let start = Instant::now();
    let child = loop {
        let wf = get(&s, &uid).await;
        if let Some(c) = node(&wf, "stopme-fault")["experiment"].as_str() {
            break c.to_string();
        }
        assert!(start.elapsed() < T);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    s.wait_phase(&child, "Running", T).await;
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    let wf = s.wait_phase(&uid, "Aborted", T).await;
    s.wait_phase(&child, "Aborted", T).await;
    assert_eq!(node(&wf, "stopme-later")["phase"], "Aborted");
    assert!(node(&wf, "stopme-later")["experiment"].is_null());
    assert_eq!(s.adapter.active_count(), 0);
}

#[tokio::test]
async fn bad_workflows_are_refused_clearly() {
    let s = Sandbox::start(2).await;
    // A cycle: 400 with the path of the children list that closes it.
    let yaml = workflow(
        "loop",
        "  - {name: main, templateType: Serial, children: [inner]}\n  - {name: inner, templateType: Parallel, children: [main]}\n",
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &yaml).await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["details"][0]["path"], "spec.templates[1].children");
    // Task: 422 naming the template.
    let yaml = workflow(
        "task",
        "  - {name: main, templateType: Serial, children: [job]}\n  - name: job\n    templateType: Task\n    task:\n      container: {name: c, image: busybox}\n",
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &yaml).await;
    assert_eq!(code, 422, "{body:#}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("spec.templates[1]") && message.contains("Task"),
        "{message}"
    );
    // An action the environment cannot run: the single-experiment 422, placed in the tree.
    let yaml = workflow(
        "corrupt",
        "  - {name: main, templateType: Serial, children: [bad]}\n  - name: bad\n    templateType: NetworkChaos\n    networkChaos:\n      action: corrupt\n      mode: all\n      selector: {labelSelectors: {app: web}}\n      corrupt: {corrupt: \"40\"}\n",
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &yaml).await;
    assert_eq!(code, 422, "{body:#}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("spec.templates[1].networkChaos")
            && message.contains("NetworkChaos/corrupt"),
        "{message}"
    );
    // A field error inside a template keeps its full path.
    let yaml = workflow(
        "long",
        &format!(
            "  - {{name: main, templateType: Serial, children: [x]}}\n{}",
            chaos("x", "delay", "9999h", "")
        ),
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &yaml).await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"],
        "spec.templates[1].networkChaos.duration"
    );
}

/// Every Workflow and Schedule document of the project's fixtures (one per schedule type and
/// every template type) and of the shared Chaos Mesh examples when present is accepted by a dry
/// run, or refused with a 422 that names what the memory adapter cannot run.
#[tokio::test]
async fn chaos_mesh_example_workflows_and_schedules_dry_run() {
    let s = Sandbox::start(2).await;
    let mut dirs = vec![chaoshub_testkit::fixtures_dir()];
    dirs.extend(chaoshub_testkit::shared_dir(
        "reference/chaos-mesh/examples",
    ));
    let (mut seen, mut accepted) = (0, 0);
    for dir in &dirs {
        for (path, text) in chaoshub_testkit::manifest_files(dir) {
            for (i, doc) in chaoshub_schema::split_documents(&text)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                if !matches!(doc["kind"].as_str(), Some("Workflow" | "Schedule")) {
                    continue;
                }
                seen += 1;
                let at = format!("{} document {}", path.display(), i + 1);
                let (code, body) = s
                    .request(
                        reqwest::Method::POST,
                        "/api/v1/experiments?dryRun=true&env=mem",
                        Some(("application/json", doc.to_string())),
                    )
                    .await;
                match code {
                    200 => {
                        assert_eq!(body["valid"], true, "{at}: {body:#}");
                        accepted += 1;
                    }
                    // The memory adapter runs only a few kinds, and the hub runs no Task
                    // (user container) template; a refusal must name the field and say what
                    // cannot run.
                    422 => {
                        let message = body["message"].as_str().unwrap();
                        assert!(
                            message.contains("spec.")
                                && (message.contains("supported by")
                                    || message.contains("cannot run")),
                            "{at}: {message}"
                        );
                    }
                    other => panic!("{at}: {other} {body:#}"),
                }
            }
        }
    }
    // The fixtures alone: 15 schedules (one per type) and 2 workflows.
    assert!(
        seen >= 17,
        "expected the workflow and schedule fixtures, saw {seen}"
    );
    assert!(
        accepted >= 1,
        "the memory adapter runs some of them; none was accepted"
    );
}

/// A chaos template whose only duration is its node's `deadline` (the usual Chaos Mesh way).
fn deadline_chaos(name: &str, action: &str, deadline: &str) -> String {
    chaos(name, action, "1s", &format!("    deadline: {deadline}\n"))
        .replace("      duration: 1s\n", "")
}

/// Serial → Suspend → Parallel with deadline-only chaos nodes: every child ran its full time
/// and ends `Finished`, every chaos, Serial and Parallel node `Succeeded`; the workflow
/// `Finished`. Nothing counts as aborted.
#[tokio::test]
async fn deadline_only_chaos_nodes_end_finished_not_aborted() {
    let s = Sandbox::start(4).await;
    let yaml = workflow(
        "dl",
        &format!(
            "  - {{name: main, templateType: Serial, children: [first, nap, both]}}\n  - {{name: nap, templateType: Suspend, deadline: 200ms}}\n  - {{name: both, templateType: Parallel, children: [left, right]}}\n{}{}{}",
            deadline_chaos("first", "delay", "600ms"),
            deadline_chaos("left", "delay", "600ms"),
            deadline_chaos("right", "loss", "600ms"),
        ),
    );
    let uid = submit(&s, &yaml).await;
    let done = s.wait_phase(&uid, "Finished", T).await;
    for n in ["dl-main", "dl-first", "dl-both", "dl-left", "dl-right"] {
        assert_eq!(node(&done, n)["phase"], "Succeeded", "{n}: {done:#}");
    }
    assert_eq!(node(&done, "dl-nap")["phase"], "DeadlineExceeded");
    for n in ["dl-first", "dl-left", "dl-right"] {
        let child_uid = node(&done, n)["experiment"].as_str().unwrap().to_string();
        let child = get(&s, &child_uid).await;
        assert_eq!(child["status"]["phase"], "Finished", "{n}: {child:#}");
        // It ran until the node's deadline, exactly: the node's end is the child's.
        assert_eq!(
            child["status"]["deadline"],
            node(&done, n)["deadline"],
            "{child:#}"
        );
        let ran = chaoshub::time::parse(child["status"]["endedAt"].as_str().unwrap()).unwrap()
            - chaoshub::time::parse(child["status"]["startedAt"].as_str().unwrap()).unwrap();
        assert!(
            ran >= chrono::Duration::milliseconds(500),
            "{n} ran only {ran}"
        );
    }
    let (_, events) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    assert!(
        !events.to_string().contains("Aborted"),
        "a normal workflow reported an abort: {events:#}"
    );
    assert_eq!(s.adapter.active_count(), 0);

    // Stopped while its deadline-only child runs: that child is interrupted, so `Aborted`.
    let yaml = workflow(
        "dlstop",
        &format!(
            "  - {{name: main, templateType: Serial, children: [long]}}\n{}",
            deadline_chaos("long", "delay", "1h"),
        ),
    );
    let uid = submit(&s, &yaml).await;
    let start = Instant::now();
    let child = loop {
        let wf = get(&s, &uid).await;
        if let Some(c) = node(&wf, "dlstop-long")["experiment"].as_str() {
            break c.to_string();
        }
        assert!(start.elapsed() < T);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    s.wait_phase(&child, "Running", T).await;
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    let wf = s.wait_phase(&uid, "Aborted", T).await;
    s.wait_phase(&child, "Aborted", T).await;
    assert_eq!(node(&wf, "dlstop-long")["phase"], "Aborted");
    assert_eq!(s.adapter.active_count(), 0);
}
