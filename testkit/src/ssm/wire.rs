//! The wire formats an SSM endpoint of the tests speaks: the SSM JSON 1.1 protocol (`POST /`,
//! `X-Amz-Target: AmazonSSM.<Operation>`, errors as `{"__type", "message"}`) and EC2's Query API
//! for DescribeInstances (a form body, an XML answer). Shared by the adapter tests' scripted
//! fake (`adapters/tests/ssm/fake_ssm.rs`) and [`super::EmulatedSsm`]. No signature is checked.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The SSM operation a request names (`SendCommand`), or `None` for a request without
/// `X-Amz-Target` (EC2's Query API), or `Err` with the answer for a target of another service.
pub fn ssm_operation(headers: &HeaderMap) -> Option<Result<String, Response>> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    Some(match target.strip_prefix("AmazonSSM.") {
        Some(op) => Ok(op.to_string()),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            target,
        )),
    })
}

/// A JSON 1.1 error answer.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"__type": kind, "message": message}).to_string(),
    )
        .into_response()
}

/// A 400 with an SSM error code, as SSM answers a caller's mistake.
pub fn client_error(kind: &str, message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, kind, message)
}

/// A JSON 1.1 answer.
pub fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// An instance as DescribeInstances lists it.
pub struct Ec2Instance<'a> {
    pub id: &'a str,
    pub private_ip: &'a str,
    pub tags: &'a [(String, String)],
}

/// Answers an EC2 Query API request: DescribeInstances over `instances`, filtered by its
/// `InstanceId.N` list (an id not among them is `InvalidInstanceID.NotFound`, as EC2 answers)
/// and its `tag:` filters; every instance is `running`.
pub fn ec2_describe_instances<'a>(
    body: &[u8],
    instances: impl IntoIterator<Item = Ec2Instance<'a>>,
) -> Response {
    let form = form(body);
    if form.get("Action").map(String::as_str) != Some("DescribeInstances") {
        return (
            StatusCode::BAD_REQUEST,
            "<Response><Errors><Error><Code>InvalidAction</Code><Message>only DescribeInstances</Message></Error></Errors></Response>",
        )
            .into_response();
    }
    let mut filters = Vec::new();
    for i in 1..10 {
        if let (Some(n), Some(v)) = (
            form.get(&format!("Filter.{i}.Name")),
            form.get(&format!("Filter.{i}.Value.1")),
        ) {
            if let Some(key) = n.strip_prefix("tag:") {
                filters.push((key.to_string(), v.clone()));
            }
        }
    }
    let ids: Vec<&String> = (1..100)
        .map_while(|i| form.get(&format!("InstanceId.{i}")))
        .collect();
    let instances: Vec<Ec2Instance> = instances.into_iter().collect();
    if let Some(unknown) = ids
        .iter()
        .find(|id| !instances.iter().any(|i| i.id == id.as_str()))
    {
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "text/xml")],
            format!("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID '{unknown}' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"),
        )
            .into_response();
    }
    let mut items = String::new();
    for inst in instances {
        if !ids.is_empty() && !ids.iter().any(|id| id.as_str() == inst.id) {
            continue;
        }
        if !filters
            .iter()
            .all(|(k, v)| inst.tags.iter().any(|(tk, tv)| tk == k && tv == v))
        {
            continue;
        }
        let tag_xml: String = inst
            .tags
            .iter()
            .map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>"))
            .collect();
        items.push_str(&format!(
            "<item><instanceId>{}</instanceId><instanceType>t3.micro</instanceType><instanceState><code>16</code><name>running</name></instanceState><privateIpAddress>{}</privateIpAddress><placement><availabilityZone>us-east-1a</availabilityZone></placement><tagSet>{tag_xml}</tagSet></item>",
            inst.id, inst.private_ip
        ));
    }
    let xml = format!(
        "<?xml version=\"1.0\"?><DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet>{items}</instancesSet></item></reservationSet></DescribeInstancesResponse>"
    );
    (StatusCode::OK, [("content-type", "text/xml")], xml).into_response()
}

/// A form body (`a=1&b=x%20y`) as a map.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = form(b"Action=DescribeInstances&Filter.1.Name=tag%3Ateam&Filter.1.Value.1=a+b");
        assert_eq!(f["Action"], "DescribeInstances");
        assert_eq!(f["Filter.1.Name"], "tag:team");
        assert_eq!(f["Filter.1.Value.1"], "a b");
    }
}
