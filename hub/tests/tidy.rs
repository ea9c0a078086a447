//! Architecture checks run as ordinary tests, in the spirit of rust-analyzer's `tidy` tests:
//! the module graph of `schemas/src`, `adapters/src`, `hub/src` and `native/src` is one-way
//! (no import cycle between modules) and follows the layers written down in
//! `docs/ARCHITECTURE.md` (a module never names one of a higher layer); and the engine names
//! no experiment kind.
//!
//! A module is a file (`a/b.rs` or `a/b/mod.rs` is `a::b`). Its edges are the `crate::…` paths
//! it names (including `use crate::{x, y::z}` groups) and its `super::…` paths, plus its own
//! submodules: a parent contains its children, so what a child depends on its parent does too;
//! a child using its parent's (or an ancestor's) items is structure, not a cycle. The crate root
//! only declares. Comments and
//! `#[cfg(test)]` modules are left out: tests may reach across layers, production code may not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's module graph.
struct Graph {
    /// Module path (`engine`, `schedule::cron`, `` for the crate root) → file.
    modules: BTreeMap<String, PathBuf>,
    /// Module → modules it depends on: those it names, and its own submodules.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// (module, module it names by path): what the layer check looks at.
    named_edges: BTreeSet<(String, String)>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the hub crate sits in the workspace")
        .to_path_buf()
}

fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Binaries are crates of their own: `crate::` there is not this library.
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "main.rs")
        {
            out.push(path);
        }
    }
}

/// The source without comments, string literals' contents and `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(bytes.len(), |e| i + e + 2);
            i = end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + 2 + hashes;
            i = text[body..]
                .find(&close)
                .map_or(bytes.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\''
            && rest.len() > 2
            && (rest.as_bytes()[2] == b'\'' || rest.starts_with("'\\"))
        {
            // A char literal ('"', '\''): skip it so a quote inside is not a string.
            let end = match rest.strip_prefix("'\\") {
                Some(escaped) => escaped
                    .get(1..)
                    .and_then(|e| e.find('\''))
                    .map_or(2, |e| e + 4),
                None => rest[1..].find('\'').map_or(1, |e| e + 2),
            };
            i += end;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    strip_test_modules(&out)
}

fn strip_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        if trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ") {
            // Skip to the module's closing brace (or its `;` for an out-of-line module).
            let open = trimmed.find(['{', ';']).unwrap_or(trimmed.len());
            let skip_from = after.len() - trimmed.len();
            if trimmed.as_bytes().get(open) == Some(&b';') {
                rest = &after[skip_from + open + 1..];
                continue;
            }
            let mut depth = 0usize;
            let mut end = trimmed.len();
            for (k, c) in trimmed[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &after[skip_from + end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Paths after `prefix` (`crate::`, `super::`, `cron::`), with `{…}` groups expanded, as
/// segment lists.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        // A whole word: `supercrate::` or `my_crate::` are not ours.
        if code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        expand(&code[from..], Vec::new(), &mut out);
    }
    out
}

/// Expands one path (possibly a `{a, b::c}` group) at the start of `text`.
fn expand(text: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut item_start = 0;
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&group[item_start..k], base.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&group[item_start..k], base.clone(), out);
                    item_start = k + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        if !base.is_empty() {
            out.push(base);
        }
        return;
    }
    let mut path = base;
    path.push(ident.clone());
    let rest = &text[ident.len()..];
    match rest.strip_prefix("::") {
        Some(more) => expand(more, path, out),
        None => out.push(path),
    }
}

impl Graph {
    fn of(crate_dir: &str) -> Graph {
        let src = workspace().join(crate_dir).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeMap<String, PathBuf> = files
            .iter()
            .map(|f| (module_path(&src, f), f.clone()))
            .collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut named_edges: BTreeSet<(String, String)> = BTreeSet::new();
        for (module, file) in &modules {
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            let here: Vec<String> = if module.is_empty() {
                Vec::new()
            } else {
                module.split("::").map(str::to_string).collect()
            };
            let mut targets: Vec<Vec<String>> = paths_after(&code, "crate::");
            let parent = &here[..here.len().saturating_sub(1)];
            for p in paths_after(&code, "super::") {
                targets.push(parent.iter().cloned().chain(p).collect());
            }
            // Children declared in this file (`mod cron;`), named without `crate::`.
            let children: Vec<String> = modules
                .keys()
                .filter_map(|m| {
                    let m: Vec<&str> = m.split("::").collect();
                    (m.len() == here.len() + 1 && m[..here.len()] == here[..])
                        .then(|| m[here.len()].to_string())
                })
                .collect();
            for child in &children {
                for p in paths_after(&code, &format!("{child}::")) {
                    targets.push(
                        here.iter()
                            .cloned()
                            .chain([child.clone()])
                            .chain(p)
                            .collect(),
                    );
                }
            }
            for target in targets {
                // The longest module prefix of the path is the module it names.
                let named = (1..=target.len())
                    .rev()
                    .map(|n| target[..n].join("::"))
                    .find(|m| modules.contains_key(m));
                if let Some(named) = named {
                    // A module and its own submodules are one unit: a parent declaring and
                    // using its children, or a child using its parent's items, is structure.
                    // Cycles and layers are about modules naming other subtrees.
                    let related = &named == module
                        || named.starts_with(&format!("{module}::"))
                        || module.starts_with(&format!("{named}::"))
                        || named.is_empty()
                        || module.is_empty();
                    if !related {
                        named_edges.insert((module.clone(), named.clone()));
                        edges.entry(module.clone()).or_default().insert(named);
                    }
                }
            }
        }
        // A parent contains its children: whatever a child names, its parent depends on too
        // (so `a → b::c` and `b::c → a` is a circle even though `b` itself names nothing).
        for module in modules.keys() {
            if let Some((parent, _)) = module.rsplit_once("::") {
                edges
                    .entry(parent.to_string())
                    .or_default()
                    .insert(module.clone());
            }
        }
        Graph {
            modules,
            edges,
            named_edges,
        }
    }

    /// Strongly connected components with more than one module (Tarjan).
    fn cycles(&self) -> Vec<Vec<String>> {
        struct State<'a> {
            graph: &'a Graph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            next: usize,
            found: Vec<Vec<String>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a str) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on_stack.insert(v);
            let graph: &'a Graph = s.graph;
            for w in graph.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    s.found.push(component);
                }
            }
        }
        let mut s = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            found: Vec::new(),
        };
        for m in self.modules.keys() {
            if !s.index.contains_key(m.as_str()) {
                visit(&mut s, m);
            }
        }
        s.found
    }

    fn describe(&self, component: &[String]) -> String {
        component
            .iter()
            .map(|m| {
                let inside: Vec<&str> = self
                    .edges
                    .get(m)
                    .into_iter()
                    .flatten()
                    .filter(|t| component.contains(t))
                    .map(String::as_str)
                    .collect();
                format!("  {m} → {}", inside.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Layers, lowest first, as written in docs/ARCHITECTURE.md. A module belongs to the layer of
/// the longest listed prefix of its path; every module of the crate must be placed.
const HUB_LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "time",
            "error",
            "events",
            "failpoints",
            "config",
            "store",
            "leadership",
            "selection",
            "telemetry",
            "agents",
            "probes",
            "conformance",
            "auth",
            "tls",
            "preparation",
            "environment_status",
            "endpoints",
            "secrets",
        ],
    ),
    ("engine", &["engine"]),
    (
        "controllers",
        &[
            "controllers",
            "orchestration",
            "schedule",
            "workflow",
            "probes::stop",
            "probes::statuscheck",
        ],
    ),
    (
        "operations",
        &["operations", "submission", "catalog", "suites"],
    ),
    (
        "edge",
        &[
            "api",
            "http_params",
            "console",
            "openapi",
            "server",
            "cli",
            "catalog_http",
            "agents_http",
            "suites::http",
            "auth_gate",
            "auth_http",
            "",
        ],
    ),
];

fn layer_of(layers: &[(&str, &[&str])], module: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (prefix length, layer)
    for (i, (_, prefixes)) in layers.iter().enumerate() {
        for p in *prefixes {
            let matches = module == *p || (!p.is_empty() && module.starts_with(&format!("{p}::")));
            if matches && best.is_none_or(|(len, _)| p.len() >= len) {
                best = Some((p.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

fn assert_one_way(crate_dir: &str) -> Graph {
    let graph = Graph::of(crate_dir);
    assert!(
        graph.modules.len() > 3,
        "{crate_dir}: found only {} modules; is the path right?",
        graph.modules.len()
    );
    let cycles = graph.cycles();
    let report: Vec<String> = cycles
        .iter()
        .map(|c| {
            format!(
                "{crate_dir}: modules that import each other in a circle:\n{}",
                graph.describe(c)
            )
        })
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
    graph
}

#[test]
fn hub_modules_form_a_one_way_graph_in_layers() {
    let graph = assert_one_way("hub");
    let mut problems = Vec::new();
    for module in graph.modules.keys() {
        if layer_of(HUB_LAYERS, module).is_none() {
            problems.push(format!(
                "hub module {module:?} has no layer: add it to HUB_LAYERS and docs/ARCHITECTURE.md"
            ));
        }
    }
    for (from, to) in &graph.named_edges {
        let Some(lf) = layer_of(HUB_LAYERS, from) else {
            continue;
        };
        {
            let Some(lt) = layer_of(HUB_LAYERS, to) else {
                continue;
            };
            if lt > lf {
                problems.push(format!(
                    "{from} ({} layer) names {to} ({} layer), a higher layer",
                    HUB_LAYERS[lf].0, HUB_LAYERS[lt].0
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn schema_modules_form_a_one_way_graph() {
    assert_one_way("schemas");
}

#[test]
fn adapters_modules_form_a_one_way_graph() {
    assert_one_way("adapters");
}

#[test]
fn native_modules_form_a_one_way_graph() {
    assert_one_way("native");
}

/// The engine owns the loop and the store, not the kinds: every kind reaches it through a
/// registered controller, so no kind name (as a string or a `Kind::` variant) appears in it.
#[test]
fn the_engine_names_no_kind() {
    let code = code_of(&std::fs::read_to_string(workspace().join("hub/src/engine.rs")).unwrap());
    let raw = std::fs::read_to_string(workspace().join("hub/src/engine.rs")).unwrap();
    let mut found = Vec::new();
    for kind in chaoshub_schema::Kind::ALL {
        let name = kind.as_str();
        if raw.contains(&format!("\"{name}\"")) || code.contains(&format!("Kind::{name}")) {
            found.push(name);
        }
    }
    assert!(
        found.is_empty(),
        "hub/src/engine.rs names kinds {found:?}; dispatch through the controller registry instead"
    );
}

#[test]
fn the_checker_sees_groups_super_and_cycles() {
    let mut out = Vec::new();
    expand("{a, b::{c, d}, e::f};", Vec::new(), &mut out);
    assert_eq!(
        out,
        [vec!["a"], vec!["b", "c"], vec!["b", "d"], vec!["e", "f"]]
            .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
    );
    let code = code_of("// crate::x::y\nlet s = \"crate::z\";\n#[cfg(test)]\nmod tests { use crate::w; }\nuse crate::v;");
    let paths = paths_after(&code, "crate::");
    assert_eq!(paths, [vec!["v".to_string()]]);
    // Quotes inside char literals open no string.
    let code = code_of("let a = '\\''; let b = '\"'; use crate::u;");
    assert_eq!(paths_after(&code, "crate::"), [vec!["u".to_string()]]);
    let graph = Graph {
        modules: ["a", "b", "c"]
            .map(|m| (m.to_string(), PathBuf::new()))
            .into(),
        edges: [
            ("a".to_string(), BTreeSet::from(["b".to_string()])),
            ("b".to_string(), BTreeSet::from(["c".to_string()])),
            ("c".to_string(), BTreeSet::from(["a".to_string()])),
        ]
        .into(),
        named_edges: BTreeSet::new(),
    };
    assert_eq!(graph.cycles(), [vec!["a", "b", "c"]]);
}
