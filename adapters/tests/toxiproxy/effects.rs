//! Measured effects through real sockets: faults injected by the adapter into proxies of the
//! fake server change real traffic, and recovery brings timing back to baseline.

use std::time::{Duration, Instant};

use chaoshub_adapters::toxiproxy::ToxiproxyAdapter;
use chaoshub_adapters::Adapter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fake_server::FakeToxiproxy;
use super::support::*;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test]
async fn latency_200ms_adds_200ms_within_10_percent_and_recovery_restores_baseline() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let listen = fake.create_proxy("echo", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "echo").await;

    let baseline = median_round_trip(listen, 9).await;
    let f = fault(
        &proxy_chaos("echo", "latency", Some("{latency: 200}"), ""),
        "lat-0",
    );
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let slowed = median_round_trip(listen, 5).await;
    adapter
        .recover(&env, &injection(&f, &target, details))
        .await
        .unwrap();
    let after = median_round_trip(listen, 9).await;

    let added = ms(slowed) - ms(baseline);
    eprintln!(
        "latency: baseline {:.2} ms, with toxic {:.2} ms (added {added:.1} ms), after recovery {:.2} ms",
        ms(baseline),
        ms(slowed),
        ms(after)
    );
    assert!(
        (180.0..=220.0).contains(&added),
        "added {added:.1} ms, wanted 200 ± 10 %"
    );
    assert!(
        ms(after) < ms(baseline) + 20.0,
        "after recovery {:.2} ms is not back to baseline {:.2} ms",
        ms(after),
        ms(baseline)
    );
}

#[tokio::test]
async fn network_chaos_delay_is_measured_too() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let listen = fake.create_proxy("echo", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "echo").await;
    let baseline = median_round_trip(listen, 5).await;
    let f = fault(
        &network_chaos("echo", "delay", "  delay: {latency: 150ms}\n"),
        "nd-0",
    );
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let slowed = median_round_trip(listen, 5).await;
    adapter
        .recover(&env, &injection(&f, &target, details))
        .await
        .unwrap();
    let added = ms(slowed) - ms(baseline);
    eprintln!("NetworkChaos delay 150ms: added {added:.1} ms");
    assert!(
        (135.0..=165.0).contains(&added),
        "added {added:.1} ms, wanted 150 ± 10 %"
    );
}

#[tokio::test]
async fn bandwidth_caps_a_transfer_within_15_percent() {
    let fake = FakeToxiproxy::start().await;
    let upstream = bulk_server().await;
    let listen = fake.create_proxy("bulk", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "bulk").await;
    const BYTES: usize = 400_000;
    const RATE_KB: f64 = 200.0;

    let baseline = transfer_time(listen, BYTES).await;
    let f = fault(
        &proxy_chaos("bulk", "bandwidth", Some("{rate: 200}"), ""),
        "bw-0",
    );
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let capped = transfer_time(listen, BYTES).await;
    adapter
        .recover(&env, &injection(&f, &target, details))
        .await
        .unwrap();
    let after = transfer_time(listen, BYTES).await;

    let rate = BYTES as f64 / 1000.0 / capped.as_secs_f64();
    eprintln!(
        "bandwidth: baseline {:.1} ms, capped {:.1} ms ({rate:.1} KB/s for a 200 KB/s toxic), after {:.1} ms",
        ms(baseline),
        ms(capped),
        ms(after)
    );
    assert!(
        (RATE_KB * 0.85..=RATE_KB * 1.15).contains(&rate),
        "measured {rate:.1} KB/s, wanted 200 KB/s ± 15 %"
    );
    assert!(
        after < Duration::from_millis(500),
        "after recovery {after:?}"
    );
}

#[tokio::test]
async fn down_refuses_connections_until_recovered() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let listen = fake.create_proxy("echo", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "echo").await;
    let mut open = TcpStream::connect(listen).await.unwrap();

    let f = fault(&proxy_chaos("echo", "down", None, ""), "dn-0");
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let refused = TcpStream::connect(listen).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // An open connection is closed, as Toxiproxy does when a proxy is disabled.
    let mut byte = [0u8; 1];
    let _ = open.write_all(b"p").await;
    let read = tokio::time::timeout(Duration::from_secs(2), open.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");

    adapter
        .recover(&env, &injection(&f, &target, details))
        .await
        .unwrap();
    assert!(echoes_within(listen, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn timeout_stalls_traffic_and_recovery_lets_it_flow() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let listen = fake.create_proxy("echo", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "echo").await;
    assert!(echoes_within(listen, Duration::from_secs(1)).await);

    let f = fault(
        &proxy_chaos("echo", "timeout", Some("{timeout: 0}"), ""),
        "to-0",
    );
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let start = Instant::now();
    assert!(
        !echoes_within(listen, Duration::from_millis(1000)).await,
        "timeout: the answer must not come back"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "stalled, not refused"
    );
    adapter
        .recover(&env, &injection(&f, &target, details))
        .await
        .unwrap();
    assert!(echoes_within(listen, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn timeout_with_a_deadline_closes_the_connection() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let listen = fake.create_proxy("echo", upstream.addr).await;
    let env = env(&fake.url());
    let target = target(&env, "echo").await;
    let f = fault(
        &proxy_chaos("echo", "timeout", Some("{timeout: 300}"), ""),
        "tc-0",
    );
    ToxiproxyAdapter::new()
        .inject(&env, &f, &target)
        .await
        .unwrap();
    let mut socket = TcpStream::connect(listen).await.unwrap();
    socket.write_all(b"p").await.unwrap();
    let start = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed, no data: {read:?}"
    );
    let waited = start.elapsed();
    assert!(
        (Duration::from_millis(250)..Duration::from_millis(1500)).contains(&waited),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn reset_peer_limit_data_slicer_and_slow_close_act_on_real_bytes() {
    let fake = FakeToxiproxy::start().await;
    let echo = echo_server().await;
    let bulk = bulk_server().await;
    let echo_listen = fake.create_proxy("echo", echo.addr).await;
    let bulk_listen = fake.create_proxy("bulk", bulk.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let echo_target = target(&env, "echo").await;
    let bulk_target = target(&env, "bulk").await;

    // reset_peer: the client sees a connection reset.
    let f = fault(
        &proxy_chaos("echo", "reset_peer", Some("{timeout: 100}"), ""),
        "rp-0",
    );
    let details = adapter.inject(&env, &f, &echo_target).await.unwrap();
    let mut socket = TcpStream::connect(echo_listen).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf)).await;
    match read {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }
    adapter
        .recover(&env, &injection(&f, &echo_target, details))
        .await
        .unwrap();

    // limit_data: the connection closes after exactly that many bytes.
    let f = fault(
        &proxy_chaos("bulk", "limit_data", Some("{bytes: 1000}"), ""),
        "ld-0",
    );
    let details = adapter.inject(&env, &f, &bulk_target).await.unwrap();
    let mut socket = TcpStream::connect(bulk_listen).await.unwrap();
    socket.write_all(b"100000\n").await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut received)).await;
    assert_eq!(received.len(), 1000);
    adapter
        .recover(&env, &injection(&f, &bulk_target, details))
        .await
        .unwrap();

    // slicer: 10 KB arrive in slices of about 100 bytes with 1 ms between them.
    let f = fault(
        &proxy_chaos(
            "bulk",
            "slicer",
            Some("{average_size: 100, size_variation: 10, delay: 1000}"),
            "",
        ),
        "sl-0",
    );
    let details = adapter.inject(&env, &f, &bulk_target).await.unwrap();
    let mut socket = TcpStream::connect(bulk_listen).await.unwrap();
    socket.write_all(b"10000\n").await.unwrap();
    let mut reads = 0;
    let mut total = 0;
    let mut largest = 0;
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        reads += 1;
        total += n;
        largest = largest.max(n);
    }
    assert_eq!(total, 10_000);
    assert!(reads >= 50, "only {reads} reads: not sliced");
    assert!(
        largest <= 220,
        "a read of {largest} bytes: slices too large"
    );
    adapter
        .recover(&env, &injection(&f, &bulk_target, details))
        .await
        .unwrap();

    // slow_close: the close reaches the client that much later than the data.
    let f = fault(
        &proxy_chaos("bulk", "slow_close", Some("{delay: 400}"), ""),
        "sc-0",
    );
    let details = adapter.inject(&env, &f, &bulk_target).await.unwrap();
    let mut socket = TcpStream::connect(bulk_listen).await.unwrap();
    socket.write_all(b"10\n").await.unwrap();
    let mut data = [0u8; 10];
    socket.read_exact(&mut data).await.unwrap();
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "closed after {:?}",
        start.elapsed()
    );
    adapter
        .recover(&env, &injection(&f, &bulk_target, details))
        .await
        .unwrap();
}
