//! `StandInChaosMeshController`: a **stand-in for Chaos Mesh's controller-manager**, which
//! cannot run here (no kubelet, no chaos-daemon). It does only what the federation mode reads:
//! for every Chaos Mesh object of one kind in one namespace it adds Chaos Mesh's finalizer,
//! selects pods (the object's namespace or `selector.namespaces`, `labelSelectors`, mode `one`
//! as the first pod by name or `all`), and writes the status Chaos Mesh 2.x writes through the
//! main resource (the CRDs declare no status subresource): the `Selected`, `AllInjected`,
//! `AllRecovered` and `Paused` conditions, `status.experiment.desiredPhase` and one
//! `containerRecords` entry per pod (`id: namespace/pod`, `selectorKey: "."`, `phase`
//! `Injected` / `Not Injected`, the counts). It injects nothing, and only once the test opens
//! its gate; the pause annotation pauses (unless the test holds pauses back, to see that the
//! hub waits for Chaos Mesh's word); a deleted object has its records recovered and its
//! finalizer removed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, PostParams, WatchParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use tokio::sync::Notify;

const FINALIZER: &str = "chaos-mesh/records";
const PAUSE: &str = "experiment.chaos-mesh.org/pause";
const MANAGER: &str = "chaos-controller-manager-stand-in";

pub struct StandInChaosMeshController {
    gate: Arc<Mutex<bool>>,
    /// Whether it acts on the pause annotation (default yes).
    pauses: Arc<Mutex<bool>>,
    poke: Arc<Notify>,
    /// What it recorded per object name: the record ids (`namespace/pod`).
    recorded: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StandInChaosMeshController {
    /// Starts watching `plural` objects in `namespace`, its gate closed.
    pub fn start(client: kube::Client, kind: &str, plural: &str, namespace: &str) -> Self {
        let resource = ApiResource {
            group: "chaos-mesh.org".into(),
            version: "v1alpha1".into(),
            api_version: "chaos-mesh.org/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let gate = Arc::new(Mutex::new(false));
        let pauses = Arc::new(Mutex::new(true));
        let poke = Arc::new(Notify::new());
        let recorded = Arc::new(Mutex::new(BTreeMap::new()));
        let task = tokio::spawn(run(
            api,
            pods,
            namespace.to_string(),
            Arc::clone(&gate),
            Arc::clone(&pauses),
            Arc::clone(&poke),
            Arc::clone(&recorded),
        ));
        Self {
            gate,
            pauses,
            poke,
            recorded,
            task,
        }
    }

    /// From now on it reports objects injected.
    pub fn open_gate(&self) {
        *self.gate.lock().unwrap() = true;
        self.poke.notify_one();
    }

    /// Whether it acts on the pause annotation from now on (`false`: it keeps reporting the
    /// fault injected, as a Chaos Mesh that has not got round to it yet).
    #[allow(dead_code)] // used by the hub's tests only
    pub fn honour_pauses(&self, yes: bool) {
        *self.pauses.lock().unwrap() = yes;
        self.poke.notify_one();
    }

    pub fn recorded(&self, name: &str) -> Vec<String> {
        self.recorded
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for StandInChaosMeshController {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    api: Api<DynamicObject>,
    pods: Api<Pod>,
    namespace: String,
    gate: Arc<Mutex<bool>>,
    pauses: Arc<Mutex<bool>>,
    poke: Arc<Notify>,
    recorded: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
) {
    loop {
        // List, reconcile everything, then wait for a change (watch), a poke or a resync.
        let Ok(list) = api.list(&ListParams::default()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let open = *gate.lock().unwrap();
        let honour_pauses = *pauses.lock().unwrap();
        for object in list.items {
            reconcile(
                &api,
                &pods,
                &namespace,
                object,
                (open, honour_pauses),
                &recorded,
            )
            .await;
        }
        let version = list.metadata.resource_version.unwrap_or_default();
        let params = WatchParams::default().timeout(5);
        let Ok(stream) = api.watch(&params, &version).await else {
            continue;
        };
        let mut stream = stream.boxed();
        tokio::select! {
            _ = stream.next() => {}
            _ = poke.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

async fn reconcile(
    api: &Api<DynamicObject>,
    pods: &Api<Pod>,
    namespace: &str,
    object: DynamicObject,
    (open, honour_pauses): (bool, bool),
    recorded: &Mutex<BTreeMap<String, Vec<String>>>,
) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(&object).unwrap();
    let deleting = object.metadata.deletion_timestamp.is_some();
    let finalizers: Vec<String> = object.metadata.finalizers.clone().unwrap_or_default();
    if deleting {
        if finalizers.iter().any(|f| f == FINALIZER) {
            // Recover every record, then let the object go.
            let records = records_of(&value, "Not Injected", true);
            set_status(&mut value, records, false, true);
            value["metadata"]["finalizers"] = json!(finalizers
                .iter()
                .filter(|f| *f != FINALIZER)
                .collect::<Vec<_>>());
            write(api, &name, value).await;
        }
        return;
    }
    let paused = honour_pauses
        && object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSE))
            .is_some_and(|v| v == "true");
    let ids = select(pods, namespace, &value).await;
    recorded.lock().unwrap().insert(name.clone(), ids.clone());
    let injected = open && !paused;
    let phase = if injected { "Injected" } else { "Not Injected" };
    let before = value.clone();
    let previous: BTreeMap<String, (u64, u64)> = value
        .pointer("/status/experiment/containerRecords")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or_default().to_string(),
                        (
                            r["injectedCount"].as_u64().unwrap_or(0),
                            r["recoveredCount"].as_u64().unwrap_or(0),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            let (mut inj, mut rec) = previous.get(id).copied().unwrap_or((0, 0));
            let was = before
                .pointer("/status/experiment/containerRecords")
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|r| r["id"] == json!(id)))
                .and_then(|r| r["phase"].as_str())
                .unwrap_or("Not Injected")
                .to_string();
            if injected && was != "Injected" {
                inj += 1;
            }
            if !injected && was == "Injected" {
                rec += 1;
            }
            json!({"id": id, "selectorKey": ".", "phase": phase,
                   "injectedCount": inj, "recoveredCount": rec})
        })
        .collect();
    set_status(&mut value, records, paused, false);
    if !finalizers.iter().any(|f| f == FINALIZER) {
        let mut f = finalizers.clone();
        f.push(FINALIZER.into());
        value["metadata"]["finalizers"] = json!(f);
    }
    if value["status"] != before["status"]
        || value["metadata"]["finalizers"] != before["metadata"]["finalizers"]
    {
        write(api, &name, value).await;
    }
}

fn records_of(value: &Value, phase: &str, recovering: bool) -> Vec<Value> {
    value
        .pointer("/status/experiment/containerRecords")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut r| {
            if recovering && r["phase"] == json!("Injected") {
                r["recoveredCount"] = json!(r["recoveredCount"].as_u64().unwrap_or(0) + 1);
            }
            r["phase"] = phase.into();
            r
        })
        .collect()
}

fn set_status(value: &mut Value, records: Vec<Value>, paused: bool, deleting: bool) {
    let all =
        |phase: &str| !records.is_empty() && records.iter().all(|r| r["phase"] == json!(phase));
    let tf = |b: bool| if b { "True" } else { "False" };
    let selected = !records.is_empty();
    let all_injected = all("Injected");
    let all_recovered = records.is_empty() || all("Not Injected");
    value["status"] = json!({
        "conditions": [
            {"type": "Selected", "status": tf(selected)},
            {"type": "AllInjected", "status": tf(all_injected)},
            {"type": "AllRecovered", "status": tf(all_recovered)},
            {"type": "Paused", "status": tf(paused)},
        ],
        "experiment": {
            "desiredPhase": if deleting || paused { "Stop" } else { "Run" },
            "containerRecords": records,
        },
    });
}

/// Pods by `selector.namespaces` (default: the object's) and `labelSelectors`, then the mode.
async fn select(pods: &Api<Pod>, namespace: &str, object: &Value) -> Vec<String> {
    let labels: Vec<String> = object
        .pointer("/spec/selector/labelSelectors")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let params = ListParams::default().labels(&labels.join(","));
    let mut names: Vec<String> = pods
        .list(&params)
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if object.pointer("/spec/mode").and_then(Value::as_str) == Some("one") {
        names.truncate(1);
    }
    names
        .into_iter()
        .map(|n| format!("{namespace}/{n}"))
        .collect()
}

async fn write(api: &Api<DynamicObject>, name: &str, value: Value) {
    let object: DynamicObject = serde_json::from_value(value).unwrap();
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    // A conflict (the object changed meanwhile) is retried from the next event.
    let _ = api.replace(name, &params, &object).await;
}
