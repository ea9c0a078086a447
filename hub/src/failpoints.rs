//! Named failpoints at the engine's step boundaries, for the crash test matrix.
//!
//! Off unless the environment variable `CHAOSHUB_FAILPOINTS` is set, as a comma-separated list
//! of `name=action`:
//!
//! - `abort`: the process sends itself SIGKILL at that point, exactly like `kill -9` from
//!   outside (no destructor, no shutdown code, no buffered write runs);
//! - `sleep(MS)`: the task waits that many milliseconds there (widens a race for a test);
//! - `off`: as if unlisted.
//!
//! A name not in [`POINTS`] or an action not above stops the hub at start with a message that
//! names it ([`check`]), so a typo cannot make a crash test pass by never crashing. A hub with
//! failpoints set logs a warning at start. When the variable is unset a failpoint costs one
//! atomic load.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that arms failpoints.
pub const ENV: &str = "CHAOSHUB_FAILPOINTS";

/// Every failpoint, in lifecycle order, with where it sits. The adapter calls are the engine's,
/// so each point holds for every adapter.
pub const POINTS: &[(&str, &str)] = &[
    (
        "engine.after_intent",
        "the Injecting intent is stored; no adapter has been called",
    ),
    (
        "engine.after_inject",
        "an adapter's inject returned; its outcome is not confirmed or stored",
    ),
    (
        "engine.before_running",
        "every target is confirmed in place; Running is not stored",
    ),
    (
        "engine.after_running",
        "Running is stored and the deadline armed",
    ),
    (
        "engine.before_recover",
        "Recovering is stored; no adapter recover has been called",
    ),
    (
        "engine.after_recover",
        "an adapter's recover returned; the removal is not stored",
    ),
    (
        "engine.before_finish",
        "every removal is stored; the terminal phase is not",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Sleep(u64),
}

fn armed() -> &'static HashMap<&'static str, Action> {
    static ARMED: OnceLock<HashMap<&'static str, Action>> = OnceLock::new();
    ARMED.get_or_init(|| match std::env::var(ENV) {
        // An invalid list is refused by `check` at start; here it arms nothing.
        Ok(text) => parse(&text).unwrap_or_default(),
        Err(_) => HashMap::new(),
    })
}

fn parse(text: &str) -> Result<HashMap<&'static str, Action>, String> {
    let mut out = HashMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, action) = item
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: {item:?} is not name=action"))?;
        let (name, action) = (name.trim(), action.trim());
        let Some(&(known, _)) = POINTS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = POINTS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{ENV}: no failpoint is named {name:?} (known: {})",
                names.join(", ")
            ));
        };
        let action = match action {
            "abort" => Some(Action::Abort),
            "off" => None,
            other => {
                let ms = other
                    .strip_prefix("sleep(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .and_then(|ms| ms.trim().parse::<u64>().ok())
                    .filter(|ms| *ms <= 600_000)
                    .ok_or_else(|| {
                        format!(
                            "{ENV}: {name}={other:?}: the action must be abort, off or \
                             sleep(MS) with MS at most 600000"
                        )
                    })?;
                Some(Action::Sleep(ms))
            }
        };
        if let Some(action) = action {
            out.insert(known, action);
        }
    }
    Ok(out)
}

/// Checks `CHAOSHUB_FAILPOINTS` at start: an error names the bad entry; with failpoints armed,
/// returns their list for the start-up warning.
pub fn check() -> Result<Vec<String>, String> {
    let Ok(text) = std::env::var(ENV) else {
        return Ok(Vec::new());
    };
    let mut armed: Vec<String> = parse(&text)?
        .into_iter()
        .map(|(name, action)| match action {
            Action::Abort => format!("{name}=abort"),
            Action::Sleep(ms) => format!("{name}=sleep({ms})"),
        })
        .collect();
    armed.sort();
    Ok(armed)
}

/// Passes the failpoint `name` (one of [`POINTS`]).
pub async fn hit(name: &'static str) {
    debug_assert!(
        POINTS.iter().any(|(n, _)| *n == name),
        "unknown failpoint {name}"
    );
    let points = armed();
    if points.is_empty() {
        return;
    }
    match points.get(name) {
        Some(Action::Abort) => {
            tracing::error!(failpoint = name, "failpoint: killing the hub (SIGKILL)");
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
            // SIGKILL cannot be caught; nothing after this runs.
            std::process::abort();
        }
        Some(Action::Sleep(ms)) => {
            tracing::warn!(failpoint = name, ms, "failpoint: sleeping");
            tokio::time::sleep(Duration::from_millis(*ms)).await;
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_mistakes_name_what_is_wrong() {
        let armed = parse("engine.after_intent=abort, engine.after_recover=sleep(250),").unwrap();
        assert_eq!(armed["engine.after_intent"], Action::Abort);
        assert_eq!(armed["engine.after_recover"], Action::Sleep(250));
        assert!(parse("engine.after_running=off").unwrap().is_empty());
        assert!(parse("").unwrap().is_empty());

        let typo = parse("engine.after_injct=abort").unwrap_err();
        assert!(typo.contains("\"engine.after_injct\"") && typo.contains("engine.after_inject"));
        let action = parse("engine.after_inject=crash").unwrap_err();
        assert!(action.contains("engine.after_inject=\"crash\"") && action.contains("sleep(MS)"));
        assert!(parse("engine.after_inject")
            .unwrap_err()
            .contains("name=action"));
        assert!(parse("engine.after_inject=sleep(9999999)").is_err());
    }

    #[test]
    fn every_failpoint_name_is_passed_somewhere_in_the_engine() {
        let engine = [include_str!("engine.rs"), include_str!("engine/verify.rs")].concat();
        for (name, _) in POINTS {
            assert!(
                engine.contains(&format!("failpoints::hit(\"{name}\")")),
                "failpoint {name} is listed but never passed"
            );
        }
    }
}
