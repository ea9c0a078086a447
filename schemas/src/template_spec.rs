//! The `Template` kind's spec (`chaoshub.dev/v1alpha1`): one catalog entry's typed parameters,
//! their checking and the placeholder substitution, and the REST bodies of `/api/v1/templates`
//! and `/api/v1/catalogs`. Turning a substituted experiment into a manifest needs the manifest
//! parser, which sits above every kind's spec, so that step lives in [`crate::template`] (and the
//! check that a template's sample rendering is a valid fault manifest in [`crate::parse`]).
//!
//! A template's `spec.experiment` is an experiment manifest whose string values may hold
//! placeholders:
//!
//! - `${name}` as the *whole* string is replaced by the parameter's value in its own JSON type
//!   (an `integer` parameter gives a number, a `boolean` a boolean, a `percent` a number);
//! - `${name:string}` as the whole string gives the value's text (Chaos Mesh writes
//!   percentages and `value` as strings: `loss: "${loss:string}"`);
//! - a placeholder inside a longer string is replaced by the value's text (`"${size}M"`);
//! - `$${` writes a literal `${`.
//!
//! Rendering is strict: an unknown parameter, a missing required one, a value of the wrong type
//! or out of range is an error naming `parameters.<name>`, and the rendered manifest must pass
//! the same validation as a submitted one. An optional parameter without a default that is not
//! given removes the field (or list item) its whole-string placeholder stands for.
//!
//! Pure: no I/O; the hub fetches and caches, this module only checks and renders.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Number, Value};

use crate::duration::parse_duration;
use crate::error::{join_path, ValidationErrors};
use crate::structure::{closest, type_name};
use crate::validate::Validate;

/// The label every rendered experiment carries: the (qualified) template name.
pub const TEMPLATE_LABEL: &str = "chaoshub.dev/template";

/// The `kind` of a remote catalog index document.
pub const CATALOG_INDEX_KIND: &str = "CatalogIndex";

/// The type of a template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    String,
    Integer,
    Number,
    Boolean,
    /// A Chaos Mesh duration (`30s`, `100ms`, `1h30m`); `min`/`max` are durations too.
    Duration,
    /// 0 to 100; given as a number, `"25"` or `"25%"`; rendered as a number (use
    /// `${name:string}` for Chaos Mesh's string percentages).
    Percent,
    /// One of the strings in `enum`.
    Enum,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Duration => "duration",
            Self::Percent => "percent",
            Self::Enum => "enum",
        }
    }

    fn has_range(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Number | Self::Duration | Self::Percent
        )
    }
}

/// One typed parameter of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateParameter {
    /// Letters, digits and `_`, starting with a letter; referenced as `${name}`.
    pub name: String,
    #[serde(rename = "type")]
    pub param_type: ParameterType,
    /// What the parameter controls, shown next to its form field.
    pub description: String,
    /// Used when the parameter is not given. Must itself be a valid value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Smallest value (a number, or a duration for `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    /// Largest value (a number, or a duration for `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    /// The allowed values of an `enum` parameter.
    #[serde(rename = "enum", default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// A required parameter without a default must be given. Default false.
    #[serde(default)]
    pub required: bool,
}

/// Someone to ask about a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Maintainer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A link to further reading (a runbook, the fault's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateLink {
    pub title: String,
    pub url: String,
}

/// `spec` of a `Template`: what the catalog shows and the experiment it renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSpec {
    /// One line for listings.
    pub title: String,
    /// The hypothesis the experiment tests and what to watch while it runs.
    pub description: String,
    /// The catalog folder (`catalog/<category>/`): `network`, `stress`, `pod`…
    pub category: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<TemplateLink>,
    /// Adapter types of the environments this template suits (`native`, `docker`, `ssm`,
    /// `toxiproxy`, `envoy`, `kubernetes`, `webhook`).
    pub adapters: Vec<String>,
    /// Typed parameters, in the order a form shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TemplateParameter>,
    /// The experiment manifest with `${parameter}` placeholders.
    pub experiment: Value,
}

/// One piece of a string value: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Param { name: String, as_string: bool },
}

/// Splits a string into text and placeholders; `Err` says what is malformed.
fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix("${") {
            let Some(end) = inner.find('}') else {
                return Err(format!(
                    "unterminated placeholder in {text:?} (write ${{name}}, or $${{ for a literal ${{)"
                ));
            };
            let body = &inner[..end];
            let (name, modifier) = match body.split_once(':') {
                Some((n, m)) => (n.trim(), Some(m.trim())),
                None => (body.trim(), None),
            };
            let as_string = match modifier {
                None => false,
                Some("string") => true,
                Some(other) => {
                    return Err(format!(
                        "unknown placeholder modifier {other:?} in ${{{body}}} (the only one is :string)"
                    ))
                }
            };
            if !valid_parameter_name(name) {
                return Err(format!(
                    "${{{body}}} does not name a parameter (letters, digits and _, starting with a letter)"
                ));
            }
            if !literal.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut literal)));
            }
            out.push(Piece::Param {
                name: name.to_string(),
                as_string,
            });
            rest = &inner[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Piece::Text(literal));
    }
    Ok(out)
}

fn valid_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// The text form of a resolved value (numbers without a trailing `.0`).
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn number_from_f64(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => format!("{} {other}", type_name(other)),
    }
}

impl TemplateParameter {
    /// Checks a value against the type, range and allowed values; the normalized value on
    /// success, the problem (without the path) otherwise.
    pub fn coerce(&self, value: &Value) -> Result<Value, String> {
        let normalized = match self.param_type {
            ParameterType::String => match value {
                Value::String(s) => Value::String(s.clone()),
                other => return Err(format!("must be a string, got {}", shown(other))),
            },
            ParameterType::Integer => {
                let parsed = match value {
                    Value::Number(n) => n
                        .as_i64()
                        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                match parsed {
                    Some(i) => Value::Number(Number::from(i)),
                    None => return Err(format!("must be a whole number, got {}", shown(value))),
                }
            }
            ParameterType::Number => {
                let parsed = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match parsed.filter(|f| f.is_finite()) {
                    Some(f) => number_from_f64(f),
                    None => return Err(format!("must be a number, got {}", shown(value))),
                }
            }
            ParameterType::Percent => {
                let parsed = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
                    _ => None,
                };
                match parsed.filter(|f| f.is_finite()) {
                    Some(f) if (0.0..=100.0).contains(&f) => number_from_f64(f),
                    Some(f) => return Err(format!("must be a percentage from 0 to 100, got {f}")),
                    None => {
                        return Err(format!(
                            "must be a percentage from 0 to 100 (25, \"25\" or \"25%\"), got {}",
                            shown(value)
                        ))
                    }
                }
            }
            ParameterType::Boolean => match value {
                Value::Bool(b) => Value::Bool(*b),
                Value::String(s) if s == "true" => Value::Bool(true),
                Value::String(s) if s == "false" => Value::Bool(false),
                other => return Err(format!("must be true or false, got {}", shown(other))),
            },
            ParameterType::Duration => match value {
                Value::String(s) => {
                    parse_duration(s)?;
                    Value::String(s.trim().to_string())
                }
                other => {
                    return Err(format!(
                        "must be a duration such as 30s, 500ms or 1h30m, got {}",
                        shown(other)
                    ))
                }
            },
            ParameterType::Enum => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => value_text(value),
                    other => {
                        return Err(format!(
                            "must be one of: {}; got {}",
                            self.values.join(", "),
                            shown(other)
                        ))
                    }
                };
                if !self.values.contains(&text) {
                    return Err(format!(
                        "must be one of: {}; got {text:?}",
                        self.values.join(", ")
                    ));
                }
                Value::String(text)
            }
        };
        self.check_range(&normalized)?;
        Ok(normalized)
    }

    /// A bound as a comparable number (seconds for durations).
    fn bound(&self, bound: &Value) -> Result<f64, String> {
        match self.param_type {
            ParameterType::Duration => match bound {
                Value::String(s) => parse_duration(s).map(|d| d.as_secs_f64()),
                other => Err(format!(
                    "must be a duration such as 1s, got {}",
                    shown(other)
                )),
            },
            _ => bound
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("must be a number, got {}", shown(bound))),
        }
    }

    fn check_range(&self, value: &Value) -> Result<(), String> {
        if !self.param_type.has_range() {
            return Ok(());
        }
        let actual = match self.param_type {
            ParameterType::Duration => value
                .as_str()
                .and_then(|s| parse_duration(s).ok())
                .map(|d| d.as_secs_f64()),
            _ => value.as_f64(),
        };
        let Some(actual) = actual else {
            return Ok(());
        };
        if let Some(min) = &self.min {
            if let Ok(m) = self.bound(min) {
                if actual < m {
                    return Err(format!(
                        "must be at least {}, got {}",
                        value_text(min),
                        value_text(value)
                    ));
                }
            }
        }
        if let Some(max) = &self.max {
            if let Ok(m) = self.bound(max) {
                if actual > m {
                    return Err(format!(
                        "must be at most {}, got {}",
                        value_text(max),
                        value_text(value)
                    ));
                }
            }
        }
        Ok(())
    }

    /// A value that satisfies the declaration, used to check a template whose required
    /// parameters have no default: the default, else the first enum value, else the minimum,
    /// else a plain value of the type.
    fn sample(&self) -> Value {
        if let Some(d) = &self.default {
            return d.clone();
        }
        if let Some(first) = self.values.first() {
            return Value::String(first.clone());
        }
        if let Some(min) = &self.min {
            return min.clone();
        }
        match self.param_type {
            ParameterType::String => Value::String("sample".into()),
            ParameterType::Integer => json!(1),
            ParameterType::Number => json!(1.0),
            ParameterType::Boolean => json!(true),
            ParameterType::Duration => json!("1s"),
            ParameterType::Percent => json!(50),
            ParameterType::Enum => json!(""),
        }
    }

    /// The JSON Schema of this parameter's form field.
    fn schema(&self) -> Value {
        let mut s = Map::new();
        let ty = match self.param_type {
            ParameterType::String | ParameterType::Duration | ParameterType::Enum => "string",
            ParameterType::Integer => "integer",
            ParameterType::Number | ParameterType::Percent => "number",
            ParameterType::Boolean => "boolean",
        };
        s.insert("type".into(), json!(ty));
        s.insert("title".into(), json!(self.name));
        s.insert("description".into(), json!(self.description));
        s.insert("x-chaoshub-type".into(), json!(self.param_type.as_str()));
        match self.param_type {
            ParameterType::Enum => {
                s.insert("enum".into(), json!(self.values));
            }
            ParameterType::Duration => {
                s.insert(
                    "pattern".into(),
                    json!(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"),
                );
                if let Some(min) = &self.min {
                    s.insert("x-chaoshub-minimum".into(), min.clone());
                }
                if let Some(max) = &self.max {
                    s.insert("x-chaoshub-maximum".into(), max.clone());
                }
            }
            ParameterType::Percent => {
                s.insert("minimum".into(), self.min.clone().unwrap_or(json!(0)));
                s.insert("maximum".into(), self.max.clone().unwrap_or(json!(100)));
            }
            ParameterType::Integer | ParameterType::Number => {
                if let Some(min) = &self.min {
                    s.insert("minimum".into(), min.clone());
                }
                if let Some(max) = &self.max {
                    s.insert("maximum".into(), max.clone());
                }
            }
            _ => {}
        }
        if let Some(d) = &self.default {
            s.insert(
                "default".into(),
                self.coerce(d).unwrap_or_else(|_| d.clone()),
            );
        }
        Value::Object(s)
    }
}

impl TemplateSpec {
    pub fn parameter(&self, name: &str) -> Option<&TemplateParameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// Checks `supplied` against the declarations and fills in defaults. Every problem is
    /// reported at `parameters.<name>`.
    pub fn resolve_parameters(
        &self,
        supplied: &Map<String, Value>,
    ) -> Result<BTreeMap<String, Value>, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let declared: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
        for key in supplied.keys() {
            if self.parameter(key).is_none() {
                let hint = match closest(key, declared.iter().copied()) {
                    Some(near) => format!("; did you mean {near:?}?"),
                    None => String::new(),
                };
                let list = if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                };
                errors.push(
                    join_path("parameters", key),
                    format!("unknown parameter (this template declares: {list}){hint}"),
                );
            }
        }
        let mut values = BTreeMap::new();
        for p in &self.parameters {
            let path = join_path("parameters", &p.name);
            match supplied.get(&p.name).filter(|v| !v.is_null()) {
                Some(v) => match p.coerce(v) {
                    Ok(v) => {
                        values.insert(p.name.clone(), v);
                    }
                    Err(message) => errors.push(path, message),
                },
                None => match &p.default {
                    Some(d) => match p.coerce(d) {
                        Ok(v) => {
                            values.insert(p.name.clone(), v);
                        }
                        Err(message) => errors.push(path, format!("the default {message}")),
                    },
                    None if p.required => errors.push(
                        path,
                        format!(
                            "is required ({} {}: {})",
                            article(p.param_type),
                            p.param_type.as_str(),
                            p.description
                        ),
                    ),
                    None => {}
                },
            }
        }
        errors.into_result().map(|()| values)
    }

    /// Replaces placeholders in `experiment` with resolved values.
    pub fn substitute(&self, values: &BTreeMap<String, Value>) -> Result<Value, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let out = substitute_value(&self.experiment, values, "experiment", &mut errors);
        errors
            .into_result()
            .map(|()| out.unwrap_or(Value::Object(Map::new())))
    }

    /// Every parameter name the experiment's placeholders refer to, with the first path where
    /// each occurs; malformed placeholders are pushed to `errors`.
    fn placeholders(&self, errors: &mut ValidationErrors) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        collect_placeholders(&self.experiment, "spec.experiment", &mut found, errors);
        found
    }

    /// The JSON Schema of the parameters object of template `name`.
    pub fn parameters_schema(&self, name: &str) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for p in &self.parameters {
            properties.insert(p.name.clone(), p.schema());
            if p.required && p.default.is_none() {
                required.push(p.name.clone());
            }
        }
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("parameters of template {name}"),
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// The experiment with every parameter's sample value substituted (its default where it
    /// has one): the input of [`TemplateSpec::render_samples`] and of the sample check.
    pub fn sample_experiment(&self) -> Result<Value, ValidationErrors> {
        let mut supplied = Map::new();
        for p in &self.parameters {
            if p.default.is_none() && p.required {
                supplied.insert(p.name.clone(), p.sample());
            }
        }
        let values = self.resolve_parameters(&supplied)?;
        self.substitute(&values)
    }

    /// Whether the sample rendering is worth checking: the experiment is an object and the
    /// parameters and placeholders are consistent (otherwise those errors say it all).
    pub fn ready_for_sample(&self) -> bool {
        if !self.experiment.is_object() {
            return false;
        }
        let mut errors = ValidationErrors::default();
        self.validate_parameters_and_placeholders("spec", &mut errors);
        errors.is_empty()
    }
}

fn article(t: ParameterType) -> &'static str {
    match t {
        ParameterType::Integer | ParameterType::Enum => "an",
        _ => "a",
    }
}

fn collect_placeholders(
    value: &Value,
    path: &str,
    found: &mut BTreeMap<String, String>,
    errors: &mut ValidationErrors,
) {
    match value {
        Value::String(s) => match pieces(s) {
            Ok(parts) => {
                for part in parts {
                    if let Piece::Param { name, .. } = part {
                        found.entry(name).or_insert_with(|| path.to_string());
                    }
                }
            }
            Err(message) => errors.push(path.to_string(), message),
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_placeholders(item, &format!("{path}[{i}]"), found, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                collect_placeholders(v, &join_path(path, k), found, errors);
            }
        }
        _ => {}
    }
}

/// Substitutes one value; `None` means "leave this field out" (an optional parameter without
/// a value standing alone in the string).
fn substitute_value(
    value: &Value,
    values: &BTreeMap<String, Value>,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<Value> {
    match value {
        Value::String(s) => {
            let parts = match pieces(s) {
                Ok(p) => p,
                Err(message) => {
                    errors.push(path.to_string(), message);
                    return Some(Value::Null);
                }
            };
            if let [Piece::Param { name, as_string }] = parts.as_slice() {
                return match values.get(name) {
                    Some(v) if *as_string => Some(Value::String(value_text(v))),
                    Some(v) => Some(v.clone()),
                    None => None,
                };
            }
            let mut text = String::new();
            for part in parts {
                match part {
                    Piece::Text(t) => text.push_str(&t),
                    Piece::Param { name, .. } => match values.get(&name) {
                        Some(v) => text.push_str(&value_text(v)),
                        None => errors.push(
                            join_path("parameters", &name),
                            format!(
                                "has no value but {path} needs it inside a longer string; give it a value"
                            ),
                        ),
                    },
                }
            }
            Some(Value::String(text))
        }
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    substitute_value(item, values, &format!("{path}[{i}]"), errors)
                })
                .collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| {
                    substitute_value(v, values, &join_path(path, k), errors).map(|v| (k.clone(), v))
                })
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Lowercase letters, digits and `-`: categories, tags and adapter types.
fn check_word(text: &str, path: &str, what: &str, errors: &mut ValidationErrors) {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && text.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        errors.push(
            path.to_string(),
            format!("{text:?} is not a valid {what}: use lowercase letters, digits and '-'"),
        );
    }
}

fn check_url(url: &str, path: &str, errors: &mut ValidationErrors) {
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        errors.push(
            path.to_string(),
            format!("{url:?} is not an http:// or https:// URL"),
        );
    }
}

impl Validate for TemplateSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if self.title.trim().is_empty() {
            errors.push(join_path(path, "title"), "must not be empty");
        }
        if self.description.trim().is_empty() {
            errors.push(
                join_path(path, "description"),
                "must not be empty: say what hypothesis the template tests and what to watch",
            );
        }
        check_word(
            &self.category,
            &join_path(path, "category"),
            "category",
            errors,
        );
        let mut seen = BTreeSet::new();
        for (i, tag) in self.tags.iter().enumerate() {
            let p = format!("{}[{i}]", join_path(path, "tags"));
            check_word(tag, &p, "tag", errors);
            if !seen.insert(tag) {
                errors.push(p, format!("tag {tag:?} is listed twice"));
            }
        }
        if self.adapters.is_empty() {
            errors.push(
                join_path(path, "adapters"),
                "list at least one adapter type this template suits (native, docker, ssm, toxiproxy, envoy, kubernetes, webhook)",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, adapter) in self.adapters.iter().enumerate() {
            let p = format!("{}[{i}]", join_path(path, "adapters"));
            check_word(adapter, &p, "adapter type", errors);
            if !seen.insert(adapter) {
                errors.push(p, format!("adapter {adapter:?} is listed twice"));
            }
        }
        for (i, m) in self.maintainers.iter().enumerate() {
            let p = format!("{}[{i}]", join_path(path, "maintainers"));
            if m.name.trim().is_empty() {
                errors.push(join_path(&p, "name"), "must not be empty");
            }
            if let Some(url) = &m.url {
                check_url(url, &join_path(&p, "url"), errors);
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            let p = format!("{}[{i}]", join_path(path, "links"));
            if l.title.trim().is_empty() {
                errors.push(join_path(&p, "title"), "must not be empty");
            }
            check_url(&l.url, &join_path(&p, "url"), errors);
        }
        self.validate_parameters_and_placeholders(path, errors);
        if !self.experiment.is_object() {
            errors.push(
                join_path(path, "experiment"),
                format!(
                    "must be an experiment manifest (an object), got {}",
                    type_name(&self.experiment)
                ),
            );
        }
        // That the experiment, rendered with sample values, is a valid manifest of a fault kind
        // is checked where manifests are parsed (`crate::parse`), which sits above this module.
    }
}

impl TemplateSpec {
    /// Parameters well declared, every placeholder declared and every parameter used.
    fn validate_parameters_and_placeholders(&self, path: &str, errors: &mut ValidationErrors) {
        self.validate_parameters(path, errors);
        let used = self.placeholders(errors);
        for (name, at) in &used {
            if self.parameter(name).is_none() {
                let declared = self.parameters.iter().map(|p| p.name.as_str());
                let hint = closest(name, declared)
                    .map(|n| format!("; did you mean {n:?}?"))
                    .unwrap_or_default();
                errors.push(
                    at.clone(),
                    format!("${{{name}}} refers to no declared parameter{hint}"),
                );
            }
        }
        for (i, p) in self.parameters.iter().enumerate() {
            if !used.contains_key(&p.name) {
                errors.push(
                    format!("{}[{i}].name", join_path(path, "parameters")),
                    format!(
                        "parameter {:?} is declared but never used in spec.experiment",
                        p.name
                    ),
                );
            }
        }
    }

    fn validate_parameters(&self, path: &str, errors: &mut ValidationErrors) {
        let mut seen = BTreeSet::new();
        for (i, p) in self.parameters.iter().enumerate() {
            let base = format!("{}[{i}]", join_path(path, "parameters"));
            if !valid_parameter_name(&p.name) {
                errors.push(
                    join_path(&base, "name"),
                    format!(
                        "{:?} is not a valid parameter name (letters, digits and _, starting with a letter)",
                        p.name
                    ),
                );
            }
            if !seen.insert(p.name.as_str()) {
                errors.push(
                    join_path(&base, "name"),
                    format!("parameter {:?} is declared twice", p.name),
                );
            }
            if p.description.trim().is_empty() {
                errors.push(join_path(&base, "description"), "must not be empty");
            }
            match p.param_type {
                ParameterType::Enum => {
                    if p.values.is_empty() {
                        errors.push(
                            join_path(&base, "enum"),
                            "an enum parameter lists its allowed values",
                        );
                    }
                    let unique: BTreeSet<&String> = p.values.iter().collect();
                    if unique.len() != p.values.len() {
                        errors.push(join_path(&base, "enum"), "lists a value twice");
                    }
                }
                _ if !p.values.is_empty() => errors.push(
                    join_path(&base, "enum"),
                    format!(
                        "only enum parameters list values (this one is {})",
                        p.param_type.as_str()
                    ),
                ),
                _ => {}
            }
            let mut bounds = Vec::new();
            for (key, bound) in [("min", &p.min), ("max", &p.max)] {
                let Some(bound) = bound else { continue };
                if !p.param_type.has_range() {
                    errors.push(
                        join_path(&base, key),
                        format!(
                            "only integer, number, percent and duration parameters have a {key}"
                        ),
                    );
                    continue;
                }
                match p.bound(bound) {
                    Ok(b) => bounds.push(b),
                    Err(m) => errors.push(join_path(&base, key), m),
                }
            }
            if let [min, max] = bounds.as_slice() {
                if min > max {
                    errors.push(join_path(&base, "min"), "is larger than max");
                }
            }
            if let Some(d) = &p.default {
                if let Err(m) = p.coerce(d) {
                    errors.push(join_path(&base, "default"), m);
                }
            }
        }
    }
}

/// A template in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSummary {
    /// `name` for local templates, `hub/name` for templates of a remote catalog.
    pub name: String,
    /// `local`, or the remote catalog's name.
    pub source: String,
    pub title: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub adapters: Vec<String>,
    /// Kind of the rendered experiment (`NetworkChaos`…).
    pub kind: String,
    /// Its actions (`delay`, `disk-fill`…).
    pub actions: Vec<String>,
    /// Parameter names, in order.
    pub parameters: Vec<String>,
    /// Adapters the template lists whose submission checks on this hub refuse its defaults,
    /// with the refusal; they are left out of `adapters`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, String>,
}

/// `GET /api/v1/templates`: the matching templates and facet counts over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateList {
    pub items: Vec<TemplateSummary>,
    pub total: usize,
    pub facets: TemplateFacets,
}

/// Value → number of matching templates, per facet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFacets {
    pub category: BTreeMap<String, usize>,
    pub tag: BTreeMap<String, usize>,
    pub adapter: BTreeMap<String, usize>,
    pub kind: BTreeMap<String, usize>,
    pub source: BTreeMap<String, usize>,
}

/// `GET /api/v1/templates/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDetail {
    #[serde(flatten)]
    pub summary: TemplateSummary,
    /// The whole template manifest.
    pub template: Value,
    /// JSON Schema of the parameters object, for form generation.
    pub parameters_schema: Value,
}

/// `POST /api/v1/templates/{name}/render` and `/run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenderRequest {
    /// Parameter values by name; missing ones take their defaults.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// `metadata.name` of the experiment (default: the template's `generateName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Environment to run in (`spec.environment`); required by `run` unless the hub has a
    /// default environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// `run` only: validate and plan without creating anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/templates/{name}/render`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderResult {
    /// The validated experiment manifest.
    pub manifest: Value,
    /// Every parameter's value as used (given or default).
    pub parameters: BTreeMap<String, Value>,
}

/// `POST /api/v1/catalogs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddCatalogRequest {
    /// The hub's name; its templates appear as `name/template`.
    pub name: String,
    /// URL of the index file.
    pub url: String,
}

/// A template a remote catalog lists but the hub refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedTemplate {
    pub name: String,
    pub message: String,
}

/// A remote catalog and the state of its copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogObject {
    pub name: String,
    pub url: String,
    /// `lastChange` of the index the cached templates came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// When the index was last fetched successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<String>,
    /// When the templates were last fetched again because the index changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// Why the last refresh failed; the cached templates stay in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Templates in use from this catalog.
    pub templates: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedTemplate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_parse() {
        assert_eq!(
            pieces("${a}").unwrap(),
            vec![Piece::Param {
                name: "a".into(),
                as_string: false
            }]
        );
        assert_eq!(
            pieces("x${a:string}y").unwrap(),
            vec![
                Piece::Text("x".into()),
                Piece::Param {
                    name: "a".into(),
                    as_string: true
                },
                Piece::Text("y".into())
            ]
        );
        assert_eq!(
            pieces("cost $5 $${a}").unwrap(),
            vec![Piece::Text("cost $5 ${a}".into())]
        );
        assert!(pieces("${a").is_err());
        assert!(pieces("${a:int}").is_err());
        assert!(pieces("${1a}").is_err());
    }

    #[test]
    fn value_text_drops_trailing_zero() {
        assert_eq!(value_text(&json!(25.0)), "25");
        assert_eq!(value_text(&json!(2.5)), "2.5");
        assert_eq!(value_text(&json!("x")), "x");
    }
}
