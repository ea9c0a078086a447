//! Engine-side deadlines: a pause, a network disconnect and a resource squeeze end on time when
//! the hub never comes back. Nothing calls `recover` until after the deadline here, as when the
//! hub was killed for good; the watchdog container the adapter armed undoes the fault through
//! the engine's socket one second after the deadline. Then "the hub comes back": recovery finds
//! nothing left to undo and removes the watchdog and the journal.

use std::time::Duration;

use chaoshub_adapters::docker::DockerAdapter;
use chaoshub_adapters::{Adapter, FaultRequest};
use chaoshub_schema::Target;
use serde_json::Value;

use super::support::*;

/// The watchdog fires one second after the deadline; allow polling and a loaded machine.
const ON_TIME: chrono::Duration = chrono::Duration::milliseconds(3_500);

fn watchdog_log(injection_id: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["logs", &format!("chaoshub-{injection_id}-watchdog")])
        .output()
        .expect("docker logs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The helper image is built before a test takes its deadline, so that the first build's
/// seconds are not spent from a six-second fault.
async fn helper_image_ready() {
    // What the hub runs in the background when an environment is registered.
    DockerAdapter::new()
        .prepare(&agent_env())
        .await
        .expect("the helper image builds");
    let images = docker_cli(&[
        "images",
        "-q",
        "--filter",
        "label=dev.chaoshub.role=helper-image",
    ]);
    assert!(!images.trim().is_empty(), "a helper image is on the engine");
}

fn assert_armed(details: &Value) {
    assert_eq!(
        details["watchdog"]["armed"], true,
        "watchdog armed: {details}"
    );
}

/// How long after `deadline` the watchdog's undo was seen.
async fn seen_after(
    deadline: chrono::DateTime<chrono::Utc>,
    what: &str,
    check: impl FnMut() -> bool,
) -> chrono::Duration {
    eventually(what, Duration::from_secs(30), check).await;
    chrono::Utc::now() - deadline
}

async fn hub_comes_back(
    adapter: &DockerAdapter,
    fault: &FaultRequest,
    target: &Target,
    details: Value,
) {
    adapter
        .recover(&agent_env(), &injection(fault, target, details))
        .await
        .unwrap();
    assert!(
        helpers_of(&fault.injection_id).is_empty(),
        "the watchdog is removed"
    );
    assert!(!journal_exists(&fault.injection_id));
}

#[tokio::test]
async fn a_pause_ends_at_its_deadline_without_the_hub() {
    let adapter = DockerAdapter::new();
    let web = run_web().await;
    let ip = address(&web, "bridge");
    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: p\nspec:\n  action: pod-failure\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n";
    helper_image_ready().await;
    // Built before the request, whose deadline counts from now: the first call builds the agent.
    let with_agent = agent_env();
    let fault = request(yaml, &id, 6);
    let deadline = fault.deadline.unwrap();
    let started = std::time::Instant::now();
    let details = adapter.inject(&with_agent, &fault, &target).await.unwrap();
    eprintln!("injected with its watchdog in {:?}", started.elapsed());
    assert_armed(&details);
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "true");
    assert!(http_get(&ip, Duration::from_millis(500)).is_err());

    let late = seen_after(deadline, "the watchdog unpauses", || {
        inspect(&web, "{{.State.Paused}}") == "false"
    })
    .await;
    eprintln!("paused container unpaused by the watchdog {late} after the deadline");
    assert!(late <= ON_TIME, "unpaused {late} after the deadline");
    assert!(late >= chrono::Duration::zero(), "not before the deadline");
    http_get(&ip, Duration::from_secs(2)).expect("the target answers again");
    let log = watchdog_log(&id);
    assert!(
        log.contains("\"state\":\"reverted\"") && log.contains("/unpause"),
        "the watchdog says what it did: {log}"
    );
    hub_comes_back(&adapter, &fault, &target, details).await;
}

#[tokio::test]
async fn a_disconnect_ends_at_its_deadline_without_the_hub_with_the_same_aliases() {
    let adapter = DockerAdapter::new();
    let network = NetworkGuard::create();
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            network: Some(&network.name),
            alias: Some("shop-web"),
            ..Run::default()
        },
    )
    .await;
    let aliases = format!(
        "{{{{(index .NetworkSettings.Networks \"{}\").Aliases}}}}",
        network.name
    );
    let aliases_before = inspect(&web, &aliases);
    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: p\n  annotations:\n    chaoshub.dev/partition: disconnect\nspec:\n  action: partition\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n";
    helper_image_ready().await;
    // Built before the request, whose deadline counts from now: the first call builds the agent.
    let with_agent = agent_env();
    let fault = request(yaml, &id, 6);
    let deadline = fault.deadline.unwrap();
    let started = std::time::Instant::now();
    let details = adapter.inject(&with_agent, &fault, &target).await.unwrap();
    eprintln!("injected with its watchdog in {:?}", started.elapsed());
    assert_armed(&details);
    let attached = || {
        inspect(
            &web,
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        )
        .split_whitespace()
        .any(|n| n == network.name)
    };
    assert!(!attached(), "disconnected");

    let late = seen_after(deadline, "the watchdog reconnects", attached).await;
    eprintln!("disconnected container reconnected by the watchdog {late} after the deadline");
    assert!(late <= ON_TIME, "reconnected {late} after the deadline");
    assert_eq!(inspect(&web, &aliases), aliases_before, "the same aliases");
    let ip = address(&web, &network.name);
    http_get(&ip, Duration::from_secs(2)).expect("reachable on its network again");
    hub_comes_back(&adapter, &fault, &target, details).await;
}

#[tokio::test]
async fn a_squeeze_ends_at_its_deadline_without_the_hub_with_the_old_limits() {
    let adapter = DockerAdapter::new();
    let limits = "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}";
    let web = run_web().await;
    docker_cli(&[
        "update",
        "--cpus",
        "1.5",
        "-m",
        "96m",
        "--memory-swap",
        "192m",
        &web.name,
    ]);
    let before = inspect(&web, limits);
    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata:\n  name: s\n  annotations:\n    chaoshub.dev/cpu-limit: \"0.25\"\n    chaoshub.dev/memory-limit: 32MiB\nspec:\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n  stressors:\n    cpu: {workers: 1}\n";
    helper_image_ready().await;
    // Built before the request, whose deadline counts from now: the first call builds the agent.
    let with_agent = agent_env();
    let fault = request(yaml, &id, 6);
    let deadline = fault.deadline.unwrap();
    let started = std::time::Instant::now();
    let details = adapter.inject(&with_agent, &fault, &target).await.unwrap();
    eprintln!("injected with its watchdog in {:?}", started.elapsed());
    assert_armed(&details);
    assert_ne!(inspect(&web, limits), before, "squeezed");

    let late = seen_after(deadline, "the watchdog restores the limits", || {
        inspect(&web, limits) == before
    })
    .await;
    eprintln!("squeezed limits restored by the watchdog {late} after the deadline: {before}");
    assert!(late <= ON_TIME, "restored {late} after the deadline");
    hub_comes_back(&adapter, &fault, &target, details).await;
}

#[tokio::test]
async fn a_network_fault_ends_at_its_deadline_without_the_hub() {
    let adapter = DockerAdapter::new();
    let web = run_web().await;
    let ip = address(&web, "bridge");
    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let rtt = |ip: &str| {
        median(
            connect_times(ip, 5, Duration::from_secs(2))
                .into_iter()
                .flatten()
                .collect(),
        )
    };
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: n\nspec:\n  action: delay\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n  delay:\n    latency: 100ms\n";
    helper_image_ready().await;
    // Built before the request, whose deadline counts from now: the first call builds the agent.
    let with_agent = agent_env();
    let fault = request(yaml, &id, 6);
    let deadline = fault.deadline.unwrap();
    let details = adapter.inject(&with_agent, &fault, &target).await.unwrap();
    assert!(rtt(&ip) >= Duration::from_millis(90), "delayed");

    // The agent in the helper holds the fault for --duration (the deadline, rounded up to a
    // whole second) and removes it itself.
    let late = seen_after(deadline, "the helper's agent removes the delay", || {
        rtt(&ip) < Duration::from_millis(20)
    })
    .await;
    eprintln!("delay removed by the helper's own agent {late} after the deadline");
    assert!(late <= ON_TIME, "removed {late} after the deadline");
    // It says so once the removal is complete (a moment after the traffic is free).
    eventually(
        "the helper reports removal",
        Duration::from_secs(10),
        || {
            docker_cli(&["logs", &format!("chaoshub-{id}-network")])
                .contains("\"state\":\"removed\"")
        },
    )
    .await;
    hub_comes_back(&adapter, &fault, &target, details).await;
}
