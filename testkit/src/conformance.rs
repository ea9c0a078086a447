//! Measured figures for the conformance matrix (docs/conformance.md).
//!
//! A test that ran a fault on an adapter's real far side and measured its effect records the
//! figure with [`measured!`](crate::measured): one JSON file per (row, adapter) in
//! [`figures_dir`], naming the test, the command that runs it, the date and the machine. A
//! normal test run writes nothing else; `CHAOSHUB_UPDATE_DOCS=1 cargo test -p chaoshub
//! conformance` folds these files into `docs/conformance-measured.json` (keeping the entries of
//! cells not measured again) and removes them.
//!
//! The JSON is written by hand because this crate has no dependencies by default (every test
//! binary links it); the hub parses it with serde into `chaoshub_schema::api::MeasuredFigure`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable naming the folder figures go to (default `<target dir>/conformance-figures`).
pub const FIGURES_DIR_VAR: &str = "CHAOSHUB_CONFORMANCE_DIR";

/// Records a measured figure for one cell of the conformance matrix:
/// `measured!("NetworkChaos/loss", "docker", format!("{loss:.1} % lost for 30 %"))`, with an
/// optional `mechanism = "nfqueue"` naming how the far side delivered it. Call it from the
/// test's own thread (its name is the test's name) at the end of the test, after the effect
/// was measured and its removal after recovery checked, so a failing test records nothing.
#[macro_export]
macro_rules! measured {
    ($row:expr, $adapter:expr, $figure:expr) => {
        $crate::conformance::record($row, $adapter, &$figure, "", file!())
    };
    ($row:expr, $adapter:expr, $figure:expr, mechanism = $mechanism:expr) => {
        $crate::conformance::record($row, $adapter, &$figure, &$mechanism, file!())
    };
}

/// Where figures are written: `$CHAOSHUB_CONFORMANCE_DIR`, else `conformance-figures` in the
/// cargo target folder of the running test binary (`<target>/debug/deps/<binary>`), which every
/// test binary of one build shares.
pub fn figures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(FIGURES_DIR_VAR).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<binary>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("conformance-figures"))
        .unwrap_or_else(|| std::env::temp_dir().join("chaoshub-conformance-figures"))
}

/// The figure files recorded so far, sorted by name, with their text.
pub fn recorded() -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(figures_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, String)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|text| (p, text)))
        .collect();
    files.sort();
    files
}

/// Writes one figure (see [`measured!`](crate::measured)); `source_file` is the test's
/// `file!()`, relative to the workspace root.
pub fn record(row: &str, adapter: &str, figure: &str, mechanism: &str, source_file: &str) {
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|name| *name != "main" && !name.starts_with("tokio-"))
        .unwrap_or_else(|| {
            panic!("measured!({row:?}, {adapter:?}) must be called on the test's own thread")
        })
        .to_string();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| crate::strip_cargo_hash(&stem).to_string())
        .unwrap_or_default();
    let package = package_of(source_file);
    let command = format!("cargo test -p {package} --test {binary} -- {test} --exact");
    let mut measured = format!("{} on {}", today(), machine());
    if !mechanism.is_empty() {
        measured.push_str(&format!(", mechanism {mechanism}"));
    }
    let json = format!(
        "{{\n  \"row\": {},\n  \"adapter\": {},\n  \"figure\": {},\n  \"test\": {},\n  \"command\": {},\n  \"measured\": {}\n}}\n",
        json_string(row),
        json_string(adapter),
        json_string(figure),
        json_string(&format!("{source_file} {test}")),
        json_string(&command),
        json_string(&measured),
    );
    let dir = figures_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let name = file_name(adapter, row);
    // Written whole, then renamed: a merge running meanwhile never reads half a file.
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, json).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(&name))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", dir.join(&name).display()));
    // Straight to the file descriptor, like skip lines (libtest does not capture it).
    let _ = writeln!(
        std::io::stderr().lock(),
        "MEASURED {row} on {adapter}: {figure}"
    );
}

/// `docker__NetworkChaos-delay-reorder.json`: one file per cell, so a cell measured again
/// replaces its figure.
fn file_name(adapter: &str, row: &str) -> String {
    let mut slug = String::new();
    for c in row.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    format!("{adapter}__{}.json", slug.trim_end_matches('-'))
}

/// The package whose test `source_file` is (`adapters/tests/x.rs` → the `name` in
/// `adapters/Cargo.toml`).
fn package_of(source_file: &str) -> String {
    let first = Path::new(source_file)
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = crate::workspace_root().join(&first).join("Cargo.toml");
    std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| {
            text.lines()
                .map(str::trim)
                .find(|l| l.starts_with("name") && l.contains('='))
                .and_then(|l| l.split('"').nth(1).map(str::to_string))
        })
        .unwrap_or(first)
}

/// `Linux 6.1.0 x86_64`.
fn machine() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "{} {} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_names_are_computed_without_a_clock_library() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
        assert_eq!(
            file_name("docker", "NetworkChaos/delay (jitter, correlation)"),
            "docker__NetworkChaos-delay-jitter-correlation.json"
        );
        assert_eq!(json_string("a \"b\"\\\n"), "\"a \\\"b\\\"\\\\\\n\"");
        assert_eq!(package_of("adapters/tests/docker.rs"), "chaoshub-adapters");
        assert_eq!(package_of("tests/tests/e2e/agent.rs"), "chaoshub-e2e");
    }
}
