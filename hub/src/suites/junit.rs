//! The JUnit XML report of a suite run, in the shape CI systems read (the Ant/Jenkins
//! `junit-10.xsd` conventions), written by `quick-junit` (the writer cargo-nextest uses): one
//! `<testsuite>` per environment, one `<testcase>` per experiment with
//! `classname="<suite>.<environment>"`; a case that failed has `<failure>`, one that could not be
//! carried out `<error>`, one not run `<skipped>`; the message attribute is the verdict and the
//! element's text the probe evidence. Counts, times (seconds) and timestamps (RFC 3339) are on
//! every suite. What is ours is the mapping from a run to that shape; the XML (escaping, the
//! characters XML 1.0 forbids, counts) is the crate's.

use std::fmt::Write as _;
use std::time::Duration;

use chaoshub_schema::probe::ProbeResult;
use chaoshub_schema::suite::{CaseOutcome, SuiteCase, SuiteRun};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

fn duration(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(0))
}

fn timestamp(rfc3339: Option<&str>) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    rfc3339.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
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
    let mut report = Report::new(run.suite.as_str());
    report.set_time(duration(run.duration_ms));
    for (id, env) in environments.iter().enumerate() {
        let cases: Vec<&SuiteCase> = run.cases.iter().filter(|c| c.environment == *env).collect();
        let mut suite = TestSuite::new(*env);
        suite.set_time(duration(Some(
            cases.iter().filter_map(|c| c.duration_ms).sum(),
        )));
        let first_start = cases.iter().filter_map(|c| c.started_at.as_deref()).min();
        if let Some(t) = timestamp(first_start.or(Some(run.created_at.as_str()))) {
            suite.set_timestamp(t);
        }
        for (name, value) in [("id", id.to_string()), ("package", run.suite.clone())] {
            suite.extra.insert(name.into(), value.into());
        }
        suite.extra.insert("hostname".into(), "chaoshub".into());
        suite.add_properties([
            Property::new("chaoshub.suite", run.suite.as_str()),
            Property::new("chaoshub.suite.run", run.id.as_str()),
            Property::new("chaoshub.environment", *env),
        ]);
        for case in cases {
            let message = case.message.clone().unwrap_or_default();
            let mut status = match case.outcome {
                CaseOutcome::Passed => TestCaseStatus::success(),
                CaseOutcome::Skipped => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(message.as_str());
                    s
                }
                CaseOutcome::Failed => non_success(
                    NonSuccessKind::Failure,
                    "SteadyStateNotAsExpected",
                    &message,
                ),
                CaseOutcome::Error => non_success(NonSuccessKind::Error, "CaseError", &message),
                CaseOutcome::Pending | CaseOutcome::Running => {
                    non_success(NonSuccessKind::Error, "Unfinished", &message)
                }
            };
            if matches!(status, TestCaseStatus::NonSuccess { .. }) {
                status.set_description(case_evidence(case));
            }
            let mut test_case = TestCase::new(case.experiment.as_str(), status);
            test_case
                .set_classname(format!("{}.{}", run.suite, env))
                .set_time(duration(case.duration_ms))
                .set_system_out(system_out(case));
            suite.add_test_case(test_case);
        }
        report.add_test_suite(suite);
    }
    // Serialising an in-memory report only fails on a writer error, and a String cannot fail.
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- the JUnit report could not be written: {e} -->\n"))
}

fn non_success(kind: NonSuccessKind, ty: &str, message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_type(ty).set_message(if message.is_empty() {
        "the case did not finish"
    } else {
        message
    });
    status
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

    fn run() -> SuiteRun {
        let mut odd = case(
            "odd \u{1}name ]]>",
            "edge-b",
            CaseOutcome::Error,
            "engine said \u{1b}[31mno\u{1b}[0m & <quit>",
        );
        odd.duration_ms = None;
        SuiteRun {
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
                odd,
                case("late", "edge-a", CaseOutcome::Running, ""),
            ],
            log: vec![],
            manifest: serde_json::Value::Null,
            replica: None,
            takeovers: 0,
        }
    }

    /// Read back with quick-junit's own reader: every count, name and verdict survives.
    #[test]
    fn the_report_reads_back_with_counts_names_and_evidence() {
        let xml = render(&run());
        let report = Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(report.name.as_ref().map(|n| n.as_str()), Some("checkout"));
        assert_eq!(
            (report.tests, report.failures, report.errors, report.skipped),
            (5, 1, 2, 1),
            "{xml}"
        );
        assert_eq!(report.time, Some(Duration::from_secs(3)));
        let names: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["edge-a", "edge-b"]);
        let b = &report.test_suites[1];
        assert_eq!((b.tests, b.failures, b.errors, b.skipped), (3, 1, 1, 1));
        assert_eq!(b.extra.get("package").map(|v| v.as_str()), Some("checkout"));
        assert_eq!(b.extra.get("id").map(|v| v.as_str()), Some("1"));
        assert_eq!(
            b.timestamp.map(|t| t.to_rfc3339()),
            Some("2026-01-02T03:04:05+00:00".to_string())
        );
        let props: Vec<(&str, &str)> = b
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert!(props.contains(&("chaoshub.suite.run", "r1")), "{props:?}");
        let failed = &b.test_cases[0];
        assert_eq!(
            failed.classname.as_ref().unwrap().as_str(),
            "checkout.edge-b"
        );
        assert_eq!(failed.time, Some(Duration::from_millis(1500)));
        let TestCaseStatus::NonSuccess {
            kind,
            message,
            ty,
            description,
            ..
        } = &failed.status
        else {
            panic!("{:?}", failed.status);
        };
        assert_eq!(*kind, NonSuccessKind::Failure);
        assert_eq!(message.as_ref().unwrap().as_str(), "deviated <a&b>");
        assert_eq!(ty.as_ref().unwrap().as_str(), "SteadyStateNotAsExpected");
        assert!(
            description
                .as_ref()
                .unwrap()
                .as_str()
                .contains("504 <timeout> & \"more\""),
            "{description:?}"
        );
        assert!(matches!(
            b.test_cases[1].status,
            TestCaseStatus::Skipped { .. }
        ));
        // Control characters and terminal escapes are dropped, not written as invalid XML.
        let odd = &b.test_cases[2];
        assert_eq!(odd.name.as_str(), "odd name ]]>");
        let TestCaseStatus::NonSuccess { message, .. } = &odd.status else {
            panic!("{:?}", odd.status);
        };
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "engine said no & <quit>"
        );
        assert!(!xml.contains('\u{1}') && !xml.contains('\u{1b}'));
        // An unfinished case is an error with a message that says so.
        let late = &report.test_suites[0].test_cases[1];
        let TestCaseStatus::NonSuccess { kind, message, .. } = &late.status else {
            panic!("{:?}", late.status);
        };
        assert_eq!(*kind, NonSuccessKind::Error);
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "the case did not finish"
        );
    }

    /// The element tree and attributes of the JUnit schema CI systems read (Jenkins/Ant
    /// `junit-10.xsd`, GitLab, GitHub reporters): checked element by element with an XML
    /// tokenizer, so the report is well-formed and nothing sits where a strict reader refuses it.
    #[test]
    fn the_report_has_the_junit_schema_shape() {
        let xml = render(&run());
        let children: &[(&str, &[&str])] = &[
            ("", &["testsuites"]),
            ("testsuites", &["testsuite"]),
            (
                "testsuite",
                &["properties", "testcase", "system-out", "system-err"],
            ),
            ("properties", &["property"]),
            (
                "testcase",
                &["skipped", "error", "failure", "system-out", "system-err"],
            ),
        ];
        let required: &[(&str, &[&str])] = &[
            ("testsuites", &["tests", "failures", "errors"]),
            (
                "testsuite",
                &[
                    "name",
                    "tests",
                    "failures",
                    "errors",
                    "skipped",
                    "time",
                    "timestamp",
                ],
            ),
            ("property", &["name", "value"]),
            ("testcase", &["name", "classname", "time"]),
            ("failure", &["message", "type"]),
            ("error", &["message", "type"]),
        ];
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut stack: Vec<String> = Vec::new();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        loop {
            let event = reader.read_event().unwrap_or_else(|e| panic!("{e}\n{xml}"));
            let (start, empty) = match &event {
                quick_xml::events::Event::Start(s) => (Some(s.clone()), false),
                quick_xml::events::Event::Empty(s) => (Some(s.clone()), true),
                quick_xml::events::Event::End(_) => {
                    stack.pop();
                    continue;
                }
                quick_xml::events::Event::Eof => break,
                _ => continue,
            };
            let Some(start) = start else { continue };
            let name = String::from_utf8(start.name().as_ref().to_vec()).unwrap();
            let parent = stack.last().map(String::as_str).unwrap_or("");
            let allowed = children
                .iter()
                .find(|(p, _)| *p == parent)
                .map(|(_, c)| *c)
                .unwrap_or(&[]);
            assert!(
                allowed.contains(&name.as_str()),
                "<{name}> inside <{parent}>\n{xml}"
            );
            let attrs: std::collections::BTreeMap<String, String> = start
                .attributes()
                .map(|a| {
                    let a = a.unwrap();
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned(),
                    )
                })
                .collect();
            if let Some((_, need)) = required.iter().find(|(n, _)| *n == name) {
                for attr in *need {
                    assert!(
                        attrs.contains_key(*attr),
                        "<{name}> lacks {attr}: {attrs:?}"
                    );
                }
            }
            for count in ["tests", "failures", "errors", "skipped"] {
                if let Some(v) = attrs.get(count) {
                    v.parse::<u64>()
                        .unwrap_or_else(|_| panic!("<{name}> {count}={v:?}"));
                }
            }
            if let Some(v) = attrs.get("time") {
                assert!(v.parse::<f64>().unwrap() >= 0.0, "<{name}> time={v:?}");
            }
            if let Some(v) = attrs.get("timestamp") {
                chrono::DateTime::parse_from_rfc3339(v)
                    .unwrap_or_else(|e| panic!("<{name}> timestamp={v:?}: {e}"));
            }
            *seen.entry(name.clone()).or_default() += 1;
            if !empty {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert_eq!(seen.get("testsuites"), Some(&1));
        assert_eq!(seen.get("testsuite"), Some(&2));
        assert_eq!(seen.get("testcase"), Some(&5));
        assert_eq!(seen.get("failure"), Some(&1));
        assert_eq!(seen.get("error"), Some(&2));
        assert_eq!(seen.get("skipped"), Some(&1));
        assert_eq!(seen.get("property"), Some(&6));
    }
}
