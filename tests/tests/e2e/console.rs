//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) over WebDriver, against the real `chaoshub` binary with the fsfault
//! webhook plugin as the environment, so a fault started from the console really fills a file.
//! Screenshots of each step land in `<target>/console-screenshots/` (`scripts/screenshots.sh`
//! copies the README's two into `docs/images/`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::support::*;
use super::webdriver::{self, Browser};

const LIVE: Duration = Duration::from_secs(20);

/// `<target>/console-screenshots`, beside the test binary's profile directory.
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .to_path_buf()
        });
    target.join("console-screenshots")
}

fn browser_or_skip() -> Option<(PathBuf, PathBuf)> {
    match webdriver::locate() {
        Ok(found) => Some(found),
        Err(reason) => {
            chaoshub_testkit::skip_or_fail_in_ci(&reason);
            None
        }
    }
}

struct Lab {
    // Field order is drop order: the browser first, then the hub, then the plugin.
    browser: Browser,
    hub: HubProcess,
    plugin: Plugin,
    api: Api,
    _dir: tempfile::TempDir,
}

fn lab(chromium: &std::path::Path, driver: &std::path::Path) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start_with_labels(dir.path(), 120, &["web:app=web"]);
    let hub = HubProcess::start_with_catalog(dir.path());
    let api = Api::new(&hub.url);
    register_plugin(&api, "files", &plugin);
    let browser = Browser::start(chromium, driver);
    Lab {
        browser,
        hub,
        plugin,
        api,
        _dir: dir,
    }
}

impl Lab {
    fn login(&self) {
        let b = &self.browser;
        b.goto(&format!("{}/", self.hub.url));
        let field = b.wait("#token", T);
        b.type_text(&field, &self.hub.token);
        b.click(&b.wait("form[action='/login'] button", T));
        b.wait_text("Faults in force", T);
    }

    fn set_editor(&self, yaml: &str) {
        let area = self.browser.wait("#yaml", T);
        self.browser.exec(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
            json!([Browser::arg(&area), yaml]),
        );
    }

    fn shot(&self, name: &str) {
        self.browser
            .screenshot(&screenshots().join(format!("{name}.png")));
    }

    /// Marks the current document; `still_same_document` is true only if no navigation or
    /// reload happened since.
    fn mark(&self) {
        self.browser
            .exec("window.__chaoshubMark = 1; return null;", json!([]));
    }

    fn still_same_document(&self) -> bool {
        self.browser
            .exec("return window.__chaoshubMark === 1;", json!([]))
            == Value::Bool(true)
    }

    /// The phase badge's text, read in one script call: the page refreshes itself on events,
    /// so an element found by one WebDriver call can be gone by the next (stale reference).
    fn phase_badge(&self) -> String {
        self.browser
            .exec(
                "var b = document.querySelector('.lead .badge'); return b ? b.innerText.trim() : '';",
                json!([]),
            )
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_badge(&self, phase: &str) {
        let start = std::time::Instant::now();
        while self.phase_badge() != phase {
            assert!(
                start.elapsed() < LIVE,
                "the page never showed {phase} (shows {:?}):\n{}",
                self.phase_badge(),
                self.browser.body_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn console_drives_a_fault_from_editor_to_stop_and_halts() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let lab = lab(&chromium, &driver);
    let b = &lab.browser;
    lab.login();
    lab.shot("01-overview");

    // The editor: a validation error at its field path first, then a dry run, then Start.
    b.goto(&format!("{}/new", lab.hub.url));
    let good = fill_yaml("console-fill", "files", Some("10m"), "1MB");
    lab.set_editor(&good.replace("mode: all", "mode: sometimes"));
    b.click(&b.wait("button[value='check']", T));
    let error = b.wait(".field-errors li[data-path='spec.mode']", T);
    assert!(b.text(&error).contains("spec.mode"), "{}", b.text(&error));
    lab.shot("02-editor-validation-error");
    lab.set_editor(&good);
    b.click(&b.wait("button[value='check']", T));
    b.wait("#plan", T);
    b.wait_text("web", T);
    lab.shot("03-editor-dry-run");
    b.click(&b.wait("#start", T));

    // The detail page follows the experiment to Running by itself.
    b.wait(".lead .badge", T);
    lab.mark();
    lab.wait_badge("Running");
    assert!(lab.still_same_document(), "the page was reloaded");
    assert_eq!(
        lab.plugin.fill_files().len(),
        1,
        "the fault is really there"
    );
    // A disk fill imposes no rate or latency, so its timeline has no value chart.
    b.wait("svg.timeline rect.target-injected", T);
    lab.shot("04-experiment-detail");

    // The overview lists it in force; a second experiment started elsewhere (the API) appears
    // in the open page without a reload.
    b.goto(&format!("{}/", lab.hub.url));
    b.wait("#faults", T);
    b.wait_text("console-fill", T);
    lab.mark();
    let (code, v) = lab.api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("api-fill", "files", Some("10m"), "1MB")),
    );
    assert_eq!(code, 201, "{v}");
    b.wait_text("api-fill", LIVE);
    assert!(lab.still_same_document(), "the overview was reloaded");
    lab.shot("05-overview-faults-in-force");

    // Stop both from the overview's buttons; the files go away.
    for _ in 0..2 {
        b.click_css("#faults form[action$='/stop'] button", T);
        std::thread::sleep(Duration::from_millis(300));
    }
    b.wait_text("No fault is in force", LIVE);
    let start = std::time::Instant::now();
    while !lab.plugin.fill_files().is_empty() {
        assert!(start.elapsed() < LIVE, "the fill files stayed");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A template from the catalog, through its generated form. The preview follows the form
    // as it is typed in (the defaults first), before any button is pressed.
    b.goto(&format!("{}/catalog/disk-fill", lab.hub.url));
    b.wait("#template-result #rendered", T);
    let size = b.wait("#p-size", T);
    b.clear(&size);
    b.type_text(&size, "3MB");
    b.wait_text("size: 3MB", T);
    b.clear(&size);
    b.type_text(&size, "1MB");
    let duration = b.wait("#p-duration", T);
    b.clear(&duration);
    b.type_text(&duration, "10m");
    b.click(&b.wait("button[value='preview']", T));
    b.wait("#rendered", T);
    b.wait_text("size: 1MB", T);
    lab.shot("06-catalog-template");
    b.click(&b.wait("#run", T));
    b.wait(".lead .badge", T);
    lab.wait_badge("Running");
    b.click_css(".actions form[action$='/stop'] button", T);
    lab.wait_badge("Aborted");

    // Halt with the typed confirmation and a reason; then release.
    b.goto(&format!("{}/", lab.hub.url));
    b.type_text(&b.wait("#halt-reason", T), "game day over");
    b.type_text(&b.wait("#halt-confirm", T), "HALT");
    b.click(&b.wait(".halt-form button", T));
    b.wait_text("game day over", T);
    b.wait("form[action='/unhalt'] button", T);
    lab.shot("07-halted");
    let halt = lab.api.get("/api/v1/halt");
    assert_eq!(halt["halted"], true, "{halt}");
    b.click(&b.wait("form[action='/unhalt'] button", T));
    b.wait("#halt-reason", T);
    assert_eq!(lab.api.get("/api/v1/halt")["halted"], false);
}

/// Loads every page and checks the browser saw no console error, no failed request and no
/// request to another origin.
#[test]
fn every_console_page_loads_cleanly() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let lab = lab(&chromium, &driver);
    let (code, v) = lab.api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("clean-fill", "files", Some("10m"), "1MB")),
    );
    assert_eq!(code, 201, "{v}");
    let uid = uid(&v);
    lab.api.wait_phase(&uid, "Running", T);
    let b = &lab.browser;
    b.goto(&format!("{}/login", lab.hub.url));
    lab.login();
    let pages = [
        "/".to_string(),
        "/experiments".into(),
        "/experiments?phase=Running".into(),
        format!("/experiments/{uid}"),
        "/new".into(),
        format!("/new?from={uid}"),
        "/catalog".into(),
        "/catalog?category=host".into(),
        "/catalog/disk-fill".into(),
        "/conformance".into(),
        "/environments".into(),
        "/orchestration".into(),
        "/workflows/new".into(),
        "/suites".into(),
    ];
    let origin = lab.hub.url.clone();
    let mut problems = Vec::new();
    // Discard what the login produced, then read the logs after each page.
    b.log("browser");
    b.log("performance");
    for page in &pages {
        b.goto(&format!("{origin}{page}"));
        b.wait("main h1", T);
        // Give the live script time to open its event stream.
        std::thread::sleep(Duration::from_millis(400));
        for entry in b.log("browser") {
            if entry["level"] == "SEVERE" || entry["level"] == "WARNING" {
                problems.push(format!("{page}: console: {}", entry["message"]));
            }
        }
        for entry in b.log("performance") {
            let Ok(message) =
                serde_json::from_str::<Value>(entry["message"].as_str().unwrap_or(""))
            else {
                continue;
            };
            let method = message["message"]["method"].as_str().unwrap_or("");
            let params = &message["message"]["params"];
            match method {
                "Network.requestWillBeSent" => {
                    let url = params["request"]["url"].as_str().unwrap_or("");
                    if !url.starts_with(&origin) && !url.starts_with("data:") {
                        problems.push(format!("{page}: request to another origin: {url}"));
                    }
                }
                "Network.responseReceived" => {
                    let status = params["response"]["status"].as_f64().unwrap_or(0.0);
                    if status >= 400.0 {
                        problems.push(format!(
                            "{page}: {} answered {status}",
                            params["response"]["url"]
                        ));
                    }
                }
                // A stream cut by the next navigation is "canceled", not failed.
                "Network.loadingFailed" if params["canceled"] != true => {
                    problems.push(format!("{page}: request failed: {params}"));
                }
                _ => {}
            }
        }
        // The page as the browser holds it after its scripts ran (the builder's palette,
        // inspector and forms are drawn by script): the same static accessibility check the
        // hub's tests run on the served HTML.
        let dom = b.exec(
            "return document.documentElement.outerHTML;",
            serde_json::json!([]),
        );
        let dom = format!("<!doctype html>{}", dom.as_str().unwrap_or(""));
        for problem in chaoshub_testkit::a11y::problems(&dom) {
            problems.push(format!("{page}: accessibility: {problem}"));
        }
        let name = page
            .trim_matches('/')
            .replace(['/', '?', '=', '&'], "-")
            .chars()
            .take(40)
            .collect::<String>();
        let name = if name.is_empty() {
            "overview".into()
        } else {
            name
        };
        lab.shot(&format!("page-{name}"));
    }
    // Readable at 200 % zoom: a 1280-pixel screen zoomed to 200 % lays pages out in 640 CSS
    // pixels. Nothing may need sideways scrolling of the whole page (wide tables and the
    // matrix scroll inside their own boxes).
    b.set_window_size(640, 900);
    for page in &pages {
        b.goto(&format!("{origin}{page}"));
        b.wait("main h1", T);
        let widths = b.exec(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            serde_json::json!([]),
        );
        let (scroll, inner) = (
            widths[0].as_f64().unwrap_or(0.0),
            widths[1].as_f64().unwrap_or(0.0),
        );
        if inner > 0.0 && scroll > inner + 1.0 {
            problems.push(format!(
                "{page}: at 640 CSS px (200 % zoom) the page is {scroll} px wide and scrolls sideways"
            ));
        }
    }
    b.set_window_size(1280, 900);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
