//! Node metrics for the agent's `GET /metrics`, read from `/proc` and rendered in the Prometheus
//! text exposition format (version 0.0.4), every family with `# HELP` and `# TYPE` lines:
//!
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `chaos_agent_node_cpu_seconds_total` | counter | `cpu` (`all` for the aggregate line, else `cpu0`…), `mode` | `/proc/stat` |
//! | `chaos_agent_node_memory_total_bytes` | gauge | | `/proc/meminfo` MemTotal |
//! | `chaos_agent_node_memory_available_bytes` | gauge | | `/proc/meminfo` MemAvailable |
//! | `chaos_agent_node_load1` / `load5` / `load15` | gauge | | `/proc/loadavg` |
//! | `chaos_agent_node_network_receive_bytes_total` (and `_packets_`, `_errors_`, `_drops_`) | counter | `device` | `/proc/net/dev` |
//! | `chaos_agent_node_network_transmit_bytes_total` (and `_packets_`, `_errors_`, `_drops_`) | counter | `device` | `/proc/net/dev` |
//!
//! CPU time is converted from clock ticks (`USER_HZ`) to seconds. The parsers are pure functions
//! over the files' text so they are tested without the host's `/proc`.
//!
//! [`UsageSampler`] turns the same files into what each heartbeat to the hub carries: the CPU
//! busy share since the previous heartbeat, memory in use and the 1-minute load.

use std::fmt::Write as _;
use std::io;

/// Memory figures from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// One CPU line of `/proc/stat`: the name (`cpu` for the aggregate, `cpu0`…) and ticks per mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTimes {
    pub cpu: String,
    pub ticks: Vec<(&'static str, u64)>,
}

/// Counters of one interface from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev {
    pub device: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

const CPU_MODES: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub fn parse_meminfo(text: &str) -> io::Result<MemInfo> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    let total_bytes = field("MemTotal:").ok_or_else(|| invalid("MemTotal missing"))?;
    // Kernels before 3.14 lack MemAvailable; free memory is the closest stand-in there.
    let available_bytes = field("MemAvailable:")
        .or_else(|| field("MemFree:"))
        .ok_or_else(|| invalid("MemAvailable missing"))?;
    Ok(MemInfo {
        total_bytes,
        available_bytes,
    })
}

pub fn read_meminfo() -> io::Result<MemInfo> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo")?)
}

pub fn parse_proc_stat(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter(|line| line.starts_with("cpu"))
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let cpu = parts.next()?.to_string();
            let ticks = CPU_MODES
                .iter()
                .zip(parts)
                .filter_map(|(mode, n)| n.parse().ok().map(|n| (*mode, n)))
                .collect();
            Some(CpuTimes { cpu, ticks })
        })
        .collect()
}

pub fn parse_loadavg(text: &str) -> io::Result<[f64; 3]> {
    let mut parts = text.split_whitespace().map(|p| p.parse::<f64>());
    let mut next = || {
        parts
            .next()
            .and_then(|r| r.ok())
            .ok_or_else(|| invalid("bad /proc/loadavg"))
    };
    Ok([next()?, next()?, next()?])
}

pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .filter_map(|line| {
            let (device, counters) = line.split_once(':')?;
            let n: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect();
            if n.len() < 16 {
                return None;
            }
            Some(NetDev {
                device: device.trim().to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_drops: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_drops: n[11],
            })
        })
        .collect()
}

/// Escapes a label value for the exposition format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders the node metrics from the given file contents (pure; see [`render_node_metrics`]).
pub fn render_from(
    out: &mut String,
    proc_stat: &str,
    meminfo: &str,
    loadavg: &str,
    net_dev: &str,
    ticks_per_sec: f64,
) -> io::Result<()> {
    let cpus = parse_proc_stat(proc_stat);
    let name = "chaos_agent_node_cpu_seconds_total";
    header(
        out,
        name,
        "counter",
        "CPU time spent in each mode, from /proc/stat (cpu=\"all\" is the sum over CPUs).",
    );
    for cpu in &cpus {
        let cpu_label = if cpu.cpu == "cpu" { "all" } else { &cpu.cpu };
        for (mode, ticks) in &cpu.ticks {
            let _ = writeln!(
                out,
                "{name}{{cpu=\"{}\",mode=\"{mode}\"}} {}",
                label(cpu_label),
                *ticks as f64 / ticks_per_sec
            );
        }
    }

    let mem = parse_meminfo(meminfo)?;
    header(
        out,
        "chaos_agent_node_memory_total_bytes",
        "gauge",
        "Total usable memory (MemTotal).",
    );
    let _ = writeln!(
        out,
        "chaos_agent_node_memory_total_bytes {}",
        mem.total_bytes
    );
    header(
        out,
        "chaos_agent_node_memory_available_bytes",
        "gauge",
        "Memory available for new work without swapping (MemAvailable).",
    );
    let _ = writeln!(
        out,
        "chaos_agent_node_memory_available_bytes {}",
        mem.available_bytes
    );

    let load = parse_loadavg(loadavg)?;
    for (suffix, value) in ["load1", "load5", "load15"].iter().zip(load) {
        let name = format!("chaos_agent_node_{suffix}");
        header(
            out,
            &name,
            "gauge",
            &format!("Load average over {} minute(s).", &suffix[4..]),
        );
        let _ = writeln!(out, "{name} {value}");
    }

    let devices = parse_net_dev(net_dev);
    type Field = fn(&NetDev) -> u64;
    let families: [(&str, &str, Field); 8] = [
        ("receive_bytes", "Bytes received", |d| d.rx_bytes),
        ("receive_packets", "Packets received", |d| d.rx_packets),
        ("receive_errors", "Receive errors", |d| d.rx_errors),
        ("receive_drops", "Received packets dropped", |d| d.rx_drops),
        ("transmit_bytes", "Bytes transmitted", |d| d.tx_bytes),
        ("transmit_packets", "Packets transmitted", |d| d.tx_packets),
        ("transmit_errors", "Transmit errors", |d| d.tx_errors),
        ("transmit_drops", "Transmitted packets dropped", |d| {
            d.tx_drops
        }),
    ];
    for (suffix, help, field) in families {
        let name = format!("chaos_agent_node_network_{suffix}_total");
        header(
            out,
            &name,
            "counter",
            &format!("{help} per interface, from /proc/net/dev."),
        );
        for device in &devices {
            let _ = writeln!(
                out,
                "{name}{{device=\"{}\"}} {}",
                label(&device.device),
                field(device)
            );
        }
    }
    Ok(())
}

/// Appends the node metrics of this host to `out` (for the agent's `GET /metrics`). Fails only
/// when `/proc` cannot be read or parsed; `out` may then hold a partial rendering.
pub fn render_node_metrics(out: &mut String) -> io::Result<()> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .unwrap_or(100.0);
    render_from(
        out,
        &std::fs::read_to_string("/proc/stat")?,
        &std::fs::read_to_string("/proc/meminfo")?,
        &std::fs::read_to_string("/proc/loadavg")?,
        &std::fs::read_to_string("/proc/net/dev")?,
        ticks,
    )
}

/// Busy and total ticks of an aggregate `cpu` line. Idle and iowait are idle time; guest and
/// guest_nice are already counted in user and nice, so they are left out of the total.
pub fn busy_and_total(times: &CpuTimes) -> (u64, u64) {
    let mut busy = 0u64;
    let mut total = 0u64;
    for (mode, ticks) in &times.ticks {
        match *mode {
            "guest" | "guest_nice" => {}
            "idle" | "iowait" => total = total.saturating_add(*ticks),
            _ => {
                busy = busy.saturating_add(*ticks);
                total = total.saturating_add(*ticks);
            }
        }
    }
    (busy, total)
}

/// The host's usage as one heartbeat reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostUsage {
    /// Busy share of all CPUs since the previous sample, 0–100 (0 for the first sample).
    pub cpu_percent: f32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub load1: f32,
}

/// Samples [`HostUsage`] from `/proc`, keeping the previous CPU reading for the busy share.
#[derive(Debug, Default)]
pub struct UsageSampler {
    last: Option<(u64, u64)>,
}

impl UsageSampler {
    /// One sample from the files' text; `None` when a file is unreadable or malformed.
    pub fn sample_from(&mut self, stat: &str, meminfo: &str, loadavg: &str) -> Option<HostUsage> {
        let cpu = parse_proc_stat(stat).into_iter().find(|c| c.cpu == "cpu")?;
        let (busy, total) = busy_and_total(&cpu);
        let mem = parse_meminfo(meminfo).ok()?;
        let load = parse_loadavg(loadavg).ok()?;
        let cpu_percent = match self.last.replace((busy, total)) {
            Some((b0, t0)) if total > t0 => {
                (busy.saturating_sub(b0) as f64 / (total - t0) as f64 * 100.0).clamp(0.0, 100.0)
            }
            _ => 0.0,
        };
        Some(HostUsage {
            cpu_percent: cpu_percent as f32,
            mem_used_bytes: mem.total_bytes.saturating_sub(mem.available_bytes),
            mem_total_bytes: mem.total_bytes,
            load1: load[0] as f32,
        })
    }

    /// One sample of this host.
    pub fn sample(&mut self) -> Option<HostUsage> {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        self.sample_from(
            &read("/proc/stat")?,
            &read("/proc/meminfo")?,
            &read("/proc/loadavg")?,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_is_the_busy_share_between_two_samples() {
        let mem =
            "MemTotal:       8000000 kB\nMemFree:        1000000 kB\nMemAvailable:   6000000 kB\n";
        let load = "1.50 0.80 0.40 2/300 12345\n";
        let mut sampler = super::UsageSampler::default();
        // user nice system idle iowait irq softirq steal guest guest_nice
        let first = sampler
            .sample_from(
                "cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3 4\n",
                mem,
                load,
            )
            .unwrap();
        assert_eq!(first.cpu_percent, 0.0, "no previous sample");
        assert_eq!(first.mem_total_bytes, 8_000_000 * 1024);
        assert_eq!(first.mem_used_bytes, 2_000_000 * 1024);
        assert_eq!(first.load1, 1.5);
        // +300 busy (user 200, system 100), +100 idle: 75 %; guest ticks do not count twice.
        let second = sampler
            .sample_from("cpu  300 0 200 800 100 0 0 0 250 0\n", mem, load)
            .unwrap();
        assert!((second.cpu_percent - 75.0).abs() < 0.01, "{second:?}");
        assert!(sampler.sample_from("garbage", mem, load).is_none());
        assert!(sampler
            .sample_from("cpu  1 2 3 4\n", "nothing", load)
            .is_none());
    }

    use super::*;

    const STAT: &str = "cpu  100 2 30 4000 5 0 6 0 0 0\ncpu0 50 1 15 2000 2 0 3 0 0 0\n\
                        intr 123\nctxt 456\n";
    const MEMINFO: &str = "MemTotal:       16000 kB\nMemFree:         4000 kB\n\
                           MemAvailable:    8000 kB\n";
    const LOADAVG: &str = "0.50 0.25 0.10 1/123 4567\n";
    const NET_DEV: &str = "Inter-|   Receive                            |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
         eth0: 5000      50    1    2    0     0          0         0     7000      70    3    4    0     0       0          0\n";

    #[test]
    fn parses_each_file() {
        let mem = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(mem.total_bytes, 16000 * 1024);
        assert_eq!(mem.available_bytes, 8000 * 1024);
        let cpus = parse_proc_stat(STAT);
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[0].ticks[0], ("user", 100));
        assert_eq!(parse_loadavg(LOADAVG).unwrap(), [0.5, 0.25, 0.1]);
        let devs = parse_net_dev(NET_DEV);
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[1].device, "eth0");
        assert_eq!(devs[1].tx_bytes, 7000);
        assert_eq!(devs[1].rx_drops, 2);
    }

    #[test]
    fn renders_exposition_format() {
        let mut out = String::new();
        render_from(&mut out, STAT, MEMINFO, LOADAVG, NET_DEV, 100.0).unwrap();
        assert!(out.contains("# TYPE chaos_agent_node_cpu_seconds_total counter"));
        assert!(out.contains("chaos_agent_node_cpu_seconds_total{cpu=\"all\",mode=\"user\"} 1\n"));
        assert!(out.contains("chaos_agent_node_memory_available_bytes 8192000\n"));
        assert!(out.contains("chaos_agent_node_load1 0.5\n"));
        assert!(
            out.contains("chaos_agent_node_network_transmit_bytes_total{device=\"eth0\"} 7000\n")
        );
        // Every sample line belongs to a family announced with HELP and TYPE.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(out.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(out.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn renders_this_host() {
        let mut out = String::new();
        render_node_metrics(&mut out).unwrap();
        assert!(out.contains("chaos_agent_node_memory_total_bytes "));
        assert!(out.contains("device=\"lo\""));
    }
}
