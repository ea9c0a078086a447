//! Environment status: what each environment's adapter last reported about its far side
//! (`Adapter::environment_status`: reachability, versions, what is missing), shown as the
//! environment's `status` in `GET /api/v1/environments`. A check runs in the background when
//! the environment is registered, when the hub starts, and when a read finds the status older
//! than [`STATUS_MAX_AGE`] (the read answers with the status it has). Kept in memory only: it
//! describes the far side as it is now, not the registration, and a restarted hub checks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaoshub_adapters::{Adapter, AdapterError, Environment};
use chaoshub_schema::api::EnvironmentStatus;

/// How old a status may be before a read starts a new check.
pub const STATUS_MAX_AGE: Duration = Duration::from_secs(60);

/// How long one check may take before the environment is shown unreachable.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Entry {
    status: Option<EnvironmentStatus>,
    /// Bumped by every check started: only the newest check's outcome is kept.
    generation: u64,
    checking: bool,
    checked: Option<Instant>,
}

/// The statuses of every environment, by name.
#[derive(Default)]
pub struct EnvironmentStatuses {
    by_env: Arc<Mutex<HashMap<String, Entry>>>,
}

impl EnvironmentStatuses {
    /// Starts a check of `env` in the background (on the current runtime; without one, none is
    /// started). `settings_changed`: the environment was (re-)registered, so the status it had
    /// describes other settings; it is dropped, and a check under way is superseded.
    pub fn refresh(&self, adapter: Arc<dyn Adapter>, env: Environment, settings_changed: bool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let generation = {
            let mut by_env = lock(&self.by_env);
            let entry = by_env.entry(env.name.clone()).or_default();
            if entry.checking && !settings_changed {
                return;
            }
            if settings_changed {
                entry.status = None;
            }
            entry.generation += 1;
            entry.checking = true;
            entry.generation
        };
        let by_env = Arc::clone(&self.by_env);
        runtime.spawn(async move {
            let outcome =
                tokio::time::timeout(CHECK_TIMEOUT, adapter.environment_status(&env)).await;
            let status = match outcome {
                Ok(Ok(None)) => None,
                Ok(Ok(Some(report))) => {
                    if !report.problems.is_empty() {
                        tracing::warn!(environment = %env.name, problems = %report.problems.join("; "), "the environment check found problems");
                    }
                    Some(EnvironmentStatus {
                        reachable: true,
                        checked_at: crate::time::now_rfc3339(),
                        problems: report.problems,
                        details: report.details,
                    })
                }
                Ok(Err(error)) => Some(unreachable(&env, &error.to_string())),
                Err(_) => Some(unreachable(
                    &env,
                    &AdapterError::Unreachable {
                        environment: env.name.clone(),
                        endpoint: env.spec.endpoint.clone().unwrap_or_default(),
                        message: format!("no answer to its check within {} s", CHECK_TIMEOUT.as_secs()),
                    }
                    .to_string(),
                )),
            };
            let mut by_env = lock(&by_env);
            if let Some(entry) = by_env
                .get_mut(&env.name)
                .filter(|e| e.generation == generation)
            {
                entry.status = status;
                entry.checking = false;
                entry.checked = Some(Instant::now());
            }
        });
    }

    /// The status of `env` as last checked; starts a new check in the background when there is
    /// none or it is older than [`STATUS_MAX_AGE`] and none is under way.
    pub fn current(
        &self,
        adapter: Arc<dyn Adapter>,
        env: Environment,
    ) -> Option<EnvironmentStatus> {
        let (status, stale) = {
            let by_env = lock(&self.by_env);
            match by_env.get(&env.name) {
                Some(entry) => (
                    entry.status.clone(),
                    !entry.checking && entry.checked.is_none_or(|t| t.elapsed() > STATUS_MAX_AGE),
                ),
                None => (None, true),
            }
        };
        if stale {
            self.refresh(adapter, env, false);
        }
        status
    }

    /// Forgets a deleted environment (a check under way is dropped when it ends).
    pub fn forget(&self, name: &str) {
        lock(&self.by_env).remove(name);
    }
}

fn unreachable(env: &Environment, error: &str) -> EnvironmentStatus {
    tracing::warn!(environment = %env.name, %error, "the environment check failed");
    EnvironmentStatus {
        reachable: false,
        checked_at: crate::time::now_rfc3339(),
        problems: vec![error.to_string()],
        details: Default::default(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chaoshub_adapters::{EnvironmentReport, FaultRequest, Injection, InjectionState};
    use chaoshub_schema::{Target, ValidationErrors};
    use serde_json::{json, Value};

    /// Answers its check after `delay` with `version`, or fails as unreachable.
    struct Checked {
        delay: Duration,
        version: Option<&'static str>,
    }

    #[async_trait]
    impl Adapter for Checked {
        fn adapter_type(&self) -> &'static str {
            "checked"
        }
        fn description(&self) -> &'static str {
            "a check that takes its time"
        }
        fn capabilities(&self) -> Vec<chaoshub_schema::api::Capability> {
            Vec::new()
        }
        fn validate_environment(&self, _: &Environment) -> Result<(), ValidationErrors> {
            Ok(())
        }
        async fn environment_status(
            &self,
            env: &Environment,
        ) -> Result<Option<EnvironmentReport>, AdapterError> {
            tokio::time::sleep(self.delay).await;
            match self.version {
                Some(v) => Ok(Some(EnvironmentReport {
                    details: [("version".to_string(), json!(v))].into(),
                    problems: Vec::new(),
                })),
                None => Err(AdapterError::Unreachable {
                    environment: env.name.clone(),
                    endpoint: "http://192.0.2.1".into(),
                    message: "connection refused".into(),
                }),
            }
        }
        async fn discover(&self, _: &Environment) -> Result<Vec<Target>, AdapterError> {
            Ok(Vec::new())
        }
        async fn inject(
            &self,
            _: &Environment,
            _: &FaultRequest,
            _: &Target,
        ) -> Result<Value, AdapterError> {
            Ok(Value::Null)
        }
        async fn status(
            &self,
            _: &Environment,
            _: &Injection,
        ) -> Result<InjectionState, AdapterError> {
            Ok(InjectionState::Absent)
        }
        async fn recover(&self, _: &Environment, _: &Injection) -> Result<(), AdapterError> {
            Ok(())
        }
    }

    fn env() -> Environment {
        serde_json::from_value::<chaoshub_schema::environment::EnvironmentSpec>(
            json!({"adapter": "checked"}),
        )
        .map(|spec| Environment {
            name: "e".into(),
            spec,
        })
        .unwrap()
    }

    async fn settled(statuses: &EnvironmentStatuses) -> Option<EnvironmentStatus> {
        for _ in 0..200 {
            if !lock(&statuses.by_env)["e"].checking {
                return lock(&statuses.by_env)["e"].status.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the check never ended");
    }

    #[tokio::test]
    async fn only_the_newest_check_is_kept_and_a_failure_is_unreachable() {
        let statuses = EnvironmentStatuses::default();
        let slow = Arc::new(Checked {
            delay: Duration::from_millis(300),
            version: Some("old"),
        });
        let fast = Arc::new(Checked {
            delay: Duration::ZERO,
            version: Some("new"),
        });
        statuses.refresh(slow, env(), true);
        // Re-registered while the first check runs: its outcome must not win.
        statuses.refresh(fast.clone(), env(), true);
        let status = settled(&statuses).await.unwrap();
        assert!(status.reachable);
        assert_eq!(status.details["version"], json!("new"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            statuses.current(fast, env()).unwrap().details["version"],
            json!("new")
        );

        let down = Arc::new(Checked {
            delay: Duration::ZERO,
            version: None,
        });
        statuses.refresh(down, env(), true);
        let status = settled(&statuses).await.unwrap();
        assert!(!status.reachable);
        assert!(
            status.problems[0].contains("connection refused"),
            "{status:?}"
        );
        statuses.forget("e");
        assert!(lock(&statuses.by_env).get("e").is_none());
    }
}
