//! Planning tests with the recording fake runner: no root, no kernel — they check which
//! mechanism is chosen and the exact commands a plan runs and removal undoes.

use std::sync::Arc;

use chaoshub_schema::agent::{
    AgentFault, KernelMechanisms, NetworkAction, NetworkFault, TrafficDirection,
};

use super::commands::RecordingRunner;
use super::*;
use crate::inject::{short_id, Injector};

fn full() -> KernelMechanisms {
    KernelMechanisms {
        netem: true,
        tbf: true,
        htb: true,
        u32_filter: true,
        ingress_ifb: true,
        nftables: true,
        nft_numgen: true,
        iptables: true,
        iptables_statistic: true,
        nfqueue: true,
        ..KernelMechanisms::default()
    }
}

/// This machine's kernel: no sch_netem, no nft queue statement.
fn no_netem() -> KernelMechanisms {
    KernelMechanisms {
        netem: false,
        ..full()
    }
}

fn fault(action: NetworkAction) -> NetworkFault {
    let mut f = NetworkFault::new(action);
    f.latency_ms = 100.0;
    f.percent = 30.0;
    f.rate_bps = 8_000_000;
    f
}

/// A fake host with one device, eth0, carrying the default route and the kernel's default
/// qdisc.
fn host() -> Arc<RecordingRunner> {
    let runner = Arc::new(RecordingRunner::new());
    runner
        .answer(
            "ip -4 -o route show default",
            "default via 10.0.0.1 dev eth0 proto static\n",
        )
        .answer("ip -6 -o route show default", "")
        .answer("tc qdisc show dev eth0", "qdisc noqueue 0: root refcnt 2\n");
    runner
}

fn plan(m: KernelMechanisms, runner: &Arc<RecordingRunner>, id: &str, f: NetworkFault) -> Plan {
    let injector = NetworkInjector::new(m, runner.clone());
    injector
        .plan(id, &AgentFault::Network(f))
        .unwrap_or_else(|e| panic!("plan failed: {e}"))
}

fn steps(plan: &Plan) -> Vec<String> {
    let undo: NetworkUndo = serde_json::from_value(plan.undo.clone()).unwrap();
    undo.steps.iter().map(HostCommand::line).collect()
}

fn choose(m: &KernelMechanisms, f: &NetworkFault) -> Result<&'static str, InjectError> {
    choose_mechanism(f, &selection(f).unwrap(), m)
}

#[test]
fn netem_is_preferred_and_the_fallbacks_follow_the_kernel() {
    use mechanism::*;
    let delay = fault(NetworkAction::Delay);
    assert_eq!(choose(&full(), &delay).unwrap(), TC_NETEM);
    assert_eq!(choose(&no_netem(), &delay).unwrap(), NFQUEUE);

    let loss = fault(NetworkAction::Loss);
    assert_eq!(choose(&full(), &loss).unwrap(), TC_NETEM);
    assert_eq!(choose(&no_netem(), &loss).unwrap(), NFT_NUMGEN);
    let no_nft = KernelMechanisms {
        nftables: false,
        nft_numgen: false,
        ..no_netem()
    };
    assert_eq!(choose(&no_nft, &loss).unwrap(), IPTABLES_STATISTIC);
    let mut correlated = loss.clone();
    correlated.correlation_pct = 50.0;
    assert_eq!(choose(&no_netem(), &correlated).unwrap(), NFQUEUE);

    for action in [
        NetworkAction::Corrupt,
        NetworkAction::Reorder,
        NetworkAction::Duplicate,
    ] {
        assert_eq!(
            choose(&no_netem(), &fault(action)).unwrap(),
            NFQUEUE,
            "{action:?}"
        );
    }
    assert_eq!(
        choose(&no_netem(), &fault(NetworkAction::Dns)).unwrap(),
        NFQUEUE
    );
    assert_eq!(
        choose(&no_netem(), &fault(NetworkAction::Partition)).unwrap(),
        NFTABLES
    );
    assert_eq!(
        choose(&no_nft, &fault(NetworkAction::Partition)).unwrap(),
        IPTABLES
    );
    assert_eq!(
        choose(&full(), &fault(NetworkAction::Bandwidth)).unwrap(),
        TC_TBF
    );
    let mut to_peer = fault(NetworkAction::Bandwidth);
    to_peer.filter.cidrs = vec!["198.18.0.2".into()];
    assert_eq!(choose(&full(), &to_peer).unwrap(), TC_HTB);

    // netem shapes egress only; ingress without ifb goes to the engine.
    let mut incoming = fault(NetworkAction::Delay);
    incoming.filter.direction = TrafficDirection::From;
    let no_ifb = KernelMechanisms {
        ingress_ifb: false,
        ..full()
    };
    assert_eq!(choose(&no_ifb, &incoming).unwrap(), NFQUEUE);
}

#[test]
fn impossible_faults_name_the_missing_feature() {
    let bare = KernelMechanisms {
        tbf: true,
        ..KernelMechanisms::default()
    };
    let err = choose(&bare, &fault(NetworkAction::Delay)).unwrap_err();
    assert!(
        matches!(&err, InjectError::Unsupported { feature, .. } if feature == "sch_netem"),
        "{err}"
    );
    let mut incoming = fault(NetworkAction::Bandwidth);
    incoming.filter.direction = TrafficDirection::Both;
    let no_ifb = KernelMechanisms {
        ingress_ifb: false,
        ..full()
    };
    let err = choose(&no_ifb, &incoming).unwrap_err();
    assert!(
        matches!(&err, InjectError::Unsupported { feature, .. } if feature == "ifb"),
        "{err}"
    );
    let mut dup_in = fault(NetworkAction::Duplicate);
    dup_in.filter.direction = TrafficDirection::From;
    let err = choose(&no_netem(), &dup_in).unwrap_err();
    assert!(err.to_string().contains("direction: to"), "{err}");
    let err = choose(&KernelMechanisms::default(), &fault(NetworkAction::Dns)).unwrap_err();
    assert!(err.to_string().contains("nfnetlink_queue"), "{err}");
}

#[test]
fn netem_delay_is_one_root_qdisc_with_our_handle() {
    let runner = host();
    let mut f = fault(NetworkAction::Delay);
    f.jitter_ms = 10.0;
    f.correlation_pct = 25.0;
    let id = "exp-1/target-a";
    let p = plan(full(), &runner, id, f);
    assert_eq!(p.mechanism, "tc-netem");
    let handle = tc::handle_for(&short_id(id));
    assert_eq!(
        steps(&p),
        vec![format!(
            "tc qdisc add dev eth0 root handle {handle} netem delay 100ms 10ms 25%"
        )]
    );
}

#[test]
fn filtered_netem_uses_an_htb_tree_and_u32_filters() {
    let runner = host();
    let mut f = fault(NetworkAction::Loss);
    f.filter.cidrs = vec!["198.18.0.2".into()];
    f.filter.ports = vec![80];
    f.filter.protocol = Some("tcp".into());
    let id = "loss-peer";
    let p = plan(full(), &runner, id, f);
    let h = tc::handle_for(&short_id(id));
    let major = h.trim_end_matches(':');
    let child = format!("{:x}:", u16::from_str_radix(major, 16).unwrap() + 1);
    assert_eq!(
        steps(&p),
        vec![
            format!("tc qdisc add dev eth0 root handle {h} htb default 2"),
            format!("tc class add dev eth0 parent {h} classid {major}:1 htb rate 10gbit ceil 10gbit"),
            format!("tc class add dev eth0 parent {h} classid {major}:2 htb rate 10gbit ceil 10gbit"),
            format!("tc qdisc add dev eth0 parent {major}:1 handle {child} netem loss random 30%"),
            format!(
                "tc filter add dev eth0 parent {h} protocol ip prio 1 u32 match ip dst 198.18.0.2/32 match ip protocol 6 0xff match ip dport 80 0xffff flowid {major}:1"
            ),
        ]
    );
}

#[test]
fn bandwidth_is_a_tbf_root_and_ingress_goes_through_ifb() {
    let runner = host();
    let mut f = fault(NetworkAction::Bandwidth);
    f.buffer_bytes = 20_000;
    f.limit_bytes = 100_000;
    f.filter.direction = TrafficDirection::Both;
    let id = "bw";
    let sid = short_id(id);
    let p = plan(full(), &runner, id, f);
    assert_eq!(p.mechanism, "tc-tbf");
    let h = tc::handle_for(&sid);
    let ifb = tc::ifb_name(&sid, 0);
    assert_eq!(
        steps(&p),
        vec![
            format!("tc qdisc add dev eth0 root handle {h} tbf rate 8000000bit burst 20000 limit 100000"),
            format!("ip link add {ifb} type ifb"),
            format!("ip link set dev {ifb} up"),
            "tc qdisc add dev eth0 handle ffff: ingress".to_string(),
            format!(
                "tc filter add dev eth0 parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev {ifb}"
            ),
            format!("tc qdisc add dev {ifb} root handle {h} tbf rate 8000000bit burst 20000 limit 100000"),
        ]
    );
}

#[test]
fn a_users_root_qdisc_is_never_replaced() {
    let runner = Arc::new(RecordingRunner::new());
    runner
        .answer(
            "ip -o link show dev eth0",
            "2: eth0: <BROADCAST,UP> mtu 1500\n",
        )
        .answer(
            "tc qdisc show dev eth0",
            "qdisc htb 1: root refcnt 2 r2q 10 default 0\n",
        );
    let mut f = fault(NetworkAction::Bandwidth);
    f.device = Some("eth0".into());
    let injector = NetworkInjector::new(full(), runner.clone());
    let err = injector.plan("x", &AgentFault::Network(f)).unwrap_err();
    assert!(err.to_string().contains("htb 1:"), "{err}");
    assert!(
        runner.lines().iter().all(|l| !l.contains(" add ")),
        "nothing is added"
    );
}

#[test]
fn loss_without_netem_is_an_nft_numgen_table_of_its_own() {
    let runner = host();
    let mut f = fault(NetworkAction::Loss);
    f.filter.cidrs = vec!["198.18.0.2/32".into(), "2001:db8::/64".into()];
    let id = "loss-1";
    let sid = short_id(id);
    let p = plan(no_netem(), &runner, id, f);
    assert_eq!(p.mechanism, "nft-numgen");
    let t = format!("chaoshub_{sid}");
    let c = format!("chaoshub:{sid}");
    assert_eq!(
        steps(&p),
        vec![format!(
            "nft 'add table inet {t}\nadd chain inet {t} egress {{ type filter hook output priority -5; policy accept; }}\nadd rule inet {t} egress ip daddr 198.18.0.2/32 oifname != \"lo\" counter numgen random mod 10000 < 3000 drop comment \"{c}\"\nadd rule inet {t} egress ip6 daddr 2001:db8::/64 oifname != \"lo\" counter numgen random mod 10000 < 3000 drop comment \"{c}\"'"
        )]
    );
}

#[test]
fn delay_without_netem_queues_to_the_engine_with_bypass() {
    let runner = host();
    let mut f = fault(NetworkAction::Delay);
    f.filter.cidrs = vec!["198.18.0.2".into()];
    f.filter.direction = TrafficDirection::Both;
    let id = "delay-nfq";
    let sid = short_id(id);
    let p = plan(no_netem(), &runner, id, f);
    assert_eq!(p.mechanism, "nfqueue");
    let undo: NetworkUndo = serde_json::from_value(p.undo.clone()).unwrap();
    let q = undo.engine.as_ref().unwrap().queue_num;
    let out = format!("CHAOSHUB-{}-OUT", &sid[..12]);
    let inp = format!("CHAOSHUB-{}-IN", &sid[..12]);
    let c = format!("chaoshub:{sid}");
    assert_eq!(
        steps(&p),
        vec![
            format!("iptables -w -t filter -N {out}"),
            format!("iptables -w -t filter -A {out} ! -o lo -d 198.18.0.2/32 -m comment --comment {c} -j NFQUEUE --queue-num {q} --queue-bypass"),
            format!("iptables -w -t filter -I OUTPUT 1 -m comment --comment {c} -j {out}"),
            format!("iptables -w -t filter -N {inp}"),
            format!("iptables -w -t filter -A {inp} ! -i lo -s 198.18.0.2/32 -m comment --comment {c} -j NFQUEUE --queue-num {q} --queue-bypass"),
            format!("iptables -w -t filter -I INPUT 1 -m comment --comment {c} -j {inp}"),
        ]
    );
    nfqueue::release_queue(q);
}

#[test]
fn partition_via_iptables_spells_out_ports_and_protocols() {
    let runner = host();
    let mut f = fault(NetworkAction::PortBlackhole);
    f.filter.local_ports = vec![8080];
    f.filter.direction = TrafficDirection::From;
    let no_nft = KernelMechanisms {
        nftables: false,
        ..no_netem()
    };
    let id = "bh";
    let sid = short_id(id);
    let p = plan(no_nft, &runner, id, f);
    assert_eq!(p.mechanism, "iptables");
    let chain = format!("CHAOSHUB-{}-IN", &sid[..12]);
    let lines = steps(&p);
    assert!(lines.contains(&format!(
        "iptables -w -t filter -A {chain} ! -i lo -p tcp --dport 8080 -m comment --comment chaoshub:{sid} -j DROP"
    )));
    assert!(lines.contains(&format!(
        "ip6tables -w -t filter -A {chain} ! -i lo -p udp --dport 8080 -m comment --comment chaoshub:{sid} -j DROP"
    )));
}

#[test]
fn removal_deletes_exactly_what_the_plan_names_and_is_idempotent() {
    let runner = host();
    let id = "rm-1";
    let sid = short_id(id);
    let mut f = fault(NetworkAction::Delay);
    f.filter.direction = TrafficDirection::To;
    let p = plan(no_netem(), &runner, id, f);
    // A fresh injector (an agent restart) removes from the plan alone.
    let after_restart = Arc::new(RecordingRunner::new());
    after_restart.fail(
        "iptables -w -t filter -D",
        "iptables: Bad rule (does a matching rule exist in that chain?).",
    );
    let injector = NetworkInjector::new(no_netem(), after_restart.clone());
    injector
        .remove(&p)
        .expect("already-gone jump is not an error");
    let chain = format!("CHAOSHUB-{}-OUT", &sid[..12]);
    let lines = after_restart.lines();
    assert_eq!(
        lines,
        vec![
            format!(
                "iptables -w -t filter -D OUTPUT -m comment --comment chaoshub:{sid} -j {chain}"
            ),
            format!("iptables -w -t filter -F {chain}"),
            format!("iptables -w -t filter -X {chain}"),
            format!(
                "ip6tables -w -t filter -D OUTPUT -m comment --comment chaoshub:{sid} -j {chain}"
            ),
            format!("ip6tables -w -t filter -F {chain}"),
            format!("ip6tables -w -t filter -X {chain}"),
        ]
    );

    let t = plan(full(), &runner, "rm-2", fault(NetworkAction::Bandwidth));
    let recorder = Arc::new(RecordingRunner::new());
    recorder.fail("tc qdisc del", "Error: Invalid handle.");
    NetworkInjector::new(full(), recorder.clone())
        .remove(&t)
        .expect("a root that is no longer ours is left alone");
    assert_eq!(
        recorder.lines(),
        vec![format!(
            "tc qdisc del dev eth0 root handle {}",
            tc::handle_for(&short_id("rm-2"))
        )]
    );
}

#[test]
fn a_real_failure_during_removal_is_reported() {
    let runner = host();
    let p = plan(no_netem(), &runner, "rm-3", fault(NetworkAction::Partition));
    let broken = Arc::new(RecordingRunner::new());
    broken.fail(
        "nft delete",
        "Error: Could not process rule: Operation not permitted",
    );
    let err = NetworkInjector::new(no_netem(), broken)
        .remove(&p)
        .unwrap_err();
    assert!(err.to_string().contains("Operation not permitted"), "{err}");
}

#[test]
fn nic_down_records_the_routes_it_must_restore() {
    let runner = Arc::new(RecordingRunner::new());
    runner
        .answer("ip -o link show dev veth0", "5: veth0@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n")
        .answer(
            "ip -4 -o route show dev veth0",
            "default via 198.18.0.2 proto static \n198.18.0.0/24 proto kernel scope link src 198.18.0.1 \n",
        )
        .answer("ip -6 -o route show dev veth0", "fe80::/64 proto kernel metric 256 pref medium\n");
    let mut f = NetworkFault::new(NetworkAction::NicDown);
    f.device = Some("veth0".into());
    let p = plan(full(), &runner, "nic", f);
    assert_eq!(p.mechanism, "ip-link");
    assert_eq!(steps(&p), vec!["ip link set dev veth0 down"]);
    let undo: NetworkUndo = serde_json::from_value(p.undo).unwrap();
    assert_eq!(
        undo.links_down[0].routes,
        vec![[
            "-4",
            "route",
            "replace",
            "default",
            "via",
            "198.18.0.2",
            "proto",
            "static",
            "dev",
            "veth0"
        ]
        .map(String::from)
        .to_vec()]
    );
}

#[test]
fn invalid_parameters_are_refused_before_anything_runs() {
    let runner = host();
    let injector = NetworkInjector::new(full(), runner.clone());
    let mut bad_cidr = fault(NetworkAction::Partition);
    bad_cidr.filter.cidrs = vec!["10.0.0.0/33".into()];
    let mut bad_pct = fault(NetworkAction::Loss);
    bad_pct.percent = 150.0;
    let mut no_ports = fault(NetworkAction::PortBlackhole);
    no_ports.filter.ports.clear();
    let mut bad_ns = fault(NetworkAction::Delay);
    bad_ns.netns = Some(chaoshub_schema::agent::NetnsRef::Path("/etc/passwd".into()));
    let mut bad_dev = fault(NetworkAction::Bandwidth);
    bad_dev.device = Some("eth0; rm -rf /".into());
    for f in [bad_cidr, bad_pct, no_ports, bad_ns, bad_dev] {
        let err = injector.plan("bad", &AgentFault::Network(f)).unwrap_err();
        assert!(matches!(err, InjectError::Invalid(_)), "{err}");
    }
    assert!(runner.lines().iter().all(|l| !l.contains(" add ")));
}

#[test]
fn numbers_are_formatted_for_tc() {
    assert_eq!(fmt_num(100.0), "100");
    assert_eq!(fmt_num(0.5), "0.5");
    assert_eq!(fmt_num(12.25), "12.25");
}
