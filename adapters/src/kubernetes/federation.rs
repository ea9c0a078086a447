//! Chaos Mesh federation: the manifest is server-side applied to the cluster as it is, Chaos
//! Mesh's controller injects it, and its own status is the confirmation.
//!
//! - The object is named `chaoshub-<injection id>` in the experiment's namespace and labelled
//!   `chaoshub.dev/experiment-uid` and `chaoshub.dev/injection-id`, so a restarted hub finds
//!   exactly its own. Applied with field manager `chaoshub`, without `force`: a field someone
//!   else owns is a 409 conflict, reported, never overwritten.
//! - Only `spec.environment` / `spec.remoteCluster` are left out of the applied spec: they name
//!   the hub's environment, and Chaos Mesh would otherwise forward the object to its own remote
//!   cluster.
//! - Confirmed when Chaos Mesh's conditions say `Selected` and `AllInjected` (and not `Paused`);
//!   `status.experiment.containerRecords` become the injection's target records.
//! - Pause and resume go through Chaos Mesh's pause annotation, applied by the same field
//!   manager (so applying without it removes it again).
//! - Recovery deletes the object and waits until Chaos Mesh has removed its finalizer (the
//!   object is gone only once Chaos Mesh has recovered every record).
//!
//! Waiting is a watch on the one object (field selector on its name), never a polling loop.

use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, WatchEvent, WatchParams};
use kube::discovery::ApiResource;
use serde_json::{json, Map, Value};

use super::client::{api_code, Cluster};
use super::cluster::{ServedKind, CHAOS_MESH_GROUP, CHAOS_MESH_VERSION};
use crate::{AdapterError, FaultRequest};

pub const FIELD_MANAGER: &str = "chaoshub";
pub const EXPERIMENT_UID_LABEL: &str = "chaoshub.dev/experiment-uid";
pub const INJECTION_ID_LABEL: &str = "chaoshub.dev/injection-id";
/// Chaos Mesh's pause annotation (`"true"` pauses an experiment).
pub const PAUSE_ANNOTATION: &str = "experiment.chaos-mesh.org/pause";
/// The finalizer Chaos Mesh keeps on an experiment until its records are recovered.
pub const RECORDS_FINALIZER: &str = "chaos-mesh/records";

/// The object's name: derived from the injection id alone, so recovery finds it even when the
/// hub crashed before it stored what `inject` returned.
pub fn object_name(injection_id: &str) -> String {
    format!("chaoshub-{injection_id}")
}

pub fn api_resource(kind: &ServedKind) -> ApiResource {
    ApiResource {
        group: CHAOS_MESH_GROUP.into(),
        version: CHAOS_MESH_VERSION.into(),
        api_version: format!("{CHAOS_MESH_GROUP}/{CHAOS_MESH_VERSION}"),
        kind: kind.kind.clone(),
        plural: kind.resource.clone(),
    }
}

pub fn api(cluster: &Cluster, kind: &ServedKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client.clone(), namespace, &api_resource(kind))
}

/// The object to apply: the manifest unchanged, named and labelled for the hub.
pub fn desired_object(fault: &FaultRequest, namespace: &str, paused: bool) -> Value {
    let manifest = fault.manifest.to_value();
    let mut spec = manifest.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("environment");
        spec.remove("remoteCluster");
    }
    let metadata = manifest.get("metadata");
    let mut labels: Map<String, Value> = metadata
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(
        EXPERIMENT_UID_LABEL.into(),
        fault.experiment_uid.clone().into(),
    );
    labels.insert(INJECTION_ID_LABEL.into(), fault.injection_id.clone().into());
    let mut annotations: Map<String, Value> = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if paused {
        annotations.insert(PAUSE_ANNOTATION.into(), "true".into());
    } else {
        annotations.remove(PAUSE_ANNOTATION);
    }
    let mut meta = json!({
        "name": object_name(&fault.injection_id),
        "namespace": namespace,
        "labels": labels,
    });
    if !annotations.is_empty() {
        meta["annotations"] = Value::Object(annotations);
    }
    json!({
        "apiVersion": format!("{CHAOS_MESH_GROUP}/{CHAOS_MESH_VERSION}"),
        "kind": fault.kind(),
        "metadata": meta,
        "spec": spec,
    })
}

/// Server-side apply of the object; returns it as the server stored it.
pub async fn apply(
    cluster: &Cluster,
    kind: &ServedKind,
    namespace: &str,
    object: &Value,
) -> Result<DynamicObject, AdapterError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api = api(cluster, kind, namespace);
    let params = PatchParams::apply(FIELD_MANAGER);
    let context = format!("applying {} {namespace}/{name}", kind.kind);
    match tokio::time::timeout(
        super::client::REQUEST_TIMEOUT,
        api.patch(name, &params, &Patch::Apply(object)),
    )
    .await
    {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(e)) if api_code(&e) == Some(409) => Err(AdapterError::Rejected(format!(
            "{context}: a field chaoshub sets is owned by another field manager (server-side \
             apply conflict; someone changed the object): {e}"
        ))),
        Ok(Err(e)) => Err(cluster.error(&context, e)),
        Err(_) => Err(AdapterError::Unreachable {
            environment: cluster.environment.clone(),
            endpoint: cluster.server.clone(),
            message: format!("{context}: no answer"),
        }),
    }
}

/// A condition's status (`"True"`, `"False"`, `"Unknown"`) in Chaos Mesh's status.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

/// Chaos Mesh reports the fault in force.
pub fn injected(object: &Value) -> bool {
    condition(object, "Selected") == Some("True")
        && condition(object, "AllInjected") == Some("True")
        && condition(object, "Paused") != Some("True")
        && object
            .pointer("/status/experiment/desiredPhase")
            .and_then(Value::as_str)
            .is_none_or(|p| p == "Run")
}

pub fn paused(object: &Value) -> bool {
    condition(object, "Paused") == Some("True")
}

/// Field managers other than chaoshub that own a field of the object's `spec`, each with the
/// top-level spec fields it owns (`kubectl-edit (Update): spec.delay`). Chaos Mesh's own
/// controller writes only `status`, finalizers and annotations, and its admission webhook's
/// defaults are owned by the request's manager (chaoshub), so anyone here changed the fault.
pub fn foreign_spec_owners(object: &Value) -> Vec<String> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.get("manager").and_then(Value::as_str) != Some(FIELD_MANAGER))
        .filter_map(|e| {
            let spec = e.pointer("/fieldsV1/f:spec")?.as_object()?;
            let fields: Vec<String> = spec
                .keys()
                .filter_map(|k| k.strip_prefix("f:"))
                .map(|k| format!("spec.{k}"))
                .collect();
            Some(format!(
                "field manager {:?} ({}) owns {}",
                e.get("manager").and_then(Value::as_str).unwrap_or("?"),
                e.get("operation").and_then(Value::as_str).unwrap_or("?"),
                if fields.is_empty() {
                    "part of spec".to_string()
                } else {
                    fields.join(", ")
                }
            ))
        })
        .collect()
}

/// Whether the object read back (`None`: it does not exist) is drift from what the hub applied
/// (`uid`: the object's UID when it was applied, if known): `Absent` when it is gone or Chaos
/// Mesh holds it paused, `Changed` when it is being deleted, was recreated, or another field
/// manager changed its spec; `None` when it is still the hub's. The one rule both the read-back
/// (`status`) and the drift watch apply.
pub fn drift_of(object: Option<&Value>, uid: Option<&str>) -> Option<crate::InjectionState> {
    use crate::InjectionState::{Absent, Changed};
    let Some(object) = object else {
        return Some(Absent);
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    if uid.is_some_and(|u| object.pointer("/metadata/uid").and_then(Value::as_str) != Some(u)) {
        return Some(Changed(format!(
            "{name} was deleted and recreated by someone else"
        )));
    }
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return Some(Changed(format!(
            "{name} is being deleted by someone else (Chaos Mesh is recovering it)"
        )));
    }
    let owners = foreign_spec_owners(object);
    if !owners.is_empty() {
        return Some(Changed(format!(
            "the spec of {name} was changed: {}",
            owners.join("; ")
        )));
    }
    paused(object).then_some(Absent)
}

/// Why a drift the watch saw matters, in words.
pub fn drift_message(object: Option<&Value>, state: &crate::InjectionState) -> String {
    match (state, object) {
        (crate::InjectionState::Changed(m), _) => m.clone(),
        (_, None) => "the object was deleted".into(),
        (_, Some(_)) => "Chaos Mesh reports the object paused".into(),
    }
}

/// Chaos Mesh's per-target records, as chaoshub target records: `id` as Chaos Mesh writes it
/// (`namespace/pod` or `namespace/pod/container`), split into its parts.
pub fn records(object: &Value) -> Vec<Value> {
    let Some(list) = object
        .pointer("/status/experiment/containerRecords")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|r| {
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            let mut parts = id.splitn(3, '/');
            let mut record = json!({
                "id": id,
                "selectorKey": r.get("selectorKey").cloned().unwrap_or(Value::Null),
                "phase": r.get("phase").cloned().unwrap_or(Value::Null),
                "injectedCount": r.get("injectedCount").cloned().unwrap_or(json!(0)),
                "recoveredCount": r.get("recoveredCount").cloned().unwrap_or(json!(0)),
            });
            if let (Some(ns), Some(pod)) = (parts.next(), parts.next()) {
                record["namespace"] = ns.into();
                record["pod"] = pod.into();
                if let Some(container) = parts.next() {
                    record["container"] = container.into();
                }
            }
            record
        })
        .collect()
}

/// Conditions in one line, for messages.
pub fn describe(object: Option<&Value>) -> String {
    let Some(object) = object else {
        return "the object does not exist".into();
    };
    let conditions: Vec<String> = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    format!(
                        "{}={}",
                        c.get("type").and_then(Value::as_str).unwrap_or("?"),
                        c.get("status").and_then(Value::as_str).unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if conditions.is_empty() {
        "Chaos Mesh has written no status yet (is its controller running?)".into()
    } else {
        format!("Chaos Mesh's conditions: {}", conditions.join(", "))
    }
}

/// Waits, through a watch on the one object, until `done` holds for it (`None`: it does not
/// exist). Returns the last state seen; `Err` with that state described on timeout.
pub async fn wait_for(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(Option<&Value>) -> bool,
) -> Result<Option<Value>, AdapterError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let context = format!("waiting until {what}");
    let mut current = cluster
        .call(&context, api.get_opt(name))
        .await?
        .map(to_value);
    loop {
        if done(current.as_ref()) {
            return Ok(current);
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(AdapterError::Failed(format!(
                "{context}: not within {} ms; {}",
                timeout.as_millis(),
                describe(current.as_ref())
            )));
        }
        let version = current
            .as_ref()
            .and_then(|o| o.pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string);
        // Without an object to start from, watch from "now" as seen by a fresh list.
        let version = match version {
            Some(v) => v,
            None => {
                let list = cluster
                    .call(
                        &context,
                        api.list_metadata(
                            &kube::api::ListParams::default()
                                .fields(&format!("metadata.name={name}")),
                        ),
                    )
                    .await?;
                list.metadata.resource_version.unwrap_or_default()
            }
        };
        let seconds = remaining.as_secs().clamp(1, 290) as u32;
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(seconds);
        let stream = match tokio::time::timeout(remaining, api.watch(&params, &version)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(cluster.error(&context, e)),
            Err(_) => continue,
        };
        let mut stream = stream.boxed();
        let mut restart = false;
        while !restart {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = match tokio::time::timeout(left, stream.next()).await {
                Err(_) => break,
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(cluster.error(&context, e)),
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => current = Some(to_value(o)),
                WatchEvent::Deleted(_) => current = None,
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(status) if status.code == 410 => {
                    // The start version is too old: read the object again and watch anew.
                    current = cluster
                        .call(&context, api.get_opt(name))
                        .await?
                        .map(to_value);
                    restart = true;
                }
                WatchEvent::Error(status) => {
                    return Err(AdapterError::Failed(format!(
                        "{context}: the watch failed: {} {}",
                        status.code, status.message
                    )))
                }
            }
            if done(current.as_ref()) {
                return Ok(current);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AdapterError::Failed(format!(
                "{context}: not within {} ms; {}",
                timeout.as_millis(),
                describe(current.as_ref())
            )));
        }
    }
}

/// Deletes the object (absent is success) and waits until it is gone, finalizer included.
pub async fn delete_and_wait(
    cluster: &Cluster,
    kind: &ServedKind,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), AdapterError> {
    let api = api(cluster, kind, namespace);
    let context = format!("deleting {} {namespace}/{name}", kind.kind);
    match tokio::time::timeout(
        super::client::REQUEST_TIMEOUT,
        api.delete(name, &DeleteParams::default()),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if api_code(&e) == Some(404) => return Ok(()),
        Ok(Err(e)) => return Err(cluster.error(&context, e)),
        Err(_) => {
            return Err(AdapterError::Unreachable {
                environment: cluster.environment.clone(),
                endpoint: cluster.server.clone(),
                message: format!("{context}: no answer"),
            })
        }
    }
    let gone = wait_for(
        cluster,
        &api,
        name,
        timeout,
        &format!(
            "{} {namespace}/{name} is gone (Chaos Mesh removes its finalizer {RECORDS_FINALIZER} once every record is recovered)",
            kind.kind
        ),
        |o| o.is_none(),
    )
    .await;
    gone.map(drop)
}

pub fn to_value(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_applied_object_is_the_manifest_named_and_labelled_for_the_hub() {
        let manifest = chaoshub_schema::parse_one(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d, namespace: shop, labels: {team: a}, annotations: {note: x}}\nspec:\n  action: delay\n  mode: one\n  selector: {labelSelectors: {app: web}}\n  delay: {latency: 90ms}\n  remoteCluster: staging\n",
        )
        .unwrap();
        let fault = FaultRequest {
            experiment_uid: "u1".into(),
            injection_id: "u1-0".into(),
            name: "d".into(),
            namespace: "shop".into(),
            manifest: Arc::new(manifest),
            actions: vec!["delay".into()],
            deadline: None,
        };
        let object = desired_object(&fault, "shop", false);
        assert_eq!(object["metadata"]["name"], json!("chaoshub-u1-0"));
        assert_eq!(object["metadata"]["namespace"], json!("shop"));
        assert_eq!(object["metadata"]["labels"]["team"], json!("a"));
        assert_eq!(
            object["metadata"]["labels"][EXPERIMENT_UID_LABEL],
            json!("u1")
        );
        assert_eq!(
            object["metadata"]["labels"][INJECTION_ID_LABEL],
            json!("u1-0")
        );
        assert_eq!(object["metadata"]["annotations"]["note"], json!("x"));
        assert_eq!(object["spec"]["delay"]["latency"], json!("90ms"));
        assert_eq!(object["spec"]["mode"], json!("one"));
        assert!(object["spec"].get("remoteCluster").is_none());
        assert!(object["spec"].get("environment").is_none());
        let paused = desired_object(&fault, "shop", true);
        assert_eq!(
            paused["metadata"]["annotations"][PAUSE_ANNOTATION],
            json!("true")
        );
    }

    #[test]
    fn chaos_mesh_status_is_read_as_it_is_written() {
        let status = |all_injected: &str, paused: &str, desired: &str| {
            json!({"status": {
                "conditions": [
                    {"type": "Selected", "status": "True"},
                    {"type": "AllInjected", "status": all_injected},
                    {"type": "AllRecovered", "status": "False"},
                    {"type": "Paused", "status": paused},
                ],
                "experiment": {"desiredPhase": desired, "containerRecords": [
                    {"id": "shop/web-0", "selectorKey": ".", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0},
                    {"id": "shop/web-1/app", "selectorKey": "target", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0}
                ]}
            }})
        };
        assert!(injected(&status("True", "False", "Run")));
        assert!(!injected(&status("False", "False", "Run")));
        assert!(!injected(&status("True", "True", "Run")));
        assert!(!injected(&status("True", "False", "Stop")));
        assert!(paused(&status("False", "True", "Stop")));
        assert!(!injected(&json!({})));
        let records = records(&status("True", "False", "Run"));
        assert_eq!(records[0]["pod"], json!("web-0"));
        assert_eq!(records[0]["namespace"], json!("shop"));
        assert_eq!(records[1]["container"], json!("app"));
        assert_eq!(records[1]["selectorKey"], json!("target"));
        assert!(describe(Some(&json!({}))).contains("no status yet"));
        assert!(describe(Some(&status("False", "False", "Run"))).contains("AllInjected=False"));
    }

    #[test]
    fn drift_is_a_deletion_a_recreation_a_pause_or_a_spec_field_another_manager_owns() {
        use crate::InjectionState::{Absent, Changed};
        let ours = json!({"metadata": {"name": "chaoshub-u-0", "uid": "a", "managedFields": [
            {"manager": "chaoshub", "operation": "Apply", "fieldsV1": {"f:spec": {"f:delay": {}}}},
            {"manager": "chaos-controller-manager", "operation": "Update",
             "fieldsV1": {"f:status": {}, "f:metadata": {"f:finalizers": {}}}}
        ]}});
        assert_eq!(drift_of(Some(&ours), Some("a")), None);
        assert_eq!(drift_of(Some(&ours), None), None);
        assert_eq!(drift_of(None, Some("a")), Some(Absent));
        assert!(
            matches!(drift_of(Some(&ours), Some("b")), Some(Changed(m)) if m.contains("recreated"))
        );
        let mut deleting = ours.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-07T08:00:00Z");
        assert!(
            matches!(drift_of(Some(&deleting), Some("a")), Some(Changed(m)) if m.contains("being deleted"))
        );
        let mut edited = ours.clone();
        edited["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"manager": "kubectl-edit", "operation": "Update",
                         "fieldsV1": {"f:spec": {"f:delay": {"f:latency": {}}, "f:mode": {}}}}));
        let Some(Changed(message)) = drift_of(Some(&edited), Some("a")) else {
            panic!("an edit by another manager is drift")
        };
        assert!(
            message.contains("\"kubectl-edit\" (Update) owns spec.delay, spec.mode"),
            "{message}"
        );
        let mut paused = ours.clone();
        paused["status"] = json!({"conditions": [{"type": "Paused", "status": "True"}]});
        assert_eq!(drift_of(Some(&paused), Some("a")), Some(Absent));
        assert_eq!(drift_message(None, &Absent), "the object was deleted");
    }
}
