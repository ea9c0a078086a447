//! What the Kubernetes tests share: real API servers (etcd + kube-apiserver v1.26.1 through
//! `kube-testserver`, one per test binary and kind, started on first use), Chaos Mesh's CRDs
//! from the shared reference, namespaces that are removed when the test ends (even when it
//! fails), and namespace-limited credentials (a ServiceAccount token from the TokenRequest API
//! with a Role bound in one namespace).
//!
//! A server process outlives nothing: it is started under a shell that stops it (`SIGTERM` to
//! the foreground `kube-testserver`, which stops etcd and kube-apiserver and removes its
//! folder) when this test process's end closes the shell's standard input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chaoshub_adapters::{Environment, FaultRequest};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Manifest;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

/// The Chaos Mesh kinds the tests install (a few CRDs keep the server's memory low).
pub const CRDS: &[&str] = &["networkchaos", "podchaos", "stresschaos"];

/// One running control plane.
pub struct TestServer {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    // Closing it (at process exit) stops the server.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static WITH_CHAOS_MESH: OnceLock<Option<TestServer>> = OnceLock::new();
static WITHOUT_CHAOS_MESH: OnceLock<Option<TestServer>> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The shared server with Chaos Mesh's CRDs installed; `None` (after a SKIP line) when the
/// API server, etcd or the reference CRDs are missing outside CI.
pub fn server() -> Option<&'static TestServer> {
    let mut first = false;
    let server = WITH_CHAOS_MESH
        .get_or_init(|| {
            first = true;
            let crds = chaoshub_testkit::shared_dir("reference/chaos-mesh/crd")?;
            let server = start("cm")?;
            install_crds(&server.kubeconfig, &crds);
            Some(server)
        })
        .as_ref();
    say_skipped_again(first, server.is_none());
    server
}

/// A second server, without Chaos Mesh.
pub fn plain_server() -> Option<&'static TestServer> {
    let mut first = false;
    let server = WITHOUT_CHAOS_MESH
        .get_or_init(|| {
            first = true;
            start("plain")
        })
        .as_ref();
    say_skipped_again(first, server.is_none());
    server
}

/// The test that tried to start a server printed why it could not; every later test that
/// needs the same server says it skips too, instead of passing silently.
fn say_skipped_again(first: bool, missing: bool) {
    if missing && !first {
        chaoshub_testkit::skip(
            "the Kubernetes test server could not be started (an earlier SKIP line of this run says what is missing)",
        );
    }
}

fn start(tag: &str) -> Option<TestServer> {
    let script = chaoshub_testkit::kube_testserver()?;
    let apiserver = chaoshub_testkit::kube_apiserver()?;
    if which("etcd").is_none() && std::env::var_os("ETCD").is_none() {
        chaoshub_testkit::skip_or_fail_in_ci(
            "etcd not found on PATH (apt-get install etcd-server, as scripts/install-test-deps.sh does)",
        );
        return None;
    }
    let dir = std::env::temp_dir().join(format!("chaoshub-k8s-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shell = format!(
        "{script} start --dir {dir} >{dir}.out 2>{dir}.err & pid=$!; read _; kill -TERM $pid; wait $pid; rm -f {dir}.out {dir}.err",
        script = sh_quote(&script),
        dir = sh_quote(&dir),
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&shell)
        .env("KUBE_APISERVER", &apiserver)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run sh");
    let stdin = child.stdin.take().unwrap();
    let ready = dir.join("ready");
    let started = Instant::now();
    while !ready.exists() {
        if started.elapsed() > Duration::from_secs(90) {
            let err = std::fs::read_to_string(format!("{}.err", dir.display())).unwrap_or_default();
            panic!("kube-testserver did not become ready in 90 s: {err}");
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(format!("{}.err", dir.display())).unwrap_or_default();
            panic!("kube-testserver exited ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "kube-testserver ({tag}) ready in {:.1} s at {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Some(TestServer {
        kubeconfig: dir.join("kubeconfig"),
        dir,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Runs `f` on a runtime of its own (for work done outside a test's runtime: setup, `Drop`).
fn block_on<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

pub async fn admin_client(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn install_crds(kubeconfig: &Path, dir: &Path) {
    let kubeconfig = kubeconfig.to_path_buf();
    let texts: Vec<String> = CRDS
        .iter()
        .map(|name| {
            let path = dir.join(format!("chaos-mesh.org_{name}.yaml"));
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        })
        .collect();
    block_on(async move {
        let client = admin_client(&kubeconfig).await;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        for text in &texts {
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(text).expect("a CRD of the shared reference");
            let name = crd.metadata.name.clone().unwrap();
            api.patch(
                &name,
                &PatchParams::apply("chaoshub-tests"),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        }
        // Established, and served by discovery.
        let started = Instant::now();
        loop {
            let mut ready = 0;
            for crd in api.list(&Default::default()).await.unwrap().items {
                let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                ready += usize::from(established);
            }
            if ready == CRDS.len() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "CRDs not established"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// A namespace of one test, deleted with its pods when dropped (namespaces stay Terminating
/// without a controller-manager, so it is finalized by hand).
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub async fn create(server: &TestServer, role: &str) -> Self {
        let name = format!(
            "k8s-{role}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        Self::create_named(server, &name).await
    }

    /// A namespace of a given name (the same name in two clusters).
    pub async fn create_named(server: &TestServer, name: &str) -> Self {
        let name = name.to_string();
        let client = admin_client(&server.kubeconfig).await;
        let api: Api<Namespace> = Api::all(client);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
        Self {
            name,
            kubeconfig: server.kubeconfig.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        block_on(async move {
            let client = admin_client(&kubeconfig).await;
            // Chaos Mesh objects a failed test left: their finalizer is dropped first.
            for kind in CRDS {
                let resource = kube::discovery::ApiResource {
                    group: "chaos-mesh.org".into(),
                    version: "v1alpha1".into(),
                    api_version: "chaos-mesh.org/v1alpha1".into(),
                    kind: String::new(),
                    plural: kind.to_string(),
                };
                let api: Api<kube::api::DynamicObject> =
                    Api::namespaced_with(client.clone(), &name, &resource);
                if let Ok(list) = api.list(&Default::default()).await {
                    for object in list.items {
                        let object_name = object.metadata.name.clone().unwrap_or_default();
                        let _ = api
                            .patch(
                                &object_name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                            )
                            .await;
                        let _ = api.delete(&object_name, &DeleteParams::default()).await;
                    }
                }
            }
            let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
            let _ = pods
                .delete_collection(
                    &DeleteParams::default().grace_period(0),
                    &Default::default(),
                )
                .await;
            let namespaces: Api<Namespace> = Api::all(client.clone());
            let _ = namespaces.delete(&name, &DeleteParams::default()).await;
            let _ = namespaces
                .replace_subresource(
                    "finalize",
                    &name,
                    &PostParams::default(),
                    &json!({
                        "apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name}, "spec": {"finalizers": []}
                    }),
                )
                .await;
        });
    }
}

/// Creates a pod (it stays Pending: no scheduler, no kubelet). A `node` makes it look
/// scheduled, so deleting it is graceful (the API server keeps it, Terminating, for the grace
/// period a kubelet would use).
pub async fn create_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    labels: Value,
    node: Option<&str>,
) -> Pod {
    let mut spec = json!({"containers": [{"name": "app", "image": "registry.invalid/app:1"}]});
    if let Some(node) = node {
        spec["nodeName"] = node.into();
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

/// An environment of the `kubernetes` adapter.
pub fn environment(name: &str, kubeconfig: &Path, settings: Value) -> Environment {
    let mut settings = settings.as_object().cloned().unwrap_or_default();
    settings.insert("kubeconfig".into(), kubeconfig.display().to_string().into());
    Environment {
        name: name.into(),
        spec: EnvironmentSpec {
            adapter: "kubernetes".into(),
            endpoint: None,
            description: None,
            labels: Default::default(),
            settings,
        },
    }
}

/// A fault request as the engine builds it.
pub fn fault(manifest: Manifest, namespace: &str, uid: &str) -> FaultRequest {
    let actions = manifest.fault().map(|f| f.actions()).unwrap_or_default();
    FaultRequest {
        experiment_uid: uid.into(),
        injection_id: format!("{uid}-0"),
        name: manifest.metadata.name.clone().unwrap_or_default(),
        namespace: namespace.into(),
        manifest: std::sync::Arc::new(manifest),
        actions,
        deadline: None,
    }
}

/// A manifest parsed as the hub parses submissions, placed in `namespace`.
pub fn manifest(text: &str, namespace: &str) -> Manifest {
    let mut manifest = chaoshub_schema::parse_one(text).expect("a valid manifest");
    manifest.metadata.namespace = Some(namespace.into());
    manifest
}

/// A kubeconfig whose only credential is a ServiceAccount token bound by a Role to `verbs` on
/// `resources` (group, resource) in `namespace` alone.
pub async fn limited_kubeconfig(server: &TestServer, namespace: &str, rules: Value) -> PathBuf {
    let client = admin_client(&server.kubeconfig).await;
    let sa_name = "chaoshub-limited";
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": sa_name}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let dynamic = |kind: &str, plural: &str| kube::discovery::ApiResource {
        group: "rbac.authorization.k8s.io".into(),
        version: "v1".into(),
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let roles: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &dynamic("Role", "roles"));
    roles
        .patch(
            "chaoshub-limited",
            &PatchParams::apply("chaoshub-tests"),
            &Patch::Apply(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "chaoshub-limited"}, "rules": rules
            })),
        )
        .await
        .unwrap();
    let bindings: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &dynamic("RoleBinding", "rolebindings"),
    );
    bindings
        .patch(
            "chaoshub-limited",
            &PatchParams::apply("chaoshub-tests"),
            &Patch::Apply(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "chaoshub-limited"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "chaoshub-limited"},
                "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]
            })),
        )
        .await
        .unwrap();
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    });
    let answer: Value = sas
        .create_subresource("token", sa_name, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    let env = std::fs::read_to_string(server.dir.join("info.env")).unwrap();
    let field = |key: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap()
            .to_string()
    };
    let path = server.dir.join(format!("limited-{namespace}.kubeconfig"));
    let mut file = std::fs::File::create(&path).unwrap();
    write!(
        file,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: limited\n  context:\n    cluster: c\n    user: u\n    namespace: {namespace}\ncurrent-context: limited\n",
        field("KUBE_SERVER"),
        field("KUBE_CA"),
    )
    .unwrap();
    path
}
