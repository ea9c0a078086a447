//! The suite acceptance test with the real `chaoshub` binary: one suite, two environments of
//! different adapter types — the Python fsfault plugin (webhook) and a Toxiproxy-compatible
//! server — and a real HTTP service probed in each through the environment's own `port`
//! label. The disk-fill case keeps the service healthy and passes; the latency case breaks
//! the probe's 500 ms budget by design and fails. `chaoshub run` must print progress, write a
//! JUnit report that has the conventional testsuite/testcase/failure structure and counts, a
//! JSON journal with probe results and per-target records, and exit with 1.
//!
//! The Toxiproxy server is the **fake** of the adapter tests
//! (`adapters/tests/toxiproxy/fake_server.rs`), run inside this test process: no Toxiproxy
//! binary can be installed here. Its proxies forward real TCP and its latency toxic really
//! delays the bytes; the hub reaches it over HTTP like a real one.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::support::*;

#[path = "../../../adapters/tests/toxiproxy/fake_server.rs"]
mod fake_server;

/// A real HTTP/1.1 service on 127.0.0.1:0 (one thread per connection), answering every
/// request with `respond()`. Its threads end with the test process.
fn http_service(respond: impl Fn() -> (u16, String) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let respond = std::sync::Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let respond = std::sync::Arc::clone(&respond);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (code, body) = respond();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// Bytes in the files of a directory.
fn used_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A minimal element tree built from `xmlparser` tokens; tags must nest and match.
#[derive(Debug, Default, Clone)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("<{}> has no {name} attribute: {:?}", self.name, self.attrs))
    }
}

fn parse_xml(text: &str) -> Element {
    use xmlparser::{ElementEnd, Token, Tokenizer};
    let mut stack: Vec<Element> = vec![Element::default()];
    for token in Tokenizer::from(text) {
        match token.unwrap_or_else(|e| panic!("the JUnit report is not well-formed XML: {e}")) {
            Token::ElementStart { local, .. } => stack.push(Element {
                name: local.to_string(),
                ..Default::default()
            }),
            Token::Attribute { local, value, .. } => {
                stack
                    .last_mut()
                    .unwrap()
                    .attrs
                    .insert(local.to_string(), value.to_string());
            }
            Token::ElementEnd { end, .. } => match end {
                ElementEnd::Open => {}
                ElementEnd::Close(_, name) => {
                    let done = stack.pop().unwrap();
                    assert_eq!(done.name, name.as_str(), "mismatched closing tag");
                    stack.last_mut().unwrap().children.push(done);
                }
                ElementEnd::Empty => {
                    let done = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(done);
                }
            },
            Token::Text { text } | Token::Cdata { text, .. } => {
                stack.last_mut().unwrap().text.push_str(text.as_str())
            }
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut root = stack.pop().unwrap();
    assert_eq!(root.children.len(), 1, "one root element");
    root.children.remove(0)
}

#[test]
fn a_suite_over_a_plugin_and_a_toxiproxy_environment_passes_one_case_and_fails_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(dir.path(), 120);
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);

    // The disk-backed service: healthy while its disk holds less than 5 MB.
    let web_dir = plugin.web_dir.clone();
    let disk_port = http_service(move || {
        let used = used_bytes(&web_dir);
        if used < 5_000_000 {
            (200, format!("disk ok ({used} bytes used)"))
        } else {
            (507, format!("disk full ({used} bytes used)"))
        }
    });
    // The API service, reached through a Toxiproxy proxy.
    let api_port = http_service(|| (200, "pong".to_string()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake_server::FakeToxiproxy::start());
    let proxy = runtime
        .block_on(fake.create_proxy("api", format!("127.0.0.1:{api_port}").parse().unwrap()));

    let environments = [
        format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: edge-a, labels: {{port: \"{disk_port}\"}}}}\nspec: {{adapter: webhook, endpoint: \"{}\", settings: {{timeout_ms: 3000}}}}\n",
            plugin.url
        ),
        format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: edge-b, labels: {{port: \"{}\"}}}}\nspec: {{adapter: toxiproxy, endpoint: \"{}\"}}\n",
            proxy.port(),
            fake.url()
        ),
    ];
    for env in &environments {
        let (code, v) = api.post("/api/v1/environments", Some(env));
        assert_eq!(code, 201, "{v}");
    }

    std::fs::create_dir(dir.path().join("faults")).unwrap();
    std::fs::write(
        dir.path().join("faults/fill.yaml"),
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {name: fill-disk}\nspec:\n  action: disk-fill\n  mode: all\n  selector: {labelSelectors: {tier: frontend}}\n  disk-fill: {size: 1MB}\n  duration: 3s\n",
    )
    .unwrap();
    let suite_path = dir.path().join("suite.yaml");
    std::fs::write(
        &suite_path,
        r#"apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {name: checkout-resilience}
spec:
  environments: [edge-a, edge-b]
  steadyState:
    interval: 300ms
    probes:
      - name: web-ok
        http: {url: "http://127.0.0.1:{{ environment.labels.port }}/health", timeout: 500ms, expect: {status: 200}}
  timeouts: {case: 2m, recovery: 10s}
  experiments:
    - name: fill-disk
      expect: hold
      environments: [edge-a]
      file: faults/fill.yaml
    - name: slow-api
      expect: hold
      environments: [edge-b]
      manifest:
        apiVersion: chaoshub.dev/v1alpha1
        kind: ProxyChaos
        metadata: {name: slow-api}
        spec: {action: latency, mode: all, selector: {labelSelectors: {name: api}}, latency: {latency: 1000}, duration: 3s}
"#,
    )
    .unwrap();
    let junit = dir.path().join("out.xml");
    let journal = dir.path().join("out.json");
    let out = Command::new(hub_binary())
        .env("CHAOSHUB_TOKEN", &hub.token)
        .args(["--server", &hub.url, "run"])
        .arg(&suite_path)
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&journal)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed case exits 1\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Progress was printed as it happened, then the summary.
    for line in [
        "▶ fill-disk in edge-a",
        "▶ slow-api in edge-b",
        "✔ passed: fill-disk in edge-a",
        "✘ failed: slow-api in edge-b",
        "FAILED: 1 passed, 1 failed",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in:\n{stdout}");
    }

    // JUnit: testsuites > testsuite per environment > testcase per experiment > failure.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attr("tests"), "2");
    assert_eq!(root.attr("failures"), "1");
    assert_eq!(root.attr("errors"), "0");
    let suites = root.all("testsuite");
    assert_eq!(suites.len(), 2, "{xml}");
    let by_name = |n: &str| *suites.iter().find(|s| s.attr("name") == n).unwrap();
    for s in &suites {
        assert_eq!(s.attr("tests"), "1");
        s.attr("time").parse::<f64>().unwrap();
        s.attr("timestamp");
        assert_eq!(s.all("properties").len(), 1);
        for p in s.all("properties")[0].all("property") {
            p.attr("name");
            p.attr("value");
        }
    }
    let a = by_name("edge-a");
    assert_eq!(a.attr("failures"), "0");
    let case_a = a.all("testcase")[0];
    assert_eq!(case_a.attr("name"), "fill-disk");
    assert_eq!(case_a.attr("classname"), "checkout-resilience.edge-a");
    assert!(case_a.all("failure").is_empty() && case_a.all("error").is_empty());
    let b = by_name("edge-b");
    assert_eq!(b.attr("failures"), "1");
    let case_b = b.all("testcase")[0];
    assert_eq!(case_b.attr("name"), "slow-api");
    let failures = case_b.all("failure");
    assert_eq!(failures.len(), 1, "{xml}");
    assert!(
        failures[0]
            .attr("message")
            .contains("deviated during the fault"),
        "{xml}"
    );
    assert!(
        failures[0].text.contains("no answer within 500 ms"),
        "the probe evidence is in the failure: {xml}"
    );

    // The JSON journal: timings, probe results, per-target records.
    let run: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(run["phase"], "Failed");
    let cases = run["cases"].as_array().unwrap();
    let fill = cases
        .iter()
        .find(|c| c["experiment"] == "fill-disk")
        .unwrap();
    assert_eq!(fill["outcome"], "Passed", "{fill:#}");
    assert!(fill["durationMs"].as_u64().unwrap() >= 3000);
    assert!(fill["steadyState"]["during"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true && r["detail"].as_str().unwrap().contains("disk ok")));
    let target = &fill["experiments"][0]["targets"][0];
    assert_eq!(target["target"]["name"], "web");
    assert!(target["injectedAt"].is_string() && target["recoveredAt"].is_string());
    let slow = cases
        .iter()
        .find(|c| c["experiment"] == "slow-api")
        .unwrap();
    assert_eq!(slow["outcome"], "Failed");
    assert!(slow["steadyState"]["during"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["ok"] == false));
    assert!(
        slow["steadyState"]["after"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["ok"]
            == true,
        "the service came back after the latency was removed"
    );

    // Faults are gone and the run is listed by the hub.
    assert!(plugin.fill_files().is_empty());
    assert!(fake.toxic_names("api").is_empty());
    let runs = api.get("/api/v1/suites/runs");
    assert_eq!(runs["items"][0]["suite"], "checkout-resilience");
    assert_eq!(runs["items"][0]["phase"], "Failed");
    drop(fake);
    drop(runtime);
    std::thread::sleep(Duration::from_millis(10));
}
