//! Test support for the chaoshub workspace: one way for every test to find the project's own
//! fixtures and what only the shared folder beside the clone has (the Chaos Mesh reference
//! corpus, a real Toxiproxy server, a real kube-apiserver).
//!
//! # The rule every locator keeps
//! - Found: `Some(path)`.
//! - Missing, `CI` is not `true`: the test is skipped *loudly*. One line
//!   `SKIP <test>: <what> not found (looked in …); set X or place … to run it` is written, and
//!   the locator returns `None` so the test can return (or go on with the project's fixtures
//!   only).
//! - Missing, `CI=true` (or `CI=1`): the locator panics with the same reason, so CI never passes
//!   by skipping.
//!
//! # Where a skip line goes, and why
//! libtest captures what `print!`/`eprint!` write in a test and shows it only when the test
//! fails, so a skip printed that way would be invisible exactly when it matters (the test
//! passed without doing its work). A skip line is therefore written:
//! 1. straight to the process's standard error ([`std::io::stderr`], which libtest does not
//!    capture), so `cargo test` shows it between the `test … ok` lines with or without
//!    `--nocapture`;
//! 2. appended to the file named by `CHAOSHUB_SKIP_LOG`, when that variable is set:
//!    `scripts/test.sh` sets it and prints every skip reason again in its final summary, after
//!    the thousands of lines of a whole-workspace run.
//!
//! `<test>` is the test binary's name and the running test's name (libtest names each test's
//! thread after the test), e.g. `hub::api_errors::thousands_of_bad_bodies_get_only_4xx`.
//!
//! The rules are written as pure functions of an environment ([`Env`]) so their unit tests never
//! change the process's environment, which tests running in parallel threads share.

pub mod a11y;
pub mod bench;
pub mod conformance;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod postgres;
#[cfg(feature = "ssm")]
pub mod ssm;
pub mod toxiproxy;

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable naming the shared folder (the one holding `reference/` and `tools/`).
pub const SHARED_DIR_VAR: &str = "CHAOSHUB_SHARED_DIR";
/// The variable naming the file skip lines are appended to (set by `scripts/test.sh`).
pub const SKIP_LOG_VAR: &str = "CHAOSHUB_SKIP_LOG";

/// The workspace's root folder (the one holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The project's own Chaos Mesh manifests (`tests/fixtures/chaos-mesh`): every kind and action
/// chaoshub knows, always present in a clone.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/chaos-mesh")
}

/// The manifests (`*.yaml`, `*.yml`, `*.json`) directly in `dir`, sorted by name, with their text.
/// Panics when `dir` cannot be read or holds none: callers pass a folder a locator returned.
pub fn manifest_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<(PathBuf, String)> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())))
        .map(|entry| entry.path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (path, text)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no manifests", dir.display());
    files
}

/// The shared folder: `$CHAOSHUB_SHARED_DIR`, else `<workspace>/../shared`.
pub fn shared_root() -> Option<PathBuf> {
    settle(find_shared_root(&Env::process()))
}

/// A path under the shared folder, e.g. `shared_dir("reference/chaos-mesh/examples")`.
pub fn shared_dir(rel: &str) -> Option<PathBuf> {
    settle(find_shared_dir(&Env::process(), rel))
}

/// The real Toxiproxy server: `$TOXIPROXY_SERVER`, then `toxiproxy-server` on `PATH`, then
/// `<shared>/tools/toxiproxy/toxiproxy-server`.
pub fn toxiproxy_server() -> Option<PathBuf> {
    settle(find_executable(&Env::process(), &TOXIPROXY_SERVER))
}

/// The real Kubernetes API server: `$KUBE_APISERVER`, then `kube-apiserver` on `PATH`, then
/// `<shared>/tools/kubernetes/kube-apiserver`. It needs etcd (Debian's `etcd-server`).
pub fn kube_apiserver() -> Option<PathBuf> {
    settle(find_executable(&Env::process(), &KUBE_APISERVER))
}

/// The script that starts a throw-away etcd + kube-apiserver control plane on loopback:
/// `$KUBE_TESTSERVER`, then `kube-testserver` on `PATH`, then
/// `<shared>/tools/kubernetes/kube-testserver`.
pub fn kube_testserver() -> Option<PathBuf> {
    settle(find_executable(&Env::process(), &KUBE_TESTSERVER))
}

/// Whether this run is CI's (`CI=true` or `CI=1`): missing shared data is then a failure.
pub fn ci() -> bool {
    is_ci(&Env::process())
}

/// Skips (part of) the running test for a reason no CI run is required to meet (a kernel
/// feature, a privilege): writes the `SKIP` line like the locators do and never panics.
pub fn skip(reason: &str) {
    emit(&format!("SKIP {}: {reason}", test_context()));
}

/// Skips for something CI must have: like [`skip`] outside CI, a panic with `reason` under
/// `CI=true`. Returns so the caller can `return` after it.
pub fn skip_or_fail_in_ci(reason: &str) {
    let context = test_context();
    if ci() {
        panic!("{context}: {reason} (required because CI=true)");
    }
    emit(&format!("SKIP {context}: {reason}"));
}

/// What a locator reads from the process: environment variables and the workspace's place.
/// Tests build one from a map instead of changing the real environment.
pub struct Env<'a> {
    var: &'a dyn Fn(&str) -> Option<OsString>,
    workspace: PathBuf,
}

impl<'a> Env<'a> {
    fn process() -> Env<'static> {
        Env {
            var: &|name| std::env::var_os(name),
            workspace: workspace_root(),
        }
    }

    /// A set variable with a non-empty value (an empty one counts as unset, as shells do for
    /// `X= cargo test`).
    fn get(&self, name: &str) -> Option<OsString> {
        (self.var)(name).filter(|v| !v.is_empty())
    }
}

/// Why a locator found nothing: what it looked for, every place it looked, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    what: String,
    looked_in: Vec<String>,
    hint: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} not found (looked in {}); {} to run it",
            self.what,
            self.looked_in.join(", "),
            self.hint
        )
    }
}

/// An executable a test may need, and where the shared folder holds it.
struct Tool {
    what: &'static str,
    var: &'static str,
    file_name: &'static str,
    shared_rel: &'static str,
}

const TOXIPROXY_SERVER: Tool = Tool {
    what: "the Toxiproxy server (toxiproxy-server)",
    var: "TOXIPROXY_SERVER",
    file_name: "toxiproxy-server",
    shared_rel: "tools/toxiproxy/toxiproxy-server",
};

const KUBE_APISERVER: Tool = Tool {
    what: "the Kubernetes API server (kube-apiserver)",
    var: "KUBE_APISERVER",
    file_name: "kube-apiserver",
    shared_rel: "tools/kubernetes/kube-apiserver",
};

const KUBE_TESTSERVER: Tool = Tool {
    what: "the kube-testserver script (etcd + kube-apiserver)",
    var: "KUBE_TESTSERVER",
    file_name: "kube-testserver",
    shared_rel: "tools/kubernetes/kube-testserver",
};

fn is_ci(env: &Env) -> bool {
    env.get("CI")
        .and_then(|v| v.into_string().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `<workspace>/../shared`, written without the `..` when the workspace has a parent.
fn default_shared_root(workspace: &Path) -> PathBuf {
    match workspace.parent() {
        Some(parent) => parent.join("shared"),
        None => workspace.join("../shared"),
    }
}

fn find_shared_root(env: &Env) -> Result<PathBuf, Missing> {
    let beside = default_shared_root(&env.workspace);
    let hint = format!(
        "set {SHARED_DIR_VAR} to the shared folder or place it at {}",
        beside.display()
    );
    if let Some(dir) = env.get(SHARED_DIR_VAR) {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return Ok(dir);
        }
        return Err(Missing {
            what: "the shared folder".into(),
            looked_in: vec![format!("{SHARED_DIR_VAR}={} (not a folder)", dir.display())],
            hint,
        });
    }
    if beside.is_dir() {
        return Ok(beside);
    }
    Err(Missing {
        what: "the shared folder".into(),
        looked_in: vec![
            format!("{SHARED_DIR_VAR} (unset)"),
            beside.display().to_string(),
        ],
        hint,
    })
}

fn find_shared_dir(env: &Env, rel: &str) -> Result<PathBuf, Missing> {
    let what = format!("shared {rel}");
    let root = find_shared_root(env).map_err(|missing| Missing {
        what: what.clone(),
        ..missing
    })?;
    let path = root.join(rel);
    if path.exists() {
        return Ok(path);
    }
    Err(Missing {
        what,
        looked_in: vec![path.display().to_string()],
        hint: format!(
            "set {SHARED_DIR_VAR} to a shared folder holding {rel} or place it at {}",
            path.display()
        ),
    })
}

fn find_executable(env: &Env, tool: &Tool) -> Result<PathBuf, Missing> {
    if let Some(path) = env.get(tool.var) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return Ok(path);
        }
        // A variable pointing nowhere is a mistake to report, not a reason to take another copy.
        return Err(Missing {
            what: tool.what.into(),
            looked_in: vec![format!(
                "{}={} (not an executable file)",
                tool.var,
                path.display()
            )],
            hint: format!("point {} at the executable or unset it", tool.var),
        });
    }
    let mut looked_in = vec![format!("{} (unset)", tool.var), "PATH".to_string()];
    if let Some(paths) = env.get("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(tool.file_name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    let in_shared = match find_shared_root(env) {
        Ok(root) => root.join(tool.shared_rel),
        Err(_) => default_shared_root(&env.workspace).join(tool.shared_rel),
    };
    if is_executable(&in_shared) {
        return Ok(in_shared);
    }
    looked_in.push(in_shared.display().to_string());
    Err(Missing {
        what: tool.what.into(),
        looked_in,
        hint: format!(
            "set {} or place {} on PATH or at {}",
            tool.var,
            tool.file_name,
            in_shared.display()
        ),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a test does with a locator's result.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Found(PathBuf),
    /// The `SKIP …` line to write.
    Skip(String),
    /// The panic message.
    Fail(String),
}

fn decide(found: Result<PathBuf, Missing>, ci: bool, context: &str) -> Outcome {
    match found {
        Ok(path) => Outcome::Found(path),
        Err(missing) if ci => {
            Outcome::Fail(format!("{context}: {missing} (required because CI=true)"))
        }
        Err(missing) => Outcome::Skip(format!("SKIP {context}: {missing}")),
    }
}

fn settle(found: Result<PathBuf, Missing>) -> Option<PathBuf> {
    match decide(found, ci(), &test_context()) {
        Outcome::Found(path) => Some(path),
        Outcome::Skip(line) => {
            emit(&line);
            None
        }
        Outcome::Fail(message) => panic!("{message}"),
    }
}

/// Writes a skip line where a user sees it (see the crate's documentation).
fn emit(line: &str) {
    let log = std::env::var_os(SKIP_LOG_VAR).filter(|v| !v.is_empty());
    // Straight to the file descriptor: libtest's capture only catches the print macros.
    emit_to(
        line,
        &mut std::io::stderr().lock(),
        log.as_deref().map(Path::new),
    );
}

fn emit_to(line: &str, stderr: &mut dyn Write, log: Option<&Path>) {
    let _ = writeln!(stderr, "{line}");
    if let Some(log) = log {
        // One write of one line in append mode: lines from parallel tests and test binaries
        // do not interleave.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            let _ = writeln!(
                stderr,
                "testkit: cannot append to {SKIP_LOG_VAR}={}: {e}",
                log.display()
            );
        }
    }
}

/// `<binary>::<test>`: the test binary's name without cargo's hash, and the running test's
/// name (libtest's name for the test's thread).
fn test_context() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| strip_cargo_hash(&stem).to_string());
    let thread = std::thread::current();
    context_of(binary.as_deref(), thread.name())
}

fn context_of(binary: Option<&str>, thread: Option<&str>) -> String {
    let test = thread.filter(|name| *name != "main");
    match (binary, test) {
        // A binary whose tests sit in a module of its own name (`hub::api_errors::…`).
        (Some(binary), Some(test)) if test.starts_with(&format!("{binary}::")) => test.to_string(),
        (Some(binary), Some(test)) => format!("{binary}::{test}"),
        (Some(binary), None) => binary.to_string(),
        (None, Some(test)) => test.to_string(),
        (None, None) => "test".to_string(),
    }
}

/// `hub-0123456789abcdef` → `hub`.
fn strip_cargo_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    /// An environment made of `vars` and a workspace at `<root>/ws`.
    fn with_env<T>(root: &Path, vars: &[(&str, &Path)], f: impl FnOnce(&Env) -> T) -> T {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        let env = Env {
            var: &lookup,
            workspace: root.join("ws"),
        };
        f(&env)
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chaoshub-testkit-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        dir
    }

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn shared_root_is_the_folder_beside_the_workspace() {
        let root = tempdir("beside");
        let missing = with_env(&root, &[], find_shared_root).unwrap_err();
        let text = missing.to_string();
        assert!(text
            .starts_with("the shared folder not found (looked in CHAOSHUB_SHARED_DIR (unset), "));
        assert!(
            text.contains(&root.join("shared").display().to_string()),
            "{text}"
        );
        assert!(text.ends_with("to run it"), "{text}");

        std::fs::create_dir(root.join("shared")).unwrap();
        let found = with_env(&root, &[], find_shared_root).unwrap();
        assert_eq!(found, root.join("shared"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_shared_dir_variable_wins_and_a_wrong_one_is_reported() {
        let root = tempdir("var");
        std::fs::create_dir(root.join("shared")).unwrap();
        std::fs::create_dir(root.join("elsewhere")).unwrap();
        let elsewhere = root.join("elsewhere");
        let found = with_env(&root, &[(SHARED_DIR_VAR, &elsewhere)], find_shared_root).unwrap();
        assert_eq!(found, elsewhere);

        // Set to an empty value: as if unset.
        let found = with_env(&root, &[(SHARED_DIR_VAR, Path::new(""))], find_shared_root);
        assert_eq!(found.unwrap(), root.join("shared"));

        // Set to nothing that exists: reported, not replaced by the folder beside.
        let nowhere = root.join("nowhere");
        let missing = with_env(&root, &[(SHARED_DIR_VAR, &nowhere)], find_shared_root).unwrap_err();
        assert_eq!(
            missing.looked_in,
            vec![format!(
                "CHAOSHUB_SHARED_DIR={} (not a folder)",
                nowhere.display()
            )]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn shared_dir_names_the_path_it_wanted() {
        let root = tempdir("rel");
        let rel = "reference/chaos-mesh/examples";
        let missing = with_env(&root, &[], |env| find_shared_dir(env, rel)).unwrap_err();
        assert_eq!(missing.what, format!("shared {rel}"));

        std::fs::create_dir_all(root.join("shared")).unwrap();
        let missing = with_env(&root, &[], |env| find_shared_dir(env, rel)).unwrap_err();
        assert_eq!(
            missing.looked_in,
            vec![root.join("shared").join(rel).display().to_string()]
        );

        std::fs::create_dir_all(root.join("shared").join(rel)).unwrap();
        let found = with_env(&root, &[], |env| find_shared_dir(env, rel)).unwrap();
        assert_eq!(found, root.join("shared").join(rel));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn executables_come_from_the_variable_then_path_then_shared() {
        let root = tempdir("exe");
        let in_shared = root.join("shared/tools/toxiproxy/toxiproxy-server");
        let on_path = root.join("bin/toxiproxy-server");
        let by_var = root.join("custom/toxy");
        let bin = root.join("bin");
        let path_var = std::env::join_paths([root.join("empty"), bin.clone()]).unwrap();
        let path_var = PathBuf::from(path_var);

        let missing = with_env(&root, &[("PATH", &path_var)], |env| {
            find_executable(env, &TOXIPROXY_SERVER)
        })
        .unwrap_err();
        assert_eq!(
            missing.looked_in,
            vec![
                "TOXIPROXY_SERVER (unset)".to_string(),
                "PATH".to_string(),
                in_shared.display().to_string()
            ]
        );
        assert!(missing
            .hint
            .starts_with("set TOXIPROXY_SERVER or place toxiproxy-server on PATH"));

        executable(&in_shared);
        let found = with_env(&root, &[("PATH", &path_var)], |env| {
            find_executable(env, &TOXIPROXY_SERVER)
        });
        assert_eq!(found.unwrap(), in_shared);

        executable(&on_path);
        let found = with_env(&root, &[("PATH", &path_var)], |env| {
            find_executable(env, &TOXIPROXY_SERVER)
        });
        assert_eq!(found.unwrap(), on_path);

        executable(&by_var);
        let found = with_env(
            &root,
            &[("PATH", &path_var), ("TOXIPROXY_SERVER", &by_var)],
            |env| find_executable(env, &TOXIPROXY_SERVER),
        );
        assert_eq!(found.unwrap(), by_var);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_variable_naming_no_executable_is_reported_not_bypassed() {
        let root = tempdir("badvar");
        executable(&root.join("shared/tools/kubernetes/kube-apiserver"));
        let not_executable = root.join("kube-apiserver.txt");
        std::fs::write(&not_executable, "").unwrap();
        for bad in [not_executable.clone(), root.join("absent")] {
            let missing = with_env(&root, &[("KUBE_APISERVER", &bad)], |env| {
                find_executable(env, &KUBE_APISERVER)
            })
            .unwrap_err();
            assert_eq!(
                missing.looked_in,
                vec![format!(
                    "KUBE_APISERVER={} (not an executable file)",
                    bad.display()
                )]
            );
        }
        // The shared folder named by CHAOSHUB_SHARED_DIR is where tools are looked for too.
        let other = root.join("other");
        executable(&other.join("tools/kubernetes/kube-testserver"));
        let found = with_env(&root, &[(SHARED_DIR_VAR, &other)], |env| {
            find_executable(env, &KUBE_TESTSERVER)
        });
        assert_eq!(
            found.unwrap(),
            other.join("tools/kubernetes/kube-testserver")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ci_turns_a_skip_into_a_failure_with_the_same_reason() {
        let root = tempdir("ci");
        for (value, ci) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("", false),
        ] {
            let got = with_env(&root, &[("CI", Path::new(value))], is_ci);
            assert_eq!(got, ci, "CI={value:?}");
        }
        assert!(!with_env(&root, &[], is_ci));

        let missing = with_env(&root, &[], find_shared_root);
        let reason = missing.clone().unwrap_err().to_string();
        let Outcome::Skip(line) = decide(missing.clone(), false, "hub::t") else {
            panic!("expected a skip")
        };
        assert_eq!(line, format!("SKIP hub::t: {reason}"));
        let Outcome::Fail(message) = decide(missing, true, "hub::t") else {
            panic!("expected a failure")
        };
        assert_eq!(
            message,
            format!("hub::t: {reason} (required because CI=true)")
        );

        let found = decide(Ok(root.clone()), true, "hub::t");
        assert_eq!(found, Outcome::Found(root.clone()));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_context_is_the_binary_and_the_test() {
        assert_eq!(strip_cargo_hash("hub-0123456789abcdef"), "hub");
        assert_eq!(strip_cargo_hash("chaos-agent"), "chaos-agent");
        assert_eq!(strip_cargo_hash("x-0123"), "x-0123");
        assert_eq!(context_of(Some("hub"), Some("hub::a::b")), "hub::a::b");
        assert_eq!(context_of(Some("schema"), Some("a::b")), "schema::a::b");
        assert_eq!(context_of(Some("chaoshub"), Some("main")), "chaoshub");
        assert_eq!(context_of(None, None), "test");
        let context = test_context();
        assert!(
            context.ends_with("tests::the_context_is_the_binary_and_the_test"),
            "{context}"
        );
        assert!(context.starts_with("chaoshub_testkit::"), "{context}");
    }

    #[test]
    fn skip_lines_are_appended_to_the_log() {
        let root = tempdir("log");
        let log = root.join("skips.log");
        let mut stderr = Vec::new();
        emit_to("SKIP a: first", &mut stderr, Some(&log));
        emit_to("SKIP b: second", &mut stderr, Some(&log));
        assert_eq!(
            String::from_utf8(stderr).unwrap(),
            "SKIP a: first\nSKIP b: second\n"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "SKIP a: first\nSKIP b: second\n"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_fixtures_are_in_the_workspace() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        let files = manifest_files(&fixtures_dir());
        assert!(files.iter().any(|(p, _)| p.ends_with("networkchaos.yaml")));
        assert!(files.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        assert!(files.iter().all(|(p, _)| p.extension().unwrap() == "yaml"));
    }
}
