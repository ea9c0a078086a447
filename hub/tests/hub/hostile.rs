//! Hostile bodies cost bounded memory (issue 16, item 10): alias bombs, wide alias fan-outs,
//! deep nesting, a 1 MB JSON array, a mapping of 60,000 keys and duplicate keys, sent as dry runs
//! over eight connections to the in-process hub on eight runtime workers. Every one is refused
//! with a 400 that says why, and the process's resident memory afterwards stays within a bound.
//!
//! Resident memory belongs to the whole process, and the other tests of this binary allocate in
//! parallel, so the test runs itself again as a child process (the same binary, only this test,
//! with `CHAOSHUB_HOSTILE_RSS_CHILD=1`) and measures there.

use std::time::Instant;

use super::support::Sandbox;

const CHILD: &str = "CHAOSHUB_HOSTILE_RSS_CHILD";
const TEST: &str = "hub::hostile::hostile_bodies_leave_resident_memory_bounded";

/// Resident memory of this process in bytes (`VmRSS` of `/proc/self/status`, which is in kB
/// whatever the page size; `statm` counts pages).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn billion_laughs() -> String {
    let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(", ");
        text.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
    }
    text
}

/// Every hostile body: (content type, body, what the refusal must mention).
fn bodies() -> Vec<(&'static str, String, &'static str)> {
    let mut wide = String::from("apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nx: &a [");
    wide.push_str(&vec!["0"; 2000].join(","));
    wide.push_str("]\nmetadata: {name: w, labels: {k: [");
    wide.push_str(&vec!["*a"; 400].join(","));
    wide.push_str("]}}\n");
    let mut keys = String::from("{");
    for i in 0..60_000 {
        keys.push_str(&format!("\"k{i}\":0,"));
    }
    keys.push_str("\"end\":0}");
    vec![
        ("application/yaml", billion_laughs(), "aliases counted"),
        ("application/yaml", wide, "nodes"),
        (
            "application/yaml",
            format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000)),
            // The YAML scanner refuses deep flow nesting itself ("recursion limit exceeded").
            "line 1, column",
        ),
        (
            "application/json",
            format!("[{}0]", "0,".repeat(500_000)),
            "more than 50000 nodes",
        ),
        ("application/json", keys.clone(), "more than 50000 nodes"),
        ("application/yaml", keys, "more than 50000 nodes"),
        (
            "application/json",
            r#"{"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos", "metadata": {"name": "a", "name": "b"}, "spec": {}}"#.to_string(),
            "duplicate key \"name\"",
        ),
        (
            "application/yaml",
            "a: 1\n---\n".repeat(2_000),
            "documents",
        ),
    ]
}

/// Sends every body `rounds` times from each of `connections` clients (each its own
/// connection pool) at once; each must get a 400 naming the problem.
async fn send_all(s: &Sandbox, connections: usize, rounds: usize) -> usize {
    let url = format!("{}/api/v1/experiments?dryRun=true", s.url);
    // Authenticated as the sandbox's admin, so each body reaches the parser it is aimed at.
    let bearer = format!("Bearer {}", s.admin_token());
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let url = url.clone();
        let bearer = bearer.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut sent = 0;
            for _ in 0..rounds {
                for (content_type, body, mention) in bodies() {
                    let resp = client
                        .post(&url)
                        .header("content-type", content_type)
                        .header("authorization", &bearer)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    let body: serde_json::Value = resp.json().await.unwrap();
                    assert_eq!(status, 400, "{body}");
                    let said: Vec<&str> = std::iter::once(&body["message"])
                        .chain(
                            body["details"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|d| &d["message"]),
                        )
                        .filter_map(|m| m.as_str())
                        .collect();
                    assert!(
                        said.iter().any(|m| m.contains(mention)),
                        "{mention:?} not in {body}"
                    );
                    sent += 1;
                }
            }
            sent
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    sent
}

fn measure() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let s = Sandbox::start(2).await;
        let at_start = resident_bytes();
        // Two rounds first, so that what stays for good (thread arenas of every worker,
        // connection pools, lazily built state) is in the baseline. Two, because the store's
        // calls (the token lookup of every request) run in `block_in_place`, which moves the
        // worker's other tasks to another runtime thread: more threads than the eight workers
        // serve requests, and each keeps its own allocator arena.
        send_all(&s, 8, 2).await;
        let baseline = resident_bytes();
        let started = Instant::now();
        let sent = send_all(&s, 8, 3).await;
        let took = started.elapsed();
        let after = resident_bytes();
        let grown = after.saturating_sub(baseline);
        println!(
            "hostile bodies: {sent} refused in {took:?}; resident {} MB at start, {} MB after two \
             first rounds of 64, {} MB after {sent} more (+{} MB)",
            at_start / 1_000_000,
            baseline / 1_000_000,
            after / 1_000_000,
            grown / 1_000_000
        );
        // Before the bounds one 1–2 kB alias bomb kept 15–79 MB and 40 over 8 connections held
        // 450 MB. Now a body is refused before its expansion exists; what remains is the
        // allocator keeping freed pages of 1 MB bodies and their bounded parses per worker.
        // Measured here with two arenas (as shipped): 57 MB at start, 105–112 MB after the
        // first two rounds, then +0–8 MB over the next 192, also with four CPU hogs beside it.
        assert!(
            grown < 32 * 1024 * 1024,
            "resident memory grew by {} MB over {sent} hostile bodies after the first two rounds",
            grown / 1_000_000
        );
        assert!(
            after.saturating_sub(at_start) < 160 * 1024 * 1024,
            "resident memory grew from {} MB to {} MB",
            at_start / 1_000_000,
            after / 1_000_000
        );
        let (code, _) = s.get("/healthz").await;
        assert_eq!(code, 200);
    });
}

#[test]
fn hostile_bodies_leave_resident_memory_bounded() {
    if std::env::var_os(CHILD).is_some() {
        measure();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        // As shipped (deploy/systemd/chaoshub.service): two glibc arenas. With glibc's default
        // (8 per core) how many arenas keep freed 1 MB bodies depends on how many threads
        // happened to contend, that is on the machine's load, not on the hub: in the full
        // suite on a loaded machine the default let 33–42 MB of freed pages stay, alone 4 MB
        // (docs/reliability.md, "Allocator arenas" and "Heap profile": the heap in use stays
        // flat).
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(output.status.success(), "the measuring child failed");
    assert!(
        stdout.contains("1 passed") && stdout.contains("hostile bodies:"),
        "the child did not run the measurement"
    );
}

/// A refusal of a YAML or JSON body names the field and the line and column.
#[tokio::test]
async fn refusals_name_the_field_line_and_column() {
    let s = Sandbox::start(1).await;
    for (content_type, body, path, needle) in [
        (
            "application/yaml",
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: a\n  name: b\nspec: {}\n",
            "metadata",
            "duplicate key \"name\" (line 5, column 3)",
        ),
        (
            "application/yaml",
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: !!python/object/apply:os.system [ls]}\nspec: {}\n",
            "metadata.name",
            "the YAML tag !!python/object/apply:os.system is not accepted (line 3",
        ),
        (
            "application/yaml",
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  - a\n   b: 1\n",
            "",
            "line 5, column 5",
        ),
        (
            "application/json",
            "{\"apiVersion\": \"chaos-mesh.org/v1alpha1\",\n \"spec\": {\"mode\": \"one\", \"mode\": \"all\"}}",
            "spec",
            "duplicate key \"mode\" (line 2",
        ),
    ] {
        let (code, answer) = s
            .request(
                reqwest::Method::POST,
                "/api/v1/experiments?dryRun=true",
                Some((content_type, body.to_string())),
            )
            .await;
        assert_eq!(code, 400, "{answer}");
        let detail = &answer["details"][0];
        assert_eq!(detail["path"], path, "{answer}");
        assert!(
            detail["message"].as_str().unwrap().contains(needle),
            "{needle:?} not in {answer}"
        );
    }
}
