//! Agents across replicas. An agent holds its stream to the engine leader only (followers turn
//! it away, naming the leader), so only the leader's registry knows the agents. The leader
//! publishes what it sees to the shared store ([`publish_loop`]): an entry when an agent
//! connects, leaves, changes health, labels, capabilities or fault count, and every
//! [`REFRESH`] regardless (the heartbeat time and the last usage sample), so a follower serves
//! `GET /api/v1/agents`, the console and target discovery for dry runs from the store, at most
//! [`PUBLISH_EVERY`] behind for a change and [`REFRESH`] behind for a heartbeat time. The same
//! loop ends the streams of agents an admin removed through a follower (their credential is
//! gone from the store), within a few seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaoshub_schema::api::AgentInfo;
use tokio::sync::watch;

use super::AgentRegistry;
use crate::leadership::Leadership;

/// How often the leader compares its registry with what it last published.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long an unchanged entry goes without being written again.
pub const REFRESH: Duration = Duration::from_secs(15);
/// Every this many rounds the leader also ends the streams of agents whose credential is gone
/// (an admin removed them through another replica, which holds no stream to end).
const REMOVALS_EVERY: u32 = 3;

/// An entry without what changes at every heartbeat: equal fingerprints mean nothing a reader
/// acts on has changed.
fn fingerprint(info: &AgentInfo) -> String {
    let mut stable = info.clone();
    stable.last_heartbeat = None;
    stable.usage = None;
    serde_json::to_string(&stable).unwrap_or_default()
}

/// What the leader last wrote, per (environment, name).
#[derive(Default)]
struct Published {
    entries: HashMap<(String, String), (String, Instant)>,
}

impl Published {
    /// The entries to write and the keys to delete for `now_seen`; `stored` (the directory as
    /// the store has it) is given on the first round of a new leadership, whose deletions must
    /// also cover what an earlier leader published.
    fn diff(
        &mut self,
        now_seen: Vec<AgentInfo>,
        stored: Option<Vec<(String, String)>>,
        at: Instant,
    ) -> (Vec<AgentInfo>, Vec<(String, String)>) {
        let mut upsert = Vec::new();
        let mut seen = HashMap::new();
        for info in now_seen {
            let key = (info.environment.clone(), info.name.clone());
            let print = fingerprint(&info);
            let fresh = self
                .entries
                .get(&key)
                .is_some_and(|(p, when)| *p == print && at.duration_since(*when) < REFRESH);
            if !fresh {
                self.entries.insert(key.clone(), (print, at));
                upsert.push(info);
            }
            seen.insert(key, ());
        }
        let mut remove: Vec<(String, String)> = self
            .entries
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for key in &remove {
            self.entries.remove(key);
        }
        if let Some(stored) = stored {
            for key in stored {
                if !seen.contains_key(&key) && !remove.contains(&key) {
                    remove.push(key);
                }
            }
        }
        (upsert, remove)
    }
}

/// Publishes the leader's registry to the store while this replica leads (see the module doc).
/// Returns at shutdown; does nothing for a hub alone on its store.
pub async fn publish_loop(
    registry: Arc<AgentRegistry>,
    leadership: Arc<Leadership>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(store) = registry.store.clone() else {
        return;
    };
    if !leadership.shared() {
        return;
    }
    let mut published = Published::default();
    let mut leading = false;
    let mut round: u32 = 0;
    loop {
        round = round.wrapping_add(1);
        if leadership.is_leader() && round.is_multiple_of(REMOVALS_EVERY) {
            end_removed(&registry).await;
        }
        if leadership.is_leader() {
            let first = !leading;
            if first {
                published = Published::default();
            }
            let now_seen = registry.local_list(None);
            let store = Arc::clone(&store);
            let round = tokio::task::spawn_blocking(move || {
                let stored = if first {
                    Some(
                        store
                            .agent_directory(None)?
                            .into_iter()
                            .map(|a| (a.environment, a.name))
                            .collect(),
                    )
                } else {
                    None
                };
                let (upsert, remove) = published.diff(now_seen, stored, Instant::now());
                if !upsert.is_empty() || !remove.is_empty() {
                    store.put_agent_directory(&upsert, &remove)?;
                }
                Ok::<_, crate::store::StoreError>(published)
            })
            .await;
            match round {
                Ok(Ok(p)) => {
                    published = p;
                    leading = true;
                }
                Ok(Err(e)) => {
                    // Written again in full next round.
                    tracing::warn!(error = %e, "cannot publish the agent directory");
                    published = Published::default();
                    leading = false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "publishing the agent directory panicked");
                    published = Published::default();
                    leading = false;
                }
            }
        } else {
            leading = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(PUBLISH_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Ends the stream of every agent of this registry whose credential is no longer in the store.
async fn end_removed(registry: &Arc<AgentRegistry>) {
    let Some(store) = registry.store.clone() else {
        return;
    };
    let held = match tokio::task::spawn_blocking(move || store.agents_with_credentials()).await {
        Ok(Ok(Some(held))) => held,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read agent credentials to find removed agents");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "reading agent credentials panicked");
            return;
        }
    };
    for agent in registry.local_list(None) {
        let key = (agent.environment.clone(), agent.name.clone());
        if !held.contains(&key) && registry.remove(&key.0, &key.1) {
            tracing::info!(environment = %key.0, agent = %key.1, "agent removed through another replica: its stream is ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, health: &str) -> AgentInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "environment": "hosts", "labels": {}, "hostname": name,
            "addresses": [], "version": "1", "health": health, "connected": true,
            "activeFaults": 0, "capabilities": [], "mechanisms": {}
        }))
        .unwrap()
    }

    #[test]
    fn only_changes_deletions_and_stale_entries_are_written() {
        let mut p = Published::default();
        let t0 = Instant::now();
        let stored = vec![("hosts".to_string(), "gone".to_string())];
        let (up, rm) = p.diff(vec![agent("a", "healthy")], Some(stored), t0);
        assert_eq!(up.len(), 1);
        assert_eq!(rm, [("hosts".to_string(), "gone".to_string())]);

        // A heartbeat alone writes nothing until the refresh is due.
        let mut beat = agent("a", "healthy");
        beat.last_heartbeat = Some(chrono::Utc::now());
        let (up, rm) = p.diff(vec![beat.clone()], None, t0 + Duration::from_secs(1));
        assert!(up.is_empty() && rm.is_empty());
        let (up, _) = p.diff(vec![beat], None, t0 + REFRESH);
        assert_eq!(up.len(), 1, "refreshed");

        // A change of health is written at once; an agent gone is deleted.
        let (up, _) = p.diff(vec![agent("a", "unhealthy")], None, t0 + REFRESH);
        assert_eq!(up[0].health, "unhealthy");
        let (up, rm) = p.diff(Vec::new(), None, t0 + REFRESH);
        assert!(up.is_empty());
        assert_eq!(rm, [("hosts".to_string(), "a".to_string())]);
    }
}
