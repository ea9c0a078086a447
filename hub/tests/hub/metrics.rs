//! Prometheus `/metrics`: the exposition itself, and a real Prometheus (the Debian package
//! `prometheus`, installed by scripts/install-test-deps.sh) scraping the hub while an
//! experiment runs, queried through its HTTP API.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::support::{delay_yaml, Sandbox};

const T: Duration = Duration::from_secs(10);

async fn scrape(s: &Sandbox) -> String {
    let resp = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    resp.text().await.unwrap()
}

/// The value of the sample whose line starts with `name{` and has every label in `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_show_phases_adapter_calls_and_the_fault_in_force() {
    let s = Sandbox::start(4).await;
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("m-delay", Some("60s"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;
    let text = scrape(&s).await;
    let running = [
        ("phase", "Running"),
        ("kind", "NetworkChaos"),
        ("environment", "mem"),
    ];
    assert_eq!(
        sample(&text, "chaoshub_experiments", &running),
        Some(1.0),
        "{text}"
    );
    for host in ["host-0", "host-2"] {
        assert_eq!(
            sample(
                &text,
                "chaoshub_fault_delay_seconds",
                &[
                    ("experiment", "m-delay"),
                    ("target", host),
                    ("namespace", "default")
                ]
            ),
            Some(0.1),
            "{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "chaoshub_injections_total",
            &[("adapter", "memory"), ("outcome", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "chaoshub_injection_confirmation_seconds_count",
            &[("adapter", "memory")]
        ),
        Some(2.0)
    );
    assert!(text.contains("# TYPE chaoshub_http_request_duration_seconds histogram"));
    assert!(
        sample(
            &text,
            "chaoshub_http_request_duration_seconds_count",
            &[("route", "/api/v1/experiments/{id}"), ("method", "GET")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));

    // Stopped: the fault is gone from the data metrics, the recoveries are counted.
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    s.wait_phase(&uid, "Aborted", T).await;
    let text = scrape(&s).await;
    assert_eq!(sample(&text, "chaoshub_fault_delay_seconds", &[]), None);
    assert_eq!(
        sample(
            &text,
            "chaoshub_experiments",
            &[("phase", "Aborted"), ("kind", "NetworkChaos")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "chaoshub_recoveries_total",
            &[("adapter", "memory"), ("outcome", "success")]
        ),
        Some(2.0)
    );
    // A stop is not a deadline: no lateness observed.
    assert_eq!(
        sample(&text, "chaoshub_recovery_lateness_seconds_count", &[]),
        None
    );

    // An experiment that ends on its deadline records how late each removal was.
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("m-short", Some("200ms"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Finished", T).await;
    let text = scrape(&s).await;
    assert_eq!(
        sample(
            &text,
            "chaoshub_recovery_lateness_seconds_count",
            &[("adapter", "memory")]
        ),
        Some(2.0),
        "{text}"
    );
    let late_sum = sample(
        &text,
        "chaoshub_recovery_lateness_seconds_sum",
        &[("adapter", "memory")],
    )
    .unwrap();
    assert!((0.0..2.0).contains(&late_sum), "lateness sum {late_sum}");
}

/// A Prometheus server child process, killed (and its storage removed) on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn prometheus_binary() -> String {
    let candidates = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"];
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| {
            panic!(
                "Prometheus is not installed (looked in {candidates:?}); run scripts/install-test-deps.sh (Debian package prometheus)"
            )
        })
}

impl Prometheus {
    /// Prometheus scraping the hub with a bearer token, as a deployment with authentication
    /// configures it (docs/security.md).
    async fn start(hub_addr: &str, token: &str) -> Prometheus {
        let binary = prometheus_binary();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: chaoshub\n    authorization:\n      credentials: '{token}'\n    static_configs:\n      - targets: ['{hub_addr}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        chaoshub_adapters::install_crypto_provider();
        let client = reqwest::Client::new();
        let start = std::time::Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", p.url)).send().await {
                if r.status() == 200 {
                    return p;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Prometheus did not become ready: {}",
                std::fs::read_to_string(p._dir.path().join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Instant query; the result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls a query until `ok` accepts its result.
    async fn wait_for(&self, promql: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = std::time::Instant::now();
        loop {
            let result = self.query(promql).await;
            if ok(&result) {
                return result;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{promql} never matched; last result {result:?}; targets: {}",
                reqwest::get(format!("{}/api/v1/targets", self.url))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn value_of(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_experiment_phase_and_data_metrics() {
    let s = Sandbox::start(4).await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let token = s.admin_token();
    let prometheus = Prometheus::start(&addr, &token).await;
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("prom-delay", Some("60s"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;

    let running = prometheus
        .wait_for(
            "chaoshub_experiments{phase=\"Running\",kind=\"NetworkChaos\",environment=\"mem\"}",
            |r| r.len() == 1 && value_of(&r[0]) == 1.0,
        )
        .await;
    assert_eq!(running[0]["metric"]["job"], "chaoshub");

    let delays = prometheus
        .wait_for(
            "chaoshub_fault_delay_seconds{experiment=\"prom-delay\"}",
            |r| r.len() == 2,
        )
        .await;
    let mut targets: Vec<&str> = delays
        .iter()
        .map(|d| d["metric"]["target"].as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(targets, ["host-0", "host-2"]);
    for d in &delays {
        assert_eq!(value_of(d), 0.1);
        assert_eq!(d["metric"]["uid"], uid.as_str());
        assert_eq!(d["metric"]["kind"], "NetworkChaos");
        assert_eq!(d["metric"]["environment"], "mem");
    }
    prometheus
        .wait_for(
            "sum(chaoshub_injections_total{adapter=\"memory\",outcome=\"success\"})",
            |r| r.len() == 1 && value_of(&r[0]) == 2.0,
        )
        .await;
    prometheus
        .wait_for(
            "histogram_quantile(0.99, sum by (le) (rate(chaoshub_injection_confirmation_seconds_bucket[1m])))",
            |r| r.len() == 1,
        )
        .await;

    // Once stopped, the phase moves and the fault's data metrics disappear.
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    prometheus
        .wait_for(
            "chaoshub_experiments{phase=\"Aborted\",kind=\"NetworkChaos\"}",
            |r| r.len() == 1 && value_of(&r[0]) == 1.0,
        )
        .await;
    prometheus
        .wait_for(
            "chaoshub_fault_delay_seconds{experiment=\"prom-delay\"}",
            |r| r.is_empty(),
        )
        .await;
}
