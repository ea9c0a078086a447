//! Text → JSON values: YAML (1.2 core schema) or JSON, with bounds that refuse a hostile text
//! before it costs memory.
//!
//! Everything the hub reads from a user goes through here: manifests, suites, templates, catalog
//! indexes, stop-condition annotations, REST bodies. YAML is read by `serde-saphyr` (pure Rust,
//! YAML 1.2, maintained) after a streaming pass over the parser's events that enforces the
//! policy chaoshub wants and the library does not spell out the same way:
//!
//! - only the YAML core-schema tags (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq`,
//!   `!!map`) are accepted; any other tag (`!!python/object/apply:…`, `!!binary`,
//!   `!!timestamp`, `!custom`) is refused by name instead of being ignored or decoded;
//! - a key appears once per mapping (refused naming the key and its path, as for JSON);
//! - mapping keys are strings (JSON has no other kind);
//! - every alias is counted at the size of what it expands to, so an alias bomb ("billion
//!   laughs") is refused before anything is expanded;
//! - bounded nesting depth, node count, document count and single-scalar size ([`Limits`]).
//!
//! JSON gets the same bounds and the same duplicate-key refusal through a counting visitor.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, Span, Tag};

use crate::error::{FieldError, ValidationErrors};

/// What one text may cost before it is refused. One request or one file is one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Documents in one text (YAML `---` streams).
    pub max_documents: usize,
    /// Nesting of sequences and mappings.
    pub max_depth: usize,
    /// Nodes in one text: every scalar, key, sequence and mapping, an alias counted at the size
    /// of the node it repeats. A JSON value costs roughly 100 bytes a node, so this is what
    /// bounds the memory of a parse.
    pub max_nodes: usize,
    /// Bytes of one scalar (a string, a number or a key), after escapes and folding.
    pub max_scalar_bytes: usize,
    /// Aliases (`*name`) in one text.
    pub max_aliases: usize,
}

impl Limits {
    /// The bounds every reader in chaoshub uses. The largest legitimate texts (a suite of many
    /// experiments, a catalog index of 1,000 templates) stay well below them; a 1 MiB request
    /// body of the worst shape costs a few MB before refusal.
    pub const DEFAULT: Limits = Limits {
        max_documents: 1_000,
        max_depth: 64,
        max_nodes: 50_000,
        max_scalar_bytes: 256 * 1024,
        max_aliases: 1_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why a JSON text was not read: broken syntax, or a well-formed text that breaks a rule
/// (a duplicate key, a bound), the latter naming the field.
#[derive(Debug)]
pub enum JsonError {
    Syntax(serde_json::Error),
    Refused(ValidationErrors),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(e) => write!(f, "not valid JSON: {e}"),
            JsonError::Refused(e) => e.fmt(f),
        }
    }
}

impl From<JsonError> for ValidationErrors {
    fn from(e: JsonError) -> Self {
        match e {
            JsonError::Syntax(e) => ValidationErrors::single("", format!("not valid JSON: {e}")),
            JsonError::Refused(e) => e,
        }
    }
}

/// Splits YAML (or JSON, which is YAML) text into documents with [`Limits::DEFAULT`]. Empty and
/// null documents are skipped.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, ValidationErrors> {
    yaml_documents_with(text, &Limits::DEFAULT)
}

/// [`yaml_documents`] with explicit bounds.
pub fn yaml_documents_with(text: &str, limits: &Limits) -> Result<Vec<Value>, ValidationErrors> {
    Prescan::new(limits).run(text)?;
    serde_saphyr::from_multiple_with_options::<Value>(text, saphyr_options(limits))
        .map_err(|e| ValidationErrors::single("", format!("not valid YAML or JSON: {e}")))
}

/// Reads one JSON document with [`Limits::DEFAULT`]: duplicate keys refused, bounds enforced.
pub fn json_value(text: &str) -> Result<Value, JsonError> {
    json_value_with(text, &Limits::DEFAULT)
}

/// [`json_value`] with explicit bounds.
pub fn json_value_with(text: &str, limits: &Limits) -> Result<Value, JsonError> {
    let mut budget = JsonBudget {
        limits,
        nodes: 0,
        refusal: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = JsonNode {
        budget: &mut budget,
        path: &PathLink::Root,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (result, budget.refusal) {
        (Ok(value), _) => Ok(value),
        (Err(e), Some(refusal)) => Err(JsonError::Refused(ValidationErrors(vec![FieldError {
            path: refusal.path,
            message: format!(
                "{} (line {}, column {})",
                refusal.message,
                e.line(),
                e.column()
            ),
        }]))),
        (Err(e), None) => Err(JsonError::Syntax(e)),
    }
}

/// Renders a value as YAML (the CLI's `-o yaml`). Strings that YAML would read as another type
/// are quoted, so the text reads back as the same value.
pub fn to_yaml<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(&value).map_err(|e| e.to_string())
}

fn saphyr_options(limits: &Limits) -> serde_saphyr::Options {
    // The prescan has already enforced every bound; the library's own budget is set from the
    // same limits as a second line, with room for its slightly different counting (merge keys
    // are expanded by the library, counted once by the prescan).
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = limits.max_documents;
    budget.max_depth = limits.max_depth + 1;
    budget.max_nodes = limits.max_nodes.saturating_mul(2);
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_nodes;
    budget.max_events = limits.max_nodes.saturating_mul(4);
    budget.max_recorded_anchor_events = limits.max_nodes.saturating_mul(2);
    budget.max_recorded_anchor_bytes = 16 * 1024 * 1024;
    budget.max_total_scalar_bytes = 64 * 1024 * 1024;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = limits.max_nodes.saturating_mul(2);
    alias_limits.max_replay_stack_depth = limits.max_depth;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.alias_limits = alias_limits;
    // YAML 1.2: `yes`, `no`, `on`, `off` are strings, `0755` is not octal.
    options.strict_booleans = true;
    options.legacy_octal_numbers = false;
    options.reject_unsupported_tags = true;
    options.with_snippet = false;
    // Leading-zero decimals (`0755`, a file mode written the YAML 1.1 way) and underscored
    // numbers stay strings, as they did with serde_yaml: a schema field that wants a number
    // then says so instead of silently reading 755.
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options
}

// ---- YAML prescan ----

/// One refusal from the prescan: where, the field path, and what is wrong.
struct Refusal {
    path: String,
    message: String,
}

fn at(span: &Span) -> String {
    format!(
        "line {}, column {}",
        span.start.line(),
        span.start.col() + 1
    )
}

enum FrameKind {
    Sequence {
        index: usize,
    },
    Mapping {
        keys: HashSet<String>,
        /// The key whose value is being read; `None` while a key is awaited.
        current: Option<String>,
    },
}

struct Frame {
    kind: FrameKind,
    /// Node count when the collection started, to size an anchored collection.
    nodes_at_start: usize,
    anchor: usize,
}

/// A streaming pass over the parser's events that allocates nothing in proportion to what
/// aliases would expand to: it keeps the open collections, their keys, and one size per anchor.
struct Prescan<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    nodes: usize,
    aliases: usize,
    documents: usize,
    /// Expanded size of each anchor, by the parser's anchor id.
    anchor_sizes: HashMap<usize, usize>,
}

impl<'l> Prescan<'l> {
    fn new(limits: &'l Limits) -> Self {
        Prescan {
            limits,
            stack: Vec::new(),
            nodes: 0,
            aliases: 0,
            documents: 0,
            anchor_sizes: HashMap::new(),
        }
    }

    fn run(mut self, text: &str) -> Result<(), ValidationErrors> {
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                let m = e.marker();
                ValidationErrors::single(
                    "",
                    format!(
                        "document {}: not valid YAML or JSON: {} at line {}, column {}",
                        self.documents.max(1),
                        e.info(),
                        m.line(),
                        m.col() + 1
                    ),
                )
            })?;
            self.event(event, &span)
                .map_err(|r| ValidationErrors::single(r.path, r.message))?;
        }
        Ok(())
    }

    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match &frame.kind {
                FrameKind::Sequence { index } => path.push_str(&format!("[{index}]")),
                FrameKind::Mapping {
                    current: Some(key), ..
                } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                FrameKind::Mapping { current: None, .. } => break,
            }
        }
        path
    }

    fn refuse(&self, message: String) -> Result<(), Refusal> {
        Err(Refusal {
            path: self.path(),
            message,
        })
    }

    /// True when the next node is a mapping key.
    fn awaiting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                kind: FrameKind::Mapping { current: None, .. },
                ..
            })
        )
    }

    fn check_tag(&self, tag: Option<&Tag>, span: &Span) -> Result<(), Refusal> {
        match tag {
            Some(tag) if tag.core_suffix().is_none() => self.refuse(format!(
                "the YAML tag {} is not accepted ({}); only !!str, !!int, !!float, !!bool, \
                 !!null, !!seq and !!map are",
                tag.original(),
                at(span)
            )),
            _ => Ok(()),
        }
    }

    fn add_nodes(&mut self, n: usize, span: &Span) -> Result<(), Refusal> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return self.refuse(format!(
                "the text holds more than {} nodes (aliases counted at the size they expand to; \
                 {})",
                self.limits.max_nodes,
                at(span)
            ));
        }
        Ok(())
    }

    /// A node ended: it was a key (then `key` is its text) or a value.
    fn node_done(&mut self, key: Option<&str>, span: &Span) -> Result<(), Refusal> {
        let path = self.path();
        match self.stack.last_mut().map(|f| &mut f.kind) {
            Some(FrameKind::Sequence { index }) => *index += 1,
            Some(FrameKind::Mapping { keys, current }) => match current.take() {
                Some(_) => {}
                None => {
                    let Some(key) = key else {
                        return Err(Refusal {
                            path,
                            message: format!(
                                "mapping keys must be strings, not collections or aliases ({})",
                                at(span)
                            ),
                        });
                    };
                    if !keys.insert(key.to_string()) {
                        return Err(Refusal {
                            path,
                            message: format!("duplicate key {key:?} ({})", at(span)),
                        });
                    }
                    *current = Some(key.to_string());
                }
            },
            None => {}
        }
        Ok(())
    }

    fn open(&mut self, kind: FrameKind, anchor: usize, span: &Span) -> Result<(), Refusal> {
        if self.awaiting_key() {
            return self.node_done(None, span);
        }
        if self.stack.len() >= self.limits.max_depth {
            return self.refuse(format!(
                "nested deeper than {} levels ({})",
                self.limits.max_depth,
                at(span)
            ));
        }
        self.add_nodes(1, span)?;
        self.stack.push(Frame {
            kind,
            nodes_at_start: self.nodes - 1,
            anchor,
        });
        Ok(())
    }

    fn close(&mut self, span: &Span) -> Result<(), Refusal> {
        if let Some(frame) = self.stack.pop() {
            if frame.anchor != 0 {
                self.anchor_sizes
                    .insert(frame.anchor, self.nodes - frame.nodes_at_start);
            }
        }
        self.node_done(None, span)
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), Refusal> {
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > self.limits.max_documents {
                    return self.refuse(format!(
                        "the text holds more than {} documents ({})",
                        self.limits.max_documents,
                        at(span)
                    ));
                }
            }
            Event::Scalar(value, _, anchor, tag) => {
                self.check_tag(tag.as_deref(), span)?;
                if value.len() > self.limits.max_scalar_bytes {
                    return self.refuse(format!(
                        "a value of {} bytes is larger than the {} accepted ({})",
                        value.len(),
                        self.limits.max_scalar_bytes,
                        at(span)
                    ));
                }
                self.add_nodes(1, span)?;
                if anchor != 0 {
                    self.anchor_sizes.insert(anchor, 1);
                }
                let is_key = self.awaiting_key();
                self.node_done(is_key.then_some(value.as_ref()), span)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                self.check_tag(tag.as_deref(), span)?;
                self.open(FrameKind::Sequence { index: 0 }, anchor, span)?;
            }
            Event::MappingStart(_, anchor, tag) => {
                self.check_tag(tag.as_deref(), span)?;
                self.open(
                    FrameKind::Mapping {
                        keys: HashSet::new(),
                        current: None,
                    },
                    anchor,
                    span,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(span)?,
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > self.limits.max_aliases {
                    return self.refuse(format!(
                        "the text uses more than {} aliases ({})",
                        self.limits.max_aliases,
                        at(span)
                    ));
                }
                if self.awaiting_key() {
                    return self.node_done(None, span);
                }
                let size = self.anchor_sizes.get(&id).copied().unwrap_or(1);
                self.add_nodes(size, span)?;
                self.node_done(None, span)?;
            }
            _ => {}
        }
        Ok(())
    }
}

// ---- JSON ----

/// The field path of a JSON node, as a list linked through the visitors' stack frames so that
/// nothing is allocated until a refusal names it.
enum PathLink<'a> {
    Root,
    Key(&'a PathLink<'a>, &'a str),
    Index(&'a PathLink<'a>, usize),
}

impl PathLink<'_> {
    fn render(&self) -> String {
        match self {
            PathLink::Root => String::new(),
            PathLink::Key(parent, key) => {
                let parent = parent.render();
                if parent.is_empty() {
                    key.to_string()
                } else {
                    format!("{parent}.{key}")
                }
            }
            PathLink::Index(parent, index) => format!("{}[{index}]", parent.render()),
        }
    }
}

struct JsonBudget<'l> {
    limits: &'l Limits,
    nodes: usize,
    refusal: Option<Refusal>,
}

impl JsonBudget<'_> {
    fn refuse<E: serde::de::Error>(&mut self, path: &PathLink<'_>, message: String) -> E {
        let error = E::custom(&message);
        self.refusal = Some(Refusal {
            path: path.render(),
            message,
        });
        error
    }

    fn count<E: serde::de::Error>(&mut self, path: &PathLink<'_>) -> Result<(), E> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            let message = format!("the text holds more than {} nodes", self.limits.max_nodes);
            return Err(self.refuse(path, message));
        }
        Ok(())
    }

    fn scalar<E: serde::de::Error>(&mut self, path: &PathLink<'_>, len: usize) -> Result<(), E> {
        if len > self.limits.max_scalar_bytes {
            let message = format!(
                "a value of {len} bytes is larger than the {} accepted",
                self.limits.max_scalar_bytes
            );
            return Err(self.refuse(path, message));
        }
        Ok(())
    }
}

struct JsonNode<'b, 'l, 'p> {
    budget: &'b mut JsonBudget<'l>,
    path: &'p PathLink<'p>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for JsonNode<'_, '_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl JsonNode<'_, '_, '_> {
    fn enter<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.budget.count(self.path)?;
        if self.depth >= self.budget.limits.max_depth {
            let message = format!("nested deeper than {} levels", self.budget.limits.max_depth);
            return Err(self.budget.refuse(self.path, message));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for JsonNode<'_, '_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.count(self.path)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.count(self.path)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.count(self.path)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.count(self.path)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.count(self.path)?;
        self.budget.scalar(self.path, v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.count(self.path)?;
        self.budget.scalar(self.path, v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.budget.count(self.path)?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            let path = PathLink::Index(self.path, items.len());
            let seed = JsonNode {
                budget: &mut *self.budget,
                path: &path,
                depth: self.depth + 1,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key_seed(JsonKey {
            budget: &mut *self.budget,
            path: self.path,
        })? {
            if map.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                return Err(self.budget.refuse(self.path, message));
            }
            let path = PathLink::Key(self.path, &key);
            let value = access.next_value_seed(JsonNode {
                budget: &mut *self.budget,
                path: &path,
                depth: self.depth + 1,
            })?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

struct JsonKey<'b, 'l, 'p> {
    budget: &'b mut JsonBudget<'l>,
    path: &'p PathLink<'p>,
}

impl<'de> DeserializeSeed<'de> for JsonKey<'_, '_, '_> {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for JsonKey<'_, '_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        self.budget.count(self.path)?;
        self.budget.scalar(self.path, v.len())?;
        Ok(v.to_string())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        self.budget.count(self.path)?;
        self.budget.scalar(self.path, v.len())?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_duplicate_key_is_refused_with_its_path() {
        let err = json_value(r#"{"spec": {"mode": "one", "mode": "all"}}"#).unwrap_err();
        let JsonError::Refused(errors) = err else {
            panic!("expected a refusal, got {err}");
        };
        assert_eq!(errors.0[0].path, "spec");
        assert!(errors.0[0].message.contains("duplicate key \"mode\""));
        assert!(errors.0[0].message.contains("line 1"), "{errors}");
    }

    #[test]
    fn json_syntax_errors_stay_syntax_errors() {
        assert!(matches!(json_value("{\"a\": "), Err(JsonError::Syntax(_))));
        assert!(matches!(json_value("{} {}"), Err(JsonError::Syntax(_))));
    }
}
