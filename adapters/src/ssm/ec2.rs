//! EC2 DescribeInstances over the Query API, signed with SigV4 by hand: the only EC2 call the
//! adapter needs, without aws-sdk-ec2 (by far the largest AWS SDK crate, minutes of build on
//! two cores). The answer's XML is read with a small streaming parser that keeps only the
//! fields the inventory uses.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use xmlparser::{ElementEnd, Token, Tokenizer};

use super::client::SsmClient;
use crate::AdapterError;

const API_VERSION: &str = "2016-11-15";
/// A DescribeInstances answer is a page of at most 1000 instances; 100 pages is a fleet of
/// 100 000, far beyond what one environment should hold.
const MAX_PAGES: usize = 100;
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// An instance as DescribeInstances describes it (the fields the inventory uses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ec2Instance {
    pub instance_id: String,
    pub instance_type: String,
    pub state: String,
    pub private_ip: String,
    pub private_dns: String,
    pub availability_zone: String,
    pub platform: String,
    pub tags: BTreeMap<String, String>,
}

/// One page of a DescribeInstances answer.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    pub instances: Vec<Ec2Instance>,
    pub next_token: Option<String>,
}

/// Parses a DescribeInstancesResponse (or an EC2 error response, returned as `Err(code,
/// message)`).
pub fn parse_describe_instances(xml: &str) -> Result<Page, (String, String)> {
    let mut page = Page::default();
    let mut stack: Vec<String> = Vec::new();
    let mut current: Option<Ec2Instance> = None;
    let mut tag_key = String::new();
    let mut tag_value = String::new();
    let mut error_code = String::new();
    let mut error_message = String::new();
    let mut text = String::new();
    for token in Tokenizer::from(xml) {
        let token = token.map_err(|e| ("MalformedXML".to_string(), e.to_string()))?;
        match token {
            Token::ElementStart { local, .. } => {
                stack.push(local.as_str().to_string());
                text.clear();
                if at_instance(&stack) {
                    current = Some(Ec2Instance::default());
                }
            }
            Token::Text { text: t } => text.push_str(t.as_str()),
            Token::Cdata { text: t, .. } => text.push_str(t.as_str()),
            Token::ElementEnd { end, .. } => {
                let closing = match end {
                    ElementEnd::Open => continue,
                    ElementEnd::Close(..) | ElementEnd::Empty => true,
                };
                if !closing {
                    continue;
                }
                let value = unescape(text.trim());
                let rel = instance_relative(&stack);
                if let (Some(inst), Some(rel)) = (current.as_mut(), rel.as_deref()) {
                    match rel {
                        ["instanceId"] => inst.instance_id = value.clone(),
                        ["instanceType"] => inst.instance_type = value.clone(),
                        ["instanceState", "name"] => inst.state = value.clone(),
                        ["privateIpAddress"] => inst.private_ip = value.clone(),
                        ["privateDnsName"] => inst.private_dns = value.clone(),
                        ["placement", "availabilityZone"] => inst.availability_zone = value.clone(),
                        ["platform"] | ["platformDetails"] if inst.platform.is_empty() => {
                            inst.platform = value.clone()
                        }
                        ["tagSet", "item", "key"] => tag_key = value.clone(),
                        ["tagSet", "item", "value"] => tag_value = value.clone(),
                        ["tagSet", "item"] => {
                            inst.tags.insert(
                                std::mem::take(&mut tag_key),
                                std::mem::take(&mut tag_value),
                            );
                        }
                        _ => {}
                    }
                }
                let depth = stack.len();
                if depth == 2 && stack[1] == "nextToken" && !value.is_empty() {
                    page.next_token = Some(value.clone());
                }
                if stack.last().is_some_and(|s| s == "Code") && stack.iter().any(|s| s == "Error") {
                    error_code = value.clone();
                }
                if stack.last().is_some_and(|s| s == "Message")
                    && stack.iter().any(|s| s == "Error")
                {
                    error_message = value.clone();
                }
                if at_instance(&stack) {
                    if let Some(inst) = current.take() {
                        page.instances.push(inst);
                    }
                }
                stack.pop();
                text.clear();
            }
            _ => {}
        }
    }
    if !error_code.is_empty() {
        return Err((error_code, error_message));
    }
    Ok(page)
}

/// Whether the innermost element is an instance: `…/instancesSet/item`.
fn at_instance(stack: &[String]) -> bool {
    let n = stack.len();
    n >= 2 && stack[n - 1] == "item" && stack[n - 2] == "instancesSet"
}

/// The path of the innermost element below its instance's `item`, if inside one.
fn instance_relative(stack: &[String]) -> Option<Vec<&str>> {
    let pos = stack.iter().rposition(|s| s == "instancesSet")?;
    if stack.get(pos + 1).map(String::as_str) != Some("item") {
        return None;
    }
    Some(stack[pos + 2..].iter().map(String::as_str).collect())
}

/// XML's five predefined entities and numeric character references.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Percent-encoding of the Query API (RFC 3986 unreserved characters stay).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The form body of one DescribeInstances page: running instances, filtered by tags and ids.
pub fn request_body(
    tags: &BTreeMap<String, String>,
    instance_ids: &[String],
    next_token: Option<&str>,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("Action".into(), "DescribeInstances".into()),
        ("Version".into(), API_VERSION.into()),
        ("Filter.1.Name".into(), "instance-state-name".into()),
        ("Filter.1.Value.1".into(), "running".into()),
    ];
    for (i, (key, value)) in tags.iter().enumerate() {
        params.push((format!("Filter.{}.Name", i + 2), format!("tag:{key}")));
        params.push((format!("Filter.{}.Value.1", i + 2), value.clone()));
    }
    for (i, id) in instance_ids.iter().enumerate() {
        params.push((format!("InstanceId.{}", i + 1), id.clone()));
    }
    // MaxResults cannot be combined with InstanceId.
    if instance_ids.is_empty() {
        params.push(("MaxResults".into(), "1000".into()));
    }
    if let Some(t) = next_token {
        params.push(("NextToken".into(), t.to_string()));
    }
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What one EC2 DescribeInstances call of an environment needs: its endpoint, a client with
/// the environment's timeouts, and the signing identity.
struct Ec2Caller<'a> {
    client: &'a SsmClient,
    endpoint: String,
    url: String,
    http: reqwest::Client,
    identity: Identity,
}

impl<'a> Ec2Caller<'a> {
    async fn new(client: &'a SsmClient) -> Result<Ec2Caller<'a>, AdapterError> {
        let config = client.config();
        let endpoint = config.ec2_endpoint_for(client.region());
        let url = format!("{endpoint}/");
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| AdapterError::Failed(format!("cannot build an HTTP client: {e}")))?;
        let identity: Identity = client.credentials().await?.into();
        Ok(Ec2Caller {
            client,
            endpoint,
            url,
            http,
            identity,
        })
    }

    /// One DescribeInstances request with `body`, retried on transient failures as configured.
    async fn describe(&self, body: &str) -> Result<String, CallError> {
        let config = self.client.config();
        crate::retry::with_retries(
            config.max_attempts.saturating_sub(1),
            config.retry_backoff.max(Duration::from_millis(10)),
            self.client.environment(),
            "ec2 DescribeInstances",
            |e: &CallError| e.transient,
            || {
                call_once(
                    &self.http,
                    &self.url,
                    body,
                    &self.identity,
                    self.client.region(),
                )
            },
        )
        .await
    }
}

/// Every running instance of the environment's scope (its `tags` and `instance_ids`).
pub async fn describe_instances(client: &SsmClient) -> Result<Vec<Ec2Instance>, AdapterError> {
    let ec2 = Ec2Caller::new(client).await?;
    let mut instances = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let body = request_body(
            &client.config().tags,
            &client.config().instance_ids,
            token.as_deref(),
        );
        let xml = ec2
            .describe(&body)
            .await
            .map_err(|e| e.into_adapter_error(client, &ec2.endpoint))?;
        let page = parse_describe_instances(&xml).map_err(|(code, message)| {
            AdapterError::Failed(format!(
                "EC2 DescribeInstances at {} answered {code}: {message}",
                ec2.endpoint
            ))
        })?;
        instances.extend(page.instances);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(instances),
        }
    }
    Ok(instances)
}

/// The EC2 state of one instance (`pending`, `running`, `stopping`, `stopped`,
/// `shutting-down`, `terminated`), whatever it is; `None` when EC2 does not know the id.
/// Recovery asks this when SSM answers InvalidInstanceId, which SSM says both for an instance
/// that is gone and for one whose SSM agent is offline.
pub async fn instance_state(
    client: &SsmClient,
    instance_id: &str,
) -> Result<Option<String>, AdapterError> {
    let ec2 = Ec2Caller::new(client).await?;
    let body = [
        ("Action", "DescribeInstances"),
        ("Version", API_VERSION),
        ("InstanceId.1", instance_id),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let answer = ec2.describe(&body).await;
    let xml = match answer {
        Ok(xml) => xml,
        Err(e) if e.code.starts_with("InvalidInstanceID") => return Ok(None),
        Err(e) => return Err(e.into_adapter_error(client, &ec2.endpoint)),
    };
    let page = parse_describe_instances(&xml).map_err(|(code, message)| {
        AdapterError::Failed(format!(
            "EC2 DescribeInstances at {} answered {code}: {message}",
            ec2.endpoint
        ))
    })?;
    Ok(page
        .instances
        .into_iter()
        .find(|i| i.instance_id == instance_id)
        .map(|i| i.state))
}

/// A failed DescribeInstances attempt.
#[derive(Debug)]
struct CallError {
    transient: bool,
    /// No HTTP answer at all.
    transport: bool,
    status: u16,
    code: String,
    message: String,
}

impl CallError {
    fn into_adapter_error(self, client: &SsmClient, endpoint: &str) -> AdapterError {
        if self.transport {
            return AdapterError::Unreachable {
                environment: client.environment().to_string(),
                endpoint: endpoint.to_string(),
                message: format!("EC2 DescribeInstances: {}", self.message),
            };
        }
        let text = format!(
            "EC2 DescribeInstances at {endpoint} answered {} {}: {}",
            self.status, self.code, self.message
        );
        if (400..500).contains(&self.status) && !self.transient {
            AdapterError::Rejected(text)
        } else {
            AdapterError::Failed(text)
        }
    }
}

async fn call_once(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    identity: &Identity,
    region: &str,
) -> Result<String, CallError> {
    let local = |message: String| CallError {
        transient: false,
        transport: false,
        status: 0,
        code: "Signing".into(),
        message,
    };
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let params: aws_sigv4::http_request::SigningParams = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("ec2")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| local(format!("cannot sign the request: {e}")))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| local(format!("cannot sign the request: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| local(format!("cannot sign the request: {e}")))?
        .into_parts();
    let mut request = http
        .post(url)
        .header("content-type", content_type)
        .body(body.to_string());
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let mut response = request.send().await.map_err(|e| CallError {
        transient: true,
        transport: true,
        status: 0,
        code: String::new(),
        message: root_cause(&e),
    })?;
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| CallError {
        transient: true,
        transport: true,
        status,
        code: String::new(),
        message: root_cause(&e),
    })? {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CallError {
                transient: false,
                transport: false,
                status,
                code: "ResponseTooLarge".into(),
                message: format!("more than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if (200..300).contains(&status) {
        return Ok(text);
    }
    let (code, message) = match parse_describe_instances(&text) {
        Err((code, message)) => (code, message),
        Ok(_) => (String::new(), text.chars().take(300).collect()),
    };
    Err(CallError {
        transient: status >= 500 || code == "RequestLimitExceeded" || code == "Throttling",
        transport: false,
        status,
        code,
        message,
    })
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>x</requestId>
  <reservationSet><item><reservationId>r-1</reservationId>
    <groupSet><item><groupId>sg-1</groupId></item></groupSet>
    <instancesSet>
      <item>
        <instanceId>i-0123456789abcdef0</instanceId>
        <instanceState><code>16</code><name>running</name></instanceState>
        <privateDnsName>ip-10-0-0-5.ec2.internal</privateDnsName>
        <instanceType>t3.micro</instanceType>
        <placement><availabilityZone>us-east-1a</availabilityZone></placement>
        <privateIpAddress>10.0.0.5</privateIpAddress>
        <networkInterfaceSet><item><privateIpAddressesSet><item><privateIpAddress>10.9.9.9</privateIpAddress></item></privateIpAddressesSet></item></networkInterfaceSet>
        <tagSet>
          <item><key>Name</key><value>web &amp; api</value></item>
          <item><key>chaos</key><value>allowed</value></item>
        </tagSet>
      </item>
      <item><instanceId>i-0aaaaaaaaaaaaaaaa</instanceId><instanceState><name>running</name></instanceState><tagSet/></item>
    </instancesSet>
  </item></reservationSet>
  <nextToken>tok&#x3D;1</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn instances_tags_and_the_next_token_are_read() {
        let page = parse_describe_instances(ANSWER).unwrap();
        assert_eq!(page.instances.len(), 2);
        let i = &page.instances[0];
        assert_eq!(i.instance_id, "i-0123456789abcdef0");
        assert_eq!(i.state, "running");
        assert_eq!(
            i.private_ip, "10.0.0.5",
            "not a network interface's address"
        );
        assert_eq!(i.availability_zone, "us-east-1a");
        assert_eq!(i.instance_type, "t3.micro");
        assert_eq!(i.tags.get("Name").map(String::as_str), Some("web & api"));
        assert_eq!(i.tags.get("chaos").map(String::as_str), Some("allowed"));
        assert!(page.instances[1].tags.is_empty());
        assert_eq!(page.next_token.as_deref(), Some("tok=1"));
    }

    #[test]
    fn errors_are_read() {
        let xml = r#"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized</Message></Error></Errors><RequestID>x</RequestID></Response>"#;
        assert_eq!(
            parse_describe_instances(xml),
            Err((
                "UnauthorizedOperation".into(),
                "You are not authorized".into()
            ))
        );
    }

    #[test]
    fn the_body_filters_running_instances_by_tag() {
        let tags = BTreeMap::from([("team name".to_string(), "a&b".to_string())]);
        let body = request_body(&tags, &[], None);
        assert_eq!(
            body,
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-state-name&\
             Filter.1.Value.1=running&Filter.2.Name=tag%3Ateam%20name&Filter.2.Value.1=a%26b&\
             MaxResults=1000"
        );
        let body = request_body(&BTreeMap::new(), &["i-1".into()], Some("t"));
        assert!(body.ends_with("&InstanceId.1=i-1&NextToken=t"), "{body}");
    }
}
