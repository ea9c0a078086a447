//! Starting and stopping a hub: store, engine, pre-registered environments, the listener
//! (plain HTTP, or TLS with a reloadable certificate: `tls.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use chaoshub_adapters::AdapterRegistry;
use chaoshub_schema::environment::EnvironmentSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::HubConfig;
use crate::engine::Engine;
use crate::events::{hub_event, HUB_STARTED};
use crate::operations::Hub;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("environment {name:?} from the config: {message}")]
    Environment { name: String, message: String },
    #[error("telemetry")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error("{0}")]
    Config(String),
    #[error("authentication")]
    Bootstrap(#[from] crate::auth::bootstrap::BootstrapError),
    #[error("tls")]
    Tls(#[from] crate::tls::TlsError),
}

/// A hub that is serving; dropping it does not stop it, `shutdown` does.
pub struct RunningHub {
    pub addr: SocketAddr,
    pub hub: Hub,
    /// The TLS configuration in service, if the listener speaks TLS.
    pub tls: Option<Arc<crate::tls::ReloadableTls>>,
    /// The self-signed CA clients should trust (`tls.self_signed`).
    pub tls_ca_file: Option<std::path::PathBuf>,
    shutdown: watch::Sender<bool>,
    /// The router the listener serves (API, console, agents' gRPC), for in-process callers.
    app: axum::Router,
    server: JoinHandle<()>,
    engine: JoinHandle<()>,
    /// The note that lets a CLI on this machine find the admin token (removed at shutdown).
    local_note: Option<std::path::PathBuf>,
}

impl RunningHub {
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The router this hub serves, to call in-process (`tower::ServiceExt::oneshot`) without a
    /// connection: the fuzz drivers send millions of requests this way. Requests reach it
    /// without the client address a listener adds (`ConnectInfo`), so the failed-authentication
    /// limiter, which counts per address, does not apply to them.
    pub fn router(&self) -> axum::Router {
        self.app.clone()
    }

    /// Re-reads the TLS certificate files now (SIGHUP does this); the listener stays open.
    pub fn reload_tls(&self) -> Result<(), crate::tls::TlsError> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// The bootstrap admin token of this hub's data dir, when it has one (tests and tools on
    /// the same machine use it as a user would: by reading the file).
    pub fn admin_token(&self, data_dir: &std::path::Path) -> Option<String> {
        crate::auth::bootstrap::read_token_file(
            &data_dir.join(crate::auth::bootstrap::ADMIN_TOKEN_FILE),
        )
    }

    /// Stops accepting requests and stops the engine loop. Faults stay as they are: a hub that
    /// stops (or dies) leaves recovery to its next start, or to the far side's own deadline.
    pub async fn shutdown(self) {
        remove_note(self.local_note.as_deref());
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.engine.await;
        flush_telemetry(&self.hub).await;
    }

    /// Serves until SIGTERM or Ctrl-C (or until the server fails), then shuts down.
    ///
    /// Signal handling lives here and not in `start`, so hubs started in-process by tests are
    /// never stopped by the signal plumbing of other runtimes in the same process.
    pub async fn serve_until_signal(mut self) {
        let note = self.local_note.take();
        let mut hangup = hangup_signal();
        let terminate = terminate_signal();
        tokio::pin!(terminate);
        let server_done = loop {
            tokio::select! {
                _ = &mut terminate => {
                    tracing::info!("signal received, shutting down");
                    break false;
                }
                _ = &mut self.server => {
                    tracing::error!("http server stopped");
                    break true;
                }
                Some(()) = recv_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading the tls certificate");
                    if let Err(e) = self.reload_tls() {
                        tracing::error!(error = %e, "tls reload failed; the previous certificate stays in service");
                    }
                }
            }
        };
        remove_note(note.as_deref());
        let _ = self.shutdown.send(true);
        if !server_done {
            let _ = self.server.await;
        }
        let _ = self.engine.await;
        flush_telemetry(&self.hub).await;
    }
}

/// Starts a hub with the built-in adapters.
pub async fn start(config: HubConfig) -> Result<RunningHub, StartError> {
    start_with(config, AdapterRegistry::builtin()).await
}

/// Starts a hub with a given adapter registry (tests add their own adapters).
pub async fn start_with(
    config: HubConfig,
    registry: AdapterRegistry,
) -> Result<RunningHub, StartError> {
    let store = crate::store::open(
        config.store.url.as_deref(),
        &config.data_dir,
        &config.store.synchronous,
    )?;
    start_with_store(config, registry, store).await
}

pub async fn start_with_store(
    config: HubConfig,
    registry: AdapterRegistry,
    store: Arc<dyn Store>,
) -> Result<RunningHub, StartError> {
    start_with_store_and_clock(config, registry, store, Arc::new(crate::time::RealClock)).await
}

/// Starts a hub whose engine reads time from `clock` (tests pass a manual clock to drive
/// schedules and deadlines exactly).
pub async fn start_with_clock(
    config: HubConfig,
    registry: AdapterRegistry,
    clock: Arc<dyn crate::time::Clock>,
) -> Result<RunningHub, StartError> {
    let store = crate::store::open(
        config.store.url.as_deref(),
        &config.data_dir,
        &config.store.synchronous,
    )?;
    start_with_store_and_clock(config, registry, store, clock).await
}

pub async fn start_with_store_and_clock(
    config: HubConfig,
    registry: AdapterRegistry,
    store: Arc<dyn Store>,
    clock: Arc<dyn crate::time::Clock>,
) -> Result<RunningHub, StartError> {
    // Every HTTP client of the hub (adapters, probes, catalog, OTLP) takes this rustls provider.
    chaoshub_adapters::install_crypto_provider();
    let failpoints = crate::failpoints::check().map_err(StartError::Config)?;
    if !failpoints.is_empty() {
        tracing::warn!(
            armed = %failpoints.join(","),
            "failpoints are armed ({}): this hub will crash on purpose; never run it for real",
            crate::failpoints::ENV
        );
    }
    let endpoints = Arc::new(
        crate::endpoints::EndpointAllowList::parse(&config.security.allowed_endpoints)
            .map_err(StartError::Config)?,
    );
    // The hub's own exports obey the list too, so a locked-down install's list is the whole
    // truth of what the hub calls.
    if let Some(otlp) = &config.telemetry.endpoint {
        endpoints.check_url(otlp).map_err(|why| {
            StartError::Config(format!(
                "telemetry.endpoint {otlp:?} is outside security.allowed_endpoints: {why}"
            ))
        })?;
    }
    let telemetry = crate::telemetry::Telemetry::from_config(&config.telemetry)?;
    let catalog = crate::catalog::Catalog::open(
        &config.catalog_dir,
        &config.data_dir.join("catalogs"),
        crate::catalog::remote::RemoteSettings {
            endpoints: Arc::clone(&endpoints),
            ..Default::default()
        },
    );
    let tls_files = crate::tls::files_of(&config.tls, &config.data_dir, &config.listen)?;
    let (tls, tls_ca_file) = match tls_files {
        Some((files, ca)) => (Some(crate::tls::ReloadableTls::new(files)?), ca),
        None => (None, None),
    };
    let protected_label =
        crate::selection::ProtectedLabel::parse(&config.security.protected_selector)
            .map_err(|e| StartError::Config(format!("security.protected_selector: {e}")))?;
    let engine = Engine::with_clock(
        store,
        registry,
        config.engine.clone(),
        config.limits.clone(),
        endpoints,
        protected_label,
        telemetry,
        clock,
        |engine| {
            // Schedules and workflows submit their children through the hub's own path.
            crate::controllers::builtin(Arc::new(crate::submission::HubChildren {
                engine: engine.clone(),
                default_environment: config.default_environment.clone(),
                catalog: Arc::clone(&catalog),
            }))
        },
    );
    // Several hubs on one shared store: this one runs the engine only while it holds the
    // lease, and hears of the others' changes through the store.
    let leadership = if engine.store().shared() {
        let leadership = crate::leadership::Leadership::replica(&config.replica);
        engine.set_leadership(Arc::clone(&leadership));
        let weak = Arc::downgrade(&engine);
        // Called on the store's listener thread: passes are started on this runtime.
        let runtime = tokio::runtime::Handle::current();
        engine
            .store()
            .watch_changes(Arc::new(move |change| {
                if let Some(engine) = weak.upgrade() {
                    let _entered = runtime.enter();
                    engine.external_change(change);
                }
            }))
            .map_err(|e| StartError::Config(format!("store: cannot listen for changes: {e}")))?;
        tracing::info!(replica = %leadership.id(), "store shared with other replicas: this replica runs the engine only while it holds the engine lease");
        Some(leadership)
    } else {
        None
    };
    let hub = Hub {
        engine: Arc::clone(&engine),
        default_environment: config.default_environment.clone(),
        catalog,
    };
    for env in &config.environments {
        let spec = EnvironmentSpec {
            adapter: env.adapter.clone(),
            endpoint: env.endpoint.clone(),
            description: env.description.clone(),
            labels: env.labels.clone(),
            settings: env.settings.clone(),
        };
        hub.register_environment_spec(&env.name, spec, Default::default(), true)
            .map_err(|e| StartError::Environment {
                name: env.name.clone(),
                message: format!("{e} {:?}", e.body().details),
            })?;
    }
    config
        .check()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let admin_token_file = if config.auth.mode == "none" {
        tracing::warn!(listen = %config.listen, "auth.mode = \"none\": every caller of this loopback address is an admin");
        None
    } else {
        crate::auth::bootstrap::ensure_admin_token(
            engine.store().as_ref(),
            &config.data_dir,
            &crate::time::format(engine.now()),
        )?;
        let file = config
            .data_dir
            .join(crate::auth::bootstrap::ADMIN_TOKEN_FILE);
        file.exists().then_some(file)
    };
    // Every stored environment is prepared again: the far side may have been pruned while the
    // hub was down (a preparation that finds its work done costs a lookup).
    if let Ok(stored) = engine.store().list_environments() {
        for object in stored {
            let (Some(name), Ok(adapter)) = (
                object.metadata.name.clone(),
                engine.registry().get(&object.spec.adapter),
            ) else {
                continue;
            };
            let env = chaoshub_adapters::Environment {
                name,
                spec: object.spec,
            };
            engine.preparations.start(adapter.clone(), env.clone());
            engine.environment_statuses.refresh(adapter, env, true);
        }
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    engine.record(&[hub_event(
        HUB_STARTED,
        format!("hub {} started on {addr}", env!("CARGO_PKG_VERSION")),
    )])?;
    let (shutdown, rx) = watch::channel(false);
    if let Some(leadership) = leadership {
        // Followers serve the agents the leader publishes.
        tokio::spawn(crate::agents::directory::publish_loop(
            Arc::clone(&engine.agents),
            Arc::clone(&leadership),
            rx.clone(),
        ));
        tokio::spawn(leadership.run(Arc::clone(engine.store()), rx.clone()));
    }
    let engine_task = tokio::spawn(Arc::clone(&engine).run(rx.clone()));
    // Suite runs of replicas that died are continued by the engine leader.
    tokio::spawn(crate::suites::adopt_loop(hub.clone(), rx.clone()));
    tokio::spawn(crate::catalog::remote::refresh_loop(
        Arc::clone(&hub.catalog),
        std::time::Duration::from_secs(config.catalog_refresh_interval_secs.max(1)),
        rx.clone(),
    ));
    // Event retention: at start, then hourly.
    tokio::spawn(event_retention_loop(
        Arc::clone(engine.store()),
        config.store.clone(),
        rx.clone(),
    ));
    // Agents dial in over gRPC; the `native` adapter reaches them through the engine's registry.
    let agents = Arc::clone(&engine.agents);
    tokio::spawn(Arc::clone(&agents).renewal_loop(rx.clone()));
    // gRPC for agents on the same port as REST (HTTP/2 cleartext is negotiated per connection).
    // Added after the REST layers on purpose: an agent's stream lives for hours and must not
    // meet the request timeout or body limit.
    // The web console in front of the API: its pages, and every other path to the API.
    let jwt = match &config.auth.jwt {
        Some(jwt) => Some(Arc::new(
            crate::auth::jwt::JwtVerifier::new(jwt.clone(), Arc::clone(hub.engine.endpoints()))
                .map_err(StartError::Config)?,
        )),
        None => None,
    };
    let api = crate::api::router(
        hub.clone(),
        config.limits.max_body_bytes,
        &config.auth,
        jwt.clone(),
    );
    let app = crate::console::router(
        hub.clone(),
        &config.auth,
        config.limits.max_body_bytes,
        api,
        jwt,
    )
    .route_service(
        "/chaoshub.agent.v1.AgentHub/{*rest}",
        chaoshub_schema::agent::proto::agent_hub_server::AgentHubServer::new(
            crate::agents::grpc::AgentService {
                registry: agents.clone(),
                admission: crate::agents::join::AgentAdmission::new(engine.store().clone()),
                require_client_certificate: tls.is_some() && config.tls.client_ca_file.is_some(),
                leadership: Arc::clone(engine.leadership()),
            },
        ),
    );
    if let Some(tls) = &tls {
        tokio::spawn(Arc::clone(tls).watch(
            std::time::Duration::from_millis(config.tls.reload_interval_ms),
            rx.clone(),
        ));
    } else if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "!!! PLAIN HTTP ON A NON-LOOPBACK ADDRESS: requests, tokens and agent credentials cross the network unencrypted; configure [tls] cert_file/key_file or run `chaoshub serve --tls-self-signed` !!!"
        );
    }
    let mut server_rx = rx;
    let served = app.clone();
    let server = match tls.clone() {
        None => tokio::spawn(async move {
            let stop = async move {
                let _ = server_rx.changed().await;
            };
            // The client's address reaches the auth gate (rate limiting, audit) as ConnectInfo.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "http server failed");
            }
        }),
        Some(tls) => tokio::spawn(serve_tls(listener, app, tls, server_rx)),
    };
    tracing::info!(%addr, tls = tls.is_some(), "chaoshub listening");
    let local_note = admin_token_file
        .as_deref()
        .and_then(|file| crate::auth::bootstrap::publish_local_note(addr, file));
    Ok(RunningHub {
        addr,
        hub,
        tls,
        tls_ca_file,
        shutdown,
        app: served,
        server,
        engine: engine_task,
        local_note,
    })
}

fn remove_note(note: Option<&std::path::Path>) {
    if let Some(note) = note {
        let _ = std::fs::remove_file(note);
    }
}

/// How long open connections may finish after shutdown before they are dropped.
const TLS_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The TLS accept loop: every connection is handshaken with the configuration in service at
/// that moment (so a reload applies to new connections without closing the listener), then
/// served as HTTP/1.1 or HTTP/2 (ALPN), with the client's verified certificate, if any, and its
/// address in the request's extensions.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Arc<crate::tls::ReloadableTls>,
    mut shutdown: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(stream),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "tls handshake timed out");
                    return;
                }
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::tls::PeerCertificate(c.clone().into_owned()));
            let service = app.map_request(move |mut req: axum::http::Request<_>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                if let Some(peer) = &peer {
                    req.extensions_mut().insert(peer.clone());
                }
                req
            });
            let service = hyper_util::service::TowerToHyperService::new(service);
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(TLS_SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("open connections did not finish in time; dropping them");
    }
}

/// How often the event log is pruned.
const EVENT_RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes events past `store.event_retention_days` and beyond `store.event_max_rows`, at start
/// and then every hour, until shutdown.
async fn event_retention_loop(
    store: Arc<dyn Store>,
    config: crate::config::StoreConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let older_than = if config.event_retention_days == 0 {
            // Nothing is old enough: only the row cap applies.
            "0000".to_string()
        } else {
            crate::time::format(
                chrono::Utc::now()
                    - chrono::Duration::days(config.event_retention_days.min(365_000) as i64),
            )
        };
        let store = Arc::clone(&store);
        let max_rows = config.event_max_rows;
        match tokio::task::spawn_blocking(move || store.prune_events(&older_than, max_rows)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "event log pruned"),
            Ok(Err(e)) => tracing::warn!(error = %e, "pruning the event log failed"),
            Err(e) => tracing::warn!(error = %e, "pruning the event log panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVENT_RETENTION_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Exports what telemetry has queued and stops exporting.
async fn flush_telemetry(hub: &Hub) {
    let telemetry = hub.engine.telemetry().clone();
    if telemetry.is_exporting() {
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<()> {
    None
}

#[cfg(unix)]
async fn recv_hangup(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Option<()>) -> Option<()> {
    std::future::pending().await
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
