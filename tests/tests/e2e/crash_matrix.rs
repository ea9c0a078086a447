//! The crash matrix (issue 16): every failpoint of the engine (`hub/src/failpoints.rs`) ×
//! every far side that runs here — the webhook plugin (Python `fsfault`), a real Toxiproxy 2.12,
//! a real Envoy, a real Docker engine, the native agent in a network namespace, SSM, and
//! Kubernetes (a real kube-apiserver with the tests' stand-in for Chaos Mesh's controller).
//!
//! SSM's far side is not AWS: it is `chaoshub_testkit::ssm::EmulatedSsm`, the tests' own
//! emulation of SSM Run Command and of the SSM agent, which runs every script the hub's real
//! adapter sends (through the real AWS SDK) as root inside a network namespace. So the
//! partition it injects is really applied, read back and removed there, or left behind where
//! `faults()` finds it. What it cannot show is AWS's own behaviour (eventual consistency,
//! throttling, delivery to a real agent); see docs/reliability.md.
//!
//! Each round starts the real hub binary with `CHAOSHUB_FAILPOINTS=<point>=abort`, submits one
//! experiment, waits for the hub to kill itself (SIGKILL) at that point, starts it again on the
//! same data dir with no failpoint, and then asserts:
//! - the experiment ends `Finished` (the fault ran its window, or ran again for what was left);
//! - whenever the hub says `Running` after the restart, exactly one fault is in place on the far
//!   side (never one missing, never two);
//! - once it has ended, no fault is left on the far side, and what the user put there is intact;
//! - no experiment is lost or duplicated, and its events run from `created` to `finished`.
//!
//! The failpoint list is read from the hub's source, so a new failpoint joins the matrix by
//! itself. Each far side is one test; they run in parallel.
//!
//! After its matrix, each far side also gets a seeded **random kill campaign**: N trials of
//! submit → SIGKILL the hub at a random moment (every other trial within 60 ms, the rest within
//! 3.5 s) → restart on the same data dir →
//! wait for the end, counting orphans (faults left on the far side), lost experiments (not
//! found, or not `Finished`) and damaged user state; the goal is 0 / 0 / 0. N is 3 in the
//! regular run; `CHAOSHUB_KILL_CAMPAIGN_N` sets it (docs/reliability.md records N = 100) and
//! `CHAOSHUB_KILL_CAMPAIGN_SEED` the seed (printed with the figures), and
//! `CHAOSHUB_KILL_CAMPAIGN_ONLY=1` skips the failpoints (`=agent`: runs only the agent
//! campaign below).
//!
//! A far side with a process of its own (the native agent) then gets a second campaign with
//! the same N: the agent SIGKILLed at a random moment and restarted at once on the same state
//! (its journal removes what it held, the hub learns it on reconnection), with the hub killed at
//! the same moment every third trial. Same counts, same goal.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use chaoshub_testkit::ssm::EmulatedSsm;
use chaoshub_testkit::toxiproxy::ToxiproxyServer;
use serde_json::Value;

use super::envoy::harness::{Bootstrap, EnvoyProcess, Upstream};
use super::support::*;

/// A far side the matrix drives.
trait FarSide {
    fn adapter(&self) -> &'static str;
    /// Registers (or replaces) the environment `lab`.
    fn register(&self, api: &Api);
    /// An experiment named `name` on `lab` lasting `duration`.
    fn manifest(&self, name: &str, duration: &str) -> String;
    /// How many of the hub's faults are in place now, read off the far side itself.
    fn faults(&self) -> usize;
    /// What the user put on the far side before the matrix is still there, unchanged.
    fn user_state(&self) -> Result<(), String>;
    /// Where the hub listens (the same address at every restart: agents dial it).
    fn listen(&self) -> String {
        "127.0.0.1:0".into()
    }
    /// Waits until the far side can take a fault from this hub (an agent reconnected).
    fn ready(&self, api: &Api) {
        let _ = api;
    }
    /// The far side's own process the hub does not start (the native agent), if it has one:
    /// the agent campaign SIGKILLs it too.
    fn own_process(&self) -> Option<&'static str> {
        None
    }
    /// SIGKILLs [`FarSide::own_process`] and starts it again at once on the same state, as a
    /// service manager would.
    fn kill_and_restart_own_process(&self) {
        unreachable!("{} has no process of its own", self.adapter())
    }
}

/// The engine's failpoints, read from the hub's source.
fn failpoints() -> Vec<String> {
    let source = std::fs::read_to_string(workspace_root().join("hub/src/failpoints.rs")).unwrap();
    let list = &source[source.find("pub const POINTS").unwrap()..];
    let list = &list[..list.find("];").unwrap()];
    let names: Vec<String> = list
        .split('"')
        .filter(|s| s.starts_with("engine.") && !s.contains(' '))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() >= 7,
        "failpoints not found in the source: {names:?}"
    );
    names
}

const DURATION: &str = "4s";

/// The campaign's fault: short, so random kill moments land before, during and after it.
const CAMPAIGN_DURATION: &str = "2s";

/// A small seeded generator (splitmix64): the same seed gives the same kill moments.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below
    }
}

impl Moments {
    /// When to kill in trial `trial`: every other kill in the first 60 ms (submission,
    /// injection, confirmation), the rest anywhere in 0–3.5 s (mostly while Running, some after
    /// the 2 s deadline).
    fn kill_after(&mut self, trial: u64) -> Duration {
        let window = if trial.is_multiple_of(2) { 60 } else { 3500 };
        Duration::from_millis(self.next_ms(window))
    }
}

/// Submits the campaign's fault named `name` on `far`, waits `kill_after`, and returns the
/// experiment's uid and the phase the hub reports then.
fn submit_and_wait(
    far: &dyn FarSide,
    api: &Api,
    name: &str,
    kill_after: Duration,
) -> (String, String) {
    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&far.manifest(name, CAMPAIGN_DURATION)),
    );
    assert_eq!(code, 201, "{name}: {created}");
    let id = uid(&created);
    std::thread::sleep(kill_after);
    let phase = api.experiment(&id)["status"]["phase"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    (id, phase)
}

fn campaign_setting(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not a whole number")),
        Err(_) => default,
    }
}

/// The random kill campaign (see the module doc) on `far`; panics unless 0 / 0 / 0.
fn run_campaign(far: &dyn FarSide, dir: &Path) {
    let trials = campaign_setting("CHAOSHUB_KILL_CAMPAIGN_N", 3);
    let seed = campaign_setting("CHAOSHUB_KILL_CAMPAIGN_SEED", 20261207);
    let mut moments = Moments(seed);
    let mut tally = Tally::new();
    let started = Instant::now();
    for trial in 0..trials {
        let kill_after = moments.kill_after(trial);
        let mut hub = HubProcess::start_replica_on(dir, &far.listen(), "", &[]);
        let api = Api::new(&hub.url);
        far.register(&api);
        far.ready(&api);
        let (id, phase) = submit_and_wait(far, &api, &format!("kill-{seed}-{trial}"), kill_after);
        hub.kill9();
        *tally.phases_at_kill.entry(phase.clone()).or_default() += 1;
        drop(hub);
        let hub = HubProcess::start_replica_on(dir, &far.listen(), "", &[]);
        let api = Api::new(&hub.url);
        let what = format!(
            "trial {trial} (killed {} ms in, {phase})",
            kill_after.as_millis()
        );
        tally.settle(far, &api, &id, &what);
        drop(hub);
    }
    tally.report(
        far,
        &format!("{trials} trials (seed {seed}, SIGKILL at 0–60 ms or 0–3.5 s after submitting a {CAMPAIGN_DURATION} fault"),
        started,
        String::new(),
    );
}

/// How one campaign trial ended.
struct Tally {
    orphans: usize,
    lost: usize,
    damaged: usize,
    problems: Vec<String>,
    phases_at_kill: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            orphans: 0,
            lost: 0,
            damaged: 0,
            problems: Vec::new(),
            phases_at_kill: Default::default(),
        }
    }

    /// Prints the campaign's figures; panics unless 0 / 0 / 0 (with `log` appended).
    fn report(&self, far: &dyn FarSide, what: &str, started: Instant, log: String) {
        eprintln!(
            "\nkill campaign, {}: {what}; phase at the kill: {:?}) in {} s: orphans {}, lost {}, damaged {}",
            far.adapter(),
            self.phases_at_kill,
            started.elapsed().as_secs(),
            self.orphans,
            self.lost,
            self.damaged,
        );
        assert!(
            self.problems.is_empty(),
            "kill campaign on {} ({what}): {}\n{log}",
            far.adapter(),
            self.problems.join("\n"),
        );
    }

    /// Waits (60 s at most) for experiment `id` to end on `api` and counts what is wrong.
    fn settle(&mut self, far: &dyn FarSide, api: &Api, id: &str, what: &str) {
        let since = Instant::now();
        let end = loop {
            let v = api.experiment(id);
            let p = v["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if v["metadata"]["uid"].is_null()
                || ["Finished", "Failed", "Aborted"].contains(&p.as_str())
                || since.elapsed() > Duration::from_secs(60)
            {
                break v;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if end["status"]["phase"] != "Finished" {
            self.lost += 1;
            self.problems.push(format!(
                "{what}: ended {:?}: {}",
                end["status"]["phase"], end["status"]
            ));
        }
        let left = far.faults();
        if left > 0 {
            self.orphans += left;
            self.problems.push(format!("{what}: {left} fault(s) left"));
        }
        if let Err(e) = far.user_state() {
            self.damaged += 1;
            self.problems.push(format!("{what}: the user's state: {e}"));
        }
    }
}

/// The campaign against the far side's own process (the agent): N trials of submitting a 2 s
/// fault and SIGKILLing the agent at a random moment, restarting it at once on the same state
/// (its journal removes what it held); every third trial the hub is SIGKILLed at the same
/// moment too and restarted. Counts as [`run_campaign`] does; panics unless 0 / 0 / 0.
fn run_own_process_campaign(far: &dyn FarSide, dir: &Path) {
    let own = far
        .own_process()
        .expect("a far side with a process of its own");
    let trials = campaign_setting("CHAOSHUB_KILL_CAMPAIGN_N", 3);
    let seed = campaign_setting("CHAOSHUB_KILL_CAMPAIGN_SEED", 20261207);
    let mut moments = Moments(seed ^ 0x5eed_a6e7);
    let mut tally = Tally::new();
    let (mut agent_only, mut both) = (0, 0);
    let started = Instant::now();
    let mut hub = HubProcess::start_replica_on(dir, &far.listen(), "", &[]);
    for trial in 0..trials {
        let api = Api::new(&hub.url);
        far.register(&api);
        far.ready(&api);
        let kill_after = moments.kill_after(trial);
        let with_hub = trial % 3 == 2;
        let name = format!("kill-{own}-{seed}-{trial}").replace(' ', "-");
        let (id, phase) = submit_and_wait(far, &api, &name, kill_after);
        if with_hub {
            hub.kill9();
        }
        far.kill_and_restart_own_process();
        *tally.phases_at_kill.entry(phase.clone()).or_default() += 1;
        if with_hub {
            both += 1;
            drop(hub);
            hub = HubProcess::start_replica_on(dir, &far.listen(), "", &[]);
        } else {
            agent_only += 1;
        }
        let api = Api::new(&hub.url);
        let what = format!(
            "trial {trial} ({own}{} killed {} ms in, {phase})",
            if with_hub { " and hub" } else { "" },
            kill_after.as_millis()
        );
        tally.settle(far, &api, &id, &what);
    }
    tally.report(
        far,
        &format!("{own} killed: {agent_only} trials alone, {both} with the hub; {trials} trials (seed {seed}, SIGKILL at 0–60 ms or 0–3.5 s after submitting a {CAMPAIGN_DURATION} fault, {own} restarted at once"),
        started,
        hub.log(),
    );
}

/// The failpoint matrix, then the random kill campaigns, on `far`.
/// `CHAOSHUB_KILL_CAMPAIGN_ONLY=1`: the campaigns alone; `=agent`: the campaign against the far
/// side's own process alone.
fn run_matrix(far: &dyn FarSide, dir: &Path) {
    let only = std::env::var("CHAOSHUB_KILL_CAMPAIGN_ONLY").ok();
    if only.is_none() {
        run_failpoints(far, dir);
    }
    if only.as_deref() != Some("agent") {
        run_campaign(far, dir);
    }
    if far.own_process().is_some() {
        run_own_process_campaign(far, dir);
    }
}

fn run_failpoints(far: &dyn FarSide, dir: &Path) {
    let mut rows = Vec::new();
    let mut known: Vec<String> = Vec::new();
    for (round, point) in failpoints().iter().enumerate() {
        let started = Instant::now();
        let armed = format!("{point}=abort");
        let mut hub = HubProcess::start_replica_on(
            dir,
            &far.listen(),
            "",
            &[("CHAOSHUB_FAILPOINTS", &armed)],
        );
        let api = Api::new(&hub.url);
        far.register(&api);
        far.ready(&api);
        let name = format!("crash-{round}");
        // The pass starts as the submission is stored: a failpoint early in it may kill the hub
        // before the answer is sent. The submission is durable all the same; it is looked up
        // by name after the restart.
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/experiments", hub.url))
            .bearer_auth(&hub.token)
            .header("content-type", "application/yaml")
            .body(far.manifest(&name, DURATION))
            .send()
            .and_then(|r| Ok((r.status().as_u16(), r.json::<Value>()?)));
        let submitted = match answer {
            Ok((code, created)) => {
                assert_eq!(code, 201, "{point}: {created}");
                Some(uid(&created))
            }
            Err(_) => None,
        };
        assert!(
            hub.wait_exit(Duration::from_secs(30)),
            "{point}: the hub never reached its failpoint: {:?}\n{}",
            submitted.as_ref().map(|id| api.experiment(id)),
            hub.log()
        );
        let crashed_at = started.elapsed();
        let at_crash = far.faults();
        assert!(
            at_crash <= 1,
            "{point}: {at_crash} faults in place at the crash"
        );

        let hub = HubProcess::start_replica_on(dir, &far.listen(), "", &[]);
        let api = Api::new(&hub.url);
        let restarted = Instant::now();
        let id = submitted.unwrap_or_else(|| {
            let listed = api.get("/api/v1/experiments?limit=500");
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["metadata"]["name"] == name.as_str())
                .map(uid)
                .unwrap_or_else(|| panic!("{point}: the submission of {name} was lost: {listed:#}"))
        });
        known.push(id.clone());
        let phase_after_restart = api.experiment(&id)["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut running_checks = 0;
        let done = loop {
            let v = api.experiment(&id);
            let phase = v["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ["Finished", "Failed", "Aborted"].contains(&phase.as_str()) {
                break v;
            }
            if phase == "Running" {
                // Read the far side, then make sure the hub still said Running after the read
                // (its deadline may have passed in between).
                let in_place = far.faults();
                let still = api.experiment(&id)["status"]["phase"] == "Running";
                if still {
                    assert_eq!(
                        in_place, 1,
                        "{point}: the hub says Running with {in_place} faults in place: {v:#}"
                    );
                    running_checks += 1;
                }
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(60),
                "{point}: not ended 60 s after the restart: {v:#}\n{}",
                hub.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            done["status"]["phase"],
            "Finished",
            "{point}: {done:#}\n{}",
            hub.log()
        );
        assert_eq!(
            far.faults(),
            0,
            "{point}: a fault was left behind: {done:#}"
        );
        far.user_state()
            .unwrap_or_else(|e| panic!("{point}: the user's state was touched: {e}"));
        let events: Vec<String> = api.get(&format!("/api/v1/events?experiment={id}&limit=500"))
            ["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            events.first().map(String::as_str),
            Some("chaoshub.experiment.created"),
            "{point}: {events:?}"
        );
        assert_eq!(
            events.last().map(String::as_str),
            Some("chaoshub.experiment.finished"),
            "{point}: {events:?}"
        );
        // No experiment lost or duplicated: exactly the ones submitted, each once.
        let listed = api.get("/api/v1/experiments?limit=500");
        let mut uids: Vec<String> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        uids.sort();
        let mut expected = known.clone();
        expected.sort();
        assert_eq!(uids, expected, "{point}: experiments lost or duplicated");
        rows.push(format!(
            "| {} | {point} | {} ms | {phase_after_restart} | {} ms | {running_checks} | Finished, 0 left |",
            far.adapter(),
            crashed_at.as_millis(),
            restarted.elapsed().as_millis(),
        ));
        drop(hub);
    }
    let mut text = format!(
        "\ncrash matrix, {}: SIGKILL at each failpoint, restart, check the far side\n\n\
         | adapter | failpoint | hub start → crash | phase first read after restart | restart → end | Running checks (1 fault each) | result |\n|---|---|---:|---|---:|---:|---|\n",
        far.adapter()
    );
    for row in rows {
        text.push_str(&row);
        text.push('\n');
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

struct PluginSide {
    plugin: Plugin,
    user_file: std::path::PathBuf,
}

impl FarSide for PluginSide {
    fn adapter(&self) -> &'static str {
        "webhook (fsfault)"
    }
    fn register(&self, api: &Api) {
        register_plugin(api, "lab", &self.plugin);
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        fill_yaml(name, "lab", Some(duration), "64kB")
    }
    fn faults(&self) -> usize {
        self.plugin.fill_files().len()
    }
    fn user_state(&self) -> Result<(), String> {
        match std::fs::read_to_string(&self.user_file) {
            Ok(text) if text == "the user's own file" => Ok(()),
            other => Err(format!("{}: {other:?}", self.user_file.display())),
        }
    }
}

#[test]
fn every_failpoint_on_the_webhook_plugin_leaves_nothing_and_loses_nothing() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // A long dead man's switch: only the hub may remove the fault.
    let plugin = Plugin::start(dir.path(), 300);
    let user_file = plugin.web_dir.join("index.html");
    std::fs::write(&user_file, "the user's own file").unwrap();
    run_matrix(&PluginSide { plugin, user_file }, dir.path());
}

struct ToxiproxySide {
    server: ToxiproxyServer,
}

impl ToxiproxySide {
    fn toxics(&self) -> Vec<Value> {
        toxics(&self.server, "web")
    }
}

impl FarSide for ToxiproxySide {
    fn adapter(&self) -> &'static str {
        "toxiproxy"
    }
    fn register(&self, api: &Api) {
        let yaml = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: lab}}\nspec: {{adapter: toxiproxy, endpoint: \"{}\"}}\n",
            self.server.url
        );
        let (code, v) = api.post("/api/v1/environments?replace=true", Some(&yaml));
        assert!(code == 201 || code == 200, "{v}");
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: ProxyChaos\nmetadata: {{name: {name}}}\nspec:\n  action: latency\n  mode: all\n  selector:\n    labelSelectors: {{name: web}}\n  latency: {{latency: 150}}\n  duration: {duration}\n  environment: lab\n"
        )
    }
    fn faults(&self) -> usize {
        self.toxics()
            .iter()
            .filter(|t| t["name"] != "users-own")
            .count()
    }
    fn user_state(&self) -> Result<(), String> {
        let toxics = self.toxics();
        let own: Vec<&Value> = toxics.iter().filter(|t| t["name"] == "users-own").collect();
        match own.as_slice() {
            [t] if t["attributes"]["rate"] == 1000 => Ok(()),
            _ => Err(format!("the user's bandwidth toxic: {toxics:?}")),
        }
    }
}

#[test]
fn every_failpoint_on_a_real_toxiproxy_leaves_nothing_and_loses_nothing() {
    install_crypto_provider();
    let Some(server) = ToxiproxyServer::start() else {
        return; // the locator printed the SKIP line (a failure under CI=true)
    };
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    server.create_proxy("web", upstream.local_addr().unwrap());
    let (code, body) = {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/proxies/web/toxics", server.url))
            .body(r#"{"name":"users-own","type":"bandwidth","stream":"upstream","attributes":{"rate":1000}}"#)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    assert_eq!(code, 200, "the user's own toxic: {body}");
    let dir = tempfile::tempdir().unwrap();
    run_matrix(&ToxiproxySide { server }, dir.path());
}

struct EnvoySide {
    envoy: EnvoyProcess,
    before: Vec<(String, String)>,
}

impl FarSide for EnvoySide {
    fn adapter(&self) -> &'static str {
        "envoy"
    }
    fn register(&self, api: &Api) {
        super::envoy::register_envoy(api, "lab", &self.envoy);
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        super::envoy::abort_yaml(name, "lab", duration, 503)
    }
    /// Envoy's runtime holds one fault per listener: in place when the admin layer differs
    /// from the user's own.
    fn faults(&self) -> usize {
        usize::from(self.envoy.admin_layer() != self.before)
    }
    fn user_state(&self) -> Result<(), String> {
        let now = self.envoy.admin_layer();
        if now == self.before {
            Ok(())
        } else {
            Err(format!("runtime {now:?}, the user's was {:?}", self.before))
        }
    }
}

#[test]
fn every_failpoint_on_a_real_envoy_leaves_nothing_and_loses_nothing() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let envoy = EnvoyProcess::start(dir.path(), &Bootstrap::new(upstream.port));
    // The user's own runtime override, which every round must leave as it was.
    assert_eq!(
        envoy
            .admin_post("runtime_modify?fault.http.abort.http_status=429")
            .0,
        200
    );
    let before = envoy.admin_layer();
    run_matrix(&EnvoySide { envoy, before }, dir.path());
    drop(upstream);
}

struct DockerSide {
    target: super::docker::Container,
    group: String,
    /// A container of the user's, not selected: must stay running and unpaused.
    bystander: super::docker::Container,
}

impl FarSide for DockerSide {
    fn adapter(&self) -> &'static str {
        "docker"
    }
    fn register(&self, api: &Api) {
        // The hub's own recovery is what is tested: no engine-side watchdog.
        super::docker::register_docker(api, false);
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        super::docker::pod_failure(name, &self.group, duration)
    }
    /// `pod-failure` pauses the container: in place while it is paused.
    fn faults(&self) -> usize {
        usize::from(self.target.paused())
    }
    fn user_state(&self) -> Result<(), String> {
        if self.bystander.paused() {
            return Err("the unselected container was paused".into());
        }
        // Both containers still exist and run (a recovery never removes a user's container).
        self.target.connect_rtt();
        self.bystander.connect_rtt();
        Ok(())
    }
}

#[test]
fn every_failpoint_on_a_real_docker_engine_leaves_nothing_and_loses_nothing() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let group = super::docker::group();
    let target = super::docker::Container::run(&group);
    let bystander = super::docker::Container::run(&super::docker::group());
    run_matrix(
        &DockerSide {
            target,
            group,
            bystander,
        },
        dir.path(),
    );
}

struct NativeSide {
    topo: super::netns::Topology,
    _peer: super::netns::PeerServices,
    listen: String,
    state: tempfile::TempDir,
    agent: std::sync::Mutex<Option<super::netns::AgentProcess>>,
}

impl NativeSide {
    fn token_file(&self) -> std::path::PathBuf {
        self.state.path().join("join.token")
    }

    /// The agent in namespace A, on the same state directory (credential and journal) each time.
    fn start_agent(&self) -> super::netns::AgentProcess {
        super::netns::AgentProcess::start(
            &self.topo.a,
            &format!("http://{}", self.listen),
            "hosts",
            "agent-a",
            &self.state.path().join("agent-state"),
            &["--join-token-file", self.token_file().to_str().unwrap()],
        )
    }

    fn agent_log(&self) -> String {
        self.agent
            .lock()
            .unwrap()
            .as_ref()
            .map(|a| a.log())
            .unwrap_or_default()
    }
}

impl FarSide for NativeSide {
    fn adapter(&self) -> &'static str {
        "native agent"
    }
    fn listen(&self) -> String {
        self.listen.clone()
    }
    fn register(&self, api: &Api) {
        let (code, v) = api.post(
            "/api/v1/environments?replace=true",
            Some("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: hosts}\nspec: {adapter: native}\n"),
        );
        assert!(code == 201 || code == 200, "{v}");
        let mut agent = self.agent.lock().unwrap();
        if agent.is_none() {
            // First round: the agent joins once and keeps its credential across hub restarts.
            let (code, v) = api.post("/api/v1/environments/hosts/join-tokens", None);
            assert_eq!(code, 201, "{v}");
            std::fs::write(self.token_file(), v["token"].as_str().unwrap()).unwrap();
            *agent = Some(self.start_agent());
        }
    }
    fn own_process(&self) -> Option<&'static str> {
        Some("agent")
    }
    fn kill_and_restart_own_process(&self) {
        let mut agent = self.agent.lock().unwrap();
        if let Some(old) = agent.as_mut() {
            old.kill9();
        }
        *agent = Some(self.start_agent());
    }
    fn ready(&self, api: &Api) {
        wait_agent_health(
            api,
            "hosts",
            "agent-a",
            "healthy",
            Duration::from_secs(30),
            || self.agent_log(),
        );
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        super::agent::network_chaos(
            name,
            &self.topo.b_ip,
            duration,
            "  action: delay\n  delay: {latency: 50ms}\n",
        )
    }
    /// Whatever the agent's delay put in A's kernel (nft tables, qdiscs, NFQUEUE rules).
    fn faults(&self) -> usize {
        usize::from(!self.topo.leftovers().is_empty())
    }
    fn user_state(&self) -> Result<(), String> {
        let tables = super::netns::in_ns_cmd(&self.topo.a, "nft", &["list", "tables"]);
        if tables.contains("users_own") {
            Ok(())
        } else {
            Err(format!("the user's nft table is gone: {tables}"))
        }
    }
}

#[test]
fn every_failpoint_on_the_native_agent_leaves_nothing_and_loses_nothing() {
    install_crypto_provider();
    let topo = super::netns::Topology::new();
    let peer = super::netns::PeerServices::start(&topo.b, &topo.b_ip);
    // The user's own table in the agent's namespace, which no recovery may touch.
    super::netns::in_ns_cmd(&topo.a, "nft", &["add", "table", "inet", "users_own"]);
    let port = free_port(&topo.hub_ip);
    let side = NativeSide {
        listen: format!("{}:{port}", topo.hub_ip),
        topo,
        _peer: peer,
        state: tempfile::tempdir().unwrap(),
        agent: std::sync::Mutex::new(None),
    };
    let dir = tempfile::tempdir().unwrap();
    run_matrix(&side, dir.path());
}

/// A real kube-apiserver with Chaos Mesh's CRDs (the `kubernetes` adapter federating Chaos Mesh
/// objects); the stand-in for Chaos Mesh's controller (see `e2e::kubernetes`) lives in this
/// process, so it keeps answering while the hub is killed and restarted.
struct KubernetesSide {
    rt: tokio::runtime::Runtime,
    kubeconfig: std::path::PathBuf,
    ns: super::kubernetes::k8s::TestNamespace,
    objects: kube::Api<kube::api::DynamicObject>,
    /// The user's own NetworkChaos in the same namespace, as it was: name and spec.
    users_own: (String, Value),
    _standin: super::kubernetes::standin::StandInChaosMeshController,
}

impl KubernetesSide {
    fn names(&self, labelled: bool) -> Vec<String> {
        let params = if labelled {
            kube::api::ListParams::default().labels("chaoshub.dev/experiment-uid")
        } else {
            kube::api::ListParams::default()
        };
        self.rt
            .block_on(self.objects.list(&params))
            .unwrap()
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()
    }
}

impl FarSide for KubernetesSide {
    fn adapter(&self) -> &'static str {
        "kubernetes (Chaos Mesh federation)"
    }
    fn register(&self, api: &Api) {
        let env = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: cluster-k}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: chaos-mesh}}\n",
            self.kubeconfig.display()
        );
        let (code, v) = api.post("/api/v1/environments?replace=true", Some(&env));
        assert!(code == 201 || code == 200, "{v}");
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        super::kubernetes::delay(name, &self.ns.name, duration)
    }
    /// The hub's Chaos Mesh objects in the namespace (each one is a fault Chaos Mesh holds),
    /// counted until they are really gone (a deleted object waits for its finalizer).
    fn faults(&self) -> usize {
        self.names(true).len()
    }
    fn user_state(&self) -> Result<(), String> {
        let (name, spec) = &self.users_own;
        match self.rt.block_on(self.objects.get_opt(name)).unwrap() {
            Some(o) if &o.data["spec"] == spec => Ok(()),
            Some(o) => Err(format!("the user's {name} was changed: {}", o.data["spec"])),
            None => Err(format!("the user's {name} was deleted")),
        }
    }
}

#[test]
fn every_failpoint_on_kubernetes_leaves_nothing_and_loses_nothing() {
    use super::kubernetes::k8s;
    install_crypto_provider();
    let Some(server) = k8s::server() else {
        return; // the locator printed the SKIP line (a failure under CI=true)
    };
    let super::kubernetes::Cluster {
        standin,
        ns,
        client,
        rt,
    } = super::kubernetes::Cluster::start(server, "crash-matrix");
    standin.open_gate();
    let objects: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client, &ns.name, &super::kubernetes::network_chaos());
    // The user's own experiment, run by Chaos Mesh beside the hub's: no recovery may touch it.
    let users_own: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": "users-own", "namespace": ns.name},
        "spec": {"action": "loss", "mode": "one", "selector": {"labelSelectors": {"app": "web"}},
                 "loss": {"loss": "10"}, "duration": "1h"}
    }))
    .unwrap();
    let created = rt
        .block_on(objects.create(&kube::api::PostParams::default(), &users_own))
        .unwrap();
    let side = KubernetesSide {
        kubeconfig: server.kubeconfig.clone(),
        users_own: ("users-own".into(), created.data["spec"].clone()),
        objects,
        ns,
        _standin: standin,
        rt,
    };
    let dir = tempfile::tempdir().unwrap();
    run_matrix(&side, dir.path());
    let KubernetesSide {
        rt, ns, _standin, ..
    } = side;
    drop(_standin);
    drop(ns);
    drop(rt);
}

/// The instance the emulated SSM runs commands on.
const SSM_INSTANCE: &str = "i-0c5a5e0000000c001";

struct SsmSide {
    /// The tests' own emulation of SSM and the SSM agent (`chaoshub_testkit::ssm`): every
    /// command's script runs for real in namespace A. Declared first so it is dropped first: it
    /// kills what the scripts still run before the namespaces go.
    ssm: EmulatedSsm,
    topo: super::netns::Topology,
    /// The shared config and credentials files of a dummy profile (no checks of signatures).
    aws: tempfile::TempDir,
}

impl SsmSide {
    fn iptables(&self) -> String {
        super::netns::in_ns_cmd(&self.topo.a, "iptables-save", &[])
    }
}

impl FarSide for SsmSide {
    fn adapter(&self) -> &'static str {
        "ssm (emulated SSM + agent)"
    }
    fn register(&self, api: &Api) {
        let file = |name: &str| self.aws.path().join(name).display().to_string();
        let yaml = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: lab}}\nspec:\n  adapter: ssm\n  endpoint: \"{}\"\n  settings:\n    region: us-east-1\n    profile: chaoshub-test\n    config_file: \"{}\"\n    credentials_file: \"{}\"\n    state_dir: \"{}\"\n    revert_scheduler: nohup\n    poll_interval_ms: 100\n    retry_backoff_ms: 50\n    command_timeout_secs: 30\n    tags: {{role: web}}\n",
            self.ssm.url(),
            file("config"),
            file("credentials"),
            self.ssm.state_dir().display()
        );
        let (code, v) = api.post("/api/v1/environments?replace=true", Some(&yaml));
        assert!(code == 201 || code == 200, "{v}");
    }
    fn manifest(&self, name: &str, duration: &str) -> String {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: lab\n  action: partition\n  mode: all\n  selector:\n    labelSelectors: {{role: web}}\n  direction: to\n  device: {}\n  externalTargets: [\"{}\"]\n  duration: {duration}\n",
            self.topo.a_to_b_dev, self.topo.b_ip
        )
    }
    /// The injections whose trace is on the instance: iptables rules carrying a chaoshub
    /// comment in A's kernel, and state directories the scripts left (a revert not yet run),
    /// counted by injection id; anything else of ours in A's kernel (a qdisc, an nft table)
    /// counts as one more.
    fn faults(&self) -> usize {
        let mut ids = std::collections::BTreeSet::new();
        for line in self.iptables().lines() {
            if let Some(rest) = line.split("chaoshub:").nth(1) {
                let id: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                ids.insert(id);
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.ssm.state_dir()) {
            for e in entries.flatten() {
                ids.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
        let other = self
            .topo
            .leftovers()
            .iter()
            .any(|l| !l.starts_with("iptables:"));
        ids.len() + usize::from(other)
    }
    fn user_state(&self) -> Result<(), String> {
        let rules = self.iptables();
        match rules.matches("users-own").count() {
            1 => Ok(()),
            n => Err(format!("{n} rules of the user's: {rules}")),
        }
    }
}

/// SSM's far side is the tests' own emulation of SSM Run Command and the SSM agent
/// (`chaoshub_testkit::ssm::EmulatedSsm`, not AWS and not moto, which runs nothing): the hub's
/// real SSM adapter and AWS SDK send the real generated scripts, which run as root in a network
/// namespace, so a partition is really applied, read back and removed there — or left behind.
#[test]
fn every_failpoint_on_ssm_leaves_nothing_and_loses_nothing() {
    install_crypto_provider();
    let topo = super::netns::Topology::new();
    // The user's own rule in the instance's namespace, which no recovery may touch.
    let added = std::process::Command::new("ip")
        .args(["netns", "exec", &topo.a, "iptables", "-w", "-A", "OUTPUT"])
        .args(["-o", &topo.a_to_b_dev, "-d", &topo.b_ip, "-p", "udp"])
        .args(["--dport", "9", "-m", "comment", "--comment", "users-own"])
        .args(["-j", "ACCEPT"])
        .status()
        .expect("cannot run iptables");
    assert!(added.success(), "the user's own iptables rule");
    let ssm = EmulatedSsm::start();
    ssm.add_instance(SSM_INSTANCE, &topo.a, &topo.a_ip, &[("role", "web")]);
    // SSM's cancel is asynchronous: a cancelled script runs on for a moment (Cancelling), so a
    // recovery after a crash mid-injection meets a script still running.
    ssm.set_cancel_delay(Duration::from_millis(300));
    let aws = tempfile::tempdir().unwrap();
    std::fs::write(
        aws.path().join("config"),
        "[profile chaoshub-test]\nregion = us-east-1\n",
    )
    .unwrap();
    std::fs::write(
        aws.path().join("credentials"),
        "[chaoshub-test]\naws_access_key_id = AKIDCHAOSHUBTEST\naws_secret_access_key = chaoshub-test-secret\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    run_matrix(&SsmSide { ssm, topo, aws }, dir.path());
}
