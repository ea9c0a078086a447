//! A highly available hub (issue 20): three real `chaoshub` processes on one real PostgreSQL
//! (Debian's, started by the test as an unprivileged user), faults on a real Toxiproxy and on
//! the webhook plugin (Python `fsfault`).
//!
//! - Failover: SIGKILL the leader mid-experiment; another replica takes the engine lease
//!   (the time is measured and printed), both faults are still removed on time (lateness
//!   printed), nothing is lost or injected twice (read on the far side), the event stream of a
//!   follower saw every step, and a schedule fired at most once per tick across the replicas.
//! - Split brain: the leader is frozen (SIGSTOP) in the middle of a pass, past its lease; another
//!   takes over; when the old one is continued its write is refused by the fence and it steps
//!   down, and the far side keeps exactly the fault the new leader holds.
//! - Suites and workflows: the replica running a suite dies, then the leader mid-workflow; the
//!   last replica takes the suite run over and continues the workflow, each step run once.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use chaoshub_testkit::toxiproxy::ToxiproxyServer;
use serde_json::Value;

use super::support::*;

/// The `[store]` and `[replica]` tables of replica `n` on `url`.
fn replica_config(url: &str, n: usize) -> String {
    format!(
        "[store]\nurl = \"{url}\"\n[replica]\nid = \"hub-{n}\"\nlease_ms = 3000\nrenew_ms = 1000\n"
    )
}

struct Replicas {
    hubs: Vec<Option<HubProcess>>,
    _dirs: Vec<tempfile::TempDir>,
    token: String,
}

impl Replicas {
    /// Starts `n` replicas on `url`, the first with `first_env` (failpoints), and waits until the
    /// first leads.
    fn start(url: &str, n: usize, first_env: &[(&str, &str)]) -> Replicas {
        Self::start_on(url, n, first_env, None)
    }

    /// With `ip`: each replica listens on its own port there and advertises that URL.
    fn start_on(url: &str, n: usize, first_env: &[(&str, &str)], ip: Option<&str>) -> Replicas {
        let mut dirs = Vec::new();
        let mut hubs = Vec::new();
        let mut token = String::new();
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            if i > 0 {
                // The shared store already has the admin token the first replica wrote.
                let data = dir.path().join("data");
                std::fs::create_dir_all(&data).unwrap();
                std::fs::write(data.join("admin.token"), format!("{token}\n")).unwrap();
            }
            let env = if i == 0 { first_env } else { &[] };
            let hub = match ip {
                None => HubProcess::start_replica(dir.path(), &replica_config(url, i + 1), env),
                Some(ip) => {
                    let port = free_port(ip);
                    let config = format!(
                        "{}advertise_url = \"http://{ip}:{port}\"\n",
                        replica_config(url, i + 1)
                    );
                    HubProcess::start_replica_on(dir.path(), &format!("{ip}:{port}"), &config, env)
                }
            };
            if i == 0 {
                token = hub.token.clone();
                wait_role(&hub, "leader", Duration::from_secs(10));
            }
            hubs.push(Some(hub));
            dirs.push(dir);
        }
        for hub in hubs.iter().skip(1).flatten() {
            wait_role(hub, "follower", Duration::from_secs(10));
        }
        Replicas {
            hubs,
            _dirs: dirs,
            token,
        }
    }

    fn api(&self, i: usize) -> Api {
        let hub = self.hubs[i].as_ref().expect("that replica was killed");
        Api::with_token(&hub.url, Some(&self.token))
    }

    /// The replica that leads now, waiting up to `timeout` for one.
    fn wait_leader(&self, timeout: Duration) -> usize {
        let started = Instant::now();
        loop {
            for (i, hub) in self.hubs.iter().enumerate() {
                if let Some(hub) = hub {
                    if role(hub).as_deref() == Some("leader") {
                        return i;
                    }
                }
            }
            assert!(
                started.elapsed() < timeout,
                "no replica leads after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `replica.role` of a hub's `/readyz`; `None` when it does not answer.
fn role(hub: &HubProcess) -> Option<String> {
    install_crypto_provider();
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{}/readyz", hub.url))
        .timeout(Duration::from_millis(500))
        .send()
        .ok()?
        .json()
        .ok()?;
    v["replica"]["role"].as_str().map(str::to_string)
}

fn wait_role(hub: &HubProcess, want: &str, timeout: Duration) {
    let started = Instant::now();
    while role(hub).as_deref() != Some(want) {
        assert!(
            started.elapsed() < timeout,
            "{} never became {want}: {:?}\n{}",
            hub.url,
            role(hub),
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn register(api: &Api, toxiproxy: &ToxiproxyServer, plugin: &Plugin) {
    let yaml = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: toxi}}\nspec: {{adapter: toxiproxy, endpoint: \"{}\"}}\n",
        toxiproxy.url
    );
    let (code, v) = api.post("/api/v1/environments?replace=true", Some(&yaml));
    assert!(code == 201 || code == 200, "{v}");
    register_plugin(api, "fs", plugin);
}

fn latency_yaml(name: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: ProxyChaos\nmetadata: {{name: {name}}}\nspec:\n  action: latency\n  mode: all\n  selector:\n    labelSelectors: {{name: web}}\n  latency: {{latency: 120}}\n  duration: {duration}\n  environment: toxi\n"
    )
}

fn lateness_ms(v: &Value) -> i64 {
    let at = |s: &Value| chrono::DateTime::parse_from_rfc3339(s.as_str().unwrap()).unwrap();
    (at(&v["status"]["targets"][0]["recoveredAt"]) - at(&v["status"]["deadline"]))
        .num_milliseconds()
}

/// Waits until the plugin holds no fill file.
fn wait_fills_removed(plugin: &Plugin) {
    let start = Instant::now();
    while !plugin.fill_files().is_empty() {
        assert!(
            start.elapsed() < T,
            "fill left behind: {:?}",
            plugin.fill_files()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Experiments live and archived (up to 500 of each) whose name starts with `prefix`.
fn experiments_named(api: &Api, prefix: &str) -> Vec<Value> {
    [
        api.get("/api/v1/experiments?limit=500"),
        api.get("/api/v1/experiments?limit=500&archived=true"),
    ]
    .iter()
    .flat_map(|l| l["items"].as_array().cloned().unwrap_or_default())
    .filter(|e| {
        e["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(prefix))
    })
    .collect()
}

/// The suite run at `path` once it is no longer Running.
fn wait_run_ended(api: &Api, path: &str) -> Value {
    let started = Instant::now();
    loop {
        let run = api.get(path);
        if run["phase"] != "Running" {
            return run;
        }
        assert!(started.elapsed() < T, "the suite never ended: {run:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The names of a hub's event stream, collected by a thread until `stop` is set.
fn follow_events(
    url: &str,
    token: &str,
) -> std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> {
    install_crypto_provider();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = std::sync::Arc::clone(&seen);
    let request = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .get(format!("{url}/api/v1/events/stream"))
        .bearer_auth(token);
    std::thread::spawn(move || {
        let Ok(response) = request.send() else { return };
        let mut name = String::new();
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(data.trim()).unwrap_or_default();
                let uid = v["experimentUid"].as_str().unwrap_or_default().to_string();
                out.lock().unwrap().push((name.clone(), uid));
            }
        }
    });
    seen
}

#[test]
fn three_replicas_fail_over_when_the_leader_is_killed() {
    let Some(server) = chaoshub_testkit::postgres::shared() else {
        return; // the locator printed the SKIP line (a failure under CI=true)
    };
    let Some(toxiproxy) = ToxiproxyServer::start() else {
        return;
    };
    let db = server.create_database();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    toxiproxy.create_proxy("web", upstream.local_addr().unwrap());
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(plugin_dir.path(), 300);

    let mut replicas = Replicas::start(&db.url, 3, &[]);
    let leader = replicas.wait_leader(Duration::from_secs(5));
    assert_eq!(leader, 0);
    // Any replica serves the API: register on one follower, submit on the other, watch the
    // stream of the first follower.
    register(&replicas.api(1), &toxiproxy, &plugin);
    let events = follow_events(&replicas.hubs[1].as_ref().unwrap().url, &replicas.token);
    std::thread::sleep(Duration::from_millis(300));
    let api = replicas.api(2);
    let submitted = Instant::now();
    let (code, v) = api.post("/api/v1/experiments", Some(&latency_yaml("slow-web", "9s")));
    assert_eq!(code, 201, "{v}");
    let latency = uid(&v);
    api.wait_phase(&latency, "Running", T);
    let submit_to_running = submitted.elapsed();
    let (code, v) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("fill", "fs", Some("9s"), "16kB")),
    );
    assert_eq!(code, 201, "{v}");
    let fill = uid(&v);
    api.wait_phase(&fill, "Running", T);
    // A schedule firing every 2 s, each child a short disk fill.
    let schedule = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {name: tick}\nspec:\n  schedule: \"*/2 * * * * *\"\n  type: PhysicalMachineChaos\n  environment: fs\n  historyLimit: 100\n  physicalmachineChaos:\n    action: disk-fill\n    mode: all\n    selector: {labelSelectors: {tier: frontend}}\n    disk-fill: {size: 4kB}\n    duration: 500ms\n";
    let (code, v) = api.post("/api/v1/experiments", Some(schedule));
    assert_eq!(code, 201, "{v}");
    let schedule_uid = uid(&v);
    // A suite run driven by the other follower (hub-2), whose case's fault the leader injects.
    let suite = "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {name: ha-suite}\nspec:\n  environments: [fs]\n  experiments:\n    - name: fill\n      expect: hold\n      manifest:\n        apiVersion: chaos-mesh.org/v1alpha1\n        kind: PhysicalMachineChaos\n        metadata: {name: suite-fill}\n        spec: {action: disk-fill, mode: all, selector: {labelSelectors: {tier: frontend}}, disk-fill: {size: 8kB}, duration: 7s}\n";
    let (code, v) = replicas.api(1).post("/api/v1/suites", Some(suite));
    assert_eq!(code, 202, "{v}");
    let suite_run = v["id"].as_str().unwrap().to_string();
    // Read on another replica, a live run stays Running: it belongs to hub-2, which lives.
    let read = api.get(&format!("/api/v1/suites/runs/{suite_run}"));
    assert_eq!(read["phase"], "Running", "{read:#}");
    assert_eq!(toxics(&toxiproxy, "web").len(), 1);
    std::thread::sleep(Duration::from_millis(1500));

    // SIGKILL the leader mid-experiment.
    replicas.hubs[0].as_mut().unwrap().kill9();
    let killed = Instant::now();
    replicas.hubs[0] = None;
    let new_leader = replicas.wait_leader(Duration::from_secs(15));
    let takeover = killed.elapsed();
    let took_over_at = chrono::Utc::now().timestamp();
    // While it runs, exactly one toxic: never lost, never doubled.
    let api = replicas.api(new_leader);
    while api.experiment(&latency)["status"]["phase"] == "Running" {
        let n = toxics(&toxiproxy, "web").len();
        let still = api.experiment(&latency)["status"]["phase"] == "Running";
        assert!(!still || n == 1, "{n} toxics while Running");
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = api.wait_phase(&latency, "Finished", T);
    let fill_done = api.wait_phase(&fill, "Finished", T);
    assert!(
        toxics(&toxiproxy, "web").is_empty(),
        "a toxic was left behind"
    );
    let (late, fill_late) = (lateness_ms(&done), lateness_ms(&fill_done));
    assert_eq!(done["status"]["targets"][0]["injections"], 1, "{done:#}");
    assert_eq!(
        fill_done["status"]["targets"][0]["injections"], 1,
        "{fill_done:#}"
    );
    assert!(
        late < 1500 && fill_late < 1500,
        "late: {late} ms, {fill_late} ms"
    );

    // Stop the schedule, let its last child end, then: one child per tick, none left in force.
    let (code, v) = api.post(&format!("/api/v1/experiments/{schedule_uid}/stop"), None);
    assert_eq!(code, 200, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
    for e in experiments_named(&api, "tick-") {
        let name = e["metadata"]["name"].as_str().unwrap_or_default();
        *per_name.entry(name.to_string()).or_default() += 1;
    }
    let fired = per_name.len();
    // Ticks that fell while no replica led are skipped (as a schedule whose hub was down);
    // the new leader goes on firing.
    let after_takeover = per_name
        .keys()
        .filter_map(|n| n.trim_start_matches("tick-").parse::<i64>().ok())
        .filter(|t| *t >= took_over_at)
        .count();
    assert!(
        fired >= 2 && after_takeover >= 1,
        "the schedule fired {fired} times, {after_takeover} after the takeover: {per_name:?}"
    );
    assert!(
        per_name.values().all(|n| *n == 1),
        "a tick fired twice: {per_name:?}"
    );
    wait_fills_removed(&plugin);

    // The suite run on hub-2 went on through the failover and passed.
    let run = wait_run_ended(
        &replicas.api(2),
        &format!("/api/v1/suites/runs/{suite_run}"),
    );
    assert_eq!(run["phase"], "Passed", "{run:#}");

    // The follower's stream saw both experiments through, whoever led.
    let seen = events.lock().unwrap().clone();
    for (id, what) in [(&latency, "latency"), (&fill, "fill")] {
        for name in [
            "chaoshub.experiment.created",
            "chaoshub.experiment.running",
            "chaoshub.experiment.finished",
        ] {
            assert!(
                seen.iter().any(|(n, u)| n == name && u == id),
                "{what}: {name} not on the follower's stream"
            );
        }
    }
    eprintln!(
        "\nfailover: submit→Running through a follower {} ms; leader SIGKILLed, replica hub-{} took over {} ms later (lease 3000 ms); lateness: toxiproxy {late} ms, webhook {fill_late} ms; injections 1 and 1; schedule fired {fired} times ({after_takeover} after the takeover), once per tick; a suite run on a follower went on through the failover and passed; follower's stream: {} events",
        submit_to_running.as_millis(),
        new_leader + 1,
        takeover.as_millis(),
        seen.len()
    );
    assert!(
        takeover < Duration::from_secs(8),
        "takeover took {takeover:?}"
    );
    drop(upstream);
}

#[test]
fn a_frozen_leader_is_fenced_when_it_wakes_and_steps_down() {
    let Some(server) = chaoshub_testkit::postgres::shared() else {
        return;
    };
    let Some(toxiproxy) = ToxiproxyServer::start() else {
        return;
    };
    let db = server.create_database();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    toxiproxy.create_proxy("web", upstream.local_addr().unwrap());
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(plugin_dir.path(), 300);
    // The first leader's pass stops between the confirmed injection and its Running write.
    let replicas = Replicas::start(
        &db.url,
        2,
        &[("CHAOSHUB_FAILPOINTS", "engine.before_running=sleep(6000)")],
    );
    register(&replicas.api(1), &toxiproxy, &plugin);
    let api = replicas.api(1);
    let (code, v) = api.post("/api/v1/experiments", Some(&latency_yaml("split", "12s")));
    assert_eq!(code, 201, "{v}");
    let id = uid(&v);
    let started = Instant::now();
    while toxics(&toxiproxy, "web").is_empty() {
        assert!(started.elapsed() < T, "the leader never injected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let old = replicas.hubs[0].as_ref().unwrap();
    old.signal("STOP");
    let frozen = Instant::now();
    wait_role(
        replicas.hubs[1].as_ref().unwrap(),
        "leader",
        Duration::from_secs(15),
    );
    let takeover = frozen.elapsed();
    let running = api.wait_phase(&id, "Running", T);
    let toxic_of_new_leader = toxics(&toxiproxy, "web");
    assert_eq!(toxic_of_new_leader.len(), 1, "{toxic_of_new_leader:?}");
    old.signal("CONT");
    // The old leader's pass wakes and tries to store Running under its old token.
    let started = Instant::now();
    while !old.log().contains("fenced") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the old leader's write was not fenced:\n{}",
            old.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_role(old, "follower", Duration::from_secs(5));
    // Nothing on the far side was touched by the old leader: the new leader's toxic is there,
    // alone and unchanged, and the status is the new leader's.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(toxics(&toxiproxy, "web"), toxic_of_new_leader);
    let now = api.experiment(&id);
    assert_eq!(now["status"]["phase"], "Running", "{now:#}");
    assert_eq!(
        now["status"]["targets"][0]["injections"], running["status"]["targets"][0]["injections"],
        "{now:#}"
    );
    let done = api.wait_phase(&id, "Finished", T);
    assert!(toxics(&toxiproxy, "web").is_empty());
    eprintln!(
        "\nsplit brain: leader frozen mid-pass; hub-2 took over {} ms later; the woken leader's write was fenced and it stepped down; lateness {} ms",
        takeover.as_millis(),
        lateness_ms(&done)
    );
    drop((upstream, plugin));
}

/// Agents follow the leader: an agent given every replica's URL holds its stream to the leader;
/// when the leader is SIGKILLed it reconnects to the new one, which renews the fault's lease, so
/// the delay (measured) holds to its deadline and is removed on time, injected once.
#[test]
fn an_agent_follows_the_leader_and_its_fault_survives_the_failover() {
    let Some(server) = chaoshub_testkit::postgres::shared() else {
        return;
    };
    let db = server.create_database();
    let topo = super::netns::Topology::new();
    let peer = super::netns::PeerServices::start(&topo.b, &topo.b_ip);
    let mut replicas = Replicas::start_on(&db.url, 3, &[], Some(&topo.hub_ip));
    let api = replicas.api(1);
    let (code, v) = api.post(
        "/api/v1/environments",
        Some("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: hosts}\nspec: {adapter: native}\n"),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = api.post("/api/v1/environments/hosts/join-tokens", None);
    assert_eq!(code, 201, "{v}");
    let state = tempfile::tempdir().unwrap();
    let token_file = state.path().join("join.token");
    std::fs::write(&token_file, v["token"].as_str().unwrap()).unwrap();
    let urls: Vec<String> = replicas
        .hubs
        .iter()
        .flatten()
        .map(|h| h.url.clone())
        .collect();
    // The agent is given the replicas in an order that starts with a follower.
    let hubs = format!("{},{},{}", urls[2], urls[1], urls[0]);
    let agent = super::netns::AgentProcess::start(
        &topo.a,
        &hubs,
        "hosts",
        "agent-a",
        &state.path().join("agent-state"),
        &["--join-token-file", token_file.to_str().unwrap()],
    );
    let leader_api = replicas.api(0);
    let wait_healthy = |api: &Api, within: Duration| -> Duration {
        let started = Instant::now();
        wait_agent_health(api, "hosts", "agent-a", "healthy", within, || agent.log());
        started.elapsed()
    };
    wait_healthy(&leader_api, T);
    // Followers serve the agents the leader publishes (the agent's stream is on the leader).
    let on_follower = wait_healthy(&api, Duration::from_secs(5));
    let one = api.get("/api/v1/agents/hosts/agent-a");
    assert_eq!(one["connected"], true, "{one:#}");
    // Target discovery (what a dry run shows) works on a follower too.
    let targets = api.get("/api/v1/environments/hosts/targets");
    assert!(
        targets["items"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t.to_string().contains("agent-a"))),
        "{targets:#}"
    );
    let baseline = super::netns::median_rtt(&topo.a, peer.tcp, 11);
    let (code, v) = api.post(
        "/api/v1/experiments",
        Some(&super::agent::network_chaos(
            "ha-delay",
            &topo.b_ip,
            "14s",
            "  action: delay\n  delay: {latency: 100ms}\n",
        )),
    );
    assert_eq!(code, 201, "{v}");
    let id = uid(&v);
    api.wait_phase(&id, "Running", T);
    let delayed = |what: &str| {
        let rtt = super::netns::median_rtt(&topo.a, peer.tcp, 5);
        assert!(
            rtt > baseline + Duration::from_millis(80),
            "{what}: rtt {rtt:?}, baseline {baseline:?}\n{}",
            agent.log()
        );
    };
    delayed("before the failover");

    replicas.hubs[0].as_mut().unwrap().kill9();
    let killed = Instant::now();
    replicas.hubs[0] = None;
    let new_leader = replicas.wait_leader(Duration::from_secs(15));
    let takeover = killed.elapsed();
    let api = replicas.api(new_leader);
    let reconnected = wait_healthy(&api, Duration::from_secs(20)) + takeover;
    // The other survivor shows it again, now from the new leader's directory.
    let other = if new_leader == 1 { 2 } else { 1 };
    wait_healthy(&replicas.api(other), Duration::from_secs(5));
    delayed("after the failover");
    let done = api.wait_phase(&id, "Finished", Duration::from_secs(30));
    let late = lateness_ms(&done);
    assert!(
        topo.leftovers().is_empty(),
        "left behind: {:?}",
        topo.leftovers()
    );
    assert_eq!(done["status"]["targets"][0]["injections"], 1, "{done:#}");
    assert!(late < 1500, "removed {late} ms after the deadline");
    // An admin removes the agent through a follower: the leader, which holds its stream, ends
    // it, and the agent's credential no longer admits it anywhere.
    let follower = replicas.api(if new_leader == 1 { 2 } else { 1 });
    let (code, v) = follower.call(
        reqwest::Method::DELETE,
        "/api/v1/agents/hosts/agent-a",
        None,
    );
    assert_eq!(code, 200, "{v}");
    let removed = Instant::now();
    loop {
        let list = api.get("/api/v1/agents?env=hosts");
        let listed = list["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|a| a["name"] == "agent-a"));
        if !listed {
            break;
        }
        assert!(
            removed.elapsed() < Duration::from_secs(15),
            "the leader still holds the removed agent: {list:#}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let removal = removed.elapsed();
    eprintln!(
        "\nagent failover: leader SIGKILLed; hub-{} took over {} ms later; the agent was back on it {} ms after the kill; the delay held throughout and was removed {late} ms after its deadline, injected once; a follower listed the agent healthy {} ms after the leader did; removed through a follower, its stream on the leader ended {} ms later",
        new_leader + 1,
        takeover.as_millis(),
        reconnected.as_millis(),
        on_follower.as_millis(),
        removal.as_millis()
    );
    drop(agent);
}

/// A suite run and a workflow go on when the replicas driving them die: the suite's own
/// replica (a follower) is SIGKILLed between cases, then the engine leader in the middle of
/// the workflow's second step. The last replica standing takes the suite run over (finished
/// cases kept, the interrupted one stopped and started again) and continues the workflow;
/// every workflow step ran once, every fault was removed.
#[test]
fn a_suite_run_and_a_workflow_continue_when_their_replicas_die() {
    let Some(server) = chaoshub_testkit::postgres::shared() else {
        return; // the locator printed the SKIP line (a failure under CI=true)
    };
    let db = server.create_database();
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(plugin_dir.path(), 300);
    let mut replicas = Replicas::start(&db.url, 3, &[]);
    assert_eq!(replicas.wait_leader(Duration::from_secs(5)), 0);
    register_plugin(&replicas.api(0), "fs", &plugin);

    // Three serial cases of 1.5 s faults, run by hub-2.
    let case = |name: &str| {
        format!("    - name: {name}\n      expect: hold\n      manifest:\n        apiVersion: chaos-mesh.org/v1alpha1\n        kind: PhysicalMachineChaos\n        metadata: {{name: {name}}}\n        spec: {{action: disk-fill, mode: all, selector: {{labelSelectors: {{tier: frontend}}}}, disk-fill: {{size: 4kB}}, duration: 1500ms}}\n")
    };
    let suite = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {{name: orphan}}\nspec:\n  environments: [fs]\n  concurrency: 1\n  experiments:\n{}{}{}",
        case("one"),
        case("two"),
        case("three")
    );
    let (code, v) = replicas.api(1).post("/api/v1/suites", Some(&suite));
    assert_eq!(code, 202, "{v}");
    let run_id = v["id"].as_str().unwrap().to_string();
    let api = replicas.api(0);
    let run_path = format!("/api/v1/suites/runs/{run_id}");
    // Kill hub-2 once the first case is done and the second under way.
    let started = Instant::now();
    let interrupted = loop {
        let run = api.get(&run_path);
        if run["cases"][0]["outcome"] == "Passed" && run["cases"][1]["outcome"] == "Running" {
            if let Some(uid) = run["cases"][1]["experiments"][0]["uid"].as_str() {
                break uid.to_string();
            }
        }
        if started.elapsed() >= T {
            let first = run["cases"][0]["experiments"][0]["uid"]
                .as_str()
                .unwrap_or_default();
            panic!(
                "the suite never reached its second case: {:#}\nits first experiment: {:#}",
                run["cases"],
                api.experiment(first)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    replicas.hubs[1].as_mut().unwrap().kill9();
    replicas.hubs[1] = None;
    let suite_killed = Instant::now();

    // A workflow of three serial fills, on the leader; kill it during the second.
    let step = |name: &str| {
        format!("  - name: {name}\n    templateType: PhysicalMachineChaos\n    physicalmachineChaos:\n      action: disk-fill\n      mode: all\n      selector: {{labelSelectors: {{tier: frontend}}}}\n      disk-fill: {{size: 4kB}}\n      duration: 1500ms\n")
    };
    let workflow = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {{name: wf}}\nspec:\n  entry: main\n  environment: fs\n  templates:\n  - {{name: main, templateType: Serial, children: [a, b, c]}}\n{}{}{}",
        step("a"),
        step("b"),
        step("c")
    );
    let (code, v) = api.post("/api/v1/experiments", Some(&workflow));
    assert_eq!(code, 201, "{v}");
    let workflow_uid = uid(&v);
    let started = Instant::now();
    let child_b = loop {
        let list = api.get("/api/v1/experiments?limit=500");
        let running = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["metadata"]["name"] == "wf-b" && e["status"]["phase"] == "Running");
        if let Some(e) = running {
            break e["metadata"]["uid"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < T,
            "the workflow never reached step b: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    replicas.hubs[0].as_mut().unwrap().kill9();
    replicas.hubs[0] = None;
    let leader_killed = Instant::now();
    assert_eq!(replicas.wait_leader(Duration::from_secs(15)), 2);
    let takeover = leader_killed.elapsed();
    let api = replicas.api(2);

    // The workflow ends Finished; each step ran exactly once.
    let wf = api.wait_phase(&workflow_uid, "Finished", T);
    let b = api.wait_phase(&child_b, "Finished", T);
    assert_eq!(b["status"]["targets"][0]["injections"], 1, "{b:#}");
    let mut per_step: BTreeMap<String, usize> = BTreeMap::new();
    for e in experiments_named(&api, "wf-") {
        assert_eq!(e["status"]["phase"], "Finished", "{e:#}");
        let name = e["metadata"]["name"].as_str().unwrap_or_default();
        *per_step.entry(name.to_string()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = ["wf-a", "wf-b", "wf-c"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    assert_eq!(per_step, want, "workflow steps: {wf:#}");

    // The suite run was taken over and passed: case one kept, case two started again (its
    // first experiment stopped), case three run.
    let run = wait_run_ended(&api, &run_path);
    let ended = suite_killed.elapsed();
    assert_eq!(run["phase"], "Passed", "{run:#}");
    let takeovers = run["takeovers"].as_u64().unwrap_or(0);
    assert!(takeovers >= 1, "{run:#}");
    assert!(
        run["replica"].as_str().unwrap().starts_with("hub-"),
        "{run:#}"
    );
    let outcomes: Vec<&str> = run["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["Passed", "Passed", "Passed"], "{run:#}");
    let second = run["cases"][1]["experiments"][0]["uid"].as_str().unwrap();
    assert_ne!(
        second, interrupted,
        "case two was not started again: {run:#}"
    );
    let old = api.experiment(&interrupted);
    assert!(
        ["Finished", "Aborted"].contains(&old["status"]["phase"].as_str().unwrap_or_default()),
        "the interrupted case's experiment: {old:#}"
    );
    assert!(
        run["log"].as_array().unwrap().iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("took the run over")),
        "{run:#}"
    );
    wait_fills_removed(&plugin);
    eprintln!(
        "\nsuite and workflow failover: the suite's replica hub-2 SIGKILLed between cases; the run was taken over {takeovers} time(s) and passed {} ms after the kill (3 cases of 1.5 s, one started again); the leader SIGKILLed during workflow step b, hub-3 took over {} ms later; the workflow finished with each step run once",
        ended.as_millis(),
        takeover.as_millis()
    );
}

/// Console sessions are kept in the shared store: signed in on one replica, a person is served
/// by another (no load-balancer affinity), a sign-out on one ends the session on all, and a
/// session outlives the replica that created it. A cookie whose key half was altered opens
/// nothing.
#[test]
fn a_console_session_is_served_by_every_replica_and_outlives_its_own() {
    let Some(server) = chaoshub_testkit::postgres::shared() else {
        return; // the locator printed the SKIP line (a failure under CI=true)
    };
    let db = server.create_database();
    let mut replicas = Replicas::start(&db.url, 2, &[]);
    let url = |r: &Replicas, i: usize| r.hubs[i].as_ref().unwrap().url.clone();
    let browser = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = replicas.token.clone();
    let login = |base: &str| -> String {
        let answer = browser
            .post(format!("{base}/login"))
            .form(&[("token", token.as_str()), ("next", "/")])
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 303, "login on {base}");
        let cookie = answer.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    };
    // (status, location, body) of a console page.
    let page = |base: &str, path: &str, cookie: &str| -> (u16, String, String) {
        let answer = browser
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .unwrap();
        let status = answer.status().as_u16();
        let location = answer
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, location, answer.text().unwrap())
    };
    let (a, b) = (url(&replicas, 0), url(&replicas, 1));

    let cookie = login(&a);
    let (_, value) = cookie.split_once('=').unwrap();
    assert!(
        value.contains('.'),
        "a shared session's cookie holds id.key: {cookie}"
    );
    let (status, _, body) = page(&b, "/environments", &cookie);
    assert_eq!(
        status, 200,
        "the other replica did not know the session: {body}"
    );
    assert!(body.contains("<h1"), "{body}");
    // The key half altered: the sealed token does not open, so no session.
    let mut forged = cookie.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let (status, location, _) = page(&b, "/environments", &forged);
    assert_eq!((status, location.starts_with("/login")), (303, true));

    // Sign out on B ends it on A too.
    let (_, _, body) = page(&b, "/", &cookie);
    let csrf = body
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with the CSRF token")
        .to_string();
    let out = browser
        .post(format!("{b}/logout"))
        .header("cookie", cookie.as_str())
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let (status, location, _) = page(&a, "/", &cookie);
    assert_eq!(
        (status, location.starts_with("/login")),
        (303, true),
        "signed out on B, still in on A"
    );

    // A session made on B outlives B.
    let cookie = login(&b);
    replicas.hubs[1].as_mut().unwrap().kill9();
    replicas.hubs[1] = None;
    let (status, _, body) = page(&a, "/environments", &cookie);
    assert_eq!(status, 200, "the session died with its replica: {body}");
    eprintln!("\nconsole sessions: signed in on hub-1, served by hub-2; signed out on hub-2, gone on hub-1; a session made on hub-2 served by hub-1 after hub-2 was killed; a forged key opened nothing");
}
