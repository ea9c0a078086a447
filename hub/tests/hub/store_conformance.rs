//! One store contract, two backends: every case here is written once against `Arc<dyn Store>`
//! and runs on SQLite (a temporary directory) and on PostgreSQL (a database of its own on a
//! throwaway server from `chaoshub_testkit::postgres`). Then what only PostgreSQL has: schema
//! migrations, TLS (`sslmode`), reconnection, a hub serving from it, and `chaoshub migrate`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};

use chaoshub::store::agent_auth::{AgentCredentialRecord, JoinTokenRecord};
use chaoshub::store::{
    AgentAuthStore, AuditFilter, AuthStore, EventFilter, ExperimentFilter, ExperimentRow, NewAudit,
    NewEvent, PgStore, SqliteStore, Store, StoreError, StoredSession, TokenRow,
};
use chaoshub_schema::api::{DesiredState, ExperimentPhase, ExperimentStatus, HaltStatus};
use chaoshub_schema::auth::{Role, TokenInfo};
use chaoshub_testkit::postgres::PostgresServer;

fn row(name: &str, phase: ExperimentPhase) -> ExperimentRow {
    ExperimentRow {
        seq: 0,
        uid: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        namespace: "default".into(),
        kind: "NetworkChaos".into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        metadata: serde_json::from_value(
            serde_json::json!({"name": name, "labels": {"app": "web"}}),
        )
        .unwrap(),
        spec: serde_json::json!({"action": "delay", "delay": {"latency": "10ms"}}),
        status: ExperimentStatus {
            phase,
            desired: DesiredState::Run,
            reason: None,
            environment: "env-a".into(),
            adapter: "memory".into(),
            actions: vec!["delay".into()],
            created_at: chaoshub::time::now_rfc3339(),
            started_at: None,
            deadline: None,
            remaining_ms: None,
            ended_at: None,
            next_phase: None,
            matched: 0,
            targets: Vec::new(),
            archived: false,
            schedule: None,
            workflow: None,
            created_by: None,
            drift: None,
        },
        desired_reason: None,
    }
}

fn event(uid: Option<&str>, message: &str) -> NewEvent {
    NewEvent {
        name: "chaoshub.test.event".into(),
        experiment_uid: uid.map(str::to_string),
        environment: Some("env-a".into()),
        target: None,
        message: message.into(),
        attributes: BTreeMap::from([("k".to_string(), message.to_string())]),
    }
}

fn insert(store: &dyn Store, row: &ExperimentRow) -> ExperimentRow {
    store
        .insert_experiment(row, &event(Some(&row.uid), "created"))
        .unwrap()
        .0
}

fn events_of(store: &dyn Store, uid: Option<&str>) -> Vec<chaoshub_schema::api::EventRecord> {
    store
        .list_events(&EventFilter {
            experiment_uid: uid.map(str::to_string),
            limit: 100_000,
            ..Default::default()
        })
        .unwrap()
}

/// Runs `case` on a fresh SQLite store, then on a fresh PostgreSQL database (skipped, loudly,
/// when PostgreSQL is not installed, and a failure then under `CI=true`).
fn on_both(case: impl Fn(Arc<dyn Store>, &str)) {
    let dir = tempfile::tempdir().unwrap();
    case(
        Arc::new(SqliteStore::open(dir.path(), "normal").unwrap()),
        "sqlite",
    );
    let Some(server) = chaoshub_testkit::postgres::shared() else {
        return;
    };
    let db = server.create_database();
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&db.url).unwrap());
    case(store, "postgres");
}

#[test]
fn a_live_namesake_conflicts_and_a_terminal_one_is_archived() {
    on_both(|store, backend| {
        let first = insert(&*store, &row("web", ExperimentPhase::Running));
        assert!(first.seq > 0, "{backend}");
        let err = store
            .insert_experiment(&row("web", ExperimentPhase::Pending), &event(None, "x"))
            .unwrap_err();
        match err {
            StoreError::Conflict(m) => {
                assert!(
                    m.contains("already exists and is Running"),
                    "{backend}: {m}"
                );
                assert!(m.contains(&first.uid), "{backend}: {m}");
            }
            other => panic!("{backend}: {other:?}"),
        }
        // Another kind or namespace of the same name is no conflict.
        let mut other_kind = row("web", ExperimentPhase::Pending);
        other_kind.kind = "PodChaos".into();
        insert(&*store, &other_kind);
        // Once it has ended, the name is free and the old one is archived.
        let mut status = first.status.clone();
        status.phase = ExperimentPhase::Finished;
        store.update_status(&first.uid, &status, &[]).unwrap();
        let second = insert(&*store, &row("web", ExperimentPhase::Pending));
        assert!(second.seq > first.seq, "{backend}");
        let old = store.get_experiment(&first.uid).unwrap().unwrap();
        assert!(
            old.status.archived,
            "{backend}: the finished namesake is archived"
        );
        assert_eq!(old.status.phase, ExperimentPhase::Finished, "{backend}");
        // The name finds the live one, newest not archived first.
        let found = store
            .find_experiment_by_name("default", "web")
            .unwrap()
            .unwrap();
        assert_ne!(found.uid, first.uid, "{backend}");
        assert!(store
            .find_experiment_by_name("default", "nope")
            .unwrap()
            .is_none());
        assert!(store.get_experiment("no-such-uid").unwrap().is_none());
        // The creation events were stored with the experiments.
        let created = events_of(&*store, Some(&second.uid));
        assert_eq!(created.len(), 1, "{backend}");
        assert_eq!(created[0].message, "created", "{backend}");
        assert_eq!(created[0].attributes["k"], "created", "{backend}");
        // Everything round-trips.
        let back = store.get_experiment(&second.uid).unwrap().unwrap();
        assert_eq!(back.metadata, second.metadata, "{backend}");
        assert_eq!(back.spec, second.spec, "{backend}");
        assert_eq!(back.status, second.status, "{backend}");
    });
}

#[test]
fn status_updates_and_their_events_are_one_transaction() {
    on_both(|store, backend| {
        let r = insert(&*store, &row("tx", ExperimentPhase::Pending));
        let mut status = r.status.clone();
        status.phase = ExperimentPhase::Running;
        status.matched = 3;
        let recs = store
            .update_status(
                &r.uid,
                &status,
                &[event(Some(&r.uid), "a"), event(Some(&r.uid), "b")],
            )
            .unwrap();
        assert_eq!(recs.len(), 2, "{backend}");
        assert!(recs[0].id < recs[1].id, "{backend}");
        let back = store.get_experiment(&r.uid).unwrap().unwrap();
        assert_eq!(back.status.phase, ExperimentPhase::Running, "{backend}");
        assert_eq!(back.status.matched, 3, "{backend}");
        // An update of a vanished experiment fails and stores none of its events.
        let before = events_of(&*store, None).len();
        let err = store
            .update_status("gone", &status, &[event(Some("gone"), "lost")])
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err:?}");
        assert_eq!(events_of(&*store, None).len(), before, "{backend}");
        // The engine's status write never overwrites the user's intent or the archive flag.
        store
            .set_desired(&r.uid, DesiredState::Pause, Some("by test"), &[])
            .unwrap();
        let mut engine_view = status.clone();
        engine_view.desired = DesiredState::Run;
        store.update_status(&r.uid, &engine_view, &[]).unwrap();
        let back = store.get_experiment(&r.uid).unwrap().unwrap();
        assert_eq!(back.status.desired, DesiredState::Pause, "{backend}");
        assert_eq!(back.desired_reason.as_deref(), Some("by test"), "{backend}");
    });
}

#[test]
fn a_stop_is_final_and_archiving_hides_from_lists() {
    on_both(|store, backend| {
        let r = insert(&*store, &row("stop", ExperimentPhase::Running));
        store
            .set_desired(
                &r.uid,
                DesiredState::Stop,
                Some("stopped by user"),
                &[event(Some(&r.uid), "stop")],
            )
            .unwrap();
        let err = store
            .set_desired(
                &r.uid,
                DesiredState::Pause,
                None,
                &[event(Some(&r.uid), "pause")],
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{backend}: {err:?}");
        // A stop may repeat (halt-all after a user's stop).
        store
            .set_desired(&r.uid, DesiredState::Stop, Some("halted: drill"), &[])
            .unwrap();
        let back = store.get_experiment(&r.uid).unwrap().unwrap();
        assert_eq!(back.status.desired, DesiredState::Stop, "{backend}");
        assert_eq!(
            back.desired_reason.as_deref(),
            Some("halted: drill"),
            "{backend}"
        );
        let msgs: Vec<String> = events_of(&*store, Some(&r.uid))
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(
            msgs,
            ["created", "stop"],
            "{backend}: the refused pause stored nothing"
        );

        let recs = store
            .set_archived(&r.uid, &[event(Some(&r.uid), "archived")])
            .unwrap();
        assert_eq!(recs.len(), 1, "{backend}");
        let live = store
            .list_experiments(&ExperimentFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert!(live.iter().all(|e| e.uid != r.uid), "{backend}");
        let archived = store
            .list_experiments(&ExperimentFilter {
                archived: true,
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(archived.len(), 1, "{backend}");
        assert!(archived[0].status.archived, "{backend}");
    });
}

#[test]
fn lists_filter_and_page_by_seq() {
    on_both(|store, backend| {
        let mut uids = Vec::new();
        for i in 0..7 {
            let mut r = row(&format!("e{i}"), ExperimentPhase::Running);
            if i % 2 == 1 {
                r.kind = "PodChaos".into();
                r.status.environment = "env-b".into();
            }
            if i == 6 {
                r.namespace = "other".into();
            }
            uids.push(insert(&*store, &r).uid);
        }
        let all = store
            .list_experiments(&ExperimentFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 7, "{backend}");
        let seqs: Vec<i64> = all.iter().map(|r| r.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] > w[1]),
            "{backend}: newest first {seqs:?}"
        );
        assert_eq!(all[0].uid, uids[6], "{backend}");
        // Pages of 3 by the `continue` token cover everything once.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .list_experiments(&ExperimentFilter {
                    before_seq: before,
                    limit: 3,
                    ..Default::default()
                })
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 3, "{backend}");
            before = Some(page.last().unwrap().seq);
            seen.extend(page.into_iter().map(|r| r.uid));
        }
        let mut expected = uids.clone();
        expected.reverse();
        assert_eq!(seen, expected, "{backend}");
        let count = |f: ExperimentFilter| store.list_experiments(&f).unwrap().len();
        let f = || ExperimentFilter {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(
            count(ExperimentFilter {
                kind: Some("PodChaos".into()),
                ..f()
            }),
            3,
            "{backend}"
        );
        assert_eq!(
            count(ExperimentFilter {
                environment: Some("env-b".into()),
                ..f()
            }),
            3,
            "{backend}"
        );
        assert_eq!(
            count(ExperimentFilter {
                namespace: Some("other".into()),
                ..f()
            }),
            1,
            "{backend}"
        );
        assert_eq!(
            count(ExperimentFilter {
                phase: Some("Running".into()),
                ..f()
            }),
            7,
            "{backend}"
        );
        assert_eq!(
            count(ExperimentFilter {
                phase: Some("Paused".into()),
                ..f()
            }),
            0,
            "{backend}"
        );
        assert_eq!(
            count(ExperimentFilter {
                kind: Some("NetworkChaos".into()),
                namespace: Some("default".into()),
                ..f()
            }),
            3,
            "{backend}"
        );
        // A limit of 0 still returns one row, as SQLite's store always did.
        assert_eq!(count(ExperimentFilter { limit: 0, ..f() }), 1, "{backend}");
    });
}

#[test]
fn active_experiments_and_counts() {
    on_both(|store, backend| {
        let a = insert(&*store, &row("a", ExperimentPhase::Running));
        let b = insert(&*store, &row("b", ExperimentPhase::Pending));
        let c = insert(&*store, &row("c", ExperimentPhase::Running));
        let mut done = c.status.clone();
        done.phase = ExperimentPhase::Failed;
        store.update_status(&c.uid, &done, &[]).unwrap();
        let mut pod = row("d", ExperimentPhase::Running);
        pod.kind = "PodChaos".into();
        let d = insert(&*store, &pod);
        store.set_archived(&d.uid, &[]).unwrap();
        let active: Vec<String> = store
            .active_experiments()
            .unwrap()
            .into_iter()
            .map(|r| r.uid)
            .collect();
        // Oldest first; terminal ones left out; archived but not ended ones still need the engine.
        assert_eq!(
            active,
            [a.uid.clone(), b.uid.clone(), d.uid.clone()],
            "{backend}"
        );
        let mut counts: Vec<(String, String, String, u64)> = store
            .count_experiments()
            .unwrap()
            .into_iter()
            .map(|c| (c.phase, c.kind, c.environment, c.count))
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                ("Failed".into(), "NetworkChaos".into(), "env-a".into(), 1),
                ("Pending".into(), "NetworkChaos".into(), "env-a".into(), 1),
                ("Running".into(), "NetworkChaos".into(), "env-a".into(), 1),
            ],
            "{backend}"
        );
    });
}

#[test]
fn events_follow_by_id_since_and_limit() {
    on_both(|store, backend| {
        let r = insert(&*store, &row("ev", ExperimentPhase::Running));
        let first = store
            .append_events(&[event(Some(&r.uid), "1"), event(None, "global")])
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let since = chaoshub::time::now_rfc3339();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = store
            .append_events(&[event(Some(&r.uid), "2"), event(Some(&r.uid), "3")])
            .unwrap();
        assert!(first[1].id < later[0].id, "{backend}");
        let all = events_of(&*store, None);
        assert_eq!(all.len(), 5, "{backend}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{backend}");
        let mine = events_of(&*store, Some(&r.uid));
        assert_eq!(
            mine.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["created", "1", "2", "3"],
            "{backend}"
        );
        let after = store
            .list_events(&EventFilter {
                after_id: Some(first[0].id),
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            after.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["global", "2"],
            "{backend}"
        );
        let recent = store
            .list_events(&EventFilter {
                since: Some(since),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            recent.iter().map(|e| e.id).collect::<Vec<_>>(),
            later.iter().map(|e| e.id).collect::<Vec<_>>(),
            "{backend}"
        );
        assert_eq!(recent[0].environment.as_deref(), Some("env-a"), "{backend}");
        assert_eq!(recent[0].attributes["k"], "2", "{backend}");
    });
}

#[test]
fn pruning_drops_old_and_excess_events_but_keeps_running_experiments() {
    on_both(|store, backend| {
        let running = insert(&*store, &row("run", ExperimentPhase::Running));
        let ended = insert(&*store, &row("end", ExperimentPhase::Running));
        let mut status = ended.status.clone();
        status.phase = ExperimentPhase::Finished;
        store.update_status(&ended.uid, &status, &[]).unwrap();
        for i in 0..5 {
            store
                .append_events(&[
                    event(Some(&running.uid), &format!("r{i}")),
                    event(Some(&ended.uid), &format!("e{i}")),
                    event(None, &format!("g{i}")),
                ])
                .unwrap();
        }
        // Nothing is older than the year 0000.
        assert_eq!(store.prune_events("0000", 0).unwrap(), 0, "{backend}");
        // Everything is older than the far future: all but the running experiment's go.
        let deleted = store.prune_events("9999", 0).unwrap();
        assert_eq!(deleted, 11, "{backend}"); // 5 ended + 1 created + 5 global
        let left = events_of(&*store, None);
        assert!(
            left.iter()
                .all(|e| e.experiment_uid.as_deref() == Some(&running.uid)),
            "{backend}"
        );
        assert_eq!(left.len(), 6, "{backend}");
        // The row cap: the newest are kept; the running experiment's stay over the cap.
        store
            .append_events(&[event(None, "n1"), event(None, "n2"), event(None, "n3")])
            .unwrap();
        let deleted = store.prune_events("0000", 2).unwrap();
        assert_eq!(
            deleted, 1,
            "{backend}: only n1 is beyond the cap and deletable"
        );
        let messages: BTreeSet<String> = events_of(&*store, None)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert!(
            messages.contains("n2") && messages.contains("n3"),
            "{backend}"
        );
        assert!(!messages.contains("n1"), "{backend}");
        assert!(messages.contains("r0"), "{backend}");
    });
}

#[test]
fn environments_put_replace_and_delete() {
    on_both(|store, backend| {
        let env = |endpoint: &str| -> chaoshub_schema::api::EnvironmentObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "chaoshub.dev/v1alpha1",
                "kind": "Environment",
                "metadata": {"name": "staging"},
                "spec": {"adapter": "docker", "endpoint": endpoint}
            }))
            .unwrap()
        };
        assert!(
            !store.put_environment(&env("one"), false).unwrap(),
            "{backend}"
        );
        // Without replace an existing one is kept as it was.
        assert!(
            store.put_environment(&env("two"), false).unwrap(),
            "{backend}"
        );
        let got = store.get_environment("staging").unwrap().unwrap();
        assert_eq!(got.spec.endpoint.as_deref(), Some("one"), "{backend}");
        assert!(
            store.put_environment(&env("three"), true).unwrap(),
            "{backend}"
        );
        let got = store.get_environment("staging").unwrap().unwrap();
        assert_eq!(got.spec.endpoint.as_deref(), Some("three"), "{backend}");
        let mut other = env("x");
        other.metadata.name = Some("alpha".into());
        store.put_environment(&other, false).unwrap();
        other.metadata.name = Some("Zeta".into());
        store.put_environment(&other, false).unwrap();
        let names: Vec<String> = store
            .list_environments()
            .unwrap()
            .into_iter()
            .map(|e| e.metadata.name.unwrap())
            .collect();
        // Byte order on both stores (SQLite's BINARY, PostgreSQL's `COLLATE "C"`).
        assert_eq!(names, ["Zeta", "alpha", "staging"], "{backend}");
        assert!(store.delete_environment("staging").unwrap(), "{backend}");
        assert!(!store.delete_environment("staging").unwrap(), "{backend}");
        assert!(
            store.get_environment("staging").unwrap().is_none(),
            "{backend}"
        );
    });
}

#[test]
fn halt_switch_and_suite_runs() {
    on_both(|store, backend| {
        assert_eq!(
            store.halt_status().unwrap(),
            HaltStatus::default(),
            "{backend}"
        );
        let halt = HaltStatus {
            halted: true,
            since: Some(chaoshub::time::now_rfc3339()),
            reason: Some("game day over".into()),
            by: Some("admin".into()),
            stopped: vec!["u1".into()],
        };
        store.set_halt(&halt).unwrap();
        assert_eq!(store.halt_status().unwrap(), halt, "{backend}");
        store.set_halt(&HaltStatus::default()).unwrap();
        assert!(!store.halt_status().unwrap().halted, "{backend}");

        let run = |id: &str, phase: &str| -> chaoshub_schema::suite::SuiteRun {
            serde_json::from_value(serde_json::json!({
                "id": id, "suite": "smoke", "phase": phase,
                "createdAt": chaoshub::time::now_rfc3339(),
                "summary": {"cases": 1, "passed": 0, "failed": 0, "errors": 0, "skipped": 0},
                "cases": [], "log": [], "manifest": {"kind": "Suite"}
            }))
            .unwrap()
        };
        store.put_suite_run(&run("r1", "Running")).unwrap();
        store.put_suite_run(&run("r2", "Running")).unwrap();
        store.put_suite_run(&run("r1", "Passed")).unwrap();
        let got = store.get_suite_run("r1").unwrap().unwrap();
        assert_eq!(got.phase.as_str(), "Passed", "{backend}");
        assert!(store.get_suite_run("nope").unwrap().is_none(), "{backend}");
        let ids: Vec<String> = store
            .list_suite_runs(10)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            ids,
            ["r2", "r1"],
            "{backend}: newest first, replaced in place"
        );
        assert_eq!(store.list_suite_runs(1).unwrap().len(), 1, "{backend}");
    });
}

#[test]
fn old_liveness_leases_are_pruned_and_the_engine_lease_never_is() {
    on_both(|store, backend| {
        let short = std::time::Duration::from_millis(1);
        if !store.shared() {
            assert_eq!(store.prune_liveness_leases(short).unwrap(), 0, "{backend}");
            return;
        }
        let grant = |name: &str, holder: &str| {
            store
                .acquire_lease(name, holder, None, short)
                .unwrap()
                .unwrap()
                .token
        };
        assert_eq!(grant("engine", "a#1"), 1, "{backend}");
        grant("replica:a#1", "a#1");
        grant("replica:b#2", "b#2");
        std::thread::sleep(std::time::Duration::from_millis(50));
        // A live one stays.
        store
            .acquire_lease(
                "replica:c#3",
                "c#3",
                None,
                std::time::Duration::from_secs(60),
            )
            .unwrap()
            .unwrap();
        assert_eq!(store.prune_liveness_leases(short).unwrap(), 2, "{backend}");
        assert!(
            store.lease_holder("replica:c#3").unwrap().is_some(),
            "{backend}"
        );
        assert_eq!(store.prune_liveness_leases(short).unwrap(), 0, "{backend}");
        // The engine lease's row (and so its token) survived: the next holder gets 2, not 1.
        assert_eq!(grant("engine", "b#2"), 2, "{backend}");
    });
}

#[test]
fn the_agent_directory_is_replaced_per_agent_and_filtered_by_environment() {
    on_both(|store, backend| {
        let agent = |env: &str, name: &str, health: &str| -> chaoshub_schema::api::AgentInfo {
            serde_json::from_value(serde_json::json!({
                "name": name, "environment": env, "labels": {"zone": "a"}, "hostname": name,
                "addresses": ["198.18.0.1"], "version": "1", "health": health,
                "connected": true, "activeFaults": 2, "capabilities": ["network"],
                "mechanisms": {}
            }))
            .unwrap()
        };
        store
            .put_agent_directory(
                &[
                    agent("hosts", "b", "healthy"),
                    agent("hosts", "a", "healthy"),
                    agent("edge", "c", "unhealthy"),
                ],
                &[],
            )
            .unwrap();
        if !store.shared() {
            // A hub alone reads its own registry: nothing is kept.
            assert!(store.agent_directory(None).unwrap().is_empty(), "{backend}");
            return;
        }
        let names = |env: Option<&str>| -> Vec<String> {
            store
                .agent_directory(env)
                .unwrap()
                .into_iter()
                .map(|a| format!("{}/{}/{}", a.environment, a.name, a.health))
                .collect()
        };
        assert_eq!(
            names(None),
            ["edge/c/unhealthy", "hosts/a/healthy", "hosts/b/healthy"],
            "{backend}"
        );
        store
            .put_agent_directory(
                &[agent("hosts", "a", "unhealthy")],
                &[
                    ("hosts".into(), "b".into()),
                    ("hosts".into(), "never".into()),
                ],
            )
            .unwrap();
        assert_eq!(names(Some("hosts")), ["hosts/a/unhealthy"], "{backend}");
        let got = store.agent_directory(Some("edge")).unwrap();
        assert_eq!(
            got[0],
            agent("edge", "c", "unhealthy"),
            "{backend}: read back whole"
        );
    });
}

#[test]
fn console_sessions_are_kept_found_by_hash_and_deleted() {
    on_both(|store, backend| {
        let hour = std::time::Duration::from_secs(3600);
        let session = |hash: &str| StoredSession {
            id_hash: hash.into(),
            sealed_token: Some("00ff".into()),
            csrf: "c".into(),
            name: "ops".into(),
            role: "operator".into(),
            idle_for: std::time::Duration::ZERO,
        };
        store.put_console_session(&session("h1")).unwrap();
        if !store.shared() {
            assert_eq!(
                store.console_session("h1", hour).unwrap(),
                None,
                "{backend}"
            );
            return;
        }
        store.put_console_session(&session("h2")).unwrap();
        let got = store.console_session("h1", hour).unwrap().unwrap();
        assert_eq!(
            StoredSession {
                idle_for: std::time::Duration::ZERO,
                ..got.clone()
            },
            session("h1"),
            "{backend}"
        );
        assert!(got.idle_for < std::time::Duration::from_secs(5), "{got:?}");
        assert_eq!(store.console_session("nope", hour).unwrap(), None);
        std::thread::sleep(std::time::Duration::from_millis(30));
        // Idle for longer than asked: not found, until used again.
        let short = std::time::Duration::from_millis(20);
        assert_eq!(
            store.console_session("h1", short).unwrap(),
            None,
            "{backend}"
        );
        store.touch_console_session("h1").unwrap();
        assert!(
            store.console_session("h1", short).unwrap().is_some(),
            "{backend}"
        );
        // Deleting one also deletes every session idle past the limit (h2 here).
        std::thread::sleep(std::time::Duration::from_millis(30));
        store.touch_console_session("h1").unwrap();
        store.delete_console_session("", short).unwrap();
        assert!(
            store.console_session("h2", hour).unwrap().is_none(),
            "{backend}"
        );
        assert!(
            store.console_session("h1", hour).unwrap().is_some(),
            "{backend}"
        );
        store.delete_console_session("h1", hour).unwrap();
        assert!(
            store.console_session("h1", hour).unwrap().is_none(),
            "{backend}"
        );
    });
}

#[test]
fn a_suite_run_taken_over_refuses_its_old_owner() {
    on_both(|store, backend| {
        let run = |id: &str, phase: &str, owner: Option<&str>| {
            let mut run: chaoshub_schema::suite::SuiteRun =
                serde_json::from_value(serde_json::json!({
                    "id": id, "suite": "smoke", "phase": phase,
                    "createdAt": chaoshub::time::now_rfc3339(),
                    "summary": {"cases": 1, "passed": 0, "failed": 0, "errors": 0, "skipped": 0},
                    "cases": [], "log": [], "manifest": {"kind": "Suite"}
                }))
                .unwrap();
            run.replica = owner.map(str::to_string);
            run
        };
        store
            .put_suite_run(&run("r1", "Running", Some("a#1")))
            .unwrap();
        store.put_suite_run(&run("r2", "Running", None)).unwrap();
        store
            .put_suite_run(&run("r3", "Passed", Some("a#1")))
            .unwrap();
        let running: Vec<String> = store
            .running_suite_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            running,
            ["r1", "r2"],
            "{backend}: Running only, oldest first"
        );

        // Its owner may write; another process may not, even one with no owner.
        store
            .put_suite_run(&run("r1", "Running", Some("a#1")))
            .unwrap();
        for intruder in [Some("b#2"), None] {
            match store.put_suite_run(&run("r1", "Failed", intruder)) {
                Err(StoreError::Fenced(why)) => assert!(why.contains("r1"), "{backend}: {why}"),
                other => panic!("{backend}: a write from {intruder:?} was not refused: {other:?}"),
            }
        }
        // The claim names the owner it replaces: only one of two racing claims wins.
        assert!(store
            .claim_suite_run(&run("r1", "Running", Some("b#2")), Some("a#1"))
            .unwrap());
        assert!(!store
            .claim_suite_run(&run("r1", "Running", Some("c#3")), Some("a#1"))
            .unwrap());
        assert!(matches!(
            store.put_suite_run(&run("r1", "Passed", Some("a#1"))),
            Err(StoreError::Fenced(_))
        ));
        store
            .put_suite_run(&run("r1", "Passed", Some("b#2")))
            .unwrap();
        let got = store.get_suite_run("r1").unwrap().unwrap();
        assert_eq!(
            (got.phase.as_str(), got.replica.as_deref()),
            ("Passed", Some("b#2")),
            "{backend}"
        );
        // A run with no owner (a lone hub's) is claimed by naming none.
        assert!(!store
            .claim_suite_run(&run("r2", "Running", Some("b#2")), Some("a#1"))
            .unwrap());
        assert!(store
            .claim_suite_run(&run("r2", "Running", Some("b#2")), None)
            .unwrap());
        assert!(!store
            .claim_suite_run(&run("nope", "Running", Some("b#2")), None)
            .unwrap());
    });
}

fn token(name: &str, hash: &str) -> TokenRow {
    TokenRow {
        hash: hash.into(),
        info: TokenInfo {
            name: name.into(),
            role: Role::Operator,
            namespaces: vec!["default".into()],
            environments: vec![],
            created_at: chaoshub::time::now_rfc3339(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
    }
}

fn audit(principal: &str, object: Option<&str>, outcome: &str) -> NewAudit {
    NewAudit {
        time: chaoshub::time::now_rfc3339(),
        principal: principal.into(),
        role: Some(Role::Admin),
        source: "127.0.0.1".into(),
        method: "POST".into(),
        route: "/api/v1/tokens".into(),
        path: "/api/v1/tokens".into(),
        object: object.map(str::to_string),
        outcome: outcome.into(),
        status: 201,
        message: None,
    }
}

#[test]
fn tokens_and_the_audit_trail() {
    on_both(|store, backend| {
        assert_eq!(store.count_live_tokens().unwrap(), 0, "{backend}");
        store
            .insert_token(
                &token("ci", "h1"),
                Some(&audit("admin", Some("token ci"), "success")),
            )
            .unwrap();
        let err = store.insert_token(&token("ci", "h2"), None).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{backend}: {err:?}");
        let got = store.token_by_hash("h1").unwrap().unwrap();
        assert_eq!(got.info.name, "ci", "{backend}");
        assert_eq!(got.info.role, Role::Operator, "{backend}");
        assert_eq!(got.info.namespaces, ["default"], "{backend}");
        store.touch_token("ci", "2030-01-01T00:00:00.000Z").unwrap();
        assert_eq!(
            store
                .token_by_hash("h1")
                .unwrap()
                .unwrap()
                .info
                .last_used_at
                .as_deref(),
            Some("2030-01-01T00:00:00.000Z"),
            "{backend}"
        );
        assert_eq!(store.count_live_tokens().unwrap(), 1, "{backend}");
        assert!(store
            .revoke_token(
                "ci",
                "2030-01-02T00:00:00.000Z",
                Some(&audit("admin", Some("token ci"), "success"))
            )
            .unwrap());
        assert!(
            !store
                .revoke_token("ci", "2030-01-03T00:00:00.000Z", None)
                .unwrap(),
            "{backend}"
        );
        assert_eq!(store.count_live_tokens().unwrap(), 0, "{backend}");
        // A revoked name is reusable with a new secret.
        store.insert_token(&token("ci", "h3"), None).unwrap();
        assert!(store.token_by_hash("h1").unwrap().is_none(), "{backend}");
        store.insert_token(&token("b-bot", "h4"), None).unwrap();
        let names: Vec<String> = store
            .list_tokens()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["b-bot", "ci"], "{backend}");

        let a = store
            .append_audit(&audit(
                "alice",
                Some("experiment default/web-delay"),
                "denied",
            ))
            .unwrap();
        let b = store.append_audit(&audit("bob", None, "failure")).unwrap();
        assert!(a.id < b.id, "{backend}");
        let newest = store
            .list_audit(&AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(newest.len(), 4, "{backend}");
        assert_eq!(newest[0].id, b.id, "{backend}: newest first");
        assert_eq!(newest[0].status, 201, "{backend}");
        let following = store
            .list_audit(&AuditFilter {
                after_id: Some(newest[3].id),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(following.len(), 3, "{backend}");
        assert!(
            following.windows(2).all(|w| w[0].id < w[1].id),
            "{backend}: oldest first"
        );
        let by_object = store
            .list_audit(&AuditFilter {
                object: Some("web-delay".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_object.len(), 1, "{backend}");
        assert_eq!(by_object[0].principal, "alice", "{backend}");
        let by = |f: AuditFilter| store.list_audit(&f).unwrap().len();
        assert_eq!(
            by(AuditFilter {
                principal: Some("admin".into()),
                limit: 100,
                ..Default::default()
            }),
            2,
            "{backend}"
        );
        assert_eq!(
            by(AuditFilter {
                outcome: Some("failure".into()),
                limit: 100,
                ..Default::default()
            }),
            1,
            "{backend}"
        );
        assert_eq!(
            by(AuditFilter {
                until: Some("2000-01-01".into()),
                limit: 100,
                ..Default::default()
            }),
            0,
            "{backend}"
        );
        assert_eq!(
            by(AuditFilter {
                since: Some("2000-01-01".into()),
                limit: 2,
                ..Default::default()
            }),
            2,
            "{backend}"
        );
    });
}

#[test]
fn join_tokens_and_agent_credentials() {
    on_both(|store, backend| {
        let jt = |id: &str, env: &str| JoinTokenRecord {
            id: id.into(),
            environment: env.into(),
            created_at: format!("2030-01-01T00:00:0{}.000Z", id.len()),
            expires_at: Some("2031-01-01T00:00:00.000Z".into()),
            revoked_at: None,
            last_used_at: None,
            uses: 0,
        };
        store
            .insert_join_token(&jt("j1", "edge"), "hash-1")
            .unwrap();
        store
            .insert_join_token(&jt("j22", "edge"), "hash-2")
            .unwrap();
        store
            .insert_join_token(&jt("j3", "core"), "hash-3")
            .unwrap();
        assert!(
            store
                .insert_join_token(&jt("j1", "edge"), "hash-9")
                .is_err(),
            "{backend}"
        );
        let edge: Vec<String> = store
            .list_join_tokens("edge")
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(edge, ["j1", "j22"], "{backend}");
        assert_eq!(
            store
                .find_join_token("hash-3")
                .unwrap()
                .unwrap()
                .environment,
            "core",
            "{backend}"
        );
        assert!(
            store.find_join_token("nope").unwrap().is_none(),
            "{backend}"
        );

        let cred = AgentCredentialRecord {
            environment: "edge".into(),
            name: "host-1".into(),
            join_token_id: "j1".into(),
            created_at: "2030-02-01T00:00:00.000Z".into(),
            last_used_at: None,
        };
        assert!(
            store.issue_agent_credential(&cred, "cred-hash").unwrap(),
            "{backend}"
        );
        assert!(
            !store.issue_agent_credential(&cred, "other-hash").unwrap(),
            "{backend}: a name holds one"
        );
        let j1 = store.find_join_token("hash-1").unwrap().unwrap();
        assert_eq!(j1.uses, 1, "{backend}: only the issued credential counts");
        assert_eq!(
            j1.last_used_at.as_deref(),
            Some("2030-02-01T00:00:00.000Z"),
            "{backend}"
        );
        let (got, hash) = store.agent_credential("edge", "host-1").unwrap().unwrap();
        assert_eq!(hash, "cred-hash", "{backend}");
        assert_eq!(
            got.last_used_at.as_deref(),
            Some("2030-02-01T00:00:00.000Z"),
            "{backend}"
        );
        store
            .touch_agent_credential("edge", "host-1", "2030-03-01T00:00:00.000Z")
            .unwrap();
        let (got, _) = store.agent_credential("edge", "host-1").unwrap().unwrap();
        assert_eq!(
            got.last_used_at.as_deref(),
            Some("2030-03-01T00:00:00.000Z"),
            "{backend}"
        );

        assert!(
            store
                .revoke_join_token("edge", "j1", "2030-04-01T00:00:00.000Z")
                .unwrap(),
            "{backend}"
        );
        // A second revocation keeps the first time.
        assert!(
            store
                .revoke_join_token("edge", "j1", "2030-05-01T00:00:00.000Z")
                .unwrap(),
            "{backend}"
        );
        assert_eq!(
            store
                .find_join_token("hash-1")
                .unwrap()
                .unwrap()
                .revoked_at
                .as_deref(),
            Some("2030-04-01T00:00:00.000Z"),
            "{backend}"
        );
        assert!(
            !store.revoke_join_token("core", "j1", "x").unwrap(),
            "{backend}: another environment's"
        );
        assert!(
            store.delete_agent_credential("edge", "host-1").unwrap(),
            "{backend}"
        );
        assert!(
            !store.delete_agent_credential("edge", "host-1").unwrap(),
            "{backend}"
        );
        assert!(
            store.agent_credential("edge", "host-1").unwrap().is_none(),
            "{backend}"
        );
    });
}

#[test]
fn racing_inserts_of_one_name_have_exactly_one_winner() {
    on_both(|store, backend| {
        for round in 0..5 {
            let name = format!("race-{round}");
            let n = 6;
            let barrier = Arc::new(Barrier::new(n));
            let results: Vec<Result<ExperimentRow, StoreError>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .map(|_| {
                        let store = Arc::clone(&store);
                        let barrier = Arc::clone(&barrier);
                        let name = name.clone();
                        s.spawn(move || {
                            let r = row(&name, ExperimentPhase::Pending);
                            barrier.wait();
                            store
                                .insert_experiment(&r, &event(Some(&r.uid), "created"))
                                .map(|(r, _)| r)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "{backend}: {results:?}");
            assert!(
                results
                    .iter()
                    .filter_map(|r| r.as_ref().err())
                    .all(|e| matches!(e, StoreError::Conflict(_))),
                "{backend}: {results:?}"
            );
            let live = store
                .list_experiments(&ExperimentFilter {
                    limit: 100,
                    ..Default::default()
                })
                .unwrap()
                .into_iter()
                .filter(|r| r.name == name)
                .count();
            assert_eq!(live, 1, "{backend}");
        }
    });
}

/// Writers race (status updates with events, plain appends) while a reader follows the log by
/// `after_id`, as the event stream does: the reader sees every event exactly once, ids strictly
/// increasing, none skipped because a smaller id committed after a larger one.
#[test]
fn concurrent_writers_lose_no_event_and_followers_see_ids_in_order() {
    on_both(|store, backend| {
        let r = insert(&*store, &row("busy", ExperimentPhase::Running));
        let start_id = events_of(&*store, None).last().unwrap().id;
        let writers = 4;
        let per_writer = 40;
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let followed = std::thread::scope(|s| {
            for w in 0..writers {
                let store = Arc::clone(&store);
                let r = r.clone();
                let done = Arc::clone(&done);
                s.spawn(move || {
                    for i in 0..per_writer {
                        let msg = format!("w{w}-{i}");
                        if i % 2 == 0 {
                            let mut status = r.status.clone();
                            status.matched = i;
                            store
                                .update_status(&r.uid, &status, &[event(Some(&r.uid), &msg)])
                                .unwrap();
                        } else {
                            store.append_events(&[event(Some(&r.uid), &msg)]).unwrap();
                        }
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            s.spawn(move || {
                let mut seen = Vec::new();
                let mut after = start_id;
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst) == writers;
                    let page = store
                        .list_events(&EventFilter {
                            after_id: Some(after),
                            limit: 7,
                            ..Default::default()
                        })
                        .unwrap();
                    for e in &page {
                        assert!(e.id > after, "ids go up");
                        after = e.id;
                        seen.push(e.message.clone());
                    }
                    if finished && page.is_empty() {
                        return seen;
                    }
                }
            })
            .join()
            .unwrap()
        });
        let expected: BTreeSet<String> = (0..writers)
            .flat_map(|w| (0..per_writer).map(move |i| format!("w{w}-{i}")))
            .collect();
        assert_eq!(followed.len(), expected.len(), "{backend}: each event once");
        assert_eq!(
            followed.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{backend}: the follower saw every event"
        );
        let stored = events_of(&*store, Some(&r.uid));
        assert_eq!(stored.len(), 1 + writers * per_writer, "{backend}");
    });
}

// ---- PostgreSQL only ----

fn pg() -> Option<&'static PostgresServer> {
    chaoshub_testkit::postgres::shared()
}

#[test]
fn migrations_are_versioned_and_a_newer_schema_is_refused() {
    let Some(server) = pg() else { return };
    let db = server.create_database();
    // Hubs starting together: one migrates, the others wait for it and find it done.
    let stores: Vec<PgStore> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PgStore::connect(&db.url).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let known = chaoshub::store::postgres::schema::known_version();
    assert_eq!(
        server.psql(
            &db.name,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"
        ),
        (1..=known)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    drop(stores);
    // Reopening applies nothing new and keeps the data.
    let store = PgStore::connect(&db.url).unwrap();
    insert(&store, &row("kept", ExperimentPhase::Running));
    drop(store);
    let store = PgStore::connect(&db.url).unwrap();
    assert!(store
        .find_experiment_by_name("default", "kept")
        .unwrap()
        .is_some());
    drop(store);
    // A database migrated by a newer hub is refused, naming both versions.
    server.psql(
        &db.name,
        &format!(
            "INSERT INTO schema_migrations VALUES ({}, 'from the future', 'now')",
            known + 1
        ),
    );
    let err = PgStore::connect(&db.url).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("schema version {}", known + 1)),
        "{text}"
    );
    assert!(text.contains(&format!("({known})")), "{text}");
}

/// Connections the server ended (a restart, a failover, an idle timeout in a proxy) are
/// replaced without failing the hub's calls: a read that meets a broken connection runs again
/// on a new one, and a connection idle for a while is checked before a write uses it.
#[test]
fn a_broken_connection_is_replaced() {
    let Some(server) = pg() else { return };
    let db = server.create_database();
    let store = PgStore::connect(&db.url).unwrap();
    let r = insert(&store, &row("conn", ExperimentPhase::Running));
    // Every worker holds a connection.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| store.get_experiment(&r.uid).unwrap());
        }
    });
    let kill = || {
        server.psql(
            "postgres",
            &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()", db.name),
        )
    };
    assert_ne!(kill(), "0", "the store's connections were ended");
    for _ in 0..20 {
        assert!(store.get_experiment(&r.uid).unwrap().is_some());
    }
    assert_ne!(kill(), "0");
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let mut status = r.status.clone();
    status.matched = 7;
    store
        .update_status(&r.uid, &status, &[event(Some(&r.uid), "after the restart")])
        .unwrap();
    assert_eq!(
        store
            .get_experiment(&r.uid)
            .unwrap()
            .unwrap()
            .status
            .matched,
        7
    );
}

#[test]
fn unreachable_or_misconfigured_postgres_is_a_clear_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens on the port any more.
    let err = PgStore::connect(&format!(
        "postgres://hub:hunter2@127.0.0.1:{port}/chaoshub?sslmode=disable&connect_timeout=2"
    ))
    .unwrap_err();
    let chain = format!(
        "{err} / {:?}",
        std::error::Error::source(&err).map(|s| s.to_string())
    );
    assert!(
        chain.contains("cannot connect to PostgreSQL at postgres://hub:***@127.0.0.1"),
        "{chain}"
    );
    assert!(!chain.contains("hunter2"), "{chain}");
    // The config refuses what is neither SQLite nor PostgreSQL.
    let err = chaoshub::config::HubConfig::from_toml(
        "[store]\nurl = \"mysql://root:hunter2@db/chaoshub\"\n",
        std::path::Path::new("hub.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("store.url"), "{err}");
    assert!(err.contains("postgres://"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = chaoshub::config::HubConfig::from_toml(
        "[store]\nurl = \"postgres://db/x?sslmode=sometimes\"\n",
        std::path::Path::new("hub.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslmode"), "{err}");
    for ok in [
        "postgres://db/x",
        "postgresql://u:p@db:5432/x?sslmode=verify-full",
        "sqlite:/var/lib/chaoshub",
    ] {
        let text = format!("[store]\nurl = \"{ok}\"\n");
        chaoshub::config::HubConfig::from_toml(&text, std::path::Path::new("hub.toml"))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

/// TLS to PostgreSQL: a server with a certificate made here (CA and server certificate for
/// 127.0.0.1 from rcgen). `require` encrypts without checking; `verify-full` checks the chain
/// against `sslrootcert` and the host; a wrong CA is refused; `disable` stays plain.
#[test]
fn sslmode_require_and_verify_full_against_a_tls_server() {
    if chaoshub_testkit::postgres::bin_dir().is_none() {
        chaoshub_testkit::skip_or_fail_in_ci(
            "PostgreSQL (Debian postgresql) not installed: run scripts/install-test-deps.sh",
        );
        return;
    }
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "chaoshub test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let cert_pem = server_cert.pem();
    let key_pem = server_key.serialize_pem();
    let server = PostgresServer::start(
        &[
            ("ssl", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
        ],
        &[
            ("server.crt", cert_pem.as_bytes()),
            ("server.key", key_pem.as_bytes()),
        ],
    )
    .expect("binaries found above");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = other_params.self_signed(&other_key).unwrap();
    let wrong_ca_file = dir.path().join("wrong.pem");
    std::fs::write(&wrong_ca_file, other_ca.pem()).unwrap();

    let ssl_connections = |db: &str| {
        server.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{db}' AND s.ssl"),
        )
    };
    for (mode, extra) in [
        ("require", String::new()),
        ("verify-full", format!("&sslrootcert={}", ca_file.display())),
    ] {
        let db = server.create_database();
        let url = format!("{}{extra}", server.url_with(&db.name, mode));
        let store = PgStore::connect(&url).unwrap_or_else(|e| panic!("{mode}: {e:?}"));
        insert(&store, &row("tls", ExperimentPhase::Running));
        assert!(store
            .find_experiment_by_name("default", "tls")
            .unwrap()
            .is_some());
        assert_ne!(
            ssl_connections(&db.name),
            "0",
            "{mode}: the store's connection is TLS"
        );
        drop(store);
    }
    let db = server.create_database();
    let url = format!(
        "{}&sslrootcert={}",
        server.url_with(&db.name, "verify-full"),
        wrong_ca_file.display()
    );
    let err = PgStore::connect(&url).unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    let store = PgStore::connect(&server.url_with(&db.name, "disable")).unwrap();
    store.halt_status().unwrap();
    assert_eq!(ssl_connections(&db.name), "0", "disable stays plain");
    drop(store);

    // Host name checks: the certificate names 127.0.0.1, not localhost. verify-ca checks the
    // chain only; verify-full refuses the name.
    let by_name = |mode: &str, db: &str| {
        format!(
            "postgres://postgres@localhost:{}/{db}?sslmode={mode}&sslrootcert={}",
            server.port(),
            ca_file.display()
        )
    };
    let db = server.create_database();
    let store = PgStore::connect(&by_name("verify-ca", &db.name)).unwrap();
    store.halt_status().unwrap();
    assert_ne!(ssl_connections(&db.name), "0", "verify-ca: TLS");
    drop(store);
    let err = PgStore::connect(&by_name("verify-full", &db.name)).unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    // prefer (libpq's default, and the default without sslmode): TLS when the server offers it.
    let db = server.create_database();
    let store = PgStore::connect(&server.url_with(&db.name, "prefer")).unwrap();
    store.halt_status().unwrap();
    assert_ne!(
        ssl_connections(&db.name),
        "0",
        "prefer takes TLS when offered"
    );
    drop(store);
    if let Some(plain) = pg() {
        let db = plain.create_database();
        let store = PgStore::connect(&plain.url_with(&db.name, "prefer")).unwrap();
        store.halt_status().unwrap();
        drop(store);
        let err = PgStore::connect(&plain.url_with(&db.name, "require")).unwrap_err();
        assert!(
            matches!(err, StoreError::Connect { .. }),
            "require refuses a server without TLS: {err:?}"
        );
    }
}

/// A hub serving from PostgreSQL (`store.url`): an experiment submitted over the API runs to
/// its end and is still there after the hub restarts on a fresh data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_serves_from_postgres_and_keeps_state_across_restarts() {
    use super::support::{authed_client, config, delay_yaml, MemoryAdapter};
    let Some(server) = pg() else { return };
    let db = server.create_database();
    chaoshub_adapters::install_crypto_provider();
    let adapter = MemoryAdapter::with_targets(2);
    let start = |dir: std::path::PathBuf| {
        let mut registry = chaoshub_adapters::AdapterRegistry::builtin();
        registry.register(Arc::new(adapter.clone()));
        let mut config = config(&dir);
        config.store.url = Some(db.url.clone());
        chaoshub::server::start_with(config, registry)
    };
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path().to_path_buf()).await.unwrap();
    let client = authed_client(dir.path());
    let url = hub.url();
    let post = |path: &str, body: String| {
        client
            .post(format!("{url}{path}"))
            .header("content-type", "application/yaml")
            .body(body)
            .send()
    };
    let r = post("/api/v1/environments", "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: mem}\nspec: {adapter: memory}\n".into()).await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = post(
        "/api/v1/experiments",
        delay_yaml("pg-delay", Some("300ms"), ""),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let body: serde_json::Value = r.json().await.unwrap();
    let uid = body["metadata"]["uid"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let v: serde_json::Value = client
            .get(format!("{url}/api/v1/experiments/{uid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"]["phase"] == "Finished" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not finished: {v:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The admin token lives in the database too: the restarted hub (new data dir) accepts it.
    hub.shutdown().await;
    let token = super::support::admin_token(dir.path());
    let dir2 = tempfile::tempdir().unwrap();
    let hub = start(dir2.path().to_path_buf()).await.unwrap();
    let v: serde_json::Value = super::support::client_with_token(&token)
        .get(format!("{}/api/v1/experiments/{uid}", hub.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"]["phase"], "Finished", "{v:#}");
    let events: serde_json::Value = super::support::client_with_token(&token)
        .get(format!("{}/api/v1/events?experiment={uid}", hub.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(events.to_string().contains(&uid), "{events:#}");
    hub.shutdown().await;
}

/// `chaoshub migrate`: a hub's SQLite store with experiments, events, tokens, audit entries,
/// environments, suite runs and agent credentials, copied into PostgreSQL with ids kept and
/// verified table by table; the copy then serves as a store and goes on numbering after the
/// copied ids. A non-empty target is refused without `--force`.
#[test]
fn migrate_copies_a_sqlite_store_into_postgres_and_verifies_it() {
    let Some(server) = pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (uids, last_event) = {
        let sqlite = SqliteStore::open(dir.path(), "normal").unwrap();
        let mut uids = Vec::new();
        for i in 0..4 {
            let r = insert(&sqlite, &row(&format!("m{i}"), ExperimentPhase::Running));
            let mut status = r.status.clone();
            status.phase = ExperimentPhase::Finished;
            sqlite
                .update_status(
                    &r.uid,
                    &status,
                    &[event(Some(&r.uid), &format!("done {i}"))],
                )
                .unwrap();
            uids.push(r.uid);
        }
        sqlite.set_archived(&uids[0], &[]).unwrap();
        sqlite
            .insert_token(
                &token("ci", "h1"),
                Some(&audit("admin", Some("token ci"), "success")),
            )
            .unwrap();
        sqlite.append_audit(&audit("bob", None, "denied")).unwrap();
        sqlite
            .put_environment(
                &serde_json::from_value(serde_json::json!({
                    "apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment",
                    "metadata": {"name": "mem"}, "spec": {"adapter": "memory"}
                }))
                .unwrap(),
                false,
            )
            .unwrap();
        sqlite
            .set_halt(&HaltStatus {
                halted: true,
                reason: Some("drill".into()),
                ..Default::default()
            })
            .unwrap();
        sqlite
            .insert_join_token(
                &JoinTokenRecord {
                    id: "j1".into(),
                    environment: "edge".into(),
                    created_at: "2030-01-01T00:00:00.000Z".into(),
                    expires_at: None,
                    revoked_at: None,
                    last_used_at: None,
                    uses: 0,
                },
                "jh",
            )
            .unwrap();
        sqlite
            .issue_agent_credential(
                &AgentCredentialRecord {
                    environment: "edge".into(),
                    name: "h1".into(),
                    join_token_id: "j1".into(),
                    created_at: "2030-01-02T00:00:00.000Z".into(),
                    last_used_at: None,
                },
                "ch",
            )
            .unwrap();
        // A gap in the ids, as retention leaves: ids must be kept, not renumbered.
        sqlite.prune_events("9999", 0).unwrap();
        sqlite.append_events(&[event(None, "after prune")]).unwrap();
        let last = events_of(&sqlite, None).last().unwrap().id;
        (uids, last)
    };
    let db = server.create_database();
    let checks = chaoshub::store::migrate::sqlite_to_postgres(dir.path(), &db.url, false).unwrap();
    assert_eq!(checks.len(), 9, "{checks:?}");
    for c in &checks {
        assert!(c.matches(), "{c:?}");
    }
    let rows = |t: &str| checks.iter().find(|c| c.table == t).unwrap().target_rows;
    assert_eq!(rows("experiments"), 4);
    assert_eq!(rows("events"), 1);
    assert_eq!(rows("api_tokens"), 1);
    assert_eq!(rows("audit"), 2);
    assert_eq!(rows("agent_credentials"), 1);

    let pg = PgStore::connect(&db.url).unwrap();
    let archived = pg.get_experiment(&uids[0]).unwrap().unwrap();
    assert!(archived.status.archived);
    assert_eq!(archived.status.phase, ExperimentPhase::Finished);
    assert_eq!(pg.halt_status().unwrap().reason.as_deref(), Some("drill"));
    assert_eq!(pg.token_by_hash("h1").unwrap().unwrap().info.name, "ci");
    assert_eq!(pg.find_join_token("jh").unwrap().unwrap().uses, 1);
    let copied = events_of(&pg, None);
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].id, last_event, "ids are kept");
    // New rows number on after the copied ones.
    let next = pg.append_events(&[event(None, "new")]).unwrap();
    assert!(next[0].id > last_event);
    let r = insert(&pg, &row("fresh", ExperimentPhase::Pending));
    let max_seq = uids
        .iter()
        .map(|u| pg.get_experiment(u).unwrap().unwrap().seq)
        .max()
        .unwrap();
    assert!(r.seq > max_seq);
    drop(pg);

    // Not into a database that holds data, unless forced.
    let err = chaoshub::store::migrate::sqlite_to_postgres(dir.path(), &db.url, false).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    // The command itself, forced: prints the verification and exits 0.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaoshub"))
        .args(["migrate", "--force", "--from"])
        .arg(format!("sqlite:{}", dir.path().display()))
        .args(["--to", &db.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every table verified"), "{stdout}");
    assert_eq!(stdout.matches(" ok\n").count(), 9, "{stdout}");
    assert_eq!(
        server.psql(&db.name, "SELECT count(*) FROM experiments"),
        "4",
        "--force replaced what the target held"
    );
    // A source that is not a hub's data directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaoshub"))
        .args([
            "migrate",
            "--from",
            "sqlite:/nonexistent/dir",
            "--to",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chaoshub.db"));
}

/// The testkit's throwaway server is stopped and its directory removed when the test that
/// started it panics.
#[test]
fn a_test_server_is_stopped_and_removed_even_when_its_test_panics() {
    if chaoshub_testkit::postgres::bin_dir().is_none() {
        chaoshub_testkit::skip_or_fail_in_ci(
            "PostgreSQL (Debian postgresql) not installed: run scripts/install-test-deps.sh",
        );
        return;
    }
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = PostgresServer::start(&[], &[]).unwrap();
        assert_eq!(server.psql("postgres", "SELECT 1"), "1");
        *seen.lock().unwrap() = Some((server.dir().to_path_buf(), server.port()));
        panic!("the test failed (on purpose)");
    }));
    assert!(result.is_err());
    let (dir, port) = seen.into_inner().unwrap().unwrap();
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens on {port}"
    );
}

/// `chaoshub serve` with `CHAOSHUB_STORE_URL=postgres://…` (the environment form of
/// `--store-url`) serves from the database: the admin token the hub makes on first start and
/// its first events are stored there. A `--store-url` that is neither SQLite nor PostgreSQL
/// stops the start with a message naming `store.url`.
#[test]
fn serve_takes_the_store_from_the_command_line() {
    let Some(server) = pg() else { return };
    let db = server.create_database();
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_chaoshub"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CHAOSHUB_STORE_URL", &db.url)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--addr-file")
            .arg(&addr_file)
            .env("CHAOSHUB_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !addr_file.exists() {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("chaoshub serve exited ({status}): {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        server.psql(
            &db.name,
            "SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL"
        ),
        "1",
        "the first start's admin token is in PostgreSQL"
    );
    assert!(server
        .psql(&db.name, "SELECT count(*) FROM events")
        .parse::<u64>()
        .is_ok_and(|n| n > 0));
    drop(child);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaoshub"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store-url",
            "mysql://root:hunter2@db/x",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.url"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
