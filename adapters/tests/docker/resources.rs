//! Faults that change a container's settings: the `docker update` squeeze and the partition by
//! network disconnect, each restored exactly.

use std::time::{Duration, Instant};

use chaoshub_adapters::docker::DockerAdapter;
use chaoshub_adapters::{Adapter, InjectionState};

use super::support::*;

const QUICK: Duration = Duration::from_millis(800);

#[tokio::test]
async fn squeeze_imposes_limits_and_recovery_restores_them() {
    let adapter = DockerAdapter::new();
    let limits = "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}} {{.HostConfig.Memory}}";
    let web = run_web().await;
    // A container with limits of its own: they come back exactly.
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
    let before_swap = inspect(&web, "{{.HostConfig.MemorySwap}}");
    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata:\n  name: s\n  annotations:\n    chaoshub.dev/cpu-limit: \"0.25\"\n    chaoshub.dev/memory-limit: 32MiB\nspec:\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n  stressors:\n    cpu: {workers: 1}\n";
    let fault = request(yaml, &id, 30);
    let details = adapter.inject(&env(), &fault, &target).await.unwrap();
    assert_eq!(details["mechanism"], "squeeze");
    assert_eq!(inspect(&web, limits), format!("250000000 0 {}", 32 << 20));
    // The kernel enforces it: the cgroup's memory limit is the squeezed one.
    let cgroup = cgroup_file(&web.name, ("memory", "memory.limit_in_bytes"), "memory.max")
        .expect("the target's memory limit file");
    assert_eq!(
        std::fs::read_to_string(&cgroup).unwrap().trim(),
        (32u64 << 20).to_string(),
        "{}",
        cgroup.display()
    );
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env(), &inj).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&env(), &inj).await.unwrap();
    assert_eq!(inspect(&web, limits), before);
    assert_eq!(inspect(&web, "{{.HostConfig.MemorySwap}}"), before_swap);
    assert!(!journal_exists(&id));

    // A container without limits: "unlimited" comes back as the kernel's unlimited.
    let plain = run_target(
        "plain",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let target = target_of(&plain).await;
    let (id, _guard) = guarded_injection_id();
    let fault = request(yaml, &id, 30);
    let details = adapter.inject(&env(), &fault, &target).await.unwrap();
    assert_eq!(
        inspect(
            &plain,
            "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.Memory}}"
        ),
        format!("25000 100000 {}", 32 << 20)
    );
    adapter
        .recover(&env(), &injection(&fault, &target, details))
        .await
        .unwrap();
    // cgroup v1: cfs_quota_us -1 and a huge limit; v2: "max …" in cpu.max and memory.max.
    let cpu = cgroup_file(&plain.name, ("cpu", "cpu.cfs_quota_us"), "cpu.max")
        .expect("the container's CPU quota file");
    let text = std::fs::read_to_string(&cpu).unwrap();
    assert!(
        text.trim() == "-1" || text.starts_with("max"),
        "CPU is unlimited again: {text}"
    );
    let mem = cgroup_file(
        &plain.name,
        ("memory", "memory.limit_in_bytes"),
        "memory.max",
    )
    .expect("the container's memory limit file");
    let text = std::fs::read_to_string(&mem).unwrap();
    assert!(
        text.trim() == "max" || text.trim().parse::<u64>().unwrap() > 1 << 60,
        "memory is unlimited again: {text}"
    );
}

#[tokio::test]
async fn partition_by_disconnect_cuts_both_ways_and_reconnects_with_the_same_aliases() {
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
    // A peer on the same network, to measure both directions from inside the network.
    let peer = run_target(
        "peer",
        Run {
            labels: &[("app", "peer")],
            network: Some(&network.name),
            ..Run::default()
        },
    )
    .await;
    let web_ip = address(&web, &network.name);
    let peer_ip = address(&peer, &network.name);
    // busybox's static wget cannot resolve names (static glibc has no NSS), so names are
    // checked with busybox's own resolver (`nslookup` against Docker's embedded DNS) and
    // fetched by address.
    let resolves = |from: &ContainerGuard, name: &str, ip: &str| {
        std::process::Command::new("docker")
            .args(["exec", &from.name, "nslookup", name, "127.0.0.11"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(ip))
            .unwrap_or(false)
    };
    let fetch = |from: &ContainerGuard, to: &str| fetch_from(from, to);
    assert!(
        resolves(&peer, "shop-web", &web_ip),
        "the alias resolves before the fault"
    );
    assert!(fetch(&peer, &web_ip), "peer reaches web before the fault");
    assert!(fetch(&web, &peer_ip), "web reaches peer before the fault");
    http_get(&web_ip, Duration::from_secs(5)).unwrap();
    let aliases_before = inspect(
        &web,
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").Aliases}}}}",
            network.name
        ),
    );

    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: p\n  annotations:\n    chaoshub.dev/partition: disconnect\nspec:\n  action: partition\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n";
    let fault = request(yaml, &id, 30);
    let details = adapter.inject(&env(), &fault, &target).await.unwrap();
    assert_eq!(details["mechanism"], "disconnect");
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env(), &inj).await.unwrap(),
        InjectionState::Active
    );
    assert!(
        !resolves(&peer, "shop-web", &web_ip),
        "the alias is gone from the network"
    );
    assert!(!fetch(&peer, &web_ip), "peer → web by address is cut");
    assert!(!fetch(&web, &peer_ip), "web → peer is cut");
    assert!(http_get(&web_ip, QUICK).is_err(), "host → web is cut");

    let started = Instant::now();
    adapter.recover(&env(), &inj).await.unwrap();
    // Reconnected with a dynamic address, which may differ from the one it had.
    let back = eventually(
        "peer reaches web by its alias again",
        Duration::from_secs(10),
        || {
            let ip = address(&web, &network.name);
            !ip.is_empty() && resolves(&peer, "shop-web", &ip) && fetch(&peer, &ip)
        },
    )
    .await;
    eprintln!(
        "disconnect partition recovery: recover() {:?}, alias answering {back:?} after it",
        started.elapsed()
    );
    assert!(fetch(&web, &peer_ip), "web → peer again");
    let aliases_after = inspect(
        &web,
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").Aliases}}}}",
            network.name
        ),
    );
    assert_eq!(aliases_after, aliases_before);
    assert!(!journal_exists(&id));
}
