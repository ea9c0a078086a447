//! The adapter against `chaoshub_testkit::ssm::EmulatedSsm`: the tests' own emulation of SSM
//! Run Command and of the SSM Agent (not AWS; its module doc says what it does not emulate),
//! which runs every command's script for real, as root, inside a network namespace pair the
//! test creates (`host.rs`'s `Netns`). What moto and the scripted fake cannot show: the fault
//! really in the instance's kernel after inject and gone after recover, a failing script's real
//! exit status and stderr, a cancel that stops a running script, and recovery that waits for an
//! offline agent.

use std::time::Duration;

use chaoshub_adapters::ssm::SsmAdapter;
use chaoshub_adapters::{Adapter, AdapterError, Environment, FaultRequest, InjectionState};
use chaoshub_testkit::ssm::EmulatedSsm;
use serde_json::{json, Value};

use super::host::Netns;
use super::support::*;

const INSTANCE: &str = "i-0e0000000000000a1";

/// An emulated SSM whose one instance runs in namespace `a` of a fresh namespace pair, and an
/// environment on it (`extra`: more settings).
struct Lab {
    ssm: EmulatedSsm,
    environment: Environment,
    ns: Netns,
    _profile: AwsProfile,
}

impl Lab {
    fn new(extra: Value) -> Lab {
        let ns = Netns::new();
        let profile = AwsProfile::new();
        let ssm = EmulatedSsm::start();
        ssm.add_instance(INSTANCE, &ns.a, &ns.addr_a, &[("team", "payments")]);
        let mut settings = json!({
            "poll_interval_ms": 20,
            "retry_backoff_ms": 1,
            "state_dir": ssm.state_dir().to_str().unwrap(),
            "revert_scheduler": "nohup",
        });
        if let (Value::Object(s), Value::Object(e)) = (&mut settings, extra) {
            s.extend(e);
        }
        let environment = env(&ssm.url(), &profile, settings);
        Lab {
            ssm,
            environment,
            ns,
            _profile: profile,
        }
    }
}

fn partition(ns: &Netns, id: &str) -> FaultRequest {
    fault(
        &network_chaos(
            "partition",
            &format!(
                "  device: {}\n  externalTargets: ['{}']\n",
                ns.dev_a, ns.addr_b
            ),
            "10m",
        ),
        id,
    )
}

#[tokio::test]
async fn a_partition_is_in_the_instances_kernel_after_inject_and_gone_after_recover() {
    let lab = Lab::new(json!({}));
    let adapter = SsmAdapter::new();

    // Discovery: EC2 DescribeInstances and DescribeInstanceInformation (managed_only).
    let targets = adapter.discover(&lab.environment).await.unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(targets[0].id, INSTANCE);
    assert_eq!(targets[0].labels["ssm.ping-status"], "Online");
    assert_eq!(targets[0].labels["ec2.private-ip"], lab.ns.addr_a);

    let f = partition(&lab.ns, "e1a0-0");
    let details = adapter
        .inject(&lab.environment, &f, &targets[0])
        .await
        .unwrap();
    assert_eq!(details["status"], "Success");
    let rules = lab.ns.iptables_rules();
    assert!(rules.contains("chaoshub:e1a0-0"), "{rules}");
    let inj = injection(&f, &targets[0], details);
    assert_eq!(
        adapter.status(&lab.environment, &inj).await.unwrap(),
        InjectionState::Active
    );

    adapter.recover(&lab.environment, &inj).await.unwrap();
    let rules = lab.ns.iptables_rules();
    assert!(!rules.contains("chaoshub:"), "{rules}");
    assert!(!lab.ssm.state_dir().join("e1a0-0").exists());
    let commands = lab.ssm.commands();
    let statuses: Vec<(&str, &str)> = commands
        .iter()
        .map(|c| {
            (
                c.comment.rsplit(' ').next().unwrap_or_default(),
                c.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("inject", "Success"), ("recover", "Success")],
        "{commands:#?}"
    );
    assert!(
        commands[1].stdout.contains("reverted injection e1a0-0"),
        "{commands:#?}"
    );
}

#[tokio::test]
async fn a_failing_script_is_an_error_with_its_real_exit_status_and_stderr() {
    let lab = Lab::new(json!({}));
    let f = fault(
        &network_chaos("loss", "  device: nosuch0\n  loss: {loss: '25'}\n", "60s"),
        "e1a1-0",
    );
    let err = SsmAdapter::new()
        .inject(&lab.environment, &f, &instance_target(INSTANCE))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("exit status 2") && text.contains("interface nosuch0 does not exist"),
        "{text}"
    );
    let commands = lab.ssm.commands();
    assert_eq!(commands[0].status, "Failed");
    assert_eq!(commands[0].response_code, 2);
    assert!(!lab.ns.iptables_rules().contains("chaoshub:"));
}

#[tokio::test]
async fn a_command_not_done_in_time_is_cancelled_and_its_script_killed() {
    let lab = Lab::new(json!({"command_timeout_secs": 1}));
    // A marker no other process on the machine has on its command line.
    let marker = format!("sleep 47.{}", std::process::id());
    let f = fault(
        &physical_machine_chaos("user_defined", &format!("{{attackCmd: '{marker}'}}"), "60s"),
        "e1a2-0",
    );
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap()
            .status
            .success()
    };
    let err = SsmAdapter::new()
        .inject(&lab.environment, &f, &instance_target(INSTANCE))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still InProgress"), "{err}");
    // The adapter cancelled the command; the agent killed the script's process group.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lab.ssm.commands()[0].status != "Cancelled" || running() {
        assert!(
            std::time::Instant::now() < deadline,
            "not cancelled: {:#?}, still running: {}",
            lab.ssm.commands(),
            running()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn recovery_after_the_command_id_was_lost_finds_the_command_and_reverts() {
    let lab = Lab::new(json!({}));
    let adapter = SsmAdapter::new();
    let f = partition(&lab.ns, "e1a3-0");
    let target = instance_target(INSTANCE);
    adapter.inject(&lab.environment, &f, &target).await.unwrap();
    assert!(lab.ns.iptables_rules().contains("chaoshub:e1a3-0"));
    // A hub that crashed before storing inject's answer knows nothing but the injection id.
    adapter
        .recover(&lab.environment, &injection(&f, &target, json!({})))
        .await
        .unwrap();
    assert!(!lab.ns.iptables_rules().contains("chaoshub:"));
    assert_eq!(lab.ssm.unfinished(), 0);
}

#[tokio::test]
async fn recovery_waits_for_an_offline_agent_and_reverts_when_it_is_back() {
    let lab = Lab::new(json!({}));
    let adapter = SsmAdapter::new();
    let f = partition(&lab.ns, "e1a4-0");
    let target = instance_target(INSTANCE);
    let details = adapter.inject(&lab.environment, &f, &target).await.unwrap();
    let inj = injection(&f, &target, details);
    lab.ssm.set_online(INSTANCE, false);
    match adapter.recover(&lab.environment, &inj).await {
        Err(AdapterError::Unreachable { message, .. }) => {
            assert!(message.contains("ConnectionLost"), "{message}")
        }
        other => panic!("recovery with the agent offline: {other:?}"),
    }
    assert!(
        lab.ns.iptables_rules().contains("chaoshub:e1a4-0"),
        "nothing could have reverted it"
    );
    lab.ssm.set_online(INSTANCE, true);
    adapter.recover(&lab.environment, &inj).await.unwrap();
    assert!(!lab.ns.iptables_rules().contains("chaoshub:"));
}

/// SSM's cancel is asynchronous: an inject script still running when recovery cancels it goes
/// on until the agent gets the cancel. Before the fix the revert ran at once, undid nothing
/// (the attack had not happened yet) and stopped the revert timer; the attack then happened
/// after it and stayed for good.
#[tokio::test]
async fn recovery_waits_for_a_cancelled_inject_to_stop_before_reverting() {
    let lab = Lab::new(json!({}));
    lab.ssm.set_cancel_delay(Duration::from_millis(1500));
    let scratch = tempfile::tempdir().unwrap();
    let flag = scratch.path().join("attacked");
    let f = fault(
        &physical_machine_chaos(
            "user_defined",
            &format!(
                "{{attackCmd: 'sleep 1; touch {0}', recoverCmd: 'rm -f {0}'}}",
                flag.display()
            ),
            "60s",
        ),
        "e1a5-0",
    );
    let target = instance_target(INSTANCE);
    // The hub dies while its inject runs on the instance: inject's answer is lost.
    let (environment, f2, t2) = (lab.environment.clone(), f.clone(), target.clone());
    let inject =
        tokio::spawn(async move { SsmAdapter::new().inject(&environment, &f2, &t2).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lab.ssm.commands().first().map(|c| c.status.clone()) != Some("InProgress".into()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}",
            lab.ssm.commands()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    inject.abort();
    SsmAdapter::new()
        .recover(&lab.environment, &injection(&f, &target, json!({})))
        .await
        .unwrap();
    // Longer than the attack and the cancel's way to the agent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !flag.exists(),
        "the attack ran after the revert and stayed: {:#?}",
        lab.ssm.commands()
    );
    assert_eq!(lab.ssm.unfinished(), 0);
}
