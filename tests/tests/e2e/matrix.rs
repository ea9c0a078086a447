//! The conformance cells of the `native` adapter that `agent.rs` does not already measure: each
//! test submits the row's fault to the real hub, which runs it on a real `chaos-agent` in
//! namespace A; the effect is measured on real traffic between A and B (or on the agent's own
//! processes for stress and disk faults), then checked gone after the experiment, and the
//! figure recorded (`chaoshub_testkit::measured!`). Runs as root, like `agent.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::agent::{network_chaos, rtt_samples, Lab};
use super::netns::*;
use super::support::*;

/// The mechanism the agent reported for the experiment's first target (`nfqueue`, `tc-netem`…).
fn mechanism(running: &serde_json::Value) -> String {
    running["status"]["targets"][0]["details"]["mechanism"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A NetworkChaos on the agent without `externalTargets` (the whole host's traffic).
fn unfiltered(name: &str, duration: &str, body: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: hosts\n  mode: all\n  selector:\n    labelSelectors: {{role: app}}\n  duration: {duration}\n{body}"
    )
}

/// A PhysicalMachineChaos on the agent.
fn physical(name: &str, action: &str, block: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: hosts\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{role: app}}\n  {action}: {block}\n  duration: {duration}\n"
    )
}

/// Submits a delay, measures the median RTT from A to B before and while it holds, waits for
/// its end and checks the RTT is back. Returns (added, mechanism).
fn delay_added(lab: &Lab, manifest: &str) -> (Duration, String) {
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(manifest);
    let running = lab.api.wait_phase(&uid, "Running", T);
    let delayed = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    lab.stop(&uid);
    let after = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    eprintln!("RTT {baseline:?} before, {delayed:?} during, {after:?} after");
    assert!(
        after < baseline + Duration::from_millis(10),
        "after recovery {after:?} vs baseline {baseline:?}"
    );
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    (delayed.saturating_sub(baseline), mechanism(&running))
}

#[test]
fn native_delay_of_all_traffic() {
    let lab = Lab::start();
    let (added, mechanism) = delay_added(
        &lab,
        &unfiltered(
            "delay-all",
            "60s",
            "  action: delay\n  delay: {latency: 100ms}\n",
        ),
    );
    assert!(
        (90.0..=110.0).contains(&ms(added)),
        "added {added:?} for 100ms"
    );
    chaoshub_testkit::measured!(
        "NetworkChaos/delay",
        "native",
        format!(
            "+{:.0} ms TCP RTT (all of the host's traffic) for 100ms",
            ms(added)
        ),
        mechanism = mechanism
    );
}

#[test]
fn native_delay_with_jitter() {
    let lab = Lab::start();
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(&network_chaos(
        "jitter",
        &lab.topo.b_ip,
        "60s",
        "  action: delay\n  delay: {latency: 100ms, jitter: 20ms, correlation: '25'}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let samples = rtt_samples(&lab.topo.a, lab.peer.tcp, 60);
    lab.stop(&uid);
    let values: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let sd = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    let added = ms(median(samples).saturating_sub(baseline));
    eprintln!("jitter: +{added:.1} ms median, {sd:.1} ms standard deviation");
    assert!((85.0..=115.0).contains(&added), "added {added:.1} ms");
    assert!((4.0..=30.0).contains(&sd), "standard deviation {sd:.1} ms");
    let after = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    assert!(
        after < Duration::from_millis(20),
        "after recovery {after:?}"
    );
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (jitter, correlation)",
        "native",
        format!("+{added:.0} ms median TCP RTT, {sd:.1} ms standard deviation, for 100ms ± 20ms"),
        mechanism = mechanism(&running)
    );
}

/// `direction: both` with a `target` selector: a second agent, in B (labelled `tier: db`),
/// reaches the hub through A (A forwards and masquerades towards the hub; B routes via A, all
/// inside the test's namespaces); the selector picks it, so the fault on agent A (`tier: web`)
/// acts on the traffic between A and B.
#[test]
fn native_delay_both_ways_to_a_selected_agent() {
    let lab = Lab::start_with(&["--label", "tier=web"]);
    let topo = &lab.topo;
    in_ns_cmd(&topo.a, "sysctl", &["-w", "net.ipv4.ip_forward=1"]);
    let nat = in_ns_cmd(
        &topo.a,
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-d",
            &topo.hub_ip,
            "-j",
            "MASQUERADE",
        ],
    );
    assert!(nat.trim().is_empty(), "iptables: {nat}");
    ip(&["-n", &topo.b, "route", "add", "default", "via", &topo.a_ip]);
    let agent_b = AgentProcess::start(
        &topo.b,
        &lab.hub.url,
        "hosts",
        "agent-b",
        &lab.dir.path().join("agent-b-state"),
        &[
            "--join-token-file",
            lab.join_token_file.to_str().unwrap(),
            "--label",
            "tier=db",
        ],
    );
    let start = Instant::now();
    loop {
        let v = lab.api.get("/api/v1/agents?env=hosts");
        let healthy = v["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|a| a["name"] == "agent-b" && a["health"] == "healthy")
        });
        if healthy {
            break;
        }
        assert!(
            start.elapsed() < T,
            "agent-b never became healthy: {v:#}\n{}",
            agent_b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (added, mechanism) = delay_added(
        &lab,
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: both}\nspec:\n  environment: hosts\n  action: delay\n  mode: all\n  selector:\n    labelSelectors: {tier: web}\n  direction: both\n  target:\n    mode: all\n    selector:\n      labelSelectors: {tier: db}\n  delay: {latency: 100ms}\n  duration: 60s\n",
    );
    assert!(ms(added) >= 90.0, "added {added:?} for 100ms both ways");
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (direction both, target selector)",
        "native",
        format!(
            "+{:.0} ms TCP RTT between the agent and the agent its target selector picked, for 100ms",
            ms(added)
        ),
        mechanism = mechanism
    );
}

#[test]
fn native_delay_to_an_external_host_name() {
    let name = "chaoshub-peer-b";
    let lab = Lab::start_with_peer_name(name);
    let (added, mechanism) = delay_added(
        &lab,
        &unfiltered(
            "delay-name",
            "60s",
            &format!("  action: delay\n  delay: {{latency: 100ms}}\n  externalTargets: [{name}]\n"),
        ),
    );
    assert!(
        (90.0..=110.0).contains(&ms(added)),
        "added {added:?} for 100ms"
    );
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (externalTargets host name)",
        "native",
        format!(
            "+{:.0} ms TCP RTT to a name only the agent's /etc/hosts knows, for 100ms",
            ms(added)
        ),
        mechanism = mechanism
    );
}

#[test]
fn native_loss_of_all_traffic() {
    let lab = Lab::start();
    let uid = lab.submit(&unfiltered(
        "loss-all",
        "60s",
        "  action: loss\n  loss: {loss: '25'}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let loss = lab.measured_udp_loss(3000);
    lab.stop(&uid);
    assert!((20.0..=30.0).contains(&loss), "loss {loss:.1} % for 25 %");
    let after = lab.measured_udp_loss(500);
    assert!(after <= 1.0, "loss after recovery {after:.1} %");
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    chaoshub_testkit::measured!(
        "NetworkChaos/loss",
        "native",
        format!("{loss:.1} % of 3000 UDP datagrams lost (all of the host's traffic) for 25 %"),
        mechanism = mechanism(&running)
    );
}

/// What B received of `count` numbered 256-byte datagrams sent from A.
#[derive(Debug)]
struct Tally {
    sent: usize,
    intact: usize,
    duplicates: usize,
    damaged: usize,
}

fn payload(seq: usize) -> Vec<u8> {
    let mut p = format!("chaoshub-{seq:06}-").into_bytes();
    p.resize(256, b'z');
    p
}

/// Sends numbered datagrams from A to a receiver in B (port 7002) and tallies what arrived.
fn udp_tally(lab: &Lab, count: usize) -> Tally {
    let to: SocketAddr = format!("{}:7002", lab.topo.b_ip).parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let b = lab.topo.b.clone();
    let receiver = std::thread::spawn(move || {
        in_ns(&b, move || {
            let sock = UdpSocket::bind(to).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = std::collections::HashMap::<usize, usize>::new();
            let mut damaged = 0;
            let mut buf = [0u8; 2048];
            let mut quiet = Instant::now();
            let started = Instant::now();
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        quiet = Instant::now();
                        let data = &buf[..n];
                        let seq = std::str::from_utf8(data.get(9..15).unwrap_or_default())
                            .ok()
                            .and_then(|s| s.parse::<usize>().ok())
                            .filter(|&s| s < count && payload(s) == data);
                        match seq {
                            Some(s) => *seen.entry(s).or_default() += 1,
                            None => damaged += 1,
                        }
                    }
                    Err(_) => {
                        if quiet.elapsed() > Duration::from_secs(1)
                            && started.elapsed() > Duration::from_secs(2)
                        {
                            break;
                        }
                    }
                }
            }
            (
                seen.len(),
                seen.values().map(|n| n - 1).sum::<usize>(),
                damaged,
            )
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    in_ns(&lab.topo.a, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for seq in 0..count {
            let _ = sock.send_to(&payload(seq), to);
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    let (intact, duplicates, damaged) = receiver.join().unwrap();
    let tally = Tally {
        sent: count,
        intact,
        duplicates,
        damaged,
    };
    eprintln!("{tally:?}");
    tally
}

#[test]
fn native_duplicate_sends_the_asked_share_twice() {
    let lab = Lab::start();
    let uid = lab.submit(&network_chaos(
        "dup",
        &lab.topo.b_ip,
        "60s",
        "  action: duplicate\n  duplicate: {duplicate: '40'}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let during = udp_tally(&lab, 1000);
    lab.stop(&uid);
    let after = udp_tally(&lab, 300);
    let share = 100.0 * during.duplicates as f64 / during.sent as f64;
    assert!((32.0..=48.0).contains(&share), "{share:.1} % for 40 %");
    assert_eq!(after.duplicates, 0, "{after:?}");
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    chaoshub_testkit::measured!(
        "NetworkChaos/duplicate",
        "native",
        format!(
            "{share:.1} % of {} UDP datagrams to the peer arrived twice for 40 %",
            during.sent
        ),
        mechanism = mechanism(&running)
    );
}

#[test]
fn native_corrupt_damages_the_asked_share() {
    let lab = Lab::start();
    let uid = lab.submit(&network_chaos(
        "corrupt",
        &lab.topo.b_ip,
        "60s",
        "  action: corrupt\n  corrupt: {corrupt: '40'}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let during = udp_tally(&lab, 1000);
    lab.stop(&uid);
    let after = udp_tally(&lab, 300);
    // A corrupted datagram is dropped by B's checksum check or delivered damaged: both count.
    let hit = 100.0 * (during.sent - during.intact) as f64 / during.sent as f64;
    assert!((32.0..=48.0).contains(&hit), "{hit:.1} % for 40 %");
    assert_eq!((after.intact, after.damaged), (after.sent, 0), "{after:?}");
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    chaoshub_testkit::measured!(
        "NetworkChaos/corrupt",
        "native",
        format!(
            "{hit:.1} % of {} UDP datagrams to the peer damaged ({} delivered damaged, the rest dropped by checksum) for 40 %",
            during.sent, during.damaged
        ),
        mechanism = mechanism(&running)
    );
}

/// Sends `bytes` over TCP from A to a sink in B; the rate the sink saw, in Mbit/s.
fn upload_rate(lab: &Lab, bytes: usize) -> f64 {
    let to: SocketAddr = format!("{}:7003", lab.topo.b_ip).parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let b = lab.topo.b.clone();
    let sink = std::thread::spawn(move || {
        in_ns(&b, move || {
            let listener = TcpListener::bind(to).unwrap();
            ready_tx.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            let start = Instant::now();
            while got < bytes {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            (got, start.elapsed())
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    in_ns(&lab.topo.a, move || {
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        let chunk = vec![b'x'; 16 * 1024];
        let mut left = bytes;
        while left > 0 {
            let k = left.min(chunk.len());
            conn.write_all(&chunk[..k]).unwrap();
            left -= k;
        }
    });
    let (got, took) = sink.join().unwrap();
    assert_eq!(got, bytes, "the whole upload arrived");
    got as f64 * 8.0 / took.as_secs_f64() / 1e6
}

#[test]
fn native_bandwidth_limits_what_the_host_sends() {
    let lab = Lab::start();
    let uid = lab.submit(&network_chaos(
        "bandwidth",
        &lab.topo.b_ip,
        "60s",
        "  action: bandwidth\n  bandwidth: {rate: 8mbit, limit: 100000, buffer: 10000}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let during = upload_rate(&lab, 1_500_000);
    lab.stop(&uid);
    let after = upload_rate(&lab, 1_500_000);
    eprintln!("bandwidth 8mbit: {during:.2} Mbit/s limited, {after:.1} Mbit/s after");
    assert!(
        (6.8..=9.2).contains(&during),
        "{during:.2} Mbit/s for 8mbit"
    );
    assert!(after > 40.0, "the limit is gone after recovery: {after:.1}");
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    chaoshub_testkit::measured!(
        "NetworkChaos/bandwidth",
        "native",
        format!(
            "{during:.2} Mbit/s TCP upload to the peer for 8mbit ({after:.0} Mbit/s after recovery)"
        ),
        mechanism = mechanism(&running)
    );
}

/// Whether a TCP echo round trip from A to B completes within 1 s.
fn reaches_peer(lab: &Lab) -> bool {
    let to = lab.peer.tcp;
    in_ns(&lab.topo.a, move || {
        let Ok(mut conn) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut byte = [0u8; 1];
        conn.write_all(b"x").is_ok() && conn.read_exact(&mut byte).is_ok()
    })
}

/// Submits a partition, checks B unreachable from A while it holds and reachable after.
fn partition_cut(lab: &Lab, manifest: &str) -> String {
    assert!(reaches_peer(lab), "B is reachable before the fault");
    let uid = lab.submit(manifest);
    let running = lab.api.wait_phase(&uid, "Running", T);
    let during = reaches_peer(lab);
    lab.stop(&uid);
    assert!(!during, "B answered through the partition");
    assert!(reaches_peer(lab), "B unreachable after recovery");
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    mechanism(&running)
}

#[test]
fn native_partition_from_an_external_address() {
    let lab = Lab::start();
    let mechanism = partition_cut(
        &lab,
        &network_chaos("cut", &lab.topo.b_ip, "60s", "  action: partition\n"),
    );
    chaoshub_testkit::measured!(
        "NetworkChaos/partition (externalTargets address)",
        "native",
        "TCP to the listed address failed within 1 s while partitioned, answered after recovery",
        mechanism = mechanism
    );
}

#[test]
fn native_partition_from_an_external_host_name() {
    let name = "chaoshub-peer-b";
    let lab = Lab::start_with_peer_name(name);
    let mechanism = partition_cut(
        &lab,
        &unfiltered(
            "cut-name",
            "60s",
            &format!("  action: partition\n  externalTargets: [{name}]\n"),
        ),
    );
    chaoshub_testkit::measured!(
        "NetworkChaos/partition (externalTargets host name)",
        "native",
        "TCP to a name only the agent's /etc/hosts knows failed within 1 s while partitioned, answered after recovery",
        mechanism = mechanism
    );
}

#[test]
fn native_physical_machine_network_delay() {
    let lab = Lab::start();
    let (added, mechanism) = delay_added(
        &lab,
        &physical(
            "pm-delay",
            "network-delay",
            &format!("{{latency: 100ms, ip-address: '{}'}}", lab.topo.b_ip),
            "60s",
        ),
    );
    assert!(
        (90.0..=110.0).contains(&ms(added)),
        "added {added:?} for 100ms"
    );
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/network-delay",
        "native",
        format!("+{:.0} ms TCP RTT to ip-address for 100ms", ms(added)),
        mechanism = mechanism
    );
}

/// `(pid, ppid, utime + stime ticks, VmRSS bytes)` of every process.
fn processes() -> Vec<(u32, u32, u64, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the comm: state(0) ppid(1) … utime(11) stime(12).
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|k| k.parse::<u64>().ok())
                })
            })
            .unwrap_or(0)
            * 1024;
        out.push((pid, num(1) as u32, num(11) + num(12), rss));
    }
    out
}

/// CPU ticks and resident bytes of `root` and its descendants (the agent and any stress
/// process it started).
fn tree_usage(root: u32) -> (u64, u64) {
    let all = processes();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    all.iter()
        .filter(|p| tree.contains(&p.0))
        .fold((0, 0), |(t, r), p| (t + p.2, r + p.3))
}

/// CPU-seconds per second the agent's process tree used over `secs`.
fn cpu_rate(pid: u32, secs: u64) -> f64 {
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let (a, _) = tree_usage(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let (b, _) = tree_usage(pid);
    (b - a) as f64 / ticks_per_sec / secs as f64
}

/// The agent's heartbeats carry its host's usage: the hub's series holds a sample a second
/// with the stress visible in it, and the console's page of the experiment charts it.
fn host_usage_is_charted(lab: &Lab, uid: &str) {
    let series = lab.api.get("/api/v1/agents/hosts/agent-a/usage");
    let items = series["items"].as_array().unwrap();
    assert!(items.len() >= 3, "a sample per heartbeat: {series:#}");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let peak = items
        .iter()
        .map(|u| u["cpuPercent"].as_f64().unwrap())
        .fold(0.0, f64::max);
    for u in items {
        let cpu = u["cpuPercent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{u}");
        assert!(u["memTotalBytes"].as_u64().unwrap() > 0, "{u}");
        assert!(
            u["memUsedBytes"].as_u64() <= u["memTotalBytes"].as_u64(),
            "{u}"
        );
    }
    // The stress alone keeps a tenth of a core busy (checked above from the process tree):
    // the host-wide share cannot be below that.
    assert!(
        peak >= 10.0 / cpus * 0.8,
        "host CPU peaked at {peak:.1} % during a stress ({cpus} CPUs): {series:#}"
    );
    let since = items.last().unwrap()["at"].as_str().unwrap();
    let later = lab
        .api
        .get(&format!("/api/v1/agents/hosts/agent-a/usage?since={since}"));
    assert!(later["items"].as_array().unwrap().len() < items.len());
    let (code, bad) = lab.api.call(
        reqwest::Method::GET,
        "/api/v1/agents/hosts/agent-a/usage?since=yesterday",
        None,
    );
    assert_eq!(code, 400, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("since"), "{bad}");

    // The console: log in with the admin token, then the experiment's page.
    let browser = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{}/login", lab.hub.url))
        .form(&[("token", lab.hub.token.as_str()), ("next", "/")])
        .send()
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = browser
        .get(format!("{}/experiments/{uid}", lab.hub.url))
        .header("cookie", cookie.clone())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("<h2 id=\"usage\">Agent hosts</h2>"), "{page}");
    assert!(page.contains("<svg class=\"chart usage\""), "{page}");
    assert!(page.contains("class=\"fault-window\""), "{page}");
    let envs = browser
        .get(format!("{}/environments", lab.hub.url))
        .header("cookie", cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        envs.contains("CPU ") && envs.contains(" GiB · load "),
        "{envs}"
    );
}

/// A CPU stress through the hub: the agent's tree uses CPU while it holds, almost none after.
fn cpu_stress_cell(manifest: &str) -> (f64, f64) {
    let lab = Lab::start();
    let pid = lab.agent.child.id();
    let idle = cpu_rate(pid, 1);
    let uid = lab.submit(manifest);
    lab.api.wait_phase(&uid, "Running", T);
    let busy = cpu_rate(pid, 3);
    host_usage_is_charted(&lab, &uid);
    lab.stop(&uid);
    std::thread::sleep(Duration::from_millis(300));
    let after = cpu_rate(pid, 2);
    eprintln!("agent CPU: {idle:.2} idle, {busy:.2} stressed, {after:.2} after");
    // Two cores shared by parallel builds: the bar is a tenth of a core, not the load asked.
    assert!(
        busy >= 0.1,
        "the stress used {busy:.2} CPU-seconds per second"
    );
    assert!(
        after < 0.1,
        "still {after:.2} CPU-seconds per second after recovery"
    );
    (busy, after)
}

#[test]
fn native_stress_chaos_cpu() {
    let (busy, after) = cpu_stress_cell(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {name: cpu}\nspec:\n  environment: hosts\n  mode: all\n  selector:\n    labelSelectors: {role: app}\n  stressors:\n    cpu: {workers: 1, load: 50}\n  duration: 60s\n",
    );
    chaoshub_testkit::measured!(
        "StressChaos/cpu",
        "native",
        format!(
            "{busy:.2} CPU-seconds per second used by 1 worker at load 50 (shared 2-core machine); {after:.2} after recovery"
        )
    );
}

#[test]
fn native_physical_machine_stress_cpu() {
    let (busy, after) = cpu_stress_cell(&physical(
        "pm-cpu",
        "stress-cpu",
        "{workers: 1, load: 50}",
        "60s",
    ));
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/stress-cpu",
        "native",
        format!(
            "{busy:.2} CPU-seconds per second used by 1 worker at load 50 (shared 2-core machine); {after:.2} after recovery"
        )
    );
}

#[test]
fn native_stress_chaos_memory() {
    let lab = Lab::start();
    let pid = lab.agent.child.id();
    let (_, before) = tree_usage(pid);
    let uid = lab.submit(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {name: mem}\nspec:\n  environment: hosts\n  mode: all\n  selector:\n    labelSelectors: {role: app}\n  stressors:\n    memory: {workers: 1, size: 128MB}\n  duration: 60s\n",
    );
    lab.api.wait_phase(&uid, "Running", T);
    // The worker may still be touching its pages right after confirmation.
    let start = Instant::now();
    let mut held = 0;
    while start.elapsed() < Duration::from_secs(10) {
        held = tree_usage(pid).1.saturating_sub(before);
        if held >= 120_000_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.stop(&uid);
    std::thread::sleep(Duration::from_millis(500));
    let after = tree_usage(pid).1.saturating_sub(before);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "memory 128MB: {:.1} MiB held, {:.1} MiB after",
        mib(held),
        mib(after)
    );
    assert!(held >= 120_000_000, "only {held} bytes resident for 128MB");
    assert!(
        after < 32 << 20,
        "{after} bytes still resident after recovery"
    );
    chaoshub_testkit::measured!(
        "StressChaos/memory",
        "native",
        format!(
            "{:.1} MiB more resident in the agent's process tree for 128MB; {:.1} MiB after recovery",
            mib(held),
            mib(after)
        )
    );
}

/// Bytes the agent's process has written (`wchar` of `/proc/PID/io`).
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("wchar:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[test]
fn native_physical_machine_disk_write_payload() {
    let lab = Lab::start();
    let pid = lab.agent.child.id();
    let dir = lab.dir.path().join("payload");
    std::fs::create_dir_all(&dir).unwrap();
    let uid = lab.submit(&physical(
        "pm-write",
        "disk-write-payload",
        &format!(
            "{{path: '{}', size: 8MB, payload-process-num: 1}}",
            dir.display()
        ),
        "60s",
    ));
    lab.api.wait_phase(&uid, "Running", T);
    let a = written(pid);
    std::thread::sleep(Duration::from_secs(2));
    let rate = (written(pid) - a) as f64 / 2.0 / 1e6;
    let files = std::fs::read_dir(&dir).unwrap().count();
    lab.stop(&uid);
    std::thread::sleep(Duration::from_millis(300));
    let b = written(pid);
    std::thread::sleep(Duration::from_secs(1));
    let after = (written(pid) - b) as f64 / 1e6;
    let left = std::fs::read_dir(&dir).unwrap().count();
    eprintln!("write payload: {rate:.1} MB/s into {files} file(s); {after:.2} MB/s after, {left} file(s) left");
    assert!(rate > 1.0, "only {rate:.2} MB/s written");
    assert!(files >= 1, "no payload file");
    assert!(after < 0.5, "still writing {after:.2} MB/s after recovery");
    assert_eq!(left, 0, "payload files removed");
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/disk-write-payload",
        "native",
        format!(
            "{rate:.0} MB/s written by the agent into 1 payload file of 8MB; no writes and no file after recovery"
        )
    );
}

/// What every A query gets from the lab's DNS server in B.
const DNS_ANSWER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 53, 53);

/// A DNS server on B's address, port 53: answers every query that has one question with that
/// question and one A record, `DNS_ANSWER`, TTL 0 (the minimal wire form of RFC 1035 §4.1, the
/// answer's name a pointer to the question). Stops when dropped.
struct DnsServer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    fn start(lab: &Lab) -> DnsServer {
        use std::sync::atomic::Ordering;
        let addr: SocketAddr = format!("{}:53", lab.topo.b_ip).parse().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (b, flag) = (lab.topo.b.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            in_ns(&b, move || {
                let sock = UdpSocket::bind(addr).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                ready_tx.send(()).unwrap();
                let mut buf = [0u8; 512];
                while !flag.load(Ordering::SeqCst) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = dns_reply(&buf[..n]) {
                        let _ = sock.send_to(&reply, from);
                    }
                }
            })
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        DnsServer {
            stop,
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server's answer to `query`: same id, QR and RA set, RD copied, the question echoed, one
/// A record.
fn dns_reply(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    // The question: labels up to the root, then QTYPE and QCLASS.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    end += 5;
    let question = query.get(12..end)?;
    let mut reply = vec![query[0], query[1], 0x80 | (query[2] & 0x01), 0x80];
    reply.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
    reply.extend_from_slice(&DNS_ANSWER.octets());
    Some(reply)
}

/// What one lookup got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// RCODE 0 with this first A address.
    Address(std::net::Ipv4Addr),
    /// RCODE 0 without an A record.
    Empty,
    /// An error RCODE (2 SERVFAIL, 3 NXDOMAIN…).
    Rcode(u8),
    /// Nothing within a second.
    Timeout,
}

/// An A query for `name` with id `id`, recursion desired.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Reads the answer to `query` (same id): its RCODE and the first A record after the question.
fn dns_answer(query: &[u8], msg: &[u8]) -> Option<Lookup> {
    if msg.len() < query.len() || msg[..2] != query[..2] || msg[2] & 0x80 == 0 {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Some(Lookup::Rcode(rcode));
    }
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    // The first record, after the echoed question: a 2-byte name pointer, type, class, TTL,
    // length, data.
    let rr = &msg[query.len()..];
    if answers == 0 || rr.len() < 16 || rr[2..4] != [0, 1] || rr[10..12] != [0, 4] {
        return Some(Lookup::Empty);
    }
    Some(Lookup::Address(std::net::Ipv4Addr::new(
        rr[12], rr[13], rr[14], rr[15],
    )))
}

/// Looks every name up from namespace A against `server`, one query at a time (ids 1…), and
/// returns what each got, in order.
fn lookups(lab: &Lab, server: SocketAddr, names: Vec<String>) -> Vec<Lookup> {
    in_ns(&lab.topo.a, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 512];
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let query = dns_query(i as u16 + 1, name);
                sock.send_to(&query, server).unwrap();
                let sent = Instant::now();
                while sent.elapsed() < Duration::from_secs(1) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        if let Some(got) = dns_answer(&query, &buf[..n]) {
                            return got;
                        }
                    }
                }
                Lookup::Timeout
            })
            .collect()
    })
}

/// Lookups of `matching` and `other` names, interleaved, split back into the two groups.
fn lookups_of(
    lab: &Lab,
    server: SocketAddr,
    matching: &[String],
    other: &[String],
) -> (Vec<Lookup>, Vec<Lookup>) {
    let names = matching
        .iter()
        .zip(other)
        .flat_map(|(m, o)| [m.clone(), o.clone()])
        .collect();
    let all = lookups(lab, server, names);
    (
        all.iter().step_by(2).copied().collect(),
        all.iter().skip(1).step_by(2).copied().collect(),
    )
}

fn share(results: &[Lookup], pred: impl Fn(&Lookup) -> bool) -> f64 {
    100.0 * results.iter().filter(|r| pred(r)).count() as f64 / results.len() as f64
}

/// What a DNS fault did: the share of matching lookups it changed the way the mode says, the
/// share of other lookups answered unchanged, the mechanism, and the lookups after recovery.
struct DnsEffect {
    changed: f64,
    untouched: f64,
    mechanism: String,
    lookups: usize,
}

const DNS_LOOKUPS: usize = 200;

/// Runs `manifest` against the lab's DNS server: `DNS_LOOKUPS` lookups of names the fault's
/// patterns match (`matching(i)`) and as many of names they do not (`other(i)`), while it holds
/// and after it ended. `changed` says whether a matching lookup got what the mode promises.
fn dns_effect(
    manifest: &str,
    matching: impl Fn(usize) -> String,
    other: impl Fn(usize) -> String,
    changed: impl Fn(&Lookup) -> bool,
) -> DnsEffect {
    let lab = Lab::start();
    let server = DnsServer::start(&lab);
    let matching: Vec<String> = (0..DNS_LOOKUPS).map(matching).collect();
    let other: Vec<String> = (0..DNS_LOOKUPS).map(other).collect();
    let normal = Lookup::Address(DNS_ANSWER);
    let (before, _) = lookups_of(&lab, server.addr, &matching[..10], &other[..10]);
    assert!(before.iter().all(|l| *l == normal), "before: {before:?}");

    let uid = lab.submit(manifest);
    let running = lab.api.wait_phase(&uid, "Running", T);
    let (hit, missed) = lookups_of(&lab, server.addr, &matching, &other);
    lab.stop(&uid);
    let (after_hit, after_missed) = lookups_of(&lab, server.addr, &matching, &other);
    drop(server);

    let effect = DnsEffect {
        changed: share(&hit, &changed),
        untouched: share(&missed, |l| *l == normal),
        mechanism: mechanism(&running),
        lookups: DNS_LOOKUPS,
    };
    let after = share(&after_hit, |l| *l == normal).min(share(&after_missed, |l| *l == normal));
    let odd: Vec<_> = hit.iter().filter(|l| !changed(l)).take(5).collect();
    eprintln!(
        "dns: {:.1} % of matching lookups changed (first others: {odd:?}), {:.1} % of the rest untouched, {after:.1} % normal after",
        effect.changed, effect.untouched
    );
    assert!(effect.changed >= 99.0, "{:.1} % changed", effect.changed);
    assert_eq!(effect.untouched, 100.0, "{missed:?}");
    assert_eq!(after, 100.0, "after: {after_hit:?} {after_missed:?}");
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
    effect
}

#[test]
fn native_physical_machine_network_dns() {
    let effect = dns_effect(
        &physical(
            "pm-dns",
            "network-dns",
            "{dns-domain-name: '*.blocked.test'}",
            "60s",
        ),
        |i| format!("n{i}.blocked.test"),
        |i| format!("n{i}.allowed.test"),
        |l| *l == Lookup::Rcode(2),
    );
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/network-dns",
        "native",
        format!(
            "{:.1} % of {n} lookups matching dns-domain-name answered SERVFAIL, {:.1} % of {n} others answered unchanged; all answered unchanged after recovery",
            effect.changed,
            effect.untouched,
            n = effect.lookups
        ),
        mechanism = effect.mechanism
    );
}

/// A DNSChaos on the agent, with patterns that use both placeholders (`?`, a trailing `*`).
fn dns_chaos(name: &str, action: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: DNSChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: hosts\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{role: app}}\n  patterns: ['api-?.chaos.*', 'db.chaos.test']\n  duration: 60s\n"
    )
}

/// Names the DNSChaos patterns above match: `api-<digit>.chaos.<anything>` and `db.chaos.test`.
fn dns_chaos_matching(i: usize) -> String {
    if i % 4 == 3 {
        "db.chaos.test".to_string()
    } else {
        format!("api-{}.chaos.n{i}.test", i % 10)
    }
}

/// Names they do not: two characters where `?` takes one, a sub-domain of the exact name.
fn dns_chaos_other(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("api-{}.chaos.n{i}.test", 10 + i % 10)
    } else {
        format!("n{i}.db.chaos.test")
    }
}

#[test]
fn native_dns_chaos_error() {
    let effect = dns_effect(
        &dns_chaos("dns-error", "error"),
        dns_chaos_matching,
        dns_chaos_other,
        |l| *l == Lookup::Rcode(2),
    );
    chaoshub_testkit::measured!(
        "DNSChaos/error",
        "native",
        format!(
            "{:.1} % of {n} lookups matching the patterns answered SERVFAIL, {:.1} % of {n} others answered unchanged; all answered unchanged after recovery",
            effect.changed,
            effect.untouched,
            n = effect.lookups
        ),
        mechanism = effect.mechanism
    );
}

#[test]
fn native_dns_chaos_random() {
    let effect = dns_effect(
        &dns_chaos("dns-random", "random"),
        dns_chaos_matching,
        dns_chaos_other,
        |l| matches!(l, Lookup::Address(a) if *a != DNS_ANSWER),
    );
    chaoshub_testkit::measured!(
        "DNSChaos/random",
        "native",
        format!(
            "{:.1} % of {n} lookups matching the patterns answered with another address than the server's, {:.1} % of {n} others answered unchanged; all answered unchanged after recovery",
            effect.changed,
            effect.untouched,
            n = effect.lookups
        ),
        mechanism = effect.mechanism
    );
}
