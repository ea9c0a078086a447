//! Single sign-on: bearer JWTs signed by an organisation's identity provider (`[auth.jwt]`).
//!
//! A token is accepted when its signature verifies with a key of the provider's JWKS (chosen by
//! the token's `kid`; the algorithm must be one the key is for, and symmetric `oct` keys are
//! never used, so a token cannot pick HMAC with a public key as its secret), its `iss` and `aud`
//! are the configured ones, and `exp` / `nbf` hold within the leeway. Its claims then give the
//! principal: the role (through `roles` for provider values such as group names), the
//! namespaces (required: a token that names none is refused rather than given everything) and
//! optionally the environments. The principal is named `jwt:<subject>` in the audit trail.
//!
//! Keys come from a file (read again when it changes) or a URL (fetched when first needed,
//! every `refresh_seconds`, and when a token names a key id the set does not hold — at most
//! once per 30 s, so made-up key ids cannot make the hub hammer the provider — so a provider's
//! key rotation is picked up without a restart).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chaoshub_schema::auth::Role;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::Principal;
use crate::endpoints::EndpointAllowList;

/// `[auth.jwt]`: bearer JWTs signed by an identity provider, checked against its public keys
/// (`iss`, `aud`, `exp` and `nbf` checked), with claims mapped to a role and a scope
/// (docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` every token must carry, exactly.
    pub issuer: String,
    /// The `aud` every token must carry (one of its values when it is a list).
    pub audience: String,
    /// The provider's public keys as a JWKS document on disk (read at start and when the file
    /// changes). Exactly one of `jwks_file` and `jwks_url`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The provider's JWKS URL (fetched when first needed, every `refresh_seconds`, and when a
    /// token names a key id not seen yet, at most every 30 s); it must be in
    /// `security.allowed_endpoints` when that list is set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim holding the role: a string or a list of strings, each `viewer`, `operator`,
    /// `admin` or a key of `roles`; the highest wins. Default `chaoshub_role`.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Maps the provider's values (e.g. group names) to roles:
    /// `roles = { "sre-oncall" = "operator", "platform-admins" = "admin" }`.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// The claim listing the namespaces in scope (a list, or a space- or comma-separated
    /// string; `*` for all). Required in every token. Default `chaoshub_namespaces`.
    #[serde(default = "default_namespaces_claim")]
    pub namespaces_claim: String,
    /// The claim listing the environments in scope; absent from a token means all. Default
    /// `chaoshub_environments`.
    #[serde(default = "default_environments_claim")]
    pub environments_claim: String,
    /// The claim naming the caller in the audit trail (`jwt:<value>`). Default `sub`.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. Default 30.
    #[serde(default = "default_jwt_leeway")]
    pub leeway_seconds: u64,
    /// How often a `jwks_url` is fetched again, in seconds (10 to 86400). Default 600.
    #[serde(default = "default_jwks_refresh")]
    pub refresh_seconds: u64,
}

fn default_role_claim() -> String {
    "chaoshub_role".into()
}
fn default_namespaces_claim() -> String {
    "chaoshub_namespaces".into()
}
fn default_environments_claim() -> String {
    "chaoshub_environments".into()
}
fn default_subject_claim() -> String {
    "sub".into()
}
fn default_jwt_leeway() -> u64 {
    30
}
fn default_jwks_refresh() -> u64 {
    600
}

impl JwtConfig {
    /// What serde cannot check: one key source, non-empty issuer and audience, known roles.
    pub fn check(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("auth.jwt.issuer: must name the identity provider's issuer".into());
        }
        if self.audience.trim().is_empty() {
            return Err("auth.jwt.audience: must name the audience tokens are issued for".into());
        }
        match (&self.jwks_file, &self.jwks_url) {
            (Some(_), None) | (None, Some(_)) => {}
            (None, None) => {
                return Err(
                    "auth.jwt: set jwks_file or jwks_url (where the provider's public keys are)"
                        .into(),
                )
            }
            (Some(_), Some(_)) => {
                return Err("auth.jwt: set only one of jwks_file and jwks_url".into());
            }
        }
        if let Some(url) = &self.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("auth.jwt.jwks_url: {url:?} is not an http(s) URL"));
            }
        }
        for (value, role) in &self.roles {
            if chaoshub_schema::auth::Role::parse(role).is_none() {
                return Err(format!(
                    "auth.jwt.roles.{value:?}: {role:?} is not one of viewer, operator, admin"
                ));
            }
        }
        for (field, claim) in [
            ("role_claim", &self.role_claim),
            ("namespaces_claim", &self.namespaces_claim),
            ("environments_claim", &self.environments_claim),
            ("subject_claim", &self.subject_claim),
        ] {
            if claim.trim().is_empty() {
                return Err(format!("auth.jwt.{field}: must name a claim"));
            }
        }
        if !(10..=86_400).contains(&self.refresh_seconds) {
            return Err(format!(
                "auth.jwt.refresh_seconds: {} is outside 10..=86400",
                self.refresh_seconds
            ));
        }
        Ok(())
    }
}

/// How soon an unknown key id may make the hub fetch the JWKS URL again.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// The keys in use and when they were read.
#[derive(Default)]
struct KeySet {
    keys: Vec<Jwk>,
    /// When the URL was last fetched, or the file's modification time when last read.
    fetched: Option<Instant>,
    /// When a token naming an unknown key id last made the hub fetch the URL.
    refetched_for_unknown_kid: Option<Instant>,
    file_modified: Option<SystemTime>,
    /// When the file's modification time was last looked at: at most once per
    /// [`FILE_CHECK_EVERY`], so a busy hub does not stat the file for every request.
    file_checked: Option<Instant>,
}

/// How often a `jwks_file` is looked at for changes (a token naming an unknown key id looks at
/// once): a removed key stops working within this.
const FILE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Verifies provider JWTs; one per hub.
pub struct JwtVerifier {
    config: JwtConfig,
    endpoints: Arc<EndpointAllowList>,
    http: reqwest::Client,
    keys: Mutex<KeySet>,
}

impl JwtVerifier {
    /// Checks the configuration and, for a `jwks_file`, reads it now: a file that is missing
    /// or holds no usable key is a start-up error, not a hub that refuses every login later.
    pub fn new(config: JwtConfig, endpoints: Arc<EndpointAllowList>) -> Result<Self, String> {
        config.check()?;
        if let Some(url) = &config.jwks_url {
            endpoints
                .check_url(url)
                .map_err(|why| format!("auth.jwt.jwks_url {url:?}: {why}"))?;
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("auth.jwt: cannot build the HTTP client: {e}"))?;
        let mut keys = KeySet::default();
        if let Some(path) = &config.jwks_file {
            keys = read_file(path)?;
        }
        Ok(Self {
            config,
            endpoints,
            http,
            keys: Mutex::new(keys),
        })
    }

    /// Whether a bearer credential has the shape of a JWT (three base64url parts), so that it
    /// is checked here rather than looked up as a hub token.
    pub fn looks_like_jwt(credential: &str) -> bool {
        let parts: Vec<&str> = credential.split('.').collect();
        parts.len() == 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    /// The principal a token stands for, or why it is refused (for a 401's message).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("not a valid JWT header: {}", describe(e.kind())))?;
        let jwk = self.key_for(header.kid.as_deref()).await?;
        let algorithms = algorithms_of(&jwk)?;
        if !algorithms.contains(&header.alg) {
            return Err(format!(
                "the token is signed with {:?}, which its key {} is not for (it is for {algorithms:?})",
                header.alg,
                key_name(&jwk)
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| format!("the key {} is not usable: {e}", key_name(&jwk)))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = algorithms;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.leeway_seconds;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| self.refusal(e.kind()))?;
        self.principal(&data.claims)
    }

    /// The message of a refused token, naming what did not hold.
    fn refusal(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::ExpiredSignature => "the token has expired (exp)".into(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
            ErrorKind::InvalidIssuer => {
                format!("the token's issuer is not {:?} (iss)", self.config.issuer)
            }
            ErrorKind::InvalidAudience => format!(
                "the token is not issued for {:?} (aud)",
                self.config.audience
            ),
            other => describe(other),
        }
    }

    /// Maps verified claims to a principal.
    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, String> {
        let c = &self.config;
        let subject = match claims.get(&c.subject_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(format!(
                    "the token has no {:?} claim naming its subject",
                    c.subject_claim
                ))
            }
        };
        let values = strings(claims.get(&c.role_claim));
        let role = values
            .iter()
            .filter_map(|v| match c.roles.get(v) {
                Some(mapped) => Role::parse(mapped),
                None => Role::parse(v),
            })
            .max()
            .ok_or_else(|| {
                format!(
                    "the token's {:?} claim ({}) names no role: viewer, operator, admin{}",
                    c.role_claim,
                    if values.is_empty() {
                        "missing".to_string()
                    } else {
                        format!("{values:?}")
                    },
                    if c.roles.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", or one of {:?} (auth.jwt.roles)",
                            c.roles.keys().collect::<Vec<_>>()
                        )
                    }
                )
            })?;
        let namespaces = strings(claims.get(&c.namespaces_claim));
        if namespaces.is_empty() {
            return Err(format!(
                "the token has no {:?} claim: it must list the namespaces in scope (\"*\" for all)",
                c.namespaces_claim
            ));
        }
        let environments = strings(claims.get(&c.environments_claim));
        Ok(Principal {
            name: format!("jwt:{subject}"),
            role,
            namespaces,
            environments,
        })
    }

    /// The key a token names (or the only key when it names none), reading the keys again
    /// when they may have changed.
    async fn key_for(&self, kid: Option<&str>) -> Result<Jwk, String> {
        let mut set = self.keys.lock().await;
        self.refresh(&mut set, false).await?;
        if let Some(jwk) = pick(&set.keys, kid)? {
            return Ok(jwk);
        }
        // A key id not seen yet: the file may have just been rewritten (looking costs a stat).
        if self.config.jwks_file.is_some() {
            self.refresh(&mut set, true).await?;
            if let Some(jwk) = pick(&set.keys, kid)? {
                return Ok(jwk);
            }
        }
        // A key id not seen yet: the provider may have rotated its keys.
        if self.config.jwks_url.is_some()
            && set
                .refetched_for_unknown_kid
                .is_none_or(|at| at.elapsed() >= REFETCH_AFTER)
        {
            set.refetched_for_unknown_kid = Some(Instant::now());
            self.refresh(&mut set, true).await?;
            if let Some(jwk) = pick(&set.keys, kid)? {
                return Ok(jwk);
            }
        }
        let held: Vec<String> = set.keys.iter().map(key_name).collect();
        Err(format!(
            "the token's key id {:?} is not among the identity provider's keys ({})",
            kid.unwrap_or_default(),
            held.join(", ")
        ))
    }

    /// Reads the keys again when due: a changed file, or a URL past its refresh interval (or
    /// at once with `force`).
    async fn refresh(&self, set: &mut KeySet, force: bool) -> Result<(), String> {
        if let Some(path) = &self.config.jwks_file {
            if !force
                && set
                    .file_checked
                    .is_some_and(|at| at.elapsed() < FILE_CHECK_EVERY)
            {
                return Ok(());
            }
            set.file_checked = Some(Instant::now());
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified.is_some() && modified != set.file_modified {
                match read_file(path) {
                    Ok(fresh) => {
                        *set = KeySet {
                            file_checked: set.file_checked,
                            ..fresh
                        }
                    }
                    // Keep the keys in use: a half-written file must not lock everyone out.
                    Err(e) => tracing::warn!(error = %e, "auth.jwt: keeping the keys read before"),
                }
            }
            return Ok(());
        }
        let Some(url) = &self.config.jwks_url else {
            return Ok(());
        };
        let due = force
            || set
                .fetched
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(self.config.refresh_seconds));
        if !due {
            return Ok(());
        }
        match self.fetch(url).await {
            Ok(keys) => {
                set.keys = keys;
                set.fetched = Some(Instant::now());
                Ok(())
            }
            Err(e) if !set.keys.is_empty() => {
                // The provider is unreachable: go on with the keys fetched before, try again later.
                tracing::warn!(error = %e, "auth.jwt: keeping the keys fetched before");
                set.fetched = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                set.fetched = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Vec<Jwk>, String> {
        self.endpoints
            .check_url(url)
            .map_err(|why| format!("the JWKS URL {url:?} is not called: {why}"))?;
        let response =
            self.http.get(url).send().await.map_err(|e| {
                format!("cannot fetch the identity provider's keys from {url}: {e}")
            })?;
        if !response.status().is_success() {
            return Err(format!(
                "the identity provider's keys at {url} answered {}",
                response.status()
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("the JWKS at {url} is larger than 1 MiB"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("cannot read the JWKS at {url}: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS at {url} is larger than 1 MiB"));
        }
        parse_jwks(&body).map_err(|e| format!("the JWKS at {url}: {e}"))
    }
}

fn read_file(path: &std::path::Path) -> Result<KeySet, String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let bytes =
        std::fs::read(path).map_err(|e| format!("auth.jwt.jwks_file {}: {e}", path.display()))?;
    let keys =
        parse_jwks(&bytes).map_err(|e| format!("auth.jwt.jwks_file {}: {e}", path.display()))?;
    Ok(KeySet {
        keys,
        fetched: Some(Instant::now()),
        refetched_for_unknown_kid: None,
        file_modified: modified,
        file_checked: Some(Instant::now()),
    })
}

/// The signing keys of a JWKS document. A key of a type this hub cannot verify with (an
/// encryption key, P-521, a symmetric key) is left out with a log line rather than making the
/// whole set unreadable; a document with no usable key is an error.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<Value>,
    }
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWKS document ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = Vec::new();
    for (i, raw) in doc.keys.into_iter().enumerate() {
        match serde_json::from_value::<Jwk>(raw) {
            Ok(jwk) => match algorithms_of(&jwk) {
                Ok(_) => keys.push(jwk),
                Err(why) => tracing::info!(key = i, %why, "auth.jwt: a JWKS key is left out"),
            },
            Err(e) => tracing::info!(key = i, error = %e, "auth.jwt: a JWKS key is left out"),
        }
    }
    if keys.is_empty() {
        return Err(
            "it holds no signing key this hub can verify with (RSA, EC P-256/P-384, Ed25519)"
                .into(),
        );
    }
    Ok(keys)
}

/// The key a token names, or the only key when it names none.
fn pick(keys: &[Jwk], kid: Option<&str>) -> Result<Option<Jwk>, String> {
    match kid {
        Some(kid) => Ok(keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned()),
        None if keys.len() == 1 => Ok(keys.first().cloned()),
        None => Err(format!(
            "the token names no key id (kid) and the identity provider has {} keys",
            keys.len()
        )),
    }
}

/// The signature algorithms a key may verify: the one its `alg` names, else those of its type.
fn algorithms_of(jwk: &Jwk) -> Result<Vec<Algorithm>, String> {
    if matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    ) {
        return Err(format!("{} is an encryption key", key_name(jwk)));
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref other => return Err(format!("{} is on {other:?}, not supported", key_name(jwk))),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            ref other => return Err(format!("{} is on {other:?}, not supported", key_name(jwk))),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(format!(
                "{} is a symmetric (oct) key: only public keys are used",
                key_name(jwk)
            ))
        }
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type),
        Some(named) => {
            let named = serde_json::to_value(named)
                .ok()
                .and_then(|v| serde_json::from_value::<Algorithm>(v).ok())
                .filter(|a| by_type.contains(a))
                .ok_or_else(|| {
                    format!(
                        "{} names algorithm {named:?}, not a signature algorithm of its key type",
                        key_name(jwk)
                    )
                })?;
            Ok(vec![named])
        }
    }
}

fn key_name(jwk: &Jwk) -> String {
    match &jwk.common.key_id {
        Some(kid) => format!("{kid:?}"),
        None => "(no kid)".into(),
    }
}

/// A claim as a list of strings: a list, or one string split on spaces and commas (the OAuth
/// `scope` style).
fn strings(value: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match value {
        Some(Value::String(s)) => s
            .split([' ', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    out.dedup();
    out
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "the token's algorithm is not one its key is for".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c:?} claim"),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "not a well-formed JWT".into()
        }
        ErrorKind::Json(e) => format!("the token's JSON is not valid: {e}"),
        ErrorKind::InvalidAlgorithmName => "the token names an unknown algorithm".into(),
        other => format!("the token is not valid: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_parts_look_like_a_jwt() {
        assert!(JwtVerifier::looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!JwtVerifier::looks_like_jwt("chub_0123456789abcdef"));
        assert!(!JwtVerifier::looks_like_jwt("a.b"));
        assert!(!JwtVerifier::looks_like_jwt("a..c"));
        assert!(!JwtVerifier::looks_like_jwt("a.b.c=d"));
    }

    #[test]
    fn claims_read_as_lists_of_strings() {
        assert_eq!(strings(Some(&serde_json::json!("a b,c"))), ["a", "b", "c"]);
        assert_eq!(
            strings(Some(&serde_json::json!(["x", 1, " y "]))),
            ["x", "y"]
        );
        assert!(strings(Some(&serde_json::json!(7))).is_empty());
        assert!(strings(None).is_empty());
    }

    #[test]
    fn a_jwks_keeps_only_signing_keys_it_can_use() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].common.key_id.as_deref(), Some("ec"));
        assert_eq!(algorithms_of(&keys[0]).unwrap(), [Algorithm::ES256]);
        let none = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(parse_jwks(none.to_string().as_bytes())
            .unwrap_err()
            .contains("no signing key"));
        assert!(parse_jwks(b"[]").unwrap_err().contains("not a JWKS"));
    }
}
