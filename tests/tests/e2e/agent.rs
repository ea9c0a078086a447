//! The native agent end to end: a real `chaoshub` and a real `chaos-agent` running inside a
//! test network namespace (A), a peer namespace (B) joined to A by a veth pair, and faults
//! submitted to the hub as Chaos Mesh manifests. Effects are measured on real traffic between
//! A and B; the hub's own gRPC link to the agent runs over a second veth pair and is left
//! untouched because every fault here is filtered to B's address. Runs as root (as CI does).
//!
//! Agents join the way a user's do: a join token from the hub's API, `--join-token-file`, then
//! the credential the hub issued (kept in the agent's state dir).

use std::time::{Duration, Instant};

use super::netns::*;
use super::support::*;

/// A hub on the host end of A's veth, an environment `hosts` of adapter `native`, and one
/// agent in A, registered and healthy.
pub(super) struct Lab {
    pub(super) topo: Topology,
    pub(super) peer: PeerServices,
    pub(super) hub: HubProcess,
    pub(super) api: Api,
    pub(super) agent: AgentProcess,
    pub(super) dir: tempfile::TempDir,
    pub(super) join_token_file: std::path::PathBuf,
    /// `/etc/netns/<A>/`, when the lab gave A its own `/etc/hosts`.
    _etc: Option<NetnsEtc>,
}

/// `/etc/netns/<ns>/hosts`: `ip netns exec` bind-mounts it over `/etc/hosts` for the processes
/// it starts, so the agent in A resolves names only A knows. Removed on drop.
struct NetnsEtc(std::path::PathBuf);

impl NetnsEtc {
    fn hosts(ns: &str, text: &str) -> NetnsEtc {
        let dir = std::path::Path::new("/etc/netns").join(ns);
        let guard = NetnsEtc(dir.clone());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), text).unwrap();
        guard
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a join token for `env` through the API and writes it to `dir/<env>.token`.
fn join_token(api: &Api, env: &str, dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let (code, v) = api.post(&format!("/api/v1/environments/{env}/join-tokens"), None);
    assert_eq!(code, 201, "{v}");
    let token = v["token"].as_str().expect("the token is in the answer");
    let path = dir.join(format!("{env}.token"));
    std::fs::write(&path, token).unwrap();
    (path, v["id"].as_str().unwrap().to_string())
}

impl Lab {
    pub(super) fn start() -> Lab {
        Self::start_full("", &[], None)
    }

    /// A lab whose hub gets extra `[engine]` settings.
    fn start_with_engine(engine_extra: &str) -> Lab {
        Self::start_full(engine_extra, &[], None)
    }

    /// A lab whose agent also gets `extra` flags (e.g. `--allow user-defined`).
    pub(super) fn start_with(extra: &[&str]) -> Lab {
        Self::start_full("", extra, None)
    }

    /// A lab whose agent resolves `name` to B's address, through an `/etc/hosts` only A has.
    pub(super) fn start_with_peer_name(name: &str) -> Lab {
        Self::start_full("", &[], Some(name))
    }

    fn start_full(engine_extra: &str, extra: &[&str], peer_name: Option<&str>) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let topo = Topology::new();
        let etc = peer_name.map(|name| {
            NetnsEtc::hosts(
                &topo.a,
                &format!("127.0.0.1 localhost\n{} {name}\n", topo.b_ip),
            )
        });
        let peer = PeerServices::start(&topo.b, &topo.b_ip);
        let hub =
            HubProcess::start_with_engine(dir.path(), &format!("{}:0", topo.hub_ip), engine_extra);
        let api = Api::new(&hub.url);
        let (code, v) = api.post(
            "/api/v1/environments",
            Some("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: hosts}\nspec: {adapter: native}\n"),
        );
        assert_eq!(code, 201, "{v}");
        let (join_token_file, _) = join_token(&api, "hosts", dir.path());
        let agent = Self::agent(&topo, &hub, dir.path(), &join_token_file, extra);
        let lab = Lab {
            topo,
            peer,
            hub,
            api,
            agent,
            dir,
            join_token_file,
            _etc: etc,
        };
        lab.wait_agent("healthy");
        lab.wait_credential();
        lab
    }

    /// The hub lists an agent as soon as it admitted it; the agent stores its credential a
    /// moment later. Tests that restart the agent wait for the file.
    fn wait_credential(&self) {
        let file = self.dir.path().join("agent-state/hub-credential.json");
        let start = Instant::now();
        while !file.exists() {
            assert!(
                start.elapsed() < T,
                "no credential stored:\n{}",
                self.agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn agent(
        topo: &Topology,
        hub: &HubProcess,
        dir: &std::path::Path,
        join_token_file: &std::path::Path,
        extra: &[&str],
    ) -> AgentProcess {
        let mut args = vec!["--join-token-file", join_token_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        AgentProcess::start(
            &topo.a,
            &hub.url,
            "hosts",
            "agent-a",
            &dir.join("agent-state"),
            &args,
        )
    }

    /// Replaces the agent process (same state dir, so the same credential and journal).
    fn restart_agent(&mut self, extra: &[&str]) {
        self.agent.kill9();
        self.agent = Self::agent(
            &self.topo,
            &self.hub,
            self.dir.path(),
            &self.join_token_file,
            extra,
        );
    }

    /// Stops an experiment through the API and waits until it is `Aborted`.
    pub(super) fn stop(&self, uid: &str) {
        let (code, v) = self
            .api
            .post(&format!("/api/v1/experiments/{uid}/stop"), None);
        assert_eq!(code, 200, "{v}");
        self.api.wait_phase(uid, "Aborted", T);
    }

    /// Sends `sent` UDP packets from A to B's counter and returns the share lost, in percent.
    pub(super) fn measured_udp_loss(&self, sent: usize) -> f64 {
        send_udp(&self.topo.a, self.peer.udp, sent);
        std::thread::sleep(Duration::from_millis(300));
        let received = self
            .peer
            .udp_received
            .swap(0, std::sync::atomic::Ordering::SeqCst);
        let loss = 100.0 * (sent as f64 - received as f64) / sent as f64;
        eprintln!("sent {sent}, received {received}, loss {loss:.1} %");
        loss
    }

    pub(super) fn wait_agent(&self, health: &str) -> serde_json::Value {
        wait_agent_health(
            &self.api,
            "hosts",
            "agent-a",
            health,
            Duration::from_secs(20),
            || self.agent.log(),
        )
    }

    /// Waits until the hub no longer answers (it was killed).
    fn wait_agent_gone(&self) {
        let start = Instant::now();
        while std::net::TcpStream::connect(self.hub.url.trim_start_matches("http://")).is_ok() {
            assert!(start.elapsed() < T, "the hub still answers");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn submit(&self, yaml: &str) -> String {
        let (code, v) = self.api.post("/api/v1/experiments", Some(yaml));
        assert_eq!(code, 201, "{v:#}");
        uid(&v)
    }
}

pub(super) fn network_chaos(name: &str, b_ip: &str, duration: &str, body: &str) -> String {
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
    // Whatever this kernel has: reported as measured, never assumed (the delay tests check
    // that the mechanism used follows it).
    let netem = agent["mechanisms"]["netem"]
        .as_bool()
        .unwrap_or_else(|| panic!("no netem flag in {agent:#}"));
    assert!(agent["mechanisms"]["nfqueue"].is_boolean(), "{agent:#}");
    eprintln!("this kernel: netem {netem}");
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
    let mechanism = running["status"]["targets"][0]["details"]["mechanism"].clone();
    let netem = lab.wait_agent("healthy")["mechanisms"]["netem"] == true;
    let expected = if netem { "tc-netem" } else { "nfqueue" };
    eprintln!("netem {netem}: delay via {mechanism}");
    assert_eq!(
        mechanism, expected,
        "the mechanism follows the kernel: {running:#}"
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
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (externalTargets address)",
        "native",
        format!("+{added:.0} ms TCP RTT to the listed address for 100ms"),
        mechanism = expected
    );
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
    let loss = lab.measured_udp_loss(3000);
    assert!(
        (25.0..=35.0).contains(&loss),
        "observed loss {loss:.1} %, expected 30 ± 5"
    );
    lab.stop(&uid);
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
    chaoshub_testkit::measured!(
        "NetworkChaos/loss (externalTargets address)",
        "native",
        format!("{loss:.1} % of 3000 UDP datagrams to the listed address lost for 30 %")
    );
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

/// Leases are rebuilt from the store: a fault longer than the lease window outlives a hub
/// restart. The hub (lease window 6 s) is SIGKILLed while a 24 s delay runs and started again
/// on the same address and data; the agent reconnects, and the fault must stay in place, with
/// the experiment `Running`, for more than two lease windows, then end at its deadline.
#[test]
fn a_fault_longer_than_the_lease_window_survives_a_hub_restart() {
    let mut lab = Lab::start_with_engine("agent_lease_secs = 6\n");
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(&network_chaos(
        "outlives-restart",
        &lab.topo.b_ip,
        "24s",
        "  action: delay\n  delay: {latency: 100ms}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    let deadline: chrono::DateTime<chrono::Utc> = running["status"]["deadline"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no deadline in {running:#}"));
    let listen = lab.hub.url.trim_start_matches("http://").to_string();
    lab.hub.kill9();
    let killed = Instant::now();
    lab.hub = HubProcess::start_with_engine(lab.dir.path(), &listen, "agent_lease_secs = 6\n");
    let restarted = Instant::now();
    lab.wait_agent("healthy");
    eprintln!(
        "hub back {:?} after the kill; agent reconnected {:?} after that",
        restarted - killed,
        restarted.elapsed()
    );
    // Two lease windows and more: without renewals the agent would have removed it by now.
    while restarted.elapsed() < Duration::from_secs(14) {
        let phase = lab.api.experiment(&uid)["status"]["phase"].clone();
        assert_eq!(phase, "Running", "{:#}", lab.api.experiment(&uid));
        let rtt = median_rtt(&lab.topo.a, lab.peer.tcp, 3);
        assert!(
            rtt > baseline + Duration::from_millis(80) && !lab.topo.leftovers().is_empty(),
            "the fault was removed {:?} after the hub restarted while the hub says Running \
             (rtt {rtt:?}, baseline {baseline:?})\n{}",
            restarted.elapsed(),
            lab.agent.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let finished = lab.api.wait_phase(&uid, "Finished", T);
    let ended = chrono::Utc::now();
    assert!(
        lab.topo.leftovers().is_empty(),
        "left behind: {:?}",
        lab.topo.leftovers()
    );
    eprintln!(
        "fault held across the restart; finished {} ms after its deadline: {}",
        (ended - deadline).num_milliseconds(),
        finished["status"]["phase"]
    );
}

/// The journal: SIGKILL the agent mid-fault; its restart removes the fault before it even
/// registers with the hub. The hub then reads the agent's faults back on reconnect, finds the
/// fault gone while the experiment is still `Running`, and puts it back for the time that
/// remains (so watching the far side alone races that re-injection: the agent's own log is the
/// witness of the removal, the drift counters the witness of the rest).
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
    lab.restart_agent(&[]);
    const REMOVED: &str = "removed a fault left by a previous run";
    const REGISTERED: &str = "registered with the hub";
    let log = loop {
        let log = lab.agent.log();
        if log.contains(REGISTERED) {
            break log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the restarted agent never registered ({:?}):\n{log}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let removed_at = log
        .find(REMOVED)
        .unwrap_or_else(|| panic!("the journal replay removed nothing:\n{log}"));
    assert!(
        removed_at < log.find(REGISTERED).unwrap(),
        "the journal must be replayed before the agent takes commands:\n{log}"
    );
    let replay_ms: u64 = log
        .lines()
        .find(|l| l.contains("journal replayed"))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no replay timing in the agent's log:\n{log}"));
    eprintln!(
        "journal replay removed the fault {replay_ms} ms into the agent's start; registered {:?} \
         after the restart",
        started.elapsed()
    );
    assert!(replay_ms < 2_000, "probe and replay took {replay_ms} ms");
    // The hub learns the fault is gone, puts it back, and still ends the experiment cleanly.
    let back = loop {
        let v = lab.api.experiment(&uid);
        if v["status"]["drift"]["reinjections"] == 1 {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hub never put the fault back: {v:#}\n{}",
            lab.agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(back["status"]["phase"], "Running", "{back:#}");
    assert_eq!(back["status"]["drift"]["drifts"], 1, "{back:#}");
    assert!(
        !lab.topo.leftovers().is_empty(),
        "the fault is back in place"
    );
    lab.wait_agent("healthy");
    lab.stop(&uid);
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
}

/// Drift on agent reconnect: an agent SIGKILLed and restarted removes the fault its journal
/// lists, so the hub's `Running` would be a lie. The hub reads the faults of a reconnecting
/// agent back at once (periodic checks are set to 10 minutes here, so only the reconnection can
/// find it), sees it absent, and puts it back for the time that remains: the delay is measured
/// again and the status shows the drift and the re-injection.
#[test]
fn a_fault_lost_in_an_agent_restart_is_found_on_reconnect_and_put_back() {
    let mut lab = Lab::start_with_engine("verify_interval_ms = 600000\n");
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(&network_chaos(
        "lost-in-restart",
        &lab.topo.b_ip,
        "60s",
        "  action: delay\n  delay: {latency: 100ms}\n",
    ));
    lab.api.wait_phase(&uid, "Running", T);
    lab.restart_agent(&[]);
    let restarted = Instant::now();
    let back = loop {
        let v = lab.api.experiment(&uid);
        if v["status"]["drift"]["reinjections"] == 1 {
            break v;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "not put back {:?} after the agent restarted: {v:#}\n{}",
            restarted.elapsed(),
            lab.agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "fault put back {:?} after the agent restarted",
        restarted.elapsed()
    );
    assert_eq!(back["status"]["phase"], "Running", "{back:#}");
    assert_eq!(back["status"]["drift"]["drifts"], 1, "{back:#}");
    assert_eq!(back["status"]["targets"][0]["injections"], 2, "{back:#}");
    let delayed = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let added = delayed.saturating_sub(baseline).as_secs_f64() * 1000.0;
    eprintln!("after re-injection: added {added:.1} ms");
    assert!(
        (90.0..=110.0).contains(&added),
        "added latency {added:.1} ms after re-injection, expected 100 ± 10 %"
    );
    lab.stop(&uid);
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
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
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/process",
        "native",
        "process state T (stopped) under signal 19 while running, running again after recovery"
    );
}

/// Host clock skew is declared by the native adapter, but an agent started without
/// `--allow clock` does not offer it: the submission is a 422 that names the agent and the
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
        message.contains("agent agent-a was not started with --allow clock"),
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
pub(super) fn rtt_samples(ns: &str, to: std::net::SocketAddr, n: usize) -> Vec<Duration> {
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
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (reorder)",
        "native",
        format!(
            "{share_at_once:.0} % of {} TCP round trips went at once, the rest held 60 ms, for reorder 50 %",
            samples.len()
        )
    );
}

/// Waits until `log()` contains `needle`.
fn wait_log(what: &str, log: impl Fn() -> String, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let text = log();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} never logged {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stream without a credential or join token is refused with UNAUTHENTICATED, and so is a
/// second process that takes a connected agent's name with a valid join token: the first one
/// stays connected on its own stream.
#[test]
fn agents_without_valid_credentials_are_refused_and_names_cannot_be_taken_over() {
    let lab = Lab::start();
    let before = lab.wait_agent("healthy");
    let state = lab.dir.path().join("agent-state");
    let credential = state.join("hub-credential.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&credential).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the credential file is private");
    let text = std::fs::read_to_string(&credential).unwrap();
    assert!(text.contains("\"cha_"), "{text}");
    let token = std::fs::read_to_string(&lab.join_token_file).unwrap();
    assert!(
        !lab.hub.log().contains(token.trim()),
        "the hub never logs a join token"
    );

    // No join token, no credential: refused, never listed.
    let stranger = AgentProcess::start(
        &lab.topo.a,
        &lab.hub.url,
        "hosts",
        "agent-x",
        &lab.dir.path().join("stranger-state"),
        &[],
    );
    let log = wait_log("the stranger", || stranger.log(), "unauthenticated");
    assert!(log.contains("chaoshub env join-token hosts"), "{log}");
    assert!(lab.api.get("/api/v1/agents")["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["name"] != "agent-x"));

    // Same name, a valid join token, no credential: refused, the original keeps its stream.
    let impostor = AgentProcess::start(
        &lab.topo.a,
        &lab.hub.url,
        "hosts",
        "agent-a",
        &lab.dir.path().join("impostor-state"),
        &["--join-token-file", lab.join_token_file.to_str().unwrap()],
    );
    let log = wait_log(
        "the impostor",
        || impostor.log(),
        "held by another credential",
    );
    assert!(log.contains("unauthenticated"), "{log}");
    assert!(!lab
        .dir
        .path()
        .join("impostor-state/hub-credential.json")
        .exists());
    let after = lab.wait_agent("healthy");
    assert_eq!(
        before["connectedSince"], after["connectedSince"],
        "the original agent's stream was not replaced"
    );
    // A join token of another environment does not work either.
    let (code, v) = lab.api.post(
        "/api/v1/environments",
        Some("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: other}\nspec: {adapter: native}\n"),
    );
    assert_eq!(code, 201, "{v}");
    let (other_token, _) = join_token(&lab.api, "other", lab.dir.path());
    let crosser = AgentProcess::start(
        &lab.topo.a,
        &lab.hub.url,
        "hosts",
        "agent-y",
        &lab.dir.path().join("crosser-state"),
        &["--join-token-file", other_token.to_str().unwrap()],
    );
    wait_log(
        "the crosser",
        || crosser.log(),
        "is for environment \"other\"",
    );
}

/// The agent's issued credential survives a hub restart: the join token is revoked first, so
/// only the credential can get it back in.
#[test]
fn the_agent_reconnects_with_its_credential_after_a_hub_restart() {
    let mut lab = Lab::start();
    let tokens = lab.api.get("/api/v1/environments/hosts/join-tokens");
    assert_eq!(tokens["items"][0]["uses"], 1, "{tokens:#}");
    assert!(
        tokens["items"][0].get("token").is_none(),
        "secrets are never listed"
    );
    let id = tokens["items"][0]["id"].as_str().unwrap().to_string();
    let (code, v) = lab.api.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/environments/hosts/join-tokens/{id}"),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "revoked");

    let addr = lab.hub.url.trim_start_matches("http://").to_string();
    lab.hub.kill9();
    lab.wait_agent_gone();
    lab.hub = HubProcess::start_listening(lab.dir.path(), &addr);
    assert_eq!(lab.hub.url, format!("http://{addr}"));
    lab.api = Api::new(&lab.hub.url);
    let agent = lab.wait_agent("healthy");
    assert_eq!(agent["name"], "agent-a");
    // And it still takes commands.
    let uid = lab.submit(&network_chaos(
        "after-restart",
        &lab.topo.b_ip,
        "2s",
        "  action: loss\n  loss: {loss: \"10\"}\n",
    ));
    lab.api.wait_phase(&uid, "Finished", T);

    // An admin removes the agent: its stream ends and its credential no longer works.
    let (code, v) = lab.api.call(
        reqwest::Method::DELETE,
        "/api/v1/agents/hosts/agent-a",
        None,
    );
    assert_eq!(code, 200, "{v}");
    // Its credential is gone and its join token revoked: refused from now on.
    let log = wait_log("the removed agent", || lab.agent.log(), "the join token");
    assert!(
        log.contains("the hub refused this agent (unauthenticated)"),
        "{log}"
    );
}

/// `user_defined` runs only on an agent started with `--allow user-defined`: refused at
/// submission (422 naming the opt-in) otherwise, and nothing runs.
#[test]
fn user_defined_needs_the_agents_opt_in() {
    let mut lab = Lab::start();
    let marker = lab.dir.path().join("user-defined-ran");
    let manifest = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: custom}}\nspec:\n  environment: hosts\n  action: user_defined\n  mode: all\n  selector:\n    labelSelectors: {{role: app}}\n  user_defined:\n    attackCmd: \"touch {m}\"\n    recoverCmd: \"rm {m}\"\n  duration: 3s\n",
        m = marker.display()
    );
    let agent = lab.wait_agent("healthy");
    assert_eq!(agent["allowed"], serde_json::json!([]));
    let (code, v) = lab.api.post("/api/v1/experiments", Some(&manifest));
    assert_eq!(code, 422, "{v:#}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("agent agent-a was not started with --allow user-defined"),
        "{message}"
    );
    assert!(!marker.exists());

    lab.restart_agent(&["--allow", "user-defined"]);
    let start = Instant::now();
    while lab.wait_agent("healthy")["allowed"] != serde_json::json!(["user-defined"]) {
        assert!(start.elapsed() < T, "the agent never reported its opt-in");
        std::thread::sleep(Duration::from_millis(50));
    }
    let uid = lab.submit(&manifest);
    lab.api.wait_phase(&uid, "Running", T);
    assert!(marker.exists(), "the attack command ran");
    lab.api.wait_phase(&uid, "Finished", T);
    assert!(!marker.exists(), "the recover command ran");
}

/// TLS end to end: a hub started with `--tls-self-signed` on the veth address; the CLI and a
/// real agent trust its CA with `--ca-file` and work as over plain HTTP; a CLI or an agent
/// without the CA fails with an error that names the certificate problem.
#[test]
fn cli_and_agent_work_over_self_signed_tls() {
    let dir = tempfile::tempdir().unwrap();
    let topo = Topology::new();
    let peer = PeerServices::start(&topo.b, &topo.b_ip);
    let hub = HubProcess::start_with(
        dir.path(),
        &format!("{}:0", topo.hub_ip),
        &["--tls-self-signed"],
    );
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    let ca = dir.path().join("data/tls/ca.pem");
    assert!(
        hub.log().contains(ca.to_str().unwrap()),
        "the hub prints the CA's path:\n{}",
        hub.log()
    );
    let api = Api::with_ca(&hub.url, &ca);
    let (code, v) = api.post(
        "/api/v1/environments",
        Some("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: hosts}\nspec: {adapter: native}\n"),
    );
    assert_eq!(code, 201, "{v}");

    // The CLI with the CA creates the join token, the agent joins over TLS.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(hub_binary())
            // The admin token, given the way a user would: CHAOSHUB_TOKEN.
            .env("CHAOSHUB_TOKEN", token_for(&hub.url).unwrap())
            .args(["--server", &hub.url])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, token, err) = cli(&[
        "--ca-file",
        ca.to_str().unwrap(),
        "env",
        "join-token",
        "hosts",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        token.trim().starts_with("chj_"),
        "only the token on stdout: {token}"
    );
    let token_file = dir.path().join("hosts.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let agent = AgentProcess::start(
        &topo.a,
        &hub.url,
        "hosts",
        "agent-a",
        &dir.path().join("agent-state"),
        &[
            "--join-token-file",
            token_file.to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    );
    let start = Instant::now();
    loop {
        let v = api.get("/api/v1/agents?env=hosts");
        if v["items"][0]["health"] == "healthy" {
            break;
        }
        assert!(
            start.elapsed() < T,
            "no healthy agent over TLS: {v}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = cli(&["--ca-file", ca.to_str().unwrap(), "env", "targets", "hosts"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("agent-a"), "{out}");
    // A fault through the hub over TLS reaches the agent and is removed.
    let (code, v) = api.post(
        "/api/v1/experiments",
        Some(&network_chaos(
            "tls-loss",
            &topo.b_ip,
            "2s",
            "  action: loss\n  loss: {loss: \"20\"}\n",
        )),
    );
    assert_eq!(code, 201, "{v}");
    api.wait_phase(&uid(&v), "Finished", T);
    assert_eq!(topo.leftovers(), Vec::<String>::new());

    // Without the CA: the CLI fails (exit 3) saying how to fix it; an agent never registers.
    let (code, _, err) = cli(&["env", "targets", "hosts"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--ca-file"), "{err}");
    let untrusting = AgentProcess::start(
        &topo.a,
        &hub.url,
        "hosts",
        "agent-b",
        &dir.path().join("untrusting-state"),
        &["--join-token-file", token_file.to_str().unwrap()],
    );
    let log = wait_log(
        "the agent without the CA",
        || untrusting.log(),
        "cannot connect",
    );
    assert!(
        log.to_ascii_lowercase().contains("certificate") || log.contains("UnknownIssuer"),
        "{log}"
    );
    let _ = peer;
}

/// The fallback paths on any kernel: an agent started with `--disable-mechanism netem
/// --disable-mechanism nftables` reports both missing, delays through its NFQUEUE engine and
/// drops through iptables `statistic` — measured, whatever this kernel has. (On a kernel
/// without netem the delay test above already runs NFQUEUE; with netem it runs tc-netem; this
/// test runs the fallback on both.)
#[test]
fn forced_fallback_mechanisms_are_reported_used_and_measured() {
    let lab = Lab::start_with(&[
        "--disable-mechanism",
        "netem",
        "--disable-mechanism",
        "nftables",
    ]);
    let agent = lab.wait_agent("healthy");
    assert_eq!(agent["mechanisms"]["netem"], false, "{agent:#}");
    assert_eq!(agent["mechanisms"]["nftables"], false, "{agent:#}");
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(&network_chaos(
        "fallback-delay",
        &lab.topo.b_ip,
        "30s",
        "  action: delay\n  delay: {latency: 100ms}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    assert_eq!(
        running["status"]["targets"][0]["details"]["mechanism"], "nfqueue",
        "{running:#}"
    );
    let delayed = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let added = delayed.saturating_sub(baseline).as_secs_f64() * 1000.0;
    eprintln!("forced nfqueue: added {added:.1} ms");
    assert!(
        (90.0..=110.0).contains(&added),
        "added latency {added:.1} ms, expected 100 ± 10 %"
    );
    lab.stop(&uid);

    let uid = lab.submit(&network_chaos(
        "fallback-loss",
        &lab.topo.b_ip,
        "30s",
        "  action: loss\n  loss: {loss: \"30\"}\n",
    ));
    let running = lab.api.wait_phase(&uid, "Running", T);
    assert_eq!(
        running["status"]["targets"][0]["details"]["mechanism"], "iptables-statistic",
        "{running:#}"
    );
    let loss = lab.measured_udp_loss(3000);
    eprintln!("forced iptables-statistic: loss {loss:.1} %");
    assert!(
        (25.0..=35.0).contains(&loss),
        "observed loss {loss:.1} %, expected 30 ± 5"
    );
    lab.stop(&uid);
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
}

/// Runs `iptables ARGS` in `ns` and panics with its output on failure.
fn iptables(ns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "iptables"])
        .args(args)
        .output()
        .expect("ip netns exec iptables");
    assert!(
        out.status.success(),
        "iptables {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Partition between hub and agent (issue 16): every packet between the agent's namespace and
/// the hub's address is dropped silently while a 60 s delay runs, with a lease window of 6 s.
/// The agent, no longer renewed, removes the fault by its lease (within the window plus 1 s of
/// the cut); when the partition heals the hub reads the fault back, finds it gone and puts it
/// back (drift, `on_drift: reinject`), so `Running` is true again and measured — never a
/// stale `Running` over a fault that is not there. The namespace (and the DROP rules in it)
/// goes with the topology, whatever happens.
#[test]
fn a_partitioned_agent_drops_its_fault_by_its_lease_and_the_hub_learns_it_when_healed() {
    let lab = Lab::start_with_engine("agent_lease_secs = 6\nverify_interval_ms = 1000\n");
    let baseline = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let uid = lab.submit(&network_chaos(
        "partitioned",
        &lab.topo.b_ip,
        "60s",
        "  action: delay\n  delay: {latency: 100ms}\n",
    ));
    lab.api.wait_phase(&uid, "Running", T);
    assert!(median_rtt(&lab.topo.a, lab.peer.tcp, 5) > baseline + Duration::from_millis(80));

    let hub_ip = lab.topo.hub_ip.clone();
    iptables(&lab.topo.a, &["-I", "OUTPUT", "-d", &hub_ip, "-j", "DROP"]);
    iptables(&lab.topo.a, &["-I", "INPUT", "-s", &hub_ip, "-j", "DROP"]);
    let cut = Instant::now();
    // The agent's last renewal came before the cut: its lease ends within one window of it.
    loop {
        if lab.topo.leftovers().is_empty()
            && median_rtt(&lab.topo.a, lab.peer.tcp, 3) < baseline + Duration::from_millis(20)
        {
            break;
        }
        assert!(
            cut.elapsed() < Duration::from_secs(7),
            "the fault is still in place {:?} after the partition (lease window 6 s): {:?}\n{}",
            cut.elapsed(),
            lab.topo.leftovers(),
            lab.agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "partitioned agent removed its fault {:?} after the cut",
        cut.elapsed()
    );

    iptables(&lab.topo.a, &["-D", "OUTPUT", "-d", &hub_ip, "-j", "DROP"]);
    iptables(&lab.topo.a, &["-D", "INPUT", "-s", &hub_ip, "-j", "DROP"]);
    let healed = Instant::now();
    let back = loop {
        let v = lab.api.experiment(&uid);
        let drifts = v["status"]["drift"]["drifts"].as_u64().unwrap_or(0);
        let reinjections = v["status"]["drift"]["reinjections"].as_u64().unwrap_or(0);
        if drifts >= 1 && reinjections >= 1 && v["status"]["phase"] == "Running" {
            break v;
        }
        assert!(
            v["status"]["phase"] == "Running" || v["status"]["phase"] == "Failed",
            "{v:#}"
        );
        assert!(
            healed.elapsed() < Duration::from_secs(40),
            "the hub did not learn that the fault was gone {:?} after the partition healed: \
             {v:#}\n{}",
            healed.elapsed(),
            lab.agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "after the heal the hub found the fault gone and put it back in {:?}: {}",
        healed.elapsed(),
        back["status"]["drift"]
    );
    let delayed = median_rtt(&lab.topo.a, lab.peer.tcp, 21);
    let added = delayed.saturating_sub(baseline).as_secs_f64() * 1000.0;
    assert!(
        (90.0..=110.0).contains(&added),
        "added latency {added:.1} ms after re-injection, expected 100 ± 10 %"
    );
    lab.stop(&uid);
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());
}
