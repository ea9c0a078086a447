//! The agent daemon: the fault table with its leases and journal, the hub connection, and the
//! local REST API, tied together by `serve`. The REST layer (`crate::rest`) sits above the
//! daemon and is handed to `serve` by the caller, so this module never names it.

pub mod capabilities;
pub mod faults;
pub mod hub_link;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chaoshub_schema::agent::KernelMechanisms;
use tokio::sync::watch;

use crate::injectors::{self, InjectorOptions};
use crate::journal::Journal;
use faults::FaultTable;
use hub_link::{HubAccess, Identity, LinkState};

/// Everything `chaos-agent serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The hub's address (`http://host:port`); `None` runs the agent on its own (REST only).
    pub hub: Option<String>,
    pub name: String,
    pub environment: String,
    pub labels: BTreeMap<String, String>,
    pub state_dir: PathBuf,
    /// The local REST API: a Unix socket by default, loopback TCP with a token otherwise.
    pub rest: crate::local_api::RestListen,
    /// A join token, exchanged for a credential on the first connection.
    pub join_token: Option<String>,
    /// PEM of the CA that signed the hub's certificate (https:// hubs).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM) for a hub that requires them.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    pub options: InjectorOptions,
}

/// Shared state of a running daemon.
pub struct Daemon {
    pub table: Arc<FaultTable>,
    pub identity: Identity,
    pub link: watch::Receiver<LinkState>,
}

/// Builds the fault table: probes the kernel, opens the journal and removes whatever a previous
/// run left behind. Used by `serve` and by the CLI's foreground mode.
pub fn open_table(
    state_dir: &std::path::Path,
    options: &InjectorOptions,
) -> anyhow::Result<(Arc<FaultTable>, KernelMechanisms)> {
    let mechanisms = injectors::mechanisms_for(options)?;
    let journal = Journal::open(state_dir)?;
    let table = Arc::new(FaultTable::new(
        injectors::all(&mechanisms, options, state_dir),
        journal,
        mechanisms.clone(),
    ));
    let removals = table.replay_journal()?;
    let failed: Vec<_> = removals.iter().filter(|r| r.result.is_err()).collect();
    if !failed.is_empty() {
        tracing::error!(
            count = failed.len(),
            "some faults of a previous run could not be removed; see earlier errors"
        );
    }
    Ok((table, mechanisms))
}

/// Runs the daemon until SIGINT/SIGTERM; removes every fault before returning.
///
/// `rest` builds the local REST API over the daemon (`crate::rest::router`): it is passed in
/// rather than named here so the daemon stays below the REST layer that reads it.
pub async fn serve<F>(
    config: ServeConfig,
    rest: impl FnOnce(Arc<Daemon>, watch::Receiver<bool>) -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>>>,
{
    let started = std::time::Instant::now();
    let state_dir = config.state_dir.clone();
    let options = config.options.clone();
    let (table, mechanisms) =
        tokio::task::spawn_blocking(move || open_table(&state_dir, &options)).await??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        ?mechanisms,
        "kernel mechanisms probed, journal replayed"
    );

    let identity = Identity {
        name: config.name.clone(),
        environment: config.environment.clone(),
        labels: config.labels.clone(),
        capabilities: capabilities::of(&mechanisms, &config.options),
        allowed: config.options.allowed(),
        hostname: capabilities::hostname(),
        addresses: capabilities::addresses(),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (link_tx, link_rx) = watch::channel(LinkState::default());

    let lease = tokio::spawn(faults::lease_loop(table.clone(), shutdown_rx.clone()));
    let link = config.hub.clone().map(|hub| {
        tokio::spawn(hub_link::run(
            hub_link::hub_urls(&hub),
            identity.clone(),
            HubAccess {
                state_dir: config.state_dir.clone(),
                join_token: config.join_token.clone(),
                ca_pem: config.ca_pem.clone(),
                client_identity: config.client_identity.clone(),
            },
            table.clone(),
            link_tx,
            shutdown_rx.clone(),
        ))
    });

    let daemon = Arc::new(Daemon {
        table: table.clone(),
        identity,
        link: link_rx,
    });
    let rest = rest(daemon.clone(), shutdown_rx.clone()).await?;
    tracing::info!(hub = ?config.hub, allowed = ?daemon.identity.allowed, "chaos-agent serving");

    wait_for_signal().await;
    tracing::info!("shutting down; removing every fault");
    let _ = shutdown_tx.send(true);
    let t = table.clone();
    let removals = tokio::task::spawn_blocking(move || t.recover_all()).await?;
    for r in removals {
        if let Err(e) = r.result {
            tracing::error!(id = %r.id, error = %e, "could not remove a fault at shutdown; the journal keeps it for the next start");
        }
    }
    let _ = lease.await;
    if let Some(link) = link {
        let _ = link.await;
    }
    let _ = rest.await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
