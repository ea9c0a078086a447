//! The adapter with the real AWS SDK against a real local AWS endpoint, `moto_server` (PyPI
//! `moto[server]`), started per test. moto records SendCommand, documents and EC2 instances
//! with their tags but executes nothing and always answers `Success`; CancelCommand,
//! ListCommandInvocations and DescribeInstanceInformation answer 500. So these tests cover the
//! wire format, discovery by tags, document creation and the happy path, and assert on what
//! moto recorded. The status state machine is tested against `fake_ssm.rs`.

use std::collections::HashMap;

use chaoshub_adapters::ssm::{own_document_content, SsmAdapter, DEFAULT_DOCUMENT_NAME};
use chaoshub_adapters::{Adapter, AdapterError, InjectionState};
use serde_json::{json, Value};

use super::support::*;

/// What moto recorded of the commands sent to an instance.
async fn commands(moto: &Moto, instance: &str) -> Vec<aws_sdk_ssm::types::Command> {
    moto.ssm_client()
        .await
        .list_commands()
        .instance_id(instance)
        .send()
        .await
        .unwrap()
        .commands()
        .to_vec()
}

fn parameters(c: &aws_sdk_ssm::types::Command) -> HashMap<String, Vec<String>> {
    c.parameters().cloned().unwrap_or_default()
}

#[tokio::test]
async fn discovery_finds_running_instances_by_tag_with_their_tags_as_labels() {
    let moto = Moto::start();
    let profile = AwsProfile::new();
    let web = moto
        .run_instance(&[
            ("team", "payments"),
            ("Name", "web-1"),
            ("chaos", "allowed"),
        ])
        .await;
    let other = moto
        .run_instance(&[("team", "search"), ("chaos", "allowed")])
        .await;
    let stopped = moto
        .run_instance(&[("team", "payments"), ("chaos", "allowed")])
        .await;
    let untagged = moto.run_instance(&[]).await;
    moto.ec2(&[("Action", "StopInstances"), ("InstanceId.1", &stopped)])
        .await;

    let adapter = SsmAdapter::new();
    let scoped = env(
        &moto.url(),
        &profile,
        json!({"managed_only": false, "tags": {"chaos": "allowed"}}),
    );
    let targets = adapter.discover(&scoped).await.unwrap();
    let mut ids: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
    ids.sort();
    let mut want = vec![web.as_str(), other.as_str()];
    want.sort();
    assert_eq!(ids, want, "stopped and untagged instances are not targets");
    let t = targets.iter().find(|t| t.id == web).unwrap();
    assert_eq!(t.kind, "instance");
    assert_eq!(t.name, web, "Chaos Mesh name lists select by instance id");
    assert_eq!(t.labels["team"], "payments");
    assert_eq!(t.labels["Name"], "web-1");
    assert_eq!(t.labels["ec2.instance-type"], "t3.micro");
    assert_eq!(t.labels["ec2.state"], "running");
    assert!(t.labels["ec2.availability-zone"].starts_with(REGION));
    assert!(!t.labels["ec2.private-ip"].is_empty());

    // By instance id.
    let by_id = env(
        &moto.url(),
        &profile,
        json!({"managed_only": false, "instance_ids": [untagged]}),
    );
    let targets = adapter.discover(&by_id).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].id, untagged);
}

#[tokio::test]
async fn an_own_document_is_created_and_the_script_sent_with_the_experiment_in_the_comment() {
    let moto = Moto::start();
    let profile = AwsProfile::new();
    let instance = moto.run_instance(&[("team", "payments")]).await;
    let environment = env(&moto.url(), &profile, json!({"managed_only": false}));
    let adapter = SsmAdapter::new();
    let fault = fault(
        &stress_chaos("{cpu: {workers: 2, load: 100}}", "90s"),
        "0b6c2f4e-7f1a-4c4e-9f00-1d2e3f405060-0",
    );
    let target = instance_target(&instance);
    let planned = adapter.plan_details(&environment, &fault, &target);
    let details = adapter.inject(&environment, &fault, &target).await.unwrap();
    assert_eq!(details["documents"], "own");
    assert_eq!(details["document"], DEFAULT_DOCUMENT_NAME);
    assert_eq!(details["status"], "Success");
    assert_eq!(details["durationSeconds"], 90);

    // The document moto now holds is chaoshub's.
    let ssm = moto.ssm_client().await;
    let doc = ssm
        .get_document()
        .name(DEFAULT_DOCUMENT_NAME)
        .send()
        .await
        .unwrap();
    let content: Value = serde_json::from_str(doc.content().unwrap()).unwrap();
    assert_eq!(content, own_document_content());
    assert_eq!(doc.document_type().unwrap().as_str(), "Command");

    // The command moto recorded: document, target, comment, and exactly the planned script.
    let sent = commands(&moto, &instance).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let c = &sent[0];
    assert_eq!(c.document_name(), Some(DEFAULT_DOCUMENT_NAME));
    assert!(c.instance_ids().contains(&instance));
    assert_eq!(
        c.comment(),
        Some("chaoshub 0b6c2f4e-7f1a-4c4e-9f00-1d2e3f405060 0b6c2f4e-7f1a-4c4e-9f00-1d2e3f405060-0 inject")
    );
    let params = parameters(c);
    let script = planned["inject"]["script"].as_str().unwrap();
    assert_eq!(params["commands"].join("\n"), script.trim_end());
    assert_eq!(params["executionTimeout"], vec!["600".to_string()]);
    assert!(script.contains("--cpu \"$CPU_WORKERS\" --cpu-load 100"));
    assert_eq!(details["commandId"].as_str(), c.command_id());

    // Status: the script succeeded and its revert is 90 s away.
    let inj = injection(&fault, &target, details.clone());
    assert_eq!(
        adapter.status(&environment, &inj).await.unwrap(),
        InjectionState::Active
    );

    // Recovery sends the revert through the same document (moto never runs it).
    adapter.recover(&environment, &inj).await.unwrap();
    let sent = commands(&moto, &instance).await;
    assert_eq!(sent.len(), 2);
    let revert = sent
        .iter()
        .find(|c| c.comment().is_some_and(|t| t.ends_with(" recover")))
        .expect("a recover command");
    let lines = parameters(revert)["commands"].join("\n");
    assert!(
        lines.contains("exec /bin/sh \"$STATE/revert.sh\" now"),
        "{lines}"
    );
    assert!(lines.contains("/var/lib/chaoshub/0b6c2f4e-7f1a-4c4e-9f00-1d2e3f405060-0"));

    // A second injection finds the document in place and leaves it alone.
    let second = fault_with_id(&fault, "0b6c2f4e-7f1a-4c4e-9f00-1d2e3f405060-1");
    adapter
        .inject(&environment, &second, &target)
        .await
        .unwrap();
    let doc = ssm
        .get_document()
        .name(DEFAULT_DOCUMENT_NAME)
        .send()
        .await
        .unwrap();
    assert_eq!(doc.document_version(), Some("1"), "not updated again");
}

fn fault_with_id(f: &chaoshub_adapters::FaultRequest, id: &str) -> chaoshub_adapters::FaultRequest {
    let mut f = f.clone();
    f.injection_id = id.to_string();
    f
}

#[tokio::test]
async fn an_outdated_own_document_is_updated_to_a_new_default_version() {
    let moto = Moto::start();
    let profile = AwsProfile::new();
    let instance = moto.run_instance(&[]).await;
    let ssm = moto.ssm_client().await;
    let mut old = own_document_content();
    old["description"] = json!("an older chaoshub");
    ssm.create_document()
        .name(DEFAULT_DOCUMENT_NAME)
        .content(old.to_string())
        .document_type(aws_sdk_ssm::types::DocumentType::Command)
        .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
        .send()
        .await
        .unwrap();
    let environment = env(&moto.url(), &profile, json!({"managed_only": false}));
    let fault = fault(
        &physical_machine_chaos("disk-fill", "{path: /var/tmp, size: 1GB}", "60s"),
        "aa11-0",
    );
    SsmAdapter::new()
        .inject(&environment, &fault, &instance_target(&instance))
        .await
        .unwrap();
    let doc = ssm
        .get_document()
        .name(DEFAULT_DOCUMENT_NAME)
        .send()
        .await
        .unwrap();
    let content: Value = serde_json::from_str(doc.content().unwrap()).unwrap();
    assert_eq!(content, own_document_content());
    assert_eq!(doc.document_version(), Some("2"));
}

/// Parameters a document must have been sent with.
type Expected = Vec<(&'static str, &'static str)>;

#[tokio::test]
async fn managed_documents_get_the_awsfis_parameters() {
    let moto = Moto::start();
    let profile = AwsProfile::new();
    let instance = moto.run_instance(&[("team", "payments")]).await;
    let environment = env(
        &moto.url(),
        &profile,
        json!({"managed_only": false, "documents": "managed", "install_dependencies": false}),
    );
    let adapter = SsmAdapter::new();
    let target = instance_target(&instance);
    let cases: Vec<(String, &str, Expected)> = vec![
        (
            stress_chaos("{cpu: {workers: 2, load: 60}}", "2m"),
            "AWSFIS-Run-CPU-Stress",
            vec![
                ("CPU", "2"),
                ("LoadPercent", "60"),
                ("DurationSeconds", "120"),
            ],
        ),
        (
            stress_chaos("{memory: {workers: 1, size: '50%'}}", "60s"),
            "AWSFIS-Run-Memory-Stress",
            vec![
                ("Percent", "50"),
                ("Workers", "1"),
                ("DurationSeconds", "60"),
            ],
        ),
        (
            network_chaos(
                "delay",
                "  device: ens5\n  delay: {latency: 200ms}\n",
                "60s",
            ),
            "AWSFIS-Run-Network-Latency",
            vec![("DelayMilliseconds", "200"), ("Interface", "ens5")],
        ),
        (
            network_chaos("loss", "  loss: {loss: '7'}\n", "60s"),
            "AWSFIS-Run-Network-Packet-Loss",
            vec![("LossPercent", "7")],
        ),
        (
            network_chaos_annotated(
                "partition",
                "",
                "60s",
                ", annotations: {chaoshub.dev/port: '443', chaoshub.dev/protocol: udp}",
            ),
            "AWSFIS-Run-Network-Blackhole-Port",
            vec![
                ("Port", "443"),
                ("Protocol", "udp"),
                ("TrafficType", "egress"),
            ],
        ),
        (
            physical_machine_chaos("disk-fill", "{size: '90%'}", "60s"),
            "AWSFIS-Run-Disk-Fill",
            vec![("Percent", "90")],
        ),
        (
            physical_machine_chaos("process", "{process: nginx, signal: 15}", "60s"),
            "AWSFIS-Run-Kill-Process",
            vec![("ProcessName", "nginx"), ("Signal", "SIGTERM")],
        ),
    ];
    for (i, (manifest, document, expected)) in cases.iter().enumerate() {
        let f = fault(manifest, &format!("cafe-{i}"));
        let details = adapter.inject(&environment, &f, &target).await.unwrap();
        assert_eq!(details["document"], *document);
        let sent = commands(&moto, &instance).await;
        let c = sent
            .iter()
            .find(|c| c.command_id() == details["commandId"].as_str())
            .unwrap();
        assert_eq!(c.document_name(), Some(*document));
        let params = parameters(c);
        for (k, v) in expected {
            assert_eq!(
                params.get(*k),
                Some(&vec![v.to_string()]),
                "{document} {k}: {params:?}"
            );
        }
        assert_eq!(
            params.get("InstallDependencies"),
            Some(&vec!["False".to_string()]),
            "{document}"
        );
    }
    // No document was created: AWSFIS documents belong to AWS.
    let ssm = moto.ssm_client().await;
    assert!(ssm
        .get_document()
        .name(DEFAULT_DOCUMENT_NAME)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn what_managed_documents_cannot_express_is_refused_before_anything_is_sent() {
    let profile = AwsProfile::new();
    let environment = env(
        "http://127.0.0.1:9",
        &profile,
        json!({"documents": "managed"}),
    );
    let adapter = SsmAdapter::new();
    for (manifest, words) in [
        (
            network_chaos("delay", "  delay: {latency: 100ms, jitter: 10ms}\n", "60s"),
            "jitter",
        ),
        (
            stress_chaos("{memory: {workers: 1, size: 256MB}}", "60s"),
            "percentage",
        ),
        (
            physical_machine_chaos("user_defined", "{attackCmd: 'true'}", "60s"),
            "user-defined",
        ),
    ] {
        let f = fault(&manifest, "beef-0");
        match adapter.check_fault(&environment, &f) {
            Err(AdapterError::Unsupported { message, .. }) => {
                assert!(message.contains(words), "{message}");
                assert!(message.contains("documents: own"), "{message}");
            }
            other => panic!("{manifest}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_unreachable() {
    let profile = AwsProfile::new();
    let port = free_port();
    let environment = env(
        &format!("http://127.0.0.1:{port}"),
        &profile,
        json!({"managed_only": false, "max_attempts": 1, "timeout_ms": 2000}),
    );
    match SsmAdapter::new().discover(&environment).await {
        Err(AdapterError::Unreachable {
            endpoint, message, ..
        }) => {
            assert!(endpoint.contains(&port.to_string()), "{endpoint}");
            assert!(message.contains("DescribeInstances"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let f = fault(&stress_chaos("{cpu: {workers: 1}}", "60s"), "dead-0");
    match SsmAdapter::new()
        .inject(&environment, &f, &instance_target("i-0123456789abcdef0"))
        .await
    {
        Err(AdapterError::Unreachable { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_settings_are_invalid_settings_with_paths() {
    let profile = AwsProfile::new();
    let environment = env(
        "http://127.0.0.1:9",
        &profile,
        json!({"documents": "fis", "tags": "team=payments"}),
    );
    let adapter = SsmAdapter::new();
    let errors = adapter.validate_environment(&environment).unwrap_err();
    let mut paths: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["spec.settings.documents", "spec.settings.tags"]);
    match adapter.discover(&environment).await {
        Err(AdapterError::InvalidSettings(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn kinds_and_actions_it_cannot_run_are_unsupported() {
    let profile = AwsProfile::new();
    let environment = env("http://127.0.0.1:9", &profile, json!({}));
    let adapter = SsmAdapter::new();
    let netem = fault(
        &network_chaos(
            "netem",
            "  delay: {latency: 10ms}\n  loss: {loss: '5'}\n",
            "60s",
        ),
        "abcd-0",
    );
    match adapter.check_fault(&environment, &netem) {
        Err(AdapterError::Unsupported { kind, action, .. }) => {
            assert_eq!((kind.as_str(), action.as_str()), ("NetworkChaos", "netem"));
        }
        other => panic!("{other:?}"),
    }
    let whole = fault(&network_chaos("partition", "", "60s"), "abcd-1");
    match adapter.check_fault(&environment, &whole) {
        Err(AdapterError::Unsupported { message, .. }) => {
            assert!(message.contains("cut it off from SSM"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// Recovery and InvalidInstanceId: SSM says it both for an instance that is gone and for one
/// whose SSM agent is offline (cut off by the fault itself, say). EC2 — the real moto here —
/// tells them apart: an instance that still runs is an Unreachable error, which the hub
/// retries; a terminated one, or one EC2 does not know, has nothing left to recover. SSM's side
/// is the FAKE endpoint (moto's SendCommand accepts any instance id).
#[tokio::test]
async fn invalid_instance_id_at_recovery_is_retried_while_ec2_says_the_instance_exists() {
    let moto = Moto::start();
    let profile = AwsProfile::new();
    let fake = super::fake_ssm::FakeSsm::start().await;
    let running = moto.run_instance(&[("team", "payments")]).await;
    let terminated = moto.run_instance(&[("team", "payments")]).await;
    moto.ec2(&[
        ("Action", "TerminateInstances"),
        ("InstanceId.1", &terminated),
    ])
    .await;
    let environment = env(
        &fake.url(),
        &profile,
        json!({"managed_only": false, "poll_interval_ms": 10, "retry_backoff_ms": 1,
               "ec2_endpoint": moto.url()}),
    );
    let adapter = SsmAdapter::new();
    for id in [running.as_str(), terminated.as_str(), "i-0000000000000dead"] {
        fake.refuse_instance(id);
    }
    let recover = |id: &str| {
        let f = fault(
            &network_chaos("loss", "  loss: {loss: '25'}\n", "60s"),
            &format!("gone-{id}-0"),
        );
        let details = json!({"commandId": "cmd-none", "documents": "own", "instanceId": id});
        let inj = chaoshub_adapters::Injection {
            experiment_uid: "gone".into(),
            injection_id: f.injection_id.clone(),
            kind: f.kind().to_string(),
            actions: f.actions.clone(),
            target: instance_target(id),
            details,
        };
        let adapter = &adapter;
        let environment = environment.clone();
        async move { adapter.recover(&environment, &inj).await }
    };
    match recover(&running).await {
        Err(AdapterError::Unreachable { message, .. }) => {
            eprintln!("{message}");
            assert!(message.contains("running"), "{message}");
            assert!(message.contains("offline"), "{message}");
        }
        other => panic!("a running instance whose agent is offline is not recovered: {other:?}"),
    }
    recover(&terminated)
        .await
        .expect("a terminated instance took its faults with it");
    recover("i-0000000000000dead")
        .await
        .expect("an instance EC2 does not know is gone");
}
