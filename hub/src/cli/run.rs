//! `chaoshub run suite.yaml`: submit a Suite to the hub, follow its run live, write the JUnit
//! XML and JSON reports, and exit 0 when every case passed, 1 when one failed.
//!
//! The hub runs the suite (so its runs are stored and listed like any other); this command
//! resolves what only the client can — `file:` references, read relative to the suite file —
//! and then only submits and follows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaoshub_schema::suite::{CaseOutcome, SuiteRun, SuiteRunPhase};
use serde_json::Value;

use super::apply::{read_input, split};
use super::client::{CliError, HubClient};
use super::output::{emit, render_structured, OutputFormat, Table};
use super::{ExitCode, RunArgs};

/// How often the run's journal is read while following it.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Reads the suite file and inlines its `file:` references.
pub fn load_suite(path: &Path) -> Result<Value, CliError> {
    let text = read_input(path)?;
    let mut documents = split(&text, path)?;
    if documents.len() != 1 {
        return Err(CliError::Usage(format!(
            "{} holds {} documents; a suite file holds exactly one Suite",
            path.display(),
            documents.len()
        )));
    }
    let mut suite = documents.remove(0);
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let experiments = suite
        .get_mut("spec")
        .and_then(|s| s.get_mut("experiments"))
        .and_then(Value::as_array_mut);
    for (i, exp) in experiments.into_iter().flatten().enumerate() {
        let Some(obj) = exp.as_object_mut() else {
            continue;
        };
        let Some(file) = obj.get("file").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let at = format!("spec.experiments[{i}].file");
        let resolved = if Path::new(&file).is_absolute() {
            PathBuf::from(&file)
        } else {
            base.join(&file)
        };
        let text = std::fs::read_to_string(&resolved).map_err(|e| {
            CliError::Usage(format!("{at}: cannot read {}: {e}", resolved.display()))
        })?;
        let mut docs = split(&text, &resolved)?;
        if docs.len() != 1 {
            return Err(CliError::Usage(format!(
                "{at}: {} holds {} documents; an experiment file holds exactly one",
                resolved.display(),
                docs.len()
            )));
        }
        obj.remove("file");
        obj.insert("manifest".into(), docs.remove(0));
    }
    Ok(suite)
}

fn outcome_word(o: CaseOutcome) -> &'static str {
    match o {
        CaseOutcome::Pending => "Pending",
        CaseOutcome::Running => "Running",
        CaseOutcome::Passed => "Passed",
        CaseOutcome::Failed => "Failed",
        CaseOutcome::Error => "Error",
        CaseOutcome::Skipped => "Skipped",
    }
}

fn summary_table(run: &SuiteRun) -> String {
    let mut table = Table::new(&[
        "ENVIRONMENT",
        "EXPERIMENT",
        "EXPECT",
        "OUTCOME",
        "TIME",
        "MESSAGE",
    ]);
    for c in &run.cases {
        let message: String = c.message.clone().unwrap_or_default();
        let message = if message.chars().count() > 160 {
            format!("{}…", message.chars().take(160).collect::<String>())
        } else {
            message
        };
        table.push(vec![
            c.environment.clone(),
            c.experiment.clone(),
            if c.threshold.is_some() {
                "threshold".into()
            } else {
                c.expect.as_str().into()
            },
            outcome_word(c.outcome).into(),
            c.duration_ms
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_default(),
            message,
        ]);
    }
    table.render()
}

fn write_reports(run: &SuiteRun, args: &RunArgs) -> Result<(), CliError> {
    if let Some(path) = &args.junit {
        std::fs::write(path, crate::suites::junit::render(run)).map_err(|e| {
            CliError::Usage(format!("cannot write --junit {}: {e}", path.display()))
        })?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(run)
            .map_err(|e| CliError::Protocol(format!("cannot encode the journal: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| CliError::Usage(format!("cannot write --json {}: {e}", path.display())))?;
    }
    Ok(())
}

pub async fn run(
    client: &HubClient,
    format: OutputFormat,
    args: &RunArgs,
) -> Result<ExitCode, CliError> {
    let suite = load_suite(&args.file)?;
    let envs: Vec<String> = args
        .env
        .iter()
        .flat_map(|e| e.split(','))
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    let query: Vec<(&str, String)> = if envs.is_empty() {
        Vec::new()
    } else {
        vec![("env", envs.join(","))]
    };
    // Progress goes to stdout for people; with -o json/yaml stdout carries the journal only.
    let progress = |line: &str| {
        if format == OutputFormat::Table {
            emit(&format!("{line}\n"));
        } else {
            eprintln!("{line}");
        }
    };
    let mut run: SuiteRun = client
        .post(&["api", "v1", "suites"], &query, Some(&suite))
        .await?;
    progress(&format!(
        "suite {} run {} submitted to {}",
        run.suite,
        run.id,
        client.server()
    ));
    let started = Instant::now();
    let mut printed = 0usize;
    loop {
        for line in run.log.iter().skip(printed) {
            let time = line.at.get(11..19).unwrap_or(&line.at);
            progress(&format!("{time}  {}", line.message));
        }
        printed = printed.max(run.log.len());
        if run.phase != SuiteRunPhase::Running {
            break;
        }
        if started.elapsed() >= args.timeout {
            write_reports(&run, args)?;
            return Err(CliError::TimedOut(format!(
                "suite run {} did not finish within {}; it goes on in the hub (GET /api/v1/suites/runs/{})",
                run.id,
                chaoshub_schema::duration::format_duration(args.timeout),
                run.id
            )));
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        run = client
            .get(&["api", "v1", "suites", "runs", &run.id], &[])
            .await?;
    }
    write_reports(&run, args)?;
    match format {
        OutputFormat::Table => {
            emit(&format!("\n{}", summary_table(&run)));
            let s = &run.summary;
            emit(&format!(
                "\n{}: {} passed, {} failed, {} error(s), {} skipped of {} case(s)\n",
                run.phase.as_str().to_uppercase(),
                s.passed,
                s.failed,
                s.errors,
                s.skipped,
                s.cases
            ));
            for (flag, path) in [("JUnit XML", &args.junit), ("JSON journal", &args.json)] {
                if let Some(p) = path {
                    emit(&format!("{flag} written to {}\n", p.display()));
                }
            }
        }
        other => emit(&render_structured(other, &run)?),
    }
    Ok(match run.phase {
        SuiteRunPhase::Passed => ExitCode::Success,
        _ => ExitCode::Failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_references_are_read_relative_to_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("faults")).unwrap();
        std::fs::write(
            dir.path().join("faults/delay.yaml"),
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d}\nspec: {action: delay}\n",
        )
        .unwrap();
        let suite = dir.path().join("suite.yaml");
        std::fs::write(
            &suite,
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {name: s}\nspec:\n  environments: [a]\n  experiments:\n    - {name: d, file: faults/delay.yaml}\n",
        )
        .unwrap();
        let value = load_suite(&suite).unwrap();
        let exp = &value["spec"]["experiments"][0];
        assert!(exp.get("file").is_none());
        assert_eq!(exp["manifest"]["kind"], "NetworkChaos");

        std::fs::write(
            &suite,
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {name: s}\nspec:\n  environments: [a]\n  experiments:\n    - {name: d, file: missing.yaml}\n",
        )
        .unwrap();
        let err = load_suite(&suite).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(
            err.to_string().contains("spec.experiments[0].file"),
            "{err}"
        );
    }
}
