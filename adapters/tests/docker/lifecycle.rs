//! Discovery, PodChaos (kill, stop, pause) and recovery, against the real engine.

use std::time::{Duration, Instant};

use chaoshub_adapters::docker::DockerAdapter;
use chaoshub_adapters::{Adapter, AdapterError, InjectionState};
use serde_json::Value;

use super::support::*;

const QUICK: Duration = Duration::from_millis(800);

fn pod_chaos(action: &str, extra: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: p\n{extra}spec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{app: web}}\n"
    )
}

#[tokio::test]
async fn discovery_lists_running_containers_with_their_labels_and_never_helpers() {
    let network = NetworkGuard::create();
    let web = run_target(
        "web",
        Run {
            labels: &[
                ("app", "web"),
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "frontend"),
            ],
            network: Some(&network.name),
            ..Run::default()
        },
    )
    .await;
    let helper = run_target(
        "helper",
        Run {
            labels: &[("dev.chaoshub.role", "helper"), ("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let stopped = run_target("stopped", Run::default()).await;
    docker_cli(&["stop", "-t", "0", &stopped.name]);

    let targets = DockerAdapter::new().discover(&env()).await.unwrap();
    let t = targets
        .iter()
        .find(|t| t.id == web.id)
        .expect("web is a target");
    assert_eq!(t.kind, "container");
    assert_eq!(t.name, web.name);
    assert_eq!(t.adapter, "docker");
    assert_eq!(t.labels["app"], "web");
    assert_eq!(t.labels["compose.project"], "shop");
    assert_eq!(t.labels["compose.service"], "frontend");
    assert_eq!(t.labels["networks"], network.name);
    assert_eq!(
        t.labels[&format!("network.{}", network.name)],
        address(&web, &network.name)
    );
    assert!(t.labels["image"].starts_with("chaoshub-test/target:"));
    assert_eq!(t.labels["phase"], "Running");
    assert!(
        targets.iter().all(|t| t.id != helper.id),
        "containers labelled as chaoshub's helpers are never targets"
    );
    assert!(
        targets.iter().all(|t| t.id != stopped.id),
        "stopped containers are not targets"
    );
}

#[tokio::test]
async fn an_unreachable_engine_is_unreachable_not_a_failure() {
    let adapter = DockerAdapter::new();
    for endpoint in ["unix:///var/run/no-such-docker.sock", "tcp://127.0.0.1:1"] {
        let mut env = env();
        env.spec.endpoint = Some(endpoint.into());
        match adapter.discover(&env).await {
            Err(AdapterError::Unreachable {
                environment,
                endpoint: e,
                ..
            }) => {
                assert_eq!(environment, "local-docker");
                assert_eq!(e, endpoint);
            }
            other => panic!("{endpoint}: expected Unreachable, got {other:?}"),
        }
    }
    // Validation is pure: a bad endpoint is reported without any connection.
    let mut env = env();
    env.spec.endpoint = Some("ftp://docker:2376".into());
    let errors = adapter.validate_environment(&env).unwrap_err();
    assert_eq!(errors.iter().next().unwrap().path, "spec.endpoint");
    // An https:// endpoint without its certificates names the missing setting.
    env.spec.endpoint = Some("https://docker:2376".into());
    let errors = adapter.validate_environment(&env).unwrap_err();
    assert_eq!(errors.iter().next().unwrap().path, "spec.settings.tls_ca");
}

#[tokio::test]
async fn pod_failure_pauses_until_recovery_and_requests_fail_meanwhile() {
    let web = run_web().await;
    let ip = address(&web, "bridge");
    let target = target_of(&web).await;
    http_get(&ip, Duration::from_secs(5)).expect("the target serves before the fault");

    let (id, _guard) = guarded_injection_id();
    // Built before the request, whose deadline counts from now: the first call builds the agent.
    let with_agent = agent_env();
    let fault = request(&pod_chaos("pod-failure", ""), &id, 30);
    let adapter = DockerAdapter::new();
    let details = adapter.inject(&with_agent, &fault, &target).await.unwrap();
    assert_eq!(details["mechanism"], "pause");
    assert_eq!(details["watchdog"]["armed"], true, "{details}");
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "true");
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env(), &inj).await.unwrap(),
        InjectionState::Active
    );
    assert!(journal_exists(&id));
    let err = http_get(&ip, QUICK).expect_err("a paused container does not answer");
    eprintln!("while paused: {err}");

    let started = Instant::now();
    adapter.recover(&env(), &inj).await.unwrap();
    let recover_call = started.elapsed();
    let answered = eventually("an answer after recovery", Duration::from_secs(5), || {
        http_get(&ip, QUICK).is_ok()
    })
    .await;
    eprintln!(
        "pod-failure recovery: recover() took {recover_call:?}, first answer {answered:?} later"
    );
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "false");
    assert_eq!(
        adapter.status(&env(), &inj).await.unwrap(),
        InjectionState::Absent
    );
    assert!(
        !journal_exists(&id),
        "the journal volume is removed on recovery"
    );
    assert!(
        helpers_of(&id).is_empty(),
        "the watchdog is removed with it, before it could fire"
    );
    // Idempotent.
    adapter.recover(&env(), &inj).await.unwrap();
    chaoshub_testkit::measured!(
        "PodChaos/pod-failure",
        "docker",
        format!(
            "container paused, HTTP requests time out; answering again {} ms after recovery",
            answered.as_millis()
        ),
        mechanism = "docker pause"
    );
}

#[tokio::test]
async fn container_kill_sends_the_signal_and_recovery_restarts_only_what_stayed_dead() {
    let adapter = DockerAdapter::new();
    // Restart policy "no": the container stays dead until recovery starts it again.
    let web = run_web().await;
    let ip = address(&web, "bridge");
    let target = target_of(&web).await;
    let (id, _guard) = guarded_injection_id();
    let fault = request(
        &pod_chaos("container-kill", "").replace(
            "spec:\n",
            &format!("spec:\n  containerNames: [{}]\n", web.name),
        ),
        &id,
        30,
    );
    let details = adapter.inject(&env(), &fault, &target).await.unwrap();
    assert_eq!(details["signal"], "SIGKILL");
    assert_eq!(inspect(&web, "{{.State.Running}}"), "false");
    assert_eq!(inspect(&web, "{{.State.ExitCode}}"), "137");
    http_get(&ip, QUICK).expect_err("a killed container does not answer");
    let inj = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env(), &inj).await.unwrap(),
        InjectionState::Active
    );
    let started = Instant::now();
    adapter.recover(&env(), &inj).await.unwrap();
    let ip = address(&web, "bridge");
    let answered = eventually("an answer after recovery", Duration::from_secs(10), || {
        http_get(&ip, QUICK).is_ok()
    })
    .await;
    eprintln!(
        "container-kill recovery (restart policy no): serving again {:?} after recover() began",
        started.elapsed()
    );
    let _ = answered;
    assert!(!journal_exists(&id));
    let killed_figure = format!(
        "container exited 137 (SIGKILL), HTTP refused; serving again {} ms after recovery",
        started.elapsed().as_millis()
    );

    // Restart policy "always": Docker restarts it; recovery must not touch it again.
    let web2 = run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            restart: Some("always"),
            ..Run::default()
        },
    )
    .await;
    let target2 = target_of(&web2).await;
    let (id2, _guard2) = guarded_injection_id();
    let fault2 = request(
        &pod_chaos("container-kill", "").replace(
            "spec:\n",
            &format!("spec:\n  containerNames: [{}]\n", web2.name),
        ),
        &id2,
        30,
    );
    let first_start = inspect(&web2, "{{.State.StartedAt}}");
    let details = adapter.inject(&env(), &fault2, &target2).await.unwrap();
    // Docker never applies a restart policy after an API kill; the adapter does, as a crash
    // would have it.
    eventually(
        "the restart policy restarts it",
        Duration::from_secs(10),
        || {
            inspect(&web2, "{{.State.Running}}") == "true"
                && inspect(&web2, "{{.State.StartedAt}}") != first_start
        },
    )
    .await;
    let started_at = inspect(&web2, "{{.State.StartedAt}}");
    adapter
        .recover(&env(), &injection(&fault2, &target2, details))
        .await
        .unwrap();
    assert_eq!(
        inspect(&web2, "{{.State.StartedAt}}"),
        started_at,
        "not restarted twice"
    );
    chaoshub_testkit::measured!(
        "PodChaos/container-kill",
        "docker",
        killed_figure,
        mechanism = "docker kill"
    );
}

#[tokio::test]
async fn container_names_must_name_the_container_or_its_compose_service() {
    let web = run_target(
        "web",
        Run {
            labels: &[("app", "web"), ("com.docker.compose.service", "frontend")],
            ..Run::default()
        },
    )
    .await;
    let target = target_of(&web).await;
    let adapter = DockerAdapter::new();
    let (id, _guard) = guarded_injection_id();
    let other = request(
        &pod_chaos("container-kill", "").replace("spec:\n", "spec:\n  containerNames: [db]\n"),
        &id,
        30,
    );
    match adapter.inject(&env(), &other, &target).await {
        Err(AdapterError::Rejected(m)) => assert!(m.contains("containerNames"), "{m}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        inspect(&web, "{{.State.Running}}"),
        "true",
        "nothing was done"
    );
    let by_service = request(
        &pod_chaos("container-kill", "chaoshub.dev/signal: SIGTERM\n")
            .replace(
                "chaoshub.dev/signal: SIGTERM\n",
                "  annotations:\n    chaoshub.dev/signal: SIGTERM\n",
            )
            .replace("spec:\n", "spec:\n  containerNames: [frontend]\n"),
        &id,
        30,
    );
    let details = adapter.inject(&env(), &by_service, &target).await.unwrap();
    assert_eq!(details["signal"], "SIGTERM");
    adapter
        .recover(&env(), &injection(&by_service, &target, details))
        .await
        .unwrap();
}

#[tokio::test]
async fn pod_kill_stops_gracefully_and_recovery_starts_it_again() {
    let web = run_web().await;
    let target = target_of(&web).await;
    let adapter = DockerAdapter::new();
    let (id, _guard) = guarded_injection_id();
    let fault = request(
        &pod_chaos("pod-kill", "").replace("spec:\n", "spec:\n  gracePeriod: 1\n"),
        &id,
        30,
    );
    let ip = address(&web, "bridge");
    let started = Instant::now();
    let details = adapter.inject(&env(), &fault, &target).await.unwrap();
    let took = started.elapsed();
    eprintln!("pod-kill with gracePeriod 1 took {took:?}");
    assert_eq!(details["mechanism"], "stop");
    assert_eq!(inspect(&web, "{{.State.Running}}"), "false");
    http_get(&ip, QUICK).expect_err("a stopped container does not answer");
    adapter
        .recover(&env(), &injection(&fault, &target, details))
        .await
        .unwrap();
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
    let ip = address(&web, "bridge");
    let answered = eventually("an answer after recovery", Duration::from_secs(10), || {
        http_get(&ip, QUICK).is_ok()
    })
    .await;
    chaoshub_testkit::measured!(
        "PodChaos/pod-kill",
        "docker",
        format!(
            "container stopped in {} ms (gracePeriod 1), HTTP refused; serving again {} ms after recovery",
            took.as_millis(),
            answered.as_millis()
        ),
        mechanism = "docker stop"
    );
}

/// The hub died after pausing but before storing `inject`'s answer: recovery gets no details
/// and still unpauses, from the journal volume on the engine.
#[tokio::test]
async fn recovery_without_details_reads_the_journal_on_the_engine() {
    let web = run_web().await;
    let target = target_of(&web).await;
    let adapter = DockerAdapter::new();
    let (id, _guard) = guarded_injection_id();
    let fault = request(&pod_chaos("pod-failure", ""), &id, 30);
    adapter.inject(&env(), &fault, &target).await.unwrap();
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "true");
    let lost = injection(&fault, &target, Value::Null);
    assert_eq!(
        adapter.status(&env(), &lost).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&env(), &lost).await.unwrap();
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "false");
    assert!(!journal_exists(&id));

    // A retried inject of the same injection id is idempotent: it ends paused once.
    adapter.inject(&env(), &fault, &target).await.unwrap();
    let details = adapter.inject(&env(), &fault, &target).await;
    // The second attempt finds the container paused by the first, undoes it and pauses again.
    let details = details.unwrap();
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "true");
    adapter
        .recover(&env(), &injection(&fault, &target, details))
        .await
        .unwrap();
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "false");
}

#[tokio::test]
async fn a_container_that_disappears_gives_a_clear_error_and_recovery_does_not_stick() {
    let web = run_web().await;
    let target = target_of(&web).await;
    let adapter = DockerAdapter::new();

    // Removed after selection, before injection: a per-target error naming it.
    let gone = run_target(
        "gone",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await;
    let gone_target = target_of(&gone).await;
    docker_cli(&["rm", "-f", &gone.name]);
    let (id, _guard) = guarded_injection_id();
    let fault = request(&pod_chaos("pod-failure", ""), &id, 30);
    match adapter.inject(&env(), &fault, &gone_target).await {
        Err(AdapterError::Rejected(m)) => {
            assert!(
                m.contains("no longer exists") && m.contains(&gone.name),
                "{m}"
            )
        }
        other => panic!("expected a clear rejection, got {other:?}"),
    }
    assert!(!journal_exists(&id), "nothing was journalled for it");

    // Removed while paused: recovery succeeds (nothing left to restore) and cleans up.
    let (id2, _guard2) = guarded_injection_id();
    let fault2 = request(&pod_chaos("pod-failure", ""), &id2, 30);
    let details = adapter.inject(&env(), &fault2, &target).await.unwrap();
    docker_cli(&["rm", "-f", &web.name]);
    let inj = injection(&fault2, &target, details);
    assert_eq!(
        adapter.status(&env(), &inj).await.unwrap(),
        InjectionState::Absent
    );
    tokio::time::timeout(Duration::from_secs(10), adapter.recover(&env(), &inj))
        .await
        .expect("recovery does not hang")
        .unwrap();
    assert!(!journal_exists(&id2));
}

/// container-kill with a signal other than SIGKILL reads back what the signal did: a process
/// that ignores SIGTERM (`sleep` as PID 1 has no handler, so the kernel drops it) keeps running
/// — reported as `kept-running`, and its status is the signal delivered (`Active`), not an
/// absent fault the engine would time out on; a shell that traps SIGTERM and exits is
/// `exited`. Both answer within the settle window, far from the 15 s confirm timeout.
#[tokio::test]
async fn a_handled_signal_is_read_back_as_exited_or_kept_running() {
    let adapter = DockerAdapter::new();
    let term = "  annotations:\n    chaoshub.dev/signal: SIGTERM\n";
    let cases: [(&str, &[&str], &str, &str); 2] = [
        ("ignores", &["/bin/sleep", "1000"], "kept-running", "true"),
        (
            "exits",
            &[
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.2; done",
            ],
            "exited",
            "false",
        ),
    ];
    for (role, command, outcome, running) in cases {
        let container = run_target(
            role,
            Run {
                labels: &[("app", "web")],
                command: Some(command),
                ..Run::default()
            },
        )
        .await;
        let target = target_of(&container).await;
        let (id, _guard) = guarded_injection_id();
        let fault = request(
            &pod_chaos("container-kill", term).replace(
                "spec:\n",
                &format!("spec:\n  containerNames: [{}]\n", container.name),
            ),
            &id,
            30,
        );
        let started = Instant::now();
        let details = adapter.inject(&env(), &fault, &target).await.unwrap();
        let took = started.elapsed();
        eprintln!("SIGTERM to a container that {role}: {details} after {took:?}");
        assert_eq!(details["signal"], "SIGTERM");
        assert_eq!(details["outcome"], outcome, "{details}");
        assert!(took < Duration::from_secs(5), "inject took {took:?}");
        assert_eq!(inspect(&container, "{{.State.Running}}"), running);
        let inj = injection(&fault, &target, details);
        assert_eq!(
            adapter.status(&env(), &inj).await.unwrap(),
            InjectionState::Active,
            "the signal's effect was read back; status must say so"
        );
        adapter.recover(&env(), &inj).await.unwrap();
        assert!(!journal_exists(&id));
    }
}
