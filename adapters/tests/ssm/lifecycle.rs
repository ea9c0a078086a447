//! The command state machine against the FAKE SSM endpoint of `fake_ssm.rs` (scripted status
//! sequences over the real JSON 1.1 protocol and the real SDK): Pending → InProgress → Success,
//! Failed and TimedOut with the script's stderr in the error, Delayed, commands that never
//! start (cancelled), managed documents confirmed while InProgress and cancelled on recovery,
//! throttling retried with backoff, recovery after the command id was lost, discovery of
//! managed instances only.

use chaoshub_adapters::ssm::SsmAdapter;
use chaoshub_adapters::{Adapter, AdapterError, InjectionState};
use serde_json::{json, Value};

use super::fake_ssm::{failed, step, FakeSsm};
use super::support::*;

const INSTANCE: &str = "i-0123456789abcdef0";

fn fast(extra: Value) -> Value {
    let mut base = json!({"managed_only": false, "poll_interval_ms": 10, "retry_backoff_ms": 1});
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

fn loss_fault(id: &str) -> chaoshub_adapters::FaultRequest {
    fault(&network_chaos("loss", "  loss: {loss: '25'}\n", "60s"), id)
}

#[tokio::test]
async fn pending_then_in_progress_then_success_confirms_the_injection() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script(
        "inject",
        vec![
            step("Pending"),
            step("Delayed"),
            step("InProgress"),
            step("InProgress"),
            step("Success"),
        ],
    );
    let environment = env(&fake.url(), &profile, fast(json!({})));
    let f = loss_fault("feed-0");
    let target = instance_target(INSTANCE);
    let details = SsmAdapter::new()
        .inject(&environment, &f, &target)
        .await
        .unwrap();
    assert_eq!(details["status"], "Success");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].polls, 5, "polled through every state");
    assert_eq!(sent[0].instance_ids, [INSTANCE]);
    assert_eq!(fake.calls("CreateDocument"), 1);
    let inj = injection(&f, &target, details);
    assert_eq!(
        SsmAdapter::new().status(&environment, &inj).await.unwrap(),
        InjectionState::Active
    );
}

#[tokio::test]
async fn a_failed_command_is_a_per_target_error_with_the_scripts_stderr() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script(
        "inject",
        vec![
            step("InProgress"),
            failed(
                3,
                "chaoshub: tc netem is not available on this kernel: the sch_netem module is missing",
            ),
        ],
    );
    let environment = env(&fake.url(), &profile, fast(json!({})));
    let f = fault(
        &network_chaos("delay", "  delay: {latency: 100ms}\n", "60s"),
        "feed-1",
    );
    match SsmAdapter::new()
        .inject(&environment, &f, &instance_target(INSTANCE))
        .await
    {
        Err(AdapterError::Failed(m)) => {
            assert!(m.contains(INSTANCE), "{m}");
            assert!(m.contains("Failed"), "{m}");
            assert!(m.contains("exit status 3"), "{m}");
            assert!(m.contains("sch_netem"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn timed_out_and_cancelled_commands_fail_the_injection() {
    for status in ["TimedOut", "Cancelled"] {
        let fake = FakeSsm::start().await;
        let profile = AwsProfile::new();
        fake.script("inject", vec![step("Pending"), step(status)]);
        let environment = env(&fake.url(), &profile, fast(json!({})));
        match SsmAdapter::new()
            .inject(
                &environment,
                &loss_fault("feed-2"),
                &instance_target(INSTANCE),
            )
            .await
        {
            Err(AdapterError::Failed(m)) => assert!(m.contains(status), "{m}"),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_command_that_never_starts_is_cancelled_after_the_command_timeout() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script("inject", vec![step("Pending"), step("Delayed")]);
    let environment = env(
        &fake.url(),
        &profile,
        fast(json!({"command_timeout_secs": 1})),
    );
    match SsmAdapter::new()
        .inject(
            &environment,
            &loss_fault("feed-3"),
            &instance_target(INSTANCE),
        )
        .await
    {
        Err(AdapterError::Failed(m)) => {
            assert!(m.contains("still Delayed"), "{m}");
            assert!(m.contains("command_timeout_secs"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.calls("CancelCommand"), 1);
    assert!(fake.sent()[0].cancelled);
}

#[tokio::test]
async fn managed_documents_are_confirmed_while_running_and_cancelled_on_recovery() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script("inject", vec![step("Pending"), step("InProgress")]);
    let environment = env(&fake.url(), &profile, fast(json!({"documents": "managed"})));
    let f = fault(
        &stress_chaos("{cpu: {workers: 1, load: 80}}", "5m"),
        "feed-4",
    );
    let target = instance_target(INSTANCE);
    let adapter = SsmAdapter::new();
    let details = adapter.inject(&environment, &f, &target).await.unwrap();
    assert_eq!(details["document"], "AWSFIS-Run-CPU-Stress");
    assert_eq!(details["status"], "InProgress");
    assert_eq!(fake.calls("CreateDocument"), 0);
    let inj = injection(&f, &target, details);
    assert_eq!(
        adapter.status(&environment, &inj).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&environment, &inj).await.unwrap();
    assert_eq!(fake.calls("CancelCommand"), 1);
    assert!(fake.sent()[0].cancelled);
    assert!(
        !fake.sent().iter().any(|c| c.comment.ends_with(" recover")),
        "no revert command for AWSFIS documents"
    );
    // Confirmed by reading the fault back on the instance, not by the command running.
    let readbacks: Vec<_> = fake
        .sent()
        .into_iter()
        .filter(|c| c.comment.ends_with(" readback"))
        .collect();
    assert_eq!(readbacks.len(), 2, "one at injection, one for status");
    assert_eq!(readbacks[0].document, "AWS-RunShellScript");
    assert!(readbacks[0].parameters["commands"][0]
        .as_str()
        .unwrap()
        .contains("stress-ng"));
    assert_eq!(
        adapter.status(&environment, &inj).await.unwrap(),
        InjectionState::Absent
    );
}

#[tokio::test]
async fn own_recovery_cancels_a_running_inject_and_runs_the_revert() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script("inject", vec![step("InProgress")]);
    fake.script(
        "recover",
        vec![step("Pending"), step("InProgress"), step("Success")],
    );
    let environment = env(&fake.url(), &profile, fast(json!({})));
    let f = loss_fault("feed-5");
    let target = instance_target(INSTANCE);
    // The inject command is still running when the hub gives up on it (for example after a
    // crash): recovery must stop it and then revert.
    let details = json!({"commandId": "cmd-0001", "documents": "own", "instanceId": INSTANCE});
    let adapter = SsmAdapter::new();
    // Send the inject by hand so cmd-0001 exists and stays InProgress.
    let script_only = adapter.plan_details(&environment, &f, &target);
    assert!(script_only["inject"]["script"]
        .as_str()
        .unwrap()
        .contains("statistic"));
    let task = {
        let (environment, f, target) = (environment.clone(), f.clone(), target.clone());
        tokio::spawn(async move { SsmAdapter::new().inject(&environment, &f, &target).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fake.sent().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the inject was never sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    adapter
        .recover(&environment, &injection(&f, &target, details))
        .await
        .unwrap();
    let sent = fake.sent();
    assert!(sent[0].cancelled, "the running inject was cancelled");
    let revert = sent
        .iter()
        .find(|c| c.comment.ends_with(" recover"))
        .unwrap();
    assert_eq!(revert.polls, 3);
    let lines: Vec<String> = serde_json::from_value(revert.parameters["commands"].clone()).unwrap();
    assert!(
        lines.iter().any(|l| l.contains("revert.sh\" now")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_failed_revert_is_an_error_to_retry() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script(
        "recover",
        vec![failed(
            1,
            "chaoshub: the revert of injection feed-6 is incomplete",
        )],
    );
    let environment = env(&fake.url(), &profile, fast(json!({})));
    let f = loss_fault("feed-6");
    let target = instance_target(INSTANCE);
    match SsmAdapter::new()
        .recover(&environment, &injection(&f, &target, Value::Null))
        .await
    {
        Err(AdapterError::Failed(m)) => assert!(m.contains("incomplete"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn recovery_after_a_lost_answer_finds_the_command_by_its_comment() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script("inject", vec![step("InProgress")]);
    let environment = env(&fake.url(), &profile, fast(json!({"documents": "managed"})));
    let f = fault(&stress_chaos("{cpu: {workers: 1}}", "5m"), "feed-7");
    let target = instance_target(INSTANCE);
    let adapter = SsmAdapter::new();
    adapter.inject(&environment, &f, &target).await.unwrap();
    // The hub crashed before storing the details.
    adapter
        .recover(&environment, &injection(&f, &target, Value::Null))
        .await
        .unwrap();
    assert_eq!(fake.calls("ListCommands"), 1);
    assert!(fake.sent()[0].cancelled);
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_until_the_attempts_run_out() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.throttle("SendCommand", 3);
    fake.throttle("GetCommandInvocation", 2);
    let environment = env(&fake.url(), &profile, fast(json!({"max_attempts": 5})));
    SsmAdapter::new()
        .inject(
            &environment,
            &loss_fault("feed-8"),
            &instance_target(INSTANCE),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.calls("SendCommand"),
        4,
        "three throttled, then accepted"
    );
    assert_eq!(fake.sent().len(), 1, "the command was sent once");

    let fake = FakeSsm::start().await;
    fake.throttle("SendCommand", 10);
    let environment = env(&fake.url(), &profile, fast(json!({"max_attempts": 2})));
    match SsmAdapter::new()
        .inject(
            &environment,
            &loss_fault("feed-9"),
            &instance_target(INSTANCE),
        )
        .await
    {
        Err(AdapterError::Failed(m)) => {
            assert!(m.contains("ThrottlingException"), "{m}");
            assert!(m.contains("max_attempts"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.calls("SendCommand"), 2);
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn discovery_keeps_only_instances_ssm_reports_online() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.add_instance(
        "i-00000000000000001",
        &[("team", "payments")],
        Some("Online"),
    );
    fake.add_instance(
        "i-00000000000000002",
        &[("team", "payments")],
        Some("ConnectionLost"),
    );
    fake.add_instance("i-00000000000000003", &[("team", "payments")], None);
    fake.add_instance("i-00000000000000004", &[("team", "search")], Some("Online"));
    let environment = env(
        &fake.url(),
        &profile,
        json!({"poll_interval_ms": 10, "tags": {"team": "payments"}}),
    );
    let targets = SsmAdapter::new().discover(&environment).await.unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(targets[0].id, "i-00000000000000001");
    assert_eq!(targets[0].labels["ssm.ping-status"], "Online");
    assert_eq!(targets[0].labels["ssm.platform-type"], "Linux");
    assert_eq!(targets[0].labels["team"], "payments");
}

/// `documents: managed`: an AWSFIS document that is InProgress is not a fault in place (it
/// may be installing its dependencies, or have failed to apply and be sleeping out its
/// duration). When the read-back on the instance keeps failing, the injection fails, naming
/// it, and the running command is cancelled; `status` of such a command is Unknown, not
/// Active.
#[tokio::test]
async fn a_running_managed_document_whose_fault_does_not_read_back_is_not_confirmed() {
    let fake = FakeSsm::start().await;
    let profile = AwsProfile::new();
    fake.script("inject", vec![step("Pending"), step("InProgress")]);
    fake.script("readback", vec![failed(1, "")]);
    let environment = env(
        &fake.url(),
        &profile,
        fast(json!({"documents": "managed", "command_timeout_secs": 1})),
    );
    let f = fault(
        &stress_chaos("{cpu: {workers: 1, load: 80}}", "5m"),
        "feed-rb",
    );
    let target = instance_target(INSTANCE);
    let adapter = SsmAdapter::new();
    let err = adapter
        .inject(&environment, &f, &target)
        .await
        .expect_err("a fault that does not read back is not confirmed");
    eprintln!("{err}");
    assert!(err.to_string().contains("did not read back"), "{err}");
    assert!(
        fake.sent()[0].cancelled,
        "the unconfirmed command is cancelled"
    );
    assert!(fake.calls("SendCommand") >= 2, "read back at least once");

    let details = json!({"commandId": "cmd-0001", "documents": "managed", "instanceId": INSTANCE,
        "document": "AWSFIS-Run-CPU-Stress", "parameters": {"CPU": ["1"]}});
    // A running inject (cmd-0001) on a fresh fake, for `status`.
    let fresh = FakeSsm::start().await;
    fresh.script("inject", vec![step("InProgress")]);
    fresh.script("readback", vec![failed(1, "")]);
    let environment = env(
        &fresh.url(),
        &profile,
        fast(json!({"documents": "managed", "command_timeout_secs": 1})),
    );
    let task = {
        let (environment, f, target) = (environment.clone(), f.clone(), target.clone());
        tokio::spawn(async move { SsmAdapter::new().inject(&environment, &f, &target).await })
    };
    while fresh.sent().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    let state = adapter
        .status(&environment, &injection(&f, &target, details))
        .await
        .unwrap();
    assert!(
        matches!(&state, InjectionState::Unknown(m) if m.contains("does not read back")),
        "{state:?}"
    );
}
