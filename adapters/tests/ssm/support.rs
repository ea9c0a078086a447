//! Fixtures: environments, fault requests from manifests, a shared-credentials profile in a
//! temporary directory (so the SDK's real profile chain is used), and a real `moto_server`
//! child process (killed and reaped on drop).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaoshub_adapters::{Environment, FaultRequest, Injection};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Target;
use serde_json::{json, Value};

pub const ENV_NAME: &str = "fleet";
pub const REGION: &str = "us-east-1";
pub const PROFILE: &str = "chaoshub-test";
/// The pinned package, as in scripts/install-test-deps.sh.
pub const MOTO_PACKAGE: &str = "moto[server]==5.2.5";

/// A shared config and credentials file with one profile of dummy keys: moto accepts any.
pub struct AwsProfile {
    pub dir: tempfile::TempDir,
}

impl AwsProfile {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config"),
            format!("[profile {PROFILE}]\nregion = {REGION}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            format!(
                "[{PROFILE}]\naws_access_key_id = AKIDCHAOSHUBTEST\naws_secret_access_key = chaoshub-test-secret\n"
            ),
        )
        .unwrap();
        Self { dir }
    }

    /// Settings that make the SDK read this profile and nothing of the machine's.
    pub fn settings(&self) -> Value {
        json!({
            "region": REGION,
            "profile": PROFILE,
            "config_file": self.dir.path().join("config").to_str().unwrap(),
            "credentials_file": self.dir.path().join("credentials").to_str().unwrap(),
        })
    }
}

/// An environment for `endpoint` with the profile's settings merged with `extra`.
pub fn env(endpoint: &str, profile: &AwsProfile, extra: Value) -> Environment {
    let mut settings = profile.settings().as_object().cloned().unwrap();
    if let Value::Object(extra) = extra {
        settings.extend(extra);
    }
    Environment {
        name: ENV_NAME.into(),
        spec: EnvironmentSpec {
            adapter: "ssm".into(),
            endpoint: Some(endpoint.to_string()),
            description: None,
            labels: Default::default(),
            settings,
        },
    }
}

/// A fault request from a manifest in YAML, as the hub would build it.
pub fn fault(yaml: &str, injection_id: &str) -> FaultRequest {
    let manifest = chaoshub_schema::parse_one(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let actions = manifest.fault().unwrap().actions();
    FaultRequest {
        experiment_uid: injection_id
            .rsplit_once('-')
            .map_or(injection_id, |(uid, _)| uid)
            .to_string(),
        injection_id: injection_id.to_string(),
        name: manifest.metadata.name.clone().unwrap_or_default(),
        namespace: "default".into(),
        manifest: Arc::new(manifest),
        actions,
        deadline: None,
    }
}

pub fn injection(fault: &FaultRequest, target: &Target, details: Value) -> Injection {
    Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: fault.kind().to_string(),
        actions: fault.actions.clone(),
        target: target.clone(),
        details,
    }
}

pub fn instance_target(id: &str) -> Target {
    Target {
        environment: ENV_NAME.into(),
        adapter: "ssm".into(),
        kind: "instance".into(),
        id: id.into(),
        name: id.into(),
        namespace: None,
        labels: Default::default(),
        annotations: Default::default(),
    }
}

/// A StressChaos manifest with the given stressors block (YAML flow mapping).
pub fn stress_chaos(stressors: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {{name: burn}}\nspec:\n  mode: all\n  selector:\n    labelSelectors: {{team: payments}}\n  stressors: {stressors}\n  duration: {duration}\n"
    )
}

/// A NetworkChaos manifest with extra spec lines (indented by two spaces).
pub fn network_chaos(action: &str, body: &str, duration: &str) -> String {
    network_chaos_annotated(action, body, duration, "")
}

pub fn network_chaos_annotated(
    action: &str,
    body: &str,
    duration: &str,
    annotations: &str,
) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: net-{action}{annotations}}}\nspec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{team: payments}}\n{body}  duration: {duration}\n"
    )
}

/// A PhysicalMachineChaos manifest: `action` with its block (YAML flow mapping).
pub fn physical_machine_chaos(action: &str, block: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: pm-{}}}\nspec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{team: payments}}\n  {action}: {block}\n  duration: {duration}\n",
        action.replace('_', "-")
    )
}

/// A free TCP port on loopback (the listener is dropped before moto binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto_command() -> Result<PathBuf, String> {
    let hint = format!(
        "these tests run a real local AWS endpoint: install the PyPI package {MOTO_PACKAGE} \
         (scripts/install-test-deps.sh does), which provides moto_server, or point MOTO_SERVER \
         at it"
    );
    if let Some(bin) = std::env::var_os("MOTO_SERVER") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "MOTO_SERVER={} is not a file; {hint}",
                bin.display()
            ))
        };
    }
    let found = Command::new("sh")
        .args(["-c", "command -v moto_server"])
        .output()
        .map_err(|e| format!("cannot look for moto_server ({e}); {hint}"))?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    if !found.status.success() || path.is_empty() {
        return Err(format!("moto_server is not on PATH; {hint}"));
    }
    Ok(PathBuf::from(path))
}

/// A real moto server on loopback, one per test (moto keeps all state in memory).
pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = moto_command().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("moto.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        moto.wait_ready();
        moto
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited with {status} before answering: {}",
                    std::fs::read_to_string(self._dir.path().join("moto.err")).unwrap_or_default()
                );
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                if s.write_all(b"GET /moto-api/data.json HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    .is_ok()
                {
                    let mut buf = [0u8; 12];
                    if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1") {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within 60 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An EC2 Query API call. moto routes by the credential scope of the Authorization header
    /// and does not check signatures, so the tests' own setup calls need no signer.
    pub async fn ec2(&self, params: &[(&str, &str)]) -> String {
        let mut all = vec![("Version", "2016-11-15")];
        all.extend_from_slice(params);
        let body = all
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        chaoshub_adapters::install_crypto_provider();
        let response = reqwest::Client::new()
            .post(self.url())
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=AKIDCHAOSHUBTEST/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "EC2 {params:?} answered {status}: {text}"
        );
        text
    }

    /// Starts one instance with the given tags; returns its id.
    pub async fn run_instance(&self, tags: &[(&str, &str)]) -> String {
        let mut params: Vec<(String, String)> = vec![
            ("Action".into(), "RunInstances".into()),
            ("ImageId".into(), "ami-12345678".into()),
            ("MinCount".into(), "1".into()),
            ("MaxCount".into(), "1".into()),
            ("InstanceType".into(), "t3.micro".into()),
        ];
        if !tags.is_empty() {
            params.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
            for (i, (k, v)) in tags.iter().enumerate() {
                params.push((
                    format!("TagSpecification.1.Tag.{}.Key", i + 1),
                    k.to_string(),
                ));
                params.push((
                    format!("TagSpecification.1.Tag.{}.Value", i + 1),
                    v.to_string(),
                ));
            }
        }
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let xml = self.ec2(&refs).await;
        let start = xml
            .find("<instanceId>")
            .expect("RunInstances answered no instance")
            + 12;
        let end = xml[start..].find('<').unwrap() + start;
        xml[start..end].to_string()
    }

    /// An SSM client of the tests' own against moto (to read back what moto recorded).
    pub async fn ssm_client(&self) -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new(REGION))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "AKIDCHAOSHUBTEST",
                "chaoshub-test-secret",
                None,
                None,
                "tests",
            ))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build();
        aws_sdk_ssm::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "moto_server log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a file that may not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
