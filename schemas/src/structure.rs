//! Structural checks of a JSON value against a type's JSON Schema, collecting every error.
//!
//! serde stops at the first problem and its messages lack paths; this walker reads the schema
//! schemars generates for the type (draft 2020-12: `$ref`/`$defs`, `type` arrays with `null`,
//! `anyOf`/`oneOf`, `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`,
//! numeric bounds) and reports every unknown field, wrong type, missing field and disallowed
//! value at once, each with its dotted path. Schemas are generated once per type and cached.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value};

use crate::error::{join_path, ValidationErrors};

/// A generated root schema: the schema itself plus its `$defs`.
struct CachedSchema {
    root: Value,
    defs: Map<String, Value>,
}

static CACHE: LazyLock<Mutex<HashMap<String, Arc<CachedSchema>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn cached(key: String, build: impl FnOnce() -> Value) -> Arc<CachedSchema> {
    if let Some(found) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return found.clone();
    }
    let mut root = build();
    let defs = match root.as_object_mut().and_then(|o| o.remove("$defs")) {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    let schema = Arc::new(CachedSchema { root, defs });
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, schema.clone());
    schema
}

/// Checks `value` against the JSON Schema of `T`, pushing every problem under `path`.
pub fn check_value<T: schemars::JsonSchema>(
    value: &Value,
    path: &str,
    errors: &mut ValidationErrors,
) {
    let schema = cached(format!("type:{}", T::schema_id()), || {
        schemars::SchemaGenerator::default()
            .into_root_schema_for::<T>()
            .to_value()
    });
    Walker { defs: &schema.defs }.walk(&schema.root, value, path, errors, 0);
}

/// Checks `value` against a root schema (with its `$defs`) built once per `key` and cached.
pub fn check_against(
    key: &str,
    build: impl FnOnce() -> Value,
    value: &Value,
    path: &str,
    errors: &mut ValidationErrors,
) {
    let schema = cached(key.to_string(), build);
    Walker { defs: &schema.defs }.walk(&schema.root, value, path, errors, 0);
}

/// The JSON type name of a value, as error messages say it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match (expected, value) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn article(type_name: &str) -> &'static str {
    match type_name {
        "integer" | "object" | "array" => "an",
        _ => "a",
    }
}

/// Renders a JSON value for a message: strings bare, everything else as JSON.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest allowed name, when it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let threshold = (name.chars().count() / 3).clamp(1, 3);
    allowed
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(d, _)| *d <= threshold)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Recursion guard: schemas are recursive (Schedule ↔ Workflow), values are finite, but a
/// pathological document must not blow the stack.
const MAX_DEPTH: usize = 64;

struct Walker<'a> {
    defs: &'a Map<String, Value>,
}

impl<'a> Walker<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let mut current = schema;
        for _ in 0..16 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap_or(reference);
                    match self.defs.get(name) {
                        Some(target) => current = target,
                        None => return current,
                    }
                }
                None => return current,
            }
        }
        current
    }

    /// The JSON types a schema accepts, if it says (following `$ref`, `anyOf`, `oneOf`).
    fn accepted_types(&self, schema: &'a Value, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        match schema.get("type") {
            Some(Value::String(t)) => out.push(t.clone()),
            Some(Value::Array(ts)) => {
                out.extend(ts.iter().filter_map(Value::as_str).map(String::from))
            }
            _ => {}
        }
        if let Some(c) = schema.get("const") {
            out.push(type_name(c).to_string());
        }
        if let Some(Value::Array(values)) = schema.get("enum") {
            out.extend(values.iter().map(|v| type_name(v).to_string()));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                for branch in branches {
                    self.accepted_types(branch, out);
                }
            }
        }
    }

    /// Every value allowed, when the schema is a pure enumeration (enum / const / oneOf of
    /// consts, possibly with null for an Option).
    fn enumeration(&self, schema: &'a Value) -> Option<Vec<Value>> {
        let schema = self.resolve(schema);
        if let Some(Value::Array(values)) = schema.get("enum") {
            return Some(values.clone());
        }
        if let Some(c) = schema.get("const") {
            return Some(vec![c.clone()]);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                let mut all = Vec::new();
                for branch in branches {
                    let branch = self.resolve(branch);
                    if branch.get("type").and_then(Value::as_str) == Some("null")
                        && branch.get("enum").is_none()
                    {
                        all.push(Value::Null);
                        continue;
                    }
                    all.extend(self.enumeration(branch)?);
                }
                return Some(all);
            }
        }
        None
    }

    fn walk(
        &self,
        schema: &'a Value,
        value: &Value,
        path: &str,
        errors: &mut ValidationErrors,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            errors.push(path.to_string(), "is nested too deeply");
            return;
        }
        let schema = self.resolve(schema);
        let obj = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(path.to_string(), "is not allowed here");
                return;
            }
            Value::Object(obj) => obj,
            _ => return,
        };
        if let Some(Value::Array(all)) = obj.get("allOf") {
            for sub in all {
                self.walk(sub, value, path, errors, depth + 1);
            }
        }
        // A pure enumeration (unit enum, with or without Option's null): one message listing
        // the allowed values.
        if obj.contains_key("enum")
            || obj.contains_key("const")
            || obj.contains_key("anyOf")
            || obj.contains_key("oneOf")
        {
            if let Some(allowed) = self.enumeration(schema) {
                if !allowed.contains(value) {
                    let shown: Vec<String> =
                        allowed.iter().filter(|v| !v.is_null()).map(show).collect();
                    let got = match value {
                        Value::String(s) => format!("{s:?}"),
                        other => format!("{} {}", type_name(other), other),
                    };
                    errors.push(
                        path.to_string(),
                        format!("must be one of: {}; got {got}", shown.join(", ")),
                    );
                }
                return;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = obj.get(key) {
                self.walk_branches(branches, value, path, errors, depth);
                return;
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
            let expected: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
            let expected = if expected.is_empty() {
                types.clone()
            } else {
                expected
            };
            let first = expected[0];
            let rest = if expected.len() > 1 {
                format!(" (or {})", expected[1..].join(", "))
            } else {
                String::new()
            };
            errors.push(
                path.to_string(),
                format!(
                    "must be {} {first}{rest}, got {}",
                    article(first),
                    type_name(value)
                ),
            );
            return;
        }
        match value {
            Value::Object(map) => self.walk_object(obj, map, path, errors, depth),
            Value::Array(items) => self.walk_array(obj, items, path, errors, depth),
            Value::Number(n) => Self::check_number(obj, n, path, errors),
            Value::String(s) => Self::check_string(obj, s, path, errors),
            _ => {}
        }
    }

    fn walk_branches(
        &self,
        branches: &'a [Value],
        value: &Value,
        path: &str,
        errors: &mut ValidationErrors,
        depth: usize,
    ) {
        // The branches whose type fits the value; the first with no error wins, otherwise the
        // fitting branch with the fewest errors speaks for all of them.
        let mut best: Option<ValidationErrors> = None;
        let mut types = Vec::new();
        for branch in branches {
            let mut branch_types = Vec::new();
            self.accepted_types(branch, &mut branch_types);
            let fits =
                branch_types.is_empty() || branch_types.iter().any(|t| type_matches(t, value));
            types.extend(branch_types);
            if !fits {
                continue;
            }
            let mut trial = ValidationErrors::new();
            self.walk(branch, value, path, &mut trial, depth + 1);
            if trial.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| trial.len() < b.len()) {
                best = Some(trial);
            }
        }
        match best {
            Some(found) => errors.extend(found),
            None => {
                types.retain(|t| t != "null");
                types.dedup();
                let expected = if types.is_empty() {
                    "another type".to_string()
                } else {
                    types.join(" or ")
                };
                errors.push(
                    path.to_string(),
                    format!("must be {expected}, got {}", type_name(value)),
                );
            }
        }
    }

    fn walk_object(
        &self,
        schema: &'a Map<String, Value>,
        map: &Map<String, Value>,
        path: &str,
        errors: &mut ValidationErrors,
        depth: usize,
    ) {
        let empty = Map::new();
        let properties = match schema.get("properties") {
            Some(Value::Object(p)) => p,
            _ => &empty,
        };
        for (key, child) in map {
            let child_path = join_path(path, key);
            if let Some(sub) = properties.get(key) {
                self.walk(sub, child, &child_path, errors, depth + 1);
                continue;
            }
            match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let names = properties.keys().map(String::as_str);
                    let message = match closest(key, names) {
                        Some(suggestion) => format!("unknown field (did you mean {suggestion}?)"),
                        None if properties.is_empty() => {
                            "unknown field (no fields are allowed here)".to_string()
                        }
                        None => format!(
                            "unknown field (allowed: {})",
                            properties
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    errors.push(child_path, message);
                }
                Some(sub @ Value::Object(_)) => {
                    self.walk(sub, child, &child_path, errors, depth + 1)
                }
                _ => {}
            }
        }
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    errors.push(join_path(path, name), "is required");
                }
            }
        }
    }

    fn walk_array(
        &self,
        schema: &'a Map<String, Value>,
        items: &[Value],
        path: &str,
        errors: &mut ValidationErrors,
        depth: usize,
    ) {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                errors.push(path.to_string(), format!("must have at least {min} items"));
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if (items.len() as u64) > max {
                errors.push(path.to_string(), format!("must have at most {max} items"));
            }
        }
        // Tuples (`prefixItems`) check position by position, then `items` for the rest.
        let prefix = match schema.get("prefixItems") {
            Some(Value::Array(p)) => p.as_slice(),
            _ => &[],
        };
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if let Some(sub) = prefix.get(i) {
                self.walk(sub, item, &item_path, errors, depth + 1);
            } else if let Some(sub) = schema.get("items") {
                self.walk(sub, item, &item_path, errors, depth + 1);
            }
        }
    }

    fn check_number(
        schema: &Map<String, Value>,
        n: &serde_json::Number,
        path: &str,
        errors: &mut ValidationErrors,
    ) {
        let Some(v) = n.as_f64() else { return };
        let (format_min, format_max) = match schema.get("format").and_then(Value::as_str) {
            Some("int8") => (Some(i8::MIN as f64), Some(i8::MAX as f64)),
            Some("uint8") => (Some(0.0), Some(u8::MAX as f64)),
            Some("int16") => (Some(i16::MIN as f64), Some(i16::MAX as f64)),
            Some("uint16") => (Some(0.0), Some(u16::MAX as f64)),
            Some("int32") => (Some(i32::MIN as f64), Some(i32::MAX as f64)),
            Some("uint32") => (Some(0.0), Some(u32::MAX as f64)),
            Some("uint64" | "uint") => (Some(0.0), None),
            _ => (None, None),
        };
        let min = schema.get("minimum").and_then(Value::as_f64).or(format_min);
        let max = schema.get("maximum").and_then(Value::as_f64).or(format_max);
        match (min, max) {
            (Some(lo), Some(hi)) if v < lo || v > hi => errors.push(
                path.to_string(),
                format!("must be from {lo} to {hi}; got {n}"),
            ),
            (Some(lo), None) if v < lo => {
                errors.push(path.to_string(), format!("must be at least {lo}; got {n}"))
            }
            (None, Some(hi)) if v > hi => {
                errors.push(path.to_string(), format!("must be at most {hi}; got {n}"))
            }
            _ => {}
        }
    }

    fn check_string(
        schema: &Map<String, Value>,
        s: &str,
        path: &str,
        errors: &mut ValidationErrors,
    ) {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                errors.push(
                    path.to_string(),
                    format!("must be at least {min} characters"),
                );
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                errors.push(
                    path.to_string(),
                    format!("must be at most {max} characters"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(closest("latencyy", ["latency", "jitter"]), Some("latency"));
        assert_eq!(closest("zzz", ["latency", "jitter"]), None);
    }

    #[test]
    fn reports_every_problem_with_paths() {
        let value = serde_json::json!({
            "action": "bogus",
            "mode": "one",
            "selector": {"pods": {"default": ["a", 3]}},
            "duration": 30,
            "delay": {"latencyy": "10ms"},
        });
        let mut errors = ValidationErrors::new();
        crate::manifest::check_spec(crate::Kind::NetworkChaos, &value, "spec", &mut errors);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "spec.action",
            "spec.selector.pods.default[1]",
            "spec.duration",
            "spec.delay.latencyy",
            "spec.delay.latency",
        ] {
            assert!(
                paths.contains(&expected),
                "missing {expected} in {errors:?}"
            );
        }
        let unknown = errors
            .iter()
            .find(|e| e.path == "spec.delay.latencyy")
            .unwrap();
        assert_eq!(unknown.message, "unknown field (did you mean latency?)");
        let duration = errors.iter().find(|e| e.path == "spec.duration").unwrap();
        assert_eq!(duration.message, "must be a string, got number");
    }
}
