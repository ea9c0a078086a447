//! TLS on the hub's listener: the self-signed setup, a client that does not trust the CA, and a
//! certificate replaced on disk being served to new connections without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use chaoshub::config::HubConfig;

use super::support::config;

/// A CA and a server certificate for 127.0.0.1 it signs, as PEM (ca, cert, key).
fn issue(ca_name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn client(ca_pem: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0);
    if let Some(pem) = ca_pem {
        b = b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()]);
    }
    b.build().unwrap()
}

async fn health(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    match client.get(format!("{url}/healthz")).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            Err(text)
        }
    }
}

fn tls_config(dir: &Path) -> HubConfig {
    let mut c = config(&dir.join("data"));
    c.tls.reload_interval_ms = 100;
    c
}

#[tokio::test]
async fn self_signed_tls_is_trusted_with_its_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tls_config(dir.path());
    c.tls.self_signed = true;
    let hub = chaoshub::server::start(c).await.unwrap();
    let url = hub.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca_file = hub.tls_ca_file.clone().expect("the CA's path");
    assert_eq!(ca_file, dir.path().join("data/tls/ca.pem"));
    let ca = std::fs::read_to_string(&ca_file).unwrap();
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("data/tls/ca.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "the CA key is private");

    assert_eq!(health(&client(Some(&ca)), &url).await, Ok(200));
    let err = health(&client(None), &url).await.unwrap_err();
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "an untrusting client fails on the certificate: {err}"
    );
    // The CLI's client, with and without --ca-file.
    let cli = |ca: Option<&[u8]>| {
        chaoshub::cli::HubClient::with_ca(&url, None, Duration::from_secs(5), ca).unwrap()
    };
    let answer: serde_json::Value = cli(Some(ca.as_bytes()))
        .get(&["healthz"], &[])
        .await
        .unwrap();
    assert_eq!(answer["status"], "ok", "{answer}");
    let err = cli(None)
        .get::<serde_json::Value>(&["healthz"], &[])
        .await
        .unwrap_err();
    let rendered = chaoshub::cli::render_error(&err);
    assert!(rendered.contains("--ca-file"), "{rendered}");
    hub.shutdown().await;

    // The CA is kept across restarts: clients keep trusting the same file.
    let mut c = tls_config(dir.path());
    c.tls.self_signed = true;
    let hub = chaoshub::server::start(c).await.unwrap();
    assert_eq!(std::fs::read_to_string(&ca_file).unwrap(), ca);
    assert_eq!(health(&client(Some(&ca)), &hub.url()).await, Ok(200));
    hub.shutdown().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = issue("first CA");
    let (ca2, cert2, key2) = issue("second CA");
    let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_file, &cert1).unwrap();
    std::fs::write(&key_file, &key1).unwrap();
    let mut c = tls_config(dir.path());
    c.tls.cert_file = Some(cert_file.clone());
    c.tls.key_file = Some(key_file.clone());
    let hub = chaoshub::server::start(c).await.unwrap();
    let url = hub.url();
    assert_eq!(health(&client(Some(&ca1)), &url).await, Ok(200));
    assert!(health(&client(Some(&ca2)), &url).await.is_err());

    // A broken file keeps the old certificate in service.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(health(&client(Some(&ca1)), &url).await, Ok(200));

    // Replace both files (key first, then the certificate): the poller picks them up.
    std::fs::write(&key_file, &key2).unwrap();
    std::fs::write(&cert_file, &cert2).unwrap();
    let start = Instant::now();
    while health(&client(Some(&ca2)), &url).await != Ok(200) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the new certificate was not served within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "new certificate served {:?} after the files changed",
        start.elapsed()
    );
    assert!(health(&client(Some(&ca1)), &url).await.is_err());

    // SIGHUP's path: an explicit reload, same listener, same address.
    std::fs::write(&key_file, &key1).unwrap();
    std::fs::write(&cert_file, &cert1).unwrap();
    hub.reload_tls().unwrap();
    assert_eq!(health(&client(Some(&ca1)), &url).await, Ok(200));
    assert_eq!(hub.url(), url);
    hub.shutdown().await;
}

#[test]
fn tls_config_is_checked() {
    for (toml, needle) in [
        ("[tls]\ncert_file = \"a.pem\"\n", "tls.key_file"),
        ("[tls]\nkey_file = \"a.key\"\n", "tls.cert_file"),
        (
            "[tls]\nself_signed = true\ncert_file = \"a\"\nkey_file = \"b\"\n",
            "tls.self_signed",
        ),
        ("[tls]\nclient_ca_file = \"ca.pem\"\n", "tls.client_ca_file"),
        (
            "[tls]\nself_signed = true\nreload_interval_ms = 1\n",
            "reload_interval_ms",
        ),
    ] {
        let err = HubConfig::from_toml(toml, Path::new("hub.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{toml}: {err}");
    }
}
