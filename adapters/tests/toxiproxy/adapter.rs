//! The adapter's calls against the fake server: discovery, toxics named after the injection,
//! read-back, ownership (a user's toxic survives, a proxy is re-enabled only if we disabled it),
//! two experiments on one proxy, crash-lost answers, NetworkChaos mapping, unreachable servers.

use chaoshub_adapters::toxiproxy::{owned_by, ToxiproxyAdapter};
use chaoshub_adapters::{Adapter, AdapterError, InjectionState};
use chaoshub_schema::api::Capability;
use serde_json::{json, Value};

use super::fake_server::{FakeToxiproxy, Flavor};
use super::support::*;

async fn add_user_toxic(fake: &FakeToxiproxy, proxy: &str, body: Value) {
    chaoshub_adapters::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(format!("{}/proxies/{proxy}/toxics", fake.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn set_enabled(fake: &FakeToxiproxy, proxy: &str, enabled: bool) {
    chaoshub_adapters::install_crypto_provider();
    let response = reqwest::Client::new()
        .patch(format!("{}/proxies/{proxy}", fake.url()))
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn capabilities_cover_proxy_chaos_and_what_a_proxy_can_do_of_network_chaos() {
    let caps = ToxiproxyAdapter::new().capabilities();
    for action in [
        "latency",
        "down",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
    ] {
        assert!(
            caps.contains(&Capability::new("ProxyChaos", action)),
            "{action}"
        );
    }
    for action in ["delay", "bandwidth", "partition"] {
        assert!(
            caps.contains(&Capability::new("NetworkChaos", action)),
            "{action}"
        );
    }
    for action in ["loss", "corrupt", "duplicate", "netem"] {
        assert!(
            !caps.contains(&Capability::new("NetworkChaos", action)),
            "{action}"
        );
    }
}

#[tokio::test]
async fn every_proxy_is_discovered_with_its_labels() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let redis = fake.create_proxy("redis", upstream.addr).await;
    fake.create_proxy("mysql", upstream.addr).await;
    set_enabled(&fake, "mysql", false).await;
    let targets = ToxiproxyAdapter::new()
        .discover(&env(&fake.url()))
        .await
        .unwrap();
    assert_eq!(targets.len(), 2);
    let t = targets.iter().find(|t| t.name == "redis").unwrap();
    assert_eq!(t.kind, "proxy");
    assert_eq!(t.id, "redis");
    assert_eq!(t.environment, ENV_NAME);
    assert_eq!(t.labels["name"], "redis");
    assert_eq!(t.labels["listen"], redis.to_string());
    assert_eq!(t.labels["upstream"], upstream.addr.to_string());
    assert_eq!(t.labels["enabled"], "true");
    let m = targets.iter().find(|t| t.name == "mysql").unwrap();
    assert_eq!(m.labels["enabled"], "false");
}

#[tokio::test]
async fn a_users_toxic_survives_our_recovery() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    add_user_toxic(
        &fake,
        "redis",
        json!({"name": "user_latency", "type": "latency", "attributes": {"latency": 5}}),
    )
    .await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;
    let fault = fault(
        &proxy_chaos(
            "redis",
            "latency",
            Some("{latency: 200, jitter: 10}"),
            "  stream: both\n",
        ),
        "e1-0",
    );
    let details = adapter.inject(&env, &fault, &target).await.unwrap();
    let mut names = fake.toxic_names("redis");
    names.sort();
    assert_eq!(
        names,
        [
            "chaoshub.e1-0.latency.downstream",
            "chaoshub.e1-0.latency.upstream",
            "user_latency"
        ]
    );
    let ours = fake
        .toxics("redis")
        .into_iter()
        .find(|t| t.name == "chaoshub.e1-0.latency.upstream")
        .unwrap();
    assert!(ours.upstream);
    assert_eq!(ours.attributes, [("latency", 200), ("jitter", 10)]);
    assert_eq!(details["toxics"].as_array().unwrap().len(), 2);
    assert_eq!(details["disabledProxy"], false);

    let injection = injection(&fault, &target, details);
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&env, &injection).await.unwrap();
    assert_eq!(fake.toxic_names("redis"), ["user_latency"]);
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Absent
    );
    // Idempotent: recovering again is a success that touches nothing.
    adapter.recover(&env, &injection).await.unwrap();
    assert_eq!(fake.toxic_names("redis"), ["user_latency"]);
}

#[tokio::test]
async fn two_experiments_on_one_proxy_each_remove_only_their_own_toxic() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;
    // Ids chosen so that one is a prefix of the other: ownership must not be a prefix match.
    let a = fault(
        &proxy_chaos("redis", "latency", Some("{latency: 50}"), ""),
        "exp-1",
    );
    let b = fault(
        &proxy_chaos("redis", "bandwidth", Some("{rate: 100}"), ""),
        "exp-10",
    );
    let da = adapter.inject(&env, &a, &target).await.unwrap();
    let db = adapter.inject(&env, &b, &target).await.unwrap();
    let (ia, ib) = (injection(&a, &target, da), injection(&b, &target, db));
    adapter.recover(&env, &ia).await.unwrap();
    assert_eq!(
        fake.toxic_names("redis"),
        ["chaoshub.exp-10.bandwidth.downstream"]
    );
    assert_eq!(
        adapter.status(&env, &ib).await.unwrap(),
        InjectionState::Active
    );
    assert_eq!(
        adapter.status(&env, &ia).await.unwrap(),
        InjectionState::Absent
    );
    adapter.recover(&env, &ib).await.unwrap();
    assert!(fake.toxic_names("redis").is_empty());
}

#[tokio::test]
async fn down_reenables_only_a_proxy_this_injection_disabled() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;

    let down = fault(&proxy_chaos("redis", "down", None, ""), "d1-0");
    let details = adapter.inject(&env, &down, &target).await.unwrap();
    assert_eq!(fake.enabled("redis"), Some(false));
    assert_eq!(details["disabledProxy"], true);
    let held = injection(&down, &target, details);
    assert_eq!(
        adapter.status(&env, &held).await.unwrap(),
        InjectionState::Active
    );

    // A second `down` on the proxy we already hold is refused, naming the holder.
    let second = fault(&proxy_chaos("redis", "down", None, ""), "d2-0");
    let err = adapter.inject(&env, &second, &target).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("already disabled") && m.contains("d1-0")),
        "{err}"
    );
    adapter
        .recover(&env, &injection(&second, &target, Value::Null))
        .await
        .unwrap();
    assert_eq!(
        fake.enabled("redis"),
        Some(false),
        "d2's recovery must not enable it"
    );

    adapter.recover(&env, &held).await.unwrap();
    assert_eq!(fake.enabled("redis"), Some(true));
    assert!(
        fake.toxic_names("redis").is_empty(),
        "the marker is gone too"
    );

    // A proxy the user disabled is never taken over, and never brought up by our recovery.
    set_enabled(&fake, "redis", false).await;
    let third = fault(&proxy_chaos("redis", "down", None, ""), "d3-0");
    let err = adapter.inject(&env, &third, &target).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("by someone else")),
        "{err}"
    );
    adapter
        .recover(&env, &injection(&third, &target, Value::Null))
        .await
        .unwrap();
    assert_eq!(fake.enabled("redis"), Some(false));
}

#[tokio::test]
async fn a_lost_answer_is_recovered_from_the_names_and_a_retried_inject_is_idempotent() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;
    let f = fault(
        &proxy_chaos("redis", "timeout", Some("{timeout: 0}"), "  stream: both\n"),
        "c-0",
    );
    adapter.inject(&env, &f, &target).await.unwrap();
    // The same injection again (a retry after a lost answer): the 409s are this very toxic.
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    assert_eq!(fake.toxic_names("redis").len(), 2);
    assert_eq!(
        adapter
            .status(&env, &injection(&f, &target, details))
            .await
            .unwrap(),
        InjectionState::Active
    );
    // The hub crashed before storing the details: recovery still finds both toxics by name.
    adapter
        .recover(&env, &injection(&f, &target, Value::Null))
        .await
        .unwrap();
    assert!(fake.toxic_names("redis").is_empty());

    let down = fault(&proxy_chaos("redis", "down", None, ""), "c-1");
    adapter.inject(&env, &down, &target).await.unwrap();
    adapter
        .recover(&env, &injection(&down, &target, Value::Null))
        .await
        .unwrap();
    assert_eq!(
        fake.enabled("redis"),
        Some(true),
        "the marker on the server says the proxy was ours to bring back"
    );
}

#[tokio::test]
async fn a_different_toxic_under_our_name_is_an_error_not_adopted() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    add_user_toxic(
        &fake,
        "redis",
        json!({"name": "chaoshub.x-0.latency.downstream", "type": "latency", "attributes": {"latency": 1}}),
    )
    .await;
    let env = env(&fake.url());
    let target = target(&env, "redis").await;
    let f = fault(
        &proxy_chaos("redis", "latency", Some("{latency: 300}"), ""),
        "x-0",
    );
    let err = ToxiproxyAdapter::new()
        .inject(&env, &f, &target)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already exists and differs"),
        "{err}"
    );
    assert!(err.to_string().contains("latency is 1"), "{err}");
}

#[tokio::test]
async fn every_proxy_chaos_action_is_created_with_toxiproxys_attributes() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;
    // (action, attribute block, attributes Toxiproxy reads back)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, i64)]);
    let cases: &[Case] = &[
        ("bandwidth", "{rate: 100}", &[("rate", 100)]),
        ("slow_close", "{delay: 300}", &[("delay", 300)]),
        ("timeout", "{timeout: 1500}", &[("timeout", 1500)]),
        ("reset_peer", "{timeout: 20}", &[("timeout", 20)]),
        (
            "slicer",
            "{average_size: 64, size_variation: 8, delay: 500}",
            &[("average_size", 64), ("size_variation", 8), ("delay", 500)],
        ),
        ("limit_data", "{bytes: 4096}", &[("bytes", 4096)]),
    ];
    for (i, (action, block, attributes)) in cases.iter().enumerate() {
        let f = fault(
            &proxy_chaos(
                "redis",
                action,
                Some(block),
                "  toxicity: 0.5\n  stream: upstream\n",
            ),
            &format!("all-{i}"),
        );
        let details = adapter.inject(&env, &f, &target).await.unwrap();
        let name = format!("chaoshub.all-{i}.{action}.upstream");
        let toxic = fake
            .toxics("redis")
            .into_iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(toxic.toxic_type, *action);
        assert_eq!(toxic.toxicity, 0.5);
        assert_eq!(&toxic.attributes, attributes);
        adapter
            .recover(&env, &injection(&f, &target, details))
            .await
            .unwrap();
    }
    assert!(fake.toxic_names("redis").is_empty());
}

#[tokio::test]
async fn network_chaos_maps_delay_bandwidth_and_partition_and_refuses_packet_faults() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env_timeout = env(&fake.url());
    let env_down = env_with(&fake.url(), json!({"partition": "down"}));
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env_timeout, "redis").await;

    let delay = fault(
        &network_chaos(
            "redis",
            "delay",
            "  delay: {latency: 100ms, jitter: 10ms, correlation: '25'}\n",
        ),
        "n-0",
    );
    let details = adapter.inject(&env_timeout, &delay, &target).await.unwrap();
    let toxic = &fake.toxics("redis")[0];
    assert_eq!(toxic.name, "chaoshub.n-0.latency.downstream");
    assert_eq!(toxic.attributes, [("latency", 100), ("jitter", 10)]);
    assert!(details["ignored"][0]
        .as_str()
        .unwrap()
        .contains("correlation"));
    adapter
        .recover(&env_timeout, &injection(&delay, &target, details))
        .await
        .unwrap();

    let bandwidth = fault(
        &network_chaos(
            "redis",
            "bandwidth",
            "  direction: both\n  target: {mode: all, selector: {labelSelectors: {app: x}}}\n  bandwidth: {rate: 8mbit, limit: 20971520, buffer: 10000}\n",
        ),
        "n-1",
    );
    let details = adapter
        .inject(&env_timeout, &bandwidth, &target)
        .await
        .unwrap();
    let toxics = fake.toxics("redis");
    assert_eq!(toxics.len(), 2, "direction both: one toxic per stream");
    assert!(toxics.iter().all(|t| t.attributes == [("rate", 1000)]));
    adapter
        .recover(&env_timeout, &injection(&bandwidth, &target, details))
        .await
        .unwrap();

    let partition = fault(&network_chaos("redis", "partition", ""), "n-2");
    let details = adapter
        .inject(&env_timeout, &partition, &target)
        .await
        .unwrap();
    let toxic = &fake.toxics("redis")[0];
    assert_eq!(toxic.toxic_type, "timeout");
    assert_eq!(toxic.attributes, [("timeout", 0)]);
    adapter
        .recover(&env_timeout, &injection(&partition, &target, details))
        .await
        .unwrap();

    let details = adapter
        .inject(&env_down, &partition, &target)
        .await
        .unwrap();
    assert_eq!(
        fake.enabled("redis"),
        Some(false),
        "partition: down takes the proxy down"
    );
    adapter
        .recover(&env_down, &injection(&partition, &target, details))
        .await
        .unwrap();
    assert_eq!(fake.enabled("redis"), Some(true));

    for (action, body) in [
        ("loss", "  loss: {loss: '25'}\n"),
        ("corrupt", "  corrupt: {corrupt: '5'}\n"),
        ("duplicate", "  duplicate: {duplicate: '5'}\n"),
    ] {
        let f = fault(&network_chaos("redis", action, body), "n-3");
        let err = adapter.inject(&env_timeout, &f, &target).await.unwrap_err();
        assert!(
            matches!(err, AdapterError::Unsupported { .. }),
            "{action}: {err}"
        );
    }
    let reorder = fault(
        &network_chaos(
            "redis",
            "delay",
            "  delay: {latency: 10ms, reorder: {reorder: '5', gap: 2}}\n",
        ),
        "n-4",
    );
    let err = adapter
        .inject(&env_timeout, &reorder, &target)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.delay.reorder"), "{err}");
    let too_slow = fault(
        &network_chaos(
            "redis",
            "bandwidth",
            "  bandwidth: {rate: 1kbit, limit: 1, buffer: 1}\n",
        ),
        "n-5",
    );
    let err = adapter
        .inject(&env_timeout, &too_slow, &target)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("below 1 KB/s"), "{err}");
    assert!(fake.toxic_names("redis").is_empty(), "refusals add nothing");
}

#[tokio::test]
async fn a_missing_proxy_is_refused_by_name_and_its_recovery_is_a_success() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let mut ghost = target(&env, "redis").await;
    ghost.id = "ghost".into();
    ghost.name = "ghost".into();
    let f = fault(
        &proxy_chaos("ghost", "latency", Some("{latency: 1}"), ""),
        "g-0",
    );
    let err = adapter.inject(&env, &f, &ghost).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("\"ghost\" does not exist")),
        "{err}"
    );
    adapter
        .recover(&env, &injection(&f, &ghost, Value::Null))
        .await
        .unwrap();
    assert_eq!(
        adapter
            .status(&env, &injection(&f, &ghost, json!({"toxics": ["x"]})))
            .await
            .unwrap(),
        InjectionState::Absent
    );
}

#[tokio::test]
async fn an_unreachable_server_is_reported_and_recovery_succeeds_once_it_is_back() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env_with(
        &fake.url(),
        json!({"retries": 1, "retry_backoff_ms": 10, "timeout_ms": 1000}),
    );
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;
    let f = fault(
        &proxy_chaos("redis", "latency", Some("{latency: 100}"), ""),
        "u-0",
    );
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let held = injection(&f, &target, details);

    fake.stop_api().await;
    let err = adapter.recover(&env, &held).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Unreachable { environment, .. } if environment == ENV_NAME),
        "{err}"
    );
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
    assert!(matches!(
        adapter.status(&env, &held).await,
        Err(AdapterError::Unreachable { .. })
    ));
    assert_eq!(
        fake.toxic_names("redis").len(),
        1,
        "the toxic is still in force"
    );

    fake.start_api().await;
    adapter.recover(&env, &held).await.unwrap();
    assert!(fake.toxic_names("redis").is_empty());
}

#[tokio::test]
async fn noxious_answers_are_understood() {
    let fake = FakeToxiproxy::start_flavor(Flavor::Noxious).await;
    let upstream = echo_server().await;
    fake.create_proxy("redis", upstream.addr).await;
    let env = env(&fake.url());
    let adapter = ToxiproxyAdapter::new();
    let target = target(&env, "redis").await;
    let f = fault(
        &proxy_chaos(
            "redis",
            "latency",
            Some("{latency: 7}"),
            "  stream: upstream\n",
        ),
        "nx-0",
    );
    let details = adapter.inject(&env, &f, &target).await.unwrap();
    let held = injection(&f, &target, details);
    assert_eq!(
        adapter.status(&env, &held).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&env, &held).await.unwrap();
    assert!(fake.toxic_names("redis").is_empty());
    let client = chaoshub_adapters::toxiproxy::ToxiproxyClient::new(&env).unwrap();
    assert_eq!(
        client.version().await.unwrap(),
        super::fake_server::NOXIOUS_VERSION
    );
}

#[tokio::test]
async fn version_is_read_and_the_client_never_looks_like_a_browser() {
    let fake = FakeToxiproxy::start().await;
    let client = chaoshub_adapters::toxiproxy::ToxiproxyClient::new(&env(&fake.url())).unwrap();
    assert_eq!(
        client.version().await.unwrap(),
        super::fake_server::TOXIPROXY_VERSION
    );
    assert!(!chaoshub_adapters::toxiproxy::USER_AGENT.starts_with("Mozilla/"));
    assert!(owned_by("chaoshub.a-1.latency.upstream", "a-1"));
}
