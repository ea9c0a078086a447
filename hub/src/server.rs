//! Starting and stopping a hub: store, engine, pre-registered environments, HTTP listener.

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
use crate::store::{SqliteStore, Store, StoreError};

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
}

/// A hub that is serving; dropping it does not stop it, `shutdown` does.
pub struct RunningHub {
    pub addr: SocketAddr,
    pub hub: Hub,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    engine: JoinHandle<()>,
}

impl RunningHub {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and stops the engine loop. Faults stay as they are: a hub that
    /// stops (or dies) leaves recovery to its next start, or to the far side's own deadline.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.engine.await;
    }

    /// Waits until the server stops (after Ctrl-C or SIGTERM when started by `serve`).
    pub async fn wait(self) {
        let _ = self.server.await;
        let _ = self.shutdown.send(true);
        let _ = self.engine.await;
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
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        &config.data_dir,
        &config.store.synchronous,
    )?);
    start_with_store(config, registry, store).await
}

pub async fn start_with_store(
    config: HubConfig,
    registry: AdapterRegistry,
    store: Arc<dyn Store>,
) -> Result<RunningHub, StartError> {
    let engine = Engine::new(
        store,
        registry,
        config.engine.clone(),
        config.limits.clone(),
    );
    let hub = Hub {
        engine: Arc::clone(&engine),
        default_environment: config.default_environment.clone(),
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
    let engine_task = tokio::spawn(Arc::clone(&engine).run(rx.clone()));
    let app = crate::api::router(hub.clone(), config.limits.max_body_bytes);
    let mut server_rx = rx;
    let server = tokio::spawn(async move {
        let stop = async move {
            tokio::select! {
                _ = server_rx.changed() => {}
                _ = terminate_signal() => {}
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(%addr, "chaoshub listening");
    Ok(RunningHub {
        addr,
        hub,
        shutdown,
        server,
        engine: engine_task,
    })
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
