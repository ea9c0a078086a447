//! The conformance cells of the `toxiproxy` adapter, measured against the **real** Toxiproxy
//! server (`chaoshub_testkit::toxiproxy_server()`: `$TOXIPROXY_SERVER`, `PATH`, or
//! `../shared/tools/toxiproxy`; skipped with the reason when it is missing, a failure under
//! `CI=true`): each test injects through the adapter, measures the effect on real sockets
//! through the proxy, recovers, checks the effect is gone and records the figure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaoshub_adapters::toxiproxy::ToxiproxyAdapter;
use chaoshub_adapters::{Adapter, Environment, Injection};
use chaoshub_schema::Target;
use chaoshub_testkit::toxiproxy::ToxiproxyServer;
use tokio::net::TcpStream;

use super::support::*;

/// How many toxics the proxy `proxy` of `server` has.
async fn toxic_count(server: &ToxiproxyServer, proxy: &str) -> usize {
    chaoshub_adapters::install_crypto_provider();
    let toxics: serde_json::Value = reqwest::get(format!("{}/proxies/{proxy}/toxics", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    toxics.as_array().map_or(0, Vec::len)
}

/// A real server with one proxy in front of `upstream`, and the adapter pointed at it.
struct Rig {
    server: ToxiproxyServer,
    proxy: &'static str,
    /// Where the proxy listens.
    listen: SocketAddr,
    env: Environment,
    adapter: ToxiproxyAdapter,
    target: Target,
}

impl Rig {
    /// `None` (after the SKIP line) without a Toxiproxy server.
    async fn start(proxy: &'static str, upstream: SocketAddr) -> Option<Rig> {
        let server = ToxiproxyServer::start()?;
        let listen = server.create_proxy(proxy, upstream);
        let env = env(&server.url);
        let target = target(&env, proxy).await;
        Some(Rig {
            server,
            proxy,
            listen,
            env,
            adapter: ToxiproxyAdapter::new(),
            target,
        })
    }

    /// Injects `manifest` through the adapter as injection `id`; the injection to recover.
    async fn inject(&self, manifest: &str, id: &str) -> Injection {
        let f = fault(manifest, id);
        let details = self
            .adapter
            .inject(&self.env, &f, &self.target)
            .await
            .unwrap();
        eprintln!("injected: {details}");
        injection(&f, &self.target, details)
    }

    async fn recover(&self, injection: &Injection) {
        self.adapter.recover(&self.env, injection).await.unwrap();
    }

    /// How many toxics the proxy has (none once a fault is recovered).
    async fn toxic_count(&self) -> usize {
        toxic_count(&self.server, self.proxy).await
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Injects `manifest` into the proxy `echo` of a real server in front of an echo server and
/// returns the median round trip before, during and after; checks no toxic is left.
async fn round_trips_under(manifest: &str) -> Option<(Duration, Duration, Duration)> {
    let upstream = echo_server().await;
    let rig = Rig::start("echo", upstream.addr).await?;
    let listen = rig.listen;
    let before = median_round_trip(listen, 9).await;
    let injected = rig.inject(manifest, "real-0").await;
    let during = median_round_trip(listen, 9).await;
    rig.recover(&injected).await;
    let after = median_round_trip(listen, 9).await;
    eprintln!(
        "round trip {:.1} ms before, {:.1} ms during, {:.1} ms after",
        ms(before),
        ms(during),
        ms(after)
    );
    assert!(
        after < before + Duration::from_millis(20),
        "after recovery {after:?}, before {before:?}"
    );
    assert_eq!(rig.toxic_count().await, 0, "no toxic left");
    Some((before, during, after))
}

/// Checks a delay of `want_ms` per direction the manifest touches and records it.
async fn delay_cell(row: &str, manifest: &str, want_ms: f64, note: &str) -> Option<String> {
    let (before, during, _) = round_trips_under(manifest).await?;
    let added = ms(during) - ms(before);
    assert!(
        (want_ms * 0.9..=want_ms * 1.1 + 5.0).contains(&added),
        "{row}: added {added:.1} ms, wanted {want_ms} ± 10 %"
    );
    Some(format!("+{added:.0} ms round trip through the proxy{note}"))
}

fn net(body: &str) -> String {
    network_chaos("echo", "delay", body)
}

#[tokio::test]
async fn real_server_network_chaos_delay() {
    let Some(figure) = delay_cell(
        "NetworkChaos/delay",
        &net("  delay: {latency: 100ms}\n"),
        100.0,
        " for 100ms",
    )
    .await
    else {
        return;
    };
    chaoshub_testkit::measured!("NetworkChaos/delay", "toxiproxy", figure);
}

/// Every round trip of a one-byte ping over one connection through `addr`.
async fn round_trip_samples(addr: SocketAddr, n: usize) -> Vec<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut byte = [0u8; 1];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        socket.write_all(b"p").await.unwrap();
        socket.read_exact(&mut byte).await.unwrap();
        out.push(start.elapsed());
    }
    out
}

#[tokio::test]
async fn real_server_network_chaos_delay_with_jitter() {
    let upstream = echo_server().await;
    let Some(rig) = Rig::start("echo", upstream.addr).await else {
        return;
    };
    let listen = rig.listen;
    let before = median_round_trip(listen, 9).await;
    let injected = rig
        .inject(
            &net("  delay: {latency: 100ms, jitter: 10ms, correlation: '25'}\n"),
            "real-j-0",
        )
        .await;
    let mut samples = round_trip_samples(listen, 40).await;
    rig.recover(&injected).await;
    let after = median_round_trip(listen, 9).await;
    let values: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let sd = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    samples.sort();
    let added = ms(samples[samples.len() / 2]) - ms(before);
    eprintln!("jitter: +{added:.1} ms median, {sd:.1} ms standard deviation, after {after:?}");
    assert!((90.0..=115.0).contains(&added), "added {added:.1} ms");
    assert!(
        (2.0..=15.0).contains(&sd),
        "standard deviation {sd:.1} ms for ± 10 ms"
    );
    assert!(
        after < before + Duration::from_millis(20),
        "after recovery {after:?}"
    );
    assert_eq!(rig.toxic_count().await, 0, "no toxic left");
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (jitter, correlation)",
        "toxiproxy",
        format!(
            "+{added:.0} ms median round trip through the proxy, {sd:.1} ms standard deviation, for 100ms ± 10ms (correlation is ignored by Toxiproxy)"
        )
    );
}

#[tokio::test]
async fn real_server_network_chaos_delay_both_directions() {
    // One latency toxic per stream: a round trip crosses both.
    let Some(figure) = delay_cell(
        "NetworkChaos/delay (direction both, target selector)",
        &net("  direction: both\n  target: {mode: all, selector: {labelSelectors: {app: db}}}\n  delay: {latency: 100ms}\n"),
        200.0,
        " for 100ms each way (direction both; the target selector is ignored: a proxy has one upstream)",
    )
    .await
    else {
        return;
    };
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (direction both, target selector)",
        "toxiproxy",
        figure
    );
}

#[tokio::test]
async fn real_server_network_chaos_delay_with_an_external_address() {
    let Some(figure) = delay_cell(
        "NetworkChaos/delay (externalTargets address)",
        &net("  delay: {latency: 100ms}\n  externalTargets: ['198.51.100.7']\n"),
        100.0,
        " for 100ms (externalTargets is ignored: a proxy has one upstream)",
    )
    .await
    else {
        return;
    };
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (externalTargets address)",
        "toxiproxy",
        figure
    );
}

#[tokio::test]
async fn real_server_network_chaos_delay_with_an_external_host_name() {
    let Some(figure) = delay_cell(
        "NetworkChaos/delay (externalTargets host name)",
        &net("  delay: {latency: 100ms}\n  externalTargets: [api.example.com]\n"),
        100.0,
        " for 100ms (externalTargets is ignored: a proxy has one upstream)",
    )
    .await
    else {
        return;
    };
    chaoshub_testkit::measured!(
        "NetworkChaos/delay (externalTargets host name)",
        "toxiproxy",
        figure
    );
}

#[tokio::test]
async fn real_server_network_chaos_bandwidth() {
    let upstream = bulk_server().await;
    let Some(rig) = Rig::start("bulk", upstream.addr).await else {
        return;
    };
    const BYTES: usize = 1_000_000;
    let injected = rig
        .inject(
            &network_chaos(
                "bulk",
                "bandwidth",
                "  bandwidth: {rate: 4mbit, limit: 20971520, buffer: 10000}\n",
            ),
            "real-bw-0",
        )
        .await;
    let capped = transfer_time(rig.listen, BYTES).await;
    rig.recover(&injected).await;
    let after = transfer_time(rig.listen, BYTES).await;
    let rate = |d: Duration| BYTES as f64 * 8.0 / d.as_secs_f64() / 1e6;
    eprintln!(
        "bandwidth 4mbit: {:.2} Mbit/s capped, {:.1} Mbit/s after",
        rate(capped),
        rate(after)
    );
    assert!(
        (3.4..=4.6).contains(&rate(capped)),
        "{:.2} Mbit/s for 4mbit",
        rate(capped)
    );
    assert!(rate(after) > 40.0, "the cap is gone after recovery");
    assert_eq!(rig.toxic_count().await, 0);
    chaoshub_testkit::measured!(
        "NetworkChaos/bandwidth",
        "toxiproxy",
        format!(
            "{:.2} Mbit/s download through the proxy for 4mbit ({:.0} Mbit/s after recovery)",
            rate(capped),
            rate(after)
        )
    );
}

/// Partition: a `timeout` toxic (timeout 0) stops the data; after recovery echoes flow again.
async fn partition_cell(body: &str) -> Option<String> {
    let upstream = echo_server().await;
    let rig = Rig::start("echo", upstream.addr).await?;
    let listen = rig.listen;
    assert!(echoes_within(listen, Duration::from_secs(1)).await);
    let injected = rig
        .inject(&network_chaos("echo", "partition", body), "real-p-0")
        .await;
    let during = echoes_within(listen, Duration::from_secs(2)).await;
    rig.recover(&injected).await;
    let after = echoes_within(listen, Duration::from_secs(1)).await;
    assert!(!during, "an echo came back through the partition");
    assert!(after, "no echo after recovery");
    assert_eq!(rig.toxic_count().await, 0);
    Some(
        "no echo through the proxy within 2 s while partitioned (timeout toxic); echoes again after recovery (externalTargets is ignored: a proxy has one upstream)"
            .to_string(),
    )
}

#[tokio::test]
async fn real_server_network_chaos_partition_with_an_external_address() {
    let Some(figure) = partition_cell("  externalTargets: ['198.51.100.7']\n").await else {
        return;
    };
    chaoshub_testkit::measured!(
        "NetworkChaos/partition (externalTargets address)",
        "toxiproxy",
        figure
    );
}

#[tokio::test]
async fn real_server_network_chaos_partition_with_an_external_host_name() {
    let Some(figure) = partition_cell("  externalTargets: [api.example.com]\n").await else {
        return;
    };
    chaoshub_testkit::measured!(
        "NetworkChaos/partition (externalTargets host name)",
        "toxiproxy",
        figure
    );
}

#[tokio::test]
async fn real_server_proxy_chaos_latency() {
    let Some((before, during, _)) =
        round_trips_under(&proxy_chaos("echo", "latency", Some("{latency: 100}"), "")).await
    else {
        return;
    };
    let added = ms(during) - ms(before);
    assert!(
        (90.0..=115.0).contains(&added),
        "added {added:.1} ms for a 100 ms latency toxic"
    );
    chaoshub_testkit::measured!(
        "ProxyChaos/latency",
        "toxiproxy",
        format!("+{added:.0} ms round trip through the proxy for latency 100")
    );
}

#[tokio::test]
async fn real_server_proxy_chaos_down() {
    let upstream = echo_server().await;
    let Some(rig) = Rig::start("echo", upstream.addr).await else {
        return;
    };
    let injected = rig
        .inject(&proxy_chaos("echo", "down", None, ""), "real-dn-0")
        .await;
    let refused = TcpStream::connect(rig.listen).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    rig.recover(&injected).await;
    assert!(echoes_within(rig.listen, Duration::from_secs(1)).await);
    chaoshub_testkit::measured!(
        "ProxyChaos/down",
        "toxiproxy",
        "connections to the proxy refused while down; echoes again after recovery"
    );
}
