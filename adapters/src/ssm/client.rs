//! The AWS side: an SSM client from the standard credential chain (or a named profile), the
//! Run Command calls (SendCommand, GetCommandInvocation, CancelCommand, ListCommands), the own
//! document's upkeep, DescribeInstanceInformation, and the mapping of SDK errors onto
//! `AdapterError`. Throttling and transient failures are retried by the SDK's standard retry
//! strategy (exponential backoff with jitter), configured from the environment's settings.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{DocumentFormat, DocumentType};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_types::error::display::DisplayErrorContext;
use chaoshub_schema::ValidationErrors;

use super::config::SsmConfig;
use super::documents::{self, CommandPlan};
use crate::{AdapterError, Environment};

/// How much of a command's stdout/stderr goes into an error message or the stored details.
const EXCERPT_CHARS: usize = 600;

/// Codes AWS uses when it slows a caller down; the SDK already retried them.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "TooManyUpdates",
];

/// One invocation of a command on one instance, as GetCommandInvocation reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub status: String,
    pub status_details: String,
    pub response_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Invocation {
    /// `Success`, `Failed`, `TimedOut`, `Cancelled`: the instance is done with it.
    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status)
    }

    /// What an error message says about a finished invocation.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} ({}, exit status {})",
            self.status, self.status_details, self.response_code
        );
        if !self.stderr.trim().is_empty() {
            text.push_str(&format!("; stderr: {}", excerpt(&self.stderr)));
        }
        if !self.stdout.trim().is_empty() {
            text.push_str(&format!("; stdout: {}", excerpt(&self.stdout)));
        }
        text
    }
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "Success" | "Failed" | "TimedOut" | "Cancelled")
}

/// The last characters of an output (a script's reason is at its end).
pub fn excerpt(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= EXCERPT_CHARS {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - EXCERPT_CHARS).collect();
    format!("…{tail}")
}

/// A managed instance as DescribeInstanceInformation reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedInstance {
    pub ping_status: String,
    pub platform_type: String,
    pub agent_version: String,
}

/// One environment's AWS clients. Built per call, so the adapter stays stateless; the SDK
/// caches nothing the hub would have to invalidate.
pub struct SsmClient {
    environment: String,
    config: SsmConfig,
    sdk: SdkConfig,
    ssm: aws_sdk_ssm::Client,
    region: String,
}

impl SsmClient {
    /// Builds the clients from the environment's settings: credentials from the standard chain
    /// (environment, shared files, web identity, ECS, IMDS) or the named profile.
    pub async fn new(env: &Environment) -> Result<Self, AdapterError> {
        let config = SsmConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        // rustls on ring: the SDK's default (aws-lc-rs) costs a C toolchain and minutes of
        // build time for the same TLS.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(config.max_attempts)
                    .with_initial_backoff(config.retry_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.timeout)
                    .operation_attempt_timeout(config.timeout)
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if config.config_file.is_some() || config.credentials_file.is_some() {
            let mut files = EnvConfigFiles::builder()
                .include_default_config_file(config.config_file.is_none())
                .include_default_credentials_file(config.credentials_file.is_none());
            if let Some(f) = &config.config_file {
                files = files.with_file(EnvConfigFileKind::Config, f);
            }
            if let Some(f) = &config.credentials_file {
                files = files.with_file(EnvConfigFileKind::Credentials, f);
            }
            loader = loader.profile_files(files.build());
        }
        let sdk = loader.load().await;
        let Some(region) = sdk.region().map(|r| r.to_string()) else {
            let mut errors = ValidationErrors::new();
            errors.push(
                "spec.settings.region",
                "no region: set it here, or through AWS_REGION or the profile's region",
            );
            return Err(AdapterError::InvalidSettings(errors));
        };
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        Ok(Self {
            environment: env.name.clone(),
            config,
            sdk,
            ssm,
            region,
        })
    }

    pub fn config(&self) -> &SsmConfig {
        &self.config
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// What messages call the far side.
    pub fn endpoint_label(&self) -> String {
        self.config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://ssm.{}.amazonaws.com", self.region))
    }

    /// Turns an SDK error into the error the hub sees: no answer → `Unreachable` (503), a
    /// client error → `Rejected` with AWS's code and message, throttling that outlasted the
    /// retries and server errors → `Failed`.
    pub fn error<E, R>(&self, context: &str, err: SdkError<E, R>) -> AdapterError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_string);
        let message = err.message().map(str::to_string).unwrap_or_default();
        match &err {
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
                AdapterError::Unreachable {
                    environment: self.environment.clone(),
                    endpoint: self.endpoint_label(),
                    message: format!("{context}: {}", DisplayErrorContext(&err)),
                }
            }
            SdkError::TimeoutError(_) => AdapterError::Unreachable {
                environment: self.environment.clone(),
                endpoint: self.endpoint_label(),
                message: format!(
                    "{context}: no answer within {} ms (spec.settings.timeout_ms)",
                    self.config.timeout.as_millis()
                ),
            },
            SdkError::ServiceError(_) => {
                let code = code.unwrap_or_else(|| "an unnamed error".into());
                if THROTTLING_CODES.contains(&code.as_str()) {
                    AdapterError::Failed(format!(
                        "{context}: AWS kept throttling the calls ({code}) after {} attempts \
                         with backoff (spec.settings.max_attempts): {message}",
                        self.config.max_attempts
                    ))
                } else if code.starts_with("InternalServer") || code == "ServiceUnavailable" {
                    AdapterError::Failed(format!("{context}: AWS answered {code}: {message}"))
                } else {
                    AdapterError::Rejected(format!("{context}: AWS answered {code}: {message}"))
                }
            }
            _ => AdapterError::Failed(format!("{context}: {}", DisplayErrorContext(&err))),
        }
    }

    /// Creates chaoshub's own Command document, or updates it (new default version) when its
    /// content differs from this build's.
    pub async fn ensure_own_document(&self) -> Result<(), AdapterError> {
        let name = &self.config.document_name;
        let wanted = documents::own_document_content();
        let content = wanted.to_string();
        let context = format!("keeping document {name:?} up to date");
        match self.ssm.get_document().name(name).send().await {
            Ok(out) => {
                let current = out
                    .content()
                    .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
                if current.as_ref() == Some(&wanted) {
                    return Ok(());
                }
                tracing::info!(environment = %self.environment, document = %name, "updating the own ssm document");
                let updated = match self
                    .ssm
                    .update_document()
                    .name(name)
                    .content(&content)
                    .document_format(DocumentFormat::Json)
                    .document_version("$LATEST")
                    .send()
                    .await
                {
                    Ok(u) => u,
                    // Another hub (or a concurrent injection) got there first.
                    Err(e) if e.code() == Some("DuplicateDocumentContent") => return Ok(()),
                    Err(e) => return Err(self.error(&context, e)),
                };
                let version = updated
                    .document_description()
                    .and_then(|d| d.document_version())
                    .map(str::to_string);
                if let Some(version) = version {
                    self.ssm
                        .update_document_default_version()
                        .name(name)
                        .document_version(version)
                        .send()
                        .await
                        .map_err(|e| self.error(&context, e))?;
                }
                Ok(())
            }
            Err(e) if e.code() == Some("InvalidDocument") => {
                tracing::info!(environment = %self.environment, document = %name, "creating the own ssm document");
                match self
                    .ssm
                    .create_document()
                    .name(name)
                    .content(&content)
                    .document_type(DocumentType::Command)
                    .document_format(DocumentFormat::Json)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.code() == Some("DocumentAlreadyExists") => Ok(()),
                    Err(e) => Err(self.error(&context, e)),
                }
            }
            Err(e) => Err(self.error(&context, e)),
        }
    }

    /// SendCommand to one instance; returns the command id.
    pub async fn send_command(
        &self,
        plan: &CommandPlan,
        instance_id: &str,
        comment: &str,
    ) -> Result<String, AdapterError> {
        let parameters: HashMap<String, Vec<String>> = plan
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // SendCommand's TimeoutSeconds is how long the command may wait for the instance to
        // pick it up (30 s to 30 days).
        let delivery = self.config.command_timeout.as_secs().clamp(30, 2_592_000) as i32;
        let comment: String = comment.chars().take(100).collect();
        let out = self
            .ssm
            .send_command()
            .document_name(&plan.document)
            .instance_ids(instance_id)
            .set_parameters(Some(parameters))
            .comment(comment)
            .timeout_seconds(delivery)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    &format!("sending {} to instance {instance_id}", plan.document),
                    e,
                )
            })?;
        out.command()
            .and_then(|c| c.command_id())
            .map(str::to_string)
            .ok_or_else(|| {
                AdapterError::Failed(format!(
                    "SendCommand of {} to {instance_id} answered no command id",
                    plan.document
                ))
            })
    }

    /// GetCommandInvocation; `None` while SSM does not know the invocation yet (it answers
    /// InvocationDoesNotExist for a moment after SendCommand).
    pub async fn invocation(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> Result<Option<Invocation>, AdapterError> {
        match self
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Invocation {
                status: out
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "Pending".into()),
                status_details: out.status_details().unwrap_or_default().to_string(),
                response_code: out.response_code(),
                stdout: out
                    .standard_output_content()
                    .unwrap_or_default()
                    .to_string(),
                stderr: out.standard_error_content().unwrap_or_default().to_string(),
            })),
            Err(e) if e.code() == Some("InvocationDoesNotExist") => Ok(None),
            Err(e) => Err(self.error(
                &format!("reading command {command_id} on instance {instance_id}"),
                e,
            )),
        }
    }

    /// Polls an invocation until `done` says so or it is terminal, for at most
    /// `command_timeout_secs`. Pending, InProgress, Delayed and Cancelling are waited on.
    pub async fn wait(
        &self,
        command_id: &str,
        instance_id: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<Invocation, AdapterError> {
        let started = Instant::now();
        let mut last: Option<Invocation> = None;
        loop {
            if let Some(inv) = self.invocation(command_id, instance_id).await? {
                if done(&inv.status) || inv.is_terminal() {
                    return Ok(inv);
                }
                last = Some(inv);
            }
            if started.elapsed() >= self.config.command_timeout {
                let state = last
                    .map(|i| format!("{} ({})", i.status, i.status_details))
                    .unwrap_or_else(|| "unknown to SSM".into());
                return Err(AdapterError::Failed(format!(
                    "command {command_id} on instance {instance_id} was still {state} after \
                     {} s (spec.settings.command_timeout_secs); is the SSM agent online?",
                    self.config.command_timeout.as_secs()
                )));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// CancelCommand for one instance.
    pub async fn cancel(&self, command_id: &str, instance_id: &str) -> Result<(), AdapterError> {
        self.ssm
            .cancel_command()
            .command_id(command_id)
            .instance_ids(instance_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                self.error(
                    &format!("cancelling command {command_id} on instance {instance_id}"),
                    e,
                )
            })
    }

    /// The newest command sent to an instance whose comment names this injection (recovery
    /// after a crash that lost the command id).
    pub async fn find_command(
        &self,
        instance_id: &str,
        injection_id: &str,
    ) -> Result<Option<String>, AdapterError> {
        let needle = format!(" {injection_id} inject");
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let out = self
                .ssm
                .list_commands()
                .instance_id(instance_id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    self.error(&format!("listing commands of instance {instance_id}"), e)
                })?;
            if let Some(c) = out
                .commands()
                .iter()
                .filter(|c| c.comment().is_some_and(|t| t.ends_with(&needle)))
                .max_by_key(|c| c.requested_date_time().map(|d| d.secs()))
            {
                return Ok(c.command_id().map(str::to_string));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(None)
    }

    /// DescribeInstanceInformation: every managed node SSM knows, by instance id.
    pub async fn managed_instances(
        &self,
    ) -> Result<BTreeMap<String, ManagedInstance>, AdapterError> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let page = self
                .ssm
                .describe_instance_information()
                .max_results(50)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.error("listing managed instances", e))?;
            for info in page.instance_information_list() {
                if let Some(id) = info.instance_id() {
                    out.insert(
                        id.to_string(),
                        ManagedInstance {
                            ping_status: info
                                .ping_status()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                            platform_type: info
                                .platform_type()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                            agent_version: info.agent_version().unwrap_or_default().to_string(),
                        },
                    );
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The current credentials, for the signed EC2 call.
    pub async fn credentials(&self) -> Result<aws_credential_types::Credentials, AdapterError> {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = self.sdk.credentials_provider().ok_or_else(|| {
            AdapterError::Failed(
                "no AWS credentials provider is configured (standard chain or spec.settings.profile)"
                    .into(),
            )
        })?;
        provider.provide_credentials().await.map_err(|e| {
            AdapterError::Failed(format!(
                "cannot load AWS credentials for environment {:?}: {}",
                self.environment,
                DisplayErrorContext(&e)
            ))
        })
    }
}
