//! The policy table: every route of the router has exactly one entry saying which role it
//! needs, which permission that is, and how the scope of the request is read. The middleware
//! refuses a route without an entry, and a test checks that this table, the router and the
//! OpenAPI document list the same routes (docs/security.md shows the table, generated).

use chaoshub_schema::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential needed (`/healthz`, `/readyz`).
    Open,
    /// A valid credential with at least this role.
    Role(Role),
    /// `/metrics`: viewer, or open when `auth.metrics_open = true`.
    Metrics,
}

/// How the scope (namespaces, environments) of a request is read and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeRule {
    /// The route is not about a namespace or an environment (adapters, catalogs, tokens…).
    None,
    /// `{id}` (and `?namespace=`) names an experiment: its namespace and environment must be
    /// in scope (checked before the handler runs).
    Experiment,
    /// `{name}` or `{env}` names an environment that must be in scope.
    Environment,
    /// The handler keeps only the items in scope (lists).
    Filtered,
    /// The body names the namespace and environment; checked when the body is read, before
    /// anything is stored.
    Body,
    /// Only principals whose scope is unrestricted (suites span environments and namespaces).
    Unrestricted,
}

impl ScopeRule {
    pub fn describe(self) -> &'static str {
        match self {
            ScopeRule::None => "-",
            ScopeRule::Experiment => "experiment's namespace + environment",
            ScopeRule::Environment => "environment in path",
            ScopeRule::Filtered => "items outside scope left out",
            ScopeRule::Body => "namespace + environment of the body",
            ScopeRule::Unrestricted => "unrestricted scope only",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy {
    pub method: &'static str,
    pub path: &'static str,
    /// The permission named in 403 messages and docs/security.md.
    pub permission: &'static str,
    pub access: Access,
    pub scope: ScopeRule,
}

const fn p(
    method: &'static str,
    path: &'static str,
    permission: &'static str,
    access: Access,
    scope: ScopeRule,
) -> RoutePolicy {
    RoutePolicy {
        method,
        path,
        permission,
        access,
        scope,
    }
}

use Access::{Metrics, Open};
use ScopeRule::{Body, Environment, Experiment, Filtered, None as Global, Unrestricted};
const VIEWER: Access = Access::Role(Role::Viewer);
const OPERATOR: Access = Access::Role(Role::Operator);
const ADMIN: Access = Access::Role(Role::Admin);

/// Every route. Methods are uppercase; paths are the router's templates.
pub const POLICIES: &[RoutePolicy] = &[
    p("GET", "/healthz", "health", Open, Global),
    p("GET", "/readyz", "health", Open, Global),
    p("GET", "/metrics", "metrics:read", Metrics, Global),
    p(
        "GET",
        "/api/v1/openapi.json",
        "openapi:read",
        VIEWER,
        Global,
    ),
    p(
        "POST",
        "/api/v1/experiments",
        "experiments:create",
        OPERATOR,
        Body,
    ),
    p(
        "GET",
        "/api/v1/experiments",
        "experiments:read",
        VIEWER,
        Filtered,
    ),
    p(
        "GET",
        "/api/v1/experiments/{id}",
        "experiments:read",
        VIEWER,
        Experiment,
    ),
    p(
        "DELETE",
        "/api/v1/experiments/{id}",
        "experiments:delete",
        OPERATOR,
        Experiment,
    ),
    p(
        "POST",
        "/api/v1/experiments/{id}/pause",
        "experiments:pause",
        OPERATOR,
        Experiment,
    ),
    p(
        "POST",
        "/api/v1/experiments/{id}/resume",
        "experiments:resume",
        OPERATOR,
        Experiment,
    ),
    p(
        "POST",
        "/api/v1/experiments/{id}/stop",
        "experiments:stop",
        OPERATOR,
        Experiment,
    ),
    p(
        "GET",
        "/api/v1/archives",
        "experiments:read",
        VIEWER,
        Filtered,
    ),
    p(
        "POST",
        "/api/v1/environments",
        "environments:write",
        ADMIN,
        Global,
    ),
    p(
        "GET",
        "/api/v1/environments",
        "environments:read",
        VIEWER,
        Filtered,
    ),
    p(
        "GET",
        "/api/v1/environments/{name}",
        "environments:read",
        VIEWER,
        Environment,
    ),
    p(
        "DELETE",
        "/api/v1/environments/{name}",
        "environments:write",
        ADMIN,
        Environment,
    ),
    p(
        "GET",
        "/api/v1/environments/{name}/targets",
        "environments:read",
        VIEWER,
        Environment,
    ),
    p(
        "GET",
        "/api/v1/environments/{name}/capabilities",
        "environments:read",
        VIEWER,
        Environment,
    ),
    p("GET", "/api/v1/adapters", "adapters:read", VIEWER, Global),
    p(
        "GET",
        "/api/v1/conformance",
        "adapters:read",
        VIEWER,
        Global,
    ),
    p("GET", "/api/v1/agents", "agents:read", VIEWER, Filtered),
    p(
        "GET",
        "/api/v1/agents/{env}/{name}",
        "agents:read",
        VIEWER,
        Environment,
    ),
    p(
        "GET",
        "/api/v1/agents/{env}/{name}/usage",
        "agents:read",
        VIEWER,
        Environment,
    ),
    p(
        "DELETE",
        "/api/v1/agents/{env}/{name}",
        "agents:write",
        ADMIN,
        Environment,
    ),
    p(
        "POST",
        "/api/v1/environments/{name}/join-tokens",
        "agents:join-tokens",
        ADMIN,
        Environment,
    ),
    p(
        "GET",
        "/api/v1/environments/{name}/join-tokens",
        "agents:join-tokens",
        ADMIN,
        Environment,
    ),
    p(
        "DELETE",
        "/api/v1/environments/{name}/join-tokens/{id}",
        "agents:join-tokens",
        ADMIN,
        Environment,
    ),
    p("GET", "/api/v1/events", "events:read", VIEWER, Filtered),
    p(
        "GET",
        "/api/v1/events/stream",
        "events:read",
        VIEWER,
        Filtered,
    ),
    p("GET", "/api/v1/halt", "halt:read", VIEWER, Global),
    p("POST", "/api/v1/halt", "halt:write", ADMIN, Global),
    p("DELETE", "/api/v1/halt", "halt:write", ADMIN, Global),
    p(
        "POST",
        "/api/v1/suites",
        "suites:run",
        OPERATOR,
        Unrestricted,
    ),
    p(
        "GET",
        "/api/v1/suites/runs",
        "suites:read",
        VIEWER,
        Unrestricted,
    ),
    p(
        "GET",
        "/api/v1/suites/runs/{id}",
        "suites:read",
        VIEWER,
        Unrestricted,
    ),
    p(
        "GET",
        "/api/v1/suites/runs/{id}/junit",
        "suites:read",
        VIEWER,
        Unrestricted,
    ),
    p("GET", "/api/v1/templates", "templates:read", VIEWER, Global),
    // Saving writes a file into the hub's local catalog directory: configuration, like adding
    // a remote catalog.
    p(
        "POST",
        "/api/v1/templates",
        "templates:write",
        ADMIN,
        Global,
    ),
    p(
        "GET",
        "/api/v1/templates/{name}",
        "templates:read",
        VIEWER,
        Global,
    ),
    p(
        "POST",
        "/api/v1/templates/{name}/render",
        "templates:read",
        VIEWER,
        Global,
    ),
    p(
        "POST",
        "/api/v1/templates/{name}/run",
        "experiments:create",
        OPERATOR,
        Body,
    ),
    p("GET", "/api/v1/catalogs", "catalogs:read", VIEWER, Global),
    p("POST", "/api/v1/catalogs", "catalogs:write", ADMIN, Global),
    p(
        "GET",
        "/api/v1/catalogs/{name}",
        "catalogs:read",
        VIEWER,
        Global,
    ),
    p(
        "DELETE",
        "/api/v1/catalogs/{name}",
        "catalogs:write",
        ADMIN,
        Global,
    ),
    p(
        "POST",
        "/api/v1/catalogs/{name}/refresh",
        "catalogs:write",
        ADMIN,
        Global,
    ),
    p("GET", "/api/v1/tokens", "tokens:read", ADMIN, Global),
    p("POST", "/api/v1/tokens", "tokens:write", ADMIN, Global),
    p(
        "DELETE",
        "/api/v1/tokens/{name}",
        "tokens:write",
        ADMIN,
        Global,
    ),
    p("GET", "/api/v1/audit", "audit:read", ADMIN, Global),
];

/// The entry of a route, by method and the router's path template.
pub fn lookup(method: &str, path: &str) -> Option<&'static RoutePolicy> {
    POLICIES
        .iter()
        .find(|p| p.path == path && p.method.eq_ignore_ascii_case(method))
}

/// Whether a request changes something (audited even when it succeeds). Template rendering
/// is a POST that stores nothing.
pub fn is_mutation(policy: &RoutePolicy) -> bool {
    policy.method != "GET" && !policy.path.ends_with("/render")
}

/// The role matrix as Markdown (docs/security.md holds it between markers, kept in sync by a
/// test).
pub fn matrix_markdown() -> String {
    let mut out = String::from(
        "| method | path | permission | viewer | operator | admin | scope |\n|---|---|---|---|---|---|---|\n",
    );
    for p in POLICIES {
        let cell = |role: Role| -> &'static str {
            match p.access {
                Access::Open => "open",
                Access::Metrics => {
                    if role >= Role::Viewer {
                        "yes"
                    } else {
                        "-"
                    }
                }
                Access::Role(needed) => {
                    if role >= needed {
                        "yes"
                    } else {
                        "-"
                    }
                }
            }
        };
        let perm = match p.access {
            Access::Open => "none (open)".to_string(),
            Access::Metrics => format!("`{}` (open with `auth.metrics_open`)", p.permission),
            Access::Role(_) => format!("`{}`", p.permission),
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |\n",
            p.method,
            p.path,
            perm,
            cell(Role::Viewer),
            cell(Role::Operator),
            cell(Role::Admin),
            p.scope.describe()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_exactly_one_entry() {
        let mut seen = std::collections::BTreeSet::new();
        for p in POLICIES {
            assert!(
                seen.insert((p.method, p.path)),
                "{} {} has two policy entries",
                p.method,
                p.path
            );
        }
    }

    /// The OpenAPI document and this table list the same routes (the router test in
    /// hub/tests/hub/authz.rs checks the router itself against this table).
    #[test]
    fn policy_table_matches_openapi() {
        let doc = crate::openapi::document();
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let table: std::collections::BTreeSet<(String, String)> = POLICIES
            .iter()
            .map(|p| (p.method.to_string(), p.path.to_string()))
            .collect();
        let missing: Vec<_> = documented.difference(&table).collect();
        let extra: Vec<_> = table.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes in the OpenAPI document without a policy: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "policies for routes the OpenAPI document lacks: {extra:?}"
        );
    }

    #[test]
    fn security_doc_matrix_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (begin, end) = ("<!-- role-matrix:begin -->\n", "<!-- role-matrix:end -->");
        let generated = matrix_markdown();
        if std::env::var("CHAOSHUB_UPDATE_SECURITY_DOC").as_deref() == Ok("1") {
            let (head, rest) = text
                .split_once(begin)
                .expect("docs/security.md has no role-matrix:begin marker");
            let (_, tail) = rest
                .split_once(end)
                .expect("docs/security.md has no role-matrix:end marker");
            std::fs::write(&path, format!("{head}{begin}{generated}{end}{tail}")).unwrap();
            return;
        }
        let current = text
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(m, _)| m)
            .unwrap_or_default();
        assert!(
            current == generated,
            "the role matrix in docs/security.md is out of date; regenerate it with: CHAOSHUB_UPDATE_SECURITY_DOC=1 cargo test -p chaoshub security_doc"
        );
    }
}
