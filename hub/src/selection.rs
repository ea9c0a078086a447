//! Target selection: Chaos Mesh selectors and modes applied to any adapter's inventory, the same
//! way for every adapter.

use chaoshub_schema::selector::{LabelSelectorRequirement, SelectorMode, TargetSelector};
use chaoshub_schema::Target;
use rand::seq::SliceRandom;
use rand::Rng;

/// What selection needs from a fault spec, copied out so no borrow of the manifest is held
/// across an adapter call.
#[derive(Debug, Clone)]
pub struct FaultInfo {
    pub actions: Vec<String>,
    pub selector: Option<TargetSelector>,
    pub mode: SelectorMode,
    pub value: Option<String>,
    pub duration: Option<String>,
    pub environment: Option<String>,
}

impl FaultInfo {
    pub fn of(fault: &dyn chaoshub_schema::FaultSpec) -> Self {
        Self {
            actions: fault.actions(),
            selector: fault.target_selector(),
            mode: fault.mode().unwrap_or(SelectorMode::All),
            value: fault.value().map(str::to_string),
            duration: fault.duration().map(str::to_string),
            environment: fault.environment().map(str::to_string),
        }
    }

    /// Filters the inventory with the selector (every target when the kind has none).
    pub fn matching(&self, inventory: &[Target]) -> Vec<Target> {
        match &self.selector {
            Some(selector) => filter(selector, inventory),
            None => inventory.to_vec(),
        }
    }
}

/// Why selection picked nothing or could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error(
        "no targets matched the selector ({inventory} targets in environment {environment:?})"
    )]
    NoneMatched {
        environment: String,
        inventory: usize,
    },
    #[error(
        "the selector matched {matched} targets but mode {mode} with value {value:?} selects none"
    )]
    ModeSelectsNone {
        matched: usize,
        mode: String,
        value: String,
    },
    #[error("invalid value {value:?} for mode {mode}: {message}")]
    BadValue {
        mode: String,
        value: String,
        message: String,
    },
}

fn requirement_holds(req: &LabelSelectorRequirement, target: &Target) -> bool {
    let value = target.labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| req.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // Validation rejects other operators; an unknown one never matches.
        _ => false,
    }
}

fn field_value<'a>(target: &'a Target, field: &str) -> Option<&'a str> {
    match field {
        "id" => Some(&target.id),
        "name" | "metadata.name" => Some(&target.name),
        "kind" => Some(&target.kind),
        "namespace" | "metadata.namespace" => target.namespace.as_deref(),
        "adapter" => Some(&target.adapter),
        "environment" => Some(&target.environment),
        _ => None,
    }
}

/// Whether one target satisfies every clause of the selector.
pub fn matches(selector: &TargetSelector, target: &Target) -> bool {
    if !selector.namespaces.is_empty() {
        match &target.namespace {
            Some(ns) if selector.namespaces.contains(ns) => {}
            _ => return false,
        }
    }
    // As in Chaos Mesh, an explicit list of names (`pods`, `physicalMachines`) selects exactly
    // those targets and the other selector fields are not consulted.
    if !selector.names.is_empty() {
        return selector.names.iter().any(|(ns, names)| {
            let ns_ok = target.namespace.as_ref().is_none_or(|t| t == ns);
            ns_ok && (names.contains(&target.name) || names.contains(&target.id))
        });
    }
    if !selector
        .label_selectors
        .iter()
        .all(|(k, v)| target.labels.get(k) == Some(v))
    {
        return false;
    }
    if !selector
        .expression_selectors
        .iter()
        .all(|r| requirement_holds(r, target))
    {
        return false;
    }
    if !selector
        .annotation_selectors
        .iter()
        .all(|(k, v)| target.annotations.get(k) == Some(v))
    {
        return false;
    }
    if !selector
        .field_selectors
        .iter()
        .all(|(k, v)| field_value(target, k) == Some(v.as_str()))
    {
        return false;
    }
    if !selector.nodes.is_empty()
        && !target
            .labels
            .get("node")
            .is_some_and(|n| selector.nodes.contains(n))
    {
        return false;
    }
    if !selector
        .node_selectors
        .iter()
        .all(|(k, v)| target.labels.get(&format!("node.{k}")) == Some(v))
    {
        return false;
    }
    if !selector.pod_phase_selectors.is_empty()
        && !target
            .labels
            .get("phase")
            .is_some_and(|p| selector.pod_phase_selectors.contains(p))
    {
        return false;
    }
    true
}

/// Every target of the inventory that the selector matches, in inventory order.
pub fn filter(selector: &TargetSelector, inventory: &[Target]) -> Vec<Target> {
    inventory
        .iter()
        .filter(|t| matches(selector, t))
        .cloned()
        .collect()
}

/// The targets of `targets` that the selector matches, in order, without copying them.
pub fn retain_matching(selector: &TargetSelector, mut targets: Vec<Target>) -> Vec<Target> {
    targets.retain(|t| matches(selector, t));
    targets
}

fn parse_percent(mode: SelectorMode, value: &str) -> Result<usize, SelectionError> {
    let bad = |message: &str| SelectionError::BadValue {
        mode: mode.as_str().into(),
        value: value.into(),
        message: message.into(),
    };
    let n: usize = value
        .trim()
        .parse()
        .map_err(|_| bad("must be a whole number"))?;
    if !(1..=100).contains(&n) {
        return Err(bad("must be between 1 and 100"));
    }
    Ok(n)
}

/// Applies a mode to the matched targets (Chaos Mesh semantics: percentages round down).
pub fn apply_mode<R: Rng + ?Sized>(
    matched: Vec<Target>,
    mode: SelectorMode,
    value: Option<&str>,
    rng: &mut R,
) -> Result<Vec<Target>, SelectionError> {
    let total = matched.len();
    let value_text = value.unwrap_or("");
    let count = match mode {
        SelectorMode::All => total,
        SelectorMode::One => total.min(1),
        SelectorMode::Fixed => {
            let n: usize = value_text
                .trim()
                .parse()
                .map_err(|_| SelectionError::BadValue {
                    mode: mode.as_str().into(),
                    value: value_text.into(),
                    message: "must be a whole number of targets".into(),
                })?;
            if n == 0 {
                return Err(SelectionError::BadValue {
                    mode: mode.as_str().into(),
                    value: value_text.into(),
                    message: "must be at least 1".into(),
                });
            }
            n.min(total)
        }
        SelectorMode::FixedPercent => total * parse_percent(mode, value_text)? / 100,
        SelectorMode::RandomMaxPercent => {
            // Chaos Mesh draws 0..=max percent and may select nothing; an experiment that
            // fails at random is no use to anyone, so chaoshub draws 1..=max and always hits
            // at least one target (documented in docs/ARCHITECTURE.md).
            let max = parse_percent(mode, value_text)?;
            (total * rng.random_range(1..=max) / 100).max(total.min(1))
        }
    };
    if count == 0 && total > 0 {
        return Err(SelectionError::ModeSelectsNone {
            matched: total,
            mode: mode.as_str().into(),
            value: value_text.into(),
        });
    }
    let mut picked = matched;
    if count < total {
        picked.shuffle(rng);
        picked.truncate(count);
        // Keep a stable, readable order in the status.
        picked.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(picked)
}

/// The environment setting naming targets (by name or id) that no experiment may select.
pub const PROTECTED_TARGETS_SETTING: &str = "protected_targets";
/// The environment setting capping how many targets one experiment may select.
pub const MAX_TARGETS_SETTING: &str = "max_targets";

/// The label that protects a target in every environment (`security.protected_selector`,
/// `key=value`; default `chaoshub.dev/protected=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedLabel {
    pub key: String,
    pub value: String,
}

impl ProtectedLabel {
    /// Parses `key=value`; an empty text turns label protection off (`None`).
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                Ok(Some(Self {
                    key: key.trim().to_string(),
                    value: value.trim().to_string(),
                }))
            }
            _ => Err(format!(
                "{text:?} is not a label selector: write key=value (e.g. chaoshub.dev/protected=true), or \"\" to turn label protection off"
            )),
        }
    }
}

/// `max_targets` of an environment: a count, or a percentage of its inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetCap {
    Count(usize),
    Percent(usize),
}

impl TargetCap {
    /// Reads the setting: absent or null is no cap; a whole number ≥ 1, or `"N%"` with N in
    /// 1..=100 (a number written as a string is accepted too).
    pub fn of_setting(value: Option<&serde_json::Value>) -> Result<Option<Self>, String> {
        use serde_json::Value;
        let wrong = |got: &Value| {
            format!("must be a number of targets (e.g. 5) or a percentage of the environment's targets (e.g. \"25%\"), got {got}")
        };
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if n >= 1 => Ok(Some(Self::Count(n as usize))),
                _ => Err(format!(
                    "{n}: must be a whole number of targets, at least 1"
                )),
            },
            Some(Value::String(text)) => {
                let text = text.trim();
                if let Some(percent) = text.strip_suffix('%') {
                    match percent.trim().parse::<usize>() {
                        Ok(p) if (1..=100).contains(&p) => Ok(Some(Self::Percent(p))),
                        _ => Err(format!("{text:?}: a percentage must be from 1% to 100%")),
                    }
                } else {
                    match text.parse::<usize>() {
                        Ok(n) if n >= 1 => Ok(Some(Self::Count(n))),
                        _ => Err(wrong(&Value::String(text.into()))),
                    }
                }
            }
            Some(other) => Err(wrong(other)),
        }
    }

    /// The number of targets allowed in an environment of `inventory` targets (percentages
    /// round down, as selection modes do).
    pub fn limit(self, inventory: usize) -> usize {
        match self {
            Self::Count(n) => n,
            Self::Percent(p) => inventory * p / 100,
        }
    }

    /// How the cap reads in messages: `5` or `25% of 8 targets = 2`.
    pub fn describe(self, inventory: usize) -> String {
        match self {
            Self::Count(n) => n.to_string(),
            Self::Percent(p) => {
                format!("{p}% of {inventory} target(s) = {}", self.limit(inventory))
            }
        }
    }
}

/// The protection settings of one environment and the hub's protected label, read once.
#[derive(Debug, Clone, Default)]
pub struct Guardrails {
    pub label: Option<ProtectedLabel>,
    /// `settings.protected_targets`: names or ids.
    pub protected: Vec<String>,
    pub max_targets: Option<TargetCap>,
}

/// A selection a guardrail refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    #[error("target {target:?} of environment {environment:?} is protected ({why}); no experiment may select it: narrow the selector so it does not match it")]
    Protected {
        environment: String,
        target: String,
        why: String,
    },
    #[error("blast radius: {selected} target(s) selected but environment {environment:?} allows at most {cap} (settings.max_targets)")]
    TooMany {
        environment: String,
        selected: usize,
        cap: String,
    },
}

impl GuardrailError {
    /// The stable machine-readable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Protected { .. } => "protected_target",
            Self::TooMany { .. } => "blast_radius",
        }
    }
}

impl Guardrails {
    /// The guardrails of an environment with these settings (already validated at
    /// registration; a value that no longer parses protects as much as it can: no cap).
    pub fn of(
        label: Option<&ProtectedLabel>,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let protected = settings
            .get(PROTECTED_TARGETS_SETTING)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            label: label.cloned(),
            protected,
            max_targets: TargetCap::of_setting(settings.get(MAX_TARGETS_SETTING))
                .ok()
                .flatten(),
        }
    }

    /// Why a target is protected, if it is.
    pub fn protection(&self, target: &Target) -> Option<String> {
        if let Some(label) = &self.label {
            if target.labels.get(&label.key) == Some(&label.value) {
                return Some(format!(
                    "label {}={} (security.protected_selector)",
                    label.key, label.value
                ));
            }
        }
        self.protected
            .iter()
            .find(|p| **p == target.name || **p == target.id)
            .map(|p| format!("listed as {p:?} in the environment's settings.protected_targets"))
    }

    /// Refuses a selection whose matched targets include a protected one — the mode may pick
    /// any matched target, so matching one is refused, not left to chance — or whose selected
    /// count is over the cap of an environment of `inventory` targets.
    pub fn check(
        &self,
        environment: &str,
        inventory: usize,
        matched: &[Target],
        selected: usize,
    ) -> Result<(), GuardrailError> {
        if let Some((target, why)) = matched
            .iter()
            .find_map(|t| self.protection(t).map(|why| (t, why)))
        {
            return Err(GuardrailError::Protected {
                environment: environment.to_string(),
                target: target.name.clone(),
                why,
            });
        }
        if let Some(cap) = self.max_targets {
            if selected > cap.limit(inventory) {
                return Err(GuardrailError::TooMany {
                    environment: environment.to_string(),
                    selected,
                    cap: cap.describe(inventory),
                });
            }
        }
        Ok(())
    }
}

/// Registration check of `settings.protected_targets` and `settings.max_targets`, with field
/// paths.
pub fn check_guardrail_settings(
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), chaoshub_schema::ValidationErrors> {
    use serde_json::Value;
    let mut errors = chaoshub_schema::ValidationErrors::new();
    match settings.get(PROTECTED_TARGETS_SETTING) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if item.as_str().is_none_or(|s| s.trim().is_empty()) {
                    errors.push(
                        format!("spec.settings.{PROTECTED_TARGETS_SETTING}[{i}]"),
                        format!("must be a target name or id (a non-empty string), got {item}"),
                    );
                }
            }
        }
        Some(other) => errors.push(
            format!("spec.settings.{PROTECTED_TARGETS_SETTING}"),
            format!("must be a list of target names or ids, got {other}"),
        ),
    }
    if let Err(message) = TargetCap::of_setting(settings.get(MAX_TARGETS_SETTING)) {
        errors.push(format!("spec.settings.{MAX_TARGETS_SETTING}"), message);
    }
    errors.into_result()
}

/// The most targets a mode can select from `matched` targets (for `random-max-percent`, its
/// largest draw), so a cap can be checked before the draw is made.
pub fn max_selected(
    matched: usize,
    mode: SelectorMode,
    value: Option<&str>,
) -> Result<usize, SelectionError> {
    let value_text = value.unwrap_or("");
    Ok(match mode {
        SelectorMode::All => matched,
        SelectorMode::One => matched.min(1),
        SelectorMode::Fixed => value_text.trim().parse::<usize>().unwrap_or(0).min(matched),
        SelectorMode::FixedPercent => matched * parse_percent(mode, value_text)? / 100,
        SelectorMode::RandomMaxPercent => {
            (matched * parse_percent(mode, value_text)? / 100).max(matched.min(1))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    fn target(id: &str, labels: &[(&str, &str)]) -> Target {
        Target {
            environment: "e".into(),
            adapter: "webhook".into(),
            kind: "host".into(),
            id: id.into(),
            name: id.into(),
            namespace: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn label_and_expression_selectors() {
        let inv = vec![
            target("a", &[("tier", "web"), ("zone", "1")]),
            target("b", &[("tier", "db")]),
            target("c", &[("tier", "web")]),
        ];
        let mut sel = TargetSelector::default();
        sel.label_selectors.insert("tier".into(), "web".into());
        assert_eq!(filter(&sel, &inv).len(), 2);
        sel.expression_selectors.push(LabelSelectorRequirement {
            key: "zone".into(),
            operator: "Exists".into(),
            values: vec![],
        });
        let hit = filter(&sel, &inv);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].id, "a");
        let not_in = TargetSelector {
            expression_selectors: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: vec!["web".into()],
            }],
            ..Default::default()
        };
        assert_eq!(filter(&not_in, &inv)[0].id, "b");
    }

    #[test]
    fn names_match_name_or_id() {
        let inv = vec![target("a", &[]), target("b", &[])];
        let mut sel = TargetSelector::default();
        sel.names.insert("default".into(), vec!["b".into()]);
        assert_eq!(filter(&sel, &inv)[0].id, "b");
    }

    #[test]
    fn a_name_list_overrides_the_other_selectors() {
        let inv = vec![
            target("a", &[("tier", "web")]),
            target("b", &[("tier", "db")]),
        ];
        let mut sel = TargetSelector::default();
        sel.names.insert("default".into(), vec!["b".into()]);
        sel.label_selectors.insert("tier".into(), "web".into());
        let hit = filter(&sel, &inv);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].id, "b");
    }

    #[test]
    fn fixed_percent_rounds_down_and_refuses_zero() {
        let inv: Vec<Target> = (0..3).map(|i| target(&i.to_string(), &[])).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let picked = apply_mode(
            inv.clone(),
            SelectorMode::FixedPercent,
            Some("50"),
            &mut rng,
        )
        .unwrap();
        assert_eq!(picked.len(), 1);
        let one = vec![target("x", &[])];
        assert!(matches!(
            apply_mode(one, SelectorMode::FixedPercent, Some("50"), &mut rng),
            Err(SelectionError::ModeSelectsNone { .. })
        ));
    }

    #[test]
    fn target_caps_parse_counts_and_percentages() {
        use serde_json::json;
        let cap = |v: serde_json::Value| TargetCap::of_setting(Some(&v));
        assert_eq!(cap(json!(5)), Ok(Some(TargetCap::Count(5))));
        assert_eq!(cap(json!("5")), Ok(Some(TargetCap::Count(5))));
        assert_eq!(cap(json!("25%")), Ok(Some(TargetCap::Percent(25))));
        assert_eq!(TargetCap::of_setting(None), Ok(None));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("0%"),
            json!("101%"),
            json!("x"),
            json!(true),
        ] {
            assert!(cap(bad.clone()).is_err(), "{bad} accepted");
        }
        assert_eq!(TargetCap::Percent(25).limit(8), 2);
        assert_eq!(TargetCap::Percent(25).limit(3), 0);
        assert_eq!(TargetCap::Percent(25).describe(8), "25% of 8 target(s) = 2");
    }

    #[test]
    fn protected_label_parses_key_value_or_nothing() {
        assert_eq!(ProtectedLabel::parse(""), Ok(None));
        let label = ProtectedLabel::parse("chaoshub.dev/protected=true")
            .unwrap()
            .unwrap();
        assert_eq!(
            (label.key.as_str(), label.value.as_str()),
            ("chaoshub.dev/protected", "true")
        );
        for bad in ["protected", "=true", "key="] {
            assert!(ProtectedLabel::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn guardrails_refuse_a_matched_protected_target_and_an_oversized_selection() {
        let mut settings = serde_json::Map::new();
        settings.insert(PROTECTED_TARGETS_SETTING.into(), serde_json::json!(["b"]));
        settings.insert(MAX_TARGETS_SETTING.into(), serde_json::json!("50%"));
        let label = ProtectedLabel::parse("guard=yes").unwrap();
        let rails = Guardrails::of(label.as_ref(), &settings);
        let labelled = target("a", &[("guard", "yes")]);
        let listed = target("b", &[]);
        let free = target("c", &[]);
        assert!(matches!(
            rails.check("e", 4, std::slice::from_ref(&labelled), 1),
            Err(GuardrailError::Protected { target, .. }) if target == "a"
        ));
        assert!(matches!(
            rails.check("e", 4, &[free.clone(), listed], 1),
            Err(GuardrailError::Protected { target, .. }) if target == "b"
        ));
        assert_eq!(rails.check("e", 4, std::slice::from_ref(&free), 2), Ok(()));
        assert!(matches!(
            rails.check("e", 4, &[free], 3),
            Err(GuardrailError::TooMany { selected: 3, .. })
        ));
    }

    proptest! {
        #[test]
        fn max_selected_bounds_every_draw(
            n in 0usize..40,
            mode_index in 0usize..5,
            value in 1usize..=100,
            seed in any::<u64>(),
        ) {
            let inv: Vec<Target> = (0..n).map(|i| target(&format!("t{i:02}"), &[])).collect();
            let mode = [SelectorMode::One, SelectorMode::All, SelectorMode::Fixed, SelectorMode::FixedPercent, SelectorMode::RandomMaxPercent][mode_index];
            let value = value.to_string();
            let most = max_selected(n, mode, Some(&value)).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            if let Ok(picked) = apply_mode(inv, mode, Some(&value), &mut rng) {
                prop_assert!(picked.len() <= most);
            }
        }

        #[test]
        fn modes_never_pick_more_than_matched_nor_duplicates(
            n in 0usize..40,
            mode_index in 0usize..5,
            value in 1usize..150,
            seed in any::<u64>(),
        ) {
            let inv: Vec<Target> = (0..n).map(|i| target(&format!("t{i:02}"), &[])).collect();
            let mode = [SelectorMode::One, SelectorMode::All, SelectorMode::Fixed, SelectorMode::FixedPercent, SelectorMode::RandomMaxPercent][mode_index];
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let value = value.to_string();
            match apply_mode(inv.clone(), mode, Some(&value), &mut rng) {
                Ok(picked) => {
                    prop_assert!(picked.len() <= n);
                    let mut ids: Vec<_> = picked.iter().map(|t| t.id.clone()).collect();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), picked.len());
                    match mode {
                        SelectorMode::All => prop_assert_eq!(picked.len(), n),
                        SelectorMode::One => prop_assert_eq!(picked.len(), n.min(1)),
                        SelectorMode::Fixed => prop_assert_eq!(picked.len(), n.min(value.parse::<usize>().unwrap())),
                        SelectorMode::FixedPercent => prop_assert_eq!(picked.len(), n * value.parse::<usize>().unwrap() / 100),
                        SelectorMode::RandomMaxPercent => {
                            let max = (n * value.parse::<usize>().unwrap().min(100) / 100).max(n.min(1));
                            prop_assert!(picked.len() <= max && (n == 0 || !picked.is_empty()));
                        }
                    }
                }
                Err(SelectionError::BadValue { .. }) => prop_assert!(value.parse::<usize>().unwrap() > 100),
                Err(SelectionError::ModeSelectsNone { .. }) => prop_assert!(n > 0),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
