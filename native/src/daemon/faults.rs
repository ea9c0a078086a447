//! The agent's fault table: every fault in force, its lease, its live worker, and the journal
//! that keeps the host clean across crashes. All host changes go through here, whoever asked
//! (the hub over gRPC, the local REST API, or the CLI in foreground mode).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chaoshub_schema::agent::{AgentFault, AgentFaultStatus, KernelMechanisms};
use chrono::{DateTime, Utc};

use crate::inject::{InjectError, Injector, Plan, Worker};
use crate::journal::{Journal, JournalEntry, JournalError};

/// Errors of fault operations, with a machine-readable kind for the hub.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Inject(#[from] InjectError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("no fault with id {0:?}")]
    NotFound(String),
    #[error("fault {id:?} already exists with a different definition")]
    Conflict { id: String },
    #[error("no injector handles {0}")]
    NoInjector(String),
    #[error("fault id: {0}")]
    BadId(String),
    #[error("the lease of {id:?} ends in the past ({lease_until})")]
    LeaseInPast {
        id: String,
        lease_until: DateTime<Utc>,
    },
}

/// The longest fault id accepted (the hub's are `<experiment uid>-<n>`, under 64 bytes).
pub const MAX_FAULT_ID_BYTES: usize = 512;

/// A fault id is 1 to [`MAX_FAULT_ID_BYTES`] bytes of printable characters: it is kept in
/// memory, in the journal and in every status answer for the fault's whole life.
fn check_fault_id(id: &str) -> Result<(), FaultError> {
    if id.is_empty() {
        return Err(FaultError::BadId("must not be empty".into()));
    }
    if id.len() > MAX_FAULT_ID_BYTES {
        return Err(FaultError::BadId(format!(
            "{} bytes long, at most {MAX_FAULT_ID_BYTES} are allowed",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(FaultError::BadId(
            "must not contain control characters".into(),
        ));
    }
    Ok(())
}

impl FaultError {
    /// `unsupported`, `invalid`, `not-found`, `conflict`, `failed` — sent to the hub.
    pub fn kind(&self) -> &'static str {
        match self {
            FaultError::Inject(InjectError::Unsupported { .. }) | FaultError::NoInjector(_) => {
                "unsupported"
            }
            FaultError::Inject(InjectError::Invalid(_))
            | FaultError::LeaseInPast { .. }
            | FaultError::BadId(_) => "invalid",
            FaultError::NotFound(_) => "not-found",
            FaultError::Conflict { .. } => "conflict",
            _ => "failed",
        }
    }
}

struct ActiveFault {
    fault: AgentFault,
    plan: Plan,
    injector: usize,
    worker: Option<Box<dyn Worker>>,
    applied_at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
}

/// What a removal at start or at lease end did, for logs and the CLI.
#[derive(Debug)]
pub struct Removal {
    pub id: String,
    pub result: Result<(), String>,
}

/// One fault id's place in the table. `op` serialises the operations on this id (inject,
/// recover, renew, status), and may be held for as long as an apply takes — a 60 s
/// `user_defined` command, a disk fill; `state` is only ever held for a moment, so listing,
/// heartbeats and the lease loop never wait for an apply.
#[derive(Default)]
struct Slot {
    op: Mutex<()>,
    state: Mutex<Option<ActiveFault>>,
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, Option<ActiveFault>> {
        relock(&self.state)
    }
}

/// A panic inside an injector must not wedge every later removal: what these locks guard is
/// consistent between statements, so a poisoned lock is safe to reuse.
fn relock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fault table. Operations on one fault id are serialised (an inject and a recover of the
/// same id can never interleave); operations on different ids run in parallel, so a slow apply
/// never delays the renewal, status or removal of another fault.
pub struct FaultTable {
    injectors: Vec<Box<dyn Injector>>,
    journal: Journal,
    mechanisms: KernelMechanisms,
    /// Held only to find or add a slot, never during an operation.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Wakes the lease loop when a lease changes.
    pub lease_changed: Arc<tokio::sync::Notify>,
}

impl FaultTable {
    pub fn new(
        injectors: Vec<Box<dyn Injector>>,
        journal: Journal,
        mechanisms: KernelMechanisms,
    ) -> Self {
        FaultTable {
            injectors,
            journal,
            mechanisms,
            slots: Mutex::new(HashMap::new()),
            lease_changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn mechanisms(&self) -> &KernelMechanisms {
        &self.mechanisms
    }

    /// Runs `f` holding the operation lock of `id`'s slot (made if `create`, else `None` when
    /// there is none). A slot left without a fault is dropped from the table before the lock is
    /// released. With `wait` false, a slot busy with another operation is skipped (`None`).
    fn with_slot<R>(
        &self,
        id: &str,
        create: bool,
        wait: bool,
        f: impl FnOnce(&Slot) -> R,
    ) -> Option<R> {
        loop {
            let slot = {
                let mut slots = relock(&self.slots);
                match slots.get(id) {
                    Some(slot) => Arc::clone(slot),
                    None if create => Arc::clone(slots.entry(id.to_string()).or_default()),
                    None => return None,
                }
            };
            let _op = if wait {
                relock(&slot.op)
            } else {
                match slot.op.try_lock() {
                    Ok(g) => g,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => return None,
                }
            };
            // The slot may have been emptied and dropped while we waited for it: start over
            // with whatever the table holds now.
            let current = relock(&self.slots)
                .get(id)
                .is_some_and(|s| Arc::ptr_eq(s, &slot));
            if !current {
                if create || wait {
                    continue;
                }
                return None;
            }
            let result = f(&slot);
            if slot.state().is_none() {
                let mut slots = relock(&self.slots);
                if slots.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    slots.remove(id);
                }
            }
            return Some(result);
        }
    }

    /// Every slot now (cloned out, so no table lock is held while each is looked at).
    fn all_slots(&self) -> Vec<(String, Arc<Slot>)> {
        relock(&self.slots)
            .iter()
            .map(|(id, s)| (id.clone(), Arc::clone(s)))
            .collect()
    }

    /// Removes whatever the journal says is still applied (a previous process died with faults
    /// in force). Called once at start, before anything else.
    pub fn replay_journal(&self) -> Result<Vec<Removal>, FaultError> {
        let mut removals = Vec::new();
        for entry in self.journal.entries()? {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::error!(error = %e, "journal entry cannot be read; left in place for inspection");
                    removals.push(Removal {
                        id: String::new(),
                        result: Err(e.to_string()),
                    });
                    continue;
                }
            };
            let result = match self.injector_for(&entry.fault) {
                Some(idx) => self.injectors[idx]
                    .remove(&entry.plan)
                    .map_err(|e| e.to_string()),
                None => Err(format!("no injector handles {}", entry.fault.label())),
            };
            match &result {
                Ok(()) => {
                    tracing::info!(id = %entry.id, fault = %entry.fault.label(), "removed a fault left by a previous run");
                    self.journal.forget(&entry.id)?;
                }
                Err(e) => {
                    tracing::error!(id = %entry.id, error = %e, "could not remove a fault left by a previous run; kept in the journal")
                }
            }
            removals.push(Removal {
                id: entry.id,
                result,
            });
        }
        Ok(removals)
    }

    fn injector_for(&self, fault: &AgentFault) -> Option<usize> {
        self.injectors.iter().position(|i| i.handles(fault))
    }

    /// Applies a fault until `lease_until`. Idempotent: the same id with the same fault renews
    /// the lease and returns its status.
    pub fn inject(
        &self,
        id: &str,
        fault: AgentFault,
        lease_until: DateTime<Utc>,
    ) -> Result<AgentFaultStatus, FaultError> {
        check_fault_id(id)?;
        let now = Utc::now();
        if lease_until <= now {
            return Err(FaultError::LeaseInPast {
                id: id.to_string(),
                lease_until,
            });
        }
        let result = self
            .with_slot(id, true, true, |slot| {
                self.inject_into(slot, id, fault, now, lease_until)
            })
            .expect("a created slot is always there");
        self.lease_changed.notify_one();
        result
    }

    /// `inject` with the slot's operation lock held.
    fn inject_into(
        &self,
        slot: &Slot,
        id: &str,
        fault: AgentFault,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<AgentFaultStatus, FaultError> {
        {
            let mut state = slot.state();
            if let Some(existing) = state.as_mut() {
                if existing.fault != fault {
                    return Err(FaultError::Conflict { id: id.to_string() });
                }
                existing.lease_until = lease_until;
                return Ok(self.describe(id, existing));
            }
        }
        let idx = self
            .injector_for(&fault)
            .ok_or_else(|| FaultError::NoInjector(fault.label()))?;
        let injector = &self.injectors[idx];
        let plan = injector.plan(id, &fault)?;
        let mut entry = JournalEntry {
            id: id.to_string(),
            fault: fault.clone(),
            plan: plan.clone(),
            applied_at: now,
            lease_until,
        };
        // The journal first: if we die between here and the end of `apply`, the next start
        // removes whatever part of the plan made it onto the host.
        self.journal.record(&entry)?;
        let applied = match injector.apply(&plan, &fault) {
            Ok(applied) => applied,
            Err(e) => {
                let _ = injector.remove(&plan);
                let _ = self.journal.forget(id);
                return Err(e.into());
            }
        };
        let mut plan = plan;
        if let Some(undo) = applied.undo_update {
            plan.undo = undo;
            entry.plan = plan.clone();
            if let Err(e) = self.journal.record(&entry) {
                if let Some(worker) = applied.worker {
                    worker.stop();
                }
                let _ = injector.remove(&plan);
                return Err(e.into());
            }
        }
        let mut worker = applied.worker;
        // Confirmed, not assumed: read the fault back before saying it is in place.
        let verified = injector.verify(&plan).and_then(|ok| {
            if ok && worker.as_ref().is_none_or(|w| w.is_alive()) {
                Ok(())
            } else {
                Err(InjectError::Failed(format!(
                    "{} was applied but could not be read back",
                    fault.label()
                )))
            }
        });
        if let Err(e) = verified {
            if let Some(w) = worker.take() {
                w.stop();
            }
            let _ = injector.remove(&plan);
            let _ = self.journal.forget(id);
            return Err(e.into());
        }
        tracing::info!(id, fault = %fault.label(), mechanism = %plan.mechanism, %lease_until, "fault applied");
        let active = ActiveFault {
            fault,
            plan,
            injector: idx,
            worker,
            applied_at: now,
            lease_until,
        };
        // The read-back above is the confirmation: report it as it is rather than reading the
        // host a second time.
        let status = Self::status_from(id, &active, Ok(true));
        *slot.state() = Some(active);
        Ok(status)
    }

    /// Removes a fault. Returns `NotFound` for an unknown id (the caller decides whether that is
    /// fine — the hub treats it as already recovered).
    pub fn recover(&self, id: &str) -> Result<(), FaultError> {
        self.with_slot(id, false, true, |slot| self.recover_in(slot, id))
            .unwrap_or_else(|| Err(FaultError::NotFound(id.to_string())))
    }

    /// `recover` with the slot's operation lock held.
    fn recover_in(&self, slot: &Slot, id: &str) -> Result<(), FaultError> {
        // Taken out while it is removed: it is not listed as in force meanwhile.
        let Some(mut active) = slot.state().take() else {
            return Err(FaultError::NotFound(id.to_string()));
        };
        if let Some(worker) = active.worker.take() {
            worker.stop();
        }
        if let Err(e) = self.injectors[active.injector].remove(&active.plan) {
            // Keep it in the table (and the journal) so a later attempt, the lease loop or the
            // next start tries again; report the failure now.
            tracing::error!(id, error = %e, "removing a fault failed; will retry");
            active.lease_until = Utc::now();
            *slot.state() = Some(active);
            return Err(e.into());
        }
        self.journal.forget(id)?;
        tracing::info!(id, fault = %active.fault.label(), "fault removed");
        Ok(())
    }

    /// Moves a lease (the hub renews open-ended faults).
    pub fn renew(
        &self,
        id: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<AgentFaultStatus, FaultError> {
        let result = self
            .with_slot(id, false, true, |slot| {
                let mut state = slot.state();
                let active = state
                    .as_mut()
                    .ok_or_else(|| FaultError::NotFound(id.to_string()))?;
                active.lease_until = lease_until;
                let entry = JournalEntry {
                    id: id.to_string(),
                    fault: active.fault.clone(),
                    plan: active.plan.clone(),
                    applied_at: active.applied_at,
                    lease_until,
                };
                drop(state);
                self.journal.record(&entry)?;
                let state = slot.state();
                let active = state
                    .as_ref()
                    .ok_or_else(|| FaultError::NotFound(id.to_string()))?;
                Ok(self.describe(id, active))
            })
            .unwrap_or_else(|| Err(FaultError::NotFound(id.to_string())));
        self.lease_changed.notify_one();
        result
    }

    /// The fault's status, read back from the host now.
    pub fn status(&self, id: &str) -> Result<AgentFaultStatus, FaultError> {
        self.with_slot(id, false, true, |slot| {
            let state = slot.state();
            let active = state
                .as_ref()
                .ok_or_else(|| FaultError::NotFound(id.to_string()))?;
            Ok(self.describe(id, active))
        })
        .unwrap_or_else(|| Err(FaultError::NotFound(id.to_string())))
    }

    fn describe(&self, id: &str, active: &ActiveFault) -> AgentFaultStatus {
        let verified = self.injectors[active.injector].verify(&active.plan);
        Self::status_from(id, active, verified)
    }

    /// The status of a fault given the outcome of reading it back from the host.
    fn status_from(
        id: &str,
        active: &ActiveFault,
        verified: Result<bool, InjectError>,
    ) -> AgentFaultStatus {
        let worker_alive = active.worker.as_ref().is_none_or(|w| w.is_alive());
        let (state, error) = match verified {
            Ok(true) if worker_alive => ("active", None),
            Ok(true) => (
                "failed",
                Some("the fault's worker stopped unexpectedly".to_string()),
            ),
            Ok(false) => (
                "failed",
                Some("the fault is no longer in place on the host".to_string()),
            ),
            Err(e) => ("failed", Some(e.to_string())),
        };
        AgentFaultStatus {
            id: id.to_string(),
            label: active.fault.label(),
            fault: active.fault.clone(),
            state: state.to_string(),
            mechanism: active.plan.mechanism.clone(),
            applied_at: active.applied_at,
            lease_until: active.lease_until,
            measured: active.worker.as_ref().and_then(|w| w.measured()),
            error,
        }
    }

    /// Every fault in force (one being applied or removed right now is not listed).
    pub fn list(&self) -> Vec<AgentFaultStatus> {
        let mut out: Vec<_> = self
            .all_slots()
            .into_iter()
            .filter_map(|(id, slot)| slot.state().as_ref().map(|a| self.describe(&id, a)))
            .collect();
        out.sort_by_key(|s| s.applied_at);
        out
    }

    /// Ids and labels of the faults in force, without reading them back (cheap; for metrics
    /// and heartbeats).
    pub fn summary(&self) -> Vec<(String, AgentFault, Option<f64>)> {
        self.all_slots()
            .into_iter()
            .filter_map(|(id, slot)| {
                slot.state().as_ref().map(|a| {
                    (
                        id.clone(),
                        a.fault.clone(),
                        a.worker.as_ref().and_then(|w| w.measured()),
                    )
                })
            })
            .collect()
    }

    /// The earliest lease end, for the lease loop's sleep.
    pub fn next_lease_end(&self) -> Option<DateTime<Utc>> {
        self.all_slots()
            .into_iter()
            .filter_map(|(_, slot)| slot.state().as_ref().map(|a| a.lease_until))
            .min()
    }

    /// The dead man's switch: removes every fault whose lease has ended. A fault busy with
    /// another operation (a renewal that may move its lease, a removal already under way) is
    /// left to the next round rather than waited for, so one slow fault never delays another's
    /// removal.
    pub fn expire(&self, now: DateTime<Utc>) -> Vec<Removal> {
        let due: Vec<String> = self
            .all_slots()
            .into_iter()
            .filter(|(_, slot)| slot.state().as_ref().is_some_and(|a| a.lease_until <= now))
            .map(|(id, _)| id)
            .collect();
        due.into_iter()
            .filter_map(|id| {
                self.with_slot(&id, false, false, |slot| {
                    // Renewed meanwhile: not due any more.
                    if slot.state().as_ref().is_none_or(|a| a.lease_until > now) {
                        return None;
                    }
                    tracing::info!(id = %id, "lease ended; removing the fault");
                    Some(self.recover_in(slot, &id).map_err(|e| e.to_string()))
                })
                .flatten()
                .map(|result| Removal { id, result })
            })
            .collect()
    }

    /// Removes everything (shutdown).
    pub fn recover_all(&self) -> Vec<Removal> {
        let ids: Vec<String> = self.all_slots().into_iter().map(|(id, _)| id).collect();
        // A fault still being applied is waited for, then removed; one whose apply failed
        // meanwhile is simply gone.
        ids.into_iter()
            .filter_map(|id| match self.recover(&id) {
                Err(FaultError::NotFound(_)) => None,
                result => Some(Removal {
                    id,
                    result: result.map_err(|e| e.to_string()),
                }),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.all_slots()
            .iter()
            .filter(|(_, slot)| slot.state().is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Longest sleep of the lease loop while a fault is held: leases are wall-clock instants and
/// the sleep is monotonic, so a step of the wall clock delays a removal by at most this.
const LEASE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the dead man's switch until `shutdown` fires: sleeps until the earliest lease end (at
/// most [`LEASE_RECHECK`]) and removes what is due. With no fault held it sleeps until a lease
/// changes (`lease_changed` is notified on every insert, extension and renewal), so an idle
/// agent never wakes up for it.
pub async fn lease_loop(table: Arc<FaultTable>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        // A lease changed between this read and the wait below is not missed: `notify_one`
        // stores a permit when nobody is waiting yet.
        let notified = table.lease_changed.clone();
        let next = table.next_lease_end();
        let wait = next.map(|end| {
            (end - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(LEASE_RECHECK)
        });
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = notified.notified() => {}
            _ = shutdown.changed() => return,
        }
        if table.next_lease_end().is_some_and(|end| end <= Utc::now()) {
            let t = table.clone();
            let _ = tokio::task::spawn_blocking(move || t.expire(Utc::now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::Applied;
    use chaoshub_schema::agent::UserDefinedFault;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake injector that records what is "on the host" in a shared set.
    #[derive(Clone, Default)]
    struct FakeHost {
        applied: Arc<Mutex<Vec<String>>>,
        fail_apply: Arc<AtomicUsize>,
        /// Applies of ids starting with `slow` begin (counted here) and take `SLOW_APPLY`.
        slow_started: Arc<AtomicUsize>,
    }

    const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(1500);

    impl Injector for FakeHost {
        fn handles(&self, fault: &AgentFault) -> bool {
            matches!(fault, AgentFault::UserDefined(_))
        }
        fn plan(&self, id: &str, _fault: &AgentFault) -> Result<Plan, InjectError> {
            Ok(Plan {
                id: id.to_string(),
                mechanism: "fake".into(),
                undo: serde_json::json!({ "marker": id }),
            })
        }
        fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
            if plan.id.starts_with("slow") {
                self.slow_started.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(SLOW_APPLY);
            }
            self.applied.lock().unwrap().push(plan.id.clone());
            if self.fail_apply.load(Ordering::SeqCst) > 0 {
                return Err(InjectError::Failed("boom".into()));
            }
            Ok(Applied::nothing_running())
        }
        fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
            Ok(self.applied.lock().unwrap().contains(&plan.id))
        }
        fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
            self.applied.lock().unwrap().retain(|p| p != &plan.id);
            Ok(())
        }
    }

    fn fault(cmd: &str) -> AgentFault {
        AgentFault::UserDefined(UserDefinedFault {
            attack_cmd: cmd.into(),
            recover_cmd: "true".into(),
        })
    }

    fn table(host: &FakeHost, dir: &std::path::Path) -> FaultTable {
        FaultTable::new(
            vec![Box::new(host.clone())],
            Journal::open(dir).unwrap(),
            KernelMechanisms::default(),
        )
    }

    #[test]
    fn fault_ids_are_bounded_and_printable_before_anything_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        let t = table(&host, dir.path());
        let lease = Utc::now() + chrono::Duration::seconds(30);
        for (id, says) in [
            (String::new(), "empty"),
            ("x".repeat(MAX_FAULT_ID_BYTES + 1), "at most 512"),
            ("a\nb".to_string(), "control characters"),
        ] {
            let err = t.inject(&id, fault("a"), lease).unwrap_err();
            assert_eq!(err.kind(), "invalid", "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
        assert!(host.applied.lock().unwrap().is_empty(), "nothing applied");
        let longest = "y".repeat(MAX_FAULT_ID_BYTES);
        assert_eq!(
            t.inject(&longest, fault("a"), lease).unwrap().state,
            "active"
        );
    }

    #[test]
    fn inject_is_journalled_confirmed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        let t = table(&host, dir.path());
        let lease = Utc::now() + chrono::Duration::seconds(30);
        let s = t.inject("f1", fault("a"), lease).unwrap();
        assert_eq!(s.state, "active");
        assert_eq!(s.mechanism, "fake");
        // Same id, same fault: a lease renewal, not a second application.
        t.inject("f1", fault("a"), lease + chrono::Duration::seconds(5))
            .unwrap();
        assert_eq!(host.applied.lock().unwrap().len(), 1);
        assert!(matches!(
            t.inject("f1", fault("other"), lease),
            Err(FaultError::Conflict { .. })
        ));
        assert_eq!(
            Journal::open(dir.path()).unwrap().entries().unwrap().len(),
            1
        );
        t.recover("f1").unwrap();
        assert!(host.applied.lock().unwrap().is_empty());
        assert!(Journal::open(dir.path())
            .unwrap()
            .entries()
            .unwrap()
            .is_empty());
        assert!(matches!(t.recover("f1"), Err(FaultError::NotFound(_))));
    }

    #[test]
    fn a_failed_apply_is_rolled_back_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        host.fail_apply.store(1, Ordering::SeqCst);
        let t = table(&host, dir.path());
        let err = t
            .inject("f1", fault("a"), Utc::now() + chrono::Duration::seconds(5))
            .unwrap_err();
        assert_eq!(err.kind(), "failed");
        assert!(host.applied.lock().unwrap().is_empty());
        assert!(Journal::open(dir.path())
            .unwrap()
            .entries()
            .unwrap()
            .is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn leases_end_faults_and_the_journal_replays_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        let t = table(&host, dir.path());
        let now = Utc::now();
        t.inject(
            "short",
            fault("a"),
            now + chrono::Duration::milliseconds(50),
        )
        .unwrap();
        t.inject("long", fault("b"), now + chrono::Duration::seconds(60))
            .unwrap();
        assert_eq!(
            t.next_lease_end(),
            Some(now + chrono::Duration::milliseconds(50))
        );
        let removed = t.expire(now + chrono::Duration::milliseconds(60));
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].id, "short");
        assert_eq!(
            host.applied.lock().unwrap().as_slice(),
            ["long".to_string()]
        );
        // A crash: the table is gone, the host still has "long"; a new table replays it away.
        drop(t);
        let t2 = table(&host, dir.path());
        let replayed = t2.replay_journal().unwrap();
        assert_eq!(replayed.len(), 1);
        assert!(replayed[0].result.is_ok());
        assert!(host.applied.lock().unwrap().is_empty());
        assert!(Journal::open(dir.path())
            .unwrap()
            .entries()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_lease_in_the_past_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&FakeHost::default(), dir.path());
        let err = t
            .inject("x", fault("a"), Utc::now() - chrono::Duration::seconds(1))
            .unwrap_err();
        assert_eq!(err.kind(), "invalid");
    }

    /// Starts `slow` applying on another thread and waits until its apply is under way.
    fn start_slow_apply(t: &Arc<FaultTable>, host: &FakeHost) -> std::thread::JoinHandle<()> {
        let t2 = Arc::clone(t);
        let handle = std::thread::spawn(move || {
            t2.inject(
                "slow",
                fault("slow"),
                Utc::now() + chrono::Duration::seconds(30),
            )
            .unwrap();
        });
        while host.slow_started.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        handle
    }

    /// A slow apply (a 60 s `user_defined` command, a disk fill) holds only its own fault:
    /// renewal, status, listing, removal and injection of other faults answer at once.
    #[test]
    fn other_faults_answer_within_milliseconds_while_a_slow_apply_runs() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        let t = Arc::new(table(&host, dir.path()));
        let lease = Utc::now() + chrono::Duration::seconds(30);
        t.inject("fast", fault("fast"), lease).unwrap();
        let slow = start_slow_apply(&t, &host);
        // Far below the apply (a journal fsync on a loaded disk can take tens of ms).
        let limit = std::time::Duration::from_millis(300);
        let timed = |what: &str, f: &mut dyn FnMut()| {
            let started = std::time::Instant::now();
            f();
            let took = started.elapsed();
            eprintln!("{what} took {took:?} during a {SLOW_APPLY:?} apply");
            assert!(
                took < limit,
                "{what} took {took:?} while another fault was applying"
            );
        };
        timed("renew", &mut || {
            t.renew("fast", lease + chrono::Duration::seconds(5))
                .unwrap();
        });
        timed("status", &mut || {
            assert_eq!(t.status("fast").unwrap().state, "active");
        });
        timed("list", &mut || assert_eq!(t.list().len(), 1));
        timed("summary and len", &mut || {
            assert_eq!(t.summary().len(), 1);
            assert_eq!(t.len(), 1);
        });
        timed("next lease end", &mut || {
            assert!(t.next_lease_end().is_some());
        });
        timed("expire", &mut || assert!(t.expire(Utc::now()).is_empty()));
        timed("inject another", &mut || {
            t.inject("other", fault("other"), lease).unwrap();
        });
        timed("recover", &mut || {
            t.recover("fast").unwrap();
            t.recover("other").unwrap();
        });
        assert_eq!(host.slow_started.load(Ordering::SeqCst), 1);
        slow.join().unwrap();
        assert_eq!(t.status("slow").unwrap().state, "active");
        assert_eq!(t.len(), 1);
    }

    /// Operations on the fault being applied wait for the apply instead of missing it: a
    /// recover sent mid-apply removes the fault once it is in place, and a second inject of the
    /// same id is a renewal, not a second application.
    #[test]
    fn the_same_fault_waits_for_its_own_apply() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        let t = Arc::new(table(&host, dir.path()));
        let slow = start_slow_apply(&t, &host);
        let again = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                t.inject(
                    "slow",
                    fault("slow"),
                    Utc::now() + chrono::Duration::seconds(40),
                )
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        let started = std::time::Instant::now();
        t.recover("slow").unwrap();
        assert!(
            started.elapsed() > std::time::Duration::from_millis(500),
            "recover returned before the apply it must undo had finished"
        );
        slow.join().unwrap();
        // The second inject ran either before the recover (a renewal) or after it (a new
        // application); either way at most one application is on the host at any time.
        let _ = again.join().unwrap();
        assert!(host.slow_started.load(Ordering::SeqCst) <= 2);
        let on_host = host.applied.lock().unwrap().len();
        assert_eq!(on_host, t.len(), "the table and the host agree");
        t.recover_all();
        assert!(host.applied.lock().unwrap().is_empty());
        assert!(Journal::open(dir.path())
            .unwrap()
            .entries()
            .unwrap()
            .is_empty());
    }
}
