//! A FAKE SSM endpoint of the tests' own — not AWS, not moto. moto executes nothing and always
//! answers `Success` (and 500 for CancelCommand and DescribeInstanceInformation), so the
//! status state machine (Pending → InProgress → Success / Failed / TimedOut, Delayed, cancel,
//! throttling) is played here from scripted sequences. It speaks the same JSON 1.1 protocol as
//! SSM (`POST /`, `X-Amz-Target: AmazonSSM.<Operation>`, errors as `{"__type", "message"}`),
//! so the adapter runs the real AWS SDK against it; it also answers EC2 DescribeInstances
//! (Query API, XML) for discovery. It checks no signature.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chaoshub_testkit::ssm::wire::{self, error, ok};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// One step of a scripted invocation: what GetCommandInvocation answers on one poll.
#[derive(Debug, Clone)]
pub struct Step {
    pub status: &'static str,
    pub details: &'static str,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn step(status: &'static str) -> Step {
    Step {
        status,
        details: status,
        code: if status == "Success" { 0 } else { -1 },
        stdout: String::new(),
        stderr: String::new(),
    }
}

pub fn failed(code: i32, stderr: &str) -> Step {
    Step {
        status: "Failed",
        details: "Failed",
        code,
        stdout: "chaoshub: checking\n".into(),
        stderr: stderr.into(),
    }
}

/// A command as the fake received it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub document: String,
    pub instance_ids: Vec<String>,
    pub parameters: Value,
    pub comment: String,
    pub polls: usize,
    pub cancelled: bool,
    steps: Vec<Step>,
}

#[derive(Default)]
struct State {
    /// Scripted sequences by comment suffix (`inject`, `recover`) or document name.
    scripts: HashMap<String, Vec<Step>>,
    commands: Vec<Sent>,
    /// Operation → how many more calls to answer with ThrottlingException.
    throttle: HashMap<String, usize>,
    calls: Vec<String>,
    documents: BTreeMap<String, String>,
    managed: Vec<(String, String)>,
    instances: Vec<(String, Vec<(String, String)>)>,
    /// Instances SendCommand refuses with InvalidInstanceId (gone, or their agent offline).
    invalid_instances: Vec<String>,
    next_id: usize,
}

pub struct FakeSsm {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeSsm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSsm {
    pub async fn start() -> FakeSsm {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(&state, &headers, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSsm { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The statuses GetCommandInvocation plays, poll after poll, for commands whose comment
    /// ends with `key` (`inject`, `recover`) or whose document is `key`. The last step repeats.
    pub fn script(&self, key: &str, steps: Vec<Step>) {
        self.state.lock().unwrap().scripts.insert(key.into(), steps);
    }

    /// The next `n` calls of `operation` answer 400 ThrottlingException.
    pub fn throttle(&self, operation: &str, n: usize) {
        self.state
            .lock()
            .unwrap()
            .throttle
            .insert(operation.into(), n);
    }

    /// SendCommand to `id` answers InvalidInstanceId from now on, as SSM does for an instance
    /// that is gone and for one whose SSM agent is offline alike.
    pub fn refuse_instance(&self, id: &str) {
        self.state
            .lock()
            .unwrap()
            .invalid_instances
            .push(id.to_string());
    }

    pub fn add_instance(&self, id: &str, tags: &[(&str, &str)], ping: Option<&str>) {
        let mut s = self.state.lock().unwrap();
        s.instances.push((
            id.into(),
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        if let Some(p) = ping {
            s.managed.push((id.into(), p.into()));
        }
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().commands.clone()
    }

    pub fn calls(&self, operation: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| *c == operation)
            .count()
    }
}

fn handle(state: &Mutex<State>, headers: &HeaderMap, body: &[u8]) -> Response {
    let op = match wire::ssm_operation(headers) {
        None => return ec2(state, body),
        Some(Err(answer)) => return answer,
        Some(Ok(op)) => op,
    };
    let op = op.as_str();
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.calls.push(op.to_string());
    if let Some(n) = s.throttle.get_mut(op) {
        if *n > 0 {
            *n -= 1;
            return error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
            );
        }
    }
    match op {
        "GetDocument" => {
            let name = input["Name"].as_str().unwrap_or_default();
            match s.documents.get(name) {
                Some(content) => ok(json!({
                    "Name": name, "Content": content, "DocumentVersion": "1",
                    "DocumentType": "Command", "DocumentFormat": "JSON", "Status": "Active"
                })),
                None => error(
                    StatusCode::BAD_REQUEST,
                    "InvalidDocument",
                    "The specified document does not exist.",
                ),
            }
        }
        "CreateDocument" => {
            let name = input["Name"].as_str().unwrap_or_default().to_string();
            let content = input["Content"].as_str().unwrap_or_default().to_string();
            s.documents.insert(name.clone(), content);
            ok(
                json!({"DocumentDescription": {"Name": name, "DocumentVersion": "1", "Status": "Creating"}}),
            )
        }
        "SendCommand" => {
            let refused = input["InstanceIds"].as_array().and_then(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .find(|id| s.invalid_instances.iter().any(|i| i == id))
                    .map(str::to_string)
            });
            if let Some(id) = refused {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInstanceId",
                    &format!("Instances [[{id}]] not in a valid state for account 123456789012"),
                );
            }
            s.next_id += 1;
            let id = format!("cmd-{:04}", s.next_id);
            let document = input["DocumentName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let comment = input["Comment"].as_str().unwrap_or_default().to_string();
            let suffix = comment.rsplit(' ').next().unwrap_or_default().to_string();
            let steps = s
                .scripts
                .get(&suffix)
                .or_else(|| s.scripts.get(&document))
                .cloned()
                .unwrap_or_else(|| vec![step("Success")]);
            let instance_ids: Vec<String> = input["InstanceIds"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            s.commands.push(Sent {
                id: id.clone(),
                document: document.clone(),
                instance_ids: instance_ids.clone(),
                parameters: input["Parameters"].clone(),
                comment: comment.clone(),
                polls: 0,
                cancelled: false,
                steps,
            });
            ok(json!({"Command": {
                "CommandId": id, "DocumentName": document, "Comment": comment,
                "InstanceIds": instance_ids, "Status": "Pending"
            }}))
        }
        "GetCommandInvocation" => {
            let id = input["CommandId"].as_str().unwrap_or_default();
            let instance = input["InstanceId"].as_str().unwrap_or_default();
            let Some(c) = s.commands.iter_mut().find(|c| c.id == id) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidCommandId",
                    "Invalid command id.",
                );
            };
            if !c.instance_ids.iter().any(|i| i == instance) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvocationDoesNotExist",
                    "no such invocation",
                );
            }
            c.polls += 1;
            let step = if c.cancelled {
                Step {
                    status: "Cancelled",
                    details: "Cancelled",
                    code: -1,
                    stdout: String::new(),
                    stderr: String::new(),
                }
            } else {
                c.steps[(c.polls - 1).min(c.steps.len() - 1)].clone()
            };
            ok(json!({
                "CommandId": id, "InstanceId": instance, "DocumentName": c.document,
                "Status": step.status, "StatusDetails": step.details,
                "ResponseCode": step.code,
                "StandardOutputContent": step.stdout, "StandardErrorContent": step.stderr
            }))
        }
        "CancelCommand" => {
            let id = input["CommandId"].as_str().unwrap_or_default();
            match s.commands.iter_mut().find(|c| c.id == id) {
                Some(c) => {
                    c.cancelled = true;
                    ok(json!({}))
                }
                None => error(
                    StatusCode::BAD_REQUEST,
                    "InvalidCommandId",
                    "Invalid command id.",
                ),
            }
        }
        "ListCommands" => {
            let instance = input["InstanceId"].as_str().unwrap_or_default();
            let list: Vec<Value> = s
                .commands
                .iter()
                .filter(|c| instance.is_empty() || c.instance_ids.iter().any(|i| i == instance))
                .enumerate()
                .map(|(i, c)| {
                    json!({"CommandId": c.id, "DocumentName": c.document, "Comment": c.comment,
                           "InstanceIds": c.instance_ids, "RequestedDateTime": 1_800_000_000 + i})
                })
                .collect();
            ok(json!({"Commands": list}))
        }
        "DescribeInstanceInformation" => {
            let list: Vec<Value> = s
                .managed
                .iter()
                .map(|(id, ping)| {
                    json!({"InstanceId": id, "PingStatus": ping, "PlatformType": "Linux",
                           "AgentVersion": "3.3.0.0"})
                })
                .collect();
            ok(json!({"InstanceInformationList": list}))
        }
        other => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the fake does not implement {other}"),
        ),
    }
}

/// EC2 DescribeInstances (Query API): every instance, filtered by `tag:` filters only.
fn ec2(state: &Mutex<State>, body: &[u8]) -> Response {
    let mut s = state.lock().unwrap();
    s.calls.push("ec2:DescribeInstances".into());
    wire::ec2_describe_instances(
        body,
        s.instances.iter().map(|(id, tags)| wire::Ec2Instance {
            id,
            private_ip: "10.0.0.9",
            tags,
        }),
    )
}
