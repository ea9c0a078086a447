//! Suites through the REST API: cases of experiments × environments judged by the
//! steady-state hypothesis, the JUnit report, bad suites refused with paths, and the
//! threshold search finding a planted threshold.
//!
//! The services probed are real HTTP servers in the test. For the cases, their health follows
//! the memory adapter (503 while a fault is on the `web` target). For the threshold search, a
//! real service with a 300 ms timeout calls its backend through a proxy of the fake Toxiproxy
//! server (`adapters/tests/toxiproxy/fake_server.rs`: a fake of the API whose toxics really
//! delay the bytes, because no Toxiproxy binary can be installed here).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chaoshub_schema::suite::SuiteRun;
use serde_json::{json, Value};

use super::probes::{serve, web_service};
use super::support::Sandbox;

use super::toxiproxy::fake_server::FakeToxiproxy;

async fn register(s: &Sandbox, name: &str, adapter: &str, labels: Value, extra: Value) {
    let mut body = json!({
        "apiVersion": "chaoshub.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"adapter": adapter},
    });
    if let Value::Object(e) = extra {
        for (k, v) in e {
            body["spec"][k] = v;
        }
    }
    let (code, answer) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/environments?replace=true",
            Some(("application/json", body.to_string())),
        )
        .await;
    assert!(code == 201 || code == 200, "{answer:#}");
}

async fn wait_run(s: &Sandbox, id: &str, timeout: Duration) -> SuiteRun {
    let started = Instant::now();
    loop {
        let (code, v) = s.get(&format!("/api/v1/suites/runs/{id}")).await;
        assert_eq!(code, 200, "{v:#}");
        let run: SuiteRun = serde_json::from_value(v.clone()).unwrap();
        if run.phase != chaoshub_schema::suite::SuiteRunPhase::Running {
            return run;
        }
        assert!(
            started.elapsed() < timeout,
            "the suite run did not end within {timeout:?}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn delay(app: &str) -> String {
    format!("{{apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {{name: d}}, spec: {{action: delay, mode: all, selector: {{labelSelectors: {{app: {app}}}}}, delay: {{latency: 10ms}}, duration: 1500ms}}}}")
}

#[tokio::test]
async fn cases_hold_deviate_or_fail_with_evidence_in_every_environment() {
    let s = Sandbox::start(2).await;
    let web = web_service(s.adapter.clone()).await;
    let port = web.addr.port().to_string();
    // Two environments of the same memory world; the probe finds the service through each
    // environment's own label.
    register(&s, "mem", "memory", json!({"port": port}), json!({})).await;
    register(
        &s,
        "mem2",
        "memory",
        json!({}),
        json!({"labels": {"port": port}}),
    )
    .await;
    let suite = format!(
        r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {{name: web-resilience}}
spec:
  environments: [mem, mem2]
  steadyState:
    interval: 200ms
    probes:
      - name: web-ok
        http: {{url: "http://127.0.0.1:{{{{ environment.labels.port }}}}/health", timeout: 500ms, expect: {{status: 200}}}}
  timeouts: {{recovery: 5s}}
  experiments:
    - name: db-delay
      expect: hold
      manifest: {db}
    - name: web-outage
      expect: deviate
      environments: [mem]
      manifest: {web}
    - name: web-outage-hold
      expect: hold
      environments: [mem2]
      manifest: {web}
"#,
        db = delay("db"),
        web = delay("web")
    );
    let (code, started) = s.post_yaml("/api/v1/suites", &suite).await;
    assert_eq!(code, 202, "{started:#}");
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["phase"], "Running");
    assert_eq!(started["cases"].as_array().unwrap().len(), 4);

    let run = wait_run(&s, &id, Duration::from_secs(60)).await;
    let outcome = |exp: &str, env: &str| {
        run.cases
            .iter()
            .find(|c| c.experiment == exp && c.environment == env)
            .unwrap_or_else(|| panic!("no case {exp}/{env}"))
            .clone()
    };
    use chaoshub_schema::suite::CaseOutcome::*;
    let held = outcome("db-delay", "mem");
    assert_eq!(held.outcome, Passed, "{held:#?}");
    assert!(!held.steady_state.before.is_empty());
    assert!(!held.steady_state.during.is_empty());
    assert!(held.steady_state.during.iter().all(|r| r.ok));
    assert_eq!(held.experiments.len(), 1);
    assert_eq!(held.experiments[0].phase, "Finished");
    assert_eq!(held.experiments[0].targets[0].target.id, "host-1");
    assert_eq!(outcome("db-delay", "mem2").outcome, Passed);

    let deviated = outcome("web-outage", "mem");
    assert_eq!(deviated.outcome, Passed, "{deviated:#?}");
    assert!(deviated.message.unwrap().contains("deviated as expected"));
    assert!(deviated.steady_state.after.last().unwrap().ok);

    let broken = outcome("web-outage-hold", "mem2");
    assert_eq!(broken.outcome, Failed, "{broken:#?}");
    let message = broken.message.unwrap();
    assert!(
        message.contains("deviated during the fault") && message.contains("503"),
        "{message}"
    );
    assert_eq!(run.phase, chaoshub_schema::suite::SuiteRunPhase::Failed);
    assert_eq!(run.summary.passed, 3);
    assert_eq!(run.summary.failed, 1);
    assert!(run.log.iter().any(|l| l.message.contains("✘ failed")));
    assert_eq!(s.adapter.active_count(), 0);

    // The experiments carry the suite's labels and are ordinary experiments.
    let (_, list) = s.get("/api/v1/experiments?env=mem2").await;
    let items = list["items"].as_array().unwrap();
    assert!(items
        .iter()
        .all(|e| e["metadata"]["labels"]["chaoshub.dev/suite-run"] == id.as_str()));

    // The JUnit report: one testsuite per environment, the failure with its evidence.
    let xml = chaoshub::suites::junit::render(&run);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    // The writer chooses the attributes' order, so each is checked on the element itself.
    let mem2 = xml
        .split("<testsuite ")
        .find(|element| element.starts_with("name=\"mem2\""))
        .and_then(|element| element.split('>').next())
        .unwrap_or_else(|| panic!("no testsuite for mem2 in {xml}"));
    for attribute in [
        "id=\"1\"",
        "package=\"web-resilience\"",
        "tests=\"2\"",
        "failures=\"1\"",
    ] {
        assert!(
            mem2.contains(attribute),
            "{attribute} not in <testsuite {mem2}>"
        );
    }
    assert!(
        xml.contains("<failure message=\"the steady state must hold"),
        "{xml}"
    );

    let (code, runs) = s.get("/api/v1/suites/runs").await;
    assert_eq!(code, 200);
    assert_eq!(runs["items"][0]["id"], id.as_str());
    assert_eq!(runs["items"][0]["summary"]["failed"], 1);
    let (code, _) = s.get("/api/v1/suites/runs/nope").await;
    assert_eq!(code, 404);

    // The same report from the API, and both reports and the evidence in the console.
    let junit = s
        .client
        .get(format!("{}/api/v1/suites/runs/{id}/junit", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(junit.status(), 200);
    assert!(junit.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    assert_eq!(junit.text().await.unwrap(), xml);
    let (code, _) = s.get("/api/v1/suites/runs/nope/junit").await;
    assert_eq!(code, 404);
    console_shows_the_run(&s, &id, &xml).await;
}

/// The console's page of a finished run: every case's probe evidence, the failure's, and the
/// two reports as downloads through the session.
async fn console_shows_the_run(s: &Sandbox, id: &str, xml: &str) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{}/login", s.url))
        .form(&[("token", s.admin_token().as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |path: String| {
        browser
            .get(format!("{}{path}", s.url))
            .header("cookie", cookie.clone())
            .send()
    };
    let page = get(format!("/suites/{id}")).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    for wanted in [
        "Evidence by case",
        "<caption>Steady-state probes</caption>",
        "web-ok",
        "expected to deviate",
        ">failed</span>",
        &format!("href=\"/suites/{id}/junit.xml\" download"),
        &format!("href=\"/suites/{id}/report.json\" download"),
    ] {
        assert!(page.contains(wanted), "{wanted} not on the page: {page}");
    }
    // Each case's probes are charted over time with the fault's span.
    assert_eq!(
        page.matches("<svg class=\"chart probes\"").count(),
        4,
        "{page}"
    );
    assert!(page.contains("class=\"fault-window\""), "{page}");
    // The failed case is unfolded; the three that passed are folded.
    assert_eq!(page.matches("<details class=\"case\"").count(), 4, "{page}");
    assert_eq!(page.matches(" open><summary>").count(), 1, "{page}");

    // An experiment the suite ran shows its case's probes and links back to the case.
    let run: Value = s.get(&format!("/api/v1/suites/runs/{id}")).await.1;
    let uid = run["cases"][0]["experiments"][0]["uid"].as_str().unwrap();
    let detail = get(format!("/experiments/{uid}")).await.unwrap();
    let detail = detail.text().await.unwrap();
    assert!(
        detail.contains("<h2 id=\"probes\">Steady state</h2>"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("href=\"/suites/{id}#case-0\"")),
        "{detail}"
    );
    assert!(detail.contains("<svg class=\"chart probes\""), "{detail}");

    let junit = get(format!("/suites/{id}/junit.xml")).await.unwrap();
    assert_eq!(junit.status(), 200);
    assert_eq!(
        junit.headers()["content-disposition"],
        format!("attachment; filename=\"suite-run-{id}.xml\"").as_str()
    );
    assert_eq!(junit.text().await.unwrap(), xml);
    let journal = get(format!("/suites/{id}/report.json")).await.unwrap();
    assert_eq!(journal.status(), 200);
    let journal: Value = journal.json().await.unwrap();
    assert_eq!(journal["id"], id);
    assert_eq!(journal["cases"].as_array().unwrap().len(), 4);
    let missing = get(format!("/suites/{id}/other.txt")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing = get("/suites/nope/junit.xml".to_string()).await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_stop_condition_of_a_suite_experiment_counts_as_a_deviation() {
    let s = Sandbox::start(2).await;
    let web = web_service(s.adapter.clone()).await;
    let suite = format!(
        r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {{name: guarded}}
spec:
  environments: [mem]
  experiments:
    - name: web-outage
      stopConditions:
        - name: web-up
          http: {{url: "{url}", timeout: 500ms}}
      manifest: {{apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {{name: d}}, spec: {{action: delay, mode: all, selector: {{labelSelectors: {{app: web}}}}, delay: {{latency: 10ms}}, duration: 60s}}}}
"#,
        url = web.url("/health")
    );
    let (code, started) = s.post_yaml("/api/v1/suites", &suite).await;
    assert_eq!(code, 202, "{started:#}");
    let begun = Instant::now();
    let run = wait_run(&s, started["id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "the stop condition cut the 60 s fault short"
    );
    let case = &run.cases[0];
    assert_eq!(
        case.outcome,
        chaoshub_schema::suite::CaseOutcome::Failed,
        "{case:#?}"
    );
    assert!(
        case.message
            .as_ref()
            .unwrap()
            .contains("stop condition web-up failed"),
        "{case:#?}"
    );
    assert_eq!(case.experiments[0].phase, "Aborted");
}

#[tokio::test]
async fn bad_suites_are_refused_with_field_paths_before_anything_runs() {
    let s = Sandbox::start(1).await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "spec: {environments: [mem, nowhere], experiments: [{name: a, manifest: {apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: a}, spec: {action: delay, mode: all, selector: {}, delay: {latency: soon}}}}]}",
            vec!["spec.environments[1]", "spec.experiments[0].manifest.spec.delay.latency"],
        ),
        (
            "spec: {environments: [mem], experiments: [{name: a, file: ./x.yaml}]}",
            vec!["spec.experiments[0].file"],
        ),
        (
            "spec: {environments: [mem], experiments: [{name: a, template: {name: no-such-template}}]}",
            vec!["spec.experiments[0].template.name"],
        ),
        (
            "spec: {environments: [mem], steadyState: {probes: [{name: p, command: {run: [\"true\"]}}]}, experiments: [{name: a, manifest: {apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: a}, spec: {action: delay, mode: all, selector: {}, delay: {latency: 1ms}}}}]}",
            vec!["spec.steadyState.probes[0].command"],
        ),
        (
            "spec: {environments: [mem], steadyState: {probes: [{name: p, tcp: {address: \"{{ environment.labels.nope }}\"}}]}, experiments: [{name: a, manifest: {apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: a}, spec: {action: delay, mode: all, selector: {}, delay: {latency: 1ms}}}}]}",
            vec!["spec.steadyState.probes[0]"],
        ),
        (
            "spec: {environments: [mem], experiments: [{name: a, manifest: {apiVersion: chaoshub.dev/v1alpha1, kind: Environment, metadata: {name: a}, spec: {adapter: memory}}}]}",
            vec!["spec.experiments[0].manifest.kind"],
        ),
        (
            "spec: {environments: [mem], steadyState: {probes: [{name: p, tcp: {address: \"127.0.0.1:1\"}}]}, experiments: [{name: a, thresholdSearch: {parameter: spec.delay.latency, from: 1, to: 9, unit: parsecs}, manifest: {apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: a}, spec: {action: delay, mode: all, selector: {}, delay: {latency: 1ms}}}}]}",
            vec!["spec.experiments[0].manifest.spec.delay.latency"],
        ),
    ];
    for (spec, paths) in cases {
        let yaml = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {{name: bad}}\n{spec}\n"
        );
        let (code, body) = s.post_yaml("/api/v1/suites", &yaml).await;
        assert_eq!(code, 400, "{yaml}\n{body:#}");
        let got: Vec<&str> = body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        for p in paths {
            assert!(got.contains(&p), "{p} not in {got:?} for {yaml}");
        }
    }
    let (code, body) = s
        .post_yaml(
            "/api/v1/suites",
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: x}\nspec: {action: delay, mode: all, selector: {}, delay: {latency: 1ms}}\n",
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["details"][0]["path"], "kind");
    let (code, _) = s.post_yaml("/api/v1/suites?bogus=1", "x: 1").await;
    assert_eq!(code, 400);
    let (code, _) = s.post_yaml("/api/v1/suites", "{{{").await;
    assert_eq!(code, 400);
    let (code, runs) = s.get("/api/v1/suites/runs").await;
    assert_eq!(code, 200);
    assert!(runs["items"].as_array().unwrap().is_empty(), "nothing ran");
}

/// The planted threshold: a service that answers 200 only when its backend answers within
/// 300 ms (else 504), with the backend behind a Toxiproxy-compatible proxy.
#[tokio::test]
async fn threshold_search_finds_a_planted_300ms_timeout_within_ten_percent() {
    let s = Sandbox::start(0).await;
    let fake = FakeToxiproxy::start().await;
    let backend = serve(Router::new().route("/", get(|| async { "pong" }))).await;
    let proxy = fake.create_proxy("backend", backend.addr).await;
    let front = serve(Router::new().route(
        "/",
        get(move || async move {
            // A new connection per call, as the fault applies to the proxy's traffic.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_millis(300))
                .build()
                .unwrap();
            match client.get(format!("http://{proxy}/")).send().await {
                Ok(r) if r.status().is_success() => (StatusCode::OK, "ok".to_string()),
                Ok(r) => (
                    StatusCode::BAD_GATEWAY,
                    format!("backend said {}", r.status()),
                ),
                Err(e) => (StatusCode::GATEWAY_TIMEOUT, format!("backend: {e}")),
            }
        }),
    ))
    .await;
    register(
        &s,
        "toxi",
        "toxiproxy",
        json!({}),
        json!({"endpoint": fake.url()}),
    )
    .await;
    let suite = format!(
        r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {{name: latency-budget}}
spec:
  environments: [toxi]
  steadyState:
    interval: 250ms
    probes:
      - name: front-ok
        http: {{url: "{url}", timeout: 3s, expect: {{status: 200}}}}
  timeouts: {{recovery: 10s}}
  experiments:
    - name: backend-latency
      thresholdSearch:
        parameter: spec.latency.latency
        from: 50
        to: 2000
        resolution: 10
        maxSteps: 12
        observe: 1s
        budget: 3m
        atLeast: 100
      manifest:
        apiVersion: chaoshub.dev/v1alpha1
        kind: ProxyChaos
        metadata: {{name: backend-latency}}
        spec: {{action: latency, mode: all, selector: {{labelSelectors: {{name: backend}}}}, latency: {{latency: 1}}, duration: 60s}}
"#,
        url = front.url("/")
    );
    let (code, started) = s.post_yaml("/api/v1/suites", &suite).await;
    assert_eq!(code, 202, "{started:#}");
    let run = wait_run(
        &s,
        started["id"].as_str().unwrap(),
        Duration::from_secs(170),
    )
    .await;
    let case = &run.cases[0];
    assert_eq!(
        case.outcome,
        chaoshub_schema::suite::CaseOutcome::Passed,
        "{case:#?}"
    );
    let t = case.threshold.as_ref().unwrap();
    let found = t.tolerated.unwrap();
    eprintln!(
        "threshold search: tolerated {found} ms, first failing {:?} ms, {} steps, ended by {}: {:?}",
        t.first_failing,
        t.steps.len(),
        t.ended_by,
        t.steps.iter().map(|s| (s.value, s.tolerated)).collect::<Vec<_>>()
    );
    assert!(
        (270.0..=330.0).contains(&found),
        "planted 300 ms, found {found} ms: {t:#?}"
    );
    assert!(t.steps.len() <= 12);
    // Every step's fault was removed before the next: one experiment per step, each ended.
    assert_eq!(case.experiments.len(), t.steps.len());
    assert!(case
        .experiments
        .iter()
        .all(|e| e.phase == "Aborted" && e.targets.iter().all(|t| t.recovered_at.is_some())));
    assert!(
        fake.toxic_names("backend").is_empty(),
        "no toxic left behind"
    );
}

/// A case whose environment cannot run its fault (the memory adapter declares no NetworkChaos
/// bandwidth) is skipped with the adapter's reason — "skipped: environment … (adapter memory)
/// cannot run NetworkChaos/bandwidth" — instead of ending in an error, and nothing is
/// submitted for it; the suite's other case runs and passes, and the run passes.
#[tokio::test]
async fn a_case_its_environment_cannot_run_is_skipped_with_the_reason() {
    let s = Sandbox::start(2).await;
    register(&s, "mem", "memory", json!({}), json!({})).await;
    let suite = format!(
        r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {{name: partly-supported}}
spec:
  environments: [mem]
  timeouts: {{recovery: 5s}}
  experiments:
    - name: throttle
      manifest: {{apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {{name: t}}, spec: {{action: bandwidth, mode: all, selector: {{labelSelectors: {{app: db}}}}, bandwidth: {{rate: 1mbps, limit: 100, buffer: 10000}}, duration: 1s}}}}
    - name: db-delay
      manifest: {db}
"#,
        db = delay("db")
    );
    let (code, started) = s.post_yaml("/api/v1/suites", &suite).await;
    assert_eq!(code, 202, "{started:#}");
    let run = wait_run(&s, started["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    use chaoshub_schema::suite::CaseOutcome::*;
    let skipped = run
        .cases
        .iter()
        .find(|c| c.experiment == "throttle")
        .unwrap();
    assert_eq!(skipped.outcome, Skipped, "{skipped:#?}");
    let message = skipped.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("skipped: ")
            && message.contains("(adapter memory) cannot run NetworkChaos/bandwidth"),
        "{message}"
    );
    assert!(skipped.experiments.is_empty(), "nothing was submitted");
    let ran = run
        .cases
        .iter()
        .find(|c| c.experiment == "db-delay")
        .unwrap();
    assert_eq!(ran.outcome, Passed, "{ran:#?}");
    assert_eq!(
        (run.summary.passed, run.summary.skipped, run.summary.errors),
        (1, 1, 0),
        "{:#?}",
        run.summary
    );
    assert!(
        run.log.iter().any(|l| l.message.contains("skipped: ")),
        "the log says why: {:#?}",
        run.log
    );
}
