//! Reading Envoy's configuration (`/config_dump`, `/listeners`, `/clusters`) into HTTP
//! connection managers and their fault filters. Pure functions over the admin API's JSON, so
//! they are unit-tested without an Envoy.

use std::collections::{BTreeMap, BTreeSet};

use chaoshub_schema::Target;
use serde_json::Value;

const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const FAULT_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const FAULT_NAME: &str = "envoy.filters.http.fault";

/// The target kind this adapter discovers.
pub const TARGET_KIND: &str = "listener";

/// The runtime keys one fault filter reads; the filter's `*_runtime` fields rename them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeKeys {
    pub abort_percent: String,
    pub abort_http_status: String,
    pub delay_percent: String,
    pub delay_duration: String,
    pub response_rate_limit_percent: String,
}

impl Default for RuntimeKeys {
    fn default() -> Self {
        Self {
            abort_percent: "fault.http.abort.abort_percent".into(),
            abort_http_status: "fault.http.abort.http_status".into(),
            delay_percent: "fault.http.delay.fixed_delay_percent".into(),
            delay_duration: "fault.http.delay.fixed_duration_ms".into(),
            response_rate_limit_percent: "fault.http.rate_limit.response_percent".into(),
        }
    }
}

impl RuntimeKeys {
    /// The per-downstream-cluster keys Envoy also reads when a request carries
    /// `x-envoy-downstream-service-cluster: <cluster>`; Envoy derives them from the default
    /// names whatever the filter's `*_runtime` fields say.
    pub fn for_downstream_cluster(cluster: &str) -> Self {
        Self {
            abort_percent: format!("fault.http.{cluster}.abort.abort_percent"),
            abort_http_status: format!("fault.http.{cluster}.abort.http_status"),
            delay_percent: format!("fault.http.{cluster}.delay.fixed_delay_percent"),
            delay_duration: format!("fault.http.{cluster}.delay.fixed_duration_ms"),
            response_rate_limit_percent: format!(
                "fault.http.{cluster}.rate_limit.response_percent"
            ),
        }
    }

    pub fn all(&self) -> [&str; 5] {
        [
            &self.abort_percent,
            &self.abort_http_status,
            &self.delay_percent,
            &self.delay_duration,
            &self.response_rate_limit_percent,
        ]
    }
}

/// The filter's `abort` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortBlock {
    HttpStatus(u32),
    GrpcStatus(u32),
    /// `header_abort`: the status comes from a request header, runtime cannot set it.
    Header,
}

/// The filter's `delay` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelayBlock {
    FixedMs(u64),
    Header,
}

/// The filter's `response_rate_limit` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitBlock {
    FixedKbps(u64),
    Header,
}

/// How one of the filter's `headers` matchers matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HeaderMatch {
    Exact(String),
    Prefix(String),
    /// Any other matcher (regex, range, presence, inverted…), described for messages.
    Other(String),
}

/// One `envoy.filters.http.fault` filter as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultFilter {
    pub abort: Option<AbortBlock>,
    pub delay: Option<DelayBlock>,
    pub response_rate_limit: Option<RateLimitBlock>,
    pub keys: RuntimeKeys,
    /// Whether any `*_runtime` field renamed a key.
    pub custom_keys: bool,
    /// The filter applies only to requests matching all of these (header name → match).
    pub headers: BTreeMap<String, HeaderMatch>,
    pub upstream_cluster: Option<String>,
    pub downstream_nodes: Vec<String>,
}

/// One HTTP connection manager of one listener: a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionManager {
    pub listener: String,
    pub stat_prefix: String,
    /// The address the listener really bound (from `/listeners`, so port 0 is resolved).
    pub address: Option<String>,
    pub port: Option<u16>,
    pub fault: Option<FaultFilter>,
    /// Upstream clusters its routes send to (inline `route_config` or RDS).
    pub clusters: Vec<String>,
}

impl ConnectionManager {
    pub fn target_id(&self) -> String {
        format!("{}/{}", self.listener, self.stat_prefix)
    }

    pub fn to_target(&self, environment: &str, adapter: &str, unique_in_listener: bool) -> Target {
        let mut labels = BTreeMap::new();
        labels.insert("listener".to_string(), self.listener.clone());
        labels.insert("stat_prefix".to_string(), self.stat_prefix.clone());
        if let Some(port) = self.port {
            labels.insert("port".to_string(), port.to_string());
        }
        if let Some(address) = &self.address {
            labels.insert("address".to_string(), address.clone());
        }
        labels.insert("fault_filter".to_string(), self.fault.is_some().to_string());
        if !self.clusters.is_empty() {
            labels.insert("clusters".to_string(), self.clusters.join(","));
        }
        let mut annotations = BTreeMap::new();
        if let Some(fault) = &self.fault {
            let describe_abort = match &fault.abort {
                Some(AbortBlock::HttpStatus(s)) => format!("http_status={s}"),
                Some(AbortBlock::GrpcStatus(s)) => format!("grpc_status={s}"),
                Some(AbortBlock::Header) => "header".into(),
                None => "absent".into(),
            };
            let describe_delay = match &fault.delay {
                Some(DelayBlock::FixedMs(ms)) => format!("fixed_delay={ms}ms"),
                Some(DelayBlock::Header) => "header".into(),
                None => "absent".into(),
            };
            let describe_rl = match &fault.response_rate_limit {
                Some(RateLimitBlock::FixedKbps(k)) => format!("limit_kbps={k}"),
                Some(RateLimitBlock::Header) => "header".into(),
                None => "absent".into(),
            };
            annotations.insert("envoy.fault.abort".to_string(), describe_abort);
            annotations.insert("envoy.fault.delay".to_string(), describe_delay);
            annotations.insert("envoy.fault.response_rate_limit".to_string(), describe_rl);
            annotations.insert(
                "envoy.fault.runtime_keys".to_string(),
                fault.keys.all().join(","),
            );
        }
        Target {
            environment: environment.to_string(),
            adapter: adapter.to_string(),
            kind: TARGET_KIND.to_string(),
            id: self.target_id(),
            name: if unique_in_listener {
                self.listener.clone()
            } else {
                self.target_id()
            },
            namespace: None,
            labels,
            annotations,
        }
    }
}

/// The name of the bootstrap's admin runtime layer, if it has one.
pub fn admin_layer_name(config_dump: &Value) -> Option<String> {
    let bootstrap = dump_section(config_dump, "BootstrapConfigDump")?.get("bootstrap")?;
    match bootstrap.get("layered_runtime") {
        Some(runtime) => runtime
            .get("layers")?
            .as_array()?
            .iter()
            .find(|layer| layer.get("admin_layer").is_some())
            .and_then(|layer| layer.get("name")?.as_str().map(str::to_string)),
        None => None,
    }
}

/// Every HTTP connection manager of every active listener, in listener order.
pub fn connection_managers(
    config_dump: &Value,
    listeners: &Value,
    clusters: &Value,
) -> Vec<ConnectionManager> {
    let bound = bound_addresses(listeners);
    let known_clusters: BTreeSet<String> = clusters
        .get("cluster_statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
        .collect();
    let routes = route_configs(config_dump);
    let mut out = Vec::new();
    let Some(section) = dump_section(config_dump, "ListenersConfigDump") else {
        return out;
    };
    let statics = section
        .get("static_listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("listener"));
    let dynamics = section
        .get("dynamic_listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("active_state")?.get("listener"));
    for listener in statics.chain(dynamics) {
        let Some(name) = listener.get("name").and_then(Value::as_str) else {
            continue;
        };
        let (address, port) = bound
            .get(name)
            .cloned()
            .unwrap_or_else(|| (config_address(listener.get("address")), None));
        let mut seen = BTreeSet::new();
        let chains = listener
            .get("filter_chains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(listener.get("default_filter_chain"));
        for chain in chains {
            for filter in chain
                .get("filters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(hcm) = typed_config_of(filter, HCM_NAME, HCM_TYPE) else {
                    continue;
                };
                let stat_prefix = hcm
                    .get("stat_prefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if !seen.insert(stat_prefix.clone()) {
                    continue;
                }
                let fault = hcm
                    .get("http_filters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find_map(|f| typed_config_of(f, FAULT_NAME, FAULT_TYPE))
                    .map(parse_fault_filter);
                let mut route_clusters = BTreeSet::new();
                if let Some(inline) = hcm.get("route_config") {
                    collect_route_clusters(inline, &mut route_clusters);
                } else if let Some(rds_name) = hcm
                    .get("rds")
                    .and_then(|r| r.get("route_config_name"))
                    .and_then(Value::as_str)
                {
                    if let Some(config) = routes.get(rds_name) {
                        collect_route_clusters(config, &mut route_clusters);
                    }
                }
                // Routes may name clusters Envoy does not know (yet); only real ones count.
                let clusters = route_clusters
                    .into_iter()
                    .filter(|c| known_clusters.is_empty() || known_clusters.contains(c))
                    .collect();
                out.push(ConnectionManager {
                    listener: name.to_string(),
                    stat_prefix,
                    address: address.clone(),
                    port,
                    fault,
                    clusters,
                });
            }
        }
    }
    out
}

/// The fault filter's typed config as this adapter needs it.
pub fn parse_fault_filter(config: &Value) -> FaultFilter {
    let abort = config.get("abort").map(|abort| {
        if let Some(status) = abort.get("http_status").and_then(Value::as_u64) {
            AbortBlock::HttpStatus(status as u32)
        } else if let Some(status) = abort.get("grpc_status").and_then(Value::as_u64) {
            AbortBlock::GrpcStatus(status as u32)
        } else {
            AbortBlock::Header
        }
    });
    let delay = config.get("delay").map(|delay| {
        match delay
            .get("fixed_delay")
            .and_then(Value::as_str)
            .and_then(proto_duration_ms)
        {
            Some(ms) => DelayBlock::FixedMs(ms),
            None => DelayBlock::Header,
        }
    });
    let response_rate_limit = config.get("response_rate_limit").map(|rl| {
        match rl
            .get("fixed_limit")
            .and_then(|f| f.get("limit_kbps"))
            .and_then(json_u64)
        {
            Some(kbps) => RateLimitBlock::FixedKbps(kbps),
            None => RateLimitBlock::Header,
        }
    });
    let mut keys = RuntimeKeys::default();
    let mut custom_keys = false;
    for (field, slot) in [
        ("abort_percent_runtime", &mut keys.abort_percent),
        ("abort_http_status_runtime", &mut keys.abort_http_status),
        ("delay_percent_runtime", &mut keys.delay_percent),
        ("delay_duration_runtime", &mut keys.delay_duration),
        (
            "response_rate_limit_percent_runtime",
            &mut keys.response_rate_limit_percent,
        ),
    ] {
        if let Some(name) = config
            .get(field)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            custom_keys |= name != slot.as_str();
            *slot = name.to_string();
        }
    }
    let mut headers = BTreeMap::new();
    for matcher in config
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = matcher.get("name").and_then(Value::as_str) else {
            continue;
        };
        headers.insert(name.to_ascii_lowercase(), header_match(matcher));
    }
    FaultFilter {
        abort,
        delay,
        response_rate_limit,
        keys,
        custom_keys,
        headers,
        upstream_cluster: config
            .get("upstream_cluster")
            .and_then(Value::as_str)
            .map(str::to_string),
        downstream_nodes: config
            .get("downstream_nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
    }
}

fn header_match(matcher: &Value) -> HeaderMatch {
    if matcher.get("invert_match").and_then(Value::as_bool) == Some(true) {
        return HeaderMatch::Other(format!("inverted matcher {matcher}"));
    }
    let string_match = matcher.get("string_match");
    let exact = matcher
        .get("exact_match")
        .or_else(|| string_match.and_then(|m| m.get("exact")));
    let prefix = matcher
        .get("prefix_match")
        .or_else(|| string_match.and_then(|m| m.get("prefix")));
    let ignore_case = string_match
        .and_then(|m| m.get("ignore_case"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match (
        exact.and_then(Value::as_str),
        prefix.and_then(Value::as_str),
    ) {
        (Some(v), _) if !ignore_case => HeaderMatch::Exact(v.to_string()),
        (None, Some(v)) if !ignore_case => HeaderMatch::Prefix(v.to_string()),
        _ => HeaderMatch::Other(matcher.to_string()),
    }
}

/// A protobuf JSON duration (`"0.200s"`, `"1s"`) in whole milliseconds.
pub fn proto_duration_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

/// Protobuf JSON writes 64-bit integers as strings and 32-bit ones as numbers.
fn json_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn dump_section<'a>(config_dump: &'a Value, type_suffix: &str) -> Option<&'a Value> {
    config_dump.get("configs")?.as_array()?.iter().find(|c| {
        c.get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(type_suffix))
    })
}

fn typed_config_of<'a>(filter: &'a Value, name: &str, type_url: &str) -> Option<&'a Value> {
    let typed = filter.get("typed_config")?;
    let matches = typed.get("@type").and_then(Value::as_str) == Some(type_url)
        || filter.get("name").and_then(Value::as_str) == Some(name);
    matches.then_some(typed)
}

fn route_configs(config_dump: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(section) = dump_section(config_dump, "RoutesConfigDump") {
        for key in ["static_route_configs", "dynamic_route_configs"] {
            for entry in section
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(config) = entry.get("route_config") {
                    if let Some(name) = config.get("name").and_then(Value::as_str) {
                        out.insert(name.to_string(), config.clone());
                    }
                }
            }
        }
    }
    out
}

fn collect_route_clusters(route_config: &Value, out: &mut BTreeSet<String>) {
    for host in route_config
        .get("virtual_hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for route in host
            .get("routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(action) = route.get("route") else {
                continue;
            };
            if let Some(cluster) = action.get("cluster").and_then(Value::as_str) {
                out.insert(cluster.to_string());
            }
            for weighted in action
                .get("weighted_clusters")
                .and_then(|w| w.get("clusters"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(cluster) = weighted.get("name").and_then(Value::as_str) {
                    out.insert(cluster.to_string());
                }
            }
        }
    }
}

fn config_address(address: Option<&Value>) -> Option<String> {
    address?
        .get("socket_address")?
        .get("address")?
        .as_str()
        .map(str::to_string)
}

/// Listener name → (address, port) as bound, from `/listeners?format=json`.
fn bound_addresses(listeners: &Value) -> BTreeMap<String, (Option<String>, Option<u16>)> {
    listeners
        .get("listener_statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|status| {
            let name = status.get("name")?.as_str()?.to_string();
            let socket = status
                .get("local_address")
                .and_then(|a| a.get("socket_address"));
            let address = socket
                .and_then(|s| s.get("address"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let port = socket
                .and_then(|s| s.get("port_value"))
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            Some((name, (address, port)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dump() -> Value {
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
             "bootstrap": {"layered_runtime": {"layers": [
                 {"name": "static", "static_layer": {}},
                 {"name": "admin_overrides", "admin_layer": {}}]}}},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "static_listeners": [{"listener": {
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM_TYPE,
                        "stat_prefix": "ingress_http",
                        "rds": {"route_config_name": "main"},
                        "http_filters": [
                            {"name": "envoy.filters.http.fault", "typed_config": {
                                "@type": FAULT_TYPE,
                                "abort": {"http_status": 503, "percentage": {}},
                                "delay": {"fixed_delay": "0.250s", "percentage": {}},
                                "response_rate_limit": {"fixed_limit": {"limit_kbps": "64"}},
                                "abort_percent_runtime": "ingress.abort_percent",
                                "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]
                            }},
                            {"name": "envoy.filters.http.router", "typed_config": {}}
                        ]}}]}]}}],
             "dynamic_listeners": [{"name": "plain", "active_state": {"listener": {
                "name": "plain",
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM_TYPE,
                        "stat_prefix": "plain_http",
                        "route_config": {"virtual_hosts": [{"routes": [
                            {"route": {"weighted_clusters": {"clusters": [
                                {"name": "a"}, {"name": "ghost"}]}}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router"}]
                    }}]}]}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
             "dynamic_route_configs": [{"route_config": {"name": "main", "virtual_hosts": [
                {"routes": [{"route": {"cluster": "a"}}, {"route": {"cluster": "b"}}]}]}}]}
        ]})
    }

    #[test]
    fn finds_connection_managers_and_fault_filters() {
        let listeners = json!({"listener_statuses": [{"name": "ingress",
            "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}}}]});
        let clusters = json!({"cluster_statuses": [{"name": "a"}, {"name": "b"}]});
        let found = connection_managers(&dump(), &listeners, &clusters);
        assert_eq!(found.len(), 2);
        let ingress = &found[0];
        assert_eq!(ingress.target_id(), "ingress/ingress_http");
        assert_eq!(ingress.port, Some(10000));
        assert_eq!(ingress.clusters, ["a", "b"]);
        let fault = ingress.fault.as_ref().unwrap();
        assert_eq!(fault.abort, Some(AbortBlock::HttpStatus(503)));
        assert_eq!(fault.delay, Some(DelayBlock::FixedMs(250)));
        assert_eq!(
            fault.response_rate_limit,
            Some(RateLimitBlock::FixedKbps(64))
        );
        assert_eq!(fault.keys.abort_percent, "ingress.abort_percent");
        assert_eq!(
            fault.keys.delay_percent,
            "fault.http.delay.fixed_delay_percent"
        );
        assert!(fault.custom_keys);
        assert_eq!(fault.headers[":method"], HeaderMatch::Exact("GET".into()));
        let plain = &found[1];
        assert_eq!(plain.fault, None);
        assert_eq!(plain.clusters, ["a"], "unknown clusters are left out");
        let target = plain.to_target("edge", "envoy", true);
        assert_eq!(target.labels["fault_filter"], "false");
        assert_eq!(target.labels["listener"], "plain");
        assert_eq!(target.name, "plain");
    }

    #[test]
    fn admin_layer_is_found_by_its_kind_not_its_name() {
        assert_eq!(
            admin_layer_name(&dump()).as_deref(),
            Some("admin_overrides")
        );
        let without = json!({"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "bootstrap": {"layered_runtime": {"layers": [{"name": "static", "static_layer": {}}]}}}]});
        assert_eq!(admin_layer_name(&without), None);
    }

    #[test]
    fn proto_durations() {
        assert_eq!(proto_duration_ms("0.200s"), Some(200));
        assert_eq!(proto_duration_ms("2s"), Some(2000));
        assert_eq!(proto_duration_ms("0.001s"), Some(1));
        assert_eq!(proto_duration_ms("x"), None);
    }
}
