//! A TLS engine: the adapter connects with a client certificate, as `docker --tlsverify` does.
//!
//! The engine here listens on its Unix socket only, so the test puts **a TLS front** before it:
//! a rustls server on 127.0.0.1 that requires a client certificate signed by the test's CA and
//! relays each connection's bytes to `/var/run/docker.sock`. Everything behind the TLS layer is
//! the real engine. The certificates are made by the `openssl` CLI in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chaoshub_adapters::docker::DockerAdapter;
use chaoshub_adapters::{Adapter, AdapterError, Environment};
use chaoshub_schema::environment::EnvironmentSpec;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::support::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>-ca.pem`) and a certificate it signed (`<name>.pem`, `<name>.key`) with the
/// given extensions.
fn issue(dir: &Path, ca: &str, name: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// Starts the TLS front; returns its port. It runs until the test's runtime ends.
async fn tls_front(dir: &Path) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client without an acceptable certificate fails the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut engine) = tokio::net::UnixStream::connect("/var/run/docker.sock").await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
            });
        }
    });
    port
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1, a client certificate from that CA, and one
    /// from a stranger CA.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "ca");
        issue(
            d,
            "ca",
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        issue(d, "ca", "client", "extendedKeyUsage=clientAuth\n");
        make_ca(d, "stranger-ca");
        issue(
            d,
            "stranger-ca",
            "stranger",
            "extendedKeyUsage=clientAuth\n",
        );
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn env(&self, port: u16, client: &str) -> Environment {
        let settings = serde_json::json!({
            "tls_ca": self.path("ca.pem"),
            "tls_cert": self.path(&format!("{client}.pem")),
            "tls_key": self.path(&format!("{client}.key")),
        });
        Environment {
            name: "tls-engine".into(),
            spec: EnvironmentSpec {
                adapter: "docker".into(),
                endpoint: Some(format!("https://127.0.0.1:{port}")),
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap(),
            },
        }
    }
}

#[tokio::test]
async fn a_tls_engine_is_driven_with_a_client_certificate_and_a_stranger_is_refused() {
    let pki = Pki::new();
    let port = tls_front(pki.dir.path()).await;
    let adapter = DockerAdapter::new();
    let env = pki.env(port, "client");
    adapter.validate_environment(&env).unwrap();

    let web = run_web().await;
    let targets = adapter.discover(&env).await.unwrap();
    let target = targets
        .into_iter()
        .find(|t| t.id == web.id)
        .expect("the container is discovered over TLS");

    let (id, _guard) = guarded_injection_id();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: p\nspec:\n  action: pod-failure\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n";
    let fault = request(yaml, &id, 30);
    let details = adapter.inject(&env, &fault, &target).await.unwrap();
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "true");
    assert_eq!(details["watchdog"]["armed"], false, "{details}");
    assert!(
        details["watchdog"]["reason"]
            .as_str()
            .unwrap()
            .contains("TLS"),
        "{details}"
    );
    adapter
        .recover(&env, &injection(&fault, &target, details))
        .await
        .unwrap();
    assert_eq!(inspect(&web, "{{.State.Paused}}"), "false");
    assert!(!journal_exists(&id));

    // A client certificate from another CA: the engine's front refuses the handshake.
    let stranger = pki.env(port, "stranger");
    let refused = tokio::time::timeout(Duration::from_secs(30), adapter.discover(&stranger))
        .await
        .expect("refused promptly");
    match refused {
        Err(AdapterError::Unreachable { message, .. }) => {
            eprintln!("stranger certificate: {message}");
            assert!(
                message.contains("UnknownCA"),
                "the cause is named: {message}"
            );
        }
        other => panic!("a stranger certificate must make the engine unreachable: {other:?}"),
    }

    // A missing file is named.
    let mut missing = pki.env(port, "client");
    missing
        .spec
        .settings
        .insert("tls_key".into(), "/nonexistent/key.pem".into());
    let error = adapter.discover(&missing).await.unwrap_err().to_string();
    assert!(
        error.contains("spec.settings.tls_key") && error.contains("/nonexistent/key.pem"),
        "{error}"
    );
}
