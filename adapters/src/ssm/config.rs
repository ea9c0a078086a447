//! Settings of an `ssm` environment, validated purely (no network, no credential lookup).
//!
//! ```yaml
//! spec:
//!   adapter: ssm
//!   endpoint: https://vpce-0abc.ssm.eu-west-1.vpce.amazonaws.com  # optional: tests, VPC endpoints
//!   settings:
//!     region: eu-west-1                # default: the standard AWS chain (AWS_REGION, profile)
//!     profile: chaos                   # a named profile of ~/.aws/config; default: the standard chain
//!     documents: own                   # own | managed (the AWSFIS-Run-* documents); default own
//!     document_name: chaoshub-RunFault # the Command document chaoshub creates and keeps up to date
//!     tags: {chaos: allowed}           # only instances with these tags are discovered
//!     instance_ids: [i-0123]           # only these instances are discovered
//!     managed_only: true               # keep only instances SSM reports Online (default true)
//!     empty_target_resolution_mode: fail  # fail | skip (as FIS); default fail
//!     revert_scheduler: auto           # auto | systemd-run | at | nohup (own documents)
//!     state_dir: /var/lib/chaoshub     # where scripts keep their revert state on the instance
//!     install_dependencies: true       # managed documents: let them install stress-ng, tc…
//!     ec2_endpoint: http://…           # DescribeInstances endpoint; default the endpoint above or EC2's
//!     config_file: /etc/chaoshub/aws-config       # optional shared config file instead of ~/.aws/config
//!     credentials_file: /etc/chaoshub/aws-creds   # optional shared credentials file
//!     timeout_ms: 10000                # per AWS API call attempt (default 10000)
//!     max_attempts: 5                  # attempts per AWS call, throttling included (default 5)
//!     retry_backoff_ms: 200            # first backoff between attempts (default 200)
//!     poll_interval_ms: 1000           # GetCommandInvocation polling (default 1000)
//!     command_timeout_secs: 300        # how long a command may take to reach a final state (default 300)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use chaoshub_schema::ValidationErrors;
use serde_json::Value;

use crate::settings::{integer_setting, json_type, reject_unknown, string_setting};
use crate::Environment;

const ENDPOINT_HELP: crate::settings::EndpointHelp = crate::settings::EndpointHelp {
    what:
        "an SSM endpoint URL, e.g. https://ssm.eu-west-1.amazonaws.com (leave it out for AWS's own)",
    credentials: "credentials come from the standard AWS chain or spec.settings.profile",
};

pub const DEFAULT_DOCUMENT_NAME: &str = "chaoshub-RunFault";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/chaoshub";
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 200;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 300;

/// Every key `spec.settings` may hold, in the order error messages list them.
pub const KNOWN_SETTINGS: &[&str] = &[
    "region",
    "profile",
    "documents",
    "document_name",
    "tags",
    "instance_ids",
    "managed_only",
    "empty_target_resolution_mode",
    "revert_scheduler",
    "state_dir",
    "install_dependencies",
    "ec2_endpoint",
    "config_file",
    "credentials_file",
    "timeout_ms",
    "max_attempts",
    "retry_backoff_ms",
    "poll_interval_ms",
    "command_timeout_secs",
];

/// Which SSM Command documents carry the faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocumentMode {
    /// chaoshub's own Command document (created and updated by the adapter) runs a generated
    /// shell script that applies the fault, schedules its revert on the instance and exits.
    #[default]
    Own,
    /// The AWS-managed AWSFIS-Run-* documents with their parameters; they hold the fault for
    /// `DurationSeconds` and remove it themselves.
    Managed,
}

impl DocumentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Managed => "managed",
        }
    }
}

/// How the generated scripts arm the revert on the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevertScheduler {
    /// systemd-run when systemd runs the host, else `at` when atd runs, else nohup.
    #[default]
    Auto,
    SystemdRun,
    At,
    Nohup,
}

impl RevertScheduler {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::SystemdRun => "systemd-run",
            Self::At => "at",
            Self::Nohup => "nohup",
        }
    }
}

/// What happens when the selector resolves to no instance (FIS's `emptyTargetResolutionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyTargetResolution {
    #[default]
    Fail,
    Skip,
}

/// An SSM environment's endpoint and settings, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SsmConfig {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub documents: DocumentMode,
    pub document_name: String,
    pub tags: BTreeMap<String, String>,
    pub instance_ids: Vec<String>,
    pub managed_only: bool,
    pub empty_targets: EmptyTargetResolution,
    pub revert_scheduler: RevertScheduler,
    pub state_dir: String,
    pub install_dependencies: bool,
    pub ec2_endpoint: Option<String>,
    pub config_file: Option<String>,
    pub credentials_file: Option<String>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub poll_interval: Duration,
    pub command_timeout: Duration,
}

fn bool_setting(
    settings: &serde_json::Map<String, Value>,
    key: &str,
    default: bool,
    errors: &mut ValidationErrors,
) -> bool {
    match settings.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errors.push(
                format!("spec.settings.{key}"),
                format!("must be true or false, got {}", json_type(other)),
            );
            default
        }
    }
}

/// One of `choices` (by name), or the default.
fn choice_setting<T: Copy + Default>(
    settings: &serde_json::Map<String, Value>,
    key: &str,
    choices: &[(&str, T)],
    errors: &mut ValidationErrors,
) -> T {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    match settings.get(key) {
        None | Some(Value::Null) => T::default(),
        Some(Value::String(s)) => match choices.iter().find(|(n, _)| *n == s.as_str()) {
            Some((_, v)) => *v,
            None => {
                errors.push(
                    format!("spec.settings.{key}"),
                    format!("must be one of {}, got {s:?}", names.join(", ")),
                );
                T::default()
            }
        },
        Some(other) => {
            errors.push(
                format!("spec.settings.{key}"),
                format!(
                    "must be one of {} (a string), got {}",
                    names.join(", "),
                    json_type(other)
                ),
            );
            T::default()
        }
    }
}

/// AWS regions are lowercase words joined by dashes (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// `i-` followed by 8 or 17 hex digits, or `mi-` for hybrid managed nodes.
pub fn valid_instance_id(id: &str) -> bool {
    let hex = id.strip_prefix("i-").or_else(|| id.strip_prefix("mi-"));
    hex.is_some_and(|h| (8..=17).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// SSM document names: letters, digits, `_`, `-`, `.`; 3 to 128 characters; `AWS`/`Amazon`
/// prefixes are reserved by AWS.
fn valid_document_name(name: &str) -> Result<(), &'static str> {
    if !(3..=128).contains(&name.len()) {
        return Err("must be 3 to 128 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("may hold only letters, digits, '_', '-' and '.'");
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("amazon") {
        return Err("must not start with aws or amazon (prefixes reserved by AWS)");
    }
    Ok(())
}

impl SsmConfig {
    /// Reads and validates an environment's endpoint and settings, reporting every problem with
    /// its path (`spec.endpoint`, `spec.settings.region`, …).
    pub fn from_environment(env: &Environment) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let endpoint = match env.spec.endpoint.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(_) => crate::settings::http_endpoint(
                env.spec.endpoint.as_deref(),
                &ENDPOINT_HELP,
                &mut errors,
            )
            .map(|u| u.as_str().trim_end_matches('/').to_string()),
        };
        let settings = &env.spec.settings;
        reject_unknown(settings, KNOWN_SETTINGS, &mut errors);

        let region = string_setting(settings, "region", &mut errors);
        if let Some(r) = &region {
            if !valid_region(r) {
                errors.push(
                    "spec.settings.region",
                    format!("{r:?} is not an AWS region name such as eu-west-1"),
                );
            }
        }
        let profile = string_setting(settings, "profile", &mut errors);
        let documents = choice_setting(
            settings,
            "documents",
            &[
                ("own", DocumentMode::Own),
                ("managed", DocumentMode::Managed),
            ],
            &mut errors,
        );
        let document_name = string_setting(settings, "document_name", &mut errors)
            .unwrap_or_else(|| DEFAULT_DOCUMENT_NAME.to_string());
        if let Err(why) = valid_document_name(&document_name) {
            errors.push("spec.settings.document_name", why);
        }

        let mut tags = BTreeMap::new();
        match settings.get("tags") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    match value {
                        Value::String(v) if !key.is_empty() => {
                            tags.insert(key.clone(), v.clone());
                        }
                        _ if key.is_empty() => {
                            errors.push("spec.settings.tags", "tag keys must not be empty")
                        }
                        other => errors.push(
                            format!("spec.settings.tags.{key}"),
                            format!("must be a string, got {}", json_type(other)),
                        ),
                    }
                }
            }
            Some(other) => errors.push(
                "spec.settings.tags",
                format!(
                    "must be a map of tag key to value, got {}",
                    json_type(other)
                ),
            ),
        }

        let mut instance_ids = Vec::new();
        match settings.get("instance_ids") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(id) if valid_instance_id(id) => instance_ids.push(id.to_string()),
                        _ => errors.push(
                            format!("spec.settings.instance_ids[{i}]"),
                            format!(
                                "must be an instance id such as i-0123456789abcdef0, got {item}"
                            ),
                        ),
                    }
                }
            }
            Some(other) => errors.push(
                "spec.settings.instance_ids",
                format!("must be a list of instance ids, got {}", json_type(other)),
            ),
        }

        let managed_only = bool_setting(settings, "managed_only", true, &mut errors);
        let empty_targets = choice_setting(
            settings,
            "empty_target_resolution_mode",
            &[
                ("fail", EmptyTargetResolution::Fail),
                ("skip", EmptyTargetResolution::Skip),
            ],
            &mut errors,
        );
        let revert_scheduler = choice_setting(
            settings,
            "revert_scheduler",
            &[
                ("auto", RevertScheduler::Auto),
                ("systemd-run", RevertScheduler::SystemdRun),
                ("at", RevertScheduler::At),
                ("nohup", RevertScheduler::Nohup),
            ],
            &mut errors,
        );
        let state_dir = string_setting(settings, "state_dir", &mut errors)
            .unwrap_or_else(|| DEFAULT_STATE_DIR.to_string());
        // The state directory is pasted into scripts that run as root and `rm -rf` below it,
        // so only plain absolute paths are accepted.
        if !state_dir.starts_with('/')
            || state_dir == "/"
            || state_dir.split('/').any(|p| p == ".." || p == ".")
            || !state_dir
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
        {
            errors.push(
                "spec.settings.state_dir",
                format!(
                    "must be an absolute path of letters, digits, '/', '_', '-', '.' (not / and \
                     without . or .. parts), got {state_dir:?}"
                ),
            );
        }
        let install_dependencies =
            bool_setting(settings, "install_dependencies", true, &mut errors);
        let ec2_endpoint = string_setting(settings, "ec2_endpoint", &mut errors).and_then(|e| {
            crate::settings::http_endpoint(
                Some(e.as_str()),
                &ENDPOINT_HELP,
                &mut ValidationErrors::new(),
            )
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .or_else(|| {
                errors.push(
                    "spec.settings.ec2_endpoint",
                    format!("must be an http(s) URL with a host, got {e:?}"),
                );
                None
            })
        });
        let config_file = string_setting(settings, "config_file", &mut errors);
        let credentials_file = string_setting(settings, "credentials_file", &mut errors);
        let timeout_ms = integer_setting(settings, "timeout_ms", 1, 600_000, &mut errors);
        let max_attempts = integer_setting(settings, "max_attempts", 1, 20, &mut errors);
        let backoff_ms = integer_setting(settings, "retry_backoff_ms", 0, 60_000, &mut errors);
        let poll_ms = integer_setting(settings, "poll_interval_ms", 10, 60_000, &mut errors);
        let command_timeout =
            integer_setting(settings, "command_timeout_secs", 1, 172_800, &mut errors);
        errors.into_result()?;
        Ok(Self {
            endpoint,
            region,
            profile,
            documents,
            document_name,
            tags,
            instance_ids,
            managed_only,
            empty_targets,
            revert_scheduler,
            state_dir: state_dir.trim_end_matches('/').to_string(),
            install_dependencies,
            ec2_endpoint,
            config_file,
            credentials_file,
            timeout: Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
            max_attempts: max_attempts.map_or(DEFAULT_MAX_ATTEMPTS, |n| n as u32),
            retry_backoff: Duration::from_millis(backoff_ms.unwrap_or(DEFAULT_RETRY_BACKOFF_MS)),
            poll_interval: Duration::from_millis(poll_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS)),
            command_timeout: Duration::from_secs(
                command_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT_SECS),
            ),
        })
    }

    /// Where DescribeInstances goes: the explicit setting, else the SSM endpoint override (a
    /// local AWS endpoint such as moto serves every service on one port), else EC2's regional
    /// endpoint.
    pub fn ec2_endpoint_for(&self, region: &str) -> String {
        if let Some(e) = &self.ec2_endpoint {
            return e.clone();
        }
        if let Some(e) = &self.endpoint {
            return e.clone();
        }
        if region.starts_with("cn-") {
            format!("https://ec2.{region}.amazonaws.com.cn")
        } else {
            format!("https://ec2.{region}.amazonaws.com")
        }
    }
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::environment::EnvironmentSpec;
    use serde_json::json;

    use super::*;

    fn env(endpoint: Option<&str>, settings: Value) -> Environment {
        Environment {
            name: "fleet".into(),
            spec: EnvironmentSpec {
                adapter: "ssm".into(),
                endpoint: endpoint.map(str::to_string),
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    fn paths(result: Result<SsmConfig, ValidationErrors>) -> Vec<String> {
        let mut paths: Vec<String> = result.unwrap_err().iter().map(|e| e.path.clone()).collect();
        paths.sort();
        paths
    }

    #[test]
    fn the_endpoints_named_for_the_allow_list_include_aws_defaults() {
        use crate::Adapter;
        let adapter = super::super::SsmAdapter::new();
        let regional = adapter.endpoints(&env(None, json!({"region": "eu-west-1"})));
        assert_eq!(
            regional.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>(),
            [
                "https://ssm.eu-west-1.amazonaws.com",
                "https://ec2.eu-west-1.amazonaws.com"
            ]
        );
        assert_eq!(
            regional[0].0, "spec.endpoint",
            "AWS's default, named where it is set"
        );
        let china = adapter.endpoints(&env(None, json!({"region": "cn-north-1"})));
        assert_eq!(china[1].1, "https://ec2.cn-north-1.amazonaws.com.cn");
        // One local endpoint serves both services.
        let local = adapter.endpoints(&env(Some("http://127.0.0.1:5000"), json!({})));
        assert_eq!(
            local,
            [(
                "spec.endpoint".to_string(),
                "http://127.0.0.1:5000".to_string()
            )]
        );
        let split = adapter.endpoints(&env(
            Some("http://127.0.0.1:5000"),
            json!({"ec2_endpoint": "http://127.0.0.1:5001"}),
        ));
        assert_eq!(split[1].0, "spec.settings.ec2_endpoint");
    }

    #[test]
    fn defaults_apply_without_endpoint_or_settings() {
        let c = SsmConfig::from_environment(&env(None, json!({}))).unwrap();
        assert_eq!(c.documents, DocumentMode::Own);
        assert_eq!(c.document_name, DEFAULT_DOCUMENT_NAME);
        assert_eq!(c.state_dir, DEFAULT_STATE_DIR);
        assert!(c.managed_only);
        assert_eq!(c.empty_targets, EmptyTargetResolution::Fail);
        assert_eq!(
            c.ec2_endpoint_for("eu-west-1"),
            "https://ec2.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn the_endpoint_also_serves_ec2_unless_told_otherwise() {
        let c =
            SsmConfig::from_environment(&env(Some("http://127.0.0.1:5000/"), json!({}))).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.ec2_endpoint_for("us-east-1"), "http://127.0.0.1:5000");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let result = SsmConfig::from_environment(&env(
            Some("ftp://x"),
            json!({
                "region": "EU West", "documents": "aws", "document_name": "AWS-RunShellScript",
                "tags": {"team": 3}, "instance_ids": ["i-xyz"], "managed_only": "yes",
                "empty_target_resolution_mode": "ignore", "revert_scheduler": "cron",
                "state_dir": "/var/../etc", "timeout_ms": 0, "colour": 1
            }),
        ));
        assert_eq!(
            paths(result),
            [
                "spec.endpoint",
                "spec.settings.colour",
                "spec.settings.document_name",
                "spec.settings.documents",
                "spec.settings.empty_target_resolution_mode",
                "spec.settings.instance_ids[0]",
                "spec.settings.managed_only",
                "spec.settings.region",
                "spec.settings.revert_scheduler",
                "spec.settings.state_dir",
                "spec.settings.tags.team",
                "spec.settings.timeout_ms",
            ]
        );
    }

    #[test]
    fn instance_ids_are_checked() {
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-01234567"));
        assert!(valid_instance_id("mi-0123456789abcdef0"));
        assert!(!valid_instance_id("i-"));
        assert!(!valid_instance_id("0123456789abcdef0"));
        assert!(!valid_instance_id("i-0123456789abcdefg"));
    }
}
