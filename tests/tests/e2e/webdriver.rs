//! A small W3C WebDriver client over blocking reqwest, driving Debian's headless Chromium
//! through `chromedriver`: enough for the console's browser tests (navigate, find, click, type,
//! run a script, screenshots, the browser's console and network logs). Written here rather
//! than taken from crates.io because the few commands it needs are a page of JSON, where a
//! client crate would bring its own HTTP stack.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key W3C gives element references in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Chromium and chromedriver (`CHROMIUM` / `CHROMEDRIVER`, else `PATH`, else Debian's paths),
/// or the reason they are missing.
pub fn locate() -> Result<(PathBuf, PathBuf), String> {
    let find = |var: &str, names: &[&str], debian: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| which(names))
            .or_else(|| Some(PathBuf::from(debian)).filter(|p| p.is_file()))
    };
    let browser = find(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
        "/usr/bin/chromium",
    );
    let driver = find("CHROMEDRIVER", &["chromedriver"], "/usr/bin/chromedriver");
    match (browser, driver) {
        (Some(b), Some(d)) => Ok((b, d)),
        _ => Err("headless Chromium and chromedriver are needed (Debian packages chromium and chromium-driver, installed by scripts/install-test-deps.sh; or set CHROMIUM and CHROMEDRIVER)".into()),
    }
}

/// WebDriver's codes of the keys the tests press.
pub mod keys {
    pub const SHIFT: &str = "\u{E008}";
    pub const ALT: &str = "\u{E00A}";
    pub const ENTER: &str = "\u{E007}";
    pub const LEFT: &str = "\u{E012}";
    pub const UP: &str = "\u{E013}";
    pub const RIGHT: &str = "\u{E014}";
    pub const DOWN: &str = "\u{E015}";
    pub const DELETE: &str = "\u{E017}";
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub fn start(browser: &Path, driver: &Path) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        super::support::install_crypto_provider();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let start = Instant::now();
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = b.call("POST", "/session", caps);
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {v}"))
            .to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), json!({ "url": url }));
    }

    /// Resizes the browser window (CSS pixels at a zoom of 100 %).
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.s("/window/rect"),
            json!({ "width": width, "height": height }),
        );
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            json!({"using": "css selector", "value": css}),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to `timeout`) for an element matching `css`.
    pub fn wait(&self, css: &str, timeout: Duration) -> Element {
        let start = Instant::now();
        loop {
            if let Some(e) = self.find_all(css).into_iter().next() {
                return e;
            }
            assert!(
                start.elapsed() < timeout,
                "no {css:?} on {} within {timeout:?}; page text:\n{}",
                self.url(),
                self.body_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the page's text to contain `text`.
    pub fn wait_text(&self, text: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let body = self.body_text();
            if body.contains(text) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{text:?} not on {} within {timeout:?}; page text:\n{body}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn body_text(&self) -> String {
        self.exec(
            "return document.body ? document.body.innerText : ''",
            json!([]),
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Finds the first element matching `css` and clicks it in one script call, retrying until
    /// one exists. For pages that redraw themselves (the live overview, an experiment's page):
    /// there an element found by one WebDriver call can be replaced before the next, and a
    /// `click` on it fails with a stale element reference.
    pub fn click_css(&self, css: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let clicked = self.exec(
                "var e = document.querySelector(arguments[0]); if (!e) { return false; } e.click(); return true;",
                json!([css]),
            );
            if clicked == Value::Bool(true) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "no {css:?} to click on {} within {timeout:?}; page text:\n{}",
                self.url(),
                self.body_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, e: &Element) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/click", e.0)),
            json!({}),
        );
    }

    pub fn type_text(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/value", e.0)),
            json!({ "text": text }),
        );
    }

    pub fn clear(&self, e: &Element) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/clear", e.0)),
            json!({}),
        );
    }

    pub fn text(&self, e: &Element) -> String {
        self.call(
            "GET",
            &self.s(&format!("/element/{}/text", e.0)),
            Value::Null,
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Runs `script` in the page with `args` (elements are passed as `Element::arg`).
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            json!({"script": script, "args": args}),
        )
    }

    pub fn arg(e: &Element) -> Value {
        json!({ ELEMENT: e.0 })
    }

    /// Runs W3C input actions: `sources` is the `actions` list of one `POST …/actions` call.
    /// Input state (a pressed button, a held key) carries over to the next call, so a drag can
    /// be split where the page changes its layout.
    pub fn actions(&self, sources: Value) {
        self.call("POST", &self.s("/actions"), json!({ "actions": sources }));
    }

    /// Releases every pressed key and button.
    pub fn release_actions(&self) {
        self.call("DELETE", &self.s("/actions"), Value::Null);
    }

    fn pointer(steps: Value) -> Value {
        json!([{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": steps}])
    }

    /// Drags `from` onto `to` with the mouse, as pointer events: press on `from`, move a few
    /// pixels (pages start a drag past a threshold, and may then change their layout), then
    /// move to `to` where it is at that moment, and release.
    pub fn drag(&self, from: &Element, to: &Element) {
        self.actions(Self::pointer(json!([
            {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: from.0}, "x": 0, "y": 0},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerMove", "duration": 50, "origin": "pointer", "x": 8, "y": 8},
        ])));
        self.actions(Self::pointer(json!([
            {"type": "pointerMove", "duration": 100, "origin": {ELEMENT: to.0}, "x": 0, "y": 0},
        ])));
        self.actions(Self::pointer(json!([{"type": "pointerUp", "button": 0}])));
        self.release_actions();
    }

    /// Presses `keys` together (a chord, e.g. Alt+ArrowUp as `[keys::ALT, keys::UP]`) in the
    /// focused element, then releases them.
    pub fn chord(&self, keys: &[&str]) {
        let mut steps: Vec<Value> = keys
            .iter()
            .map(|k| json!({"type": "keyDown", "value": k}))
            .collect();
        steps.extend(
            keys.iter()
                .rev()
                .map(|k| json!({"type": "keyUp", "value": k})),
        );
        self.actions(json!([{"type": "key", "id": "keyboard", "actions": steps}]));
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let v = self.call("GET", &self.s("/screenshot"), Value::Null);
        let png = base64_decode(v.as_str().unwrap_or(""));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Entries of a Chromium log (`browser`: the console; `performance`: DevTools events)
    /// since the last read.
    pub fn log(&self, kind: &str) -> Vec<Value> {
        self.call("POST", &self.s("/se/log"), json!({ "type": kind }))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.base, self.session))
                .send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
