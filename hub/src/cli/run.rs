//! `chaoshub run suite.yaml`: submit a Suite to the hub, follow its run live, write the JUnit
//! XML and JSON reports, and exit 0 when every case passed, 1 when one failed.
//!
//! The hub runs the suite (so its runs are stored and listed like any other); this command
//! resolves what only the client can — `file:` references, read relative to the suite file —
//! and then only submits and follows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaoshub_schema::api::EventRecord;
use chaoshub_schema::suite::{CaseOutcome, SuiteRun, SuiteRunPhase};
use serde_json::Value;

use super::apply::{read_input, split};
use super::client::{CliError, HubClient};
use super::events::SseParser;
use super::output::{emit, render_structured, OutputFormat, Table};
use super::{ExitCode, RunArgs};

/// The longest the journal goes unread while following a run. The run's events on the stream
/// wake the CLI at once; this only bounds how long a lost event (or a run ended without one,
/// say by a hub restart) can go unnoticed.
const REREAD_AT_LEAST_EVERY: Duration = Duration::from_secs(5);
/// Between two reads of the journal when the hub's event stream cannot be opened at all.
const WITHOUT_STREAM_EVERY: Duration = Duration::from_millis(250);

/// Wakes `chaoshub run` when the hub announces a change of its run on the event stream
/// (`chaoshub.suite.progress` / `chaoshub.suite.finished` with attribute `run`). The journal
/// stays the source of truth: after every wake-up the CLI reads it again.
struct RunFollower<'a> {
    client: &'a HubClient,
    run_id: String,
    /// Events from this time on (the run's creation, on the hub's clock) are replayed when
    /// the stream is (re)opened, so nothing between the journal read and the stream is lost.
    since: String,
    stream: Option<(reqwest::Response, SseParser)>,
    last_id: Option<i64>,
    /// The stream could not be opened (an older hub, a proxy in between): read on a timer.
    unavailable: bool,
}

impl<'a> RunFollower<'a> {
    fn new(client: &'a HubClient, run: &SuiteRun) -> Self {
        Self {
            client,
            run_id: run.id.clone(),
            since: run.created_at.clone(),
            stream: None,
            last_id: None,
            unavailable: false,
        }
    }

    async fn open(&mut self) -> Option<(reqwest::Response, SseParser)> {
        let mut query = vec![("since", self.since.clone())];
        if let Some(id) = self.last_id {
            query.push(("after", id.to_string()));
        }
        match self
            .client
            .open_stream(&["api", "v1", "events", "stream"], &query)
            .await
        {
            Ok(response) => Some((response, SseParser::default())),
            Err(_) => {
                self.unavailable = true;
                None
            }
        }
    }

    /// Returns when the run's next event arrives, or after `limit`, whichever is first.
    async fn next_change(&mut self, limit: Duration) {
        if self.unavailable {
            tokio::time::sleep(limit.min(WITHOUT_STREAM_EVERY)).await;
            return;
        }
        let limit = limit.min(REREAD_AT_LEAST_EVERY);
        let _ = tokio::time::timeout(limit, self.wait_for_event()).await;
    }

    async fn wait_for_event(&mut self) {
        let (mut response, mut parser) = match self.stream.take() {
            Some(open) => open,
            None => match self.open().await {
                Some(open) => open,
                None => return,
            },
        };
        loop {
            let chunk = match self.client.next_chunk(&mut response).await {
                Ok(Some(chunk)) => chunk,
                // The stream ended or broke: reopened (from the last id seen) on the next wait,
                // after the caller has read the journal again.
                Ok(None) | Err(_) => return,
            };
            let mut woken = false;
            for message in parser.push(&chunk) {
                let Ok(event) = serde_json::from_str::<EventRecord>(&message.data) else {
                    continue;
                };
                self.last_id = Some(event.id);
                woken |= event.name.starts_with("chaoshub.suite.")
                    && event.attributes.get("run") == Some(&self.run_id);
            }
            if woken {
                self.stream = Some((response, parser));
                return;
            }
        }
    }
}

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
    let mut follower = RunFollower::new(client, &run);
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
        follower
            .next_change(args.timeout.saturating_sub(started.elapsed()))
            .await;
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
