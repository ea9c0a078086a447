//! Authorization on the real router: every route of the policy table × no token, each role,
//! in scope and out of scope; scoped lists; body scope at submission; revocation and expiry;
//! malformed credentials (only 401, never 5xx); the failed-authentication rate limit; the
//! audit trail.

use chaoshub::auth::policy::{Access, ScopeRule, POLICIES};
use chaoshub_schema::auth::Role;
use serde_json::{json, Value};

use super::support::{client_with_token, delay_yaml, Sandbox};

fn no_rate_limit(c: &mut chaoshub::config::HubConfig) {
    c.auth.max_failures_per_minute = 0;
}

async fn create_token(s: &Sandbox, body: Value) -> String {
    let (code, v) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(("application/json", body.to_string())),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert!(v.get("hash").is_none(), "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn call(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(method, format!("{url}{path}"))
        .timeout(std::time::Duration::from_secs(10));
    if let Some(b) = body {
        req = req.header("content-type", "application/yaml").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    // The event stream never ends: its status is all we need when it is served.
    let text = if path.ends_with("/stream") && status == 200 {
        String::new()
    } else {
        resp.text().await.unwrap()
    };
    (status, text)
}

async fn experiment_in(s: &Sandbox, name: &str, namespace: &str) -> String {
    let yaml = delay_yaml(name, Some("10m"), "")
        .replace("namespace: default", &format!("namespace: {namespace}"));
    let (code, v) = s.post_yaml("/api/v1/experiments", &yaml).await;
    assert_eq!(code, 201, "{v}");
    v["metadata"]["uid"].as_str().unwrap().to_string()
}

/// A concrete path for a route template.
fn concrete(path: &str, experiment: &str) -> String {
    path.replace("{id}", experiment)
        .replace("/suites/runs/{id}", "/suites/runs/none")
        .replace("{env}", "mem")
        .replace("/environments/{name}", "/environments/mem")
        .replace("/agents/mem/{name}", "/agents/mem/none")
        .replace("/templates/{name}", "/templates/none")
        .replace("/catalogs/{name}", "/catalogs/none")
        .replace("/tokens/{name}", "/tokens/none")
}

fn denied(code: u16) -> bool {
    code == 401 || code == 403
}

#[tokio::test]
async fn every_route_by_every_role_in_and_out_of_scope() {
    let s = Sandbox::start_with(4, no_rate_limit).await;
    let in_scope = experiment_in(&s, "in-a", "a").await;
    let out_of_scope = experiment_in(&s, "in-b", "b").await;
    let mut principals: Vec<(String, Role, bool, reqwest::Client)> = Vec::new();
    for role in Role::ALL {
        let all = create_token(&s, json!({"name": format!("all-{role}"), "role": role})).await;
        principals.push((format!("all-{role}"), role, true, client_with_token(&all)));
        let scoped = create_token(
            &s,
            json!({"name": format!("a-{role}"), "role": role, "namespaces": ["a"]}),
        )
        .await;
        principals.push((format!("a-{role}"), role, false, client_with_token(&scoped)));
    }
    let anonymous = reqwest::Client::new();
    let mut checked = 0;
    for policy in POLICIES {
        // Halting would not change authorization, but it is lifted again after each call so
        // that later routes run against a normal hub.
        for (experiment, experiment_in_scope) in [(&in_scope, true), (&out_of_scope, false)] {
            if policy.scope != ScopeRule::Experiment && !experiment_in_scope {
                continue;
            }
            let path = concrete(policy.path, experiment);
            let body = (policy.method != "GET" && policy.method != "DELETE").then(String::new);
            let (code, text) = call(&anonymous, &s.url, policy.method, &path, body.clone()).await;
            match policy.access {
                Access::Open => assert!(
                    !denied(code),
                    "{} {path} is open, got {code}: {text}",
                    policy.method
                ),
                _ => {
                    assert_eq!(
                        code, 401,
                        "{} {path} without a token: {text}",
                        policy.method
                    );
                    assert!(text.contains("\"unauthenticated\""), "{text}");
                }
            }
            for (name, role, unrestricted, client) in &principals {
                let (code, text) = call(client, &s.url, policy.method, &path, body.clone()).await;
                let role_ok = match policy.access {
                    Access::Open => true,
                    Access::Metrics => *role >= Role::Viewer,
                    Access::Role(needed) => *role >= needed,
                };
                let scope_ok = match policy.scope {
                    ScopeRule::Experiment => experiment_in_scope || *unrestricted,
                    ScopeRule::Unrestricted => *unrestricted,
                    _ => true,
                };
                let expected = role_ok && scope_ok;
                assert_eq!(
                    !denied(code),
                    expected,
                    "{} {path} as {name}: expected {}, got {code}: {text}",
                    policy.method,
                    if expected { "success" } else { "403" }
                );
                assert!(
                    code < 500,
                    "{} {path} as {name}: {code} {text}",
                    policy.method
                );
                if !expected {
                    assert_eq!(code, 403, "{text}");
                    assert!(text.contains("\"forbidden\""), "{text}");
                    if !role_ok {
                        assert!(
                            text.contains(policy.permission),
                            "{text} should name {}",
                            policy.permission
                        );
                    }
                }
                checked += 1;
                if policy.path == "/api/v1/halt" && policy.method == "POST" && !denied(code) {
                    let _ = call(&s.client, &s.url, "DELETE", "/api/v1/halt", None).await;
                }
            }
        }
    }
    assert!(checked > POLICIES.len() * 6, "{checked}");
}

#[tokio::test]
async fn scoped_operator_sees_and_steers_only_its_namespace() {
    let s = Sandbox::start(4).await;
    let a = experiment_in(&s, "exp-a", "a").await;
    let b = experiment_in(&s, "exp-b", "b").await;
    let token = create_token(
        &s,
        json!({"name": "ops-a", "role": "operator", "namespaces": ["a"]}),
    )
    .await;
    let ops = client_with_token(&token);
    // Lists leave out what is outside the scope; a filter outside it is refused.
    let (code, text) = call(&ops, &s.url, "GET", "/api/v1/experiments", None).await;
    assert_eq!(code, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let uids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, vec![a.as_str()]);
    let (code, _) = call(&ops, &s.url, "GET", "/api/v1/experiments?namespace=b", None).await;
    assert_eq!(code, 403);
    // Events of experiments outside the scope are left out too.
    let (_, text) = call(&ops, &s.url, "GET", "/api/v1/events", None).await;
    assert!(text.contains(&a) && !text.contains(&b), "{text}");
    let (code, text) = call(
        &ops,
        &s.url,
        "GET",
        &format!("/api/v1/events?experiment={b}"),
        None,
    )
    .await;
    assert_eq!(code, 403, "{text}");
    // By name in another namespace: refused without saying whether it exists.
    let (code, _) = call(
        &ops,
        &s.url,
        "POST",
        "/api/v1/experiments/exp-b/stop?namespace=b",
        None,
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = call(
        &ops,
        &s.url,
        "POST",
        "/api/v1/experiments/ghost/stop?namespace=b",
        None,
    )
    .await;
    assert_eq!(code, 403);
    let (code, text) = call(
        &ops,
        &s.url,
        "POST",
        &format!("/api/v1/experiments/{b}/stop"),
        None,
    )
    .await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("namespace \\\"b\\\""), "{text}");
    let (code, text) = call(
        &ops,
        &s.url,
        "POST",
        &format!("/api/v1/experiments/{a}/stop"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    // Submission: the body's namespace is checked before anything is stored.
    let into_b = delay_yaml("new-b", Some("1m"), "").replace("namespace: default", "namespace: b");
    let (code, text) = call(&ops, &s.url, "POST", "/api/v1/experiments", Some(into_b)).await;
    assert_eq!(code, 403, "{text}");
    let (_, all) = s.get("/api/v1/experiments?namespace=b").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    let into_a = delay_yaml("new-a", Some("1m"), "").replace("namespace: default", "namespace: a");
    let (code, text) = call(&ops, &s.url, "POST", "/api/v1/experiments", Some(into_a)).await;
    assert_eq!(code, 201, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["status"]["createdBy"], "ops-a", "{created}");
    // An environment scope is checked the same way.
    let env_token = create_token(
        &s,
        json!({"name": "elsewhere", "role": "operator", "environments": ["other"]}),
    )
    .await;
    let elsewhere = client_with_token(&env_token);
    let (code, _) = call(&elsewhere, &s.url, "GET", "/api/v1/environments/mem", None).await;
    assert_eq!(code, 403);
    let (_, text) = call(&elsewhere, &s.url, "GET", "/api/v1/environments", None).await;
    assert!(!text.contains("\"mem\""), "{text}");
    let into_mem = delay_yaml("env-scoped", Some("1m"), "");
    let (code, text) = call(
        &elsewhere,
        &s.url,
        "POST",
        "/api/v1/experiments",
        Some(into_mem),
    )
    .await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("environment \\\"mem\\\""), "{text}");
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused_on_the_next_request() {
    let s = Sandbox::start(1).await;
    let token = create_token(&s, json!({"name": "short", "role": "viewer"})).await;
    let viewer = client_with_token(&token);
    assert_eq!(
        call(&viewer, &s.url, "GET", "/api/v1/experiments", None)
            .await
            .0,
        200
    );
    let (code, v) = s.delete("/api/v1/tokens/short").await;
    assert_eq!(code, 200, "{v}");
    assert!(v["revokedAt"].is_string(), "{v}");
    let (code, text) = call(&viewer, &s.url, "GET", "/api/v1/experiments", None).await;
    assert_eq!(code, 401);
    assert!(text.contains("revoked"), "{text}");
    // The name can be used again; the old secret stays dead.
    let again = create_token(&s, json!({"name": "short", "role": "viewer"})).await;
    assert_ne!(again, token);
    assert_eq!(
        call(
            &client_with_token(&again),
            &s.url,
            "GET",
            "/api/v1/halt",
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&viewer, &s.url, "GET", "/api/v1/halt", None).await.0,
        401
    );
    // A second live token of the same name is a conflict.
    let (code, _) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some((
                "application/json",
                json!({"name": "short", "role": "viewer"}).to_string(),
            )),
        )
        .await;
    assert_eq!(code, 409);
    // Expiry: a token that expires in a second.
    let soon = create_token(
        &s,
        json!({"name": "soon", "role": "viewer", "expires": "1s"}),
    )
    .await;
    let soon = client_with_token(&soon);
    assert_eq!(
        call(&soon, &s.url, "GET", "/api/v1/halt", None).await.0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (code, text) = call(&soon, &s.url, "GET", "/api/v1/halt", None).await;
    assert_eq!(code, 401);
    assert!(text.contains("expired"), "{text}");
    // Listing never shows secrets or hashes; it shows last use.
    let (_, list) = s.get("/api/v1/tokens").await;
    let text = list.to_string();
    assert!(
        !text.contains(&again) && !text.contains(&chaoshub::auth::hash_token(&again)),
        "{text}"
    );
    let admin = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "admin")
        .unwrap();
    assert!(admin["lastUsedAt"].is_string(), "{admin}");
    // Bad requests name the field.
    for (body, field) in [
        (json!({"name": "Bad Name", "role": "viewer"}), "name"),
        (
            json!({"name": "x", "role": "viewer", "expires": "later"}),
            "expires",
        ),
        (
            json!({"name": "x", "role": "viewer", "namespaces": ["UPPER"]}),
            "namespaces[0]",
        ),
    ] {
        let (code, v) = s
            .request(
                reqwest::Method::POST,
                "/api/v1/tokens",
                Some(("application/json", body.to_string())),
            )
            .await;
        assert_eq!(code, 400, "{v}");
        assert!(v.to_string().contains(field), "{v} should name {field}");
    }
    let (code, v) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some((
                "application/json",
                json!({"name": "x", "role": "root"}).to_string(),
            )),
        )
        .await;
    assert_eq!(code, 400, "{v}");
}

#[tokio::test]
async fn malformed_credentials_are_401_never_5xx() {
    let s = Sandbox::start_with(1, no_rate_limit).await;
    let huge = "a".repeat(100_000);
    let long_bearer = format!("Bearer {}", "b".repeat(9000));
    let admin = s.admin_token();
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer    ".to_vec(),
        b"bearer nope".to_vec(),
        b"Basic YWRtaW46YWRtaW4=".to_vec(),
        b"Digest username=admin".to_vec(),
        b"Token abc".to_vec(),
        format!("Basic {admin}").into_bytes(),
        format!("Bearer{admin}").into_bytes(),
        format!("Bearer {admin}x").into_bytes(),
        format!("Bearer {}", &admin[..admin.len() - 1]).into_bytes(),
        format!("Bearer {}", admin.to_uppercase()).into_bytes(),
        b"Bearer \xff\xfe\xfd".to_vec(),
        b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.".to_vec(),
        b"Bearer a.b.c".to_vec(),
        huge.clone().into_bytes(),
        format!("Bearer {huge}").into_bytes(),
        long_bearer.into_bytes(),
        b"\t".to_vec(),
    ];
    for raw in cases {
        let value = match reqwest::header::HeaderValue::from_bytes(&raw) {
            Ok(v) => v,
            Err(_) => continue,
        };
        for (method, path) in [
            ("GET", "/api/v1/experiments"),
            ("POST", "/api/v1/halt"),
            ("GET", "/metrics"),
        ] {
            let resp = reqwest::Client::new()
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{path}", s.url),
                )
                .header(reqwest::header::AUTHORIZATION, value.clone())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let shown: String = String::from_utf8_lossy(&raw).chars().take(40).collect();
            assert!(
                resp.headers().get("www-authenticate").is_some() || status != 401,
                "{shown:?}"
            );
            let body: Value = resp.json().await.unwrap();
            assert_eq!(status, 401, "{method} {path} with {shown:?}: {body}");
            assert_eq!(body["code"], "unauthenticated", "{body}");
        }
    }
    // The hub still works and was not halted by any of them.
    let (code, v) = s.get("/api/v1/halt").await;
    assert_eq!(code, 200);
    assert_eq!(v["halted"], false);
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_per_address() {
    fn three(c: &mut chaoshub::config::HubConfig) {
        c.auth.max_failures_per_minute = 3;
    }
    let s = Sandbox::start_with(1, three).await;
    let bad = client_with_token("chaoshub_wrong");
    for _ in 0..3 {
        assert_eq!(call(&bad, &s.url, "GET", "/api/v1/halt", None).await.0, 401);
    }
    let resp = bad
        .get(format!("{}/api/v1/halt", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    // Open routes stay open.
    assert_eq!(call(&bad, &s.url, "GET", "/healthz", None).await.0, 200);
}

#[tokio::test]
async fn mutations_and_refusals_are_audited_with_the_principal() {
    let s = Sandbox::start(4).await;
    let viewer =
        client_with_token(&create_token(&s, json!({"name": "watcher", "role": "viewer"})).await);
    let uid = experiment_in(&s, "audited", "default").await;
    assert_eq!(
        call(
            &viewer,
            &s.url,
            "POST",
            &format!("/api/v1/experiments/{uid}/stop"),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &reqwest::Client::new(),
            &s.url,
            "GET",
            "/api/v1/experiments",
            None
        )
        .await
        .0,
        401
    );
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    // Reads by a valid token are not audited.
    let _ = s.get("/api/v1/experiments").await;
    let (code, v) = s.get("/api/v1/audit?limit=100").await;
    assert_eq!(code, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    let find = |pred: &dyn Fn(&Value) -> bool| items.iter().find(|e| pred(e)).cloned();
    let created = find(&|e| {
        e["route"] == "/api/v1/experiments" && e["method"] == "POST" && e["status"] == 201
    })
    .expect("submission audited");
    assert_eq!(created["principal"], "admin");
    assert_eq!(created["role"], "admin");
    assert_eq!(created["source"], "127.0.0.1");
    assert!(
        created["object"].as_str().unwrap().contains(&uid),
        "{created}"
    );
    let refused = find(&|e| e["status"] == 403).expect("403 audited");
    assert_eq!(refused["principal"], "watcher");
    assert_eq!(refused["outcome"], "denied");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("experiments:stop"),
        "{refused}"
    );
    let anonymous = find(&|e| e["status"] == 401).expect("401 audited");
    assert_eq!(anonymous["principal"], "anonymous");
    let stopped = find(&|e| e["route"] == "/api/v1/experiments/{id}/stop" && e["status"] == 200)
        .expect("stop audited");
    assert_eq!(stopped["principal"], "admin");
    assert!(
        stopped["object"]
            .as_str()
            .unwrap()
            .contains("default/audited"),
        "{stopped}"
    );
    let token = find(&|e| e["route"] == "/api/v1/tokens" && e["status"] == 201)
        .expect("token creation audited");
    assert_eq!(token["object"], "token watcher");
    assert!(
        !items
            .iter()
            .any(|e| e["method"] == "GET" && e["status"] == 200),
        "{v}"
    );
    // Filters.
    let (_, v) = s.get("/api/v1/audit?principal=watcher").await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["principal"] == "watcher"),
        "{v}"
    );
    let (_, v) = s
        .get(&format!("/api/v1/audit?object={uid}&outcome=success"))
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    let (code, _) = s.get("/api/v1/audit?outcome=maybe").await;
    assert_eq!(code, 400);
    // Events of the stop name who asked.
    let (_, events) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    let stop = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message"].as_str().unwrap_or("").contains("stop"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(stop["attributes"]["principal"], "admin", "{events}");
}
