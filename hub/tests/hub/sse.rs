//! The live event stream (`GET /api/v1/events/stream`, Server-Sent Events): a client connected
//! before an experiment gets every one of its events, a reconnect with `Last-Event-ID` misses
//! none, and `chaoshub events --follow` (the real binary) prints them as they happen.

use std::process::Stdio;
use std::time::Duration;

use chaoshub_schema::api::EventRecord;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::support::{delay_yaml, Sandbox};

const T: Duration = Duration::from_secs(15);

/// One SSE message: its `id`, `event` and `data` fields.
#[derive(Debug, Default)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// The test's own minimal SSE reader (LF line endings, as the hub writes them).
#[derive(Default)]
struct SseParser {
    buffer: String,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<Message> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut m = Message::default();
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => m.id = Some(value.to_string()),
                    "event" => m.event = Some(value.to_string()),
                    "data" => m.data.push_str(value),
                    _ => {}
                }
            }
            out.push(m);
        }
        out
    }
}

/// An open SSE connection read message by message.
struct EventStream {
    response: reqwest::Response,
    parser: SseParser,
    pending: std::collections::VecDeque<EventRecord>,
}

impl EventStream {
    async fn open(s: &Sandbox, last_event_id: Option<i64>) -> EventStream {
        let mut req = s.client.get(format!("{}/api/v1/events/stream", s.url));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        EventStream {
            response,
            parser: SseParser::default(),
            pending: Default::default(),
        }
    }

    /// The next event record, or panics after the timeout.
    async fn next(&mut self) -> EventRecord {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return e;
            }
            let chunk = tokio::time::timeout(T, self.response.chunk())
                .await
                .expect("no event within the timeout")
                .unwrap()
                .expect("the stream ended");
            for message in self.parser.push(&chunk) {
                assert_ne!(
                    message.event.as_deref(),
                    Some("lagged"),
                    "the test client fell behind"
                );
                if let Ok(e) = serde_json::from_str::<EventRecord>(&message.data) {
                    assert_eq!(message.id.as_deref(), Some(e.id.to_string().as_str()));
                    self.pending.push_back(e);
                }
            }
        }
    }

    /// Events until (and including) the first one `stop` accepts.
    async fn until(&mut self, stop: impl Fn(&EventRecord) -> bool) -> Vec<EventRecord> {
        let mut out = Vec::new();
        loop {
            let e = self.next().await;
            let done = stop(&e);
            out.push(e);
            if done {
                return out;
            }
        }
    }
}

fn finished(uid: &str) -> impl Fn(&EventRecord) -> bool + '_ {
    move |e| e.experiment_uid.as_deref() == Some(uid) && e.name == "chaoshub.experiment.finished"
}

async fn stored_events(s: &Sandbox) -> Vec<EventRecord> {
    let (_, page) = s.get("/api/v1/events?limit=1000").await;
    serde_json::from_value(page["items"].clone()).unwrap()
}

async fn create(s: &Sandbox, name: &str, duration: &str) -> String {
    let (code, created) = s
        .post_yaml("/api/v1/experiments", &delay_yaml(name, Some(duration), ""))
        .await;
    assert_eq!(code, 201, "{created:#}");
    created["metadata"]["uid"].as_str().unwrap().to_string()
}

fn ids(events: &[EventRecord]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn a_client_connected_before_the_experiment_receives_every_event() {
    let s = Sandbox::start(4).await;
    let mut stream = EventStream::open(&s, None).await;
    let uid = create(&s, "sse-all", "200ms").await;
    let got = stream.until(finished(&uid)).await;
    let stored = stored_events(&s).await;
    // Everything stored up to the last event received, in the same order, nothing twice.
    let last = got.last().unwrap().id;
    let expected: Vec<i64> = stored
        .iter()
        .map(|e| e.id)
        .filter(|id| *id <= last)
        .collect();
    assert_eq!(ids(&got), expected);
    let names: Vec<&str> = got
        .iter()
        .filter(|e| e.experiment_uid.as_deref() == Some(uid.as_str()))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "chaoshub.experiment.created",
            "chaoshub.experiment.injecting",
            "chaoshub.target.injected",
            "chaoshub.target.injected",
            "chaoshub.experiment.running",
            "chaoshub.experiment.recovering",
            "chaoshub.target.recovered",
            "chaoshub.target.recovered",
            "chaoshub.experiment.finished",
        ]
    );
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_misses_none() {
    let s = Sandbox::start(4).await;
    let mut first = EventStream::open(&s, None).await;
    let uid = create(&s, "sse-resume", "400ms").await;
    // Read until the fault is confirmed, then drop the connection mid-experiment.
    let before = first
        .until(|e| {
            e.experiment_uid.as_deref() == Some(uid.as_str())
                && e.name == "chaoshub.experiment.running"
        })
        .await;
    drop(first);
    // Events keep being stored while nobody listens: the experiment recovers meanwhile.
    s.wait_phase(&uid, "Finished", T).await;
    let mut second = EventStream::open(&s, Some(before.last().unwrap().id)).await;
    // A second experiment shows that live events follow the replayed backlog.
    let uid2 = create(&s, "sse-resume-2", "100ms").await;
    let after = second.until(finished(&uid2)).await;
    let mut all = before.clone();
    all.extend(after);
    let stored = stored_events(&s).await;
    let last = all.last().unwrap().id;
    let expected: Vec<i64> = stored
        .iter()
        .map(|e| e.id)
        .filter(|id| *id <= last)
        .collect();
    assert_eq!(ids(&all), expected, "no event missed or repeated");
    assert!(all.iter().any(finished(&uid)));
}

/// Kills the child process on drop, so a failing test leaves nothing running.
struct ChildGuard(tokio::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn cli_events_follow_prints_the_stream_live() {
    let s = Sandbox::start(4).await;
    let mut child = ChildGuard(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chaoshub"))
            .args(["--server", &s.url, "-o", "json", "events", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    // The backlog (hub started, environment registered) comes first: the follower is up.
    let first = tokio::time::timeout(T, lines.next_line())
        .await
        .expect("no output from events --follow")
        .unwrap()
        .unwrap();
    let first: EventRecord = serde_json::from_str(&first).unwrap();
    let uid = create(&s, "cli-follow", "200ms").await;
    let mut got = vec![first];
    loop {
        let line = tokio::time::timeout(T, lines.next_line())
            .await
            .expect("events --follow stopped printing")
            .unwrap()
            .expect("events --follow exited");
        let e: EventRecord = serde_json::from_str(&line).unwrap();
        let done = finished(&uid)(&e);
        got.push(e);
        if done {
            break;
        }
    }
    let stored = stored_events(&s).await;
    let last = got.last().unwrap().id;
    let expected: Vec<i64> = stored
        .iter()
        .map(|e| e.id)
        .filter(|id| *id <= last)
        .collect();
    assert_eq!(ids(&got), expected);
}
