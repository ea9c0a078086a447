//! An emulation of SSM Run Command and of the SSM Agent on a few instances, for tests: the
//! commands the adapter sends run for real.
//!
//! What it does as SSM and its agent do:
//! - SendCommand checks the document and its parameters (undeclared or missing ones are
//!   `InvalidParameters`), refuses an unknown instance or one whose agent is offline with
//!   `InvalidInstanceId`, and answers at once with the command `Pending`;
//! - the "agent" picks the command up after a short delay (while it is online; an offline
//!   agent leaves it `Pending` until SendCommand's `TimeoutSeconds`, then `TimedOut` /
//!   `DeliveryTimedOut`), marks it `InProgress` and runs the document's `aws:runShellScript`
//!   lines with `/bin/sh` (as the agent does) as root, in its own process group, inside the
//!   instance's network namespace, with the step's `timeoutSeconds` (then `TimedOut` /
//!   `ExecutionTimedOut`);
//! - the exit status decides `Success` (0) or `Failed` (the status is the `ResponseCode`);
//!   stdout and stderr are the invocation's output (cut to 24,000 characters, as
//!   GetCommandInvocation does);
//! - CancelCommand kills the running script's process group (`Cancelling`, then `Cancelled`;
//!   at once, or after [`EmulatedSsm::set_cancel_delay`], as SSM's cancel is asynchronous);
//!   what the script started in a session of its own (a revert timer) lives on, as on an
//!   instance;
//! - documents are created, read, updated (a new version; `DuplicateDocumentContent` when the
//!   content is the latest's) and given a new default version; `AWS-RunShellScript` is built in;
//! - ListCommands (newest first, paged), ListCommandInvocations, GetCommandInvocation,
//!   DescribeInstanceInformation (`Online` or `ConnectionLost`) and EC2 DescribeInstances.
//!
//! What it does not: signatures, IAM, rate limits, documents with several steps or other
//! actions than `aws:runShellScript` (the AWS-managed AWSFIS-Run-* documents among them:
//! `InvalidDocument`), targets by tag in SendCommand, S3 output, reboots. Every instance shares
//! this machine's file system and kernel apart from its network namespace: the scripts' state
//! goes under [`EmulatedSsm::state_dir`], which the test passes as the environment's
//! `state_dir` setting.
//!
//! The endpoint runs on a thread and runtime of its own, so blocking and async tests use it
//! alike, and it outlives any process it serves (a hub killed with SIGKILL and restarted finds
//! the same commands). On drop it kills every script still running and the background
//! processes the scripts recorded (revert timers, stress workers) and removes its directory;
//! the kernel state of a namespace goes with the namespace, which the test removes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::wire::{self, client_error, ok};

/// GetCommandInvocation gives at most this much of each output.
const OUTPUT_LIMIT: usize = 24_000;
/// A step without `timeoutSeconds` may run an hour, as with aws:runShellScript.
const DEFAULT_EXECUTION_TIMEOUT_SECS: u64 = 3600;
/// SendCommand's default `TimeoutSeconds` (how long a command waits for its instance).
const DEFAULT_DELIVERY_TIMEOUT_SECS: u64 = 3600;
/// What the scripts find in their environment: the agent runs them with a plain root PATH.
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The built-in document the adapter's read-backs use.
fn aws_run_shell_script() -> Value {
    json!({
        "schemaVersion": "2.2",
        "description": "Run a shell script or specify the commands to run.",
        "parameters": {
            "commands": {"type": "StringList", "description": "the commands to run"},
            "workingDirectory": {"type": "String", "default": ""},
            "executionTimeout": {"type": "String", "default": "3600"}
        },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "runShellScript",
            "inputs": {"runCommand": "{{ commands }}", "timeoutSeconds": "{{ executionTimeout }}"}
        }]
    })
}

/// A command's invocation on one instance, as the test reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub command_id: String,
    pub instance_id: String,
    pub document: String,
    pub comment: String,
    pub status: String,
    pub status_details: String,
    pub response_code: i32,
    pub stdout: String,
    pub stderr: String,
}

struct Instance {
    id: String,
    netns: String,
    private_ip: String,
    tags: Vec<(String, String)>,
    online: bool,
}

struct Document {
    /// Contents by version (version n is `versions[n - 1]`).
    versions: Vec<String>,
    default_version: usize,
}

struct Invocation {
    instance: String,
    status: &'static str,
    details: &'static str,
    code: i32,
    stdout: String,
    stderr: String,
    /// The running script's process group.
    pgid: Option<u32>,
    cancel_requested: bool,
}

struct Command {
    id: String,
    document: String,
    comment: String,
    parameters: Value,
    requested: f64,
    invocations: Vec<Invocation>,
}

/// What one invocation runs.
struct Script {
    lines: String,
    timeout: Duration,
    delivery_timeout: Duration,
}

struct State {
    instances: Vec<Instance>,
    documents: BTreeMap<String, Document>,
    commands: Vec<Command>,
    pickup_delay: Duration,
    /// How long a cancel takes to reach the agent (the command is `Cancelling` meanwhile).
    cancel_delay: Duration,
    next_id: u64,
}

impl State {
    fn invocation(&mut self, command: &str, instance: &str) -> Option<&mut Invocation> {
        self.commands
            .iter_mut()
            .find(|c| c.id == command)?
            .invocations
            .iter_mut()
            .find(|i| i.instance == instance)
    }

    fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id)
    }
}

struct Shared {
    state: Mutex<State>,
    root: PathBuf,
}

/// See the module doc. Start with [`EmulatedSsm::start`], add instances, and point an
/// environment's `endpoint` at [`EmulatedSsm::url`].
pub struct EmulatedSsm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmulatedSsm {
    /// Starts the endpoint on a free loopback port, with a directory of its own under the
    /// system's temporary directory.
    pub fn start() -> EmulatedSsm {
        let root = std::env::temp_dir().join(format!(
            "chaoshub-ssm-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(root.join("state"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                instances: Vec::new(),
                documents: BTreeMap::new(),
                commands: Vec::new(),
                pickup_delay: Duration::from_millis(50),
                cancel_delay: Duration::ZERO,
                next_id: 0,
            }),
            root,
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("emulated-ssm".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("cannot build the emulated SSM's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("cannot bind the emulated SSM endpoint");
                    addr_tx.send(listener.local_addr().unwrap()).unwrap();
                    let app = Router::new().route(
                        "/",
                        post(move |headers: HeaderMap, body: Bytes| {
                            let shared = served.clone();
                            async move { handle(&shared, &headers, &body) }
                        }),
                    );
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop.await;
                        })
                        .await;
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("cannot start the emulated SSM's thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the emulated SSM endpoint did not start");
        EmulatedSsm {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`: the environment's `endpoint` (SSM and EC2 alike).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the instances' scripts keep their state: the environment's `state_dir` setting.
    pub fn state_dir(&self) -> PathBuf {
        self.shared.root.join("state")
    }

    /// A running EC2 instance with an online SSM agent whose commands run inside the network
    /// namespace `netns` (which must exist: nothing runs in the test machine's own network).
    pub fn add_instance(&self, id: &str, netns: &str, private_ip: &str, tags: &[(&str, &str)]) {
        let path = Path::new("/run/netns").join(netns);
        assert!(
            path.exists(),
            "the emulated SSM runs commands only inside a network namespace the test created; \
             {} does not exist",
            path.display()
        );
        self.lock().instances.push(Instance {
            id: id.to_string(),
            netns: netns.to_string(),
            private_ip: private_ip.to_string(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            online: true,
        });
    }

    /// The instance's SSM agent goes offline (`ConnectionLost`; SendCommand answers
    /// `InvalidInstanceId`, commands already sent wait) or comes back.
    pub fn set_online(&self, id: &str, online: bool) {
        let mut s = self.lock();
        let inst = s
            .instances
            .iter_mut()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("no instance {id}"));
        inst.online = online;
    }

    /// How long the agent takes to pick a command up (50 ms unless set).
    pub fn set_pickup_delay(&self, delay: Duration) {
        self.lock().pickup_delay = delay;
    }

    /// How long a CancelCommand takes to reach the agent and kill a running script (none
    /// unless set): SSM's cancel is asynchronous, the invocation is `Cancelling` meanwhile.
    pub fn set_cancel_delay(&self, delay: Duration) {
        self.lock().cancel_delay = delay;
    }

    /// Every invocation so far, in the order the commands were sent.
    pub fn commands(&self) -> Vec<CommandRecord> {
        let s = self.lock();
        s.commands
            .iter()
            .flat_map(|c| {
                c.invocations.iter().map(|i| CommandRecord {
                    command_id: c.id.clone(),
                    instance_id: i.instance.clone(),
                    document: c.document.clone(),
                    comment: c.comment.clone(),
                    status: i.status.to_string(),
                    status_details: i.details.to_string(),
                    response_code: i.code,
                    stdout: i.stdout.clone(),
                    stderr: i.stderr.clone(),
                })
            })
            .collect()
    }

    /// How many invocations are not finished (Pending, InProgress, Cancelling).
    pub fn unfinished(&self) -> usize {
        self.commands()
            .iter()
            .filter(|c| !is_terminal(&c.status))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for EmulatedSsm {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        let running: Vec<u32> = {
            let s = self.lock();
            s.commands
                .iter()
                .flat_map(|c| c.invocations.iter().filter_map(|i| i.pgid))
                .collect()
        };
        for pgid in running {
            kill_group(pgid, "KILL");
        }
        // What the scripts started to outlive them (revert timers, stress workers) records its
        // process group in the state directory, as scripts.rs writes it.
        if let Ok(entries) = std::fs::read_dir(self.state_dir()) {
            for entry in entries.flatten() {
                for file in ["revert.pid", "pids"] {
                    let text = std::fs::read_to_string(entry.path().join(file)).unwrap_or_default();
                    for pgid in text.split_whitespace().filter_map(|p| p.parse().ok()) {
                        kill_group(pgid, "TERM");
                    }
                }
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.shared.root);
    }
}

fn kill_group(pgid: u32, signal: &str) {
    if pgid <= 1 {
        return;
    }
    let _ = std::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "Success" | "Failed" | "TimedOut" | "Cancelled")
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn cut(text: &str) -> String {
    text.chars().take(OUTPUT_LIMIT).collect()
}

fn handle(shared: &Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Response {
    let op = match wire::ssm_operation(headers) {
        None => {
            let s = shared.state.lock().unwrap();
            return wire::ec2_describe_instances(
                body,
                s.instances.iter().map(|i| wire::Ec2Instance {
                    id: &i.id,
                    private_ip: &i.private_ip,
                    tags: &i.tags,
                }),
            );
        }
        Some(Err(answer)) => return answer,
        Some(Ok(op)) => op,
    };
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = shared.state.lock().unwrap();
    match op.as_str() {
        "GetDocument" => get_document(&s, &input),
        "CreateDocument" => {
            let name = input["Name"].as_str().unwrap_or_default().to_string();
            let content = input["Content"].as_str().unwrap_or_default().to_string();
            if s.documents.contains_key(&name) || name == "AWS-RunShellScript" {
                return client_error(
                    "DocumentAlreadyExists",
                    "The specified document already exists.",
                );
            }
            if let Err(e) = serde_json::from_str::<Value>(&content) {
                return client_error("InvalidDocumentContent", &e.to_string());
            }
            s.documents.insert(
                name.clone(),
                Document {
                    versions: vec![content],
                    default_version: 1,
                },
            );
            ok(json!({"DocumentDescription": {
                "Name": name, "DocumentVersion": "1", "DefaultVersion": "1",
                "LatestVersion": "1", "Status": "Active", "DocumentType": "Command"
            }}))
        }
        "UpdateDocument" => {
            let name = input["Name"].as_str().unwrap_or_default();
            let content = input["Content"].as_str().unwrap_or_default().to_string();
            let Some(doc) = s.documents.get_mut(name) else {
                return client_error("InvalidDocument", "The specified document does not exist.");
            };
            if doc.versions.last() == Some(&content) {
                return client_error(
                    "DuplicateDocumentContent",
                    "The content of the association document matches another document.",
                );
            }
            doc.versions.push(content);
            let version = doc.versions.len().to_string();
            ok(json!({"DocumentDescription": {
                "Name": name, "DocumentVersion": version, "LatestVersion": version,
                "DefaultVersion": doc.default_version.to_string(), "Status": "Active"
            }}))
        }
        "UpdateDocumentDefaultVersion" => {
            let name = input["Name"].as_str().unwrap_or_default();
            let version = input["DocumentVersion"].as_str().unwrap_or_default();
            let Some(doc) = s.documents.get_mut(name) else {
                return client_error("InvalidDocument", "The specified document does not exist.");
            };
            match version.parse::<usize>() {
                Ok(v) if (1..=doc.versions.len()).contains(&v) => {
                    doc.default_version = v;
                    ok(json!({"Description": {"Name": name, "DefaultVersion": version}}))
                }
                _ => client_error("InvalidDocumentVersion", version),
            }
        }
        "SendCommand" => send_command(shared, &mut s, &input),
        "GetCommandInvocation" => {
            let id = input["CommandId"].as_str().unwrap_or_default();
            let instance = input["InstanceId"].as_str().unwrap_or_default();
            let Some(c) = s.commands.iter().find(|c| c.id == id) else {
                return client_error("InvalidCommandId", "Invalid command id.");
            };
            let Some(i) = c.invocations.iter().find(|i| i.instance == instance) else {
                return client_error("InvocationDoesNotExist", "no such invocation");
            };
            ok(json!({
                "CommandId": id, "InstanceId": instance, "Comment": c.comment,
                "DocumentName": c.document, "PluginName": "aws:runShellScript",
                "Status": i.status, "StatusDetails": i.details, "ResponseCode": i.code,
                "StandardOutputContent": cut(&i.stdout), "StandardErrorContent": cut(&i.stderr)
            }))
        }
        "CancelCommand" => {
            let id = input["CommandId"].as_str().unwrap_or_default().to_string();
            let only: Vec<String> = strings(&input["InstanceIds"]);
            let delay = s.cancel_delay;
            let Some(c) = s.commands.iter_mut().find(|c| c.id == id) else {
                return client_error("InvalidCommandId", "Invalid command id.");
            };
            for inv in c
                .invocations
                .iter_mut()
                .filter(|i| only.is_empty() || only.contains(&i.instance))
            {
                if is_terminal(inv.status) {
                    continue;
                }
                inv.cancel_requested = true;
                if inv.status == "InProgress" {
                    inv.status = "Cancelling";
                    inv.details = "Cancelling";
                    if let Some(pgid) = inv.pgid {
                        if delay.is_zero() {
                            kill_group(pgid, "KILL");
                        } else {
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                kill_group(pgid, "KILL");
                            });
                        }
                    }
                }
            }
            ok(json!({}))
        }
        "ListCommands" => {
            let instance = input["InstanceId"].as_str().unwrap_or_default();
            let command = input["CommandId"].as_str().unwrap_or_default();
            let mut list: Vec<&Command> = s
                .commands
                .iter()
                .filter(|c| command.is_empty() || c.id == command)
                .filter(|c| {
                    instance.is_empty() || c.invocations.iter().any(|i| i.instance == instance)
                })
                .collect();
            list.reverse();
            page(
                &input,
                "Commands",
                list.into_iter().map(command_json).collect(),
            )
        }
        "ListCommandInvocations" => {
            let instance = input["InstanceId"].as_str().unwrap_or_default();
            let command = input["CommandId"].as_str().unwrap_or_default();
            let details = input["Details"].as_bool().unwrap_or(false);
            let mut list = Vec::new();
            for c in s.commands.iter().rev() {
                if !command.is_empty() && c.id != command {
                    continue;
                }
                for i in &c.invocations {
                    if !instance.is_empty() && i.instance != instance {
                        continue;
                    }
                    let mut v = json!({
                        "CommandId": c.id, "InstanceId": i.instance, "Comment": c.comment,
                        "DocumentName": c.document, "RequestedDateTime": c.requested,
                        "Status": i.status, "StatusDetails": i.details
                    });
                    if details {
                        v["CommandPlugins"] = json!([{
                            "Name": "aws:runShellScript", "Status": i.status,
                            "StatusDetails": i.details, "ResponseCode": i.code,
                            "Output": cut(&format!("{}{}", i.stdout, i.stderr))
                        }]);
                    }
                    list.push(v);
                }
            }
            page(&input, "CommandInvocations", list)
        }
        "DescribeInstanceInformation" => {
            let list = s
                .instances
                .iter()
                .map(|i| {
                    json!({
                        "InstanceId": i.id,
                        "PingStatus": if i.online { "Online" } else { "ConnectionLost" },
                        "LastPingDateTime": now_epoch(), "AgentVersion": "0.0.0-emulated",
                        "PlatformType": "Linux", "PlatformName": "emulated",
                        "ResourceType": "EC2Instance", "IPAddress": i.private_ip
                    })
                })
                .collect();
            page(&input, "InstanceInformationList", list)
        }
        other => client_error(
            "UnknownOperationException",
            &format!("the emulated SSM does not implement {other}"),
        ),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One page of `items` after `NextToken` (an index), `MaxResults` long (50 unless asked).
fn page(input: &Value, key: &str, items: Vec<Value>) -> Response {
    let start: usize = input["NextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = input["MaxResults"].as_u64().unwrap_or(50).clamp(1, 50) as usize;
    let end = (start + size).min(items.len());
    let mut out = serde_json::Map::new();
    out.insert(
        key.to_string(),
        Value::Array(items.get(start..end).unwrap_or_default().to_vec()),
    );
    if end < items.len() {
        out.insert("NextToken".into(), json!(end.to_string()));
    }
    ok(Value::Object(out))
}

fn command_json(c: &Command) -> Value {
    let statuses: Vec<&str> = c.invocations.iter().map(|i| i.status).collect();
    let status = if statuses.iter().all(|s| *s == "Success") {
        "Success"
    } else if statuses.iter().all(|s| *s == "Pending") {
        "Pending"
    } else if statuses.iter().any(|s| !is_terminal(s)) {
        "InProgress"
    } else {
        statuses
            .iter()
            .copied()
            .find(|s| *s != "Success")
            .unwrap_or("Failed")
    };
    json!({
        "CommandId": c.id, "DocumentName": c.document, "Comment": c.comment,
        "InstanceIds": c.invocations.iter().map(|i| i.instance.clone()).collect::<Vec<_>>(),
        "Parameters": c.parameters, "RequestedDateTime": c.requested, "Status": status,
        "StatusDetails": status, "TargetCount": c.invocations.len(),
        "CompletedCount": statuses.iter().filter(|s| is_terminal(s)).count()
    })
}

fn get_document(s: &State, input: &Value) -> Response {
    let name = input["Name"].as_str().unwrap_or_default();
    let (content, version) = if name == "AWS-RunShellScript" {
        (aws_run_shell_script().to_string(), 1)
    } else {
        match s.documents.get(name) {
            Some(d) => (d.versions[d.default_version - 1].clone(), d.default_version),
            None => {
                return client_error("InvalidDocument", "The specified document does not exist.")
            }
        }
    };
    ok(json!({
        "Name": name, "Content": content, "DocumentVersion": version.to_string(),
        "DocumentType": "Command", "DocumentFormat": "JSON", "Status": "Active"
    }))
}

/// The document's single `aws:runShellScript` step with the parameters put in: the script and
/// its timeout; `Err` the error code and message SSM would answer.
fn resolve(document: &Value, given: &Value) -> Result<(String, Duration), (&'static str, String)> {
    let declared = document["parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let given = given.as_object().cloned().unwrap_or_default();
    if let Some(unknown) = given.keys().find(|k| !declared.contains_key(*k)) {
        return Err((
            "InvalidParameters",
            format!("document has no parameter {unknown:?}"),
        ));
    }
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, spec) in &declared {
        let value = match given.get(name) {
            Some(v) => strings(v),
            None => match &spec["default"] {
                Value::String(d) => vec![d.clone()],
                Value::Array(_) => strings(&spec["default"]),
                _ => {
                    return Err((
                        "InvalidParameters",
                        format!("parameter {name:?} is required"),
                    ))
                }
            },
        };
        values.insert(name.clone(), value);
    }
    let steps = document["mainSteps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let [step] = steps.as_slice() else {
        return Err((
            "InvalidDocument",
            "the emulated SSM runs documents of exactly one aws:runShellScript step".to_string(),
        ));
    };
    if step["action"] != "aws:runShellScript" {
        return Err((
            "InvalidDocument",
            format!("the emulated SSM does not run {} steps", step["action"]),
        ));
    }
    let fill = |text: &str| -> Vec<String> {
        let trimmed = text.trim();
        if let Some(name) = trimmed
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .map(str::trim)
        {
            if let Some(v) = values.get(name) {
                return v.clone();
            }
        }
        let mut out = text.to_string();
        for (name, v) in &values {
            out = out.replace(&format!("{{{{ {name} }}}}"), &v.join("\n"));
        }
        vec![out]
    };
    let lines: Vec<String> = match &step["inputs"]["runCommand"] {
        Value::String(t) => fill(t),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(&fill)
            .collect(),
        _ => Vec::new(),
    };
    let timeout = match &step["inputs"]["timeoutSeconds"] {
        Value::String(t) => fill(t).join("").trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .unwrap_or(DEFAULT_EXECUTION_TIMEOUT_SECS);
    Ok((lines.join("\n") + "\n", Duration::from_secs(timeout)))
}

fn send_command(shared: &Arc<Shared>, s: &mut State, input: &Value) -> Response {
    let name = input["DocumentName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let content = if name == "AWS-RunShellScript" {
        aws_run_shell_script()
    } else {
        let Some(doc) = s.documents.get(&name) else {
            return client_error(
                "InvalidDocument",
                &format!("document {name:?} does not exist (the emulated SSM knows only the documents created on it and AWS-RunShellScript)"),
            );
        };
        serde_json::from_str(&doc.versions[doc.default_version - 1]).unwrap_or(Value::Null)
    };
    let (lines, timeout) = match resolve(&content, &input["Parameters"]) {
        Ok(r) => r,
        Err((code, message)) => return client_error(code, &message),
    };
    let instances = strings(&input["InstanceIds"]);
    if instances.is_empty() {
        return client_error(
            "InvalidParameters",
            "the emulated SSM needs InstanceIds (targets by tag are not emulated)",
        );
    }
    if let Some(bad) = instances
        .iter()
        .find(|id| s.instance(id).is_none_or(|i| !i.online))
    {
        return client_error(
            "InvalidInstanceId",
            &format!("Instances [[{bad}]] not in a valid state for account 123456789012"),
        );
    }
    s.next_id += 1;
    let id = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        s.next_id,
        std::process::id()
    );
    let comment = input["Comment"].as_str().unwrap_or_default().to_string();
    let delivery = input["TimeoutSeconds"]
        .as_u64()
        .unwrap_or(DEFAULT_DELIVERY_TIMEOUT_SECS);
    s.commands.push(Command {
        id: id.clone(),
        document: name.clone(),
        comment: comment.clone(),
        parameters: input["Parameters"].clone(),
        requested: now_epoch(),
        invocations: instances
            .iter()
            .map(|i| Invocation {
                instance: i.clone(),
                status: "Pending",
                details: "Pending",
                code: -1,
                stdout: String::new(),
                stderr: String::new(),
                pgid: None,
                cancel_requested: false,
            })
            .collect(),
    });
    for instance in &instances {
        let script = Script {
            lines: lines.clone(),
            timeout,
            delivery_timeout: Duration::from_secs(delivery),
        };
        tokio::spawn(run_invocation(
            shared.clone(),
            id.clone(),
            instance.clone(),
            script,
        ));
    }
    ok(json!({"Command": {
        "CommandId": id, "DocumentName": name, "Comment": comment,
        "InstanceIds": instances, "Status": "Pending", "RequestedDateTime": now_epoch()
    }}))
}

/// The agent's side of one invocation: pick it up, run it, record how it ended.
async fn run_invocation(shared: Arc<Shared>, command: String, instance: String, script: Script) {
    let finish =
        |status: &'static str, details: &'static str, code: i32, out: String, err: String| {
            let mut s = shared.state.lock().unwrap();
            if let Some(inv) = s.invocation(&command, &instance) {
                inv.status = status;
                inv.details = details;
                inv.code = code;
                inv.stdout = out;
                inv.stderr = err;
                inv.pgid = None;
            }
        };
    let sent = Instant::now();
    let netns = loop {
        let delay = shared.state.lock().unwrap().pickup_delay;
        tokio::time::sleep(delay).await;
        let mut s = shared.state.lock().unwrap();
        let (online, netns) = match s.instance(&instance) {
            Some(i) => (i.online, i.netns.clone()),
            None => (false, String::new()),
        };
        let Some(inv) = s.invocation(&command, &instance) else {
            return;
        };
        if inv.cancel_requested {
            drop(s);
            return finish("Cancelled", "Cancelled", -1, String::new(), String::new());
        }
        if online {
            inv.status = "InProgress";
            inv.details = "InProgress";
            break netns;
        }
        if sent.elapsed() >= script.delivery_timeout {
            drop(s);
            return finish(
                "TimedOut",
                "DeliveryTimedOut",
                -1,
                String::new(),
                String::new(),
            );
        }
    };
    // The agent writes the script to its orchestration directory and runs it from there.
    let dir = shared
        .root
        .join("orchestration")
        .join(&command)
        .join(&instance);
    let file = dir.join("_script.sh");
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &script.lines));
    if let Err(e) = written {
        return finish(
            "Failed",
            "Failed",
            1,
            String::new(),
            format!("cannot write the script: {e}"),
        );
    }
    let spawned = tokio::process::Command::new("ip")
        .args(["netns", "exec", &netns, "/bin/sh"])
        .arg(&file)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", SCRIPT_PATH)
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return finish(
                "Failed",
                "Failed",
                1,
                String::new(),
                format!("cannot start /bin/sh: {e}"),
            );
        }
    };
    let pgid = child.id();
    {
        let mut s = shared.state.lock().unwrap();
        if let Some(inv) = s.invocation(&command, &instance) {
            inv.pgid = pgid;
            // A cancel that came between InProgress and the start has not killed it yet.
            if inv.cancel_requested {
                if let Some(pgid) = pgid {
                    kill_group(pgid, "KILL");
                }
            }
        }
    }
    let output = child.wait_with_output();
    tokio::pin!(output);
    let mut timed_out = false;
    let output = match tokio::time::timeout(script.timeout, &mut output).await {
        Ok(out) => out,
        Err(_) => {
            timed_out = true;
            if let Some(pgid) = pgid {
                kill_group(pgid, "KILL");
            }
            output.await
        }
    };
    let (code, out, err) = match output {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (-1, String::new(), format!("waiting for the script: {e}")),
    };
    let cancelled = {
        let mut s = shared.state.lock().unwrap();
        s.invocation(&command, &instance)
            .is_some_and(|i| i.cancel_requested)
    };
    if cancelled {
        finish("Cancelled", "Cancelled", -1, out, err)
    } else if timed_out {
        finish("TimedOut", "ExecutionTimedOut", -1, out, err)
    } else if code == 0 {
        finish("Success", "Success", 0, out, err)
    } else {
        finish("Failed", "Failed", code, out, err)
    }
}
