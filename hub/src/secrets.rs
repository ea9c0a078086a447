//! Secrets in environment settings are never given back: every answer that carries an
//! environment (`GET /api/v1/environments[/{name}]`, registration and deletion answers, and
//! through them the console and the CLI) shows them as `"***"`, with the annotation
//! [`REDACTED_ANNOTATION`] saying which settings were hidden and where they are kept. The hub
//! keeps the values in its store and hands them only to the environment's adapter.
//!
//! The rule is by name, whatever the value holds (a token, or a path to key material):
//! a setting is secret when one of the words of its name — split at `_`, `-`, `.` and
//! lower-to-upper case changes, compared without case and without a plural `s` — is one of
//! [`SECRET_WORDS`] (`token`, `secret`, `password`, `key`, `credential`, `auth`, …). Objects
//! are walked, so `headers: {Authorization: …, X-Api-Key: …}` hides those two headers and
//! keeps the others; a secret-named object or list is hidden whole.
//!
//! Re-registering with `"***"` as a secret's value (a GET's answer sent back) keeps the value
//! stored for it.

use chaoshub_schema::api::EnvironmentObject;
use chaoshub_schema::environment::EnvironmentSpec;
use serde_json::Value;

/// What a secret setting's value is shown as.
pub const REDACTED: &str = "***";

/// Annotation listing the hidden settings, and where their values are.
pub const REDACTED_ANNOTATION: &str = "chaoshub.dev/redacted-settings";

/// Words that make a setting name secret (docs/security.md, "Secrets").
pub const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "key",
    "apikey",
    "credential",
    "auth",
    "authorization",
    "cookie",
    "bearer",
    "signature",
];

/// Whether a setting (or header, or nested field) of this name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    words(name).iter().any(|w| {
        let w = w.strip_suffix('s').filter(|s| !s.is_empty()).unwrap_or(w);
        SECRET_WORDS.contains(&w)
    })
}

/// `awsSecretAccessKey` → aws, secret, access, key; `X-Api-Key` → x, api, key.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Replaces secret values below `value` (whose path is `path`) and records their paths.
fn redact_value(name: &str, value: &mut Value, path: &str, hidden: &mut Vec<String>) {
    if is_secret_name(name) {
        if !value.is_null() {
            *value = Value::String(REDACTED.into());
            hidden.push(path.to_string());
        }
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                redact_value(key, inner, &format!("{path}.{key}"), hidden);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter_mut().enumerate() {
                redact_value("", inner, &format!("{path}[{i}]"), hidden);
            }
        }
        _ => {}
    }
}

/// The environment as any answer shows it: secret settings replaced by `"***"`, and an
/// annotation naming them when there were any.
pub fn redact_environment(mut object: EnvironmentObject) -> EnvironmentObject {
    let mut hidden = Vec::new();
    for (key, value) in object.spec.settings.iter_mut() {
        redact_value(key, value, &format!("spec.settings.{key}"), &mut hidden);
    }
    if !hidden.is_empty() {
        object.metadata.annotations.insert(
            REDACTED_ANNOTATION.into(),
            format!(
                "{} shown as \"***\": the values are kept in the hub's store (<data-dir>/chaoshub.db) and given only to the {} adapter; re-register with a new value to change one, or with \"***\" to keep it",
                hidden.join(", "),
                object.spec.adapter
            ),
        );
    }
    object
}

/// Before a re-registration is stored: a secret setting sent as `"***"` (an answer sent back)
/// keeps the value stored for it. A `"***"` with nothing stored under it stays as sent.
pub fn keep_stored_secrets(new: &mut EnvironmentSpec, stored: &EnvironmentSpec) {
    for (key, value) in new.settings.iter_mut() {
        if let Some(old) = stored.settings.get(key) {
            restore(key, value, old);
        }
    }
}

fn restore(name: &str, value: &mut Value, stored: &Value) {
    if value.as_str() == Some(REDACTED) && is_secret_name(name) {
        *value = stored.clone();
        return;
    }
    match (value, stored) {
        (Value::Object(map), Value::Object(old)) => {
            for (key, inner) in map.iter_mut() {
                if let Some(o) = old.get(key) {
                    restore(key, inner, o);
                }
            }
        }
        (Value::Array(items), Value::Array(old)) => {
            for (inner, o) in items.iter_mut().zip(old) {
                restore("", inner, o);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_judged_by_their_words() {
        for secret in [
            "token",
            "api_token",
            "tls_key",
            "awsSecretAccessKey",
            "X-Api-Key",
            "Authorization",
            "password",
            "credentials_file",
            "Cookie",
            "keys",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in [
            "timeout_ms",
            "kubeconfig",
            "tls_ca",
            "tls_cert",
            "region",
            "tags",
            "monkey",
            "keyspace",
            "X-Team",
            "allow",
            "s",
        ] {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }

    fn object(settings: Value) -> EnvironmentObject {
        serde_json::from_value(json!({
            "apiVersion": "chaoshub.dev/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": "e"},
            "spec": {"adapter": "webhook", "endpoint": "http://x", "settings": settings},
        }))
        .unwrap()
    }

    #[test]
    fn secrets_are_hidden_and_restored_on_re_registration() {
        let stored = object(json!({
            "token": "t0p",
            "timeout_ms": 500,
            "headers": {"Authorization": "Bearer b", "X-Team": "payments"},
            "credentials": {"user": "u", "pass": "p"},
        }));
        let shown = redact_environment(stored.clone());
        let settings = &shown.spec.settings;
        assert_eq!(settings["token"], "***");
        assert_eq!(settings["timeout_ms"], 500);
        assert_eq!(settings["headers"]["Authorization"], "***");
        assert_eq!(settings["headers"]["X-Team"], "payments");
        assert_eq!(settings["credentials"], "***");
        let note = &shown.metadata.annotations[REDACTED_ANNOTATION];
        assert!(
            note.contains("spec.settings.token")
                && note.contains("spec.settings.headers.Authorization")
                && note.contains("hub's store"),
            "{note}"
        );
        let text = serde_json::to_string(&shown).unwrap();
        for secret in ["t0p", "Bearer b", "\"p\""] {
            assert!(!text.contains(secret), "{text}");
        }
        // Nothing secret: nothing to say.
        let plain = redact_environment(object(json!({"timeout_ms": 5})));
        assert!(plain.metadata.annotations.is_empty());
        // The answer sent back keeps the stored values; a new value replaces one.
        let mut again = shown.spec.clone();
        again.settings.insert("timeout_ms".into(), json!(900));
        keep_stored_secrets(&mut again, &stored.spec);
        assert_eq!(again.settings["token"], "t0p");
        assert_eq!(again.settings["headers"]["Authorization"], "Bearer b");
        assert_eq!(again.settings["credentials"]["pass"], "p");
        let mut changed = shown.spec.clone();
        changed.settings.insert("token".into(), json!("new"));
        keep_stored_secrets(&mut changed, &stored.spec);
        assert_eq!(changed.settings["token"], "new");
    }
}
