//! Prometheus probes: an instant PromQL query (`GET /api/v1/query`), every sample compared
//! with a threshold.

use chaoshub_schema::probe::PrometheusProbe;
use serde_json::Value;

use super::{excerpt, timeout_of};

pub async fn check(spec: &PrometheusProbe, client: &reqwest::Client) -> Result<String, String> {
    let timeout = timeout_of(&spec.timeout);
    let base = spec.url.trim_end_matches('/');
    let url = format!("{base}/api/v1/query");
    let what = format!("query {:?} at {base}", spec.query);
    let response = client
        .get(&url)
        .query(&[("query", spec.query.as_str())])
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("{what}: no answer within {} ms", timeout.as_millis())
            } else {
                format!("{what}: {e}")
            }
        })?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{what}: cannot read the answer: {e}"))?;
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        format!(
            "{what}: HTTP {status}, not a Prometheus answer: {:?}",
            excerpt(&text, 160)
        )
    })?;
    if body["status"] != "success" {
        return Err(format!(
            "{what}: HTTP {status}, {}: {}",
            body["errorType"].as_str().unwrap_or("error"),
            body["error"].as_str().unwrap_or("no error message")
        ));
    }
    let samples = samples(&body["data"]).map_err(|e| format!("{what}: {e}"))?;
    let rule = format!("{} {}", spec.comparison.as_str(), spec.threshold);
    if samples.is_empty() {
        return if spec.allow_empty {
            Ok(format!("{what}: no samples (allowed)"))
        } else {
            Err(format!("{what}: no samples, expected every sample {rule}"))
        };
    }
    let shown: Vec<String> = samples
        .iter()
        .take(5)
        .map(|(labels, v)| format!("{labels}={v}"))
        .collect();
    let evidence = format!("{what}: {} sample(s) [{}]", samples.len(), shown.join(", "));
    match samples
        .iter()
        .find(|(_, v)| !spec.comparison.holds(*v, spec.threshold))
    {
        Some((labels, v)) => Err(format!("{labels}={v} is not {rule}; {evidence}")),
        None => Ok(format!("every sample {rule}; {evidence}")),
    }
}

/// `(series labels, value)` of a vector or scalar result.
fn samples(data: &Value) -> Result<Vec<(String, f64)>, String> {
    let value_of = |pair: &Value| -> Result<f64, String> {
        let text = pair
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("malformed sample {pair}"))?;
        // Prometheus writes NaN and ±Inf as strings too; they parse as f64.
        text.parse::<f64>()
            .map_err(|_| format!("sample value {text:?} is not a number"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("a vector result without a result list")?
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        let inner: Vec<String> = m
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect();
                        format!("{{{}}}", inner.join(","))
                    })
                    .unwrap_or_else(|| "{}".into());
                Ok((labels, value_of(&s["value"])?))
            })
            .collect(),
        Some("scalar") => Ok(vec![("scalar".into(), value_of(&data["result"])?)]),
        Some(other) => Err(format!(
            "result type {other} is not supported (use an instant query that gives a vector or a scalar)"
        )),
        None => Err("the answer has no resultType".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vector_and_scalar_samples() {
        let v = json!({"resultType": "vector", "result": [{"metric": {"job": "web"}, "value": [1.0, "0.5"]}]});
        assert_eq!(samples(&v).unwrap(), vec![("{job=web}".into(), 0.5)]);
        let s = json!({"resultType": "scalar", "result": [1.0, "2"]});
        assert_eq!(samples(&s).unwrap()[0].1, 2.0);
        assert!(samples(&json!({"resultType": "matrix", "result": []})).is_err());
    }
}
