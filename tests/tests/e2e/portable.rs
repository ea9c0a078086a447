//! One manifest, many environments (issue 17): the same Chaos Mesh documents, not edited by a
//! single byte, submitted to one hub for each of its environments (`?env=NAME`), each run on
//! that environment's real far side and measured there — a `chaos-agent` host in a network
//! namespace, a container on the Docker engine, a proxy of a real Toxiproxy server. Where an
//! environment cannot run a document, the hub's refusal is the result. The side-by-side table
//! is printed in the test output (and copied into the README's "One manifest, many
//! environments" section).
//!
//! The documents select their target by `name: chtest-e2e-checkout`: the agent carries that
//! label, the container and the proxy have that name (both adapters expose a target's name as
//! its `name` label). They use `generateName`, so the same text is accepted once per
//! environment. Runs as root, like `agent.rs`; needs the Docker engine and the Toxiproxy server
//! (`chaoshub_testkit::toxiproxy_server()`: a SKIP line without it, a failure under `CI=true`).
//!
//! Not covered here: the `ssm` adapter's delay is a netem qdisc, and this machine's kernel has no
//! `sch_netem` (its generated scripts are measured in a namespace by `adapters/tests/ssm`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use chaoshub_testkit::toxiproxy::ToxiproxyServer;

use super::agent::Lab;
use super::docker::{register_docker, Container, ExperimentLeftovers};
use super::netns::median_rtt;
use super::support::*;

const TARGET: &str = "chtest-e2e-checkout";

/// Exactly what a Chaos Mesh user writes (only the selector's value is this test's).
const DELAY: &str = "apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  generateName: checkout-delay-
spec:
  action: delay
  mode: all
  selector:
    labelSelectors:
      name: chtest-e2e-checkout
  delay:
    latency: 100ms
  duration: 60s
";

const POD_FAILURE: &str = "apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  generateName: checkout-failure-
spec:
  action: pod-failure
  mode: all
  selector:
    labelSelectors:
      name: chtest-e2e-checkout
  duration: 60s
";

/// A TCP echo server on loopback (the proxy's upstream), one thread per connection; it stops
/// with the test process.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The median of 9 one-byte round trips through `addr` on one connection.
fn echo_rtt(addr: SocketAddr) -> Duration {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    let mut samples: Vec<Duration> = (0..9)
        .map(|_| {
            let t = Instant::now();
            conn.write_all(b"x").unwrap();
            conn.read_exact(&mut buf).unwrap();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One environment of the hub, and how its target's traffic is timed.
struct Place<'a> {
    env: &'static str,
    adapter: &'static str,
    what: &'static str,
    rtt: Box<dyn Fn() -> Duration + 'a>,
}

/// Submits `manifest` unchanged to `env`: the new experiment's uid, or the hub's refusal
/// (status and message) when the environment cannot run it.
fn submit_to(lab: &Lab, env: &str, manifest: &str) -> Result<String, String> {
    let (code, v) = lab
        .api
        .post(&format!("/api/v1/experiments?env={env}"), Some(manifest));
    match code {
        201 => Ok(uid(&v)),
        422 => Err(format!(
            "{code}: {}",
            v["message"].as_str().unwrap_or_default()
        )),
        _ => panic!("{env}: the hub answered {code}, neither accepted nor refused: {v:#}"),
    }
}

/// Writes the table where a reader of the test output sees it: straight to the process's
/// standard error (libtest captures only `print!`/`eprint!`).
fn print_table(title: &str, rows: &[(String, String, String)]) {
    let mut text = format!("\n{title}\n\n| environment | adapter | result |\n|---|---|---|\n");
    for (env, adapter, result) in rows {
        text.push_str(&format!("| {env} | {adapter} | {result} |\n"));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

#[test]
fn one_manifest_runs_unchanged_on_every_environment_that_can_run_it() {
    let Some(toxiproxy) = ToxiproxyServer::start() else {
        return;
    };
    let lab = Lab::start_with(&["--label", &format!("name={TARGET}")]);
    let container = Container::run_named(TARGET);
    register_docker(&lab.api, false);
    let upstream = echo_server();
    let proxy = toxiproxy.create_proxy(TARGET, upstream);
    let (code, v) = lab.api.post(
        "/api/v1/environments",
        Some(&format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: proxies}}\nspec: {{adapter: toxiproxy, endpoint: \"{}\"}}\n",
            toxiproxy.url
        )),
    );
    assert_eq!(code, 201, "{v}");

    let places = [
        Place {
            env: "hosts",
            adapter: "native",
            what: "TCP RTT from the agent's host to a peer",
            rtt: Box::new(|| median_rtt(&lab.topo.a, lab.peer.tcp, 21)),
        },
        Place {
            env: "engine",
            adapter: "docker",
            what: "TCP connect RTT to the container",
            rtt: Box::new(|| container.connect_rtt()),
        },
        Place {
            env: "proxies",
            adapter: "toxiproxy",
            what: "round trip through the proxy",
            rtt: Box::new(|| echo_rtt(proxy)),
        },
    ];

    let mut delay_rows = Vec::new();
    for place in &places {
        let before = (place.rtt)();
        let uid = submit_to(&lab, place.env, DELAY)
            .unwrap_or_else(|refusal| panic!("{} refused the delay: {refusal}", place.env));
        let _leftovers = ExperimentLeftovers { uid: uid.clone() };
        // The first docker experiment on an engine may build the helper image first.
        let running = lab
            .api
            .wait_phase(&uid, "Running", Duration::from_secs(120));
        let targets = running["status"]["targets"].as_array().map_or(0, Vec::len);
        assert_eq!(
            targets, 1,
            "{}: one target selected: {running:#}",
            place.env
        );
        let during = (place.rtt)();
        lab.stop(&uid);
        let after = (place.rtt)();
        let added = ms(during.saturating_sub(before));
        eprintln!(
            "{}: {before:?} before, {during:?} during, {after:?} after",
            place.env
        );
        assert!(
            (90.0..=115.0).contains(&added),
            "{}: +{added:.1} ms for 100ms",
            place.env
        );
        assert!(
            after < before + Duration::from_millis(10),
            "{}: {after:?} after recovery vs {before:?} before",
            place.env
        );
        delay_rows.push((
            place.env.to_string(),
            place.adapter.to_string(),
            format!(
                "+{added:.0} ms {} (Running → Aborted, gone after)",
                place.what
            ),
        ));
    }
    assert_eq!(lab.topo.leftovers(), Vec::<String>::new());

    let mut failure_rows = Vec::new();
    for place in &places {
        let result = match submit_to(&lab, place.env, POD_FAILURE) {
            Ok(uid) => {
                let _leftovers = ExperimentLeftovers { uid: uid.clone() };
                lab.api.wait_phase(&uid, "Running", T);
                assert_eq!(
                    place.adapter, "docker",
                    "only docker claims pod-failure here"
                );
                assert!(container.paused(), "the container is paused while it runs");
                lab.stop(&uid);
                assert!(
                    !container.paused(),
                    "the container runs again after recovery"
                );
                "container paused while Running, running again after recovery".to_string()
            }
            Err(refusal) => {
                assert_ne!(
                    place.adapter, "docker",
                    "docker refused pod-failure: {refusal}"
                );
                format!("refused, {refusal}")
            }
        };
        failure_rows.push((place.env.to_string(), place.adapter.to_string(), result));
    }

    print_table(
        "NetworkChaos delay {latency: 100ms}, one unchanged manifest:",
        &delay_rows,
    );
    print_table(
        "PodChaos pod-failure, one unchanged manifest:",
        &failure_rows,
    );
}
