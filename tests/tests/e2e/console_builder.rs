//! The console's workflow builder (`/workflows/new`) in headless Chromium over WebDriver,
//! against the real `chaoshub` binary and, for the run, a real Toxiproxy server
//! (`chaoshub_testkit::toxiproxy_server()`).
//!
//! Drags are real W3C pointer actions (the builder uses pointer events, not HTML5 drag and
//! drop, which chromedriver's synthetic input does not drive); the keyboard path is tested
//! separately. Screenshots land in `<target>/console-screenshots/` like the console's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaoshub_testkit::toxiproxy::ToxiproxyServer;
use serde_json::{json, Value};

use super::support::*;
use super::webdriver::{self, keys, Browser, Element};

const RUN: Duration = Duration::from_secs(60);

fn browser_or_skip() -> Option<(PathBuf, PathBuf)> {
    match webdriver::locate() {
        Ok(found) => Some(found),
        Err(reason) => {
            chaoshub_testkit::skip_or_fail_in_ci(&reason);
            None
        }
    }
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        });
    target.join("console-screenshots")
}

struct Lab {
    // Field order is drop order: the browser first, then the hub.
    browser: Browser,
    hub: HubProcess,
    api: Api,
    _dir: tempfile::TempDir,
}

fn lab(chromium: &Path, driver: &Path) -> Lab {
    lab_with(chromium, driver, false)
}

/// Copies the project's catalog (`<category>/<file>`) into `to`.
fn copy_catalog(to: &Path) {
    let from = workspace_root().join("catalog");
    for category in std::fs::read_dir(&from).unwrap().flatten() {
        if !category.path().is_dir() {
            continue;
        }
        let dest = to.join(category.file_name());
        std::fs::create_dir_all(&dest).unwrap();
        for file in std::fs::read_dir(category.path()).unwrap().flatten() {
            std::fs::copy(file.path(), dest.join(file.file_name())).unwrap();
        }
    }
}

/// A lab whose hub serves the project's catalog, or (`writable`) a copy of it in the lab's
/// temporary folder, `<dir>/catalog`, for tests that save templates.
fn lab_with(chromium: &Path, driver: &Path, writable: bool) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let hub = if writable {
        let catalog = dir.path().join("catalog");
        copy_catalog(&catalog);
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        HubProcess::start_with_catalog_dir(&data, &catalog)
    } else {
        HubProcess::start_with_catalog(dir.path())
    };
    let api = Api::new(&hub.url);
    let browser = Browser::start(chromium, driver);
    let lab = Lab {
        browser,
        hub,
        api,
        _dir: dir,
    };
    let b = &lab.browser;
    b.goto(&format!("{}/login?next=/workflows/new", lab.hub.url));
    let field = b.wait("#token", T);
    b.type_text(&field, &lab.hub.token);
    b.click(&b.wait("form[action='/login'] button", T));
    b.wait("#palette .pal-item", T);
    lab
}

impl Lab {
    /// A screenshot with the builder's three panes at the top of the viewport.
    fn shot(&self, name: &str) {
        self.browser.exec(
            "document.getElementById('builder').scrollIntoView(); return null;",
            json!([]),
        );
        self.browser
            .screenshot(&screenshots().join(format!("{name}.png")));
    }

    fn slot(&self, parent: &str, index: usize) -> Element {
        self.browser.wait(
            &format!("#canvas .slot[data-parent='{parent}'][data-index='{index}']"),
            T,
        )
    }

    fn palette(&self, css: &str) -> Element {
        self.browser.wait(&format!("#builder .pal-item{css}"), T)
    }

    /// Focuses the palette item `css` and presses `chord` on it (the keyboard's add).
    fn press(&self, css: &str, chord: &[&str]) {
        let e = self.palette(css);
        self.browser
            .exec("arguments[0].focus();", json!([Browser::arg(&e)]));
        self.browser.chord(chord);
    }

    fn head(&self, name: &str) -> Element {
        self.browser.wait(
            &format!("#canvas .node[data-name='{name}'] > .node-head"),
            T,
        )
    }

    /// Sets a form control's value as typing and leaving it would, and waits for the message
    /// the builder writes after the edit.
    fn set(&self, css: &str, value: &str) {
        let e = self.browser.wait(css, T);
        self.browser.exec(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
            json!([Browser::arg(&e), value]),
        );
    }

    fn select_node(&self, name: &str) {
        self.browser.click(&self.head(name));
        self.browser
            .wait(&format!("#canvas .node.selected[data-name='{name}']"), T);
    }

    /// The YAML view's text, parsed by the hub's own parser.
    fn yaml_doc(&self) -> Value {
        let text = self.yaml_text();
        let mut docs = chaoshub_schema::split_documents(&text)
            .unwrap_or_else(|e| panic!("the builder's YAML does not parse: {e:?}\n{text}"));
        assert_eq!(docs.len(), 1, "{text}");
        docs.remove(0)
    }

    fn yaml_text(&self) -> String {
        self.browser
            .exec(
                "return document.getElementById('wf-yaml').value;",
                json!([]),
            )
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_yaml(&self, needle: &str) {
        let start = Instant::now();
        while !self.yaml_text().contains(needle) {
            assert!(
                start.elapsed() < T,
                "the YAML never showed {needle:?}:\n{}\n{}",
                self.yaml_text(),
                self.browser.body_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The names of the canvas's nodes in document order, each with its parent's name.
    fn canvas(&self) -> Vec<(String, String)> {
        let v = self.browser.exec(
            "return Array.from(document.querySelectorAll('#canvas .node')).map(function (n) {\
               var p = n.parentElement.closest('.node'); return [n.getAttribute('data-name'), p ? p.getAttribute('data-name') : ''];});",
            json!([]),
        );
        serde_json::from_value(v).unwrap()
    }

    /// The phase badge each canvas node shows (empty when none).
    fn phases(&self) -> Vec<(String, String)> {
        let v = self.browser.exec(
            "return Array.from(document.querySelectorAll('#canvas .node')).map(function (n) {\
               var b = n.querySelector(':scope > .node-head .node-phase'); return [n.getAttribute('data-name'), b ? b.textContent : ''];});",
            json!([]),
        );
        serde_json::from_value(v).unwrap()
    }
}

fn raw_fault(name: &str, proxy: &str) -> Value {
    json!({
        "name": name,
        "templateType": "NetworkChaos",
        "deadline": "2s",
        "networkChaos": {
            "action": "delay",
            "mode": "all",
            "selector": {"labelSelectors": {"name": proxy}},
            "delay": {"latency": "50ms"},
        },
    })
}

/// Serial[fault A, Suspend 1s, Parallel[fault B, fault C]] built by dragging from the palette
/// (and one move by dragging), named and filled in the side panel; the YAML is the expected
/// Chaos Mesh Workflow; a dry run puts each fault's targets on its node; started against a real
/// Toxiproxy, the nodes turn Running then Succeeded in order on the canvas while the toxics
/// really appear on the proxies.
#[test]
fn console_builder_drags_a_workflow_and_runs_it_on_toxiproxy() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let Some(toxi) = ToxiproxyServer::start() else {
        return;
    };
    // Proxies to a loopback port nothing listens on: toxics are added and removed all the
    // same, which is what the workflow's faults do.
    for proxy in ["api", "db", "cache"] {
        toxi.create_proxy(proxy, "127.0.0.1:9");
    }
    let lab = lab(&chromium, &driver);
    let (code, v) = lab.api.post(
        "/api/v1/environments",
        Some(&format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: toxi}}\nspec: {{adapter: toxiproxy, endpoint: \"{}\"}}\n",
            toxi.url
        )),
    );
    assert_eq!(code, 201, "{v}");
    // The environment list is read when the page is rendered.
    let b = &lab.browser;
    b.goto(&format!("{}/workflows/new", lab.hub.url));

    // Build by dragging.
    b.drag(&lab.palette("[data-type='Serial']"), &lab.slot("-", 0));
    b.wait("#canvas .node[data-name='serial']", T);
    b.drag(&lab.palette("[data-fault='raw']"), &lab.slot("", 0));
    b.drag(&lab.palette("[data-type='Suspend']"), &lab.slot("", 1));
    b.drag(&lab.palette("[data-type='Parallel']"), &lab.slot("", 2));
    b.wait("#canvas .node[data-name='parallel']", T);
    b.drag(&lab.palette("[data-fault='raw']"), &lab.slot("2", 0));
    b.wait("#canvas .node[data-name='fault-2']", T);
    // Dropped before the first: the order is now fault-3, fault-2 …
    b.drag(&lab.palette("[data-fault='raw']"), &lab.slot("2", 0));
    b.wait("#canvas .node[data-name='fault-3']", T);
    // … and dragging fault-2 before it reorders them.
    b.drag(&lab.head("fault-2"), &lab.slot("2", 0));
    let start = Instant::now();
    while lab.yaml_doc()["spec"]["templates"][3]["children"] != json!(["fault-2", "fault-3"]) {
        assert!(
            start.elapsed() < T,
            "the move did not happen:\n{}",
            lab.yaml_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.shot("builder-01-dragged");

    // The side panel: names, deadlines, specs; the workflow's name and environment.
    for (old, new, proxy) in [
        ("fault", "fault-a", "api"),
        ("fault-2", "fault-b", "db"),
        ("fault-3", "fault-c", "cache"),
    ] {
        lab.select_node(old);
        lab.set("#inspector #f-name", new);
        b.wait(&format!("#canvas .node.selected[data-name='{new}']"), T);
        lab.set("#inspector #f-deadline", "2s");
        lab.wait_yaml("deadline: 2s");
        lab.set(
            "#inspector #f-networkChaos",
            &format!("action: delay\nmode: all\nselector:\n  labelSelectors: {{name: {proxy}}}\ndelay: {{latency: 50ms}}\n"),
        );
        lab.wait_yaml(&format!("name: {proxy}"));
    }
    lab.select_node("suspend");
    lab.set("#inspector #f-deadline", "1s");
    lab.wait_yaml("deadline: 1s");
    lab.set("#wf-fields #f-metadata-name", "builder-demo");
    lab.set("#wf-fields #f-spec-environment", "toxi");
    lab.wait_yaml("environment: toxi");

    let expected = json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "builder-demo"},
        "spec": {
            "entry": "serial",
            "environment": "toxi",
            "templates": [
                {"name": "serial", "templateType": "Serial", "children": ["fault-a", "suspend", "parallel"]},
                raw_fault("fault-a", "api"),
                {"name": "suspend", "templateType": "Suspend", "deadline": "1s"},
                {"name": "parallel", "templateType": "Parallel", "children": ["fault-b", "fault-c"]},
                raw_fault("fault-b", "db"),
                raw_fault("fault-c", "cache"),
            ],
        },
    });
    assert_eq!(lab.yaml_doc(), expected, "{}", lab.yaml_text());
    assert!(
        lab.yaml_text()
            .contains("children: [fault-a, suspend, parallel]"),
        "{}",
        lab.yaml_text()
    );
    // The API takes the text unchanged.
    let (code, v) = lab
        .api
        .post("/api/v1/experiments?dryRun=true", Some(&lab.yaml_text()));
    assert_eq!(code, 200, "{v}");

    // Dry run from the builder: each fault's plan on its node.
    b.click(&b.wait("#wf-dry", T));
    b.wait("#wf-plan", T);
    for name in ["fault-a", "fault-b", "fault-c"] {
        let note = b.wait(&format!("#canvas .node[data-name='{name}'] .node-note"), T);
        assert!(
            b.text(&note).contains("would hit 1 of 1"),
            "{name}: {}",
            b.text(&note)
        );
    }
    lab.shot("builder-02-dry-run");

    // Start, and follow the nodes on the canvas.
    b.click(&b.wait("#wf-start", T));
    b.wait("#wf-started", T);
    // The canvas follows the hub's event stream, not a timer.
    b.wait("#wf-live", T);
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut toxics_seen = std::collections::BTreeSet::new();
    let mut shot_running = false;
    let start = Instant::now();
    loop {
        for (name, phase) in lab.phases() {
            let list = seen.entry(name.clone()).or_default();
            if !phase.is_empty() && list.last() != Some(&phase) {
                list.push(phase.clone());
            }
            if phase == "Running" {
                if let Some(proxy) = match name.as_str() {
                    "fault-a" => Some("api"),
                    "fault-b" => Some("db"),
                    "fault-c" => Some("cache"),
                    _ => None,
                } {
                    if !toxics(&toxi, proxy).is_empty() {
                        toxics_seen.insert(proxy);
                    }
                }
                if name == "fault-b" && !shot_running {
                    lab.shot("builder-03-running");
                    shot_running = true;
                }
            }
        }
        let done = b.exec(
            "var h = document.getElementById('wf-run-phase'); return h ? h.textContent : '';",
            json!([]),
        );
        let done = done.as_str().unwrap_or_default();
        if ["Finished", "Failed", "Aborted"]
            .iter()
            .any(|p| done.ends_with(p))
        {
            assert!(done.ends_with("Finished"), "{done}: {seen:?}");
            break;
        }
        assert!(
            start.elapsed() < RUN,
            "the workflow did not finish: {seen:?}\n{}",
            b.body_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // One more read after the end, for the final phases.
    for (name, phase) in lab.phases() {
        let list = seen.entry(name).or_default();
        if !phase.is_empty() && list.last() != Some(&phase) {
            list.push(phase);
        }
    }
    lab.shot("builder-04-finished");
    for name in ["fault-a", "fault-b", "fault-c", "parallel", "serial"] {
        let phases = &seen[name];
        assert_eq!(
            phases.last().map(String::as_str),
            Some("Succeeded"),
            "{name}: {seen:?}"
        );
        assert!(
            phases.iter().any(|p| p == "Running"),
            "{name} was never shown Running: {seen:?}"
        );
        let running = phases.iter().position(|p| p == "Running").unwrap();
        let succeeded = phases.iter().position(|p| p == "Succeeded").unwrap();
        assert!(running < succeeded, "{name}: {seen:?}");
    }
    assert_eq!(
        seen["suspend"].last().map(String::as_str),
        Some("DeadlineExceeded"),
        "{seen:?}"
    );
    assert_eq!(
        toxics_seen.len(),
        3,
        "a toxic was on every proxy while its node ran: {toxics_seen:?}"
    );
    for proxy in ["api", "db", "cache"] {
        assert_eq!(
            toxics(&toxi, proxy).len(),
            0,
            "the toxic on {proxy} was removed"
        );
    }
    // In order: fault-a ended before the Parallel's faults began (the hub's own timestamps).
    let wf = lab.api.get("/api/v1/experiments?kind=Workflow&limit=1")["items"][0].clone();
    let node = |n: &str| -> Value {
        wf["status"]["workflow"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["template"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no node {n}: {wf:#}"))
    };
    let ended_a = node("fault-a")["endedAt"].as_str().unwrap().to_string();
    let started_b = node("fault-b")["startedAt"].as_str().unwrap().to_string();
    assert!(ended_a <= started_b, "{ended_a} > {started_b}");
}

/// The keyboard path: every node added with palette buttons (Enter, Shift+Enter), moved with
/// Alt+arrows and deleted with Delete, no pointer; then a validation error from the API's dry
/// run lands on the node and the field it names, and a catalog fault's typed parameter error
/// at its parameter.
#[test]
fn console_builder_keyboard_and_validation_errors() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let lab = lab(&chromium, &driver);
    let b = &lab.browser;
    let press = |css: &str, chord: &[&str]| lab.press(css, chord);
    press("[data-type='Serial']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='serial']", T);
    // Inside the selected Serial.
    press("[data-type='Suspend']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='suspend']", T);
    // After the selected Suspend (not a container).
    press("[data-template='network-delay']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='network-delay']", T);
    press("[data-type='Parallel']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='parallel']", T);
    press("[data-fault='raw']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='fault']", T);
    press("[data-type='StatusCheck']", &[keys::SHIFT, keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='statuscheck']", T);
    assert_eq!(
        lab.canvas(),
        vec![
            ("serial".to_string(), String::new()),
            ("suspend".into(), "serial".into()),
            ("network-delay".into(), "serial".into()),
            ("parallel".into(), "serial".into()),
            ("fault".into(), "parallel".into()),
            ("statuscheck".into(), "parallel".into()),
        ]
    );
    // Keyboard moves on the focused node: the status check out of the Parallel, up before it,
    // back into… no: up once more before network-delay; the raw fault deleted.
    let focus = |name: &str| {
        let e = lab.head(name);
        b.click(&e);
        b.wait(&format!("#canvas .node.selected[data-name='{name}']"), T);
    };
    focus("statuscheck");
    b.chord(&[keys::ALT, keys::LEFT]);
    b.wait("#canvas .node.selected[data-name='statuscheck']", T);
    b.chord(&[keys::ALT, keys::UP]);
    b.chord(&[keys::ALT, keys::UP]);
    let start = Instant::now();
    while lab.yaml_doc()["spec"]["templates"][0]["children"]
        != json!(["suspend", "statuscheck", "network-delay", "parallel"])
    {
        assert!(start.elapsed() < T, "{}", lab.yaml_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Back down and into the Parallel (Alt+Right: into the previous sibling).
    b.chord(&[keys::ALT, keys::DOWN]);
    b.chord(&[keys::ALT, keys::DOWN]);
    b.chord(&[keys::ALT, keys::RIGHT]);
    let start = Instant::now();
    while lab.yaml_doc()["spec"]["templates"][0]["children"]
        != json!(["suspend", "network-delay", "parallel"])
    {
        assert!(start.elapsed() < T, "{}", lab.yaml_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    focus("fault");
    b.chord(&[keys::DELETE]);
    let start = Instant::now();
    while lab.yaml_text().contains("name: fault\n") {
        assert!(start.elapsed() < T, "{}", lab.yaml_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let doc = lab.yaml_doc();
    let templates = doc["spec"]["templates"].as_array().unwrap();
    let names: Vec<&str> = templates
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "serial",
            "suspend",
            "network-delay",
            "parallel",
            "statuscheck"
        ]
    );
    assert_eq!(templates[3]["children"], json!(["statuscheck"]));
    // The catalog fault is the template rendered with its defaults.
    assert_eq!(templates[2]["templateType"], "NetworkChaos");
    assert_eq!(templates[2]["networkChaos"]["delay"]["latency"], "100ms");

    // A typed parameter the template refuses: the error is at the parameter's field.
    focus("network-delay");
    let latency = b.wait("#inspector #f-parameters-latency", T);
    assert_eq!(
        b.exec(
            "return arguments[0].value;",
            json!([Browser::arg(&latency)])
        ),
        "100ms"
    );
    lab.set("#inspector #f-parameters-latency", "fast");
    let err = b.wait("#inspector .field-error", T);
    assert!(b.text(&err).contains("latency"), "{}", b.text(&err));
    b.wait("#inspector #f-parameters-latency[aria-invalid='true']", T);
    // A good value renders into the node's spec.
    lab.set("#inspector #f-parameters-latency", "250ms");
    lab.wait_yaml("latency: 250ms");

    // A deadline the API refuses: the error is on the Suspend node and at its Deadline field.
    focus("suspend");
    lab.set("#inspector #f-deadline", "soon");
    lab.wait_yaml("deadline: soon");
    b.click(&b.wait("#wf-dry", T));
    b.wait("#wf-errors", T);
    let on_node = b.wait("#canvas .node[data-name='suspend'] > .node-error", T);
    assert!(
        b.text(&on_node).contains("deadline"),
        "{}",
        b.text(&on_node)
    );
    for other in ["serial", "network-delay", "parallel", "statuscheck"] {
        assert!(
            b.find_all(&format!("#canvas .node[data-name='{other}'] > .node-error"))
                .is_empty(),
            "{other} shows an error"
        );
    }
    b.wait("#inspector #f-deadline[aria-invalid='true']", T);
    lab.shot("builder-05-validation-error");
}

/// The two views: YAML typed by hand redraws the canvas; YAML that does not parse leaves the
/// canvas alone and says why; a canvas edit rewrites the YAML.
#[test]
fn console_builder_canvas_follows_the_yaml() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let lab = lab(&chromium, &driver);
    let b = &lab.browser;
    let set_yaml = |text: &str| {
        let area = b.wait("#wf-yaml", T);
        b.exec(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
            json!([Browser::arg(&area), text]),
        );
    };
    let wait_canvas = |want: &[(&str, &str)]| {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let start = Instant::now();
        while lab.canvas() != want {
            assert!(
                start.elapsed() < T,
                "canvas {:?}, want {want:?}",
                lab.canvas()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: typed}\nspec:\n  entry: root\n  templates:\n    - {name: root, templateType: Serial, children: [nap, both]}\n    - {name: nap, templateType: Suspend, deadline: 5s}\n    - {name: both, templateType: Parallel, children: [left, right]}\n    - {name: left, templateType: Suspend, deadline: 1s}\n    - {name: right, templateType: Suspend, deadline: 2s}\n";
    set_yaml(yaml);
    wait_canvas(&[
        ("root", ""),
        ("nap", "root"),
        ("both", "root"),
        ("left", "both"),
        ("right", "both"),
    ]);
    // An edit: right moves before nap, renamed.
    set_yaml(
        &yaml
            .replace("children: [nap, both]", "children: [first, nap, both]")
            .replace("children: [left, right]", "children: [left]")
            .replace("name: right", "name: first"),
    );
    wait_canvas(&[
        ("root", ""),
        ("first", "root"),
        ("nap", "root"),
        ("both", "root"),
        ("left", "both"),
    ]);
    // Text that does not parse: the canvas stays, the reason is shown.
    set_yaml("spec: [unclosed\n");
    let start = Instant::now();
    while b.find_all("#wf-yaml[aria-invalid='true']").is_empty() {
        assert!(start.elapsed() < T, "no parse error shown");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = b.text(&b.wait("#yaml-state", T));
    assert!(state.contains("does not parse"), "{state}");
    assert_eq!(lab.canvas().len(), 5);
    // A canvas edit rewrites the text from the document.
    b.click(&lab.head("left"));
    b.chord(&[keys::DELETE]);
    lab.wait_yaml("children: [first, nap, both]");
    let doc = lab.yaml_doc();
    assert_eq!(
        doc["spec"]["templates"][3],
        json!({"name": "both", "templateType": "Parallel", "children": []})
    );
}

/// Every Workflow document in the manifests of `dirs`, with the file it came from.
fn workflows_in(dirs: &[PathBuf]) -> Vec<(String, Value)> {
    let mut workflows = Vec::new();
    for dir in dirs {
        for (path, text) in chaoshub_testkit::manifest_files(dir) {
            for doc in chaoshub_schema::split_documents(&text).unwrap() {
                if doc["kind"] == "Workflow" {
                    workflows.push((path.display().to_string(), doc));
                }
            }
        }
    }
    workflows
}

/// A Workflow's templates by name (a round trip may change their order).
fn templates_by_name(workflow: &Value) -> std::collections::BTreeMap<String, Value> {
    workflow["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

/// Every Workflow of the project's fixtures (and of the shared Chaos Mesh examples when they
/// are there) loads into the builder, is drawn node for node, and comes back out of the YAML
/// view as an equivalent document (the same templates, possibly in another order).
#[test]
fn console_builder_round_trips_every_workflow_fixture() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let mut dirs = vec![chaoshub_testkit::fixtures_dir()];
    dirs.extend(chaoshub_testkit::shared_dir(
        "reference/chaos-mesh/examples",
    ));
    let workflows = workflows_in(&dirs);
    assert!(workflows.len() >= 2, "the fixtures hold two workflows");
    let lab = lab(&chromium, &driver);
    let b = &lab.browser;
    for (path, doc) in &workflows {
        b.exec("window.chaoshubBuilder.load(arguments[0]);", json!([doc]));
        let back = lab.yaml_doc();
        assert_eq!(templates_by_name(&back), templates_by_name(doc), "{path}");
        let (mut a, mut c) = (back.clone(), doc.clone());
        a["spec"]["templates"] = Value::Null;
        c["spec"]["templates"] = Value::Null;
        assert_eq!(a, c, "{path}");
        // Every template is drawn (at least once).
        let drawn: std::collections::BTreeSet<String> =
            lab.canvas().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            drawn,
            templates_by_name(doc).keys().cloned().collect(),
            "{path}: the canvas does not show every template"
        );
    }
}

/// Save as template: a field of a node marked as a parameter with the keyboard (a name the
/// catalog would refuse is refused at once), the template saved through the console, refused
/// again by name (409) until "replace" is ticked, a bad category refused at its field; then the
/// template is in /catalog with a form field for the parameter (its default the value the field
/// had), and "Edit in the workflow builder" brings the workflow back with the mark restored.
#[test]
fn console_builder_saves_a_template_with_a_marked_parameter() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let lab = lab_with(&chromium, &driver, true);
    let b = &lab.browser;
    let press = |css: &str, chord: &[&str]| lab.press(css, chord);
    press("[data-type='Serial']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='serial']", T);
    press("[data-fault='raw']", &[keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='fault']", T);
    press("[data-type='Suspend']", &[keys::SHIFT, keys::ENTER]);
    b.wait("#canvas .node.selected[data-name='suspend']", T);
    lab.select_node("fault");

    // Mark networkChaos.delay.latency as `latency`, keyboard only: choose the field, type the
    // name, Enter.
    b.wait("#inspector #mark-box", T);
    lab.set("#mark-field", "networkChaos.delay.latency");
    let hint = b.text(&b.wait("#mark-type", T));
    assert!(hint.contains("type: duration"), "{hint}");
    let name = b.wait("#mark-name", T);
    b.exec(
        "arguments[0].value = '9-lives'; arguments[0].focus();",
        json!([Browser::arg(&name)]),
    );
    b.chord(&[keys::ENTER]);
    b.wait("#builder-msg.bad", T);
    assert!(
        b.text(&b.wait("#builder-msg", T))
            .contains("parameter name"),
        "{}",
        b.body_text()
    );
    let name = b.wait("#mark-name", T);
    b.exec(
        "arguments[0].value = 'latency'; arguments[0].focus();",
        json!([Browser::arg(&name)]),
    );
    b.chord(&[keys::ENTER]);
    b.wait("#canvas .node[data-name='fault'] .node-params", T);
    b.wait("#mark-list li[data-param='latency']", T);
    let listed = b.text(&b.wait("#tpl-params li[data-param='latency']", T));
    assert!(
        listed.contains("duration") && listed.contains("100ms"),
        "{listed}"
    );
    // The suspend's deadline too, through the button this time.
    lab.select_node("suspend");
    lab.set("#mark-field", "deadline");
    b.click(&b.wait("#mark-add", T));
    b.wait("#tpl-params li[data-param='suspend_deadline']", T);
    // Marking changes no field of the workflow.
    lab.wait_yaml("latency: 100ms");

    lab.set("#tpl-name", "web-delay-wf");
    lab.set("#tpl-title", "Delay the web tier, then wait");
    lab.set("#tpl-adapters", "native");
    lab.set(
        "#tpl-description",
        "Hypothesis: the web tier rides out 100 ms of latency. Watch: p99 and errors.",
    );
    lab.set("#tpl-category", "../x");
    b.click(&b.wait("#tpl-save", T));
    b.wait("#tpl-errors", T);
    b.wait("#tpl-category[aria-invalid='true']", T);
    lab.set("#tpl-category", "workflow");
    b.click(&b.wait("#tpl-save", T));
    let saved = b.wait("#tpl-saved", T);
    assert!(b.text(&saved).contains("Saved"), "{}", b.text(&saved));
    let file = lab._dir.path().join("catalog/workflow/web-delay-wf.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let template = chaoshub_schema::template::Template::from_text(&text).unwrap();
    let params: Vec<(&str, &str)> = template
        .spec
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.param_type.as_str()))
        .collect();
    assert_eq!(
        params,
        [("latency", "duration"), ("suspend_deadline", "duration")]
    );
    assert!(text.contains("${latency}"), "{text}");
    lab.shot("builder-06-save-template");

    // The same name again: refused until replacing is asked for.
    b.click(&b.wait("#tpl-save", T));
    let refused = b.wait("#tpl-errors", T);
    assert!(
        b.text(&refused).contains("already exists"),
        "{}",
        b.text(&refused)
    );
    b.click(&b.wait("#tpl-overwrite", T));
    b.click(&b.wait("#tpl-save", T));
    let replaced = b.wait("#tpl-saved", T);
    assert!(
        b.text(&replaced).contains("Replaced"),
        "{}",
        b.text(&replaced)
    );

    // In the catalog, with a form field per parameter.
    b.goto(&format!("{}/catalog", lab.hub.url));
    b.wait("a[href='/catalog/web-delay-wf']", T);
    b.goto(&format!("{}/catalog/web-delay-wf", lab.hub.url));
    let field = b.wait("#p-latency", T);
    assert_eq!(
        b.exec("return arguments[0].value;", json!([Browser::arg(&field)])),
        "100ms"
    );
    b.wait("#p-suspend_deadline", T);
    // A preview renders it with a new value. The page's live preview replaces `#rendered` as
    // the field changes, and the button's post loads a new page: the text is awaited, not an
    // element that may be replaced in between.
    lab.set("#p-latency", "300ms");
    b.click(&b.wait("#template-form button[value='preview']", T));
    b.wait_text("latency: 300ms", T);
    b.wait_text("kind: Workflow", T);

    // Back into the builder: the workflow, its marks and the template's fields.
    b.click(&b.wait("#edit-in-builder", T));
    b.wait("#canvas .node[data-name='fault'] .node-params", T);
    b.wait("#tpl-params li[data-param='latency']", T);
    b.wait("#tpl-params li[data-param='suspend_deadline']", T);
    b.wait("#tpl-overwrite:checked", T);
    let title = b.wait("#tpl-title", T);
    assert_eq!(
        b.exec("return arguments[0].value;", json!([Browser::arg(&title)])),
        "Delay the web tier, then wait"
    );
    lab.wait_yaml("latency: 100ms");
    let marks = b.exec("return window.chaoshubBuilder.marks();", json!([]));
    assert_eq!(marks.as_array().map(Vec::len), Some(2), "{marks}");
}

/// The document model (`workflow_model.js`) on its own, in Chromium: a table of cases run in
/// the page through `exec`, each result checked here. YAML the model writes is read back by the
/// hub's own parser, and a template it makes is validated by the real `Template` validation.
#[test]
fn console_builder_model_cases() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let lab = lab(&chromium, &driver);
    let b = &lab.browser;
    let run = |script: &str, args: Value| -> Value {
        b.exec(&format!("var M = window.WorkflowModel; {script}"), args)
    };

    // 1. Every Workflow fixture: manifest -> model -> YAML reads back as the same document.
    let workflows = workflows_in(&[chaoshub_testkit::fixtures_dir()]);
    assert!(workflows.len() >= 2);
    for (path, doc) in &workflows {
        let yaml = run(
            "return M.toYaml(M.toManifest(M.fromManifest(arguments[0])));",
            json!([doc]),
        );
        let mut back = chaoshub_schema::split_documents(yaml.as_str().unwrap())
            .unwrap_or_else(|e| panic!("{path}: {e:?}\n{yaml}"));
        let back = back.remove(0);
        assert_eq!(templates_by_name(&back), templates_by_name(doc), "{path}");
        assert_eq!(back["metadata"], doc["metadata"], "{path}");
        assert_eq!(back["spec"]["entry"], doc["spec"]["entry"], "{path}");
    }

    // 2. Scalars YAML would misread are quoted, and read back unchanged.
    let tricky = json!({"a": "true", "b": "1.5", "c": "x: y", "d": "", "e": "${p}", "f": "0x10",
        "g": "2024-01-01", "h": "- item", "i": "#no", "j": ["on", "null", "[x]", "a,b"], "k": {"l m": "n"},
        "o": 3, "p": false, "q": null, "r": "multi\nline"});
    let yaml = run("return M.toYaml(arguments[0]);", json!([tricky]));
    let back = chaoshub_schema::split_documents(yaml.as_str().unwrap()).unwrap();
    assert_eq!(back[0], tricky, "{yaml}");

    // 3. Building: insert, the keyboard moves, remove with pruning, moves that must fail.
    let v = run(
        r#"
        var d = M.empty("w");
        M.insert(d, M.newTemplate(d, "Serial"), null, 0);
        M.insert(d, M.newTemplate(d, "Suspend"), [], 0);
        M.insert(d, M.newTemplate(d, "Parallel"), [], 1);
        M.insert(d, M.newTemplate(d, "NetworkChaos", {name: "a"}), [1], 0);
        M.insert(d, M.newTemplate(d, "NetworkChaos", {name: "b"}), [], 2);
        var out = {};
        out.start = M.find(d, "serial").children.slice();
        out.inPath = M.moveBy(d, [2], "in");            // b into the parallel
        out.afterIn = [M.find(d, "serial").children.slice(), M.find(d, "parallel").children.slice()];
        out.upPath = M.moveBy(d, [1, 1], "up");          // b before a
        out.afterUp = M.find(d, "parallel").children.slice();
        out.outPath = M.moveBy(d, [1, 0], "out");        // b after the parallel
        out.afterOut = M.find(d, "serial").children.slice();
        out.cannotUp = M.moveBy(d, [0], "up");
        out.cannotEntry = M.moveBy(d, [], "down");
        try { M.move(d, [1], [1], 0); out.inside = "moved"; } catch (e) { out.inside = e.message; }
        try { M.insert(d, M.newTemplate(d, "Suspend"), [0], 0); out.notContainer = "inserted"; } catch (e) { out.notContainer = e.message; }
        M.remove(d, [1]);                                 // the parallel and its only child a
        out.left = d.spec.templates.map(function (t) { return t.name; });
        out.entry = d.spec.entry;
        try { M.rename(d, "b", "suspend"); out.rename = "renamed"; } catch (e) { out.rename = e.message; }
        M.rename(d, "b", "bee");
        out.renamed = M.find(d, "serial").children.slice();
        out.unique = M.uniqueName(d, "Bee");
        return out;
    "#,
        json!([]),
    );
    assert_eq!(v["start"], json!(["suspend", "parallel", "b"]), "{v}");
    assert_eq!(v["inPath"], json!([1, 1]), "{v}");
    assert_eq!(
        v["afterIn"],
        json!([["suspend", "parallel"], ["a", "b"]]),
        "{v}"
    );
    assert_eq!(v["upPath"], json!([1, 0]), "{v}");
    assert_eq!(v["afterUp"], json!(["b", "a"]), "{v}");
    assert_eq!(v["outPath"], json!([2]), "{v}");
    assert_eq!(v["afterOut"], json!(["suspend", "parallel", "b"]), "{v}");
    assert_eq!(v["cannotUp"], Value::Null, "{v}");
    assert_eq!(v["cannotEntry"], Value::Null, "{v}");
    assert!(
        v["inside"].as_str().unwrap().contains("inside itself"),
        "{v}"
    );
    assert!(
        v["notContainer"]
            .as_str()
            .unwrap()
            .contains("Serial and Parallel"),
        "{v}"
    );
    assert_eq!(v["left"], json!(["serial", "suspend", "b"]), "{v}");
    assert_eq!(v["entry"], "serial", "{v}");
    assert!(
        v["rename"].as_str().unwrap().contains("another node"),
        "{v}"
    );
    assert_eq!(v["renamed"], json!(["suspend", "bee"]), "{v}");
    assert_eq!(v["unique"], "bee-2", "{v}");

    // 4. Validation positions: an API path names a template and the field inside it.
    let v = run(
        r#"
        var d = M.fromManifest(arguments[0]);
        return [
          M.locate(d, "spec.templates[1].networkChaos.delay.latency"),
          M.locate(d, ".spec.templates[0].children[2]"),
          M.locate(d, "spec.templates[9].deadline"),
          M.locate(d, "metadata.name")
        ];
    "#,
        json!([{"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"entry": "r", "templates": [
                {"name": "r", "templateType": "Serial", "children": ["n"]},
                {"name": "n", "templateType": "NetworkChaos", "networkChaos": {"action": "delay"}}]}}]),
    );
    assert_eq!(
        v,
        json!([
            {"name": "n", "field": "networkChaos.delay.latency"},
            {"name": "r", "field": "children"},
            null,
            null
        ])
    );

    // 5. Parameter types inferred from fields.
    let cases = json!([
        ["deadline", "30s"],
        ["networkChaos.mode", "all"],
        ["networkChaos.loss.loss", "25"],
        ["statusCheck.failureThreshold", 3],
        ["stressChaos.x", 0.5],
        ["abortWithStatusCheck", true],
        ["statusCheck.http.url", "http://web:8080/healthz"],
        ["statusCheck.http.criteria.statusCode", "200"],
        ["networkChaos.delay.jitter", "1h30m"],
        ["podChaos.mode", "sometimes"]
    ]);
    let v = run(
        "return arguments[0].map(function (c) { var t = M.inferType(c[0], c[1]); return [t.type, t.asString]; });",
        json!([cases]),
    );
    assert_eq!(
        v,
        json!([
            ["duration", false],
            ["enum", false],
            ["percent", true],
            ["integer", false],
            ["number", false],
            ["boolean", false],
            ["string", false],
            ["integer", true],
            ["duration", false],
            ["string", false]
        ])
    );

    // 6. A template from marks: placeholders where the marks are, `${` kept literal elsewhere,
    // the marks found again in it; refused marks say why. The Rust side validates it.
    let v = run(
        r#"
        var d = M.empty("w");
        M.insert(d, M.newTemplate(d, "Serial"), null, 0);
        M.insert(d, M.newTemplate(d, "NetworkChaos", {name: "slow", spec: {action: "delay", mode: "all",
            selector: {labelSelectors: {app: "web"}}, delay: {latency: "100ms"}, loss: {loss: "25"}}}), [], 0);
        var s = M.newTemplate(d, "StatusCheck");
        s.statusCheck.http.url = "http://127.0.0.1:8080/health?q=${literal}";
        M.insert(d, s, [], 1);
        var marks = M.mark(d, [], "slow", "networkChaos.delay.latency", "latency");
        marks = M.mark(d, marks, "slow", "networkChaos.loss.loss", "loss");
        marks = M.mark(d, marks, "slow", "networkChaos.mode", "mode");
        var errors = [];
        [["slow", "networkChaos.mode", "mode2"], ["slow", "networkChaos.action", "latency"],
         ["slow", "networkChaos.nothing", "x"], ["slow", "networkChaos.action", "1x"]].forEach(function (c) {
          try { M.mark(d, marks, c[0], c[1], c[2]); errors.push("accepted"); } catch (e) { errors.push(e.message); }
        });
        var t = M.toTemplate(d, marks, {name: "slow-web", title: "Slow web", description: "d", category: "workflow", adapters: ["native"]});
        // One parameter in two places (as a loaded template can have): declared once.
        var twice = marks.concat([{name: "latency", template: "statuscheck", field: "deadline", type: "duration", asString: false}]);
        var shared = M.toTemplate(d, twice, {name: "x"});
        M.rename(d, "slow", "slower");
        var renamed = M.renameMarks(marks, "slow", "slower");
        M.remove(d, [0]);
        return {template: t, errors: errors, shared: [shared.spec.parameters.map(function (p) { return p.name; }),
                shared.spec.experiment.spec.templates[2].deadline], again: M.marksFromTemplate(t.spec.experiment, t.spec.parameters),
                marks: marks, renamed: renamed.map(function (m) { return m.template; }),
                live: M.liveMarks(d, renamed).length};
    "#,
        json!([]),
    );
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(errors[0].contains("already a parameter"), "{errors:?}");
    assert!(
        errors[1].contains("already the parameter latency"),
        "{errors:?}"
    );
    assert!(errors[2].contains("no field"), "{errors:?}");
    assert!(errors[3].contains("parameter name"), "{errors:?}");
    assert_eq!(
        v["shared"],
        json!([["latency", "loss", "mode"], "${latency}"]),
        "{v}"
    );
    let t = &v["template"];
    let slow = &t["spec"]["experiment"]["spec"]["templates"][1];
    assert_eq!(
        slow["networkChaos"]["delay"]["latency"], "${latency}",
        "{t}"
    );
    assert_eq!(
        slow["networkChaos"]["loss"]["loss"], "${loss:string}",
        "{t}"
    );
    assert_eq!(slow["networkChaos"]["mode"], "${mode}", "{t}");
    assert_eq!(
        t["spec"]["experiment"]["spec"]["templates"][2]["statusCheck"]["http"]["url"],
        "http://127.0.0.1:8080/health?q=$${literal}"
    );
    assert_eq!(
        t["spec"]["experiment"]["metadata"],
        json!({"generateName": "w-"})
    );
    let sort = |v: &Value| {
        let mut a = v.as_array().unwrap().clone();
        a.sort_by_key(|m| m["name"].as_str().unwrap().to_string());
        a
    };
    assert_eq!(sort(&v["again"]), sort(&v["marks"]));
    assert_eq!(v["renamed"], json!(["slower", "slower", "slower"]));
    assert_eq!(v["live"], 0, "the marks of a removed node are gone");
    let template = chaoshub_schema::template::Template::from_value(t.clone())
        .unwrap_or_else(|e| panic!("the model's template does not validate: {e:?}\n{t}"));
    let rendered = template
        .render(
            &serde_json::from_value(json!({"latency": "1s", "loss": 50})).unwrap(),
            &Default::default(),
        )
        .unwrap()
        .to_value();
    let node = &rendered["spec"]["templates"][1]["networkChaos"];
    assert_eq!(node["delay"]["latency"], "1s");
    assert_eq!(node["loss"]["loss"], "50");
    assert_eq!(node["mode"], "all");
    assert_eq!(
        rendered["spec"]["templates"][2]["statusCheck"]["http"]["url"],
        "http://127.0.0.1:8080/health?q=${literal}"
    );
}
