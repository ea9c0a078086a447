//! The template catalog (DESIGN.md §6): local templates from `catalog_dir`, remote catalogs
//! added by URL, search with facets, rendering and running.
//!
//! Layout: this file holds [`Catalog`] (what is loaded, search, render); `remote` fetches,
//! validates and caches remote index files. Its REST surface is `crate::catalog_http`, mounted by
//! `api.rs` (above the operations layer, which the catalog never names).
//!
//! Invariants: a template appears only after it parsed and validated (placeholders, parameter
//! declarations, the experiment rendered with defaults); a broken local file or a broken remote
//! is reported (`problems`, a remote's `lastError` and `rejected`) and never hides the rest.

pub mod remote;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chaoshub_adapters::conformance::{verdict, Verdict};
use chaoshub_adapters::AdapterRegistry;
use chaoshub_schema::template::{
    RenderOptions, RenderRequest, RenderResult, Template, TemplateDetail, TemplateFacets,
    TemplateList, TemplateSummary,
};
use chaoshub_schema::{
    manifest_from_value, Kind, Manifest, Spec, ValidationErrors, CHAOS_MESH_API_VERSION,
};
use serde_json::json;

use crate::error::HubError;

pub use remote::{RemoteCatalog, RemoteSettings};

/// The source name of templates from `catalog_dir`.
pub const LOCAL_SOURCE: &str = "local";

/// Adapter types templates may name (DESIGN.md §4), whether or not this build has them yet.
pub const KNOWN_ADAPTERS: &[&str] = &[
    "native",
    "docker",
    "ssm",
    "toxiproxy",
    "envoy",
    "kubernetes",
    "webhook",
];

/// A template in use, with what listings need precomputed.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub template: Template,
    pub summary: TemplateSummary,
    /// The experiment rendered with the parameters' defaults.
    pub sample: Manifest,
    /// What the adapters' checks judge: the sample itself when it is a fault, or each chaos node
    /// of a `Workflow` sample as its own fault manifest, with the node's template name.
    pub faults: Vec<(String, Manifest)>,
}

/// The faults a sample injects: itself, or a workflow's chaos nodes (a workflow of suspends
/// and status checks injects none). A node whose spec does not parse on its own is left to the
/// submission, which reports it at its path.
fn sample_faults(sample: &Manifest) -> Vec<(String, Manifest)> {
    let Spec::Workflow(workflow) = &sample.spec else {
        return vec![(String::new(), sample.clone())];
    };
    let value = sample.to_value();
    let mut out = Vec::new();
    for (i, t) in workflow.templates.iter().enumerate() {
        let kind = t.type_name();
        let Some((field, _, _)) = t
            .embedded()
            .into_iter()
            .find(|(_, k, set)| *k == kind && set.is_some())
        else {
            continue;
        };
        let node = json!({
            "apiVersion": CHAOS_MESH_API_VERSION,
            "kind": kind,
            "metadata": {"name": t.name},
            "spec": value["spec"]["templates"][i][field],
        });
        if let Ok(m) = manifest_from_value(node) {
            out.push((t.name.clone(), m));
        }
    }
    out
}

impl CatalogEntry {
    /// Builds an entry; `source` is `local` or a remote catalog name. Fails when the template
    /// names an adapter type nobody knows.
    pub fn new(template: Template, source: &str) -> Result<CatalogEntry, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for (i, adapter) in template.spec.adapters.iter().enumerate() {
            if !KNOWN_ADAPTERS.contains(&adapter.as_str()) {
                errors.push(
                    format!("spec.adapters[{i}]"),
                    format!(
                        "unknown adapter type {adapter:?} (known: {})",
                        KNOWN_ADAPTERS.join(", ")
                    ),
                );
            }
        }
        errors.into_result()?;
        let sample = template.spec.render_samples()?;
        let name = if source == LOCAL_SOURCE {
            template.name().to_string()
        } else {
            format!("{source}/{}", template.name())
        };
        let faults = sample_faults(&sample);
        let mut actions: Vec<String> = Vec::new();
        for (_, fault) in &faults {
            for a in fault.fault().map(|f| f.actions()).unwrap_or_default() {
                if !actions.contains(&a) {
                    actions.push(a);
                }
            }
        }
        let summary = TemplateSummary {
            name,
            source: source.to_string(),
            title: template.spec.title.clone(),
            description: template.spec.description.clone(),
            category: template.spec.category.clone(),
            tags: template.spec.tags.clone(),
            adapters: template.spec.adapters.clone(),
            kind: sample.kind().as_str().to_string(),
            actions,
            parameters: template
                .spec
                .parameters
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            refused: BTreeMap::new(),
        };
        Ok(CatalogEntry {
            template,
            summary,
            sample,
            faults,
        })
    }

    /// The listed adapters this hub's checks accept for the template's defaults, and the
    /// listed ones they refuse with the refusal. An adapter whose matrix only an environment
    /// knows (a plugin's) or that this build lacks cannot be judged here and counts as
    /// accepted; a submission still checks it.
    pub fn judge(&self, registry: &AdapterRegistry) -> (Vec<String>, BTreeMap<String, String>) {
        let mut accepted = Vec::new();
        let mut refused = BTreeMap::new();
        let workflow = self.sample.kind() == Kind::Workflow;
        for name in &self.template.spec.adapters {
            let Ok(adapter) = registry.get(name) else {
                accepted.push(name.clone());
                continue;
            };
            let refusal = self.faults.iter().find_map(|(node, fault)| {
                match verdict(adapter.as_ref(), fault) {
                    Verdict::Refused(m) | Verdict::NotApplicable(m) if workflow => {
                        Some(format!("workflow node {node:?}: {m}"))
                    }
                    Verdict::Refused(m) | Verdict::NotApplicable(m) => Some(m),
                    _ => None,
                }
            });
            match refusal {
                Some(m) => {
                    refused.insert(name.clone(), m);
                }
                None => accepted.push(name.clone()),
            }
        }
        (accepted, refused)
    }

    /// The summary as this hub sees it: `adapters` holds only the listed adapters whose checks
    /// accept the template, `refused` the others with why.
    pub fn judged_summary(&self, registry: &AdapterRegistry) -> TemplateSummary {
        let (adapters, refused) = self.judge(registry);
        TemplateSummary {
            adapters,
            refused,
            ..self.summary.clone()
        }
    }

    pub fn detail(&self) -> TemplateDetail {
        TemplateDetail {
            summary: self.summary.clone(),
            template: self.template.to_value(),
            parameters_schema: self.template.parameters_schema(),
        }
    }
}

/// A local file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalProblem {
    pub file: String,
    pub message: String,
}

/// Search parameters of `GET /api/v1/templates`.
#[derive(Debug, Clone, Default)]
pub struct TemplateQuery {
    /// Words that must all occur in the name, title, description or tags (case-insensitive).
    pub q: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub adapter: Option<String>,
    pub kind: Option<String>,
    pub source: Option<String>,
}

impl TemplateQuery {
    fn matches(&self, s: &TemplateSummary) -> bool {
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        let any = |want: &Option<String>, have: &[String]| {
            want.as_deref()
                .is_none_or(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)))
        };
        if !(eq(&self.category, &s.category)
            && eq(&self.kind, &s.kind)
            && eq(&self.source, &s.source)
            && any(&self.tag, &s.tags)
            && any(&self.adapter, &s.adapters))
        {
            return false;
        }
        match &self.q {
            None => true,
            Some(q) => {
                let haystack = format!(
                    "{} {} {} {}",
                    s.name,
                    s.title,
                    s.description,
                    s.tags.join(" ")
                )
                .to_lowercase();
                q.split_whitespace()
                    .all(|word| haystack.contains(&word.to_lowercase()))
            }
        }
    }
}

/// The whole catalog: local templates and remote catalogs.
pub struct Catalog {
    local_dir: PathBuf,
    local: RwLock<(Vec<CatalogEntry>, Vec<LocalProblem>)>,
    /// Held while a template is written, so two saves of one name cannot interleave their
    /// existence check and their write.
    writes: Mutex<()>,
    pub remotes: RemoteCatalog,
}

impl Catalog {
    /// Loads the local catalog from `local_dir` and the cached remote catalogs from
    /// `cache_dir`. Nothing here touches the network; call [`RemoteCatalog::refresh_all`].
    pub fn open(local_dir: &Path, cache_dir: &Path, settings: RemoteSettings) -> Arc<Catalog> {
        let catalog = Catalog {
            local_dir: local_dir.to_path_buf(),
            local: RwLock::new((Vec::new(), Vec::new())),
            writes: Mutex::new(()),
            remotes: RemoteCatalog::open(cache_dir, settings),
        };
        catalog.reload_local();
        Arc::new(catalog)
    }

    /// An empty catalog (no local directory, remotes cached under `cache_dir`).
    pub fn empty(cache_dir: &Path) -> Arc<Catalog> {
        Catalog::open(
            &cache_dir.join("no-local-catalog"),
            cache_dir,
            RemoteSettings::default(),
        )
    }

    /// Reads `catalog_dir/<category>/<name>.yaml` again; files that fail are reported in
    /// [`Catalog::problems`] and left out.
    pub fn reload_local(&self) {
        let (entries, problems) = load_local(&self.local_dir);
        if !problems.is_empty() {
            for p in &problems {
                tracing::warn!(file = %p.file, error = %p.message, "catalog template skipped");
            }
        }
        tracing::info!(
            dir = %self.local_dir.display(),
            templates = entries.len(),
            "local catalog loaded"
        );
        *self.local.write().unwrap_or_else(|e| e.into_inner()) = (entries, problems);
    }

    pub fn problems(&self) -> Vec<LocalProblem> {
        self.local
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Every template in use: local ones first, then each remote catalog's.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        let mut all = self
            .local
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        all.extend(self.remotes.entries());
        all
    }

    /// Templates matching `query`, sorted by name, with facet counts over the matches. The
    /// `adapter` filter and facet count only adapters whose checks accept the template (see
    /// [`CatalogEntry::judge`]), so `?adapter=docker` lists exactly what runs on Docker.
    pub fn search(&self, query: &TemplateQuery, registry: &AdapterRegistry) -> TemplateList {
        let mut items: Vec<TemplateSummary> = self
            .entries()
            .into_iter()
            .map(|e| e.judged_summary(registry))
            .filter(|s| query.matches(s))
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        let mut facets = TemplateFacets::default();
        for s in &items {
            *facets.category.entry(s.category.clone()).or_default() += 1;
            *facets.kind.entry(s.kind.clone()).or_default() += 1;
            *facets.source.entry(s.source.clone()).or_default() += 1;
            for t in &s.tags {
                *facets.tag.entry(t.clone()).or_default() += 1;
            }
            for a in &s.adapters {
                *facets.adapter.entry(a.clone()).or_default() += 1;
            }
        }
        TemplateList {
            total: items.len(),
            items,
            facets,
        }
    }

    /// A template by its (qualified) name.
    pub fn get(&self, name: &str) -> Result<CatalogEntry, HubError> {
        self.entries()
            .into_iter()
            .find(|e| e.summary.name == name)
            .ok_or_else(|| HubError::not_found(format!("template {name:?}")))
    }

    /// Renders a template; parameter and manifest problems are 400s naming their fields.
    pub fn render(
        &self,
        name: &str,
        request: &RenderRequest,
    ) -> Result<(Manifest, RenderResult), HubError> {
        let entry = self.get(name)?;
        let options = RenderOptions {
            name: request.name.as_deref(),
            namespace: request.namespace.as_deref(),
            environment: request.env.as_deref(),
            template_label: Some(&entry.summary.name),
        };
        let parameters = entry
            .template
            .spec
            .resolve_parameters(&request.parameters)
            .map_err(|e| parameter_error(name, e))?;
        let manifest = entry
            .template
            .render(&request.parameters, &options)
            .map_err(|e| parameter_error(name, e))?;
        let result = RenderResult {
            manifest: manifest.to_value(),
            parameters,
        };
        Ok((manifest, result))
    }
}

/// How [`Catalog::save_local`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Created,
    Replaced,
}

impl Catalog {
    /// Writes a template into the local catalog as `<catalog_dir>/<category>/<name>.yaml` and
    /// reloads the local catalog. The file is written whole to a temporary name in the same
    /// folder and renamed over, so a reader (or a crash) never sees half a template.
    ///
    /// Checked first, without touching the disk: the template as any local file is (adapters
    /// known, the sample rendering valid), a safe folder name, and for a `Workflow` its
    /// template tree (entry, cycles, size) as a submission checks it. A name that exists is a
    /// 409 unless `overwrite`; a hub whose `catalog_dir` is missing or read-only is a 409 that
    /// says so.
    pub fn save_local(
        &self,
        template: Template,
        overwrite: bool,
    ) -> Result<(CatalogEntry, SaveOutcome), HubError> {
        let name = template.name().to_string();
        let category = template.spec.category.clone();
        if let Err(m) = chaoshub_schema::meta::check_dns_name(&category) {
            return Err(HubError::invalid_field(
                "spec.category",
                format!("{m} (it names the catalog folder)"),
            ));
        }
        let entry = CatalogEntry::new(template, LOCAL_SOURCE).map_err(HubError::invalid)?;
        if let Spec::Workflow(workflow) = &entry.sample.spec {
            crate::workflow::plan(&name, workflow).map_err(|(path, message)| {
                HubError::invalid_field(&format!("spec.experiment.spec{path}"), message)
            })?;
        }
        let text = chaoshub_schema::document::to_yaml(&entry.template.to_value())
            .map_err(|e| HubError::invalid_field("", format!("cannot write as YAML: {e}")))?;
        let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if !self.local_dir.is_dir() {
            return Err(not_writable(format!(
                "this hub has no local catalog to save templates in: catalog_dir {} is not a directory (create it, or set catalog_dir in hub.toml)",
                self.local_dir.display()
            )));
        }
        let folder = self.local_dir.join(&category);
        let path = folder.join(format!("{name}.yaml"));
        let existing = self
            .local
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .iter()
            .find(|e| e.summary.name == name)
            .map(|e| e.template.spec.category.clone());
        let outcome = if existing.is_some() || path.exists() {
            SaveOutcome::Replaced
        } else {
            SaveOutcome::Created
        };
        if outcome == SaveOutcome::Replaced && !overwrite {
            return Err(HubError::Conflict {
                code: "template_exists",
                message: format!(
                    "template {name:?} already exists in the local catalog ({}/{name}.yaml); save with overwrite=true to replace it",
                    existing.as_deref().unwrap_or(&category)
                ),
            });
        }
        write_atomically(&folder, &path, &text).map_err(|e| {
            not_writable(format!(
                "cannot write {} in the local catalog: {e}",
                path.display()
            ))
        })?;
        // Replaced under another category: the old file goes, or the name would be taken twice.
        if let Some(old) = existing.filter(|c| *c != category) {
            let old_path = self.local_dir.join(old).join(format!("{name}.yaml"));
            if let Err(e) = std::fs::remove_file(&old_path) {
                tracing::warn!(file = %old_path.display(), error = %e, "cannot remove the replaced template file");
            }
        }
        drop(_guard);
        self.reload_local();
        tracing::info!(template = %name, file = %path.display(), ?outcome, "template saved in the local catalog");
        let saved = self.get(&name).map_err(|_| {
            let why = self
                .problems()
                .into_iter()
                .find(|p| p.file.ends_with(&format!("{name}.yaml")))
                .map(|p| p.message)
                .unwrap_or_else(|| "it did not load".into());
            not_writable(format!(
                "template {name:?} was written but the catalog does not load it: {why}"
            ))
        })?;
        Ok((saved, outcome))
    }
}

fn not_writable(message: String) -> HubError {
    HubError::Conflict {
        code: "catalog_not_writable",
        message,
    }
}

/// Writes `text` to `path` through a temporary file in `folder` (created when missing), synced
/// before the rename. The temporary name does not end in `.yaml`, so a reload in between never
/// reads it.
fn write_atomically(folder: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(folder)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("template.yaml");
    let tmp = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parameter_error(name: &str, errors: ValidationErrors) -> HubError {
    let n = errors.len();
    HubError::Invalid {
        message: format!(
            "template {name:?} cannot be rendered: {n} problem{}",
            if n == 1 { "" } else { "s" }
        ),
        details: errors.0,
    }
}

/// Reads every `<category>/<name>.yaml` under `dir`.
pub fn load_local(dir: &Path) -> (Vec<CatalogEntry>, Vec<LocalProblem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let Ok(categories) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "catalog directory is missing; the local catalog is empty");
        return (entries, problems);
    };
    let mut files = Vec::new();
    for category in categories.flatten() {
        let path = category.path();
        if !path.is_dir() {
            continue;
        }
        if let Ok(inner) = std::fs::read_dir(&path) {
            files.extend(inner.flatten().map(|e| e.path()).filter(|p| {
                matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            }));
        }
    }
    files.sort();
    let mut seen = BTreeMap::new();
    for path in files {
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        match load_file(&path) {
            Ok(entry) => {
                if let Some(first) = seen.insert(entry.summary.name.clone(), shown.clone()) {
                    problems.push(LocalProblem {
                        file: shown,
                        message: format!(
                            "template name {:?} is already used by {first}",
                            entry.summary.name
                        ),
                    });
                } else {
                    entries.push(entry);
                }
            }
            Err(message) => problems.push(LocalProblem {
                file: shown,
                message,
            }),
        }
    }
    (entries, problems)
}

fn load_file(path: &Path) -> Result<CatalogEntry, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let template = Template::from_text(&text).map_err(|e| e.to_string())?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if template.name() != stem {
        return Err(format!(
            "metadata.name {:?} must match the file name {stem:?}",
            template.name()
        ));
    }
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("");
    if template.spec.category != folder {
        return Err(format!(
            "spec.category {:?} must match the folder {folder:?}",
            template.spec.category
        ));
    }
    CatalogEntry::new(template, LOCAL_SOURCE).map_err(|e| e.to_string())
}
