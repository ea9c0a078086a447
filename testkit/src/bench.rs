//! Bench support: the project's Python fsfault plugin (`examples/plugins/fsfault/`), real
//! filesystem faults behind the `webhook` adapter, started on a free loopback port and stopped
//! on drop (it serves one target directory, `web`, labelled `tier=frontend`); percentiles; and the
//! console files a page links.
//!
//! std-only, like the rest of this crate, so blocking and async callers alike can use it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running fsfault plugin; killed and reaped on drop.
pub struct FsFaultPlugin {
    child: Child,
    /// `http://127.0.0.1:<port>`: the plugin's base URL (a webhook environment's `endpoint`).
    pub url: String,
}

impl Drop for FsFaultPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FsFaultPlugin {
    /// Starts the plugin with its target and journal under `dir` and waits until it has bound
    /// its port. Panics (naming what is missing) when `python3` cannot run it.
    pub fn start(dir: &Path) -> FsFaultPlugin {
        let web = dir.join("web");
        let state = dir.join("state");
        for d in [&web, &state] {
            std::fs::create_dir_all(d)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
        }
        let port_file = dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let script = crate::workspace_root().join("examples/plugins/fsfault/fsfault.py");
        let child = Command::new("python3")
            .arg(&script)
            .args(["--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .arg("--target")
            .arg(format!("web={}", web.display()))
            .args(["--label", "web:tier=frontend", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 is needed for {}: {e}", script.display()));
        let mut plugin = FsFaultPlugin {
            child,
            url: String::new(),
        };
        let started = Instant::now();
        loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if !p.trim().is_empty() {
                    plugin.url = format!("http://127.0.0.1:{}", p.trim());
                    return plugin;
                }
            }
            if let Ok(Some(status)) = plugin.child.try_wait() {
                panic!("the fsfault plugin exited before listening ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the fsfault plugin did not bind a port within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `p`-th percentile (0–100, nearest rank) of already sorted values; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The console's files (`/console/static/…`) an HTML page links through `src` or `href`, each
/// once, in order: what a browser with an empty cache fetches with the page.
pub fn linked_static_files(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            let Some(end) = rest.find('"') else { continue };
            let url = &rest[..end];
            if url.starts_with("/console/static/") && !out.iter().any(|u| u == url) {
                out.push(url.to_string());
            }
        }
    }
    out
}
