//! The hub's operations behind the REST API, independent of HTTP: submit, inspect and steer
//! experiments, register environments, halt everything. Validation here is pure except where
//! an environment must be asked (its capability matrix, its targets for a dry run).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chaoshub_adapters::Environment;
use chaoshub_schema::api::{
    Capability, DesiredState, DryRunResult, EnvironmentObject, ExperimentObject, ExperimentPhase,
    ExperimentStatus, FarSidePlan, HaltStatus, Page, Plan,
};
use chaoshub_schema::document::JsonError;
use chaoshub_schema::duration::parse_duration;
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::{Kind, Manifest, Spec, Target, TargetSelector, ValidationErrors};
use rand::Rng;
use serde_json::Value;

use crate::engine::Engine;
use crate::error::HubError;
use crate::events::{self, experiment_event, hub_event};
use crate::selection::{self, FaultInfo};
use crate::store::{ExperimentFilter, ExperimentRow};
use crate::time;

/// Everything the operations need.
#[derive(Clone)]
pub struct Hub {
    pub engine: Arc<Engine>,
    pub default_environment: Option<String>,
    /// The template catalog (local and remote templates).
    pub catalog: Arc<crate::catalog::Catalog>,
}

/// Body formats the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    /// YAML, which also reads JSON.
    Yaml,
}

/// What a submission is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitMode {
    /// Validate and store.
    Create,
    /// Validate and plan; store nothing.
    DryRun,
    /// The chaos embedded in a schedule or workflow being created: planned like a dry run,
    /// but protected targets and the blast-radius cap refuse it as for a real run.
    Embedded,
}

/// One page of an environment's targets ([`Hub::targets`]).
pub struct TargetPage {
    pub items: Vec<Target>,
    /// Whether targets follow the last of `items`.
    pub more: bool,
    /// How many targets matched over all pages.
    pub total: usize,
}

/// What `POST /api/v1/experiments` produced.
pub enum Submitted {
    Created(Box<ExperimentObject>),
    DryRun(Box<DryRunResult>),
}

/// What a selector matches in an environment, before a mode picks.
struct SelectionPreview {
    /// The environment's whole inventory size, where the hub discovered it.
    inventory: Option<usize>,
    matched: Vec<Target>,
    /// The far side selects (and applies the mode) by itself.
    far_side: bool,
    /// The inventory, where the hub discovered it.
    discovered: Option<Arc<Vec<Target>>>,
    /// The adapter's index answered where the hub selects: the inventory was not discovered.
    indexed: bool,
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Parses a request body holding exactly one document.
pub fn parse_body(body: &[u8], format: BodyFormat) -> Result<Value, HubError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        HubError::bad_request("invalid_body", format!("the body is not UTF-8 text: {e}"))
    })?;
    if text.trim().is_empty() {
        return Err(HubError::bad_request(
            "invalid_body",
            "the body is empty; send one manifest as JSON or YAML",
        ));
    }
    match format {
        // Duplicate keys and the parse bounds are refused as they are for YAML, naming the field.
        BodyFormat::Json => chaoshub_schema::document::json_value(text).map_err(|e| match e {
            JsonError::Syntax(e) => {
                HubError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            }
            JsonError::Refused(errors) => HubError::invalid(errors),
        }),
        BodyFormat::Yaml => {
            let mut docs = chaoshub_schema::split_documents(text).map_err(HubError::invalid)?;
            match docs.len() {
                0 => Err(HubError::bad_request("invalid_body", "the body holds no document")),
                1 => Ok(docs.remove(0)),
                n => Err(HubError::bad_request(
                    "multiple_documents",
                    format!("the body holds {n} documents; submit one per request (the CLI splits files)"),
                )),
            }
        }
    }
}

fn page_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Hub {
    fn store(&self) -> &Arc<dyn crate::store::Store> {
        self.engine.store()
    }

    // ---- environments ----

    /// Registers an environment from a manifest value. `replace` allows re-registering.
    pub fn register_environment(
        &self,
        value: Value,
        replace: bool,
    ) -> Result<(EnvironmentObject, bool), HubError> {
        let manifest = chaoshub_schema::manifest_from_value(value).map_err(HubError::invalid)?;
        let name = manifest.metadata.name.clone().ok_or_else(|| {
            HubError::invalid_field(
                "metadata.name",
                format!("is required for an {}", manifest.kind()),
            )
        })?;
        let spec = match &manifest.spec {
            Spec::Environment(spec) => (**spec).clone(),
            _ => {
                // Another kind an adapter registers an environment from (Chaos Mesh's
                // RemoteCluster): applied again, it updates the environment.
                let spec = self.environment_from(&manifest)?;
                let replace = match self.store().get_environment(&name)? {
                    Some(stored) if stored.spec.adapter != spec.adapter => {
                        return Err(HubError::Conflict {
                            code: "already_exists",
                            message: format!(
                                "environment {name:?} is already registered with adapter {}; a {} only registers or updates a {} environment: delete it first or use another name",
                                stored.spec.adapter,
                                manifest.kind(),
                                spec.adapter
                            ),
                        });
                    }
                    stored => stored.is_some(),
                };
                return self.register_environment_spec(
                    &name,
                    spec,
                    manifest.metadata.labels.clone(),
                    replace,
                );
            }
        };
        self.register_environment_spec(&name, spec, manifest.metadata.labels.clone(), replace)
    }

    /// The environment an adapter registers from a manifest of another kind than Environment
    /// (`Adapter::environment_from`); 400 naming `kind` when no adapter registers that kind.
    fn environment_from(&self, manifest: &Manifest) -> Result<EnvironmentSpec, HubError> {
        self.engine
            .registry()
            .all()
            .iter()
            .find_map(|adapter| adapter.environment_from(manifest))
            .unwrap_or_else(|| {
                Err(ValidationErrors::single(
                    "kind",
                    format!(
                        "expected kind Environment (apiVersion chaoshub.dev/v1alpha1) or another kind an adapter registers environments from, got {}; experiments go to /api/v1/experiments",
                        manifest.kind()
                    ),
                ))
            })
            .map_err(HubError::invalid)
    }

    /// Whether a kind registers an environment (Environment, or one an adapter registers from).
    fn registers_environment(&self, manifest: &Manifest) -> bool {
        manifest.kind() == Kind::Environment
            || self
                .engine
                .registry()
                .all()
                .iter()
                .any(|adapter| adapter.environment_from(manifest).is_some())
    }

    /// Registers an environment; the answer shows its secret settings as `"***"`
    /// (`crate::secrets`).
    pub fn register_environment_spec(
        &self,
        name: &str,
        mut spec: EnvironmentSpec,
        labels: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<(EnvironmentObject, bool), HubError> {
        chaoshub_schema::parse::check_dns_name(name)
            .map_err(|e| HubError::invalid_field("metadata.name", e))?;
        crate::auth::note_object(format!("environment {name}"));
        if replace {
            // A GET's answer sent back says "***" for the secrets it could not show.
            if let Some(stored) = self.store().get_environment(name)? {
                crate::secrets::keep_stored_secrets(&mut spec, &stored.spec);
            }
        }
        let adapter = self
            .engine
            .registry()
            .get(&spec.adapter)
            .map_err(|e| HubError::invalid_field("spec.adapter", e.to_string()))?;
        let env = Environment {
            name: name.to_string(),
            spec: spec.clone(),
        };
        crate::auth::privileged::check_allow_setting(&spec).map_err(HubError::invalid)?;
        selection::check_guardrail_settings(&spec.settings).map_err(HubError::invalid)?;
        adapter
            .validate_environment(&env)
            .map_err(HubError::invalid)?;
        let mut outside = ValidationErrors::new();
        for (field, value) in adapter.endpoints(&env) {
            if let Err(why) = self.engine.endpoints().check_url(&value) {
                outside.push(field, format!("{value:?}: {why}"));
            }
        }
        outside.into_result().map_err(HubError::invalid)?;
        let object = EnvironmentObject {
            api_version: chaoshub_schema::CHAOSHUB_API_VERSION.into(),
            kind: "Environment".into(),
            metadata: chaoshub_schema::meta::ObjectMeta {
                name: Some(name.to_string()),
                labels,
                creation_timestamp: Some(time::now_rfc3339()),
                ..Default::default()
            },
            spec,
            status: None,
        };
        if replace {
            // Replacing an environment under running experiments would send their recovery to
            // the new endpoint and strand the faults at the old one.
            let busy = self
                .store()
                .active_experiments()?
                .into_iter()
                .filter(|r| r.status.environment == name)
                .count();
            if busy > 0 {
                return Err(HubError::Conflict {
                    code: "environment_in_use",
                    message: format!(
                        "environment {name:?} has {busy} experiment(s) that are not finished; stop them before replacing it"
                    ),
                });
            }
        }
        let existed = self.store().put_environment(&object, replace)?;
        self.engine.forget_inventory(name);
        if existed && !replace {
            return Err(HubError::Conflict {
                code: "already_exists",
                message: format!("environment {name:?} is already registered; delete it first"),
            });
        }
        // Warm-up (the Docker adapter builds its helper image) in the background: registration
        // does not wait for it; injections into the environment do (crate::preparation).
        self.engine.preparations.start(adapter.clone(), env.clone());
        self.engine
            .environment_statuses
            .refresh(adapter.clone(), env.clone(), true);
        self.engine.record(&[hub_event(
            events::ENVIRONMENT_REGISTERED,
            format!(
                "environment {name} registered (adapter {})",
                object.spec.adapter
            ),
        )])?;
        Ok((crate::secrets::redact_environment(object), existed))
    }

    /// A registered environment as answers show it (secrets as `"***"`), with its status.
    pub fn get_environment(&self, name: &str) -> Result<EnvironmentObject, HubError> {
        self.store()
            .get_environment(name)?
            .map(|e| self.with_status(e))
            .map(crate::secrets::redact_environment)
            .ok_or_else(|| HubError::not_found(format!("environment {name:?}")))
    }

    /// Every registered environment as answers show it (secrets as `"***"`), with its status.
    pub fn list_environments(&self) -> Result<Page<EnvironmentObject>, HubError> {
        Ok(Page {
            items: self
                .store()
                .list_environments()?
                .into_iter()
                .map(|e| self.with_status(e))
                .map(crate::secrets::redact_environment)
                .collect(),
            continue_token: None,
            total: None,
        })
    }

    /// The environment with the status its adapter last reported (`crate::environment_status`;
    /// a stale one is checked again in the background).
    fn with_status(&self, mut object: EnvironmentObject) -> EnvironmentObject {
        let (Some(name), Ok(adapter)) = (
            object.metadata.name.clone(),
            self.engine.registry().get(&object.spec.adapter),
        ) else {
            return object;
        };
        let env = Environment {
            name,
            spec: object.spec.clone(),
        };
        object.status = self.engine.environment_statuses.current(adapter, env);
        object
    }

    pub fn delete_environment(&self, name: &str) -> Result<EnvironmentObject, HubError> {
        let env = self.get_environment(name)?;
        let busy: Vec<String> = self
            .store()
            .active_experiments()?
            .into_iter()
            .filter(|r| r.status.environment == name)
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect();
        if !busy.is_empty() {
            return Err(HubError::Conflict {
                code: "environment_in_use",
                message: format!("environment {name:?} has experiments that are not finished ({}); stop them first", busy.join(", ")),
            });
        }
        self.store().delete_environment(name)?;
        self.engine.forget_inventory(name);
        self.engine.environment_statuses.forget(name);
        self.engine.record(&[hub_event(
            events::ENVIRONMENT_DELETED,
            format!("environment {name} deleted"),
        )])?;
        Ok(env)
    }

    fn environment(&self, name: &str, path: &str) -> Result<Environment, HubError> {
        match self.store().get_environment(name)? {
            Some(env) => Ok(Environment {
                name: name.to_string(),
                spec: env.spec,
            }),
            None => {
                let known: Vec<String> = self
                    .store()
                    .list_environments()?
                    .into_iter()
                    .filter_map(|e| e.metadata.name)
                    .collect();
                let known = if known.is_empty() {
                    "none yet".to_string()
                } else {
                    known.join(", ")
                };
                Err(HubError::invalid_field(
                    path,
                    format!("environment {name:?} is not registered (registered: {known})"),
                ))
            }
        }
    }

    /// 403 when an endpoint of the environment is outside `security.allowed_endpoints` (the
    /// list changed since it was registered): checked before any new call to it. Recovery of
    /// faults already in place is never blocked.
    fn check_endpoints(
        &self,
        env: &Environment,
        adapter: &dyn chaoshub_adapters::Adapter,
    ) -> Result<(), HubError> {
        for (field, value) in adapter.endpoints(env) {
            if let Err(why) = self.engine.endpoints().check_url(&value) {
                return Err(HubError::Forbidden {
                    message: format!(
                        "environment {:?} is not called: its {field} {value:?} is outside the hub's allowed endpoints ({why}); re-register it with an allowed endpoint or extend security.allowed_endpoints",
                        env.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// A registered environment (404 if not) and its adapter.
    fn registered(
        &self,
        name: &str,
    ) -> Result<(Environment, Arc<dyn chaoshub_adapters::Adapter>), HubError> {
        let env = self
            .store()
            .get_environment(name)?
            .ok_or_else(|| HubError::not_found(format!("environment {name:?}")))?;
        let adapter =
            self.engine
                .registry()
                .get(&env.spec.adapter)
                .map_err(|e| HubError::Unsupported {
                    message: e.to_string(),
                })?;
        let env = Environment {
            name: name.to_string(),
            spec: env.spec,
        };
        self.check_endpoints(&env, adapter.as_ref())?;
        Ok((env, adapter))
    }

    /// One page of the targets `selector` matches in environment `name`, by id: at most
    /// `limit` after the id `after`. With no selector and an adapter that lists a range of its
    /// inventory (native), only the page is built; otherwise every match is, then cut.
    pub async fn targets(
        &self,
        name: &str,
        selector: &TargetSelector,
        after: Option<&str>,
        limit: usize,
    ) -> Result<TargetPage, HubError> {
        let (env, adapter) = self.registered(name)?;
        let limit = limit.max(1);
        if *selector == TargetSelector::default() {
            if let Some(mut found) = adapter.inventory_page(&env, after, limit + 1) {
                let more = found.targets.len() > limit;
                found.targets.truncate(limit);
                return Ok(TargetPage {
                    items: found.targets,
                    more,
                    total: found.inventory,
                });
            }
        }
        let mut matched = self
            .engine
            .match_targets(&env, adapter.as_ref(), Some(selector), false)
            .await
            .map_err(HubError::from_adapter)?
            .matched;
        let total = matched.len();
        // Stable: targets with one id (never, from one adapter) keep the adapter's order.
        // Already in order (the native adapter lists by name), this is one pass.
        matched.sort_by(|a, b| a.id.cmp(&b.id));
        let start = after.map_or(0, |id| matched.partition_point(|t| t.id.as_str() <= id));
        let end = (start + limit).min(matched.len());
        matched.truncate(end);
        matched.drain(..start);
        Ok(TargetPage {
            items: matched,
            more: end < total,
            total,
        })
    }

    pub async fn environment_capabilities(&self, name: &str) -> Result<Vec<Capability>, HubError> {
        let (env, adapter) = self.registered(name)?;
        adapter
            .environment_capabilities(&env)
            .await
            .map_err(HubError::from_adapter)
    }

    // ---- experiments ----

    /// Validates and stores a new experiment (or plans it, for a dry run).
    pub async fn submit(
        &self,
        value: Value,
        env_override: Option<&str>,
        dry_run: bool,
    ) -> Result<Submitted, HubError> {
        let mode = if dry_run {
            SubmitMode::DryRun
        } else {
            SubmitMode::Create
        };
        self.submit_as(value, env_override, mode).await
    }

    /// `submit`, for a real submission, a dry run, or the embedded chaos of a schedule or
    /// workflow being created (see [`SubmitMode`]).
    pub(crate) async fn submit_as(
        &self,
        value: Value,
        env_override: Option<&str>,
        mode: SubmitMode,
    ) -> Result<Submitted, HubError> {
        // Nothing is stored but for `Create`; the plan is what a dry run and an embedded
        // chaos return.
        let dry_run = mode != SubmitMode::Create;
        let mut manifest =
            chaoshub_schema::manifest_from_value(value).map_err(HubError::invalid)?;
        let kind = manifest.kind();
        if self.registers_environment(&manifest) {
            return Err(HubError::invalid_field(
                "kind",
                format!("{kind} manifests register environments: POST them to /api/v1/environments (chaoshub apply does)"),
            ));
        }
        // The caller's scope, before anything else is looked at (None for the hub's own work).
        crate::auth::check_scope(manifest.metadata.namespace_or_default(), None)?;
        if matches!(kind, Kind::Schedule | Kind::Workflow) {
            // Schedules and workflows are checked template by template through this same path
            // (`submission.rs`).
            return self.submit_parent(manifest, env_override, mode).await;
        }
        crate::probes::stop::check_submission(
            &manifest,
            &crate::probes::ProbePolicy::new(self.engine.limits(), self.engine.endpoints()),
        )?;
        if let Spec::StatusCheck(check) = &manifest.spec {
            if let Some(http) = &check.http {
                self.engine
                    .endpoints()
                    .check_url(&http.url)
                    .map_err(|why| {
                        HubError::invalid_field("spec.http.url", format!("{:?}: {why}", http.url))
                    })?;
            }
        }
        crate::engine::on_drift_of(&manifest.metadata.annotations, Default::default()).map_err(
            |message| {
                HubError::invalid_field(
                    &format!(
                        "metadata.annotations[\"{}\"]",
                        crate::engine::ON_DRIFT_ANNOTATION
                    ),
                    message,
                )
            },
        )?;
        if kind == Kind::StatusCheck {
            return self.submit_status_check(manifest, dry_run);
        }
        let Some(fault) = manifest.fault().map(FaultInfo::of) else {
            return Err(HubError::Unsupported {
                message: format!(
                    "{kind} is a valid Chaos Mesh kind, but this hub does not run it as an experiment yet; submit its fault kinds directly"
                ),
            });
        };
        let actions = fault.actions.clone();
        let duration = fault.duration.clone();
        if let Some(d) = &duration {
            let max = self.engine.limits().max_duration_secs;
            if let Ok(parsed) = parse_duration(d) {
                if max > 0 && parsed > Duration::from_secs(max) {
                    return Err(HubError::invalid_field(
                        "spec.duration",
                        format!("{d} is longer than the hub's guardrail of {max} s (limits.max_duration_secs)"),
                    ));
                }
            }
        }
        let (env_name, env_path) = match (
            env_override,
            fault.environment.clone(),
            &self.default_environment,
        ) {
            (Some(e), _, _) => (Some(e.to_string()), "env"),
            (None, Some(e), _) => (Some(e), "spec.environment"),
            (None, None, Some(d)) => (Some(d.clone()), "spec.environment"),
            (None, None, None) => (None, "spec.environment"),
        };
        let Some(env_name) = env_name else {
            if dry_run {
                let mut warnings = vec!["no environment named: validated only (set spec.environment or ?env= to get a plan)".to_string()];
                warnings.extend(crate::auth::privileged::authorize_fault(&manifest, None)?);
                return Ok(Submitted::DryRun(Box::new(DryRunResult {
                    valid: true,
                    manifest: manifest.to_value(),
                    plan: None,
                    warnings,
                })));
            }
            return Err(HubError::invalid_field(
                "spec.environment",
                "no environment named: set spec.environment (or spec.remoteCluster), pass ?env=NAME, or configure default_environment",
            ));
        };
        crate::auth::check_scope(manifest.metadata.namespace_or_default(), Some(&env_name))?;
        // A halted hub says so before it asks any environment anything.
        if !dry_run {
            if let Some(halt) = self.halted()? {
                return Err(halt);
            }
        }
        let env = self.environment(&env_name, env_path)?;
        // Privileged fault families: an admin, or an environment that opted in (403 otherwise).
        let privileged =
            crate::auth::privileged::authorize_fault(&manifest, Some((&env.name, &env.spec)))?;
        let adapter =
            self.engine
                .registry()
                .get(&env.spec.adapter)
                .map_err(|e| HubError::Unsupported {
                    message: format!("environment {env_name:?}: {e}"),
                })?;
        self.check_endpoints(&env, adapter.as_ref())?;
        let capabilities = adapter
            .environment_capabilities(&env)
            .await
            .map_err(HubError::from_adapter)?;
        for action in &actions {
            let wanted = Capability::new(kind.as_str(), action.clone());
            if !capabilities.contains(&wanted) {
                return Err(HubError::Unsupported {
                    message: crate::conformance::missing_capability(
                        self.engine.registry(),
                        &env,
                        adapter.as_ref(),
                        &manifest,
                        action,
                    ),
                });
            }
        }
        manifest.spec.set_environment(&env_name);
        let manifest = Arc::new(manifest);
        let probe = chaoshub_adapters::FaultRequest {
            experiment_uid: "submission-check".into(),
            injection_id: "submission-check-0".into(),
            name: manifest.metadata.name.clone().unwrap_or_default(),
            namespace: manifest.metadata.namespace_or_default().to_string(),
            manifest: Arc::clone(&manifest),
            actions: actions.clone(),
            deadline: None,
        };
        adapter.check_fault(&env, &probe).map_err(|e| match e {
            chaoshub_adapters::AdapterError::Rejected(message) => {
                HubError::invalid_field("spec", message)
            }
            chaoshub_adapters::AdapterError::Unsupported { message, .. } => HubError::Unsupported {
                message: format!(
                    "environment {env_name:?} (adapter {}) cannot run this {kind}: {message}{}",
                    env.spec.adapter,
                    crate::conformance::elsewhere(self.engine.registry(), &manifest)
                ),
            },
            other => HubError::from_adapter(other),
        })?;
        drop(probe);
        let manifest = Arc::try_unwrap(manifest).unwrap_or_else(|shared| (*shared).clone());
        if mode != SubmitMode::DryRun {
            // Protected targets and the blast-radius cap, before anything is stored (the
            // engine checks again at selection time: the inventory may change in between).
            // A schedule's or workflow's chaos is held to them at creation too: one that would
            // hit a protected target is refused then, not at its first run hours later.
            let preview = self
                .preview(&manifest, &fault, &env, adapter.as_ref(), true)
                .await?;
            let guardrails = self.engine.guardrails(&env);
            let selected = if preview.far_side {
                0
            } else {
                selection::max_selected(preview.matched.len(), fault.mode, fault.value.as_deref())
                    .map_err(|e| HubError::invalid_field("spec.value", e.to_string()))?
            };
            let inventory = match (guardrails.max_targets, preview.inventory) {
                (Some(selection::TargetCap::Percent(_)), None) => adapter
                    .discover(&env)
                    .await
                    .map_err(HubError::from_adapter)?
                    .len(),
                (_, inventory) => inventory.unwrap_or(0),
            };
            guardrails
                .check(&env.name, inventory, &preview.matched, selected)
                .map_err(HubError::guardrail)?;
            if preview.far_side {
                self.engine
                    .check_far_side_guardrails(&env, &manifest, adapter.as_ref())
                    .await?;
            }
        }
        if dry_run {
            let mut planned = self.plan(manifest, fault, &env, adapter.as_ref()).await?;
            if let (Submitted::DryRun(result), Some(note)) = (&mut planned, privileged) {
                result.warnings.push(note);
            }
            return Ok(planned);
        }
        if let Some(halt) = self.halted()? {
            return Err(halt);
        }
        self.store_experiment(manifest, &env, actions)
            .map(|o| Submitted::Created(Box::new(o)))
    }

    /// What the selector matches in the environment now, through the adapter's `select` as
    /// the engine will do it. `recent` lets a hub-side selection use an inventory discovered at
    /// most `engine::INVENTORY_TTL` ago (the submission's guardrail check; the engine checks
    /// again on a fresh discovery); a dry run always discovers afresh.
    async fn preview(
        &self,
        manifest: &Manifest,
        fault: &FaultInfo,
        env: &Environment,
        adapter: &dyn chaoshub_adapters::Adapter,
        recent: bool,
    ) -> Result<SelectionPreview, HubError> {
        let selection = adapter
            .select(env, manifest)
            .await
            .map_err(HubError::from_adapter)?;
        Ok(match selection {
            chaoshub_adapters::Selection::Final(targets) => SelectionPreview {
                inventory: None,
                matched: targets,
                far_side: true,
                discovered: None,
                indexed: false,
            },
            chaoshub_adapters::Selection::Matched(matched) => SelectionPreview {
                inventory: None,
                matched,
                far_side: false,
                discovered: None,
                indexed: false,
            },
            chaoshub_adapters::Selection::Hub => {
                // A fresh enough inventory (the engine's last discovery, or this preview's)
                // spares the far side a call per submission; the engine discovers afresh. An
                // adapter with an index (native) is asked for the candidates instead.
                let found = self
                    .engine
                    .match_targets(env, adapter, fault.selector.as_ref(), recent)
                    .await
                    .map_err(HubError::from_adapter)?;
                SelectionPreview {
                    inventory: Some(found.inventory),
                    matched: found.matched,
                    far_side: false,
                    indexed: found.discovered.is_none(),
                    discovered: found.discovered,
                }
            }
        })
    }

    async fn plan(
        &self,
        manifest: Manifest,
        fault: FaultInfo,
        env: &Environment,
        adapter: &dyn chaoshub_adapters::Adapter,
    ) -> Result<Submitted, HubError> {
        let preview = self.preview(&manifest, &fault, env, adapter, false).await?;
        let guardrails = self.engine.guardrails(env);
        let mut warnings = Vec::new();
        // Protected targets: those the selector matches (a real run is refused) and those it
        // leaves out (reported, so the plan shows what protection excluded).
        for target in &preview.matched {
            if let Some(why) = guardrails.protection(target) {
                warnings.push(format!(
                    "protected target {:?} is matched by the selector ({why}); a real run would be refused",
                    target.name
                ));
            }
        }
        let matched_ids: std::collections::BTreeSet<&str> =
            preview.matched.iter().map(|t| t.id.as_str()).collect();
        // The protected targets of the inventory: looked up in the adapter's index when it
        // answered the selection, instead of discovering every target for a few.
        let protected: Vec<Target> = match (&preview.discovered, preview.indexed) {
            (Some(inventory), _) => inventory
                .iter()
                .filter(|t| guardrails.protection(t).is_some())
                .cloned()
                .collect(),
            (None, true) => match self.engine.protected_candidates(env, adapter, &guardrails) {
                Some(found) => found,
                None => adapter
                    .discover(env)
                    .await
                    .map_err(HubError::from_adapter)?
                    .into_iter()
                    .filter(|t| guardrails.protection(t).is_some())
                    .collect(),
            },
            (None, false) => Vec::new(),
        };
        let excluded: Vec<String> = protected
            .iter()
            .filter(|t| !matched_ids.contains(t.id.as_str()))
            .filter_map(|t| {
                guardrails
                    .protection(t)
                    .map(|why| format!("{:?} ({why})", t.name))
            })
            .collect();
        if !excluded.is_empty() {
            warnings.push(format!(
                "protected target(s) not selected: {}",
                excluded.join(", ")
            ));
        }
        let cap_inventory = match (guardrails.max_targets, preview.inventory) {
            (Some(selection::TargetCap::Percent(_)), None) => Some(
                adapter
                    .discover(env)
                    .await
                    .map_err(HubError::from_adapter)?
                    .len(),
            ),
            (_, inventory) => inventory,
        };
        let SelectionPreview {
            inventory,
            matched,
            far_side,
            ..
        } = preview;
        let inventory = inventory.unwrap_or(matched.len());
        let mode = fault.mode;
        let count = matched.len();
        let max_targets = self.engine.limits().max_targets;
        let targets = if matched.is_empty() {
            warnings.push(format!(
                "no targets matched: the selector matched none of the {inventory} target(s) of environment {:?}; a real run would fail",
                env.name
            ));
            Vec::new()
        } else if far_side {
            // The far side (Chaos Mesh's controller) applies selector and mode itself.
            matched
        } else {
            match selection::apply_mode(matched, mode, fault.value.as_deref(), &mut rand::rng()) {
                Ok(t) => t,
                Err(e) => {
                    warnings.push(format!("{e}; a real run would fail"));
                    Vec::new()
                }
            }
        };
        // Where the far side selects, what its selector matches now, and one pick of its mode.
        let far_side_plan = if far_side {
            match adapter
                .preview_far_side(env, &manifest)
                .await
                .map_err(HubError::from_adapter)?
            {
                Some(found) => {
                    let matched = found.matched.len();
                    if let Err(e) = guardrails.check(&env.name, matched, &found.matched, 0) {
                        warnings.push(format!("{e}; a real run would be refused"));
                    }
                    let picked = if matched == 0 {
                        warnings.push(format!(
                            "{}'s selector matches nothing in environment {:?} now; a real run \
                             would fail when it reports nothing selected",
                            found.selected_by, env.name
                        ));
                        Vec::new()
                    } else {
                        match selection::apply_mode(
                            found.matched,
                            mode,
                            fault.value.as_deref(),
                            &mut rand::rng(),
                        ) {
                            Ok(t) => t,
                            Err(e) => {
                                warnings.push(format!("{e}; a real run would fail"));
                                Vec::new()
                            }
                        }
                    };
                    Some(FarSidePlan {
                        selected_by: found.selected_by,
                        matched,
                        targets: picked,
                    })
                }
                None => None,
            }
        } else {
            None
        };
        if max_targets > 0 && targets.len() > max_targets {
            warnings.push(format!(
                "blast radius guardrail: {} targets selected but at most {max_targets} are allowed (limits.max_targets); a real run would fail",
                targets.len()
            ));
        }
        if let Some(cap) = guardrails.max_targets {
            let cap_inventory = cap_inventory.unwrap_or(0);
            let limit = cap.limit(cap_inventory);
            let most = if far_side {
                targets.len()
            } else {
                selection::max_selected(count, mode, fault.value.as_deref()).unwrap_or(0)
            };
            let verdict = if most > limit {
                "a real run would be refused"
            } else {
                "within the cap"
            };
            warnings.push(format!(
                "blast radius: {most} target(s) selected at most, environment {:?} allows {} (settings.max_targets): {verdict}",
                env.name,
                cap.describe(cap_inventory)
            ));
        }
        Ok(Submitted::DryRun(Box::new(DryRunResult {
            valid: true,
            plan: Some(Plan {
                environment: env.name.clone(),
                adapter: env.spec.adapter.clone(),
                kind: manifest.kind().as_str().into(),
                actions: fault.actions,
                duration: fault.duration,
                mode: mode.as_str().into(),
                targets,
                matched: count,
                far_side: far_side_plan,
            }),
            manifest: manifest.to_value(),
            warnings,
        })))
    }

    pub(crate) fn store_experiment(
        &self,
        mut manifest: Manifest,
        env: &Environment,
        actions: Vec<String>,
    ) -> Result<ExperimentObject, HubError> {
        let uid = uuid::Uuid::new_v4().to_string();
        let now = time::format(self.engine.now());
        let name = match (&manifest.metadata.name, &manifest.metadata.generate_name) {
            (Some(n), _) => n.clone(),
            (None, Some(prefix)) => {
                let name = format!("{prefix}{}", random_suffix());
                chaoshub_schema::parse::check_dns_name(&name)
                    .map_err(|e| HubError::invalid_field("metadata.generateName", e))?;
                name
            }
            (None, None) => return Err(HubError::invalid_field("metadata.name", "is required")),
        };
        let namespace = manifest.metadata.namespace_or_default().to_string();
        manifest.metadata.name = Some(name.clone());
        manifest.metadata.namespace = Some(namespace.clone());
        manifest.metadata.uid = Some(uid.clone());
        manifest.metadata.creation_timestamp = Some(now.clone());
        manifest.metadata.resource_version = None;
        manifest.metadata.generation = None;
        let status = ExperimentStatus {
            phase: ExperimentPhase::Pending,
            desired: DesiredState::Run,
            reason: None,
            environment: env.name.clone(),
            adapter: env.spec.adapter.clone(),
            actions,
            created_at: now,
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
            created_by: crate::auth::current_name(),
            drift: None,
        };
        let row = ExperimentRow {
            seq: 0,
            uid: uid.clone(),
            name,
            namespace,
            kind: manifest.kind().as_str().to_string(),
            api_version: manifest.api_version.clone(),
            metadata: manifest.metadata.clone(),
            spec: manifest.spec.to_value(),
            status,
            desired_reason: None,
        };
        let event = experiment_event(
            &row,
            events::EXPERIMENT_CREATED,
            format!("created in environment {}", env.name),
        );
        let (row, records) = self
            .store()
            .insert_experiment(&row, &event)
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(message) => HubError::Conflict {
                    code: "already_exists",
                    message,
                },
                other => HubError::Store(other),
            })?;
        crate::auth::note_object(format!("experiment {}/{} ({uid})", row.namespace, row.name));
        self.engine.publish(records);
        self.engine.trigger(&uid);
        Ok(row.to_object())
    }

    /// Finds an experiment by uid, else by name in the namespace.
    pub fn find(&self, id: &str, namespace: Option<&str>) -> Result<ExperimentRow, HubError> {
        if let Some(row) = self.store().get_experiment(id)? {
            return Ok(row);
        }
        let ns = namespace.unwrap_or("default");
        self.store()
            .find_experiment_by_name(ns, id)?
            .ok_or_else(|| {
                HubError::not_found(format!(
                    "experiment {id:?} (by uid, or by name in namespace {ns:?})"
                ))
            })
    }

    pub fn list(
        &self,
        filter: ExperimentFilter,
        limit: Option<usize>,
    ) -> Result<Page<ExperimentObject>, HubError> {
        let limit = page_limit(limit);
        let mut filter = filter;
        filter.limit = limit + 1;
        let mut rows = self.store().list_experiments(&filter)?;
        let continue_token = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.seq.to_string())
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(ExperimentRow::to_object).collect(),
            continue_token,
            total: None,
        })
    }

    fn halted(&self) -> Result<Option<HubError>, HubError> {
        let halt = self.store().halt_status()?;
        Ok(halt.halted.then(|| HubError::Conflict {
            code: "halted",
            message: format!(
                "the hub is halted{}: no experiment may start or resume until DELETE /api/v1/halt (chaoshub unhalt)",
                halt.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        }))
    }

    fn steer(
        &self,
        row: &ExperimentRow,
        desired: DesiredState,
        reason: Option<&str>,
        event: &str,
        message: &str,
    ) -> Result<ExperimentObject, HubError> {
        let ev = experiment_event(row, event, message);
        let records = self
            .store()
            .set_desired(&row.uid, desired, reason, &[ev])
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(message) => HubError::Conflict {
                    code: "wrong_phase",
                    message,
                },
                other => HubError::Store(other),
            })?;
        self.engine.publish(records);
        self.engine.trigger(&row.uid);
        let row = self
            .store()
            .get_experiment(&row.uid)?
            .ok_or_else(|| HubError::not_found(format!("experiment {}", row.uid)))?;
        Ok(row.to_object())
    }

    pub fn pause(&self, id: &str, namespace: Option<&str>) -> Result<ExperimentObject, HubError> {
        let row = self.find(id, namespace)?;
        match row.status.phase {
            p if p.is_terminal() => Err(HubError::Conflict {
                code: "wrong_phase",
                message: format!(
                    "experiment {} is {p}; only active experiments can be paused",
                    row.name
                ),
            }),
            _ if row.status.desired == DesiredState::Stop => Err(HubError::Conflict {
                code: "wrong_phase",
                message: format!("experiment {} is being stopped", row.name),
            }),
            _ => self.steer(
                &row,
                DesiredState::Pause,
                None,
                events::EXPERIMENT_PAUSE_REQUESTED,
                "pause requested",
            ),
        }
    }

    pub fn resume(&self, id: &str, namespace: Option<&str>) -> Result<ExperimentObject, HubError> {
        let row = self.find(id, namespace)?;
        if row.status.phase.is_terminal() || row.status.desired == DesiredState::Stop {
            return Err(HubError::Conflict {
                code: "wrong_phase",
                message: format!(
                    "experiment {} is {}; it cannot be resumed",
                    row.name, row.status.phase
                ),
            });
        }
        if row.status.desired == DesiredState::Run {
            return Ok(row.to_object());
        }
        if let Some(halt) = self.halted()? {
            return Err(halt);
        }
        self.steer(
            &row,
            DesiredState::Run,
            None,
            events::EXPERIMENT_RESUME_REQUESTED,
            "resume requested",
        )
    }

    pub fn stop(
        &self,
        id: &str,
        namespace: Option<&str>,
        reason: &str,
    ) -> Result<ExperimentObject, HubError> {
        let row = self.find(id, namespace)?;
        if row.status.phase.is_terminal() {
            return Ok(row.to_object());
        }
        self.steer(
            &row,
            DesiredState::Stop,
            Some(reason),
            events::EXPERIMENT_STOP_REQUESTED,
            &format!("stop requested: {reason}"),
        )
    }

    /// Stops the experiment if needed, waits (up to `wait`) for its faults to be removed, and
    /// archives it. An experiment still recovering after `wait` is archived too; the engine
    /// keeps recovering it.
    pub async fn delete(
        &self,
        id: &str,
        namespace: Option<&str>,
        wait: Duration,
    ) -> Result<ExperimentObject, HubError> {
        let row = self.find(id, namespace)?;
        if row.status.archived {
            return Ok(row.to_object());
        }
        if !row.status.phase.is_terminal() {
            self.stop(&row.uid, None, "deleted by user")?;
            let started = tokio::time::Instant::now();
            while started.elapsed() < wait {
                let current = self.find(&row.uid, None)?;
                if current.status.phase.is_terminal() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let ev = experiment_event(&row, events::EXPERIMENT_ARCHIVED, "archived");
        let records = self.store().set_archived(&row.uid, &[ev])?;
        self.engine.publish(records);
        Ok(self.find(&row.uid, None)?.to_object())
    }

    // ---- halt ----

    pub fn halt_status(&self) -> Result<HaltStatus, HubError> {
        Ok(self.store().halt_status()?)
    }

    pub fn halt(&self, reason: Option<String>) -> Result<HaltStatus, HubError> {
        let reason = reason.unwrap_or_else(|| "halt-all requested".into());
        let mut status = self.store().halt_status()?;
        if !status.halted {
            status = HaltStatus {
                halted: true,
                since: Some(time::now_rfc3339()),
                reason: Some(reason.clone()),
                by: crate::auth::current_name(),
                stopped: Vec::new(),
            };
        }
        // Set the switch first so nothing new starts while the running ones are stopped.
        self.store().set_halt(&status)?;
        let mut stopped = Vec::new();
        for row in self.store().active_experiments()? {
            if row.status.desired != DesiredState::Stop {
                self.steer(
                    &row,
                    DesiredState::Stop,
                    Some(&format!("halted: {reason}")),
                    events::EXPERIMENT_STOP_REQUESTED,
                    &format!("stop requested by halt-all: {reason}"),
                )?;
                stopped.push(row.uid.clone());
            }
        }
        status.stopped = stopped;
        self.store().set_halt(&status)?;
        self.engine.record(&[hub_event(
            events::HALT_SET,
            format!(
                "halt-all{}: {reason}; stopped {} experiment(s)",
                status
                    .by
                    .as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default(),
                status.stopped.len()
            ),
        )])?;
        Ok(status)
    }

    pub fn unhalt(&self) -> Result<HaltStatus, HubError> {
        let status = HaltStatus::default();
        self.store().set_halt(&status)?;
        self.engine.record(&[hub_event(
            events::HALT_RELEASED,
            "halt released: experiments may start again",
        )])?;
        Ok(status)
    }
}

/// Parses a Kubernetes-style label selector (`a=b,c!=d,e in (x,y),f,!g`).
pub fn parse_label_selector(text: &str) -> Result<TargetSelector, ValidationErrors> {
    use chaoshub_schema::selector::LabelSelectorRequirement;
    let mut selector = TargetSelector::default();
    let mut errors = ValidationErrors::new();
    // Split on commas that are not inside parentheses.
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    if depth != 0 {
        errors.push(
            "labelSelector",
            format!("unbalanced parentheses in {text:?}"),
        );
    }
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let set_op = [(" notin ", "NotIn"), (" in ", "In")]
            .into_iter()
            .find_map(|(word, op)| lower.find(word).map(|at| (at, word.len(), op)));
        if let Some((at, len, operator)) = set_op {
            let key = part[..at].trim().to_string();
            let values: Vec<String> = part[at + len..]
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if key.is_empty() || values.is_empty() {
                errors.push(
                    "labelSelector",
                    format!("{part:?} needs a key and at least one value: key in (a,b)"),
                );
                continue;
            }
            selector
                .expression_selectors
                .push(LabelSelectorRequirement {
                    key,
                    operator: operator.into(),
                    values,
                });
        } else if let Some((k, v)) = part.split_once("!=") {
            selector
                .expression_selectors
                .push(LabelSelectorRequirement {
                    key: k.trim().into(),
                    operator: "NotIn".into(),
                    values: vec![v.trim().into()],
                });
        } else if let Some((k, _)) = part
            .split_once("==")
            .or_else(|| part.split_once('='))
            .filter(|(k, _)| k.trim().is_empty())
        {
            errors.push("labelSelector", format!("{part:?} has an empty key {k:?}"));
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            selector
                .label_selectors
                .insert(k.trim().into(), v.trim().into());
        } else if let Some(k) = part.strip_prefix('!') {
            selector
                .expression_selectors
                .push(LabelSelectorRequirement {
                    key: k.trim().into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                });
        } else if part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            selector
                .expression_selectors
                .push(LabelSelectorRequirement {
                    key: part.into(),
                    operator: "Exists".into(),
                    values: vec![],
                });
        } else {
            errors.push("labelSelector", format!("cannot parse {part:?}: use key=value, key!=value, key in (a,b), key notin (a,b), key or !key"));
        }
    }
    errors.into_result().map(|_| selector)
}
