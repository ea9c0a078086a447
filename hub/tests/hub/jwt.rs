//! Single sign-on (issue 15): the hub accepts JWTs from an identity provider configured under
//! `[auth.jwt]`, with real signatures (ES256 and Ed25519 keys made with ring, tokens signed
//! with jsonwebtoken) and the provider's JWKS served over HTTP by a local server or read from a
//! file. Claims map to role and scope; every refusal is a 401 saying what did not hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chaoshub::auth::jwt::JwtConfig;
use chaoshub::config::HubConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::support::{delay_yaml, Sandbox};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "chaoshub";

/// A signing key of the test identity provider: its PKCS#8 private key and public JWK.
struct Key {
    kid: String,
    alg: Algorithm,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl Key {
    fn es256(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        Key {
            kid: kid.into(),
            alg: Algorithm::ES256,
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    fn ed25519(kid: &str) -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Key {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        let key = match self.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&self.pkcs8),
            _ => EncodingKey::from_ec_der(&self.pkcs8),
        };
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for `sub` with `role` in `namespaces`, for an hour.
fn claims(sub: &str, role: Value, namespaces: Value) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
        "iat": now(), "exp": now() + 3600,
        "chaoshub_role": role, "chaoshub_namespaces": namespaces,
    })
}

/// The test provider's JWKS endpoint: serves whatever `doc` holds, counting requests.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(doc: String) -> JwksServer {
        let doc = Arc::new(Mutex::new(doc));
        let hits = Arc::new(AtomicUsize::new(0));
        let (d, h) = (Arc::clone(&doc), Arc::clone(&hits));
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let (d, h) = (Arc::clone(&d), Arc::clone(&h));
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = d.lock().unwrap().clone();
                    ([("content-type", "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            doc,
            hits,
        }
    }

    fn serve(&self, doc: String) {
        *self.doc.lock().unwrap() = doc;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The `[auth.jwt]` section the test hubs get: the key source is read from a file in the data
/// dir (`jwks-source`: `url <URL>` or `file <PATH>`), since a sandbox's config hook cannot
/// capture values.
fn with_jwt(c: &mut HubConfig) {
    let source = std::fs::read_to_string(c.data_dir.join("jwks-source")).unwrap();
    let (how, what) = source.trim().split_once(' ').unwrap();
    let mut jwt: JwtConfig = serde_json::from_value(json!({
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "roles": {"platform-admins": "admin", "sre": "operator"},
    }))
    .unwrap();
    match how {
        "url" => jwt.jwks_url = Some(what.to_string()),
        _ => jwt.jwks_file = Some(what.into()),
    }
    c.auth.jwt = Some(jwt);
}

/// A sandbox whose hub takes JWTs with keys from `source` (`url …` / `file …`).
async fn hub_with_jwt(source: &str) -> Sandbox {
    let mut s = Sandbox::start(2).await;
    std::fs::write(s.dir.path().join("jwks-source"), source).unwrap();
    s.tweak = with_jwt;
    s.restart().await;
    s
}

/// A request with `Authorization: Bearer <token>`: (status, JSON body).
async fn call(
    s: &Sandbox,
    token: &str,
    method: reqwest::Method,
    path: &str,
    yaml: Option<String>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(token);
    if let Some(body) = yaml {
        req = req.header("content-type", "application/yaml").body(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn in_namespace(name: &str, namespace: &str) -> String {
    delay_yaml(name, Some("30s"), "")
        .replace("namespace: default", &format!("namespace: {namespace}"))
}

#[tokio::test]
async fn a_provider_token_acts_with_the_role_and_scope_its_claims_give() {
    let key = Key::es256("k1");
    let idp = JwksServer::start(jwks(&[&key])).await;
    let s = hub_with_jwt(&format!("url {}", idp.url)).await;
    use reqwest::Method;

    let alice = key.sign(&claims("alice", json!("operator"), json!(["team-a"])));
    let (code, v) = call(&s, &alice, Method::GET, "/api/v1/experiments", None).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = call(
        &s,
        &alice,
        Method::POST,
        "/api/v1/experiments",
        Some(in_namespace("a1", "team-a")),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(v["status"]["createdBy"], "jwt:alice", "{v}");
    let (code, v) = call(
        &s,
        &alice,
        Method::POST,
        "/api/v1/experiments",
        Some(in_namespace("b1", "team-b")),
    )
    .await;
    assert_eq!(code, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("team-b"), "{v}");
    let (code, v) = call(&s, &alice, Method::POST, "/api/v1/halt", None).await;
    assert_eq!(code, 403, "an operator cannot halt: {v}");

    // A viewer reads but cannot submit; a space-separated scope claim works like a list.
    let victor = key.sign(&claims("victor", json!("viewer"), json!("team-a team-c")));
    let (code, _) = call(
        &s,
        &victor,
        Method::GET,
        &format!("/api/v1/experiments/{uid}"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, v) = call(
        &s,
        &victor,
        Method::POST,
        "/api/v1/experiments",
        Some(in_namespace("a2", "team-a")),
    )
    .await;
    assert_eq!(code, 403, "{v}");

    // Provider groups through auth.jwt.roles: the highest role wins.
    let grace = key.sign(&claims(
        "grace",
        json!(["sre", "platform-admins"]),
        json!(["*"]),
    ));
    let (code, v) = call(&s, &grace, Method::GET, "/api/v1/audit?limit=200", None).await;
    assert_eq!(code, 200, "an admin reads the audit log: {v}");
    let items = v["items"].as_array().unwrap();
    let submitted = items
        .iter()
        .find(|e| e["principal"] == "jwt:alice" && e["status"] == 201)
        .expect("alice's submission audited under her subject");
    assert_eq!(submitted["role"], "operator");
    assert!(
        items
            .iter()
            .any(|e| e["principal"] == "jwt:alice" && e["status"] == 403),
        "her refusal audited too"
    );
    assert_eq!(idp.hits(), 1, "the JWKS was fetched once and reused");
}

#[tokio::test]
async fn a_token_that_does_not_hold_is_refused_with_401_saying_why() {
    let key = Key::es256("k1");
    let other = Key::es256("k1"); // same kid, another private key
    let idp = JwksServer::start(jwks(&[&key])).await;
    let s = hub_with_jwt(&format!("url {}", idp.url)).await;
    let good = claims("mallory", json!("admin"), json!(["*"]));
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some("k1".into());
    let hmac_with_public_key = jsonwebtoken::encode(
        &hs256,
        &good,
        &EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
    )
    .unwrap();
    let signed = key.sign(&good);
    let (head, rest) = signed.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let tampered_payload = URL_SAFE_NO_PAD.encode(
        with(json!({"sub": "mallory", "chaoshub_namespaces": ["*"], "chaoshub_role": "admin", "exp": now() + 99_999}))
            .to_string(),
    );
    let alg_none = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let mut unknown_kid = Key::es256("k9");
    unknown_kid.kid = "k9".into();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(json!({"exp": now() - 600}))),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&with(json!({"nbf": now() + 600}))),
            "not valid yet",
        ),
        (
            "wrong audience",
            key.sign(&with(json!({"aud": "someone-else"}))),
            "not issued for \"chaoshub\"",
        ),
        (
            "wrong issuer",
            key.sign(&with(json!({"iss": "https://evil.test/"}))),
            "issuer is not",
        ),
        (
            "no expiry",
            key.sign(&with(json!({"exp": null}))),
            "no \"exp\" claim",
        ),
        (
            "signed by another key",
            other.sign(&good),
            "signature does not verify",
        ),
        (
            "payload swapped",
            format!("{head}.{tampered_payload}.{signature}"),
            "signature does not verify",
        ),
        ("HMAC with the public key", hmac_with_public_key, "not for"),
        ("alg none", alg_none, "JWT header"),
        ("unknown key id", unknown_kid.sign(&good), "key id \"k9\""),
        (
            "no namespaces",
            key.sign(&with(json!({"chaoshub_namespaces": null}))),
            "namespaces",
        ),
        (
            "no role",
            key.sign(&with(json!({"chaoshub_role": "superuser"}))),
            "names no role",
        ),
        (
            "no subject",
            key.sign(&with(json!({"sub": null}))),
            "subject",
        ),
    ];
    for (what, token, says) in cases {
        let (code, v) = call(
            &s,
            &token,
            reqwest::Method::GET,
            "/api/v1/experiments",
            None,
        )
        .await;
        assert_eq!(code, 401, "{what}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{what}: {message:?} should say {says:?}"
        );
        assert!(message.starts_with("JWT refused: "), "{what}: {message}");
    }
    // The good token still works after all that (no lock-out of the key set).
    let (code, _) = call(
        &s,
        &signed,
        reqwest::Method::GET,
        "/api/v1/experiments",
        None,
    )
    .await;
    assert_eq!(code, 200);

    // A hub without [auth.jwt] says so rather than "unknown token".
    let plain = Sandbox::start(0).await;
    let (code, v) = call(
        &plain,
        &signed,
        reqwest::Method::GET,
        "/api/v1/experiments",
        None,
    )
    .await;
    assert_eq!(code, 401);
    assert!(v["message"].as_str().unwrap().contains("[auth.jwt]"), "{v}");
}

#[tokio::test]
async fn a_rotated_provider_key_is_fetched_when_a_token_names_it_and_spraying_is_not() {
    let old = Key::es256("2026-11");
    let new = Key::es256("2026-12");
    let idp = JwksServer::start(jwks(&[&old])).await;
    let s = hub_with_jwt(&format!("url {}", idp.url)).await;
    let get = |token: String| {
        let s = &s;
        async move {
            call(s, &token, reqwest::Method::GET, "/api/v1/experiments", None)
                .await
                .0
        }
    };
    let c = claims("rotor", json!("viewer"), json!(["*"]));
    assert_eq!(get(old.sign(&c)).await, 200);
    assert_eq!(idp.hits(), 1);
    // The provider rotates: tokens signed with the new key arrive before the refresh interval.
    idp.serve(jwks(&[&old, &new]));
    assert_eq!(
        get(new.sign(&c)).await,
        200,
        "the new key was fetched on first sight"
    );
    assert_eq!(idp.hits(), 2);
    assert_eq!(
        get(old.sign(&c)).await,
        200,
        "the old key still holds while listed"
    );
    // Made-up key ids cannot make the hub hammer the provider: one refetch per 30 s.
    for i in 0..5 {
        assert_eq!(get(Key::es256(&format!("forged-{i}")).sign(&c)).await, 401);
    }
    assert_eq!(idp.hits(), 2, "no refetch within 30 s of the last one");
}

#[tokio::test]
async fn keys_from_a_file_are_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    let first = Key::ed25519("ed-1");
    std::fs::write(&file, jwks(&[&first])).unwrap();
    let s = hub_with_jwt(&format!("file {}", file.display())).await;
    let c = claims("eddie", json!("viewer"), json!(["*"]));
    let get = |token: String| {
        let s = &s;
        async move {
            call(s, &token, reqwest::Method::GET, "/api/v1/experiments", None)
                .await
                .0
        }
    };
    assert_eq!(get(first.sign(&c)).await, 200);
    let second = Key::ed25519("ed-2");
    std::fs::write(&file, jwks(&[&second])).unwrap();
    // Make the change visible to the modification time whatever the file system's resolution.
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(
        get(second.sign(&c)).await,
        200,
        "the new file's key is used"
    );
    assert_eq!(
        get(first.sign(&c)).await,
        401,
        "the removed key no longer is"
    );
    // A half-written file keeps the keys in use rather than locking everyone out.
    std::fs::write(&file, "{\"keys\": [").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later + Duration::from_secs(2))
        .unwrap();
    assert_eq!(get(second.sign(&c)).await, 200);
}

#[tokio::test]
async fn a_broken_jwt_config_stops_the_hub_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let start = |tweak: &dyn Fn(&mut JwtConfig)| {
        let mut config = super::support::config(dir.path());
        let mut jwt: JwtConfig =
            serde_json::from_value(json!({"issuer": ISSUER, "audience": AUDIENCE})).unwrap();
        tweak(&mut jwt);
        config.auth.jwt = Some(jwt);
        async move {
            match chaoshub::server::start_with(
                config,
                chaoshub_adapters::AdapterRegistry::builtin(),
            )
            .await
            {
                Ok(hub) => {
                    hub.shutdown().await;
                    String::new()
                }
                Err(e) => format!("{e}"),
            }
        }
    };
    let missing = start(&|j| j.jwks_file = Some("/nonexistent/jwks.json".into())).await;
    assert!(missing.contains("auth.jwt.jwks_file"), "{missing}");
    let neither = start(&|_| {}).await;
    assert!(neither.contains("jwks_file or jwks_url"), "{neither}");
    let bad_role = start(&|j| {
        j.jwks_url = Some("http://127.0.0.1:9/jwks.json".into());
        j.roles.insert("ops".into(), "root".into());
    })
    .await;
    assert!(bad_role.contains("auth.jwt.roles"), "{bad_role}");
}

#[tokio::test]
async fn the_console_login_takes_a_provider_token() {
    let key = Key::es256("k1");
    let idp = JwksServer::start(jwks(&[&key])).await;
    let s = hub_with_jwt(&format!("url {}", idp.url)).await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let alice = key.sign(&claims("alice", json!("operator"), json!(["team-a"])));
    let login = |token: String| {
        browser
            .post(format!("{}/login", s.url))
            .form(&[("token", token.as_str()), ("next", "/experiments")])
            .send()
    };
    let answer = login(alice).await.unwrap();
    assert_eq!(answer.status().as_u16(), 303, "signed in");
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = browser
        .get(format!("{}/experiments", s.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let text = page.text().await.unwrap();
    assert!(text.contains("jwt:alice"), "the page names the caller");
    let expired = key.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() - 600,
        "chaoshub_role": "operator", "chaoshub_namespaces": ["team-a"],
    }));
    let refused = login(expired).await.unwrap();
    assert_ne!(
        refused.status().as_u16(),
        303,
        "an expired token does not sign in"
    );
    let text = refused.text().await.unwrap();
    assert!(text.contains("expired"), "the login page says why: {text}");
}
