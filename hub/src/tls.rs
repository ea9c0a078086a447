//! TLS for the hub's one listener (REST, the agents' gRPC and the console alike), with rustls.
//!
//! - `tls.cert_file` / `tls.key_file`: PEM files, re-read when they change (polled every
//!   `tls.reload_interval_ms`) or on SIGHUP; new connections get the new certificate, open ones
//!   keep theirs, and the listener is never closed. A file that fails to load keeps the old
//!   certificate in service and is logged.
//! - `tls.client_ca_file`: agents must present a client certificate from this CA (mutual TLS).
//!   Other clients (the CLI, browsers) need none; the hub's gRPC service refuses a stream whose
//!   connection presented no verified certificate.
//! - `chaoshub serve --tls-self-signed`: a CA kept under `<data-dir>/tls/` (created once) and a
//!   server certificate it signs at every start for the listen address, `localhost`, the host
//!   name and `tls.self_signed_names`. Clients trust `<data-dir>/tls/ca.pem` (`--ca-file`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("tls: {0}")]
    Invalid(String),
    #[error("tls: cannot create the self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The files a listener's TLS configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

/// Modification time and length of each file (`None`: unreadable).
type Fingerprint = Vec<Option<(SystemTime, u64)>>;

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut out = vec![self.cert_file.as_path(), self.key_file.as_path()];
        out.extend(self.client_ca_file.as_deref());
        out
    }

    /// Modification time and length of every file: a change means "reload".
    fn fingerprint(&self) -> Fingerprint {
        self.paths()
            .into_iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Builds the rustls configuration from the files (ALPN h2 and http/1.1).
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert_file)?;
    let key_pem = read(&files.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError::Invalid(format!(
            "{}: no PEM private key ({e})",
            files.key_file.display()
        ))
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::Invalid(format!("{}: {e}", ca.display())))?;
            }
            // Clients without a certificate are let in at the TLS layer (the CLI, browsers);
            // the agents' gRPC service requires one (see `PeerCertificate`).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Invalid(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Invalid(format!(
            "{} and {} do not make a certificate and its key: {e}",
            files.cert_file.display(),
            files.key_file.display()
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration in service, replaced on reload.
pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Fingerprint)>,
}

impl ReloadableTls {
    pub fn new(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let fingerprint = files.fingerprint();
        let config = load(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new((config, fingerprint)),
        }))
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Re-reads the files; on failure the old configuration stays in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fingerprint = self.files.fingerprint();
        let config = load(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, fingerprint);
        tracing::info!(cert_file = %self.files.cert_file.display(), "tls certificate reloaded");
        Ok(())
    }

    /// Reloads if a file changed since the last load.
    pub fn reload_if_changed(&self) {
        let now = self.files.fingerprint();
        let changed = self.current.read().unwrap_or_else(|p| p.into_inner()).1 != now;
        if changed {
            if let Err(e) = self.reload() {
                tracing::error!(error = %e, "tls files changed but cannot be loaded; the previous certificate stays in service");
                // Remember the broken state so the error is logged once per change.
                self.current.write().unwrap_or_else(|p| p.into_inner()).1 = now;
            }
        }
    }

    /// Polls the files until shutdown.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Set on every request that came over a TLS connection where the client presented a
/// certificate the configured `tls.client_ca_file` verified.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// Where the self-signed material lives.
pub fn self_signed_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

const CA_NAME: &str = "chaoshub self-signed CA";

fn ca_params() -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The names a self-signed server certificate covers for a listen address.
pub fn self_signed_names(listen: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Creates (once) the CA and (at every start) a server certificate for `names`, under
/// `<data_dir>/tls/`. Returns the files to serve with and the CA's path.
pub fn ensure_self_signed(
    data_dir: &Path,
    names: &[String],
) -> Result<(TlsFiles, PathBuf), TlsError> {
    let err = |e: &dyn std::fmt::Display| TlsError::SelfSigned(e.to_string());
    let dir = self_signed_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
    let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_key_pair = if ca_cert.exists() && ca_key.exists() {
        let pem = std::fs::read_to_string(&ca_key).map_err(|e| err(&e))?;
        rcgen::KeyPair::from_pem(&pem).map_err(|e| err(&e))?
    } else {
        let key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
        let cert = ca_params()
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| err(&e))?;
        write_private(&ca_key, key.serialize_pem().as_bytes()).map_err(|e| err(&e))?;
        std::fs::write(&ca_cert, cert.pem()).map_err(|e| err(&e))?;
        tracing::info!(ca = %ca_cert.display(), "created a self-signed CA");
        key
    };
    // The issuer is rebuilt from the same subject and key: certificates it signs chain to the
    // stored CA certificate without parsing it.
    let issuer = rcgen::Issuer::new(ca_params().map_err(|e| err(&e))?, ca_key_pair);
    let mut params = rcgen::CertificateParams::new(
        names
            .iter()
            .filter(|n| n.parse::<IpAddr>().is_ok() || !n.contains(':'))
            .cloned()
            .collect::<Vec<_>>(),
    )
    .map_err(|e| err(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "chaoshub");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| err(&e))?;
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    write_private(&key_file, key.serialize_pem().as_bytes()).map_err(|e| err(&e))?;
    std::fs::write(&cert_file, cert.pem()).map_err(|e| err(&e))?;
    Ok((
        TlsFiles {
            cert_file,
            key_file,
            client_ca_file: None,
        },
        ca_cert,
    ))
}

/// The files to serve with, from the configuration; `None` for plain HTTP.
pub fn files_of(
    tls: &TlsConfig,
    data_dir: &Path,
    listen: &str,
) -> Result<Option<(TlsFiles, Option<PathBuf>)>, TlsError> {
    if tls.self_signed {
        let names = self_signed_names(listen, &tls.self_signed_names);
        let (mut files, ca) = ensure_self_signed(data_dir, &names)?;
        files.client_ca_file = tls.client_ca_file.clone();
        return Ok(Some((files, Some(ca))));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => Ok(Some((
            TlsFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                client_ca_file: tls.client_ca_file.clone(),
            },
            None,
        ))),
        _ => Ok(None),
    }
}
