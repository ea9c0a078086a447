//! NetworkChaos and StressChaos through helper containers running this build's `chaos-agent` in
//! the target's namespaces, measured from the host: added latency, loss rate, partition both
//! ways, and removal (including after the helper is killed, by the cleanup helper).

use std::time::{Duration, Instant};

use chaoshub_adapters::docker::image::{build_image, helper_context};
use chaoshub_adapters::docker::DockerAdapter;
use chaoshub_adapters::{Adapter, Environment, InjectionState};

use super::support::*;

fn agent_env() -> Environment {
    let mut env = env();
    env.spec.settings.insert(
        "agent_binary".into(),
        agent_binary().to_string_lossy().into_owned().into(),
    );
    env
}

fn network_chaos(action: &str, body: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: n\nspec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{app: web}}\n{body}"
    )
}

fn helpers_of(injection_id: &str) -> Vec<String> {
    docker_cli(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.chaoshub.injection={injection_id}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[tokio::test]
#[ignore = "known failure, issue 4 still open: inside the helper container the real chaos-agent applies the NFQUEUE delay / numgen loss without effect or leaves it behind; see docs/adapters/docker.md"]
async fn delay_adds_100ms_and_goes_away_on_recovery() {
    let adapter = DockerAdapter::new();
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let ip = address(&web, "bridge");
    let target = target_of(&web).await;
    let timeout = Duration::from_secs(3);
    let base = median(
        connect_times(&ip, 20, timeout)
            .into_iter()
            .flatten()
            .collect(),
    );

    let id = injection_id();
    let _guard = InjectionGuard {
        injection_id: id.clone(),
    };
    let fault = request(
        &network_chaos("delay", "  delay:\n    latency: 100ms\n"),
        &id,
        60,
    );
    let started = Instant::now();
    let details = adapter.inject(&agent_env(), &fault, &target).await.unwrap();
    eprintln!(
        "delay injected and confirmed in {:?}: {details}",
        started.elapsed()
    );
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&agent_env(), &inj).await.unwrap(),
        InjectionState::Active
    );
    let delayed = median(
        connect_times(&ip, 20, timeout)
            .into_iter()
            .flatten()
            .collect(),
    );
    let added = delayed.saturating_sub(base);
    eprintln!("connect RTT: {base:?} before, {delayed:?} with delay: +{added:?}");
    assert!(
        added >= Duration::from_millis(90) && added <= Duration::from_millis(110),
        "latency added {added:?}, wanted 100 ms ± 10 %"
    );

    let started = Instant::now();
    adapter.recover(&agent_env(), &inj).await.unwrap();
    let recovery = started.elapsed();
    let after = median(
        connect_times(&ip, 20, timeout)
            .into_iter()
            .flatten()
            .collect(),
    );
    eprintln!("delay recovery took {recovery:?}; RTT after: {after:?}");
    assert!(
        after < base + Duration::from_millis(20),
        "delay removed: {after:?}"
    );
    assert!(helpers_of(&id).is_empty(), "helpers removed");
    assert!(!journal_exists(&id));
}

#[tokio::test]
#[ignore = "known failure, issue 4 still open: inside the helper container the real chaos-agent applies the NFQUEUE delay / numgen loss without effect or leaves it behind; see docs/adapters/docker.md"]
async fn loss_drops_about_the_asked_share() {
    let adapter = DockerAdapter::new();
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let ip = address(&web, "bridge");
    let target = target_of(&web).await;
    let id = injection_id();
    let _guard = InjectionGuard {
        injection_id: id.clone(),
    };
    let fault = request(
        &network_chaos("loss", "  loss:\n    loss: \"50\"\n"),
        &id,
        120,
    );
    let details = adapter.inject(&agent_env(), &fault, &target).await.unwrap();
    // A connect whose SYN-ACK is dropped waits for a retransmission (1 s): count those.
    let samples = connect_times(&ip, 100, Duration::from_millis(700));
    let lost = samples.iter().filter(|s| s.is_none()).count();
    eprintln!("loss 50 %: {lost} of 100 connects lost their first SYN-ACK");
    assert!((30..=70).contains(&lost), "loss rate {lost}% for 50% asked");
    adapter
        .recover(&agent_env(), &injection(&fault, &target, details))
        .await
        .unwrap();
    let samples = connect_times(&ip, 50, Duration::from_millis(700));
    assert_eq!(
        samples.iter().filter(|s| s.is_none()).count(),
        0,
        "no loss after recovery"
    );
}

#[tokio::test]
async fn partition_with_a_target_cuts_both_ways_and_a_killed_helper_is_cleaned_up() {
    let adapter = DockerAdapter::new();
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let peer = run_target(
        "peer",
        Run {
            labels: &[("app", "peer")],
            ..Run::default()
        },
    )
    .await;
    let web_ip = address(&web, "bridge");
    let peer_ip = address(&peer, "bridge");
    let fetch = |from: &ContainerGuard, to: &str| fetch_from(from, to);
    assert!(fetch(&peer, &web_ip) && fetch(&web, &peer_ip));
    let target = target_of(&web).await;
    let id = injection_id();
    let _guard = InjectionGuard {
        injection_id: id.clone(),
    };
    let fault = request(
        &network_chaos(
            "partition",
            "  direction: both\n  target:\n    mode: all\n    selector:\n      labelSelectors: {app: peer}\n",
        ),
        &id,
        120,
    );
    let details = adapter.inject(&agent_env(), &fault, &target).await.unwrap();
    assert!(!fetch(&peer, &web_ip), "peer → web is cut");
    assert!(!fetch(&web, &peer_ip), "web → peer is cut");
    http_get(&web_ip, Duration::from_secs(2)).expect("the host is not part of the partition");

    // The helper dies without removing its rules: recovery runs the cleanup helper.
    docker_cli(&["kill", "-s", "KILL", &format!("chaoshub-{id}-network")]);
    assert!(!fetch(&peer, &web_ip), "the rules outlive their helper");
    let started = Instant::now();
    adapter
        .recover(&agent_env(), &injection(&fault, &target, details))
        .await
        .unwrap();
    eprintln!(
        "partition recovery with a cleanup helper took {:?}",
        started.elapsed()
    );
    assert!(
        fetch(&peer, &web_ip) && fetch(&web, &peer_ip),
        "both ways open again"
    );
    assert!(helpers_of(&id).is_empty());
    assert!(!journal_exists(&id));
}

#[tokio::test]
async fn cpu_stress_runs_in_the_target_and_stops_on_recovery() {
    let adapter = DockerAdapter::new();
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let target = target_of(&web).await;
    let id = injection_id();
    let _guard = InjectionGuard {
        injection_id: id.clone(),
    };
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata:\n  name: s\nspec:\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n  stressors:\n    cpu: {workers: 1, load: 50}\n";
    let fault = request(yaml, &id, 60);
    let details = adapter.inject(&agent_env(), &fault, &target).await.unwrap();
    let cpu = format!("/sys/fs/cgroup/cpuacct/docker/{}/cpuacct.usage", web.id);
    let read = || {
        std::fs::read_to_string(&cpu)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    if let Some(a) = read() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = read().unwrap() - a;
        eprintln!(
            "target cgroup used {:.2} CPU-seconds in 2 s under stress",
            used as f64 / 1e9
        );
        // This checks where the load is counted, not how much: on a busy 2-core machine a
        // 50 % worker may get far less than half a core (load accuracy is measured in
        // native/tests/host_faults.rs).
        assert!(
            used > 200_000_000,
            "the stress is counted in the target's cgroup"
        );
    }
    adapter
        .recover(&agent_env(), &injection(&fault, &target, details))
        .await
        .unwrap();
    assert!(helpers_of(&id).is_empty());
}

/// A stand-in for `chaos-agent` that speaks the helper contract (JSON lines, `--foreground`,
/// journal in `/state`, `recover --all`) and partitions with iptables. **A fake**, used because
/// it exercises what the real agent cannot yet (its standalone `attack … --foreground` CLI is
/// still being written): the helper image assembled from the host's `iptables` and libraries,
/// the helper joining the target's network namespace, confirmation from its output, removal on
/// SIGTERM, and the cleanup helper after a SIGKILL. The tests above run the real agent.
const SCRIPTED_AGENT: &str = r#"#!/bin/sh
state=/state
if [ "$1" = recover ]; then
  [ -f $state/undo ] && sh $state/undo && rm -f $state/undo
  echo '{"state":"recovered"}'
  exit 0
fi
id=x; cidrs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --id) id=$2; shift ;;
    --cidr) cidrs="$cidrs $2"; shift ;;
  esac
  shift
done
: > $state/undo
for c in $cidrs; do
  echo "iptables -D INPUT -s $c -j DROP; iptables -D OUTPUT -d $c -j DROP" >> $state/undo
  iptables -I INPUT -s $c -j DROP && iptables -I OUTPUT -d $c -j DROP || {
    echo "{\"id\":\"$id\",\"state\":\"failed\",\"error\":\"iptables failed\"}"; exit 1; }
done
trap 'sh $state/undo; rm -f $state/undo; echo "{\"id\":\"$id\",\"state\":\"removed\"}"; exit 0' TERM INT
echo "{\"id\":\"$id\",\"state\":\"active\",\"mechanism\":\"iptables\"}"
while :; do /bin/busybox sleep 1 & wait $!; done
"#;

#[tokio::test]
async fn helper_lifecycle_with_a_scripted_agent_partitions_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("chaos-agent");
    std::fs::write(&script, SCRIPTED_AGENT).unwrap();
    let mut context = helper_context(&script).expect("the helper image assembles from this host");
    context
        .add_host_binary(std::path::Path::new("/usr/bin/busybox"), "/bin/busybox")
        .unwrap();
    let tag = format!(
        "chaoshub-test/scripted-helper:{}",
        context.content_hash().unwrap()
    );
    build_image(&docker(), &tag, &context).await.unwrap();
    let _image = ImageGuard { tag: tag.clone() };
    let mut env = env();
    env.spec
        .settings
        .insert("helper_image".into(), tag.clone().into());
    env.spec
        .settings
        .insert("stop_timeout_secs".into(), 5.into());

    let adapter = DockerAdapter::new();
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let peer = run_target(
        "peer",
        Run {
            labels: &[("app", "peer")],
            ..Run::default()
        },
    )
    .await;
    let web_ip = address(&web, "bridge");
    let peer_ip = address(&peer, "bridge");
    assert!(fetch_from(&peer, &web_ip) && fetch_from(&web, &peer_ip));
    let target = target_of(&web).await;
    let yaml = network_chaos(
        "partition",
        "  direction: both\n  target:\n    mode: all\n    selector:\n      labelSelectors: {app: peer}\n",
    );

    // Recovered by SIGTERM: the agent removes its rules itself.
    let id = injection_id();
    let _guard = InjectionGuard {
        injection_id: id.clone(),
    };
    let fault = request(&yaml, &id, 60);
    let started = Instant::now();
    let details = adapter.inject(&env, &fault, &target).await.unwrap();
    eprintln!("scripted partition confirmed in {:?}", started.elapsed());
    assert_eq!(details["mechanism"], "helpers");
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env, &inj).await.unwrap(),
        InjectionState::Active
    );
    assert!(!fetch_from(&peer, &web_ip), "peer → web is cut");
    assert!(!fetch_from(&web, &peer_ip), "web → peer is cut");
    http_get(&web_ip, Duration::from_secs(2)).expect("the host is not part of the partition");
    let targets = adapter.discover(&env).await.unwrap();
    assert!(
        targets.iter().all(|t| !t.name.starts_with("chaoshub-")),
        "the helper is never a target"
    );
    let started = Instant::now();
    adapter.recover(&env, &inj).await.unwrap();
    eprintln!(
        "scripted partition removed by SIGTERM in {:?}",
        started.elapsed()
    );
    assert!(fetch_from(&peer, &web_ip) && fetch_from(&web, &peer_ip));
    assert!(helpers_of(&id).is_empty() && !journal_exists(&id));

    // The helper is SIGKILLed: its rules stay, and recovery runs the cleanup helper.
    let id = injection_id();
    let _guard = InjectionGuard {
        injection_id: id.clone(),
    };
    let fault = request(&yaml, &id, 60);
    let details = adapter.inject(&env, &fault, &target).await.unwrap();
    docker_cli(&["kill", "-s", "KILL", &format!("chaoshub-{id}-network")]);
    assert!(
        !fetch_from(&peer, &web_ip),
        "the rules outlive their helper"
    );
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env, &inj).await.unwrap(),
        InjectionState::Absent
    );
    let started = Instant::now();
    adapter.recover(&env, &inj).await.unwrap();
    eprintln!(
        "cleanup helper removed the partition in {:?}",
        started.elapsed()
    );
    assert!(
        fetch_from(&peer, &web_ip) && fetch_from(&web, &peer_ip),
        "open again"
    );
    assert!(helpers_of(&id).is_empty() && !journal_exists(&id));
}
