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
use std::sync::{Arc, RwLock};

use chaoshub_adapters::conformance::{verdict, Verdict};
use chaoshub_adapters::AdapterRegistry;
use chaoshub_schema::template::{
    RenderOptions, RenderRequest, RenderResult, Template, TemplateDetail, TemplateFacets,
    TemplateList, TemplateSummary,
};
use chaoshub_schema::{Manifest, ValidationErrors};

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
    /// The experiment rendered with the parameters' defaults, which the adapters' checks judge.
    pub sample: Manifest,
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
        let actions = sample.fault().map(|f| f.actions()).unwrap_or_default();
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
        })
    }

    /// The listed adapters this hub's checks accept for the template's defaults, and the
    /// listed ones they refuse with the refusal. An adapter whose matrix only an environment
    /// knows (a plugin's) or that this build lacks cannot be judged here and counts as
    /// accepted; a submission still checks it.
    pub fn judge(&self, registry: &AdapterRegistry) -> (Vec<String>, BTreeMap<String, String>) {
        let mut accepted = Vec::new();
        let mut refused = BTreeMap::new();
        for name in &self.template.spec.adapters {
            match registry
                .get(name)
                .map(|a| verdict(a.as_ref(), &self.sample))
            {
                Ok(Verdict::Refused(m)) | Ok(Verdict::NotApplicable(m)) => {
                    refused.insert(name.clone(), m);
                }
                _ => accepted.push(name.clone()),
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
    pub remotes: RemoteCatalog,
}

impl Catalog {
    /// Loads the local catalog from `local_dir` and the cached remote catalogs from
    /// `cache_dir`. Nothing here touches the network; call [`RemoteCatalog::refresh_all`].
    pub fn open(local_dir: &Path, cache_dir: &Path, settings: RemoteSettings) -> Arc<Catalog> {
        let catalog = Catalog {
            local_dir: local_dir.to_path_buf(),
            local: RwLock::new((Vec::new(), Vec::new())),
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
