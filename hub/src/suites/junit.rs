//! The JUnit XML report of a suite run, in the shape CI systems read (the Ant/Jenkins
//! `junit-10.xsd` conventions): one `<testsuite>` per environment, one `<testcase>` per
//! experiment with `classname="<suite>.<environment>"`; a case that failed has `<failure>`, one
//! that could not be carried out `<error>`, one not run `<skipped>`; the message attribute is
//! the verdict and the element's text the probe evidence. Counts, times (seconds) and
//! timestamps (`YYYY-MM-DDThh:mm:ss`, UTC) are on every suite.

use std::fmt::Write as _;

use chaoshub_schema::probe::ProbeResult;
use chaoshub_schema::suite::{CaseOutcome, SuiteCase, SuiteRun};

/// Escapes text for an attribute or element; characters XML 1.0 forbids are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Element text keeps its line breaks.
fn escape_text(text: &str) -> String {
    escape(text).replace("&#10;", "\n")
}

fn seconds(ms: Option<u64>) -> String {
    format!("{:.3}", ms.unwrap_or(0) as f64 / 1000.0)
}

/// `2026-01-02T03:04:05` from an RFC 3339 time.
fn timestamp(rfc3339: Option<&str>) -> Option<String> {
    rfc3339
        .and_then(crate::time::parse)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn probe_lines(title: &str, results: &[ProbeResult], out: &mut String) {
    if results.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for r in results {
        let _ = writeln!(
            out,
            "  {} {} {} ({} ms): {}",
            r.at,
            if r.ok { "ok  " } else { "FAIL" },
            r.probe,
            r.duration_ms,
            r.detail
        );
    }
}

/// The evidence of a case: failed probes first, then every experiment with its targets.
fn case_evidence(case: &SuiteCase) -> String {
    let mut out = String::new();
    let ss = &case.steady_state;
    let failed: Vec<ProbeResult> = ss
        .before
        .iter()
        .chain(&ss.during)
        .chain(&ss.after)
        .filter(|r| !r.ok)
        .cloned()
        .collect();
    probe_lines("failed probe results", &failed, &mut out);
    for e in &case.experiments {
        let _ = writeln!(
            out,
            "experiment {} ({}, uid {}): {}{}",
            e.name,
            e.kind,
            e.uid,
            e.phase,
            e.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        for t in &e.targets {
            let _ = writeln!(
                out,
                "  target {} ({}): {:?}{}",
                t.target.name,
                t.target.id,
                t.phase,
                t.error
                    .as_deref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

fn system_out(case: &SuiteCase) -> String {
    let mut out = String::new();
    if let Some(m) = &case.message {
        let _ = writeln!(out, "{m}");
    }
    if let Some(t) = &case.threshold {
        let _ = writeln!(
            out,
            "threshold search on {}: tolerated {:?}, first failing {:?}, ended by {}",
            t.parameter, t.tolerated, t.first_failing, t.ended_by
        );
        for s in &t.steps {
            let _ = writeln!(
                out,
                "  {}={} {}: {}",
                t.parameter,
                s.value,
                if s.tolerated { "tolerated" } else { "broke" },
                s.detail
            );
        }
    }
    probe_lines("steady state before", &case.steady_state.before, &mut out);
    probe_lines("steady state during", &case.steady_state.during, &mut out);
    probe_lines("steady state after", &case.steady_state.after, &mut out);
    out
}

/// Renders the whole report.
pub fn render(run: &SuiteRun) -> String {
    // Environments in the order their first case appears.
    let mut environments: Vec<&str> = Vec::new();
    for c in &run.cases {
        if !environments.contains(&c.environment.as_str()) {
            environments.push(&c.environment);
        }
    }
    let count =
        |cases: &[&SuiteCase], o: CaseOutcome| cases.iter().filter(|c| c.outcome == o).count();
    let all: Vec<&SuiteCase> = run.cases.iter().collect();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
        escape(&run.suite),
        all.len(),
        count(&all, CaseOutcome::Failed),
        count(&all, CaseOutcome::Error),
        count(&all, CaseOutcome::Skipped),
        seconds(run.duration_ms)
    );
    for (id, env) in environments.iter().enumerate() {
        let cases: Vec<&SuiteCase> = run.cases.iter().filter(|c| c.environment == *env).collect();
        let time: u64 = cases.iter().filter_map(|c| c.duration_ms).sum();
        let first_start = cases.iter().filter_map(|c| c.started_at.as_deref()).min();
        let stamp = timestamp(first_start.or(Some(run.created_at.as_str())))
            .map(|t| format!(" timestamp=\"{t}\""))
            .unwrap_or_default();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" id=\"{id}\" package=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\"{stamp} hostname=\"chaoshub\">",
            escape(env),
            escape(&run.suite),
            cases.len(),
            count(&cases, CaseOutcome::Failed),
            count(&cases, CaseOutcome::Error),
            count(&cases, CaseOutcome::Skipped),
            seconds(Some(time)),
        );
        let _ = writeln!(xml, "    <properties>");
        for (name, value) in [
            ("chaoshub.suite", run.suite.as_str()),
            ("chaoshub.suite.run", run.id.as_str()),
            ("chaoshub.environment", env),
        ] {
            let _ = writeln!(
                xml,
                "      <property name=\"{name}\" value=\"{}\"/>",
                escape(value)
            );
        }
        let _ = writeln!(xml, "    </properties>");
        for case in cases {
            let _ = write!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
                escape(&case.experiment),
                escape(&format!("{}.{}", run.suite, env)),
                seconds(case.duration_ms)
            );
            let message = case.message.clone().unwrap_or_default();
            let element = match case.outcome {
                CaseOutcome::Failed => Some(("failure", "SteadyStateNotAsExpected")),
                CaseOutcome::Error => Some(("error", "CaseError")),
                CaseOutcome::Pending | CaseOutcome::Running => Some(("error", "Unfinished")),
                CaseOutcome::Skipped | CaseOutcome::Passed => None,
            };
            let _ = writeln!(xml, ">");
            if case.outcome == CaseOutcome::Skipped {
                let _ = writeln!(xml, "      <skipped message=\"{}\"/>", escape(&message));
            }
            if let Some((tag, kind)) = element {
                let message = if message.is_empty() {
                    "the case did not finish".to_string()
                } else {
                    message
                };
                let _ = writeln!(
                    xml,
                    "      <{tag} message=\"{}\" type=\"{kind}\">{}</{tag}>",
                    escape(&message),
                    escape_text(&case_evidence(case))
                );
            }
            let _ = writeln!(
                xml,
                "      <system-out>{}</system-out>",
                escape_text(&system_out(case))
            );
            let _ = writeln!(xml, "    </testcase>");
        }
        let _ = writeln!(xml, "  </testsuite>");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::suite::{Expectation, SteadyStateRecord, SuiteRunPhase, SuiteSummary};

    fn case(exp: &str, env: &str, outcome: CaseOutcome, message: &str) -> SuiteCase {
        SuiteCase {
            experiment: exp.into(),
            environment: env.into(),
            expect: Expectation::Hold,
            outcome,
            message: Some(message.into()),
            started_at: Some("2026-01-02T03:04:05.000Z".into()),
            ended_at: None,
            duration_ms: Some(1500),
            experiments: vec![],
            steady_state: SteadyStateRecord {
                during: vec![ProbeResult {
                    probe: "web".into(),
                    at: "2026-01-02T03:04:06.000Z".into(),
                    ok: outcome == CaseOutcome::Passed,
                    duration_ms: 3,
                    detail: "GET http://x/ → 504 <timeout> & \"more\"".into(),
                }],
                ..Default::default()
            },
            threshold: None,
        }
    }

    #[test]
    fn one_testsuite_per_environment_with_counts_and_escaped_evidence() {
        let run = SuiteRun {
            id: "r1".into(),
            suite: "checkout".into(),
            phase: SuiteRunPhase::Failed,
            created_at: "2026-01-02T03:04:00.000Z".into(),
            ended_at: None,
            duration_ms: Some(3000),
            summary: SuiteSummary::default(),
            cases: vec![
                case("slow", "edge-a", CaseOutcome::Passed, "held"),
                case("slow", "edge-b", CaseOutcome::Failed, "deviated <a&b>"),
                case("fill", "edge-b", CaseOutcome::Skipped, "time ran out"),
            ],
            log: vec![],
            manifest: serde_json::Value::Null,
        };
        let xml = render(&run);
        assert!(xml.contains("<testsuites name=\"checkout\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{xml}");
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert!(xml.contains("timestamp=\"2026-01-02T03:04:05\""), "{xml}");
        assert!(xml.contains("classname=\"checkout.edge-b\""), "{xml}");
        assert!(
            xml.contains(
                "<failure message=\"deviated &lt;a&amp;b&gt;\" type=\"SteadyStateNotAsExpected\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("504 &lt;timeout&gt; &amp; &quot;more&quot;"),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"time ran out\"/>"), "{xml}");
        assert!(!xml.contains('\u{1}'));
    }
}
