//! The generated scripts run for real on this machine, as root: network faults inside a pair of
//! network namespaces the test creates (joined by a veth pair on 198.18.x.0/30, the
//! benchmarking range, so no traffic leaves them), host faults on processes and files the test
//! owns. Each test measures the fault and its revert — the one the script scheduled itself
//! (nohup fallback: this machine has neither systemd as init nor atd) and the one recovery runs.
//! Everything created is removed by Drop guards, also when an assertion fails.
//!
//! This kernel has no sch_netem, so the delay test checks that the script refuses clearly, and
//! checks the tc command line it would run with a stand-in `tc` on PATH.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chaoshub_adapters::ssm::{netem_handle, plan, recover_script, SsmAdapter, SsmConfig};
use chaoshub_adapters::{Adapter, Environment, FaultRequest};
use chaoshub_schema::environment::EnvironmentSpec;
use serde_json::json;

use super::support::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn require_root() {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .expect("cannot run id");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "these tests run the generated scripts as root (network namespaces, iptables, kill): \
         run them as root"
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair: `a` (x.1) runs the fault, `b` (x.2) is the peer.
/// (`emulated.rs` runs the emulated SSM's instances in them too.)
pub(super) struct Netns {
    pub(super) a: String,
    pub(super) b: String,
    pub(super) dev_a: String,
    pub(super) addr_a: String,
    pub(super) addr_b: String,
}

impl Netns {
    pub(super) fn new() -> Netns {
        require_root();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{}", std::process::id() % 100_000, n);
        // 198.18.0.0/15: a /30 per test, from the pid so parallel test binaries differ too.
        let third = (std::process::id() as u32 % 200 + n * 7) % 250 + 1;
        let ns = Netns {
            a: format!("chs-a-{tag}"),
            b: format!("chs-b-{tag}"),
            dev_a: format!("chsa{tag}").chars().take(15).collect(),
            addr_a: format!("198.18.{third}.1"),
            addr_b: format!("198.18.{third}.2"),
        };
        let dev_b: String = format!("chsb{tag}").chars().take(15).collect();
        must(Command::new("ip").args(["netns", "add", &ns.a]));
        must(Command::new("ip").args(["netns", "add", &ns.b]));
        must(Command::new("ip").args([
            "link", "add", &ns.dev_a, "netns", &ns.a, "type", "veth", "peer", "name", &dev_b,
            "netns", &ns.b,
        ]));
        for (space, dev, addr) in [(&ns.a, &ns.dev_a, &ns.addr_a), (&ns.b, &dev_b, &ns.addr_b)] {
            must(Command::new("ip").args([
                "netns",
                "exec",
                space,
                "ip",
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                dev,
            ]));
            must(Command::new("ip").args(["netns", "exec", space, "ip", "link", "set", dev, "up"]));
            must(
                Command::new("ip").args(["netns", "exec", space, "ip", "link", "set", "lo", "up"]),
            );
        }
        ns
    }

    pub(super) fn exec(&self, space: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", space]).args(args);
        c
    }

    /// Pings a (the faulty "instance") from b; the fraction of replies lost. Measured from the
    /// peer because a's egress drops are then silent: pinging from a itself, ping sees EPERM
    /// from its own sendmsg and sends again, which hides the loss.
    fn loss_rate(&self, count: u32) -> f64 {
        let out = run(&mut self.exec(
            &self.b,
            &[
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.002",
                "-W",
                "1",
                "-q",
                &self.addr_a,
            ],
        ));
        let text = String::from_utf8_lossy(&out.stdout);
        let received: u32 = text
            .lines()
            .find(|l| l.contains("received"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cannot read ping's summary: {text}"));
        1.0 - f64::from(received) / f64::from(count)
    }

    /// Whether a TCP connect from a to b:port completes within 2 s.
    pub(super) fn connects(&self, port: u16) -> bool {
        let probe = format!(
            "import socket\ntry:\n    socket.create_connection(('{}', {port}), timeout=2).close()\nexcept OSError:\n    raise SystemExit(1)\n",
            self.addr_b
        );
        run(&mut self.exec(&self.a, &["python3", "-c", &probe]))
            .status
            .success()
    }

    pub(super) fn iptables_rules(&self) -> String {
        must(&mut self.exec(&self.a, &["iptables", "-w", "-S"]))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veth pair and every rule in them.
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

/// A TCP listener inside namespace b (a python child, killed on drop).
pub(super) struct Listener {
    child: Child,
}

impl Listener {
    pub(super) fn start(ns: &Netns, port: u16) -> Listener {
        let code = format!(
            "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('{}', {port}))\ns.listen(64)\nwhile True:\n    c, _ = s.accept()\n    c.close()\n",
            ns.addr_b
        );
        let child = ns
            .exec(&ns.b, &["python3", "-c", &code])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start the listener");
        let l = Listener { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ns.connects(port) {
            assert!(Instant::now() < deadline, "the listener did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        l
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state directory of the scripts, and whatever the revert may have left: on drop, any
/// revert still pending runs (stopping scheduled sleepers and workers) and the directory goes.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new().prefix("chs").tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self, id: &str) -> PathBuf {
        self.path().join("state").join(id)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.path().join("state")) {
            for e in entries.flatten() {
                let revert = e.path().join("revert.sh");
                if revert.exists() {
                    let _ = Command::new("/bin/sh").arg(&revert).arg("now").output();
                }
            }
        }
    }
}

fn environment(scratch: &Scratch) -> Environment {
    Environment {
        name: "local".into(),
        spec: EnvironmentSpec {
            adapter: "ssm".into(),
            endpoint: None,
            description: None,
            labels: Default::default(),
            settings: json!({
                "region": REGION,
                "state_dir": scratch.path().join("state").to_str().unwrap(),
            })
            .as_object()
            .cloned()
            .unwrap(),
        },
    }
}

fn script_for(scratch: &Scratch, f: &FaultRequest) -> String {
    let config = SsmConfig::from_environment(&environment(scratch)).unwrap();
    plan(f, &config)
        .unwrap()
        .inject
        .script
        .expect("own documents carry a script")
}

/// Writes a script and runs it with /bin/sh, optionally inside a namespace, with extra PATH
/// entries in front.
fn run_script(
    scratch: &Scratch,
    name: &str,
    script: &str,
    netns: Option<&str>,
    path_prefix: Option<&Path>,
) -> Output {
    let file = scratch.path().join(name);
    std::fs::write(&file, script).unwrap();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "/bin/sh"]);
            c
        }
        None => Command::new("/bin/sh"),
    };
    cmd.arg(&file);
    if let Some(prefix) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", prefix.display()));
    }
    run(&mut cmd)
}

/// Runs the inject script planned for `f` (inside `netns` when given) and checks it succeeded.
fn inject_ok(scratch: &Scratch, f: &FaultRequest, netns: Option<&str>) -> Output {
    let out = run_script(scratch, "inject.sh", &script_for(scratch, f), netns, None);
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// Runs the recover script of injection `id` (inside `netns` when given) and checks it
/// succeeded.
fn recover_ok(scratch: &Scratch, id: &str, netns: Option<&str>) -> Output {
    let state = scratch.path().join("state");
    let script = recover_script(state.to_str().unwrap(), id);
    let out = run_script(scratch, "recover.sh", &script, netns, None);
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn loss_drops_a_quarter_of_packets_and_the_scheduled_revert_removes_it() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let id = "a1b2-0";
    let f = fault(
        &network_chaos(
            "loss",
            &format!("  device: {}\n  loss: {{loss: '25'}}\n", ns.dev_a),
            "30s",
        ),
        id,
    );
    let baseline = ns.loss_rate(200);
    assert!(
        baseline < 0.02,
        "the link loses {baseline} before any fault"
    );
    let out = inject_ok(&scratch, &f, Some(&ns.a));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("revert in 30s by nohup"), "{stdout}");
    assert!(ns.iptables_rules().contains("chaoshub:a1b2-0"));

    // 1000 pings take about 6 s here, well inside the fault's 30 s.
    let rate = ns.loss_rate(1000);
    eprintln!(
        "measured loss with a 25% fault over 1000 pings: {:.1}%",
        rate * 100.0
    );
    assert!((0.18..=0.32).contains(&rate), "loss rate {rate}");

    // Running the same inject again (a retried SendCommand) changes nothing.
    let again = run_script(
        &scratch,
        "inject.sh",
        &script_for(&scratch, &f),
        Some(&ns.a),
        None,
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already in place"));
    assert_eq!(ns.iptables_rules().matches("chaoshub:a1b2-0").count(), 1);

    // The revert the script scheduled on the "instance" fires by itself.
    wait_until("the scheduled revert", Duration::from_secs(60), || {
        !ns.iptables_rules().contains("chaoshub:")
    });
    wait_until(
        "the state directory removal",
        Duration::from_secs(5),
        || !scratch.state(id).exists(),
    );
    let after = ns.loss_rate(300);
    assert!(after < 0.02, "loss after the revert: {after}");
    chaoshub_testkit::measured!(
        "NetworkChaos/loss",
        "ssm",
        format!(
            "{:.1} % of 1000 pings lost for 25 % (the generated script run in a namespace); {:.1} % after its scheduled revert",
            rate * 100.0,
            after * 100.0
        ),
        mechanism = "iptables statistic"
    );
}

/// Loss towards an address in `externalTargets`: the peer's pings lose their replies at the
/// asked rate; recovery (the revert script) removes it.
#[test]
fn loss_to_an_external_address_drops_its_share_until_recovery() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let id = "a1b3-0";
    let f = fault(
        &network_chaos(
            "loss",
            &format!(
                "  device: {}\n  externalTargets: ['{}']\n  loss: {{loss: '25'}}\n",
                ns.dev_a, ns.addr_b
            ),
            "10m",
        ),
        id,
    );
    inject_ok(&scratch, &f, Some(&ns.a));
    let rate = ns.loss_rate(1000);
    eprintln!(
        "loss 25% to {}: {:.1}% of 1000 pings",
        ns.addr_b,
        rate * 100.0
    );
    assert!((0.18..=0.32).contains(&rate), "loss rate {rate}");
    recover_ok(&scratch, id, Some(&ns.a));
    let after = ns.loss_rate(300);
    assert!(after < 0.02, "loss after recovery: {after}");
    assert!(!ns.iptables_rules().contains("chaoshub:"));
    chaoshub_testkit::measured!(
        "NetworkChaos/loss (externalTargets address)",
        "ssm",
        format!(
            "{:.1} % of 1000 pings from the listed address lost for 25 % (the generated script run in a namespace); {:.1} % after recovery",
            rate * 100.0,
            after * 100.0
        ),
        mechanism = "iptables statistic"
    );
}

/// Partition from an address in `externalTargets`: no connect to the peer while it holds,
/// connects again after recovery.
#[test]
fn partition_from_an_external_address_cuts_connects_until_recovery() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let port = 19_000 + (std::process::id() % 1000) as u16;
    let _listener = Listener::start(&ns, port);
    let id = "c3d5-0";
    let yaml = network_chaos(
        "partition",
        &format!(
            "  device: {}\n  externalTargets: ['{}']\n",
            ns.dev_a, ns.addr_b
        ),
        "10m",
    );
    inject_ok(&scratch, &fault(&yaml, id), Some(&ns.a));
    let connects = ns.connects(port);
    let pings_lost = ns.loss_rate(50);
    recover_ok(&scratch, id, Some(&ns.a));
    assert!(!connects, "a connect passed the partition");
    assert!(pings_lost > 0.99, "pings lost {pings_lost}");
    assert!(ns.connects(port), "connects again after recovery");
    assert!(ns.loss_rate(50) < 0.1, "pings pass after recovery");
    assert!(!ns.iptables_rules().contains("chaoshub:"));
    chaoshub_testkit::measured!(
        "NetworkChaos/partition (externalTargets address)",
        "ssm",
        format!(
            "TCP connects to the listed address failed, {:.0} % of pings lost while partitioned (the generated script run in a namespace); both pass after recovery",
            pings_lost * 100.0
        ),
        mechanism = "iptables"
    );
}

#[test]
fn a_port_blackhole_blocks_connects_until_recovery_runs_the_revert() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let _listener = Listener::start(&ns, port);
    let id = "c3d4-0";
    let yaml = network_chaos_annotated(
        "partition",
        &format!(
            "  device: {}\n  externalTargets: ['{}']\n",
            ns.dev_a, ns.addr_b
        ),
        "10m",
        &format!(", annotations: {{chaoshub.dev/port: '{port}'}}"),
    );
    inject_ok(&scratch, &fault(&yaml, id), Some(&ns.a));
    assert!(!ns.connects(port), "the port is blackholed");
    // Other ports still pass (only what was asked is cut).
    assert!(ns.loss_rate(50) < 0.1, "ICMP to the peer still flows");

    let out = recover_ok(&scratch, id, Some(&ns.a));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reverted injection c3d4-0"));
    assert!(ns.connects(port), "connects again after recovery");
    assert!(!ns.iptables_rules().contains("chaoshub:"));
    assert!(!scratch.state(id).exists());
    // The recovery also stopped the revert scheduled for ten minutes from now.
    let sleepers =
        must(Command::new("sh").args(["-c", "ps -eo args | grep -c '[s]leep 600' || true"]));
    assert_eq!(sleepers.trim(), "0", "the scheduled revert was cancelled");

    // Recovery again finds nothing to do.
    let out = run_script(
        &scratch,
        "recover.sh",
        &recover_script(scratch.path().join("state").to_str().unwrap(), id),
        Some(&ns.a),
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to revert"),
        "{}",
        text(&out)
    );
}

#[test]
fn delay_refuses_clearly_without_sch_netem_and_leaves_nothing_behind() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let id = "e5f6-0";
    let f = fault(
        &network_chaos(
            "delay",
            &format!(
                "  device: {}\n  delay: {{latency: 100ms, jitter: 10ms, correlation: '25'}}\n",
                ns.dev_a
            ),
            "30s",
        ),
        id,
    );
    let script = script_for(&scratch, &f);
    let handle = netem_handle(id);
    assert!(
        script.contains(&format!(
            "tc qdisc add dev \"$DEV\" root handle {handle} netem delay 100ms 10ms 25%"
        )),
        "{script}"
    );
    let out = run_script(&scratch, "inject.sh", &script, Some(&ns.a), None);
    if out.status.success() {
        // A kernel with netem: the qdisc must be there, then recover.
        let qdisc = must(&mut ns.exec(&ns.a, &["tc", "qdisc", "show", "dev", &ns.dev_a]));
        assert!(qdisc.contains("netem"), "{qdisc}");
        eprintln!(
            "this kernel has sch_netem: the delay was applied and read back ({}); the refusal \
             path is for kernels without it",
            qdisc.trim()
        );
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sch_netem"), "{stderr}");
    assert!(!scratch.state(id).exists(), "nothing is left behind");
    let sleepers =
        must(Command::new("sh").args(["-c", "ps -eo args | grep -c '[s]leep 30;' || true"]));
    assert_eq!(sleepers.trim(), "0", "the scheduled revert was cancelled");
}

/// A stand-in `tc` that logs its arguments and plays a kernel with netem: `qdisc add` works
/// and `qdisc show` reports what was added until `qdisc del`.
fn fake_tc(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("tc.log");
    let qdisc = dir.join("tc.qdisc");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{log}'\ncase \"$1 $2\" in\n  'qdisc add') echo \"qdisc netem $7 root refcnt 2 limit 1000 delay 100ms  10ms 25%\" > '{qdisc}' ;;\n  'qdisc show') cat '{qdisc}' 2>/dev/null ;;\n  'qdisc del') rm -f '{qdisc}' ;;\nesac\nexit 0\n",
        log = log.display(),
        qdisc = qdisc.display()
    );
    let tc = bin.join("tc");
    std::fs::write(&tc, script).unwrap();
    std::fs::set_permissions(&tc, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn delay_runs_the_right_tc_commands_where_netem_exists() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let id = "e5f6-1";
    let f = fault(
        &network_chaos(
            "delay",
            &format!(
                "  device: {}\n  delay: {{latency: 100ms, jitter: 10ms, correlation: '25'}}\n",
                ns.dev_a
            ),
            "3s",
        ),
        id,
    );
    let bin = fake_tc(scratch.path());
    let out = run_script(
        &scratch,
        "inject.sh",
        &script_for(&scratch, &f),
        Some(&ns.a),
        Some(&bin),
    );
    assert!(out.status.success(), "{}", text(&out));
    let handle = netem_handle(id);
    let log = read(&scratch.path().join("tc.log"));
    let dev = &ns.dev_a;
    assert!(
        log.contains(&format!(
            "qdisc add dev {dev} root handle {handle} netem delay 100ms 10ms 25%"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("qdisc show dev {dev} root")),
        "read back: {log}"
    );
    // The scheduled revert (through the nohup fallback, with the same PATH) deletes exactly
    // the qdisc it added.
    wait_until("the scheduled tc revert", Duration::from_secs(15), || {
        read(&scratch.path().join("tc.log"))
            .contains(&format!("qdisc del dev {dev} root handle {handle}"))
    });
}

/// CPU time (user + system, in clock ticks) of a process and its children's live threads.
fn cpu_ticks(pid: u32) -> u64 {
    let mut total = 0;
    let mut pids = vec![pid];
    while let Some(p) = pids.pop() {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        if let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 13 {
                total +=
                    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
            }
        }
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    total
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn stress_cpu_keeps_a_core_busy_until_the_revert() {
    require_root();
    let scratch = Scratch::new();
    let id = "a7b8-0";
    let f = fault(
        &physical_machine_chaos("stress-cpu", "{workers: 1, load: 100}", "5m"),
        id,
    );
    inject_ok(&scratch, &f, None);
    let pids: Vec<u32> = read(&scratch.state(id).join("pids"))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "one worker");
    let before = cpu_ticks(pids[0]);
    std::thread::sleep(Duration::from_secs(3));
    let busy = cpu_ticks(pids[0]) - before;
    eprintln!("stress-cpu worker used {busy} ticks in 3 s");
    // 3 s of a whole core is 300 ticks; an idle process uses none. The two cores here are
    // shared by many builds (load average above 10), so a tenth of a core is the bar.
    assert!(busy >= 30, "the worker used only {busy} ticks in 3 s");

    recover_ok(&scratch, id, None);
    wait_until("the worker's end", Duration::from_secs(5), || {
        !alive(pids[0])
    });
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/stress-cpu",
        "ssm",
        format!(
            "the script's worker used {busy} ticks (of 300) in 3 s for load 100 (shared 2-core machine); the worker is gone after recovery"
        )
    );
}

/// Resident bytes of a process and its descendants (stress-ng keeps its memory in children).
fn tree_rss(pid: u32) -> u64 {
    let mut total = 0;
    let mut pids = vec![pid];
    while let Some(p) = pids.pop() {
        total += read(Path::new(&format!("/proc/{p}/status")))
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    total
}

/// StressChaos through the scripts: `(ticks in 3 s, VmRSS bytes)` of the one worker while it
/// holds; checks the worker is gone after recovery.
fn stress_chaos_worker(stressors: &str, id: &str) -> (u64, u64) {
    require_root();
    let scratch = Scratch::new();
    let yaml = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {{name: s}}\nspec:\n  mode: all\n  selector:\n    labelSelectors: {{team: payments}}\n  stressors: {stressors}\n  duration: 5m\n"
    );
    let f = fault(&yaml, id);
    let out = inject_ok(&scratch, &f, None);
    let pids: Vec<u32> = read(&scratch.state(id).join("pids"))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(!pids.is_empty(), "a worker: {}", text(&out));
    let before = cpu_ticks(pids[0]);
    std::thread::sleep(Duration::from_secs(3));
    let busy = cpu_ticks(pids[0]) - before;
    let rss = pids.iter().map(|pid| tree_rss(*pid)).sum();
    recover_ok(&scratch, id, None);
    wait_until("the workers' end", Duration::from_secs(5), || {
        pids.iter().all(|p| !alive(*p))
    });
    (busy, rss)
}

#[test]
fn stress_chaos_cpu_keeps_a_worker_busy_until_recovery() {
    let (busy, _) = stress_chaos_worker("{cpu: {workers: 1, load: 100}}", "a7b9-0");
    eprintln!("StressChaos cpu worker used {busy} ticks in 3 s");
    assert!(busy >= 30, "the worker used only {busy} ticks in 3 s");
    chaoshub_testkit::measured!(
        "StressChaos/cpu",
        "ssm",
        format!(
            "the script's worker used {busy} ticks (of 300) in 3 s for load 100 (shared 2-core machine); the worker is gone after recovery"
        )
    );
}

#[test]
fn stress_chaos_memory_holds_the_size_until_recovery() {
    let (_, rss) = stress_chaos_worker("{memory: {workers: 1, size: 64MB}}", "a7ba-0");
    let mib = rss as f64 / (1 << 20) as f64;
    eprintln!("StressChaos memory 64MB: the worker holds {mib:.1} MiB");
    assert!(rss >= 60_000_000, "the worker holds only {mib:.1} MiB");
    chaoshub_testkit::measured!(
        "StressChaos/memory",
        "ssm",
        format!(
            "the script's worker holds {mib:.1} MiB resident for 64MB; the worker is gone after recovery"
        )
    );
}

#[test]
fn disk_fill_writes_the_file_and_the_revert_removes_it() {
    require_root();
    let scratch = Scratch::new();
    let dir = scratch.path().join("fill");
    std::fs::create_dir_all(&dir).unwrap();
    let id = "c9d0-0";
    let f = fault(
        &physical_machine_chaos(
            "disk-fill",
            &format!(
                "{{path: {}, size: 8MB, fill-by-fallocate: false}}",
                dir.display()
            ),
            "3s",
        ),
        id,
    );
    inject_ok(&scratch, &f, None);
    let file = dir.join(format!("chaoshub-{id}.fill"));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 8_000_000);
    wait_until("the scheduled removal", Duration::from_secs(15), || {
        !file.exists()
    });

    // A path that names an existing file of the user's is refused, and the file survives.
    let mine = dir.join("precious");
    std::fs::write(&mine, "data").unwrap();
    let f = fault(
        &physical_machine_chaos(
            "disk-fill",
            &format!("{{path: {}, size: 1MB}}", mine.display()),
            "3s",
        ),
        "c9d0-1",
    );
    let out = run_script(
        &scratch,
        "inject2.sh",
        &script_for(&scratch, &f),
        None,
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "data");
}

/// A child process with a name of its own (a copy of `sleep`), reaped on drop.
struct Victim {
    child: Child,
    name: String,
}

impl Victim {
    fn start(scratch: &Scratch) -> Victim {
        let name = format!("chsv{}", std::process::id() % 1_000_000);
        let bin = scratch.path().join(&name);
        std::fs::copy("/bin/sleep", &bin).unwrap();
        let child = Command::new(&bin).arg("300").spawn().unwrap();
        Victim { child, name }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn process_kill_kills_a_real_child_and_runs_the_recover_command_at_revert() {
    require_root();
    let scratch = Scratch::new();
    let mut victim = Victim::start(&scratch);
    let marker = scratch.path().join("recovered");
    let id = "e1f2-0";
    let f = fault(
        &physical_machine_chaos(
            "process",
            &format!(
                "{{process: {}, signal: 9, recoverCmd: 'touch {}'}}",
                victim.name,
                marker.display()
            ),
            "2s",
        ),
        id,
    );
    inject_ok(&scratch, &f, None);
    let status = victim.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the child was killed by SIGKILL");
    wait_until(
        "the scheduled recover command",
        Duration::from_secs(15),
        || marker.exists(),
    );

    // No process of that name: refused, nothing scheduled.
    let out = run_script(
        &scratch,
        "inject2.sh",
        &script_for(
            &scratch,
            &fault(
                &physical_machine_chaos(
                    "process",
                    "{process: chs-no-such-process, signal: 15}",
                    "2s",
                ),
                "e1f2-1",
            ),
        ),
        None,
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process named"));
    assert!(!scratch.state("e1f2-1").exists());
    chaoshub_testkit::measured!(
        "PhysicalMachineChaos/process",
        "ssm",
        "the named process died of SIGKILL (signal 9); the recover command ran at the scheduled revert"
    );
}

#[test]
fn user_defined_runs_attack_then_the_scheduled_recover() {
    require_root();
    let scratch = Scratch::new();
    let flag = scratch.path().join("attacked");
    let id = "a3b4-0";
    let f = fault(
        &physical_machine_chaos(
            "user_defined",
            &format!(
                "{{attackCmd: 'echo \"it''s on\" > {0}', recoverCmd: 'rm -f {0}'}}",
                flag.display()
            ),
            "2s",
        ),
        id,
    );
    inject_ok(&scratch, &f, None);
    assert_eq!(read(&flag).trim(), "it's on");
    wait_until(
        "the scheduled recover command",
        Duration::from_secs(15),
        || !flag.exists(),
    );
    // The revert removes its state directory after the recover command, a moment later.
    wait_until("the revert's cleanup", Duration::from_secs(5), || {
        !scratch.state(id).exists()
    });
}

/// A TCP sink inside namespace b on every address (a python child, killed on drop): reads a
/// connection to its end, then answers with the number of bytes it read.
struct Sink {
    child: Child,
}

impl Sink {
    fn start(ns: &Netns, port: u16) -> Sink {
        let code = format!(
            "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', {port}))\ns.listen(64)\nwhile True:\n    c, _ = s.accept()\n    n = 0\n    while True:\n        d = c.recv(65536)\n        if not d:\n            break\n        n += len(d)\n    try:\n        c.sendall(str(n).encode())\n    except OSError:\n        pass\n    c.close()\n"
        );
        let child = ns
            .exec(&ns.b, &["python3", "-c", &code])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start the sink");
        let sink = Sink { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ns.connects(port) {
            assert!(Instant::now() < deadline, "the sink did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        sink
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Netns {
    /// TCP goodput from a (the shaped "instance") to `addr:port`, in Mbit/s: `bytes` sent,
    /// timed from the connect until the sink has read all of them.
    fn upload_mbit(&self, addr: &str, port: u16, bytes: u64) -> f64 {
        let code = format!(
            "import socket, time\nt = time.monotonic()\nc = socket.create_connection(('{addr}', {port}), timeout=60)\nbuf = b'x' * 65536\nsent = 0\nwhile sent < {bytes}:\n    c.sendall(buf)\n    sent += len(buf)\nc.shutdown(socket.SHUT_WR)\ngot = int(c.recv(64))\nassert got == sent, (got, sent)\nprint(got * 8 / (time.monotonic() - t) / 1e6)\n"
        );
        let out = run(&mut self.exec(&self.a, &["python3", "-c", &code]));
        assert!(out.status.success(), "the upload failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("cannot read the upload's rate: {}", text(&out)))
    }

    /// The upload rate, the best of up to three tries: a shaper that over-restricts is slow
    /// every time, an upload starved of CPU by the builds beside it on this machine once.
    fn shaped_upload_mbit(&self, addr: &str, port: u16) -> f64 {
        let mut best = 0.0f64;
        for _ in 0..3 {
            best = best.max(self.upload_mbit(addr, port, 4_000_000));
            if best >= 6.0 {
                break;
            }
        }
        best
    }

    fn qdiscs(&self) -> String {
        must(&mut self.exec(&self.a, &["tc", "qdisc", "show", "dev", &self.dev_a]))
    }
}

/// Bandwidth 8mbit on the whole interface: TCP goodput to the peer is about 8 Mbit/s while the
/// fault holds, and full speed again after the revert the script scheduled (a short fault) and
/// after recovery (a long one).
#[test]
fn bandwidth_shapes_tcp_goodput_until_the_scheduled_revert_and_recovery() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    let port = 20_000 + (std::process::id() % 1000) as u16;
    let _sink = Sink::start(&ns, port);
    let body = format!(
        "  device: {}\n  bandwidth: {{rate: 8mbit, limit: 100000, buffer: 10000}}\n",
        ns.dev_a
    );
    let baseline = ns.upload_mbit(&ns.addr_b, port, 4_000_000);
    assert!(
        baseline > 40.0,
        "the link carries only {baseline:.1} Mbit/s before any fault"
    );

    // A short fault, reverted by the revert its script scheduled on the "instance".
    let id = "b4d1-0";
    let f = fault(&network_chaos("bandwidth", &body, "20s"), id);
    let out = inject_ok(&scratch, &f, Some(&ns.a));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revert in 20s by nohup"));
    let handle = netem_handle(id);
    assert!(
        ns.qdiscs().contains(&format!("qdisc htb {handle} root")),
        "{}",
        ns.qdiscs()
    );
    let during_timer = ns.shaped_upload_mbit(&ns.addr_b, port);
    // Running the same inject again (a retried SendCommand) changes nothing.
    let again = run_script(
        &scratch,
        "inject.sh",
        &script_for(&scratch, &f),
        Some(&ns.a),
        None,
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already in place"),
        "{}",
        text(&again)
    );
    assert_eq!(
        ns.qdiscs().matches("qdisc htb").count(),
        1,
        "{}",
        ns.qdiscs()
    );
    wait_until("the scheduled revert", Duration::from_secs(60), || {
        !ns.qdiscs().contains("htb")
    });
    wait_until(
        "the state directory removal",
        Duration::from_secs(5),
        || !scratch.state(id).exists(),
    );
    let after_timer = ns.upload_mbit(&ns.addr_b, port, 4_000_000);

    // A long fault, removed by recovery.
    let id = "b4d1-1";
    inject_ok(
        &scratch,
        &fault(&network_chaos("bandwidth", &body, "10m"), id),
        Some(&ns.a),
    );
    let during_recovery = ns.shaped_upload_mbit(&ns.addr_b, port);
    recover_ok(&scratch, id, Some(&ns.a));
    assert!(!ns.qdiscs().contains("htb"), "{}", ns.qdiscs());
    let after_recovery = ns.upload_mbit(&ns.addr_b, port, 4_000_000);
    eprintln!(
        "bandwidth 8mbit: {during_timer:.2} Mbit/s then {after_timer:.0} Mbit/s after the \
         scheduled revert; {during_recovery:.2} Mbit/s then {after_recovery:.0} Mbit/s after \
         recovery (baseline {baseline:.0} Mbit/s)"
    );
    for rate in [during_timer, during_recovery] {
        assert!((6.0..=9.0).contains(&rate), "{rate:.2} Mbit/s for 8mbit");
    }
    assert!(
        after_timer > 40.0,
        "{after_timer:.1} Mbit/s after the scheduled revert"
    );
    assert!(
        after_recovery > 40.0,
        "{after_recovery:.1} Mbit/s after recovery"
    );
    chaoshub_testkit::measured!(
        "NetworkChaos/bandwidth",
        "ssm",
        format!(
            "{during_recovery:.2} Mbit/s TCP upload to the peer for 8mbit (the generated script run in a namespace); {after_recovery:.0} Mbit/s after recovery, {after_timer:.0} Mbit/s after its scheduled revert"
        ),
        mechanism = "tc htb"
    );
}

/// Without `tc` on the instance the script refuses with the unsupported-host status, naming
/// the tool, before it writes or schedules anything.
#[test]
fn bandwidth_refuses_clearly_without_tc() {
    require_root();
    let scratch = Scratch::new();
    let id = "b4d1-2";
    let f = fault(
        &network_chaos(
            "bandwidth",
            "  bandwidth: {rate: 8mbit, limit: 100000, buffer: 10000}\n",
            "30s",
        ),
        id,
    );
    // A PATH with only what the script needs before its tool check.
    let bin = scratch.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["id", "rm"] {
        let real = must(Command::new("sh").args(["-c", &format!("command -v {tool}")]));
        std::os::unix::fs::symlink(real.trim(), bin.join(tool)).unwrap();
    }
    let file = scratch.path().join("inject.sh");
    std::fs::write(&file, script_for(&scratch, &f)).unwrap();
    let out = run(Command::new("/bin/sh").arg(&file).env("PATH", &bin));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tc is not installed"), "{stderr}");
    assert!(!scratch.state(id).exists(), "nothing is left behind");
}

/// The script of the last command sent to `instance` whose comment ends with `suffix`, as moto
/// recorded it.
async fn sent_script(moto: &Moto, instance: &str, suffix: &str) -> String {
    let commands = moto
        .ssm_client()
        .await
        .list_commands()
        .instance_id(instance)
        .send()
        .await
        .unwrap()
        .commands()
        .to_vec();
    let command = commands
        .iter()
        .rev()
        .find(|c| c.comment().is_some_and(|t| t.ends_with(suffix)))
        .unwrap_or_else(|| panic!("no command ending {suffix:?} in {commands:?}"));
    let lines = command
        .parameters()
        .and_then(|p| p.get("commands"))
        .expect("the own document's commands");
    lines.join("\n") + "\n"
}

/// Bandwidth limited to an address in `externalTargets`, through the whole adapter: the
/// adapter sends its scripts to a real local SSM endpoint (moto, which runs nothing), and the
/// scripts moto recorded then run in the namespace. Uploads to the listed address are shaped to
/// about 8 Mbit/s, uploads to another address of the same peer are not; recovery removes it.
#[tokio::test]
async fn bandwidth_to_an_external_address_shapes_only_its_traffic() {
    let ns = Netns::new();
    let scratch = Scratch::new();
    // A second address of the peer (on its loopback, reached over the same veth) that is not
    // in externalTargets.
    let other = ns.addr_b.replacen("198.18.", "198.19.", 1);
    must(&mut ns.exec(
        &ns.b,
        &["ip", "addr", "add", &format!("{other}/32"), "dev", "lo"],
    ));
    must(&mut ns.exec(
        &ns.a,
        &[
            "ip",
            "route",
            "add",
            &format!("{other}/32"),
            "dev",
            &ns.dev_a,
        ],
    ));
    let port = 21_000 + (std::process::id() % 1000) as u16;
    let _sink = Sink::start(&ns, port);

    let moto = Moto::start();
    let profile = AwsProfile::new();
    let instance = moto.run_instance(&[("team", "payments")]).await;
    let environment = env(
        &moto.url(),
        &profile,
        json!({
            "managed_only": false,
            "state_dir": scratch.path().join("state").to_str().unwrap(),
        }),
    );
    let adapter = SsmAdapter::new();
    let f = fault(
        &network_chaos(
            "bandwidth",
            &format!(
                "  device: {}\n  externalTargets: ['{}']\n  bandwidth: {{rate: 8mbit, limit: 100000, buffer: 10000}}\n",
                ns.dev_a, ns.addr_b
            ),
            "10m",
        ),
        "b4d1-3",
    );
    let target = instance_target(&instance);
    adapter.check_fault(&environment, &f).unwrap();
    let details = adapter.inject(&environment, &f, &target).await.unwrap();
    let script = sent_script(&moto, &instance, " inject").await;
    let out = run_script(&scratch, "inject.sh", &script, Some(&ns.a), None);
    assert!(out.status.success(), "{}", text(&out));
    let shaped = ns.shaped_upload_mbit(&ns.addr_b, port);
    let unshaped = ns.upload_mbit(&other, port, 4_000_000);

    adapter
        .recover(&environment, &injection(&f, &target, details))
        .await
        .unwrap();
    let revert = sent_script(&moto, &instance, " recover").await;
    let out = run_script(&scratch, "recover.sh", &revert, Some(&ns.a), None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!ns.qdiscs().contains("htb"), "{}", ns.qdiscs());
    let after = ns.upload_mbit(&ns.addr_b, port, 4_000_000);
    eprintln!(
        "bandwidth 8mbit to {}: {shaped:.2} Mbit/s to it, {unshaped:.0} Mbit/s to {other} \
         meanwhile, {after:.0} Mbit/s to it after recovery",
        ns.addr_b
    );
    assert!(
        (6.0..=9.0).contains(&shaped),
        "{shaped:.2} Mbit/s for 8mbit"
    );
    assert!(
        unshaped > 40.0,
        "{unshaped:.1} Mbit/s to an address not listed"
    );
    assert!(after > 40.0, "{after:.1} Mbit/s after recovery");
}

/// Duplicate and corrupt are root netem qdiscs like the delay: on this kernel (no sch_netem)
/// the script refuses with exit 3 naming the module and leaves nothing behind; with a
/// stand-in `tc` playing a kernel with netem, it runs the right command line and its scheduled
/// revert deletes exactly that qdisc.
#[test]
fn duplicate_and_corrupt_refuse_clearly_without_sch_netem_and_run_netem_where_it_exists() {
    let ns = Netns::new();
    for (action, block, netem, id) in [
        (
            "duplicate",
            "duplicate: {duplicate: '20', correlation: '25'}",
            "netem duplicate 20% 25%",
            "d0a1-0",
        ),
        (
            "corrupt",
            "corrupt: {corrupt: '15'}",
            "netem corrupt 15%",
            "d0a1-1",
        ),
    ] {
        let scratch = Scratch::new();
        let f = fault(
            &network_chaos(
                action,
                &format!("  device: {}\n  {block}\n", ns.dev_a),
                "3s",
            ),
            id,
        );
        let script = script_for(&scratch, &f);
        let handle = netem_handle(id);
        assert!(
            script.contains(&format!("root handle {handle} {netem}")),
            "{script}"
        );
        let out = run_script(&scratch, "inject.sh", &script, Some(&ns.a), None);
        if out.status.success() {
            let qdisc = ns.qdiscs();
            assert!(qdisc.contains("netem"), "{qdisc}");
            eprintln!("this kernel has sch_netem: {action} was applied and read back ({qdisc})");
            recover_ok(&scratch, id, Some(&ns.a));
            continue;
        }
        assert_eq!(out.status.code(), Some(3), "{action}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("sch_netem"), "{stderr}");
        assert!(!scratch.state(id).exists(), "nothing is left behind");
        assert!(!ns.qdiscs().contains(&handle), "{}", ns.qdiscs());

        // The same script where netem exists (a stand-in tc).
        let bin = fake_tc(scratch.path());
        let out = run_script(&scratch, "inject.sh", &script, Some(&ns.a), Some(&bin));
        assert!(out.status.success(), "{}", text(&out));
        let dev = &ns.dev_a;
        let log = read(&scratch.path().join("tc.log"));
        assert!(
            log.contains(&format!("qdisc add dev {dev} root handle {handle} {netem}")),
            "{log}"
        );
        wait_until("the scheduled tc revert", Duration::from_secs(15), || {
            read(&scratch.path().join("tc.log"))
                .contains(&format!("qdisc del dev {dev} root handle {handle}"))
        });
    }
}
