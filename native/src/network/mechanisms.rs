//! Kernel probing: which network mechanisms work here, found by trying each one for real in a
//! scratch network namespace that is deleted afterwards (so the host's own interfaces are never
//! touched, and a module that is merely listed but not loadable counts as missing).

use std::net::UdpSocket;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::KernelMechanisms;
use nfq::{Queue, Verdict};

use super::commands::SystemCommandRunner;
use super::netns::{self, ScratchNetns};
use crate::inject::{CommandRunner, InjectError};

/// The queue number the probe binds inside its scratch namespace (below the range handed to
/// faults, though numbers are per namespace anyway).
const PROBE_QUEUE: u16 = 0x0abc;
const PROBE_PORT: u16 = 9;

/// The names `--disable-mechanism` takes, as `chaos-agent mechanisms` shows them.
pub const MECHANISM_NAMES: &[&str] = &[
    "netem",
    "tbf",
    "htb",
    "u32",
    "ifb",
    "nftables",
    "numgen",
    "iptables",
    "statistic",
    "nfqueue",
    "stress-ng",
];

/// Turns mechanisms off as if the kernel lacked them (`--disable-mechanism`), so that a
/// fallback path — NFQUEUE delay where netem exists, iptables where nftables exists — runs
/// and can be tested on any kernel. Each one disabled is noted. Unknown names are refused.
pub fn disable(m: &mut KernelMechanisms, names: &[String]) -> Result<(), String> {
    for name in names {
        let flag = match name.as_str() {
            "netem" => &mut m.netem,
            "tbf" => &mut m.tbf,
            "htb" => &mut m.htb,
            "u32" => &mut m.u32_filter,
            "ifb" => &mut m.ingress_ifb,
            "nftables" => &mut m.nftables,
            "numgen" => &mut m.nft_numgen,
            "iptables" => &mut m.iptables,
            "statistic" => &mut m.iptables_statistic,
            "nfqueue" => &mut m.nfqueue,
            "stress-ng" => &mut m.stress_ng,
            other => {
                return Err(format!(
                    "unknown mechanism {other:?} (known: {})",
                    MECHANISM_NAMES.join(", ")
                ))
            }
        };
        *flag = false;
        // nftables off takes numgen with it; iptables off takes statistic and NFQUEUE.
        match name.as_str() {
            "nftables" => m.nft_numgen = false,
            "iptables" => {
                m.iptables_statistic = false;
                m.nfqueue = false;
            }
            _ => {}
        }
        m.notes
            .push(format!("{name}: disabled by --disable-mechanism"));
    }
    Ok(())
}

/// Probes with the real command runner.
pub fn probe_mechanisms() -> KernelMechanisms {
    probe_with(&SystemCommandRunner)
}

/// Probes with `runner` (which must run real commands: the NFQUEUE check binds a real queue).
pub fn probe_with(runner: &dyn CommandRunner) -> KernelMechanisms {
    let started = Instant::now();
    let mut m = KernelMechanisms {
        stress_ng: on_path("stress-ng"),
        ..KernelMechanisms::default()
    };
    if !m.stress_ng {
        m.notes.push("stress-ng: not on PATH".into());
    }
    let scratch = match ScratchNetns::create("chaoshub-probe", runner) {
        Ok(s) => s,
        Err(error) => {
            // Without CAP_SYS_ADMIN (a helper container that only has NET_ADMIN in its target's
            // namespace) no scratch namespace can be made, and probing in place would disturb
            // the target. Fall back to the tools present: every fault is still read back after
            // it is applied, so a mechanism the kernel lacks fails that fault with the kernel's
            // own error instead of being assumed to work. netem is assumed absent, so delay
            // takes the NFQUEUE path, which both kinds of kernel run.
            m.notes.push(format!(
                "cannot create a scratch network namespace ({error}); mechanisms assumed from the tools on PATH and verified per fault"
            ));
            let tc = on_path("tc");
            let nft = on_path("nft");
            let ipt = on_path("iptables");
            m.tbf = tc;
            m.htb = tc;
            m.u32_filter = tc;
            m.nftables = nft;
            m.nft_numgen = nft;
            m.iptables = ipt;
            m.iptables_statistic = ipt;
            m.nfqueue = ipt;
            return m;
        }
    };
    let ns = scratch.path();
    // Root-qdisc and ingress probes run on their own veth pair so that they never disturb the
    // loopback traffic of the NFQUEUE check, which lets the four groups run in parallel (the
    // probe must stay well under a second on a busy machine).
    let shaping_dev = match runner.run(
        Some(ns),
        "ip",
        &[
            "link", "add", "chbp0", "type", "veth", "peer", "name", "chbp1",
        ],
    ) {
        Ok(_) => {
            let _ = runner.run(Some(ns), "ip", &["link", "set", "chbp0", "up"]);
            let _ = runner.run(Some(ns), "ip", &["link", "set", "chbp1", "up"]);
            Some(("chbp0", "chbp1"))
        }
        Err(error) => {
            m.notes.push(format!(
                "veth for probing: {error}; probing on lo, one group at a time"
            ));
            None
        }
    };
    let (root_dev, ingress_dev) = shaping_dev.unwrap_or(("lo", "lo"));
    let mut results = ProbeResults::default();
    std::thread::scope(|scope| {
        let tc_group = scope.spawn(|| probe_tc(runner, ns, root_dev));
        let nft_group = scope.spawn(|| probe_nft(runner, ns));
        let mut ipt_group = Some(scope.spawn(|| probe_iptables(runner, ns)));
        // On lo the ingress redirect would swallow the NFQUEUE check's packets: wait for it.
        let mut ipt_result = None;
        if shaping_dev.is_none() {
            ipt_result = ipt_group.take().map(|g| g.join());
        }
        let ifb_group = scope.spawn(|| probe_ifb(runner, ns, ingress_dev));
        let ipt_result = match (ipt_result, ipt_group) {
            (Some(done), _) => done,
            (None, Some(group)) => group.join(),
            (None, None) => Ok(ProbeResults::default()),
        };
        for group in [
            tc_group.join(),
            nft_group.join(),
            ipt_result,
            ifb_group.join(),
        ] {
            match group {
                Ok(r) => results.merge(r),
                Err(_) => results.notes.push("a probe thread panicked".into()),
            }
        }
    });
    let ProbeResults { flags, notes } = results;
    m.netem = flags.netem;
    m.tbf = flags.tbf;
    m.htb = flags.htb;
    m.u32_filter = flags.u32_filter;
    m.ingress_ifb = flags.ingress_ifb;
    m.nftables = flags.nftables;
    m.nft_numgen = flags.nft_numgen;
    m.iptables = flags.iptables;
    m.iptables_statistic = flags.iptables_statistic;
    m.nfqueue = flags.nfqueue;
    m.notes.extend(notes);
    drop(scratch);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        netem = m.netem,
        tbf = m.tbf,
        htb = m.htb,
        u32 = m.u32_filter,
        ifb = m.ingress_ifb,
        nftables = m.nftables,
        numgen = m.nft_numgen,
        iptables = m.iptables,
        statistic = m.iptables_statistic,
        nfqueue = m.nfqueue,
        stress_ng = m.stress_ng,
        "kernel mechanisms probed"
    );
    m
}

/// What one probe group found.
#[derive(Default)]
struct ProbeResults {
    flags: KernelMechanisms,
    notes: Vec<String>,
}

impl ProbeResults {
    fn merge(&mut self, other: ProbeResults) {
        let (a, b) = (&mut self.flags, other.flags);
        a.netem |= b.netem;
        a.tbf |= b.tbf;
        a.htb |= b.htb;
        a.u32_filter |= b.u32_filter;
        a.ingress_ifb |= b.ingress_ifb;
        a.nftables |= b.nftables;
        a.nft_numgen |= b.nft_numgen;
        a.iptables |= b.iptables;
        a.iptables_statistic |= b.iptables_statistic;
        a.nfqueue |= b.nfqueue;
        self.notes.extend(other.notes);
    }

    /// Runs the steps in order; true if all succeed, else notes the first failure.
    fn try_all(
        &mut self,
        runner: &dyn CommandRunner,
        ns: &str,
        name: &str,
        steps: &[(&str, &[&str])],
    ) -> bool {
        for (program, args) in steps {
            if let Err(error) = runner.run(Some(ns), program, args) {
                self.notes.push(format!("{name}: {error}"));
                return false;
            }
        }
        true
    }
}

fn probe_tc(runner: &dyn CommandRunner, ns: &str, dev: &str) -> ProbeResults {
    let mut r = ProbeResults::default();
    let del_root: (&str, &[&str]) = ("tc", &["qdisc", "del", "dev", dev, "root"]);
    let netem: &[&str] = &[
        "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay", "1ms",
    ];
    r.flags.netem = r.try_all(runner, ns, "netem", &[("tc", netem), del_root]);
    let tbf: &[&str] = &[
        "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate", "1mbit", "burst",
        "32kb", "limit", "64kb",
    ];
    r.flags.tbf = r.try_all(runner, ns, "tbf", &[("tc", tbf), del_root]);
    let htb: &[&str] = &[
        "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "2",
    ];
    let class: &[&str] = &[
        "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "1mbit",
    ];
    r.flags.htb = r.try_all(runner, ns, "htb", &[("tc", htb), ("tc", class)]);
    if r.flags.htb {
        let filter: &[&str] = &[
            "filter",
            "add",
            "dev",
            dev,
            "parent",
            "1:",
            "protocol",
            "ip",
            "prio",
            "1",
            "u32",
            "match",
            "ip",
            "dst",
            "198.18.0.1/32",
            "flowid",
            "1:1",
        ];
        r.flags.u32_filter = r.try_all(runner, ns, "u32", &[("tc", filter)]);
        let _ = runner.run(Some(ns), "tc", &["qdisc", "del", "dev", dev, "root"]);
    }
    r
}

fn probe_ifb(runner: &dyn CommandRunner, ns: &str, dev: &str) -> ProbeResults {
    let mut r = ProbeResults::default();
    let redirect: &[&str] = &[
        "filter",
        "add",
        "dev",
        dev,
        "parent",
        "ffff:",
        "protocol",
        "all",
        "u32",
        "match",
        "u32",
        "0",
        "0",
        "action",
        "mirred",
        "egress",
        "redirect",
        "dev",
        "chbprobe0",
    ];
    r.flags.ingress_ifb = r.try_all(
        runner,
        ns,
        "ingress/ifb",
        &[
            ("ip", &["link", "add", "chbprobe0", "type", "ifb"]),
            (
                "tc",
                &["qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"],
            ),
            ("tc", redirect),
            // The redirect to a down ifb swallows the device's traffic.
            ("tc", &["qdisc", "del", "dev", dev, "ingress"]),
        ],
    );
    r
}

fn probe_nft(runner: &dyn CommandRunner, ns: &str) -> ProbeResults {
    let mut r = ProbeResults::default();
    let table = "add table inet chaoshub_probe\nadd chain inet chaoshub_probe c { type filter hook output priority 0; policy accept; }";
    r.flags.nftables = r.try_all(runner, ns, "nftables", &[("nft", &[table])]);
    if r.flags.nftables {
        let rule = "add rule inet chaoshub_probe c numgen random mod 100 < 1 counter";
        r.flags.nft_numgen = r.try_all(runner, ns, "nft numgen", &[("nft", &[rule])]);
    }
    r
}

fn probe_iptables(runner: &dyn CommandRunner, ns: &str) -> ProbeResults {
    let mut r = ProbeResults::default();
    let accept: &[&str] = &["-w", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"];
    r.flags.iptables = r.try_all(runner, ns, "iptables", &[("iptables", accept)]);
    if !r.flags.iptables {
        r.notes
            .push("nfqueue: needs the iptables NFQUEUE target".into());
        return r;
    }
    let statistic: &[&str] = &[
        "-w",
        "-A",
        "OUTPUT",
        "-o",
        "lo",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.5",
        "-j",
        "ACCEPT",
    ];
    r.flags.iptables_statistic =
        r.try_all(runner, ns, "iptables statistic", &[("iptables", statistic)]);
    match probe_nfqueue(ns, runner) {
        Ok(()) => r.flags.nfqueue = true,
        Err(error) => r.notes.push(format!("nfqueue: {error}")),
    }
    r
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file() && is_executable(&candidate)
        })
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Proves the whole NFQUEUE path: a queue binds, the iptables target queues a UDP datagram to
/// it, the verdict ACCEPT lets it through to a socket.
fn probe_nfqueue(ns_path: &str, runner: &dyn CommandRunner) -> Result<(), InjectError> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), InjectError>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let path = ns_path.to_string();
    let thread = std::thread::Builder::new()
        .name("nfqueue-probe".into())
        .spawn(move || -> Result<(), InjectError> {
            let setup = (|| {
                netns::enter_current_thread(&path)?;
                let mut queue =
                    Queue::open().map_err(|e| InjectError::io("cannot open netlink socket", e))?;
                queue
                    .bind(PROBE_QUEUE)
                    .map_err(|e| InjectError::io("cannot bind a queue", e))?;
                queue.set_nonblocking(true);
                let receiver = UdpSocket::bind(("127.0.0.1", PROBE_PORT))
                    .map_err(|e| InjectError::io("cannot bind probe receiver", e))?;
                Ok((queue, receiver))
            })();
            let (mut queue, receiver) = match setup {
                Ok(pair) => {
                    let _ = ready_tx.send(Ok(()));
                    pair
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            if go_rx.recv_timeout(Duration::from_secs(2)).is_err() {
                return Err(InjectError::Failed("probe rule was not installed".into()));
            }
            let sender = UdpSocket::bind("127.0.0.1:0")
                .map_err(|e| InjectError::io("cannot bind probe sender", e))?;
            sender
                .send_to(b"chaoshub-probe", ("127.0.0.1", PROBE_PORT))
                .map_err(|e| InjectError::io("cannot send probe datagram", e))?;
            let deadline = Instant::now() + Duration::from_millis(300);
            let mut msg = loop {
                match queue.recv() {
                    Ok(msg) => break msg,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(InjectError::Failed(
                                "no packet reached the queue (iptables NFQUEUE target missing?)"
                                    .into(),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(InjectError::io("queue receive failed", e)),
                }
            };
            msg.set_verdict(Verdict::Accept);
            queue
                .verdict(msg)
                .map_err(|e| InjectError::io("verdict failed", e))?;
            receiver
                .set_read_timeout(Some(Duration::from_millis(300)))
                .map_err(|e| InjectError::io("socket timeout", e))?;
            let mut buf = [0u8; 64];
            receiver
                .recv(&mut buf)
                .map_err(|e| InjectError::io("accepted packet was not delivered", e))?;
            Ok(())
        })
        .map_err(|e| InjectError::io("cannot start probe thread", e))?;
    match ready_rx.recv_timeout(Duration::from_secs(2)) {
        Ok(Ok(())) => {
            let rule = runner.run(
                Some(ns_path),
                "iptables",
                &[
                    "-w",
                    "-I",
                    "OUTPUT",
                    "1",
                    "-o",
                    "lo",
                    "-p",
                    "udp",
                    "--dport",
                    &PROBE_PORT.to_string(),
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &PROBE_QUEUE.to_string(),
                ],
            );
            let _ = go_tx.send(());
            rule.and_then(|_| {
                thread
                    .join()
                    .map_err(|_| InjectError::Failed("probe thread panicked".into()))?
            })
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(InjectError::Failed("probe thread did not start".into())),
    }
}
