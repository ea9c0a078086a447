//! Remote catalogs: an index file served over HTTP (docs/catalog.md), fetched with timeouts,
//! refreshed only when its `lastChange` differs from the cached one, validated template by
//! template, and cached on disk under `<data_dir>/catalogs/` so the hub works offline.
//!
//! Failure policy: a remote that cannot be reached, answers an error, or serves a malformed
//! index keeps its last good templates and records `lastError`; a template that fails
//! validation is left out and listed in `rejected`. A template that cannot be *fetched* fails
//! the whole refresh (the cache stays as it was and the next refresh tries again), so a
//! transient error never makes templates disappear.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use chaoshub_schema::template::{CatalogIndex, CatalogObject, RejectedTemplate, Template};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::CatalogEntry;
use crate::error::HubError;

/// Network limits of remote catalog fetches.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub connect_timeout: Duration,
    /// Total time one request (the index, or one template) may take.
    pub request_timeout: Duration,
    /// Largest index or template file accepted.
    pub max_bytes: usize,
    /// What the hub may call (`security.allowed_endpoints`): catalog URLs are checked when
    /// added, and every fetch (redirects included) before it is made.
    pub endpoints: std::sync::Arc<crate::endpoints::EndpointAllowList>,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_bytes: 1024 * 1024,
            endpoints: Default::default(),
        }
    }
}

/// What is persisted about one remote (in `remotes.json` and `<name>/state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoteRecord {
    name: String,
    url: String,
    #[serde(default)]
    last_change: Option<String>,
    #[serde(default)]
    last_checked: Option<String>,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    rejected: Vec<RejectedTemplate>,
}

struct RemoteState {
    record: RemoteRecord,
    entries: Vec<CatalogEntry>,
}

impl RemoteState {
    fn object(&self) -> CatalogObject {
        CatalogObject {
            name: self.record.name.clone(),
            url: self.record.url.clone(),
            last_change: self.record.last_change.clone(),
            last_checked: self.record.last_checked.clone(),
            last_updated: self.record.last_updated.clone(),
            last_error: self.record.last_error.clone(),
            templates: self.entries.len(),
            rejected: self.record.rejected.clone(),
        }
    }
}

/// The remote catalogs of one hub.
pub struct RemoteCatalog {
    cache_dir: PathBuf,
    settings: RemoteSettings,
    http: Option<reqwest::Client>,
    state: RwLock<BTreeMap<String, RemoteState>>,
    /// Serializes refreshes and changes to the set of remotes.
    busy: tokio::sync::Mutex<()>,
}

/// Why a fetch failed, as shown in `lastError`.
type FetchError = String;

impl RemoteCatalog {
    /// Loads the remotes and their cached templates; touches no network.
    pub fn open(cache_dir: &Path, settings: RemoteSettings) -> RemoteCatalog {
        let allowed = std::sync::Arc::clone(&settings.endpoints);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if let Err(why) = allowed.check_url(attempt.url().as_str()) {
                let why = format!("redirected to {}: {why}", attempt.url());
                attempt.error(why)
            } else {
                attempt.follow()
            }
        });
        chaoshub_adapters::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(redirects)
            .user_agent(concat!("chaoshub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the catalog HTTP client"))
            .ok();
        let mut state = BTreeMap::new();
        for record in
            read_json::<Vec<RemoteRecord>>(&cache_dir.join("remotes.json")).unwrap_or_default()
        {
            let dir = cache_dir.join(&record.name);
            // A crash between the two renames of `write_cache` leaves only the old copy aside:
            // put it back so the remote keeps working offline.
            let aside = cache_dir.join(format!(".{}.old", record.name));
            if !dir.exists() && aside.exists() {
                if let Err(e) = std::fs::rename(&aside, &dir) {
                    tracing::warn!(catalog = %record.name, error = %e, "cannot restore the cached catalog");
                }
            }
            let mut record = read_json::<RemoteRecord>(&dir.join("state.json")).map_or(
                record.clone(),
                |mut cached| {
                    cached.name = record.name.clone();
                    cached.url = record.url.clone();
                    cached
                },
            );
            let entries = load_cached(&dir.join("templates"), &record.name);
            if entries.is_empty() && record.last_change.is_some() && record.last_error.is_none() {
                record.last_error = Some("the cached templates could not be read".into());
            }
            state.insert(record.name.clone(), RemoteState { record, entries });
        }
        RemoteCatalog {
            cache_dir: cache_dir.to_path_buf(),
            settings,
            http,
            state: RwLock::new(state),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RemoteState>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, RemoteState>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.read()
            .values()
            .flat_map(|s| s.entries.iter().cloned())
            .collect()
    }

    pub fn list(&self) -> Vec<CatalogObject> {
        self.read().values().map(RemoteState::object).collect()
    }

    pub fn get(&self, name: &str) -> Result<CatalogObject, HubError> {
        self.read()
            .get(name)
            .map(RemoteState::object)
            .ok_or_else(|| HubError::not_found(format!("catalog {name:?}")))
    }

    /// Registers a remote and fetches it once. The remote is kept even when that first fetch
    /// fails (its `lastError` says why), so a hub that is down right now can still be added.
    pub async fn add(&self, name: &str, url: &str) -> Result<CatalogObject, HubError> {
        check_name(name)?;
        check_url(url)?;
        self.settings
            .endpoints
            .check_url(url)
            .map_err(|why| HubError::invalid_field("url", format!("{url:?}: {why}")))?;
        {
            let _guard = self.busy.lock().await;
            if self.read().contains_key(name) {
                return Err(HubError::Conflict {
                    code: "already_exists",
                    message: format!(
                        "catalog {name:?} is already added; remove it first to change its URL"
                    ),
                });
            }
            let record = RemoteRecord {
                name: name.to_string(),
                url: url.to_string(),
                ..Default::default()
            };
            self.write().insert(
                name.to_string(),
                RemoteState {
                    record,
                    entries: Vec::new(),
                },
            );
            self.persist_list();
        }
        self.refresh(name).await
    }

    pub async fn remove(&self, name: &str) -> Result<CatalogObject, HubError> {
        let _guard = self.busy.lock().await;
        let removed = self
            .write()
            .remove(name)
            .ok_or_else(|| HubError::not_found(format!("catalog {name:?}")))?;
        self.persist_list();
        let dir = self.cache_dir.join(name);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the catalog cache");
            }
        }
        Ok(removed.object())
    }

    /// Refreshes every remote; failures are recorded per remote.
    pub async fn refresh_all(&self) {
        let names: Vec<String> = self.read().keys().cloned().collect();
        for name in names {
            if let Err(e) = self.refresh(&name).await {
                tracing::debug!(catalog = %name, error = %e, "catalog refresh skipped");
            }
        }
    }

    /// Fetches the index; when its `lastChange` differs from the cached one, fetches and
    /// validates every template and replaces the cache. Returns the remote's state, with
    /// `lastError` set when this refresh failed.
    pub async fn refresh(&self, name: &str) -> Result<CatalogObject, HubError> {
        let _guard = self.busy.lock().await;
        let (url, cached_change) = {
            let state = self.read();
            let remote = state
                .get(name)
                .ok_or_else(|| HubError::not_found(format!("catalog {name:?}")))?;
            (remote.record.url.clone(), remote.record.last_change.clone())
        };
        // A whole refresh (index and every template) has one deadline, so a slow remote holds
        // the catalog lock for at most this long, however many templates it lists.
        let outcome = match tokio::time::timeout(
            REFRESH_DEADLINE,
            self.fetch(name, &url, cached_change.as_deref()),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the refresh did not finish within {} s; keeping the cached templates",
                REFRESH_DEADLINE.as_secs()
            )),
        };
        let now = crate::time::now_rfc3339();
        let mut state = self.write();
        let Some(remote) = state.get_mut(name) else {
            return Err(HubError::not_found(format!("catalog {name:?}")));
        };
        match outcome {
            Ok(Fetched::Unchanged) => {
                remote.record.last_checked = Some(now);
                remote.record.last_error = None;
                tracing::debug!(catalog = %name, "catalog index unchanged");
            }
            Ok(Fetched::Changed {
                index,
                entries,
                rejected,
            }) => {
                remote.record.last_checked = Some(now.clone());
                remote.record.last_updated = Some(now);
                remote.record.last_change = Some(index.last_change.clone());
                remote.record.last_error = None;
                remote.record.rejected = rejected;
                tracing::info!(
                    catalog = %name,
                    templates = entries.len(),
                    rejected = remote.record.rejected.len(),
                    last_change = %index.last_change,
                    "catalog updated"
                );
                remote.entries = entries;
            }
            Err(message) => {
                tracing::warn!(catalog = %name, %url, error = %message, "catalog refresh failed; keeping the cached templates");
                remote.record.last_error = Some(message);
            }
        }
        let record = remote.record.clone();
        let object = remote.object();
        drop(state);
        let dir = self.cache_dir.join(name);
        if dir.exists() {
            write_json(&dir.join("state.json"), &record);
        }
        Ok(object)
    }

    async fn fetch(
        &self,
        name: &str,
        url: &str,
        cached_change: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        let index_url =
            Url::parse(url).map_err(|e| format!("the catalog URL {url:?} is invalid: {e}"))?;
        let text = self.get_text(&index_url, "the index").await?;
        let index = CatalogIndex::from_text(&text)
            .map_err(|e| format!("the index at {url} is malformed: {e}"))?;
        let cache = self.cache_dir.join(name);
        if cached_change == Some(index.last_change.as_str()) && cache.join("templates").is_dir() {
            return Ok(Fetched::Unchanged);
        }
        let mut files = Vec::new();
        for entry in &index.templates {
            let file_url = index_url.join(&entry.url).map_err(|e| {
                format!(
                    "template {:?}: url {:?} is invalid: {e}",
                    entry.name, entry.url
                )
            })?;
            if !matches!(file_url.scheme(), "http" | "https") {
                return Err(format!(
                    "template {:?}: url {file_url} is not http(s)",
                    entry.name
                ));
            }
            let text = self
                .get_text(&file_url, &format!("template {:?}", entry.name))
                .await?;
            files.push((entry.name.clone(), text));
        }
        let mut entries = Vec::new();
        let mut rejected = Vec::new();
        let mut accepted = Vec::new();
        for (template_name, text) in files {
            match validate(&template_name, &text, name) {
                Ok(entry) => {
                    entries.push(entry);
                    accepted.push((template_name, text));
                }
                Err(message) => {
                    tracing::warn!(catalog = %name, template = %template_name, error = %message, "remote template rejected");
                    rejected.push(RejectedTemplate {
                        name: template_name,
                        message,
                    });
                }
            }
        }
        self.write_cache(name, &text, &accepted)
            .map_err(|e| format!("cannot write the cache under {}: {e}", cache.display()))?;
        Ok(Fetched::Changed {
            index,
            entries,
            rejected,
        })
    }

    async fn get_text(&self, url: &Url, what: &str) -> Result<String, FetchError> {
        let Some(http) = &self.http else {
            return Err("the HTTP client could not be built".into());
        };
        // Checked before every call: template files may live on other hosts than the index,
        // and the list may have changed since the catalog was added.
        self.settings
            .endpoints
            .check_url(url.as_str())
            .map_err(|why| format!("{what} at {url} was not fetched: {why}"))?;
        let mut response = http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| describe_transport(what, url, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{what} at {url} answered HTTP {}", status.as_u16()));
        }
        let limit = self.settings.max_bytes;
        if response
            .content_length()
            .is_some_and(|n| n as usize > limit)
        {
            return Err(format!("{what} at {url} is larger than {limit} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| describe_transport(what, url, &e))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Err(format!("{what} at {url} is larger than {limit} bytes"));
            }
        }
        String::from_utf8(body).map_err(|_| format!("{what} at {url} is not UTF-8 text"))
    }

    /// Replaces `<cache>/<name>/` with the new index and accepted templates: the new copy is
    /// written aside and swapped in, so a crash leaves either the old or the new cache.
    fn write_cache(
        &self,
        name: &str,
        index_text: &str,
        templates: &[(String, String)],
    ) -> std::io::Result<()> {
        let dir = self.cache_dir.join(name);
        let staging = self.cache_dir.join(format!(".{name}.new"));
        let old = self.cache_dir.join(format!(".{name}.old"));
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_dir_all(&old);
        std::fs::create_dir_all(staging.join("templates"))?;
        std::fs::write(staging.join("index.yaml"), index_text)?;
        for (template, text) in templates {
            std::fs::write(
                staging.join("templates").join(format!("{template}.yaml")),
                text,
            )?;
        }
        if dir.exists() {
            std::fs::rename(&dir, &old)?;
        }
        std::fs::rename(&staging, &dir)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    fn persist_list(&self) {
        let records: Vec<RemoteRecord> = self
            .read()
            .values()
            .map(|s| RemoteRecord {
                name: s.record.name.clone(),
                url: s.record.url.clone(),
                ..Default::default()
            })
            .collect();
        if let Err(e) = std::fs::create_dir_all(&self.cache_dir) {
            tracing::error!(dir = %self.cache_dir.display(), error = %e, "cannot create the catalog cache directory");
            return;
        }
        write_json(&self.cache_dir.join("remotes.json"), &records);
    }
}

enum Fetched {
    Unchanged,
    Changed {
        index: CatalogIndex,
        entries: Vec<CatalogEntry>,
        rejected: Vec<RejectedTemplate>,
    },
}

fn describe_transport(what: &str, url: &Url, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("{what} at {url} did not answer in time")
    } else if error.is_connect() {
        format!("{what} at {url} is unreachable (cannot connect)")
    } else {
        let mut source: &dyn std::error::Error = error;
        while let Some(next) = source.source() {
            source = next;
        }
        format!("{what} at {url} could not be fetched: {source}")
    }
}

/// Checks one remote template: it parses, validates, carries the name the index gives it and
/// names only known adapter types.
fn validate(expected: &str, text: &str, source: &str) -> Result<CatalogEntry, String> {
    let template = Template::from_text(text).map_err(|e| e.to_string())?;
    if template.name() != expected {
        return Err(format!(
            "metadata.name {:?} differs from the index entry {expected:?}",
            template.name()
        ));
    }
    CatalogEntry::new(template, source).map_err(|e| e.to_string())
}

fn load_cached(dir: &Path, source: &str) -> Vec<CatalogEntry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?.to_string();
            let text = std::fs::read_to_string(&path).ok()?;
            match validate(&stem, &text, source) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cached template skipped");
                    None
                }
            }
        })
        .collect()
}

fn check_name(name: &str) -> Result<(), HubError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(HubError::invalid_field(
            "name",
            format!("{name:?} is not a valid catalog name: use lowercase letters, digits and '-' (at most 63)"),
        ));
    }
    if name == super::LOCAL_SOURCE {
        return Err(HubError::invalid_field(
            "name",
            "\"local\" is the name of the hub's own catalog; choose another",
        ));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), HubError> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(HubError::invalid_field(
            "url",
            format!("{url:?} must be an http:// or https:// URL of an index file"),
        )),
        Err(e) => Err(HubError::invalid_field(
            "url",
            format!("{url:?} is not a URL ({e})"),
        )),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "unreadable catalog state ignored");
            None
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) {
    let text = match serde_json::to_string_pretty(value) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode catalog state");
            return;
        }
    };
    let tmp = path.with_extension("json.tmp");
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::error!(file = %path.display(), error = %e, "cannot write catalog state");
    }
}

/// Refreshes every remote catalog now and then every `interval` until `shutdown` turns true.
/// The longest one refresh of one remote catalog may take.
const REFRESH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn refresh_loop(
    catalog: std::sync::Arc<super::Catalog>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        catalog.remotes.refresh_all().await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
