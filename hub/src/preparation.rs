//! Environment preparation: `Adapter::prepare` (the Docker adapter builds its helper image)
//! runs in the background when an environment is registered and when the hub starts. The
//! engine waits for a preparation under way before a fault's clock starts, so the first fault
//! on a fresh far side is held for its whole duration instead of losing the build's seconds —
//! or, as with a Docker watchdog armed after its own deadline, being undone before it is read
//! back. The wait is visible: the experiment stays `Pending` with a reason saying what it
//! waits for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoshub_adapters::{Adapter, Environment};
use tokio::sync::watch;

/// Where one environment's preparation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preparation {
    Running,
    Done,
    /// It failed; faults go ahead and the adapter does the work itself (or says why not).
    Failed(String),
}

/// How long an injection waits for a preparation before failing with the reason.
pub const PREPARATION_WAIT: Duration = Duration::from_secs(300);

/// The preparations of every environment, by name.
#[derive(Default)]
pub struct Preparations {
    by_env: Mutex<HashMap<String, watch::Receiver<Preparation>>>,
}

impl Preparations {
    /// Starts preparing `env` in the background (on the current runtime; without one, nothing
    /// is started). A preparation of the same environment already running is kept.
    pub fn start(&self, adapter: Arc<dyn Adapter>, env: Environment) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tx, rx) = watch::channel(Preparation::Running);
        {
            let mut by_env = self.by_env.lock().unwrap_or_else(|p| p.into_inner());
            if by_env
                .get(&env.name)
                .is_some_and(|r| *r.borrow() == Preparation::Running)
            {
                return;
            }
            by_env.insert(env.name.clone(), rx);
        }
        runtime.spawn(async move {
            let outcome = match adapter.prepare(&env).await {
                Ok(()) => Preparation::Done,
                Err(error) => {
                    tracing::warn!(environment = %env.name, %error, "preparing the environment failed; its first fault will try again");
                    Preparation::Failed(error.to_string())
                }
            };
            let _ = tx.send(outcome);
        });
    }

    /// The preparation of `env` if one is still running.
    pub fn running(&self, env: &str) -> Option<watch::Receiver<Preparation>> {
        let by_env = self.by_env.lock().unwrap_or_else(|p| p.into_inner());
        by_env
            .get(env)
            .filter(|r| *r.borrow() == Preparation::Running)
            .cloned()
    }

    /// Waits until the preparation of `env` (if any is running) has ended, at most `limit`.
    /// Returns whether it ended.
    pub async fn wait(&self, env: &str, limit: Duration) -> bool {
        let Some(mut rx) = self.running(env) else {
            return true;
        };
        let ended = tokio::time::timeout(limit, rx.wait_for(|p| *p != Preparation::Running))
            .await
            .is_ok();
        ended
    }
}
