//! The shell scripts chaoshub's own Command document runs on instances. Pure text generation:
//! the adapter shows these scripts verbatim in dry-run plans and sends them unchanged.
//!
//! Every inject script follows the same order, so a fault never outlives its lease:
//! 1. checks that cost nothing (root, tools, interface, target process…), giving up cleanly;
//! 2. writes `<state_dir>/<injection id>/revert.sh`, which undoes exactly what step 4 adds;
//! 3. arms the revert on the instance (systemd-run, else `at`, else a detached `nohup sleep`),
//!    so the fault goes away even if the hub never comes back;
//! 4. applies the fault, then reads it back; on any failure it runs the revert at once and
//!    exits non-zero with the reason on stderr.
//!
//! Scripts are POSIX sh (dash, busybox ash, bash). Every value taken from a manifest is a
//! validated number or name, or is single-quoted here; nothing a user wrote is ever `eval`ed
//! except `user_defined` commands, which run as `sh -c` by design.

use std::fmt::Write as _;

use super::config::RevertScheduler;
use super::fault::{FaultSpecOnHost, HostFault, ProcessRef, Size};

/// Exit status when the fault cannot be applied on this host (missing tool or kernel module).
pub const EXIT_UNSUPPORTED_HOST: i32 = 3;

/// What the scripts of one injection need besides the fault.
#[derive(Debug, Clone)]
pub struct ScriptContext<'a> {
    pub injection_id: &'a str,
    pub experiment_uid: &'a str,
    pub state_dir: &'a str,
    pub duration_secs: u64,
    pub scheduler: RevertScheduler,
}

impl ScriptContext<'_> {
    fn state(&self) -> String {
        format!("{}/{}", self.state_dir, self.injection_id)
    }
}

/// Injection ids become file and unit names on the instance; the hub's are `<uuid>-<n>`.
pub fn valid_injection_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Single-quotes a string for sh: the only character that needs care inside '…' is '.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A netem handle derived from the injection id, so the revert deletes only a root qdisc this
/// injection added (never a user's own). FNV-1a, folded to 16 bits, away from tc's auto range.
pub fn netem_handle(injection_id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in injection_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let folded = ((h >> 16) ^ (h & 0xffff)) as u16;
    // tc allocates 8000: upwards by itself; 1: is what people type by hand.
    let handle = 0x1000 + (folded % 0x6000);
    format!("{handle:x}:")
}

/// Text safe inside a `#` comment line and a double-quoted `say`: no line breaks, no control
/// characters, nothing the shell expands in double quotes.
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '"' | '$' | '`' | '\\') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The few lines every script starts with.
fn prelude(out: &mut String, title: &str, ctx: &ScriptContext) {
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(out, "# chaoshub: {}", plain(title));
    let _ = writeln!(
        out,
        "# injection {} of experiment {}",
        ctx.injection_id, ctx.experiment_uid
    );
    out.push_str("set -u\nset -f\n");
    let _ = writeln!(out, "ID={}", quote(ctx.injection_id));
    let _ = writeln!(out, "STATE={}", quote(&ctx.state()));
}

/// One undo step of a revert script and the check that reads the fault back.
struct Steps {
    /// Run before anything is written; may `die` (nothing to undo yet).
    checks: String,
    /// Appended to revert.sh; reads runtime values from state files, sets `failed=1` on error.
    undo: String,
    apply: String,
    verify: String,
}

/// The interface: the one named, else the default route's.
fn device_check(device: &Option<String>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "DEV={}", quote(device.as_deref().unwrap_or("")));
    s.push_str(
        r#"if [ -z "$DEV" ]; then
  DEV=$(ip route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
fi
[ -n "$DEV" ] || die 2 "no interface named and no default route to take it from; set the device field"
ip link show dev "$DEV" >/dev/null 2>&1 || die 2 "interface $DEV does not exist"
"#,
    );
    s
}

const READ_DEV: &str = "DEV=$(cat \"$STATE/dev\" 2>/dev/null || true)\n";

fn need_tool(tool: &str, package_hint: &str) -> String {
    format!(
        "command -v {tool} >/dev/null 2>&1 || die {EXIT_UNSUPPORTED_HOST} \"{tool} is not installed ({package_hint})\"\n"
    )
}

/// iptables rules (without the `-I`/`-D`/`-C` verb) for loss and partition; `$DEV` and `$ID`
/// are expanded on the instance.
fn iptables_rules(fault: &HostFault) -> Vec<String> {
    let comment = "-m comment --comment \"chaoshub:$ID\"";
    match fault {
        HostFault::Loss {
            percent,
            destinations,
            ..
        } => {
            let probability = format!("{:.4}", percent / 100.0);
            let stat = format!("-m statistic --mode random --probability {probability}");
            if destinations.is_empty() {
                vec![format!("OUTPUT -o \"$DEV\" {stat} {comment} -j DROP")]
            } else {
                destinations
                    .iter()
                    .map(|d| format!("OUTPUT -o \"$DEV\" -d {d} {stat} {comment} -j DROP"))
                    .collect()
            }
        }
        HostFault::Partition {
            direction,
            peers,
            port,
            protocol,
            ..
        } => {
            let port_match = port
                .map(|p| format!(" -p {protocol} --dport {p}"))
                .unwrap_or_default();
            let mut rules = Vec::new();
            let peer_list: Vec<Option<&String>> = if peers.is_empty() {
                vec![None]
            } else {
                peers.iter().map(Some).collect()
            };
            for peer in peer_list {
                if direction.egress() {
                    let to = peer.map(|p| format!(" -d {p}")).unwrap_or_default();
                    rules.push(format!(
                        "OUTPUT -o \"$DEV\"{to}{port_match} {comment} -j DROP"
                    ));
                }
                if direction.ingress() {
                    let from = peer.map(|p| format!(" -s {p}")).unwrap_or_default();
                    rules.push(format!(
                        "INPUT -i \"$DEV\"{from}{port_match} {comment} -j DROP"
                    ));
                }
            }
            rules
        }
        _ => Vec::new(),
    }
}

fn iptables_steps(fault: &HostFault, device: &Option<String>) -> Steps {
    let rules = iptables_rules(fault);
    let mut checks = need_tool("iptables", "install the iptables package");
    checks.push_str(&device_check(device));
    let mut apply = String::from("echo \"$DEV\" > \"$STATE/dev\"\n");
    let mut verify = String::new();
    let mut undo = String::from(READ_DEV);
    undo.push_str("if [ -n \"$DEV\" ]; then\n");
    for rule in &rules {
        let _ = writeln!(apply, "iptables -w -I {rule}");
        let _ = writeln!(verify, "iptables -w -C {rule} || exit 1");
        // A rule carries this injection's comment, so deleting it until none is left removes
        // exactly what the inject added, even if it ran twice.
        let _ = writeln!(
            undo,
            "  while iptables -w -D {rule} 2>/dev/null; do :; done"
        );
        let _ = writeln!(
            undo,
            "  if iptables -w -C {rule} 2>/dev/null; then failed=1; fi"
        );
    }
    undo.push_str("fi\n");
    Steps {
        checks,
        undo,
        apply,
        verify,
    }
}

fn delay_steps(
    ctx: &ScriptContext,
    device: &Option<String>,
    latency_ms: f64,
    jitter_ms: f64,
    correlation: Option<f64>,
) -> Steps {
    let mut netem = format!("netem delay {latency_ms}ms");
    if jitter_ms > 0.0 {
        let _ = write!(netem, " {jitter_ms}ms");
        if let Some(c) = correlation {
            let _ = write!(netem, " {c}%");
        }
    }
    netem_steps(ctx, device, &netem)
}

/// A root netem qdisc with the injection's handle; `netem` is its kind and arguments
/// (`netem duplicate 20%`). Where the kernel has no netem the script refuses with
/// [`EXIT_UNSUPPORTED_HOST`] naming `sch_netem`.
fn netem_steps(ctx: &ScriptContext, device: &Option<String>, netem: &str) -> Steps {
    let handle = netem_handle(ctx.injection_id);
    let mut checks = need_tool("tc", "install iproute2 / iproute-tc");
    checks.push_str(&device_check(device));
    let apply = format!(
        r#"echo "$DEV" > "$STATE/dev"
modprobe sch_netem >/dev/null 2>&1 || true
if ! err=$(tc qdisc add dev "$DEV" root handle {handle} {netem} 2>&1); then
  case "$err" in
    *nknown*|*"No such file"*|*"not found"*|*"not supported"*)
      abort {EXIT_UNSUPPORTED_HOST} "tc netem is not available on this kernel: the sch_netem module is missing (on Amazon Linux install kernel-modules-extra); tc said: $err" ;;
  esac
  abort 1 "tc qdisc add dev $DEV root handle {handle} {netem} failed: $err"
fi
"#
    );
    let verify =
        format!("tc qdisc show dev \"$DEV\" root | grep -q \"qdisc netem {handle} \" || exit 1\n");
    let undo = format!(
        r#"{READ_DEV}if [ -n "$DEV" ] && tc qdisc show dev "$DEV" root 2>/dev/null | grep -q "qdisc netem {handle} "; then
  tc qdisc del dev "$DEV" root handle {handle} || failed=1
fi
"#
    );
    Steps {
        checks,
        undo,
        apply,
        verify,
    }
}

/// Egress shaping: an HTB root qdisc with the injection's handle, one class at the asked rate
/// (`buffer` its burst) over a byte FIFO of `limit` bytes — the queue a token bucket's limit
/// bounds. With destinations, u32 filters send only their packets to that class and everything
/// else takes HTB's direct queue, unshaped (`default 0` names no class); without, all traffic
/// is the class's (`default 1`). Deleting the root qdisc removes classes, filters and FIFO.
fn bandwidth_steps(
    ctx: &ScriptContext,
    device: &Option<String>,
    rate_bps: u64,
    limit_bytes: u64,
    buffer_bytes: u64,
    destinations: &[String],
) -> Steps {
    // The same id-derived handle as the delay's netem: the revert deletes only this root.
    let handle = netem_handle(ctx.injection_id);
    let major = handle.trim_end_matches(':');
    let class = format!("{major}:1");
    let mut checks = need_tool("tc", "install iproute2 / iproute-tc");
    checks.push_str(&device_check(device));
    let default_class = if destinations.is_empty() { 1 } else { 0 };
    let mut apply = format!(
        r#"echo "$DEV" > "$STATE/dev"
modprobe sch_htb >/dev/null 2>&1 || true
shape() {{
  module=$1; shift
  if ! err=$(tc "$@" 2>&1); then
    case "$err" in
      *nknown*|*"No such file"*|*"not found"*|*"not supported"*)
        abort {EXIT_UNSUPPORTED_HOST} "tc $* is not available on this kernel: the $module module is missing (on Amazon Linux install kernel-modules-extra); tc said: $err" ;;
    esac
    abort 1 "tc $* failed: $err"
  fi
}}
shape sch_htb qdisc add dev "$DEV" root handle {handle} htb default {default_class}
shape sch_htb class add dev "$DEV" parent {handle} classid {class} htb rate {rate_bps}bit ceil {rate_bps}bit burst {buffer_bytes} cburst {buffer_bytes}
shape sch_fifo qdisc add dev "$DEV" parent {class} bfifo limit {limit_bytes}
"#
    );
    if !destinations.is_empty() {
        apply.push_str(
            "modprobe cls_u32 >/dev/null 2>&1 || true
",
        );
    }
    for d in destinations {
        let _ = writeln!(
            apply,
            "shape cls_u32 filter add dev \"$DEV\" parent {handle} protocol ip prio 1 u32 match ip dst {d} flowid {class}"
        );
    }
    let mut verify = format!(
        "tc qdisc show dev \"$DEV\" root | grep -q \"qdisc htb {handle} \" || exit 1\n\
         tc class show dev \"$DEV\" classid {class} | grep -q \"class htb {class} \" || exit 1\n"
    );
    if !destinations.is_empty() {
        let _ = writeln!(
            verify,
            "[ \"$(tc filter show dev \"$DEV\" parent {handle} | grep -c \"flowid {class}\")\" -ge {} ] || exit 1",
            destinations.len()
        );
    }
    let undo = format!(
        r#"{READ_DEV}if [ -n "$DEV" ] && tc qdisc show dev "$DEV" root 2>/dev/null | grep -q "qdisc htb {handle} "; then
  tc qdisc del dev "$DEV" root handle {handle} || failed=1
fi
"#
    );
    Steps {
        checks,
        undo,
        apply,
        verify,
    }
}

/// Starts one detached background process, recording its process group so the revert can
/// stop it. Every descriptor is closed: SSM waits for the script's stdout to close.
fn spawn_detached(command: &str) -> String {
    format!("setsid nohup {command} >/dev/null 2>&1 </dev/null &\necho $! >> \"$STATE/pids\"\n")
}

const KILL_PIDS: &str = r#"if [ -f "$STATE/pids" ]; then
  for pg in $(cat "$STATE/pids"); do kill -s TERM -- "-$pg" 2>/dev/null || true; done
fi
"#;

const VERIFY_PIDS: &str = r#"sleep 1
for pg in $(cat "$STATE/pids"); do kill -0 "$pg" 2>/dev/null || exit 1; done
"#;

fn stress_steps(
    cpu_workers: Option<u32>,
    cpu_load: u8,
    memory: Option<(u32, Size)>,
    stress_ng: &Option<String>,
) -> Steps {
    let mut checks = String::from(
        "if command -v stress-ng >/dev/null 2>&1; then HAVE_STRESS_NG=1; else HAVE_STRESS_NG=0; fi\n",
    );
    let needs_stress_ng = stress_ng.is_some() || (cpu_workers.is_some() && cpu_load < 100);
    if needs_stress_ng {
        let why = if stress_ng.is_some() {
            "stressngStressors need it"
        } else {
            "a CPU load below 100% needs it"
        };
        let _ = writeln!(
            checks,
            "[ \"$HAVE_STRESS_NG\" = 1 ] || die {EXIT_UNSUPPORTED_HOST} \"stress-ng is not installed ({why}; install the stress-ng package)\""
        );
    }
    if let Some(w) = cpu_workers {
        let _ = writeln!(checks, "CPU_WORKERS={w}");
        checks.push_str(
            "[ \"$CPU_WORKERS\" -gt 0 ] || CPU_WORKERS=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)\n",
        );
    }
    if let Some((w, size)) = memory {
        let _ = writeln!(checks, "MEM_WORKERS={w}");
        match size {
            Size::Bytes(b) => {
                let _ = writeln!(checks, "MEM_BYTES={b}");
            }
            // A percentage is of total memory, spread over the workers.
            Size::Percent(p) => {
                let _ = writeln!(
                    checks,
                    "MEM_BYTES=$(awk -v p={p} -v w=\"$MEM_WORKERS\" '/^MemTotal:/ {{printf \"%d\", $2 * 1024 * p / 100 / w}}' /proc/meminfo)"
                );
            }
        }
        checks.push_str("[ -n \"$MEM_BYTES\" ] && [ \"$MEM_BYTES\" -gt 0 ] || die 2 \"cannot work out the memory size\"\n");
    }
    if let Some(args) = stress_ng {
        let _ = writeln!(checks, "STRESS_NG_ARGS={}", quote(args));
    }

    let mut ng_args = String::new();
    if cpu_workers.is_some() {
        let _ = write!(ng_args, " --cpu \"$CPU_WORKERS\" --cpu-load {cpu_load}");
    }
    if memory.is_some() {
        ng_args.push_str(" --vm \"$MEM_WORKERS\" --vm-bytes \"$MEM_BYTES\" --vm-keep");
    }
    if stress_ng.is_some() {
        // Unquoted on purpose: the arguments are split into words (globbing is off, `set -f`),
        // never evaluated.
        ng_args.push_str(" $STRESS_NG_ARGS");
    }
    let mut apply = String::from("if [ \"$HAVE_STRESS_NG\" = 1 ]; then\n");
    apply.push_str(&indent(&spawn_detached(&format!(
        "stress-ng{ng_args} --timeout \"${{DURATION}}s\""
    ))));
    apply.push_str("else\n");
    // Without stress-ng (not on stock AMIs): busy loops for CPU at 100%, and `tail` holding a
    // newline-free stream in memory for memory. Each is bounded by `timeout` as a second
    // dead man's switch.
    if cpu_workers.is_some() {
        apply.push_str("  i=0\n  while [ \"$i\" -lt \"$CPU_WORKERS\" ]; do\n");
        apply.push_str(&indent(&indent(&spawn_detached(
            "timeout \"$DURATION\" sh -c 'while :; do :; done'",
        ))));
        apply.push_str("    i=$((i + 1))\n  done\n");
    }
    if memory.is_some() {
        apply.push_str("  i=0\n  while [ \"$i\" -lt \"$MEM_WORKERS\" ]; do\n");
        apply.push_str(&indent(&indent(&spawn_detached(
            "timeout \"$DURATION\" sh -c \"head -c $MEM_BYTES /dev/zero | tail\"",
        ))));
        apply.push_str("    i=$((i + 1))\n  done\n");
    }
    apply.push_str("fi\n");
    Steps {
        checks,
        undo: KILL_PIDS.to_string(),
        apply,
        verify: VERIFY_PIDS.to_string(),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
}

fn disk_fill_steps(path: &str, size: Size, fallocate: bool) -> Steps {
    let mut checks = String::new();
    let _ = writeln!(checks, "TARGET={}", quote(path));
    checks.push_str(
        r#"if [ -d "$TARGET" ]; then FILE="${TARGET%/}/chaoshub-$ID.fill"; else FILE="$TARGET"; fi
[ -e "$FILE" ] && die 2 "$FILE already exists; chaoshub never overwrites a file it did not create"
DIR=$(dirname "$FILE")
[ -d "$DIR" ] || die 2 "directory $DIR does not exist"
"#,
    );
    match size {
        Size::Bytes(b) => {
            let _ = writeln!(checks, "BYTES={b}");
        }
        // A percentage is how full the filesystem should end up, as AWSFIS-Run-Disk-Fill does.
        Size::Percent(p) => {
            let _ = writeln!(
                checks,
                "BYTES=$(df -P -k \"$DIR\" | awk -v p={p} 'NR == 2 {{printf \"%d\", ($2 * p / 100 - $3) * 1024}}')"
            );
            let _ = writeln!(
                checks,
                "[ \"$BYTES\" -gt 0 ] 2>/dev/null || die 2 \"$DIR is already at least {p}% full\""
            );
        }
    }
    let mut apply = String::from("echo \"$FILE\" > \"$STATE/file\"\n");
    if fallocate {
        apply.push_str(
            "fallocate -l \"$BYTES\" \"$FILE\" 2>/dev/null || head -c \"$BYTES\" /dev/zero > \"$FILE\" || abort 1 \"cannot write $BYTES bytes to $FILE\"\n",
        );
    } else {
        apply.push_str(
            "head -c \"$BYTES\" /dev/zero > \"$FILE\" || abort 1 \"cannot write $BYTES bytes to $FILE\"\n",
        );
    }
    Steps {
        checks,
        undo: r#"F=$(cat "$STATE/file" 2>/dev/null || true)
if [ -n "$F" ]; then rm -f -- "$F" || failed=1; fi
"#
        .to_string(),
        apply,
        verify: "[ \"$(wc -c < \"$FILE\")\" -ge \"$BYTES\" ] || exit 1\n".to_string(),
    }
}

fn process_steps(process: &ProcessRef, signal: i32, recover_cmd: &Option<String>) -> Steps {
    let (checks, apply) = match process {
        ProcessRef::Pid(pid) => (
            format!("kill -0 {pid} 2>/dev/null || die 2 \"no process with pid {pid} is running\"\nPIDS={pid}\n"),
            format!("kill -{signal} {pid} || abort 1 \"cannot send signal {signal} to pid {pid}\"\n"),
        ),
        ProcessRef::Name(name) => (
            format!(
                "{}NAME={}\nPIDS=$(pgrep -x \"$NAME\" | tr '\\n' ' ')\n[ -n \"$PIDS\" ] || die 2 \"no process named $NAME is running\"\n",
                need_tool("pgrep", "install procps"),
                quote(name)
            ),
            format!("pkill -{signal} -x \"$NAME\" || abort 1 \"cannot send signal {signal} to processes named $NAME\"\n"),
        ),
    };
    let undo = match recover_cmd {
        Some(cmd) => format!("sh -c {} || failed=1\n", quote(cmd)),
        None => String::new(),
    };
    Steps {
        checks,
        undo,
        apply: format!("{apply}echo \"chaoshub: sent signal {signal} to pid(s) $PIDS\"\n"),
        verify: "true\n".to_string(),
    }
}

fn user_defined_steps(attack: &str, recover: &Option<String>) -> Steps {
    Steps {
        checks: String::new(),
        undo: match recover {
            Some(cmd) => format!("sh -c {} || failed=1\n", quote(cmd)),
            None => String::new(),
        },
        apply: format!(
            "sh -c {} || abort 1 \"attackCmd exited with status $?\"\n",
            quote(attack)
        ),
        verify: "true\n".to_string(),
    }
}

fn steps(spec: &FaultSpecOnHost, ctx: &ScriptContext) -> Steps {
    match &spec.fault {
        HostFault::Stress {
            cpu_workers,
            cpu_load,
            memory,
            stress_ng,
        } => stress_steps(*cpu_workers, *cpu_load, *memory, stress_ng),
        HostFault::Delay {
            device,
            latency_ms,
            jitter_ms,
            correlation,
        } => delay_steps(ctx, device, *latency_ms, *jitter_ms, *correlation),
        HostFault::Netem {
            device,
            effect,
            percent,
            correlation,
        } => {
            let mut netem = format!("netem {effect} {percent}%");
            if let Some(c) = correlation {
                let _ = write!(netem, " {c}%");
            }
            netem_steps(ctx, device, &netem)
        }
        HostFault::Bandwidth {
            device,
            rate_bps,
            limit_bytes,
            buffer_bytes,
            destinations,
        } => bandwidth_steps(
            ctx,
            device,
            *rate_bps,
            *limit_bytes,
            *buffer_bytes,
            destinations,
        ),
        HostFault::Loss { device, .. } | HostFault::Partition { device, .. } => {
            iptables_steps(&spec.fault, device)
        }
        HostFault::DiskFill {
            path,
            size,
            fallocate,
        } => disk_fill_steps(path, *size, *fallocate),
        HostFault::ProcessKill {
            process,
            signal,
            recover_cmd,
        } => process_steps(process, *signal, recover_cmd),
        HostFault::UserDefined { attack, recover } => user_defined_steps(attack, recover),
    }
}

/// The revert script the inject script leaves on the instance. `$1` is `timer` when the
/// scheduled revert runs it (it must not cancel itself), `abort` when a failed inject runs it,
/// and anything else when chaoshub's recovery runs it.
fn revert_script(spec: &FaultSpecOnHost, ctx: &ScriptContext, undo: &str) -> String {
    let mut out = String::new();
    prelude(
        &mut out,
        &format!(
            "revert of {}/{} ({})",
            spec.kind,
            spec.action,
            spec.fault.summary()
        ),
        ctx,
    );
    out.push_str("MODE=${1:-now}\nfailed=0\n");
    out.push_str(undo);
    let unit = format!("chaoshub-revert-{}", ctx.injection_id);
    let _ = write!(
        out,
        r#"if [ "$MODE" != timer ]; then
  case "$(cat "$STATE/scheduler" 2>/dev/null || true)" in
    systemd-run) systemctl stop {unit}.timer >/dev/null 2>&1 || true ;;
    at) [ -f "$STATE/at-job" ] && atrm "$(cat "$STATE/at-job")" >/dev/null 2>&1 || true ;;
    nohup) [ -f "$STATE/revert.pid" ] && kill -s TERM -- "-$(cat "$STATE/revert.pid")" >/dev/null 2>&1 || true ;;
  esac
fi
if [ "$failed" -ne 0 ]; then
  echo "chaoshub: the revert of injection $ID is incomplete; $STATE is kept for another try" >&2
  exit 1
fi
rm -rf -- "$STATE"
echo "chaoshub: reverted injection $ID"
"#
    );
    out
}

fn schedule_function(ctx: &ScriptContext) -> String {
    let unit = format!("chaoshub-revert-{}", ctx.injection_id);
    format!(
        r#"schedule_revert() {{
  how=$SCHEDULER
  if [ "$how" = auto ]; then
    if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then how=systemd-run
    elif command -v at >/dev/null 2>&1 && pgrep -x atd >/dev/null 2>&1; then how=at
    else how=nohup
    fi
  fi
  case "$how" in
    systemd-run)
      systemd-run --quiet --unit={unit} --on-active="$DURATION" --timer-property=AccuracySec=1s /bin/sh "$STATE/revert.sh" timer >/dev/null || return 1 ;;
    at)
      # at counts in minutes: the fault may last up to a minute longer than asked.
      out=$(echo "/bin/sh $STATE/revert.sh timer" | at now + $(( (DURATION + 59) / 60 )) minutes 2>&1) || return 1
      echo "$out" | awk '/^job/ {{print $2}}' > "$STATE/at-job" ;;
    nohup)
      setsid nohup /bin/sh -c "sleep $DURATION; exec /bin/sh $STATE/revert.sh timer" >/dev/null 2>&1 </dev/null &
      echo $! > "$STATE/revert.pid" ;;
    *) return 1 ;;
  esac
  echo "$how" > "$STATE/scheduler"
}}
"#
    )
}

/// The script that injects `spec` on an instance.
pub fn inject_script(spec: &FaultSpecOnHost, ctx: &ScriptContext) -> String {
    let steps = steps(spec, ctx);
    let summary = spec.fault.summary();
    let mut out = String::new();
    prelude(
        &mut out,
        &format!(
            "{}/{}: {summary}; reverts itself after {}s",
            spec.kind, spec.action, ctx.duration_secs
        ),
        ctx,
    );
    let _ = writeln!(out, "DURATION={}", ctx.duration_secs);
    let _ = writeln!(out, "SCHEDULER={}", ctx.scheduler.as_str());
    out.push_str(
        r#"say() { printf 'chaoshub: %s\n' "$*"; }
# die: give up before anything was applied or scheduled.
die() { code=$1; shift; printf 'chaoshub: %s\n' "$*" >&2; [ -f "$STATE/applied" ] || rm -rf -- "$STATE"; exit "$code"; }
# abort: give up after the revert was written; undo whatever is in place now.
abort() { code=$1; shift; printf 'chaoshub: %s\n' "$*" >&2; /bin/sh "$STATE/revert.sh" abort >/dev/null 2>&1; exit "$code"; }
if [ -f "$STATE/applied" ]; then say "injection $ID is already in place"; exit 0; fi
# An attempt that was interrupted (the command cancelled or the instance rebooted) left its
# revert behind: run it, then start afresh.
if [ -f "$STATE/revert.sh" ]; then /bin/sh "$STATE/revert.sh" abort >/dev/null 2>&1 || true; fi
[ "$(id -u)" = 0 ] || die 2 "must run as root (SSM Run Command runs scripts as root)"
"#,
    );
    out.push_str(&steps.checks);
    out.push_str("mkdir -p \"$STATE\" || die 2 \"cannot create $STATE\"\n");
    let revert = revert_script(spec, ctx, &steps.undo);
    let _ = writeln!(
        out,
        "printf '%s' {} > \"$STATE/revert.sh\" || die 2 \"cannot write $STATE/revert.sh\"",
        quote(&revert)
    );
    out.push_str(&schedule_function(ctx));
    out.push_str("schedule_revert || abort 2 \"cannot schedule the revert (tried $SCHEDULER)\"\n");
    out.push_str(&steps.apply);
    out.push_str("if ! (\n");
    out.push_str(&indent(&steps.verify));
    out.push_str(
        ") >/dev/null 2>&1; then\n  abort 1 \"the fault did not read back as in place\"\nfi\n",
    );
    out.push_str("touch \"$STATE/applied\"\n");
    let _ = writeln!(
        out,
        "say \"injected {}; revert in ${{DURATION}}s by $(cat \"$STATE/scheduler\")\"",
        plain(&summary)
    );
    out
}

/// The script recovery sends: runs the revert the inject left behind, if any (a fault that was
/// never applied, or already reverted by its timer, leaves nothing to do).
pub fn recover_script(state_dir: &str, injection_id: &str) -> String {
    let state = quote(&format!("{state_dir}/{injection_id}"));
    format!(
        r#"#!/bin/sh
# chaoshub: recovery of injection {injection_id}
set -u
STATE={state}
if [ -f "$STATE/revert.sh" ]; then
  exec /bin/sh "$STATE/revert.sh" now
fi
echo "chaoshub: nothing to revert for injection {injection_id}"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn handles_are_stable_and_in_range() {
        let h = netem_handle("4b1c-0");
        assert_eq!(h, netem_handle("4b1c-0"));
        assert_ne!(h, netem_handle("4b1c-1"));
        let n = u32::from_str_radix(h.trim_end_matches(':'), 16).unwrap();
        assert!((0x1000..0x7000).contains(&n), "{h}");
    }

    #[test]
    fn injection_ids_are_safe_names() {
        assert!(valid_injection_id("0b6c2f4e-7f1a-4c4e-9f00-1d2e3f405060-0"));
        assert!(!valid_injection_id("../etc"));
        assert!(!valid_injection_id("a b"));
        assert!(!valid_injection_id("-rf"));
        assert!(!valid_injection_id(""));
    }
}
