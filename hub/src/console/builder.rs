//! The workflow builder (`/workflows/new`, docs/console.md): a page where a Chaos Mesh
//! `Workflow` is composed by dragging nodes (or with the keyboard), edited in a side panel and
//! as YAML, dry-run, started and watched.
//!
//! The document model and its Workflow mapping live in `static/workflow_model.js`, the drawing
//! and the events in `static/workflow_builder.js`. What the browser cannot do alone goes
//! through the small JSON endpoints below, each a pass-through to one API route with the
//! session's token (the console stays a client of the API), except `parse`: YAML text to JSON
//! with the hub's own parser, so the builder reads YAML exactly as the API will.
//!
//! The JSON endpoints take no form, so their CSRF token comes in the `X-CSRF-Token` header.

use std::fmt::Write;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chaoshub_schema::api::{EnvironmentObject, ErrorBody, ExperimentObject, Page};
use chaoshub_schema::template::{RenderResult, TemplateDetail, TemplateList, TemplateSummary};
use serde_json::{json, Value};

use super::html::{self, esc, url, Nav, Refresh};
use super::{check_origin, html_response, session, Ctx, Failure};

#[derive(serde::Deserialize)]
pub struct BuilderQuery {
    /// An existing experiment (a Workflow) to load.
    from: Option<String>,
    /// A catalog template to edit: a Workflow template is loaded with its parameters marked
    /// again, a fault template as the one node of a new workflow.
    template: Option<String>,
}

/// A template to edit: the experiment rendered with its defaults (what the canvas shows) and
/// the template itself (its placeholders say which fields are parameters).
async fn template_to_edit(ctx: &Ctx, name: &str) -> Result<(Value, Value), Failure> {
    let detail: TemplateDetail = ctx
        .api
        .get(&format!("/api/v1/templates/{}", url(name)))
        .await?;
    let rendered: RenderResult = ctx
        .api
        .send(
            Method::POST,
            &format!("/api/v1/templates/{}/render", url(name)),
            Some(("application/json", json!({"parameters": {}}).to_string())),
        )
        .await?;
    let mut doc = rendered.manifest;
    // The render labels what it made with the template's name; an edit is not an instance.
    if let Some(labels) = doc
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(chaoshub_schema::template::TEMPLATE_LABEL);
        if labels.is_empty() {
            if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("labels");
            }
        }
    }
    let s = &detail.summary;
    let info = json!({
        "name": s.name,
        "source": s.source,
        "kind": s.kind,
        "title": s.title,
        "description": s.description,
        "category": s.category,
        "tags": s.tags,
        "adapters": s.adapters,
        "parameters": detail.template.pointer("/spec/parameters").cloned().unwrap_or(json!([])),
        "experiment": detail.template.pointer("/spec/experiment").cloned().unwrap_or(Value::Null),
    });
    Ok((doc, info))
}

/// The chaos kinds a workflow template can hold (`templateType`); catalog templates of other
/// kinds (ProxyChaos…) are left out of the palette.
const WORKFLOW_CHAOS_KINDS: &[&str] = &[
    "AWSChaos",
    "AzureChaos",
    "BlockChaos",
    "DNSChaos",
    "GCPChaos",
    "HTTPChaos",
    "IOChaos",
    "JVMChaos",
    "KernelChaos",
    "NetworkChaos",
    "PhysicalMachineChaos",
    "PodChaos",
    "StressChaos",
    "TimeChaos",
];

pub async fn page(ctx: Ctx, Query(q): Query<BuilderQuery>) -> Result<Response, Failure> {
    let (envs, list) = tokio::join!(
        ctx.api
            .get::<Page<EnvironmentObject>>("/api/v1/environments"),
        ctx.api.get::<TemplateList>("/api/v1/templates"),
    );
    let (envs, list) = (envs?, list?);
    let doc = match q.from.as_deref() {
        Some(uid) => {
            let e: ExperimentObject = ctx
                .api
                .get(&format!("/api/v1/experiments/{}", url(uid)))
                .await?;
            json!({
                "apiVersion": e.api_version,
                "kind": e.kind,
                "metadata": {
                    "name": e.metadata.name,
                    "namespace": e.metadata.namespace,
                },
                "spec": e.spec,
            })
        }
        None => Value::Null,
    };
    let (doc, editing) = match q.template.as_deref() {
        Some(name) if q.from.is_none() => {
            let (doc, info) = template_to_edit(&ctx, name).await?;
            (doc, info)
        }
        _ => (doc, Value::Null),
    };
    let workflow_templates: Vec<&TemplateSummary> =
        list.items.iter().filter(|t| t.kind == "Workflow").collect();
    let templates: Vec<Value> = list
        .items
        .iter()
        .filter(|t| WORKFLOW_CHAOS_KINDS.contains(&t.kind.as_str()))
        .map(|t| json!({"name": t.name, "title": t.title, "kind": t.kind, "category": t.category}))
        .collect();
    let environments: Vec<Value> = envs
        .items
        .iter()
        .map(|e| json!({"name": e.metadata.name, "adapter": e.spec.adapter}))
        .collect();
    let data = json!({
        "templates": templates,
        "environments": environments,
        "doc": doc,
        "mayStart": ctx.may("POST", "/api/v1/experiments"),
        "maySave": ctx.may("POST", "/api/v1/templates"),
        "template": editing,
    });
    let mut b = String::with_capacity(8 * 1024);
    let _ = write!(
        b,
        "<p class=\"lead\">Compose a Chaos Mesh <code>Workflow</code>: drag nodes from the palette \
onto the canvas (or select a node and press a palette button), edit the selected node on the \
right, or edit the YAML below — both are the same document.</p>\
<noscript><p class=\"notice warn\">The builder needs JavaScript; the <a href=\"/new\">manifest \
editor</a> works without it.</p></noscript>\
<div id=\"builder\" class=\"builder\" data-csrf=\"{}\">\
<script type=\"application/json\" id=\"builder-data\">{}</script>\
<aside class=\"palette\" aria-labelledby=\"pal-h\"><h2 id=\"pal-h\">Palette</h2>\
<p class=\"hint\" id=\"pal-hint\">Drag onto the canvas, or press one to add it inside the \
selected Serial/Parallel (after any other node); Shift+Enter adds after the selected node.</p>\
<ul class=\"plain\" id=\"palette\"></ul>\
<label for=\"pal-filter\">Catalog faults</label>\
<input id=\"pal-filter\" type=\"search\" placeholder=\"filter\" autocomplete=\"off\">\
<ul class=\"plain pal-catalog\" id=\"palette-catalog\"></ul></aside>\
<section class=\"canvas-wrap\" aria-labelledby=\"can-h\"><h2 id=\"can-h\">Canvas</h2>\
<div class=\"canvas-tools actions\" role=\"toolbar\" aria-label=\"Selected node\">\
<button type=\"button\" data-op=\"up\" title=\"Alt+ArrowUp\">Move up</button>\
<button type=\"button\" data-op=\"down\" title=\"Alt+ArrowDown\">Move down</button>\
<button type=\"button\" data-op=\"in\" title=\"Alt+ArrowRight\">Into previous</button>\
<button type=\"button\" data-op=\"out\" title=\"Alt+ArrowLeft\">Out of parent</button>\
<button type=\"button\" data-op=\"delete\" class=\"danger\" title=\"Delete\">Delete</button></div>\
<div id=\"canvas\" class=\"canvas\" role=\"tree\" aria-label=\"Workflow nodes\"></div>\
<p id=\"builder-msg\" class=\"hint\" role=\"status\" aria-live=\"polite\"></p></section>\
<aside class=\"inspector\" aria-labelledby=\"ins-h\"><h2 id=\"ins-h\">Selected node</h2>\
<div id=\"inspector\"></div>\
<h2>Workflow</h2><div id=\"wf-fields\"></div></aside>\
</div>\
<section aria-labelledby=\"yaml-h\"><h2 id=\"yaml-h\">YAML</h2>\
<textarea id=\"wf-yaml\" rows=\"22\" spellcheck=\"false\" aria-labelledby=\"yaml-h\" aria-describedby=\"yaml-state\"></textarea>\
<p id=\"yaml-state\" class=\"hint\" aria-live=\"polite\"></p>\
<div class=\"actions\"><button type=\"button\" id=\"wf-dry\">Dry run</button>",
        esc(&ctx.session.csrf),
        script_json(&data),
    );
    if ctx.may("POST", "/api/v1/experiments") {
        b.push_str("<button type=\"button\" id=\"wf-start\" class=\"primary\">Start</button>");
    }
    b.push_str(
        "</div><div id=\"wf-result\" aria-live=\"polite\"></div>\
<div id=\"wf-run\"></div></section>\
<section aria-labelledby=\"tpl-h\" class=\"tpl-save\"><h2 id=\"tpl-h\">Save as template</h2>\
<p class=\"hint\">Mark node fields as parameters in the side panel (“Template parameters”); \
the template's form then asks for them, each defaulting to the value it has here.</p>\
<div id=\"tpl-form\"></div></section>",
    );
    if !workflow_templates.is_empty() {
        b.push_str(
            "<section aria-labelledby=\"load-h\"><h2 id=\"load-h\">Edit a saved workflow template</h2>\
<form method=\"get\" action=\"/workflows/new\" class=\"inline\"><label for=\"load-template\">Template</label>\
<select id=\"load-template\" name=\"template\">",
        );
        for t in &workflow_templates {
            let _ = write!(
                b,
                "<option value=\"{}\">{} ({})</option>",
                esc(&t.name),
                esc(&t.title),
                esc(&t.name)
            );
        }
        b.push_str("</select> <button type=\"submit\">Load</button></form></section>");
    }
    b.push_str(
        "\
<script src=\"/console/static/workflow_model.js\" defer></script>\
<script src=\"/console/static/workflow_builder.js\" defer></script>",
    );
    Ok(html_response(
        StatusCode::OK,
        html::page(
            "Workflow builder",
            Nav::Builder,
            Some(&ctx.session),
            Refresh::Static,
            &b,
        ),
    ))
}

/// JSON for a `<script type="application/json">` element: `</` cannot end the element early.
fn script_json(v: &Value) -> String {
    v.to_string().replace("</", "<\\/")
}

/// The JSON endpoints' CSRF check: the session's token in `X-CSRF-Token`, and the browser's
/// `Origin` (when sent) this host. The refusal to answer, if any.
fn csrf_refusal(ctx: &Ctx, headers: &HeaderMap) -> Option<Response> {
    if let Err(f) = check_origin(headers) {
        return Some(f.into_response());
    }
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if session::csrf_matches(&ctx.session, token) {
        None
    } else {
        Some(json_error(
            StatusCode::FORBIDDEN,
            "csrf",
            "the request's CSRF token does not match this session; reload the page",
        ))
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            code: code.into(),
            message: message.into(),
            details: vec![],
        }),
    )
        .into_response()
}

/// `POST /console/builder/parse`: YAML (or JSON) text to its documents as JSON, with the
/// hub's parser; a 400 with the API's error body when the text does not parse.
pub async fn parse(ctx: Ctx, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = csrf_refusal(&ctx, &headers) {
        return refusal;
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the text is not UTF-8",
        );
    };
    match chaoshub_schema::split_documents(text) {
        Ok(docs) => axum::Json(json!({ "documents": docs })).into_response(),
        Err(errors) => (
            StatusCode::BAD_REQUEST,
            axum::Json(ErrorBody {
                code: "invalid_manifest".into(),
                message: "the YAML does not parse".into(),
                details: errors.0,
            }),
        )
            .into_response(),
    }
}

/// `GET /console/builder/templates/{name}`: a catalog template with its typed parameters.
pub async fn template(ctx: Ctx, Path(name): Path<String>) -> Response {
    ctx.api
        .raw(
            Method::GET,
            &format!("/api/v1/templates/{}", url(&name)),
            None,
        )
        .await
}

/// `POST /console/builder/templates/{name}/render`: the template rendered with the
/// parameters of the body (`{"parameters": {…}}`).
pub async fn render(
    ctx: Ctx,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = csrf_refusal(&ctx, &headers) {
        return refusal;
    }
    ctx.api
        .raw(
            Method::POST,
            &format!("/api/v1/templates/{}/render", url(&name)),
            Some(("application/json", body)),
        )
        .await
}

#[derive(serde::Deserialize)]
pub struct SaveQuery {
    #[serde(default)]
    overwrite: bool,
}

/// `POST /console/builder/save-template[?overwrite=true]`: the Template document the builder
/// made, unchanged, to `POST /api/v1/templates`.
pub async fn save_template(
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<SaveQuery>,
    body: String,
) -> Response {
    if let Some(refusal) = csrf_refusal(&ctx, &headers) {
        return refusal;
    }
    let uri = if q.overwrite {
        "/api/v1/templates?overwrite=true"
    } else {
        "/api/v1/templates"
    };
    ctx.api
        .raw(Method::POST, uri, Some(("application/json", body)))
        .await
}

#[derive(serde::Deserialize)]
pub struct SubmitQuery {
    #[serde(rename = "dryRun", default)]
    dry_run: bool,
}

/// `POST /console/builder/submit[?dryRun=true]`: the document, unchanged, to
/// `POST /api/v1/experiments`.
pub async fn submit(
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<SubmitQuery>,
    body: String,
) -> Response {
    if let Some(refusal) = csrf_refusal(&ctx, &headers) {
        return refusal;
    }
    let uri = if q.dry_run {
        "/api/v1/experiments?dryRun=true"
    } else {
        "/api/v1/experiments"
    };
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/yaml")
        .to_string();
    ctx.api.raw(Method::POST, uri, Some((&mime, body))).await
}

/// `GET /console/builder/experiments/{uid}`: a started workflow with its node phases.
pub async fn experiment(ctx: Ctx, Path(uid): Path<String>) -> Response {
    ctx.api
        .raw(
            Method::GET,
            &format!("/api/v1/experiments/{}", url(&uid)),
            None,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_its_element() {
        let v = json!({"t": "</script><script>alert(1)</script>"});
        let s = script_json(&v);
        assert!(!s.contains("</"), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
