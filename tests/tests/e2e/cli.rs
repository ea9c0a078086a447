//! The `chaoshub` CLI against a real hub: apply (multi-document, --wait), get, describe,
//! events, stop, delete, halt; exit codes scripts rely on.

use std::process::Command;

use super::support::*;

fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(hub_binary());
    // The admin token, given the way a user would: CHAOSHUB_TOKEN.
    if let Some(token) = token_for(url) {
        command.env("CHAOSHUB_TOKEN", token);
    }
    let out = command.args(["--server", url]).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn apply_get_describe_stop_delete_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(dir.path(), 120);
    let hub = HubProcess::start(dir.path());
    let file = dir.path().join("lab.yaml");
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: fs-lab}}\nspec: {{adapter: webhook, endpoint: \"{}\"}}\n",
        plugin.url
    );
    std::fs::write(
        &file,
        format!("{env}---\n{}", fill_yaml("cli-fill", "fs-lab", None, "2kB")),
    )
    .unwrap();
    let (code, out, err) = cli(&hub.url, &["apply", "-f", file.to_str().unwrap(), "--wait"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("cli-fill"), "{out}");
    assert_eq!(
        plugin.fill_files().len(),
        1,
        "--wait returns once the fault is confirmed"
    );

    let (code, out, _) = cli(&hub.url, &["get", "experiments"]);
    assert_eq!(code, 0);
    assert!(out.contains("cli-fill") && out.contains("Running"), "{out}");
    let (code, out, _) = cli(&hub.url, &["-o", "json", "get", "experiments"]);
    assert_eq!(code, 0);
    let parsed: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("-o json is not JSON ({e}): {out}"));
    assert!(parsed.to_string().contains("cli-fill"));
    let (code, out, _) = cli(&hub.url, &["describe", "experiment", "cli-fill"]);
    assert_eq!(code, 0);
    assert!(out.contains("web") && out.contains("Injected"), "{out}");
    let (code, out, _) = cli(&hub.url, &["events", "--experiment", "cli-fill"]);
    assert_eq!(code, 0);
    assert!(out.contains("chaoshub.experiment.running"), "{out}");

    let (code, _, err) = cli(&hub.url, &["stop", "cli-fill"]);
    assert_eq!(code, 0, "{err}");
    let api = Api::new(&hub.url);
    let found = api.get("/api/v1/experiments?kind=PhysicalMachineChaos");
    let id = found["items"][0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_phase(&id, "Aborted", T);
    assert!(plugin.fill_files().is_empty());
    let (code, _, err) = cli(&hub.url, &["delete", "cli-fill"]);
    assert_eq!(code, 0, "{err}");

    // Exit codes: not found is 4, invalid input is 1 with the field path on stderr, and an
    // unreachable hub is 3.
    let (code, _, _) = cli(&hub.url, &["describe", "experiment", "no-such-thing"]);
    assert_eq!(code, 4);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, fill_yaml("bad", "fs-lab", Some("10x"), "1kB")).unwrap();
    let (code, _, err) = cli(&hub.url, &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("spec.duration"), "{err}");
    let (code, _, _) = cli("http://127.0.0.1:9", &["get", "experiments"]);
    assert_eq!(code, 3);

    let (code, _, _) = cli(&hub.url, &["halt", "--reason", "test"]);
    assert_eq!(code, 0);
    let (code, _, err) = cli(&hub.url, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "apply while halted must fail: {err}");
    let (code, _, _) = cli(&hub.url, &["unhalt"]);
    assert_eq!(code, 0);
}

/// `chaoshub adapters --matrix` prints the conformance matrix the hub serves: one row per kind,
/// action and option, one column per adapter, the refusal messages numbered below; `-o json`
/// is the whole matrix.
#[test]
fn adapters_matrix_shows_the_conformance_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start(dir.path());
    let (code, out, err) = cli(&hub.url, &["adapters", "--matrix"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let header = out.lines().next().unwrap();
    for adapter in ["native", "docker", "ssm", "toxiproxy", "envoy", "webhook"] {
        assert!(header.contains(adapter), "{header}");
    }
    let reorder = out
        .lines()
        .find(|l| l.starts_with("NetworkChaos/delay (reorder)"))
        .unwrap_or_else(|| panic!("no reorder row: {out}"));
    assert!(reorder.contains('✓') && reorder.contains('✗'), "{reorder}");
    assert!(
        out.contains("Toxiproxy relays"),
        "n/a reasons are listed: {out}"
    );
    let (code, out, _) = cli(&hub.url, &["-o", "json", "adapters", "--matrix"]);
    assert_eq!(code, 0);
    let matrix: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(matrix["rows"].as_array().unwrap().len() >= 30, "{matrix}");
    let (code, out, _) = cli(&hub.url, &["adapters"]);
    assert_eq!(code, 0);
    assert!(out.contains("toxiproxy"), "{out}");
}

/// `chaoshub catalog save -f`: a template file into the hub's (temporary) catalog folder,
/// refused by name the second time (exit code and the API's message), replaced with
/// `--overwrite`, then shown by `catalog show`.
#[test]
fn catalog_save_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let hub = HubProcess::start_with_catalog_dir(&data, &catalog);
    let file = dir.path().join("slow-web.yaml");
    std::fs::write(
        &file,
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Template\nmetadata: {name: slow-web}\nspec:\n  title: Slow web\n  description: Hypothesis - the web tier rides out latency. Watch - p99.\n  category: network\n  adapters: [native]\n  parameters:\n    - {name: latency, type: duration, description: delay, default: 100ms}\n  experiment:\n    apiVersion: chaos-mesh.org/v1alpha1\n    kind: NetworkChaos\n    metadata: {generateName: slow-web-}\n    spec: {action: delay, mode: all, selector: {labelSelectors: {app: web}}, delay: {latency: \"${latency}\"}}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = cli(&hub.url, &["catalog", "save", "-f", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("template/slow-web saved") && out.contains("latency"),
        "{out}"
    );
    assert!(catalog.join("network/slow-web.yaml").is_file());
    let (code, out, err) = cli(&hub.url, &["catalog", "save", "-f", path]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, out, err) = cli(&hub.url, &["catalog", "save", "-f", path, "--overwrite"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&hub.url, &["catalog", "show", "slow-web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("latency"), "{out}");
}
