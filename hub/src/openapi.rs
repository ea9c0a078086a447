//! The OpenAPI 3.1 document of `/api/v1`, generated from the route table below and the
//! schemars schemas of `chaoshub_schema::api`. Checked in as `docs/openapi.json`; a test fails
//! when the two drift (`CHAOSHUB_UPDATE_OPENAPI=1 cargo test -p chaoshub openapi` rewrites it).

use chaoshub_schema::api::*;
use chaoshub_schema::Target;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
    ok: (&'static str, Option<&'static str>),
    errors: &'static [u16],
}

const ID_PARAM: &str = "uid, or name (with ?namespace=, default `default`)";
const TEMPLATE_PARAM: &str =
    "template name; `hub/name` (with the `/` sent as %2F) for a remote catalog's template";

fn ops() -> Vec<Op> {
    vec![
        Op { method: "get", path: "/healthz", id: "health", summary: "Liveness", query: &[], body: None, ok: ("200", Some("Health")), errors: &[] },
        Op { method: "get", path: "/readyz", id: "ready", summary: "Readiness (the store answers)", query: &[], body: None, ok: ("200", Some("Health")), errors: &[500] },
        Op { method: "get", path: "/metrics", id: "metrics", summary: "Prometheus metrics (OpenMetrics text): experiments by phase, adapter calls, confirmation latency, recovery lateness, API durations, and the fault values in force per running experiment and target", query: &[], body: None, ok: ("200", None), errors: &[500] },
        Op { method: "get", path: "/api/v1/openapi.json", id: "openapi", summary: "This document", query: &[], body: None, ok: ("200", None), errors: &[] },
        Op { method: "post", path: "/api/v1/experiments", id: "createExperiment", summary: "Submit one experiment manifest (YAML or JSON; Chaos Mesh kinds unchanged). With dryRun=true: validate, resolve targets and return the plan without injecting or storing.", query: &[("env", "environment to run in (overrides spec.environment)"), ("dryRun", "true: plan only")], body: Some("manifest"), ok: ("201", Some("ExperimentObject")), errors: &[400, 404, 409, 413, 415, 422, 502, 503] },
        Op { method: "get", path: "/api/v1/experiments", id: "listExperiments", summary: "List experiments, newest first", query: &[("phase", "filter by phase"), ("kind", "filter by kind"), ("namespace", "filter by namespace"), ("env", "filter by environment"), ("archived", "true: archived ones"), ("limit", "page size (default 100, max 1000)"), ("continue", "token from the previous page")], body: None, ok: ("200", Some("Page_ExperimentObject")), errors: &[400] },
        Op { method: "get", path: "/api/v1/experiments/{id}", id: "getExperiment", summary: "One experiment with its status and per-target records", query: &[("namespace", "namespace for a name lookup")], body: None, ok: ("200", Some("ExperimentObject")), errors: &[400, 404] },
        Op { method: "delete", path: "/api/v1/experiments/{id}", id: "deleteExperiment", summary: "Stop (recovering every fault), then archive", query: &[("namespace", "namespace for a name lookup")], body: None, ok: ("200", Some("ExperimentObject")), errors: &[400, 404] },
        Op { method: "post", path: "/api/v1/experiments/{id}/pause", id: "pauseExperiment", summary: "Remove the faults but keep the experiment; resume re-injects", query: &[("namespace", "namespace for a name lookup")], body: None, ok: ("200", Some("ExperimentObject")), errors: &[400, 404, 409] },
        Op { method: "post", path: "/api/v1/experiments/{id}/resume", id: "resumeExperiment", summary: "Re-inject a paused experiment for the rest of its duration", query: &[("namespace", "namespace for a name lookup")], body: None, ok: ("200", Some("ExperimentObject")), errors: &[400, 404, 409] },
        Op { method: "post", path: "/api/v1/experiments/{id}/stop", id: "stopExperiment", summary: "Remove the faults and end the experiment as Aborted", query: &[("namespace", "namespace for a name lookup")], body: None, ok: ("200", Some("ExperimentObject")), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/archives", id: "listArchives", summary: "Archived experiments", query: &[("phase", "filter by phase"), ("kind", "filter by kind"), ("namespace", "filter by namespace"), ("env", "filter by environment"), ("limit", "page size"), ("continue", "token from the previous page")], body: None, ok: ("200", Some("Page_ExperimentObject")), errors: &[400] },
        Op { method: "post", path: "/api/v1/environments", id: "createEnvironment", summary: "Register an environment (kind Environment), or register or update a kubernetes environment from a Chaos Mesh RemoteCluster whose annotation chaoshub.dev/kubeconfig names a kubeconfig file on the hub's host", query: &[("replace", "true: replace one of the same name")], body: Some("manifest"), ok: ("201", Some("EnvironmentObject")), errors: &[400, 409, 413, 415] },
        Op { method: "get", path: "/api/v1/environments", id: "listEnvironments", summary: "Registered environments", query: &[], body: None, ok: ("200", Some("Page_EnvironmentObject")), errors: &[] },
        Op { method: "get", path: "/api/v1/environments/{name}", id: "getEnvironment", summary: "One environment", query: &[], body: None, ok: ("200", Some("EnvironmentObject")), errors: &[404] },
        Op { method: "delete", path: "/api/v1/environments/{name}", id: "deleteEnvironment", summary: "Unregister an environment with no unfinished experiments", query: &[], body: None, ok: ("200", Some("EnvironmentObject")), errors: &[404, 409] },
        Op { method: "get", path: "/api/v1/environments/{name}/targets", id: "environmentTargets", summary: "The environment's inventory, filtered by a label selector: a page of targets by id, with the total that matched", query: &[("labelSelector", "k=v,k2!=v2,k3 in (a,b),k4,!k5"), ("limit", "page size (default 500, max 5000)"), ("continue", "token from the previous page")], body: None, ok: ("200", Some("Page_Target")), errors: &[400, 404, 502, 503] },
        Op { method: "get", path: "/api/v1/environments/{name}/capabilities", id: "environmentCapabilities", summary: "The (kind, action) pairs this environment can run", query: &[], body: None, ok: ("200", Some("Page_Capability")), errors: &[404, 502, 503] },
        Op { method: "get", path: "/api/v1/agents", id: "listAgents", summary: "chaos-agent daemons that dialled the hub: health (from heartbeats), last heartbeat, labels, addresses, capabilities and kernel mechanisms; a page by environment and name, with the total", query: &[("env", "only agents of this environment"), ("limit", "page size (default 500, max 5000)"), ("continue", "token from the previous page")], body: None, ok: ("200", Some("Page_AgentInfo")), errors: &[400] },
        Op { method: "get", path: "/api/v1/agents/{env}/{name}", id: "getAgent", summary: "One agent", query: &[], body: None, ok: ("200", Some("AgentInfo")), errors: &[404] },
        Op { method: "get", path: "/api/v1/agents/{env}/{name}/usage", id: "getAgentUsage", summary: "The agent host's usage at each heartbeat of the last 15 minutes (CPU busy share, memory in use, 1-minute load), oldest first", query: &[("since", "only samples at or after this RFC 3339 time")], body: None, ok: ("200", Some("Page_AgentUsage")), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/conformance", id: "getConformance", summary: "The conformance matrix: each adapter's answer (supported, refused with its message, n/a with why) to each kind / action / notable option, derived from the adapters' submission checks, with the effects tests measured on real far sides", query: &[], body: None, ok: ("200", Some("ConformanceMatrix")), errors: &[] },
        Op { method: "delete", path: "/api/v1/agents/{env}/{name}", id: "removeAgent", summary: "Forget an agent: delete its credential (its name may join again with a join token) and close its stream", query: &[], body: None, ok: ("200", None), errors: &[400, 404] },
        Op { method: "post", path: "/api/v1/environments/{name}/join-tokens", id: "createJoinToken", summary: "Create a join token for agents of this environment (`chaos-agent serve --join-token-file`); its secret is in this answer only, the hub keeps a hash", query: &[], body: Some("JoinTokenRequest"), ok: ("201", Some("JoinTokenInfo")), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/environments/{name}/join-tokens", id: "listJoinTokens", summary: "The environment's join tokens (without secrets): state, expiry, uses", query: &[], body: None, ok: ("200", Some("Page_JoinTokenInfo")), errors: &[404] },
        Op { method: "delete", path: "/api/v1/environments/{name}/join-tokens/{id}", id: "revokeJoinToken", summary: "Revoke a join token (agents that joined with it keep their credentials)", query: &[], body: None, ok: ("200", Some("JoinTokenInfo")), errors: &[404] },
        Op { method: "get", path: "/api/v1/adapters", id: "listAdapters", summary: "Adapter types with their capability matrices", query: &[], body: None, ok: ("200", Some("Page_AdapterInfo")), errors: &[] },
        Op { method: "get", path: "/api/v1/events", id: "listEvents", summary: "The event log, oldest first", query: &[("experiment", "uid or name"), ("namespace", "namespace for a name lookup"), ("after", "only events with a larger id"), ("since", "RFC 3339 time"), ("limit", "page size (default 500, max 5000)")], body: None, ok: ("200", Some("Page_EventRecord")), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/events/stream", id: "streamEvents", summary: "Server-Sent Events: backlog after Last-Event-ID (or ?after=), then live events", query: &[("experiment", "uid or name"), ("namespace", "namespace for a name lookup"), ("after", "only events with a larger id"), ("since", "RFC 3339 time")], body: None, ok: ("200", None), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/halt", id: "haltStatus", summary: "The halt-all switch", query: &[], body: None, ok: ("200", Some("HaltStatus")), errors: &[] },
        Op { method: "post", path: "/api/v1/halt", id: "halt", summary: "Stop every running experiment and refuse new ones (409 halted) until released", query: &[], body: Some("HaltRequest"), ok: ("200", Some("HaltStatus")), errors: &[400] },
        Op { method: "delete", path: "/api/v1/halt", id: "unhalt", summary: "Release the halt", query: &[], body: None, ok: ("200", Some("HaltStatus")), errors: &[] },
        Op { method: "post", path: "/api/v1/suites", id: "createSuiteRun", summary: "Check a Suite (kind Suite, YAML or JSON; file references must be inlined, as `chaoshub run` does) and start a run of its experiment × environment cases in the background; 400 names every problem with its path under spec", query: &[("env", "only these of the suite's environments, comma-separated")], body: Some("manifest"), ok: ("202", Some("SuiteRun")), errors: &[400, 409, 413, 415] },
        Op { method: "get", path: "/api/v1/suites/runs", id: "listSuiteRuns", summary: "Suite runs, newest first", query: &[("limit", "how many (default 100, max 1000)")], body: None, ok: ("200", Some("Page_SuiteRunSummary")), errors: &[400] },
        Op { method: "get", path: "/api/v1/suites/runs/{id}", id: "getSuiteRun", summary: "One suite run's JSON journal: cases with outcomes and messages, timings, steady-state probe results before/during/after, experiments with per-target records, threshold-search steps, progress log", query: &[], body: None, ok: ("200", Some("SuiteRun")), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/suites/runs/{id}/junit", id: "getSuiteRunJunit", summary: "One suite run's JUnit XML report (one testsuite per environment; the same document `chaoshub run --junit` writes); a run still going reports the cases so far", query: &[], body: None, ok: ("200", None), errors: &[400, 404] },
        Op { method: "get", path: "/api/v1/templates", id: "listTemplates", summary: "Search the template catalog (local and remote templates) with facet counts over the matches", query: &[("q", "words that must all occur in name, title, description or tags"), ("category", "filter by category"), ("tag", "filter by tag"), ("adapter", "filter by adapter type the template suits"), ("kind", "filter by the rendered experiment's kind"), ("source", "`local` or a remote catalog name")], body: None, ok: ("200", Some("TemplateList")), errors: &[400] },
        Op { method: "post", path: "/api/v1/templates", id: "saveTemplate", summary: "Save a Template document (YAML or JSON) into the hub's local catalog as <category>/<name>.yaml, validated like a catalog file (parameters, placeholders, the experiment rendered with the defaults: a fault or a Workflow of faults); 201 created, 200 replaced; 409 template_exists unless overwrite=true, 409 catalog_not_writable without a writable catalog_dir", query: &[("overwrite", "true: replace a local template of the same name")], body: Some("manifest"), ok: ("201", Some("TemplateDetail")), errors: &[400, 409, 413, 415] },
        Op { method: "get", path: "/api/v1/templates/{name}", id: "getTemplate", summary: "One template with the JSON Schema of its parameters (for form generation)", query: &[], body: None, ok: ("200", Some("TemplateDetail")), errors: &[404] },
        Op { method: "post", path: "/api/v1/templates/{name}/render", id: "renderTemplate", summary: "Render a template with parameters into a validated experiment manifest; unknown, missing or invalid parameters are 400s naming parameters.<name>", query: &[], body: Some("RenderRequest"), ok: ("200", Some("RenderResult")), errors: &[400, 404, 413, 415] },
        Op { method: "post", path: "/api/v1/templates/{name}/run", id: "runTemplate", summary: "Render a template and create the experiment in `env` (or plan it with dryRun)", query: &[], body: Some("RenderRequest"), ok: ("201", Some("ExperimentObject")), errors: &[400, 404, 409, 413, 415, 422, 502, 503] },
        Op { method: "get", path: "/api/v1/catalogs", id: "listCatalogs", summary: "Remote catalogs and the state of their cached copies", query: &[], body: None, ok: ("200", Some("Page_CatalogObject")), errors: &[] },
        Op { method: "post", path: "/api/v1/catalogs", id: "addCatalog", summary: "Add a remote catalog by the URL of its index file (docs/catalog.md) and fetch it once; a failed fetch is reported in lastError", query: &[], body: Some("AddCatalogRequest"), ok: ("201", Some("CatalogObject")), errors: &[400, 409, 413, 415] },
        Op { method: "get", path: "/api/v1/catalogs/{name}", id: "getCatalog", summary: "One remote catalog", query: &[], body: None, ok: ("200", Some("CatalogObject")), errors: &[404] },
        Op { method: "delete", path: "/api/v1/catalogs/{name}", id: "deleteCatalog", summary: "Remove a remote catalog and its cache", query: &[], body: None, ok: ("200", Some("CatalogObject")), errors: &[404] },
        Op { method: "post", path: "/api/v1/catalogs/{name}/refresh", id: "refreshCatalog", summary: "Check the index now; templates are fetched again only when lastChange changed", query: &[], body: None, ok: ("200", Some("CatalogObject")), errors: &[404] },
        Op { method: "get", path: "/api/v1/tokens", id: "listTokens", summary: "API tokens (never their secrets): role, scope, expiry, last use, revocation", query: &[], body: None, ok: ("200", Some("Page_TokenInfo")), errors: &[] },
        Op { method: "post", path: "/api/v1/tokens", id: "createToken", summary: "Create an API token; the answer holds its secret, shown only this once (the hub keeps a SHA-256 hash)", query: &[], body: Some("CreateTokenRequest"), ok: ("201", Some("CreatedToken")), errors: &[400, 409, 413, 415] },
        Op { method: "delete", path: "/api/v1/tokens/{name}", id: "revokeToken", summary: "Revoke a token: refused from its next request on", query: &[], body: None, ok: ("200", Some("TokenInfo")), errors: &[404] },
        Op { method: "get", path: "/api/v1/audit", id: "listAudit", summary: "The audit trail: every mutating request and every refusal, newest first (oldest first after `after`)", query: &[("principal", "token name or JWT subject"), ("object", "text the object contains (experiment name or uid, environment…)"), ("since", "RFC 3339 time"), ("until", "RFC 3339 time"), ("outcome", "success, denied or failure"), ("after", "only entries with a larger id, oldest first"), ("limit", "page size (default 500, max 5000)")], body: None, ok: ("200", Some("Page_AuditRecord")), errors: &[400] },
    ]
}

fn status_text(code: u16) -> &'static str {
    match code {
        400 => "invalid input; details name the failing fields",
        404 => "not found",
        409 => "conflict with the current state (name in use, halted, wrong phase)",
        401 => "no valid credential (Authorization: Bearer <token>); code unauthenticated",
        403 => "the token's role or scope does not allow this; code forbidden, the message names the missing permission",
        429 => "too many failed authentications from this address; see Retry-After",
        413 => "request body too large",
        415 => "unsupported content type",
        422 => "valid, but the environment cannot run this kind/action (code unsupported), or the selection hits a protected target (protected_target) or exceeds the environment's max_targets (blast_radius)",
        500 => "internal error",
        502 => "the environment answered with an error",
        503 => "the environment is unreachable",
        _ => "error",
    }
}

/// Builds the whole document.
pub fn document() -> Value {
    let settings =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into());
    let mut generator = SchemaGenerator::new(settings);
    let mut named = Map::new();
    macro_rules! add {
        ($name:literal, $ty:ty) => {
            named.insert(
                $name.to_string(),
                generator.subschema_for::<$ty>().to_value(),
            );
        };
    }
    add!("Health", Health);
    add!("ExperimentObject", ExperimentObject);
    add!("Page_ExperimentObject", Page<ExperimentObject>);
    add!("EnvironmentObject", EnvironmentObject);
    add!("Page_EnvironmentObject", Page<EnvironmentObject>);
    add!("Page_Target", Page<Target>);
    add!("Page_Capability", Page<Capability>);
    add!("Page_AdapterInfo", Page<AdapterInfo>);
    add!("ConformanceMatrix", chaoshub_schema::api::ConformanceMatrix);
    add!("Page_AgentInfo", Page<AgentInfo>);
    add!("Page_AgentUsage", Page<chaoshub_schema::api::AgentUsage>);
    add!("AgentInfo", AgentInfo);
    add!("JoinTokenRequest", JoinTokenRequest);
    add!("JoinTokenInfo", JoinTokenInfo);
    add!("Page_JoinTokenInfo", Page<JoinTokenInfo>);
    add!("Page_EventRecord", Page<EventRecord>);
    add!("HaltStatus", HaltStatus);
    add!("HaltRequest", HaltRequest);
    add!("DryRunResult", DryRunResult);
    add!("ErrorBody", ErrorBody);
    add!("TemplateList", chaoshub_schema::template::TemplateList);
    add!("TemplateDetail", chaoshub_schema::template::TemplateDetail);
    add!("RenderRequest", chaoshub_schema::template::RenderRequest);
    add!("RenderResult", chaoshub_schema::template::RenderResult);
    add!(
        "AddCatalogRequest",
        chaoshub_schema::template::AddCatalogRequest
    );
    add!("CatalogObject", chaoshub_schema::template::CatalogObject);
    add!(
        "Page_CatalogObject",
        Page<chaoshub_schema::template::CatalogObject>
    );
    add!("SuiteRun", chaoshub_schema::suite::SuiteRun);
    add!("TokenInfo", chaoshub_schema::auth::TokenInfo);
    add!("Page_TokenInfo", Page<chaoshub_schema::auth::TokenInfo>);
    add!(
        "CreateTokenRequest",
        chaoshub_schema::auth::CreateTokenRequest
    );
    add!("CreatedToken", chaoshub_schema::auth::CreatedToken);
    add!("Page_AuditRecord", Page<chaoshub_schema::auth::AuditRecord>);
    add!(
        "Page_SuiteRunSummary",
        Page<chaoshub_schema::suite::SuiteRunSummary>
    );
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    // Each name resolves to the generator's reference, or to a component of its own for
    // schemas the generator inlined.
    let mut refs = Map::new();
    for (name, schema) in named {
        if schema.get("$ref").is_some() {
            refs.insert(name, schema);
        } else {
            refs.insert(
                name.clone(),
                json!({"$ref": format!("#/components/schemas/{name}")}),
            );
            schemas.insert(name, schema);
        }
    }
    schemas.insert(
        "Manifest".into(),
        json!({"type": "object", "description": "A manifest of any kind: Chaos Mesh (chaos-mesh.org/v1alpha1) or chaoshub (chaoshub.dev/v1alpha1); per-kind JSON Schemas are in schemas/json/.", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}, "spec": {"type": "object"}}}),
    );
    let schema_ref = |name: &str| -> Value {
        refs.get(name)
            .cloned()
            .unwrap_or_else(|| json!({"$ref": format!("#/components/schemas/{name}")}))
    };
    let mut paths = Map::new();
    for op in ops() {
        let mut parameters = Vec::new();
        for segment in op.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let description = if op.path.starts_with("/api/v1/suites/") {
                    "suite run id"
                } else if name == "id" {
                    ID_PARAM
                } else if op.path.starts_with("/api/v1/templates/") {
                    TEMPLATE_PARAM
                } else if op.path.starts_with("/api/v1/catalogs/") {
                    "remote catalog name"
                } else if op.path.starts_with("/api/v1/tokens/") {
                    "token name"
                } else {
                    "environment name"
                };
                parameters.push(json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}}));
            }
        }
        for (name, description) in op.query {
            parameters.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}}));
        }
        let mut responses = Map::new();
        let ok_content = match op.ok.1 {
            Some(name) => json!({"application/json": {"schema": schema_ref(name)}}),
            None if op.id == "streamEvents" => {
                json!({"text/event-stream": {"schema": {"type": "string"}}})
            }
            None if op.id == "getSuiteRunJunit" => {
                json!({"application/xml": {"schema": {"type": "string"}}})
            }
            None => json!({"application/json": {"schema": {"type": "object"}}}),
        };
        let mut ok = json!({"description": "success", "content": ok_content});
        if op.id == "createExperiment" || op.id == "runTemplate" {
            ok = json!({"description": "created", "content": ok_content});
            responses.insert("200".into(), json!({"description": "dry run: the plan", "content": {"application/json": {"schema": schema_ref("DryRunResult")}}}));
        }
        if op.id == "saveTemplate" {
            responses.insert("200".into(), json!({"description": "replaced (overwrite=true)", "content": {"application/json": {"schema": schema_ref("TemplateDetail")}}}));
        }
        if op.id == "createEnvironment" {
            responses.insert("200".into(), json!({"description": "replaced (replace=true), or updated from a RemoteCluster", "content": {"application/json": {"schema": schema_ref("EnvironmentObject")}}}));
        }
        responses.insert(op.ok.0.into(), ok);
        let policy = crate::auth::policy::lookup(op.method, op.path);
        let open = matches!(
            policy.map(|p| p.access),
            Some(crate::auth::policy::Access::Open)
        );
        let auth_errors: &[u16] = if open { &[] } else { &[401, 403, 429] };
        for code in op.errors.iter().chain(auth_errors) {
            responses.insert(code.to_string(), json!({"description": status_text(*code), "content": {"application/json": {"schema": schema_ref("ErrorBody")}}}));
        }
        let mut operation = json!({"operationId": op.id, "summary": op.summary, "parameters": parameters, "responses": responses});
        if open {
            operation["security"] = json!([]);
        } else if let Some(p) = policy {
            operation["x-chaoshub-permission"] = json!(p.permission);
        }
        if let Some(body) = op.body {
            let schema = if body == "manifest" {
                schema_ref("Manifest")
            } else {
                schema_ref(body)
            };
            operation["requestBody"] = json!({"required": body == "manifest", "content": {"application/json": {"schema": schema}, "application/yaml": {"schema": schema}}});
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chaoshub API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Chaos-as-a-Service hub: submit Chaos Mesh experiments (or chaoshub kinds) and run them on any registered environment. Errors are JSON {code, message, details[{path, message}]}; see docs/http-status-codes.md.",
            "license": {"name": "Apache-2.0"}
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token (`chaoshub token create`; the first admin token is in <data-dir>/admin.token). Roles and the route policy: docs/security.md."}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_matches_checked_in_copy() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var("CHAOSHUB_UPDATE_OPENAPI").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is out of date; regenerate it with: CHAOSHUB_UPDATE_OPENAPI=1 cargo test -p chaoshub openapi"
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling reference to {name}");
        }
    }
}
