//! Checks and accessors shared by the Chaos Mesh kinds.

use crate::duration::parse_duration;
use crate::error::{join_path, ValidationErrors};
use crate::selector::SelectorMode;

/// Implements the `FaultSpec` accessors every selector-based kind shares: `mode`, `value`,
/// `duration`, `environment` (falling back to `remoteCluster`) and `set_environment`.
macro_rules! common_fault_accessors {
    () => {
        fn mode(&self) -> Option<$crate::selector::SelectorMode> {
            Some(self.mode)
        }
        fn value(&self) -> Option<&str> {
            self.value.as_deref()
        }
        fn duration(&self) -> Option<&str> {
            self.duration.as_deref()
        }
        fn environment(&self) -> Option<&str> {
            self.environment
                .as_deref()
                .or(self.remote_cluster.as_deref())
        }
        fn set_environment(&mut self, env: &str) {
            self.environment = Some(env.to_string());
        }
    };
}
pub(crate) use common_fault_accessors;

/// The same accessors for the cloud kinds, which have neither `mode` nor `value`.
macro_rules! cloud_fault_accessors {
    () => {
        fn target_selector(&self) -> Option<$crate::selector::TargetSelector> {
            None
        }
        fn mode(&self) -> Option<$crate::selector::SelectorMode> {
            None
        }
        fn value(&self) -> Option<&str> {
            None
        }
        fn duration(&self) -> Option<&str> {
            self.duration.as_deref()
        }
        fn environment(&self) -> Option<&str> {
            self.environment
                .as_deref()
                .or(self.remote_cluster.as_deref())
        }
        fn set_environment(&mut self, env: &str) {
            self.environment = Some(env.to_string());
        }
    };
}
pub(crate) use cloud_fault_accessors;

/// `mode` / `value` consistency, as Chaos Mesh's webhook checks it.
pub(crate) fn check_mode_value(
    mode: SelectorMode,
    value: Option<&str>,
    path: &str,
    errors: &mut ValidationErrors,
) {
    let value_path = join_path(path, "value");
    match mode {
        SelectorMode::One | SelectorMode::All => {}
        SelectorMode::Fixed => match value {
            None => errors.push(
                value_path,
                "is required when mode is fixed (a count, e.g. \"2\")",
            ),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 => {}
                _ => errors.push(
                    value_path,
                    format!("must be an integer of at least 1 when mode is fixed; got {v:?}"),
                ),
            },
        },
        SelectorMode::FixedPercent | SelectorMode::RandomMaxPercent => match value {
            None => errors.push(
                value_path,
                format!(
                    "is required when mode is {} (a percentage, 1 to 100)",
                    mode.as_str()
                ),
            ),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=100).contains(&n) => {}
                _ => errors.push(
                    value_path,
                    format!(
                        "must be an integer percentage from 1 to 100 when mode is {}; got {v:?}",
                        mode.as_str()
                    ),
                ),
            },
        },
    }
}

/// An optional duration field (`30s`, `100ms`, `1h30m`).
pub(crate) fn check_duration(
    value: Option<&str>,
    path: &str,
    field: &str,
    errors: &mut ValidationErrors,
) {
    if let Some(text) = value {
        if let Err(e) = parse_duration(text) {
            errors.push(join_path(path, field), e);
        }
    }
}

/// A duration that may carry a sign (TimeChaos `timeOffset`: `-10m100ns`).
pub(crate) fn check_signed_duration(
    value: Option<&str>,
    path: &str,
    field: &str,
    errors: &mut ValidationErrors,
) {
    if let Some(text) = value {
        let unsigned = text
            .strip_prefix('-')
            .or_else(|| text.strip_prefix('+'))
            .unwrap_or(text);
        if let Err(e) = parse_duration(unsigned) {
            errors.push(
                join_path(path, field),
                format!("{e} (a leading - is allowed)"),
            );
        }
    }
}

/// A percentage written as a string, as NetworkChaos writes `loss: "25"`.
pub(crate) fn check_percent_str(
    value: Option<&str>,
    path: &str,
    field: &str,
    errors: &mut ValidationErrors,
) {
    if let Some(text) = value {
        match text.trim().parse::<f64>() {
            Ok(n) if (0.0..=100.0).contains(&n) => {}
            Ok(_) => errors.push(
                join_path(path, field),
                format!("must be a percentage from 0 to 100; got {text:?}"),
            ),
            Err(_) => errors.push(
                join_path(path, field),
                format!("must be a number from 0 to 100 written as a string (e.g. \"25\"); got {text:?}"),
            ),
        }
    }
}

/// An integer range check, for fields the CRD bounds with `minimum` / `maximum`.
pub(crate) fn check_range(
    value: Option<i64>,
    min: i64,
    max: i64,
    path: &str,
    field: &str,
    errors: &mut ValidationErrors,
) {
    if let Some(v) = value {
        if v < min || v > max {
            errors.push(
                join_path(path, field),
                format!("must be from {min} to {max}; got {v}"),
            );
        }
    }
}

/// A field that the given action needs.
pub(crate) fn require<T>(
    value: &Option<T>,
    path: &str,
    field: &str,
    why: &str,
    errors: &mut ValidationErrors,
) {
    if value.is_none() {
        errors.push(join_path(path, field), format!("is required {why}"));
    }
}

/// chaoshub's `environment` extension: a name when present.
pub(crate) fn check_environment(value: Option<&str>, path: &str, errors: &mut ValidationErrors) {
    if let Some(env) = value {
        if env.trim().is_empty() {
            errors.push(
                join_path(path, "environment"),
                "must name a registered environment",
            );
        }
    }
}

/// A TCP/UDP port.
pub(crate) fn check_port(
    value: Option<i64>,
    path: &str,
    field: &str,
    errors: &mut ValidationErrors,
) {
    check_range(value, 1, 65535, path, field, errors);
}

/// A bandwidth rate as tc writes it (`100kbps`, `1mbit`).
pub(crate) fn check_rate(value: &str, path: &str, field: &str, errors: &mut ValidationErrors) {
    let text = value.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number_ok = !number.is_empty() && number.parse::<f64>().is_ok();
    let unit_ok = matches!(
        unit,
        "bit" | "kbit" | "mbit" | "gbit" | "tbit" | "bps" | "kbps" | "mbps" | "gbps" | "tbps"
    );
    if !number_ok || !unit_ok {
        errors.push(
            join_path(path, field),
            format!(
                "must be a rate such as 100kbps or 1mbit (units bit, kbit, mbit, gbit, tbit, bps, \
                 kbps, mbps, gbps, tbps); got {value:?}"
            ),
        );
    }
}

/// A size such as `256MB`, `1GiB`, `1024` or `50%` (stress-ng sizes, disk fill sizes).
pub(crate) fn check_size(
    value: Option<&str>,
    path: &str,
    field: &str,
    errors: &mut ValidationErrors,
) {
    let Some(value) = value else { return };
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit_ok = matches!(
        unit.to_ascii_uppercase().as_str(),
        "" | "%"
            | "B"
            | "K"
            | "KB"
            | "KIB"
            | "M"
            | "MB"
            | "MIB"
            | "G"
            | "GB"
            | "GIB"
            | "T"
            | "TB"
            | "TIB"
            | "P"
            | "PB"
            | "PIB"
    );
    if number.is_empty() || number.parse::<f64>().is_err() || !unit_ok {
        errors.push(
            join_path(path, field),
            format!("must be a size such as 256MB, 1GB or 50%; got {value:?}"),
        );
    }
}

pub(crate) fn index_path(path: &str, field: &str, index: usize) -> String {
    format!("{}[{index}]", join_path(path, field))
}

/// The fields every selector-based kind shares: `mode`/`value`, `selector`, `duration`,
/// `environment`.
pub(crate) fn check_pod_common(
    mode: SelectorMode,
    value: Option<&str>,
    selector: &dyn crate::validate::Validate,
    duration: Option<&str>,
    environment: Option<&str>,
    path: &str,
    errors: &mut ValidationErrors,
) {
    check_mode_value(mode, value, path, errors);
    selector.validate(&join_path(path, "selector"), errors);
    check_duration(duration, path, "duration", errors);
    check_environment(environment, path, errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(f: impl FnOnce(&mut ValidationErrors)) -> Vec<String> {
        let mut errors = ValidationErrors::new();
        f(&mut errors);
        errors.iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn mode_value_rules() {
        let check = |mode, value| errors_of(|e| check_mode_value(mode, value, "spec", e));
        assert!(check(SelectorMode::One, None).is_empty());
        assert!(check(SelectorMode::All, Some("5")).is_empty());
        assert_eq!(check(SelectorMode::Fixed, None), ["spec.value"]);
        assert_eq!(check(SelectorMode::Fixed, Some("0")), ["spec.value"]);
        assert!(check(SelectorMode::Fixed, Some("3")).is_empty());
        assert_eq!(
            check(SelectorMode::FixedPercent, Some("101")),
            ["spec.value"]
        );
        assert_eq!(
            check(SelectorMode::RandomMaxPercent, Some("x")),
            ["spec.value"]
        );
        assert!(check(SelectorMode::RandomMaxPercent, Some("100")).is_empty());
    }

    #[test]
    fn rates_sizes_and_signed_durations() {
        let rate = |r| errors_of(|e| check_rate(r, "p", "rate", e));
        assert!(rate("100kbps").is_empty());
        assert!(rate("1mbit").is_empty());
        assert_eq!(rate("fast"), ["p.rate"]);
        assert_eq!(rate("100"), ["p.rate"]);
        let size = |s| errors_of(|e| check_size(Some(s), "p", "size", e));
        assert!(size("10GB").is_empty());
        assert!(size("50%").is_empty());
        assert_eq!(size("lots"), ["p.size"]);
        let offset = |s| errors_of(|e| check_signed_duration(Some(s), "p", "timeOffset", e));
        assert!(offset("-10m100ns").is_empty());
        assert!(offset("+5s").is_empty());
        assert_eq!(offset("--5s"), ["p.timeOffset"]);
    }
}
