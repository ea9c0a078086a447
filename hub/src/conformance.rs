//! The conformance matrix (docs/conformance.md, `GET /api/v1/conformance`,
//! `chaoshub adapters --matrix`) and the refusal messages that point at what does work.
//!
//! Cells come from `chaoshub_adapters::conformance::verdict`, i.e. from the same
//! `capabilities()` / `not_applicable()` / `check_fault()` a submission runs, so the document,
//! the API and the 422s cannot drift apart. Measured figures come from
//! `docs/conformance-measured.json`, each with the test and command that produced it; a
//! supported cell without one is shown as declared only.

use chaoshub_adapters::conformance::{verdict, Verdict, ROWS};
use chaoshub_adapters::{Adapter, AdapterRegistry, Environment};
use chaoshub_schema::api::{
    Capability, ConformanceCell, ConformanceMatrix, ConformanceRow, MeasuredFigure,
};
use chaoshub_schema::Manifest;

/// The figures measured by tests (see the file's entries for the commands), compiled in so the
/// API serves them without reading the source tree.
const MEASURED_JSON: &str = include_str!("../../docs/conformance-measured.json");

/// Column order of the matrix: the environment types from hosts to proxies, then the rest.
const COLUMN_ORDER: &[&str] = &["native", "docker", "ssm", "toxiproxy", "envoy", "webhook"];

/// A supported cell no test measures on this project's machines, and why.
pub struct Unmeasured {
    pub adapter: &'static str,
    /// A row id, or `*` for every supported row of the adapter that has no figure.
    pub row: &'static str,
    pub reason: &'static str,
}

/// The SSM scripts delay with `tc netem`, which the test machine's kernel lacks (the scripts
/// refuse clearly there, checked by adapters/tests/ssm/host.rs).
const NO_NETEM: &str = "the generated scripts delay with tc netem and the test machine's kernel \
                        has no sch_netem; adapters/tests/ssm/host.rs checks that the script \
                        refuses clearly there and the tc command line it runs where netem exists";

/// The SSM scripts duplicate and corrupt with `tc netem` too.
const NO_NETEM_EFFECTS: &str = "the generated scripts duplicate and corrupt with tc netem and the \
                                test machine's kernel has no sch_netem; \
                                adapters/tests/ssm/host.rs checks that the script refuses \
                                clearly there (exit 3 naming sch_netem, nothing left behind) and \
                                the tc command line it runs where netem exists";

/// Every supported cell without a measured figure must be listed here with its reason (a test
/// checks both ways: no cell missing, no entry left over once its cell is measured).
pub const UNMEASURED: &[Unmeasured] = &[
    Unmeasured {
        adapter: "ssm",
        row: "NetworkChaos/delay",
        reason: NO_NETEM,
    },
    Unmeasured {
        adapter: "ssm",
        row: "NetworkChaos/delay (jitter, correlation)",
        reason: NO_NETEM,
    },
    Unmeasured {
        adapter: "ssm",
        row: "NetworkChaos/delay (direction both, target selector)",
        reason: NO_NETEM,
    },
    Unmeasured {
        adapter: "ssm",
        row: "PhysicalMachineChaos/network-delay",
        reason: NO_NETEM,
    },
    Unmeasured {
        adapter: "ssm",
        row: "NetworkChaos/duplicate",
        reason: NO_NETEM_EFFECTS,
    },
    Unmeasured {
        adapter: "ssm",
        row: "NetworkChaos/corrupt",
        reason: NO_NETEM_EFFECTS,
    },
    Unmeasured {
        adapter: "native",
        row: "PhysicalMachineChaos/clock",
        reason: "skewing the clock needs the real host clock (a network namespace does not \
                 isolate CLOCK_REALTIME), which other work on the test machine shares; not run \
                 by the tests",
    },
    Unmeasured {
        adapter: "kubernetes",
        row: "*",
        reason: "the adapter federates to Chaos Mesh, whose controllers and daemons cannot run \
                 here (no kubelet, no container runtime for a cluster); its tests check the \
                 objects it applies and the status it reads back against a real kube-apiserver \
                 with a stand-in for Chaos Mesh's controller, which measures no effect",
    },
];

/// Why `row` on `adapter` has no measured figure, if the allow-list says.
pub fn unmeasured_reason(row: &str, adapter: &str) -> Option<&'static str> {
    UNMEASURED
        .iter()
        .find(|u| u.adapter == adapter && (u.row == row || u.row == "*"))
        .map(|u| u.reason)
}

/// The measured figures shipped with this build.
pub fn measured() -> Vec<MeasuredFigure> {
    serde_json::from_str(MEASURED_JSON)
        .expect("docs/conformance-measured.json parses (checked by a test)")
}

fn ordered(registry: &AdapterRegistry) -> Vec<std::sync::Arc<dyn Adapter>> {
    let mut all = registry.all();
    all.sort_by_key(|a| {
        COLUMN_ORDER
            .iter()
            .position(|t| *t == a.adapter_type())
            .unwrap_or(COLUMN_ORDER.len())
    });
    all
}

fn cell(v: Verdict) -> ConformanceCell {
    let (state, message) = match v {
        Verdict::Supported => ("supported", None),
        Verdict::Refused(m) => ("refused", Some(m)),
        Verdict::NotApplicable(m) => ("n/a", Some(m)),
        Verdict::Dynamic => (
            "dynamic",
            Some("the plugin behind each environment declares its own matrix".to_string()),
        ),
    };
    ConformanceCell {
        state: state.to_string(),
        message,
        measured: None,
    }
}

/// The matrix of every registered adapter over every row, with the measured figures.
pub fn matrix(registry: &AdapterRegistry, figures: &[MeasuredFigure]) -> ConformanceMatrix {
    let adapters = ordered(registry);
    let rows = ROWS
        .iter()
        .map(|row| {
            let manifest = row
                .manifest()
                .expect("conformance rows are valid manifests (checked by a test)");
            let id = row.id();
            let cells = adapters
                .iter()
                .map(|a| {
                    let mut c = cell(verdict(a.as_ref(), &manifest));
                    if c.state == "supported" {
                        c.measured = figures
                            .iter()
                            .find(|f| f.row == id && f.adapter == a.adapter_type())
                            .cloned();
                    }
                    (a.adapter_type().to_string(), c)
                })
                .collect();
            ConformanceRow {
                id,
                kind: row.kind.to_string(),
                action: row.action.to_string(),
                option: (!row.option.is_empty()).then(|| row.option.to_string()),
                manifest: chaoshub_schema::document::to_yaml(&manifest.to_value())
                    .unwrap_or_default(),
                cells,
            }
        })
        .collect();
    ConformanceMatrix {
        adapters: adapters
            .iter()
            .map(|a| a.adapter_type().to_string())
            .collect(),
        rows,
    }
}

/// Figures that name a row or adapter the matrix lacks, or a cell that is not supported: stale
/// entries the data file must lose.
pub fn stale_figures(matrix: &ConformanceMatrix, figures: &[MeasuredFigure]) -> Vec<String> {
    figures
        .iter()
        .filter(|f| {
            !matrix.rows.iter().any(|r| {
                r.id == f.row
                    && r.cells
                        .get(&f.adapter)
                        .is_some_and(|c| c.state == "supported")
            })
        })
        .map(|f| format!("{} on {}", f.row, f.adapter))
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// docs/conformance.md, generated (a test keeps the checked-in copy equal to this).
pub fn markdown(matrix: &ConformanceMatrix) -> String {
    let mut out = String::new();
    out.push_str(
        "# Conformance matrix\n\n\
         <!-- Generated from the adapters' declarations and docs/conformance-measured.json; do not edit.\n\
         Regenerate with: CHAOSHUB_UPDATE_DOCS=1 cargo test -p chaoshub conformance -->\n\n\
         What each adapter runs, row by row: a kind and action, or one notable option of it. Every\n\
         cell is computed by running that adapter's own submission checks (its declared\n\
         capabilities, `not_applicable` and the pure `check_fault` the hub runs before storing an\n\
         experiment) on the row's sample manifest, in the adapter's default configuration — the\n\
         same answer `POST /api/v1/experiments` gives. Served live at `GET /api/v1/conformance` and\n\
         by `chaoshub adapters --matrix`.\n\n\
         - **✓ measured** — a test ran the fault on the adapter's real far side, measured the\n\
           effect and checked it gone after recovery; the figure, the test, its command and\n\
           where it ran are listed under the table. Measuring tests record their figures\n\
           (`chaoshub_testkit::measured!`, into `<target>/conformance-figures/`); running\n\
           `CHAOSHUB_UPDATE_DOCS=1 cargo test -p chaoshub conformance` afterwards folds them into\n\
           docs/conformance-measured.json and regenerates this page.\n\
         - **✓ declared** — the checks accept it; no test measures it, for the reason listed under\n\
           the table.\n\
         - **✗** — refused at submission (422, or 400 for a value), with the adapter's message.\n\
         - **n/a** — physically impossible on that far side, with why.\n\
         - **dynamic** — the plugin behind each webhook environment declares its own matrix.\n\n\
         Environment-side gaps are not in the table: a native agent offers only what its kernel\n\
         can do and host clock skew only when started with `--allow clock`; such a refusal\n\
         names the agent and the missing opt-in.\n\n",
    );
    out.push_str("| row |");
    for a in &matrix.adapters {
        out.push_str(&format!(" {a} |"));
    }
    out.push_str("\n|---|");
    for _ in &matrix.adapters {
        out.push_str("---|");
    }
    out.push('\n');
    let mut notes: Vec<String> = Vec::new();
    let mut figures: Vec<&MeasuredFigure> = Vec::new();
    for row in &matrix.rows {
        out.push_str(&format!("| {} |", escape(&row.id)));
        for a in &matrix.adapters {
            let text = match row.cells.get(a) {
                Some(c) if c.state == "supported" => match &c.measured {
                    Some(m) => {
                        figures.push(m);
                        format!("✓ {} [m{}]", escape(&m.figure), figures.len())
                    }
                    None => "✓ declared".to_string(),
                },
                Some(c) => {
                    let message = c.message.clone().unwrap_or_default();
                    let n = match notes.iter().position(|n| *n == message) {
                        Some(i) => i + 1,
                        None => {
                            notes.push(message);
                            notes.len()
                        }
                    };
                    let mark = match c.state.as_str() {
                        "refused" => "✗",
                        other => other,
                    };
                    format!("{mark} [{n}]")
                }
                None => String::new(),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    let supported = matrix
        .rows
        .iter()
        .flat_map(|r| r.cells.values())
        .filter(|c| c.state == "supported")
        .count();
    out.push_str(&format!(
        "\n{supported} supported cells, {} of them with a measured figure.\n",
        figures.len()
    ));
    out.push_str("\n## Measured figures\n\n");
    if figures.is_empty() {
        out.push_str("None yet.\n");
    }
    for (i, f) in figures.iter().enumerate() {
        out.push_str(&format!(
            "- **m{}** — {} on {}: {}. Test: {}. Command: `{}`. Measured: {}.\n",
            i + 1,
            f.row,
            f.adapter,
            f.figure,
            f.test,
            f.command,
            f.measured
        ));
    }
    out.push_str("\n## Supported, not measured\n\n");
    let mut unmeasured = 0;
    for u in UNMEASURED {
        let cells: Vec<&str> = matrix
            .rows
            .iter()
            .filter(|r| {
                (u.row == "*" || u.row == r.id)
                    && r.cells
                        .get(u.adapter)
                        .is_some_and(|c| c.state == "supported" && c.measured.is_none())
            })
            .map(|r| r.id.as_str())
            .collect();
        if cells.is_empty() {
            continue;
        }
        unmeasured += cells.len();
        let which = if u.row == "*" {
            format!("all {} supported rows", cells.len())
        } else {
            u.row.to_string()
        };
        out.push_str(&format!("- {} — {which}: {}.\n", u.adapter, u.reason));
    }
    if unmeasured == 0 {
        out.push_str("None.\n");
    }
    out.push_str("\n## Refusals and n/a reasons\n\n");
    for (i, n) in notes.iter().enumerate() {
        out.push_str(&format!("{}. {}\n", i + 1, escape(n)));
    }
    out.push_str("\n## Sample manifests\n\nEach row's cells are the answers to this spec:\n\n");
    for row in &matrix.rows {
        let spec = ROWS
            .iter()
            .find(|r| r.id() == row.id)
            .map(|r| r.spec.replace('\n', "; "))
            .unwrap_or_default();
        out.push_str(&format!("- {}: `{}`\n", row.id, spec));
    }
    out
}

/// The adapters of this hub whose checks accept `manifest` (for "try instead" hints).
pub fn accepting(registry: &AdapterRegistry, manifest: &Manifest) -> Vec<String> {
    ordered(registry)
        .iter()
        .filter(|a| verdict(a.as_ref(), manifest) == Verdict::Supported)
        .map(|a| a.adapter_type().to_string())
        .collect()
}

/// The 422 message for an environment whose adapter does not offer `kind`/`action`: why (the
/// environment's own gap, or physically impossible, or not implemented), the nearest thing
/// this adapter does run, and the adapters that accept the manifest.
pub fn missing_capability(
    registry: &AdapterRegistry,
    env: &Environment,
    adapter: &dyn Adapter,
    manifest: &Manifest,
    action: &str,
) -> String {
    let kind = manifest.kind().as_str();
    let capability = Capability::new(kind, action);
    let mut message = format!(
        "environment {:?} (adapter {}) cannot run {kind}/{action}",
        env.name, env.spec.adapter
    );
    if let Some(gap) = adapter.capability_gap(env, &capability) {
        message.push_str(&format!(": {gap}"));
        return message;
    }
    if let Some(why) = adapter.not_applicable(kind, action) {
        message.push_str(&format!(": {why}"));
    }
    if let Some(alt) = adapter.alternative(kind, action) {
        message.push_str(&format!("; on this environment: {alt}"));
    }
    message.push_str(&elsewhere(registry, manifest));
    message
}

/// " (supported by: docker, native)": the adapters whose checks accept this manifest.
pub fn elsewhere(registry: &AdapterRegistry, manifest: &Manifest) -> String {
    let others = accepting(registry, manifest);
    let dynamic: Vec<String> = registry
        .all()
        .iter()
        .filter(|a| a.dynamic_capabilities())
        .map(|a| format!("{} (if its plugin declares it)", a.adapter_type()))
        .collect();
    let all: Vec<String> = others.into_iter().chain(dynamic).collect();
    if all.is_empty() {
        " (supported by: no adapter of this hub)".to_string()
    } else {
        format!(" (supported by: {})", all.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry of a running hub: the built-in adapters and the engine's `native`.
    fn hub_registry() -> AdapterRegistry {
        let mut registry = AdapterRegistry::builtin();
        registry.register(std::sync::Arc::new(
            chaoshub_adapters::native::NativeAdapter::new(crate::agents::AgentRegistry::new()),
        ));
        registry
    }

    fn workspace_file(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(rel)
    }

    /// Folds the figures tests recorded (`chaoshub_testkit::measured!`) into `figures`: a cell
    /// measured again gets its new figure, the others keep theirs. Returns the merged list in
    /// matrix order and the files read (removed by the caller once everything is written).
    fn fold_recorded(
        registry: &AdapterRegistry,
        mut figures: Vec<MeasuredFigure>,
    ) -> (Vec<MeasuredFigure>, Vec<std::path::PathBuf>) {
        let recorded = chaoshub_testkit::conformance::recorded();
        let declared = matrix(registry, &[]);
        let mut files = Vec::new();
        for (path, text) in recorded {
            let figure: MeasuredFigure =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                stale_figures(&declared, std::slice::from_ref(&figure)),
                Vec::<String>::new(),
                "{} records a figure for a cell that is not supported; remove the file or fix \
                 the test that wrote it",
                path.display()
            );
            figures.retain(|f| !(f.row == figure.row && f.adapter == figure.adapter));
            figures.push(figure);
            files.push(path);
        }
        let row_index = |id: &str| ROWS.iter().position(|r| r.id() == id);
        let column = |a: &str| declared.adapters.iter().position(|x| x == a);
        figures.sort_by(|x, y| {
            (row_index(&x.row), column(&x.adapter)).cmp(&(row_index(&y.row), column(&y.adapter)))
        });
        (figures, files)
    }

    /// With `CHAOSHUB_UPDATE_DOCS=1`: folds the recorded figures into
    /// docs/conformance-measured.json, then regenerates docs/conformance.md from it. Without:
    /// checks the checked-in document against the shipped figures, and writes nothing.
    #[test]
    fn conformance_doc_matches_checked_in_copy() {
        let registry = hub_registry();
        let update = std::env::var("CHAOSHUB_UPDATE_DOCS").as_deref() == Ok("1");
        let mut figures = measured();
        let mut consumed = Vec::new();
        if update {
            (figures, consumed) = fold_recorded(&registry, figures);
            let json = serde_json::to_string_pretty(&figures).unwrap() + "\n";
            std::fs::write(workspace_file("docs/conformance-measured.json"), json).unwrap();
        }
        let matrix = matrix(&registry, &figures);
        assert_eq!(
            stale_figures(&matrix, &figures),
            Vec::<String>::new(),
            "docs/conformance-measured.json has figures for cells that are not supported"
        );
        let text = markdown(&matrix);
        let path = workspace_file("docs/conformance.md");
        if update {
            std::fs::write(&path, &text).unwrap();
            for file in consumed {
                let _ = std::fs::remove_file(file);
            }
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == text,
            "docs/conformance.md is out of date; regenerate it with: CHAOSHUB_UPDATE_DOCS=1 cargo test -p chaoshub conformance"
        );
    }

    /// Every supported cell has a measured figure or an entry in [`UNMEASURED`] saying why not;
    /// no entry stays once its cell is measured; every figure names a test that exists.
    #[test]
    fn every_supported_cell_is_measured_or_says_why_not() {
        let figures = measured();
        let m = matrix(&hub_registry(), &figures);
        let mut missing = Vec::new();
        for row in &m.rows {
            for (adapter, cell) in &row.cells {
                if cell.state == "supported"
                    && cell.measured.is_none()
                    && unmeasured_reason(&row.id, adapter).is_none()
                {
                    missing.push(format!("{} on {adapter}", row.id));
                }
            }
        }
        assert_eq!(
            missing,
            Vec::<String>::new(),
            "supported cells without a measured figure: add a measuring test (see \
             chaoshub_testkit::measured!) or an UNMEASURED entry with the reason"
        );
        for u in UNMEASURED {
            let open = m.rows.iter().any(|r| {
                (u.row == "*" || u.row == r.id)
                    && r.cells
                        .get(u.adapter)
                        .is_some_and(|c| c.state == "supported" && c.measured.is_none())
            });
            assert!(
                open,
                "UNMEASURED lists {} on {}, which is measured or not supported: remove the entry",
                u.row, u.adapter
            );
        }
        for f in &figures {
            let (file, test) = f
                .test
                .split_once(' ')
                .unwrap_or_else(|| panic!("{f:?}: test is `<file> <test path>`"));
            let text = std::fs::read_to_string(workspace_file(file))
                .unwrap_or_else(|e| panic!("{f:?}: {file}: {e}"));
            let name = test.rsplit("::").next().unwrap();
            assert!(
                text.contains(&format!("fn {name}(")),
                "{} on {}: the test {test} is not in {file}",
                f.row,
                f.adapter
            );
            assert!(
                f.command.contains(test),
                "{f:?}: the command runs another test"
            );
        }
    }

    #[test]
    fn every_cell_of_the_matrix_has_an_answer() {
        let m = matrix(&hub_registry(), &[]);
        assert!(m.adapters.len() >= 6, "{:?}", m.adapters);
        assert_eq!(&m.adapters[..2], ["native", "docker"]);
        for row in &m.rows {
            assert_eq!(row.cells.len(), m.adapters.len(), "{}", row.id);
            for (a, c) in &row.cells {
                assert!(
                    c.state == "supported" || c.message.as_deref().is_some_and(|m| !m.is_empty()),
                    "{} on {a}: a refusal without a message",
                    row.id
                );
            }
        }
        let cell =
            |row: &str, a: &str| m.rows.iter().find(|r| r.id == row).unwrap().cells[a].clone();
        // The gaps closed for issue 17, and the refusals that point elsewhere.
        assert_eq!(
            cell("NetworkChaos/delay (reorder)", "native").state,
            "supported"
        );
        assert_eq!(
            cell("NetworkChaos/delay (reorder)", "docker").state,
            "supported"
        );
        assert_eq!(
            cell("NetworkChaos/delay (externalTargets host name)", "docker").state,
            "supported"
        );
        let ssm = cell("NetworkChaos/delay (reorder)", "ssm");
        assert_eq!(ssm.state, "refused");
        assert!(ssm.message.unwrap().contains("native agent or docker"));
        let stress = cell("StressChaos/cpu", "toxiproxy");
        assert_eq!(stress.state, "n/a", "{stress:?}");
        let time = cell("TimeChaos/time-offset", "native");
        assert!(time
            .message
            .unwrap()
            .contains("PhysicalMachineChaos action clock"));
    }

    #[test]
    fn the_measured_figures_file_parses() {
        let figures = measured();
        for f in &figures {
            assert!(
                !f.figure.is_empty() && !f.command.is_empty() && !f.test.is_empty(),
                "{f:?}"
            );
        }
    }
}
