//! The web console over plain HTTP (the browser tests in `tests/tests/e2e/console.rs` drive it
//! in Chromium): login and sessions, CSRF on every form, roles deciding which buttons exist,
//! every page rendered within the size budget, and actions going through the API (they show up
//! in the audit trail under the session's token, like any API call).

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};

use super::support::{delay_yaml, Sandbox};

/// A browser-like client: no redirects followed, the session cookie kept by hand.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let at = self
            .text
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.text));
        let rest = &self.text[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c.clone()),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_string();
            self.cookie = if pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
        let text = resp.text().await.unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    async fn login(&mut self, token: &str) -> Answer {
        self.post("/login", &[("token", token), ("next", "/")])
            .await
    }
}

async fn create_token(s: &Sandbox, name: &str, role: &str) -> String {
    let (code, v) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some((
                "application/json",
                json!({"name": name, "role": role}).to_string(),
            )),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn login_sessions_and_security_headers() {
    let s = Sandbox::start(2).await;
    let mut b = Browser::new(&s.url);

    // No session: every page sends the person to the login form, which comes back to it.
    let a = b.get("/experiments?phase=Running").await;
    assert_eq!(a.status, 303);
    assert_eq!(a.location(), "/login?next=%2Fexperiments%3Fphase%3DRunning");
    let a = b.get("/login").await;
    assert_eq!(a.status, 200);
    assert!(a.text.contains("type=\"password\""), "{}", a.text);
    let csp = a.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(a.headers["x-frame-options"], "DENY");

    // A wrong token: 401 with the reason, no cookie.
    let a = b.login("chaoshub_not-a-token").await;
    assert_eq!(a.status, 401);
    assert!(a.text.contains("unknown token"), "{}", a.text);
    assert!(b.cookie.is_none());

    // The admin token: a session cookie (HttpOnly, SameSite=Strict), back to `next`.
    let a = b.login(&s.admin_token()).await;
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(a.location(), "/");
    let set = a.headers[SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(&s.admin_token()),
        "the token never goes to the browser"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");

    // A TLS-terminating proxy's X-Forwarded-Proto: https makes the cookie Secure.
    let req = b
        .client
        .post(format!("{}/login", s.url))
        .header("x-forwarded-proto", "https")
        .form(&[("token", s.admin_token().as_str()), ("next", "/")]);
    let secure = b.send(req).await;
    assert!(
        secure.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure"),
        "{:?}",
        secure.headers
    );

    // Static files are served with their types and an entity tag; a browser revalidating
    // gets a bodiless 304, and one accepting gzip a compressed body. The API is still behind
    // the console.
    let a = b.get("/console/static/console.js").await;
    assert_eq!(a.status, 200);
    assert!(a.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(
        a.headers.get("content-encoding").is_none(),
        "{:?}",
        a.headers
    );
    let tag = a.headers["etag"].to_str().unwrap().to_string();
    assert!(tag.starts_with('"') && tag.len() > 4, "{tag}");
    let req = b
        .client
        .get(format!("{}/console/static/console.js", b.base))
        .header("if-none-match", format!("\"0\", {tag}"));
    let again = b.send(req).await;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty(), "a 304 has no body");
    assert_eq!(again.headers["etag"].to_str().unwrap(), tag);
    let gz = b
        .client
        .get(format!("{}/console/static/console.js", b.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz = gz.bytes().await.unwrap();
    assert!(gz.starts_with(&[0x1f, 0x8b]), "a gzip stream");
    assert!(
        gz.len() < a.text.len() / 2,
        "{} of {} bytes",
        gz.len(),
        a.text.len()
    );
    let a = b.get("/api/v1/experiments").await;
    assert_eq!(a.status, 401, "the cookie is no API credential: {}", a.text);
    let a = b.get("/healthz").await;
    assert_eq!(a.status, 200);

    // Logout needs the CSRF token, then ends the session.
    let page = b.get("/").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let a = b.post("/logout", &[("_csrf", "wrong")]).await;
    assert_eq!(a.status, 403);
    let a = b.post("/logout", &[("_csrf", &page.csrf())]).await;
    assert_eq!(a.status, 303);
    assert_eq!(b.get("/").await.status, 303);
}

#[tokio::test]
async fn editor_validation_start_and_stop_through_the_api() {
    let s = Sandbox::start(2).await;
    let mut b = Browser::new(&s.url);
    b.login(&s.admin_token()).await;
    let page = b.get("/new").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = page.csrf();

    // Without the CSRF token nothing is submitted.
    let yaml = delay_yaml("console-delay", Some("10m"), "");
    let a = b
        .post("/new", &[("yaml", &yaml), ("env", ""), ("op", "start")])
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    // A form from another origin is refused even with the token.
    let req = b
        .client
        .post(format!("{}/new", s.url))
        .header("origin", "http://evil.example")
        .form(&[("_csrf", csrf.as_str()), ("yaml", &yaml), ("op", "start")]);
    assert_eq!(b.send(req).await.status, 403);
    let (_, list) = s.get("/api/v1/experiments").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);

    // An invalid manifest: every error at its field path, the text kept in the editor.
    let bad = yaml.replace("latency: 100ms", "latency: soon");
    let a = b
        .post(
            "/new",
            &[
                ("_csrf", &csrf),
                ("yaml", &bad),
                ("env", ""),
                ("op", "check"),
            ],
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.text.contains("data-path=\"spec.delay.latency\""),
        "{}",
        a.text
    );
    assert!(a.text.contains("latency: soon"), "{}", a.text);

    // A dry run lists the targets it would hit, and offers Start.
    let a = b
        .post(
            "/new",
            &[
                ("_csrf", &csrf),
                ("yaml", &yaml),
                ("env", "mem"),
                ("op", "check"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.text.contains("Dry run: valid"), "{}", a.text);
    assert!(a.text.contains("host-0"), "{}", a.text);
    assert!(a.text.contains("value=\"start\""), "{}", a.text);

    let a = b
        .post(
            "/new",
            &[
                ("_csrf", &csrf),
                ("yaml", &yaml),
                ("env", "mem"),
                ("op", "start"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.text);
    let uid = a.location().trim_start_matches("/experiments/").to_string();
    s.wait_phase(&uid, "Running", Duration::from_secs(10)).await;

    // The overview lists the fault in force with its value and a stop button.
    let overview = b.get("/").await;
    assert!(overview.text.contains("console-delay"), "{}", overview.text);
    assert!(overview.text.contains("delay 100 ms"), "{}", overview.text);
    assert!(overview
        .text
        .contains(&format!("action=\"/experiments/{uid}/stop\"")));

    // The detail page: timeline, value chart, targets, events, manifest, buttons.
    let detail = b.get(&format!("/experiments/{uid}")).await;
    assert_eq!(detail.status, 200);
    for part in [
        "class=\"timeline\"",
        "value-line",
        "host-0",
        "experiment.running",
        "kind: NetworkChaos",
        "/pause\"",
        "/stop\"",
        "/delete\"",
        "/new?from=",
    ] {
        assert!(
            detail.text.contains(part),
            "{part} missing: {}",
            detail.text
        );
    }

    // Stop from the overview's button: the API's stop, audited under the admin token.
    let a = b
        .post(
            &format!("/experiments/{uid}/stop"),
            &[("_csrf", &overview.csrf()), ("back", "/")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(a.location(), "/");
    s.wait_phase(&uid, "Aborted", Duration::from_secs(10)).await;
    assert_eq!(s.adapter.active_count(), 0);
    let (_, audit) = s.get("/api/v1/audit?object=console-delay").await;
    let stops: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/api/v1/experiments/{id}/stop")
        .collect();
    assert_eq!(stops.len(), 1, "{audit:#}");
    assert_eq!(stops[0]["principal"], "admin", "{audit:#}");
    assert_eq!(stops[0]["source"], "127.0.0.1", "{audit:#}");

    // "Run again" opens the editor with the manifest.
    let again = b.get(&format!("/new?from={uid}")).await;
    assert!(again.text.contains("name: console-delay"), "{}", again.text);
}

#[tokio::test]
async fn viewer_sees_no_buttons_and_cannot_act() {
    let s = Sandbox::start(2).await;
    let (code, v) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("watched", Some("10m"), ""),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", Duration::from_secs(10)).await;
    let viewer = create_token(&s, "watcher", "viewer").await;
    let mut b = Browser::new(&s.url);
    assert_eq!(b.login(&viewer).await.status, 303);

    let overview = b.get("/").await;
    assert!(overview.text.contains("watched"), "{}", overview.text);
    assert!(
        overview.text.contains("watcher · viewer"),
        "{}",
        overview.text
    );
    assert!(!overview.text.contains("/stop\""), "{}", overview.text);
    assert!(
        !overview.text.contains("action=\"/halt\""),
        "{}",
        overview.text
    );
    assert!(
        !overview.text.contains("href=\"/new\""),
        "{}",
        overview.text
    );
    let detail = b.get(&format!("/experiments/{uid}")).await;
    for button in ["/pause\"", "/stop\"", "/delete\"", "/new?from="] {
        assert!(!detail.text.contains(button), "{button}: {}", detail.text);
    }

    // A hand-made form post is refused by the API's own policy, and the fault stays.
    let a = b
        .post(
            &format!("/experiments/{uid}/stop"),
            &[("_csrf", &overview.csrf()), ("back", "/")],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.text.contains("needs role operator"), "{}", a.text);
    let (_, v) = s.get(&format!("/api/v1/experiments/{uid}")).await;
    assert_eq!(v["status"]["phase"], "Running");

    // A revoked token ends the session at its next page.
    let (code, _) = s.delete("/api/v1/tokens/watcher").await;
    assert_eq!(code, 200);
    let a = b.get("/").await;
    assert_eq!(a.status, 303);
    assert_eq!(a.location(), "/login");
}

#[tokio::test]
async fn halt_needs_typed_confirmation_and_a_reason() {
    let s = Sandbox::start(2).await;
    // A timed experiment in force: the overview counts down to its deadline.
    let (code, v) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("timed", Some("10m"), ""))
        .await;
    assert_eq!(code, 201, "{v}");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    let running = s.wait_phase(&uid, "Running", Duration::from_secs(10)).await;
    let deadline = running["status"]["deadline"].as_str().unwrap().to_string();

    let lead = create_token(&s, "oncall-lead", "admin").await;
    let mut b = Browser::new(&s.url);
    b.login(&lead).await;
    let page = b.get("/").await;
    let csrf = page.csrf();
    assert!(page.text.contains("action=\"/halt\""), "{}", page.text);
    let countdown = format!("<span class=\"countdown\" data-deadline=\"{deadline}\">");
    assert!(page.text.contains(&countdown), "{}", page.text);
    assert!(
        page.text.contains(&format!("{countdown}9m "))
            || page.text.contains(&format!("{countdown}10m ")),
        "about ten minutes left: {}",
        page.text
    );
    let detail = b.get(&format!("/experiments/{uid}")).await;
    assert!(detail.text.contains(&countdown), "{}", detail.text);

    let a = b
        .post(
            "/halt",
            &[
                ("_csrf", &csrf),
                ("confirm", "halt"),
                ("reason", "game day over"),
            ],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let a = b
        .post(
            "/halt",
            &[("_csrf", &csrf), ("confirm", "HALT"), ("reason", "")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let (_, halt) = s.get("/api/v1/halt").await;
    assert_eq!(halt["halted"], false);

    let a = b
        .post(
            "/halt",
            &[
                ("_csrf", &csrf),
                ("confirm", "HALT"),
                ("reason", "game day over"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.text);
    let (_, halt) = s.get("/api/v1/halt").await;
    assert_eq!(halt["halted"], true);
    assert_eq!(halt["reason"], "game day over");
    assert_eq!(halt["by"], "oncall-lead", "{halt}");
    let page = b.get("/").await;
    assert!(page.text.contains("game day over"), "{}", page.text);
    assert!(
        page.text
            .contains("by <strong class=\"halted-by\">oncall-lead</strong>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("action=\"/unhalt\""), "{}", page.text);

    let a = b.post("/unhalt", &[("_csrf", &csrf)]).await;
    assert_eq!(a.status, 303, "{}", a.text);
    let (_, halt) = s.get("/api/v1/halt").await;
    assert_eq!(halt["halted"], false);
}

#[tokio::test]
async fn every_page_renders_within_budget() {
    let s = Sandbox::start_with(4, with_project_catalog).await;
    for i in 0..60 {
        let (code, v) = s
            .post_yaml(
                "/api/v1/experiments",
                &delay_yaml(&format!("bulk-{i}"), Some("10m"), ""),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
    let (code, v) = s
        .post_yaml(
            "/api/v1/experiments",
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entry: main\n  environment: mem\n  templates:\n  - name: main\n    templateType: Serial\n    children: [d1, s1]\n  - name: d1\n    templateType: NetworkChaos\n    networkChaos:\n      action: delay\n      mode: all\n      selector: {labelSelectors: {app: web}}\n      delay: {latency: 10ms}\n      duration: 1s\n  - name: s1\n    templateType: Suspend\n    deadline: 1s\n",
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let wf = v["metadata"]["uid"].as_str().unwrap().to_string();
    let (_, first) = s.get("/api/v1/experiments?limit=1").await;
    let uid = first["items"][0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, templates) = s.get("/api/v1/templates").await;
    let template = templates["items"][0]["name"].as_str().map(str::to_string);

    let mut b = Browser::new(&s.url);
    b.login(&s.admin_token()).await;
    let mut pages = vec![
        "/".to_string(),
        "/experiments".into(),
        "/experiments?phase=Running&kind=NetworkChaos".into(),
        format!("/experiments/{uid}"),
        format!("/experiments/{wf}"),
        "/new".into(),
        "/catalog".into(),
        "/environments".into(),
        "/conformance".into(),
        "/orchestration".into(),
        "/workflows/new".into(),
        format!("/workflows/new?from={wf}"),
        "/suites".into(),
    ];
    if let Some(t) = template {
        pages.push(format!("/catalog/{t}"));
    }
    for path in &pages {
        let a = b.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert!(
            a.text.len() < 100_000,
            "{path} is {} bytes (budget 100 kB)",
            a.text.len()
        );
        assert!(a.text.starts_with("<!doctype html>"), "{path}");
        // A first load: the page and the files it links, fetched as Chromium asks (gzip).
        let mut wire = a.text.len();
        let assets = chaoshub_testkit::bench::linked_static_files(&a.text);
        assert!(!assets.is_empty(), "{path} links the console's stylesheet");
        for asset in assets {
            let r = b
                .client
                .get(format!("{}{asset}", b.base))
                .header("accept-encoding", "gzip, deflate, br")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{asset}");
            wire += r.bytes().await.unwrap().len();
        }
        assert!(
            wire < 100_000,
            "{path} and its files are {wire} bytes on first load (budget 100 kB)"
        );
        // Nothing is loaded from another origin (the CSP would block it anyway).
        for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url("] {
            assert!(!a.text.contains(attr), "{path} loads {attr}…: {}", a.text);
        }
        let problems = chaoshub_testkit::a11y::problems(&a.text);
        assert!(problems.is_empty(), "{path}: {problems:#?}\n{}", a.text);
    }
    // The list pages by 50 with a link to the next page.
    let list = b.get("/experiments").await;
    assert!(list.text.contains("rel=\"next\""), "{}", list.text);
    let workflow = b.get(&format!("/experiments/{wf}")).await;
    assert!(
        workflow.text.contains("class=\"workflow\""),
        "{}",
        workflow.text
    );
}

/// The workflow builder's JSON endpoints: refused without the session's CSRF token in
/// `X-CSRF-Token` (or from another origin); `parse` reads YAML with the hub's parser (a 400 with
/// the parser's message when it does not parse); `submit` passes the text unchanged to the API
/// (a dry run's answer, then a created workflow under the session's token in the audit trail).
#[tokio::test]
async fn builder_endpoints_check_csrf_and_pass_through_to_the_api() {
    let s = Sandbox::start(2).await;
    let mut b = Browser::new(&s.url);
    b.login(&s.admin_token()).await;
    let page = b.get("/workflows/new").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("id=\"builder-data\""), "{}", page.text);
    let marker = "data-csrf=\"";
    let at = page.text.find(marker).unwrap() + marker.len();
    let csrf = page.text[at..at + page.text[at..].find('"').unwrap()].to_string();
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: built}\nspec:\n  entry: main\n  environment: mem\n  templates:\n    - name: main\n      templateType: Serial\n      children: [nap]\n    - name: nap\n      templateType: Suspend\n      deadline: 1s\n";
    let post = |path: &str, token: Option<&str>, body: &str| {
        let mut req = b
            .client
            .post(format!("{}{path}", s.url))
            .header(CONTENT_TYPE, "application/yaml")
            .header(COOKIE, b.cookie.clone().unwrap())
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        req
    };
    // Without the token, with a wrong one, or from another origin: 403, nothing parsed.
    for req in [
        post("/console/builder/parse", None, yaml),
        post("/console/builder/parse", Some("nope"), yaml),
        post("/console/builder/parse", Some(&csrf), yaml).header("origin", "http://evil.example"),
        post("/console/builder/submit", None, yaml),
        post("/console/builder/save-template", None, "{}"),
        post("/console/builder/save-template", Some("nope"), "{}"),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403);
    }
    // With the token, save-template is the API's answer: this sandbox has no catalog folder.
    let template = serde_json::json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Template",
        "metadata": {"name": "built"}, "spec": {"title": "t", "description": "d", "category": "workflow",
        "adapters": ["native"], "experiment": chaoshub_schema::split_documents(yaml).unwrap().remove(0)}});
    let r = post(
        "/console/builder/save-template",
        Some(&csrf),
        &template.to_string(),
    )
    .send()
    .await
    .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("catalog_not_writable")),
        "{v}"
    );
    let r = post("/console/builder/parse", Some(&csrf), yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["documents"][0]["spec"]["templates"][1]["deadline"], "1s");
    let r = post("/console/builder/parse", Some(&csrf), "a: [unclosed\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "the YAML does not parse", "{v}");
    assert!(!v["details"].as_array().unwrap().is_empty(), "{v}");

    let r = post("/console/builder/submit?dryRun=true", Some(&csrf), yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let r = post(
        "/console/builder/submit?dryRun=true",
        Some(&csrf),
        &yaml.replace("deadline: 1s", "deadline: soon"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["details"][0]["path"], "spec.templates[1].deadline", "{v}");
    let r = post("/console/builder/submit", Some(&csrf), yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    let a = b.get(&format!("/console/builder/experiments/{uid}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v: Value = serde_json::from_str(&a.text).unwrap();
    assert_eq!(v["kind"], "Workflow");
    let (_, audit) = s.get("/api/v1/audit?limit=20").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["method"] == "POST"
                && e["path"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("/api/v1/experiments")
                && e["status"] == 201),
        "{audit:#}"
    );
    // A catalog template through the builder's pass-through (none in this sandbox: the API's 404).
    let a = b.get("/console/builder/templates/no-such-template").await;
    assert_eq!(a.status, 404, "{}", a.text);
}

fn with_project_catalog(config: &mut chaoshub::config::HubConfig) {
    config.catalog_dir = chaoshub_testkit::workspace_root().join("catalog");
}

/// A template's form previews through the API's render: the manifest for good values; for a
/// value out of range, the refusal naming the parameter (422 for the form's own post, 200 for
/// the script's live preview, which shows it in the page while someone is still typing).
#[tokio::test]
async fn template_form_previews_and_names_the_refused_parameter() {
    let s = Sandbox::start_with(2, with_project_catalog).await;
    let mut b = Browser::new(&s.url);
    b.login(&s.admin_token()).await;
    let page = b.get("/catalog/network-delay").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text
            .contains("<div id=\"template-result\" aria-live=\"polite\"></div>"),
        "{}",
        page.text
    );
    let csrf = page.csrf();
    let form = |latency: &'static str, live: bool| {
        let mut f = vec![
            ("_csrf", csrf.clone()),
            ("op", "preview".to_string()),
            ("p.latency", latency.to_string()),
            ("env", "mem".to_string()),
        ];
        if live {
            f.push(("live", "1".to_string()));
        }
        f
    };
    async fn post(b: &mut Browser, fields: Vec<(&'static str, String)>) -> Answer {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post("/catalog/network-delay", &fields).await
    }
    let result = |text: &str| -> String {
        let at = text
            .find("<div id=\"template-result\"")
            .expect("the result block");
        text[at..].split("</form>").next().unwrap_or("").to_string()
    };

    let ok = post(&mut b, form("250ms", false)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(result(&ok.text).contains("latency: 250ms"), "{}", ok.text);
    let live = post(&mut b, form("250ms", true)).await;
    assert_eq!(live.status, 200);
    assert_eq!(result(&live.text), result(&ok.text));

    let refused = post(&mut b, form("20s", false)).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let block = result(&refused.text);
    assert!(
        block.contains("class=\"notice error\"") && block.contains("parameters.latency"),
        "{block}"
    );
    let live = post(&mut b, form("20s", true)).await;
    assert_eq!(
        live.status, 200,
        "the live preview shows the refusal in the page"
    );
    assert_eq!(result(&live.text), block);
}

/// The conformance matrix as a page: every row against every adapter type, the measured
/// figures from docs/conformance-measured.json, and the environments page linking to it.
#[tokio::test]
async fn conformance_page_shows_the_matrix_with_measured_figures() {
    let s = Sandbox::start(2).await;
    let mut b = Browser::new(&s.url);
    b.login(&s.admin_token()).await;
    let (_, matrix) = s.get("/api/v1/conformance").await;
    let page = b.get("/conformance").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let rows = matrix["rows"].as_array().unwrap();
    assert_eq!(
        page.text.matches("<tr><th scope=\"row\">").count(),
        rows.len(),
        "{}",
        page.text
    );
    for a in matrix["adapters"].as_array().unwrap() {
        let a = a.as_str().unwrap();
        assert!(page.text.contains(&format!("id=\"adapter-{a}\"")), "{a}");
    }
    // A measured cell shows its figure; the docker delay is one (docs/conformance-measured.json).
    let delay = &rows[0]["cells"]["docker"]["measured"]["figure"];
    let figure = delay.as_str().expect("docker's delay is measured");
    let escaped = figure
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        page.text.contains(&format!("measured: {escaped}")),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("class=\"cell-refused\""),
        "{}",
        page.text
    );
    let envs = b.get("/environments").await;
    assert!(envs.text.contains("href=\"/conformance\""), "{}", envs.text);
}
