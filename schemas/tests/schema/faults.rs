//! `FaultSpec` accessors: actions, selectors, modes and environments per kind.

use chaoshub_schema::{Kind, SelectorMode};

use super::support::parse_ok;

fn manifest(kind: &str, spec: &str) -> chaoshub_schema::Manifest {
    parse_ok(&format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: {kind}\nmetadata: {{name: x}}\nspec: {spec}\n"
    ))
}

#[test]
fn actions_follow_chaos_mesh_names() {
    let cases = [
        ("NetworkChaos", "{action: delay, mode: one, selector: {}, delay: {latency: 10ms}}", vec!["delay"]),
        ("PodChaos", "{action: pod-kill, mode: all, selector: {}}", vec!["pod-kill"]),
        ("StressChaos", "{mode: one, selector: {}, stressors: {cpu: {workers: 1}, memory: {workers: 1, size: 256MB}}}", vec!["cpu", "memory"]),
        ("StressChaos", "{mode: one, selector: {}, stressngStressors: '--cpu 1'}", vec!["stress-ng"]),
        ("HTTPChaos", "{mode: one, selector: {}, target: Request, abort: true, delay: 1s}", vec!["abort", "delay"]),
        ("TimeChaos", "{mode: one, selector: {}, timeOffset: -5m}", vec!["time-offset"]),
        ("KernelChaos", "{mode: one, selector: {}, failKernRequest: {failtype: 0}}", vec!["fail-kern-request"]),
        ("IOChaos", "{action: fault, mode: one, selector: {}, volumePath: /data, errno: 5}", vec!["fault"]),
        ("DNSChaos", "{action: error, mode: one, selector: {}}", vec!["error"]),
        ("JVMChaos", "{action: gc, mode: one, selector: {}}", vec!["gc"]),
        ("BlockChaos", "{action: delay, mode: one, selector: {}, volumeName: v, delay: {latency: 1s}}", vec!["delay"]),
        ("AWSChaos", "{action: ec2-stop, awsRegion: us-east-1, ec2Instance: i-1}", vec!["ec2-stop"]),
        ("GCPChaos", "{action: node-reset, project: p, zone: z, instance: i}", vec!["node-reset"]),
        ("AzureChaos", "{action: vm-restart, subscriptionID: s, resourceGroupName: g, vmName: v}", vec!["vm-restart"]),
        ("PhysicalMachineChaos", "{action: stress-cpu, mode: one, address: ['http://h:31767'], stress-cpu: {workers: 1, load: 10}}", vec!["stress-cpu"]),
    ];
    for (kind, spec, expected) in cases {
        let m = manifest(kind, spec);
        let fault = m.fault().unwrap_or_else(|| panic!("{kind} is a fault"));
        assert_eq!(fault.actions(), expected, "{kind}");
    }
}

#[test]
fn selectors_convert_to_target_selectors() {
    let m = manifest(
        "PodChaos",
        "{action: pod-kill, mode: fixed, value: '2', duration: 1m, selector: {namespaces: [a], pods: {a: [p1]}, \
         labelSelectors: {app: web}, expressionSelectors: [{key: tier, operator: In, values: [fe]}], \
         annotationSelectors: {x: y}, fieldSelectors: {metadata.name: p1}, nodes: [n1], nodeSelectors: {zone: z}, \
         podPhaseSelectors: [Running]}}",
    );
    let fault = m.fault().unwrap();
    let sel = fault.target_selector().unwrap();
    assert_eq!(sel.namespaces, vec!["a"]);
    assert_eq!(sel.names["a"], vec!["p1"]);
    assert_eq!(sel.label_selectors["app"], "web");
    assert_eq!(sel.expression_selectors[0].operator, "In");
    assert_eq!(sel.annotation_selectors["x"], "y");
    assert_eq!(sel.field_selectors["metadata.name"], "p1");
    assert_eq!(sel.nodes, vec!["n1"]);
    assert_eq!(sel.node_selectors["zone"], "z");
    assert_eq!(sel.pod_phase_selectors, vec!["Running"]);
    assert_eq!(fault.mode(), Some(SelectorMode::Fixed));
    assert_eq!(fault.value(), Some("2"));
    assert_eq!(fault.duration(), Some("1m"));

    let pm = manifest(
        "PhysicalMachineChaos",
        "{action: network-delay, mode: one, selector: {physicalMachines: {default: [pm1]}}, network-delay: {latency: 10ms}}",
    );
    assert_eq!(
        pm.fault().unwrap().target_selector().unwrap().names["default"],
        vec!["pm1"]
    );
    let by_address = manifest(
        "PhysicalMachineChaos",
        "{action: network-delay, mode: one, address: ['http://h:31767'], network-delay: {latency: 10ms}}",
    );
    assert!(by_address.fault().unwrap().target_selector().is_none());
    let aws = manifest(
        "AWSChaos",
        "{action: ec2-stop, awsRegion: r, ec2Instance: i}",
    );
    assert!(aws.fault().unwrap().target_selector().is_none());
    assert!(aws.fault().unwrap().mode().is_none());
}

#[test]
fn environment_prefers_ours_then_remote_cluster() {
    let m = manifest(
        "PodChaos",
        "{action: pod-kill, mode: one, selector: {}, remoteCluster: east}",
    );
    assert_eq!(m.fault().unwrap().environment(), Some("east"));
    let m = manifest(
        "PodChaos",
        "{action: pod-kill, mode: one, selector: {}, remoteCluster: east, environment: staging-docker}",
    );
    assert_eq!(m.fault().unwrap().environment(), Some("staging-docker"));
    let mut m = manifest(
        "NetworkChaos",
        "{action: partition, mode: one, selector: {}}",
    );
    assert_eq!(m.fault().unwrap().environment(), None);
    m.spec.set_environment("lab");
    assert_eq!(m.fault().unwrap().environment(), Some("lab"));
    assert_eq!(m.to_value()["spec"]["environment"], "lab");
}

#[test]
fn orchestration_kinds_are_not_faults() {
    for (kind, spec) in [
        (
            "StatusCheck",
            "{http: {url: 'http://x', criteria: {statusCode: '200'}}}",
        ),
        ("PhysicalMachine", "{address: 'http://h:31767'}"),
    ] {
        let m = manifest(kind, spec);
        assert!(m.fault().is_none());
        assert!(!m.kind().is_fault());
    }
    assert!(Kind::NetworkChaos.is_fault());
}
