//! Paged listings of agents and targets (`limit`, `continue`, `total`), and selections answered
//! from the agent registry's label index, through the REST API of a real hub. The agents are
//! in-process gRPC clients speaking the real agent protocol (join token, registration); no
//! `chaos-agent` process is needed to list or select them.

use chaoshub_schema::agent::proto::agent_hub_client::AgentHubClient;
use chaoshub_schema::agent::proto::{agent_message, hub_message, AgentMessage, Register};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::support::Sandbox;

/// A registered agent's open stream: dropped, the agent disconnects.
struct Connected {
    _tx: mpsc::Sender<AgentMessage>,
    _inbound: tonic::Streaming<chaoshub_schema::agent::proto::HubMessage>,
}

/// Registers `names` (with their labels) in native environment `env` over gRPC.
async fn connect_agents(
    s: &Sandbox,
    env: &str,
    agents: &[(String, Vec<(&str, String)>)],
) -> Vec<Connected> {
    let (code, _) = s
        .post_yaml(
            "/api/v1/environments",
            &format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {env}}}\nspec: {{adapter: native}}\n"),
        )
        .await;
    assert_eq!(code, 201);
    let (code, join) = s
        .post(&format!("/api/v1/environments/{env}/join-tokens"))
        .await;
    assert_eq!(code, 201, "{join}");
    let token = join["token"].as_str().unwrap().to_string();
    let channel = tonic::transport::Endpoint::from_shared(s.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for (name, labels) in agents {
        let (tx, rx) = mpsc::channel(4);
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Register(Register {
                name: name.clone(),
                environment: env.to_string(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                version: "0".into(),
                mechanisms_json: "{}".into(),
                capabilities: vec!["NetworkChaos/delay".into()],
                hostname: format!("{name}.lab"),
                addresses: vec!["10.0.0.1".into()],
                active_fault_ids: Vec::new(),
                credential: String::new(),
                join_token: token.clone(),
                allowed: Vec::new(),
            })),
        })
        .await
        .unwrap();
        let mut inbound = AgentHubClient::new(channel.clone())
            .connect(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        match inbound.message().await.unwrap().and_then(|m| m.msg) {
            Some(hub_message::Msg::Registered(_)) => {}
            other => panic!("{name}: {other:?}"),
        }
        out.push(Connected {
            _tx: tx,
            _inbound: inbound,
        });
    }
    out
}

/// Every page of `path` (which has a query string already), following `continue`, checking
/// that each page says the same total and holds at most `limit` items.
async fn all_pages(s: &Sandbox, path: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut total = None;
    loop {
        let url = match &token {
            Some(t) => format!("{path}&limit={limit}&continue={t}"),
            None => format!("{path}&limit={limit}"),
        };
        let (code, page) = s.get(&url).await;
        assert_eq!(code, 200, "{url}: {page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit);
        items.extend(got.iter().cloned());
        let this_total = page["total"].as_u64().unwrap() as usize;
        assert_eq!(*total.get_or_insert(this_total), this_total);
        match page["continue"].as_str() {
            Some(t) => {
                assert_eq!(got.len(), limit, "only the last page is short");
                token = Some(t.to_string());
            }
            None => return (items, this_total),
        }
    }
}

async fn assert_bad_query(s: &Sandbox, url: &str, names: &str) {
    let (code, err) = s.get(url).await;
    assert_eq!(code, 400, "{url}: {err}");
    assert_eq!(err["code"], "invalid_query", "{url}: {err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains(names), "{url}: {message}");
}

#[tokio::test]
async fn targets_are_paged_by_id_with_the_total_and_bad_limits_or_tokens_are_refused() {
    let s = Sandbox::start(7).await;
    let (code, whole) = s.get("/api/v1/environments/mem/targets").await;
    assert_eq!(code, 200, "{whole}");
    assert_eq!(whole["total"], 7);
    assert!(whole.get("continue").is_none(), "7 fit in the default page");
    let ids: Vec<&str> = whole["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "listed by id");
    for limit in [1, 2, 3, 7] {
        let (items, total) = all_pages(&s, "/api/v1/environments/mem/targets?", limit).await;
        assert_eq!(total, 7);
        assert_eq!(&items, whole["items"].as_array().unwrap(), "limit {limit}");
    }
    let (web, total) = all_pages(
        &s,
        "/api/v1/environments/mem/targets?labelSelector=app%3Dweb",
        3,
    )
    .await;
    assert_eq!((web.len(), total), (4, 4));
    assert!(web.iter().all(|t| t["labels"]["app"] == "web"));
    let base = "/api/v1/environments/mem/targets";
    for bad in ["0", "5001", "-1", "ten"] {
        assert_bad_query(&s, &format!("{base}?limit={bad}"), "\"limit\"").await;
    }
    for bad in ["host-3", "k1.zz", "k1.6", "k1.6800"] {
        assert_bad_query(&s, &format!("{base}?continue={bad}"), "\"continue\"").await;
    }
}

#[tokio::test]
async fn agents_are_paged_with_the_total_and_selected_from_the_index() {
    let s = Sandbox::start(1).await;
    let agents: Vec<(String, Vec<(&str, String)>)> = (0..9)
        .map(|i| {
            let name = format!("a{i}");
            let mut labels = vec![("host-id", name.clone()), ("rack", format!("r{}", i % 3))];
            if i == 4 {
                labels.push(("chaoshub.dev/protected", "true".into()));
            }
            (name, labels)
        })
        .collect();
    let _fleet = connect_agents(&s, "fleet", &agents).await;
    let _other = connect_agents(&s, "edge", &[("e0".into(), vec![])]).await;

    let (code, whole) = s.get("/api/v1/agents").await;
    assert_eq!(code, 200, "{whole}");
    assert_eq!(whole["total"], 10);
    let keys = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["environment"].as_str().unwrap(),
                    a["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let listed = keys(whole["items"].as_array().unwrap());
    assert_eq!(listed[0], "edge/e0", "by environment, then name");
    assert_eq!(listed[1], "fleet/a0");
    for limit in [1, 3, 4, 10] {
        let (items, total) = all_pages(&s, "/api/v1/agents?", limit).await;
        assert_eq!(total, 10);
        assert_eq!(keys(&items), listed, "limit {limit}");
    }
    let (fleet, total) = all_pages(&s, "/api/v1/agents?env=fleet", 4).await;
    assert_eq!((fleet.len(), total), (9, 9));
    // The whole inventory, paged from the registry's range without building every target.
    let (code, inventory) = s.get("/api/v1/environments/fleet/targets").await;
    assert_eq!(code, 200, "{inventory}");
    assert_eq!(inventory["total"], 9);
    for limit in [1, 2, 4, 9] {
        let (items, total) = all_pages(&s, "/api/v1/environments/fleet/targets?", limit).await;
        assert_eq!(total, 9);
        assert_eq!(
            &items,
            inventory["items"].as_array().unwrap(),
            "limit {limit}"
        );
    }
    let ids: Vec<&str> = inventory["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"]);
    for bad in ["0", "5001", "x"] {
        assert_bad_query(&s, &format!("/api/v1/agents?limit={bad}"), "\"limit\"").await;
    }
    assert_bad_query(&s, "/api/v1/agents?continue=nope", "\"continue\"").await;
    // A token of a target listing (one part) is not one of the agent listing (two).
    assert_bad_query(&s, "/api/v1/agents?continue=k1.6162", "\"continue\"").await;
    assert_bad_query(&s, "/api/v1/agents?envs=fleet", "\"envs\"").await;

    // Target discovery by a label naming one agent, and a dry run selecting by it.
    let (code, one) = s
        .get("/api/v1/environments/fleet/targets?labelSelector=host-id%3Da7")
        .await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["total"], 1);
    assert_eq!(one["items"][0]["id"], "a7");
    assert_eq!(one["items"][0]["labels"]["chaoshub.dev/hostname"], "a7.lab");
    let (code, racked) = s
        .get("/api/v1/environments/fleet/targets?labelSelector=rack+in+(r1%2Cr2),host-id!%3Da5")
        .await;
    assert_eq!(code, 200, "{racked}");
    let ids: Vec<&str> = racked["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1", "a2", "a4", "a7", "a8"]);
    let dry = |selector: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: dry}}\nspec:\n  environment: fleet\n  action: delay\n  mode: all\n  selector: {{labelSelectors: {selector}}}\n  delay: {{latency: 10ms}}\n  duration: 1s\n"
        )
    };
    let (code, plan) = s
        .post_yaml("/api/v1/experiments?dryRun=true", &dry("{rack: r0}"))
        .await;
    assert_eq!(code, 200, "{plan}");
    let planned: Vec<&str> = plan["plan"]["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(planned.len(), 3, "{plan}");
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("protected target(s) not selected") && warnings.contains("a4"),
        "the protected agent left out is reported, found through the index: {warnings}"
    );
    // An opt-in family names the agents the selector may pick that lack the opt-in, looked up
    // in the index.
    let (code, err) = s
        .post_yaml(
            "/api/v1/experiments",
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {name: skew}\nspec:\n  environment: fleet\n  action: clock\n  mode: all\n  selector: {labelSelectors: {rack: r1}}\n  clock: {time-offset: '-5m'}\n  duration: 10s\n",
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("agents a1, a4, a7 were not started with --allow clock"),
        "{err}"
    );
    let (code, plan) = s
        .post_yaml("/api/v1/experiments?dryRun=true", &dry("{rack: r1}"))
        .await;
    assert_eq!(code, 200, "{plan}");
    assert!(
        plan["warnings"]
            .to_string()
            .contains("protected target \\\"a4\\\" is matched"),
        "{plan}"
    );
}
