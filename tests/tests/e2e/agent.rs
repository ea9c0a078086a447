//! The native agent end to end: a real `chaoshub` and a real `chaos-agent` running inside a
//! test network namespace (A), a peer namespace (B) joined to A by a veth pair, and faults
//! submitted to the hub as Chaos Mesh manifests. Effects are measured on real traffic between
//! A and B; the hub's own gRPC link to the agent runs over a second veth pair and is left
//! untouched because every fault here is filtered to B's address. Runs as root (as CI does).

use std::time::{Duration, Instant};

use super::netns::*;
use super::support::*;

/// A hub on the host end of A's veth, an environment `hosts` of adapter `native`, and one
/// agent in A, registered and healthy.
struct Lab {
    topo: Topology,
    peer: PeerServices,
    hub: HubProcess,
    api: Api,
    agent: AgentProcess,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let topo = Topology::new();
        let peer = PeerServices::start(&topo.b, &topo.b_ip);
        let hub = HubProcess::start_listening(dir.path(), &format!("{}:0", topo.hub_ip));
        let api = Api::new(&hub.url);
        let (code, v) = api.post(
            "/api/v1/environments",
            Some("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: hosts}\nspec: {adapter: native}\n"),
        );
        assert_eq!(code, 201, "{v}");
        let agent = AgentProcess::start(
            &topo.a,
            &hub.url,
            "hosts",
            "agent-a",
            &dir.path().join("agent-state"),
        );
        let lab = Lab {
            topo,
            peer,
            hub,
            api,
            agent,
            dir,
        };
        lab.wait_agent("healthy");
        lab
    }

    fn wait_agent(&self, health: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.api.get("/api/v1/agents?env=hosts");
            if let Some(a) = v["items"]
                .as_array()
                .and_then(|items| items.iter().find(|a| a["name"] == "agent-a"))
            {
                if a["health"] == health {
                    return a.clone();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "agent never became {health}: {v:#}\n{}",
                self.agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn submit(&self, yaml: &str) -> String {
        let (code, v) = self.api.post("/api/v1/experiments", Some(yaml));
        assert_eq!(code, 201, "{v:#}");
        uid(&v)
    }
}

fn network_chaos(name: &str, b_ip: &str, duration: &str, body: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: hosts\n  mode: all\n  selector:\n    labelSelectors: {{role: app}}\n  externalTargets: [\"{b_ip}\"]\n  duration: {duration}\n{body}"
    )
}

#[test]
fn agents_register_heartbeat_and_are_targets() {
    let mut lab = Lab::start();
    let agent = lab.wait_agent("healthy");
    assert_eq!(agent["labels"]["role"], "app");
    assert!(agent["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == lab.topo.a_ip.as_str()));
    assert!(agent["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "NetworkChaos/loss"));
    assert_eq!(agent["mechanisms"]["netem"], serde_json::json!(false));
    let targets = lab.api.get("/api/v1/environments/hosts/targets");
    assert_eq!(targets["items"][0]["id"], "agent-a");
    assert_eq!(targets["items"][0]["kind"], "host");
    // Missed heartbeats: the hub marks it disconnected once the stream is gone.
    lab.agent.kill9();
    lab.wait_agent("disconnected");
    let _ = &lab.dir;
}

#[test]
fn delay_through_the_hub_is_confirmed_measured_and_removed() {
    let lab = Lab::start();
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 41);
    let uid = lab.submit(&network_chaos(
        "slow-peer",
        &lab.topo.b_ip,
        "6s",
        "  action: delay\n  delay: {latency: 100ms}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let record = &running["status"]["targets"][0];
    let details = record.to_string();
    assert!(
        details.contains("mechanism"),
        "the chosen mechanism is visible in status: {running:#}"
    );
    let delayed = median_rtt(&lab.topo.a, lab.peer.tcp, 41);
    let added = delayed.saturating_sub(baseline).as_secs_f64() * 1000.0;
    eprintln!("baseline {baseline:?}, delayed {delayed:?}, added {added:.1} ms");
    assert!(
        (90.0..=110.0).contains(&added),
        "added latency {added:.1} ms, expected 100 ± 10 %"
    );
    let finished = lab.api.wait_phase(&uid, "Finished", T);
    assert_eq!(finished["status"]["phase"], "Finished");
    let after = median_rtt(&lab.topo.a, lab.peer.tcp, 41);
    assert!(
        after < baseline + Duration::from_millis(10),
        "after recovery {after:?} vs baseline {baseline:?}"
    );
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
}

#[test]
fn loss_through_the_hub_drops_the_requested_share() {
    let lab = Lab::start();
    let uid = lab.submit(&network_chaos(
        "lossy-peer",
        &lab.topo.b_ip,
        "30s",
        "  action: loss\n  loss: {loss: \"30\"}\n",
    ));
    lab.api.wait_phase(&uid, "Running", T);
    let sent = 3000;
    send_udp(&lab.topo.a, lab.peer.udp, sent);
    std::thread::sleep(Duration::from_millis(300));
    let received = lab
        .peer
        .udp_received
        .swap(0, std::sync::atomic::Ordering::SeqCst);
    let loss = 100.0 * (sent as f64 - received as f64) / sent as f64;
    eprintln!("sent {sent}, received {received}, loss {loss:.1} %");
    assert!(
        (25.0..=35.0).contains(&loss),
        "observed loss {loss:.1} %, expected 30 ± 5"
    );
    let (code, v) = lab
        .api
        .post(&format!("/api/v1/experiments/{uid}/stop"), None);
    assert_eq!(code, 200, "{v}");
    lab.api.wait_phase(&uid, "Aborted", T);
    send_udp(&lab.topo.a, lab.peer.udp, 500);
    std::thread::sleep(Duration::from_millis(300));
    let received = lab
        .peer
        .udp_received
        .swap(0, std::sync::atomic::Ordering::SeqCst);
    assert!(
        received >= 495,
        "after recovery only {received}/500 arrived"
    );
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
}

/// The dead man's switch: with the hub gone, the agent removes the fault at its lease end.
#[test]
fn the_agent_removes_the_fault_on_time_when_the_hub_is_gone() {
    let mut lab = Lab::start();
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(&network_chaos(
        "orphan",
        &lab.topo.b_ip,
        "5s",
        "  action: delay\n  delay: {latency: 100ms}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let deadline: chrono::DateTime<chrono::Utc> = running["status"]["targets"][0]["details"]
        ["leaseUntil"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no lease in {running:#}"));
    lab.hub.kill9();
    assert!(median_rtt(&lab.topo.a, lab.peer.tcp, 5) > baseline + Duration::from_millis(80));
    // Poll until the fault is gone; it must happen within 1 s after the deadline.
    loop {
        if lab.topo.leftovers().is_empty()
            && median_rtt(&lab.topo.a, lab.peer.tcp, 3) < baseline + Duration::from_millis(20)
        {
            break;
        }
        let late = chrono::Utc::now() - deadline;
        assert!(
            late < chrono::Duration::milliseconds(1000),
            "the fault is still in place {late} after its deadline: {:?}",
            lab.topo.leftovers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let late = chrono::Utc::now() - deadline;
    eprintln!(
        "fault gone {} ms after its deadline",
        late.num_milliseconds()
    );
}

/// The journal: SIGKILL the agent mid-fault; its restart removes the fault within a second.
#[test]
fn a_restarted_agent_removes_what_its_journal_lists() {
    let mut lab = Lab::start();
    let uid = lab.submit(&network_chaos(
        "journalled",
        &lab.topo.b_ip,
        "60s",
        "  action: loss\n  loss: {loss: \"50\"}\n",
    ));
    lab.api.wait_phase(&uid, "Running", T);
    assert!(!lab.topo.leftovers().is_empty(), "the fault is in place");
    lab.agent.kill9();
    assert!(
        !lab.topo.leftovers().is_empty(),
        "a SIGKILLed agent cannot clean up; the fault stays until restart"
    );
    let started = Instant::now();
    lab.agent = AgentProcess::start(
        &lab.topo.a,
        &lab.hub.url,
        "hosts",
        "agent-a",
        &lab.dir.path().join("agent-state"),
    );
    loop {
        if lab.topo.leftovers().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not removed {:?} after restart: {:?}",
            started.elapsed(),
            lab.topo.leftovers()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "journal replay removed the fault {:?} after the agent started",
        started.elapsed()
    );
    // The hub learns the fault is gone and can still end the experiment cleanly.
    lab.wait_agent("healthy");
    let (code, _) = lab
        .api
        .post(&format!("/api/v1/experiments/{uid}/stop"), None);
    assert_eq!(code, 200);
    lab.api.wait_phase(&uid, "Aborted", T);
}

/// PhysicalMachineChaos `process` with SIGSTOP: a real process is stopped, then continued.
#[test]
fn a_real_process_is_stopped_and_continued() {
    let lab = Lab::start();
    let mut child = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .unwrap();
    let pid = child.id();
    let state = |pid: u32| -> char {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().and_then(|r| r.trim().chars().next()))
            .unwrap_or('?')
    };
    let uid = lab.submit(&format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: freeze}}\nspec:\n  environment: hosts\n  action: process\n  mode: one\n  selector:\n    labelSelectors: {{role: app}}\n  process: {{process: \"{pid}\", signal: 19}}\n  duration: 3s\n"
    ));
    lab.api.wait_phase(&uid, "Running", T);
    assert_eq!(state(pid), 'T', "stopped while the experiment runs");
    lab.api.wait_phase(&uid, "Finished", T);
    assert_ne!(state(pid), 'T', "continued after recovery");
    let _ = child.kill();
    let _ = child.wait();
}

/// Host clock skew is declared by the native adapter, but an agent started without
/// `--allow-clock-skew` does not offer it: the submission is a 422 that names the agent and the
/// missing opt-in, instead of saying the adapter supports it.
#[test]
fn clock_skew_without_the_agents_opt_in_is_a_422_naming_it() {
    let lab = Lab::start();
    let (code, v) = lab.api.post(
        "/api/v1/experiments",
        Some("apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {name: skew}\nspec:\n  environment: hosts\n  action: clock\n  mode: all\n  selector:\n    labelSelectors: {role: app}\n  clock: {time-offset: '-5m'}\n  duration: 10s\n"),
    );
    assert_eq!(code, 422, "{v:#}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("agent-a") && message.contains("--allow-clock-skew"),
        "{message}"
    );
    // A TimeChaos is refused with the nearest thing the agent does run.
    let (code, v) = lab.api.post(
        "/api/v1/experiments",
        Some("apiVersion: chaos-mesh.org/v1alpha1\nkind: TimeChaos\nmetadata: {name: skew}\nspec:\n  environment: hosts\n  mode: all\n  selector:\n    labelSelectors: {role: app}\n  timeOffset: '-5m'\n  duration: 10s\n"),
    );
    assert_eq!(code, 422, "{v:#}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("PhysicalMachineChaos action clock"),
        "{message}"
    );
}

/// Every TCP round trip (1-byte echo) from `ns` to `to`, one connection, `n` of them.
fn rtt_samples(ns: &str, to: std::net::SocketAddr, n: usize) -> Vec<Duration> {
    use std::io::{Read, Write};
    in_ns(ns, move || {
        let mut conn = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        conn.set_nodelay(true).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1];
        (0..n)
            .map(|_| {
                let t = Instant::now();
                conn.write_all(b"x").unwrap();
                conn.read_exact(&mut buf).unwrap();
                t.elapsed()
            })
            .collect()
    })
}

/// NetworkChaos `delay` with `reorder` through the hub: the agent holds the packets it does not
/// reorder for the latency and sends the reordered share at once, so that share of round trips
/// stays fast while the rest carry the latency; all of it is gone after the experiment.
#[test]
fn delay_with_reorder_sends_the_reordered_share_at_once() {
    let lab = Lab::start();
    let uid = lab.submit(&network_chaos(
        "reorder-peer",
        &lab.topo.b_ip,
        "12s",
        "  action: delay\n  delay: {latency: 60ms, reorder: {reorder: '50', correlation: '0', gap: 1}}\n",
    ));
    lab.api.wait_phase(&uid, "Running", T);
    let samples = rtt_samples(&lab.topo.a, lab.peer.tcp, 120);
    let held = samples
        .iter()
        .filter(|d| **d >= Duration::from_millis(45))
        .count();
    let share_at_once = 100.0 * (samples.len() - held) as f64 / samples.len() as f64;
    eprintln!(
        "reorder 50% at 60ms: {share_at_once:.1}% of {} round trips went at once, {held} held",
        samples.len()
    );
    assert!(
        (35.0..=65.0).contains(&share_at_once),
        "{share_at_once:.1}% sent at once, expected 50 ± 15"
    );
    lab.api.wait_phase(&uid, "Finished", T);
    let after = median_rtt(&lab.topo.a, lab.peer.tcp, 41);
    assert!(
        after < Duration::from_millis(20),
        "after recovery {after:?}"
    );
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
}
