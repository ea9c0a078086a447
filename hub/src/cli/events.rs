//! `events`: list the event log, or follow it (Server-Sent Events when the hub offers them,
//! polling otherwise).

use std::time::Duration;

use chaoshub_schema::api::{EventRecord, ExperimentObject, Page};

use super::client::{CliError, HubClient};
use super::output::{
    emit, event_row, event_stream_line, events_table, render_structured, ItemList, OutputFormat,
    EVENT_HEADERS,
};
use super::{EventsArgs, ExitCode};

/// How often `--follow` asks for new events when it has to poll.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The uid of an experiment named by name or uid. An id the hub no longer resolves (a deleted
/// experiment) is used as it is, since its events outlive it.
pub async fn resolve_experiment_uid(
    client: &HubClient,
    id: &str,
    namespace: Option<&str>,
) -> Result<String, CliError> {
    let query: Vec<(&str, String)> = namespace
        .map(|n| vec![("namespace", n.to_string())])
        .unwrap_or_default();
    match client
        .get::<ExperimentObject>(&["api", "v1", "experiments", id], &query)
        .await
    {
        Ok(object) => Ok(object.metadata.uid.unwrap_or_else(|| id.to_string())),
        Err(e) if e.is_not_found() && looks_like_uid(id) => Ok(id.to_string()),
        Err(e) => Err(e),
    }
}

/// UUIDs (what the hub assigns as uids): 36 characters of hex digits and dashes.
fn looks_like_uid(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Every event matching `query` after `after`. The event log pages by id: a full page's
/// `continue` token is its last id, passed back as `after`.
pub async fn list_events(
    client: &HubClient,
    query: &[(&str, String)],
    mut after: Option<i64>,
) -> Result<Vec<EventRecord>, CliError> {
    let mut events = Vec::new();
    loop {
        let mut q = query.to_vec();
        if let Some(id) = after {
            q.push(("after", id.to_string()));
        }
        let page: Page<EventRecord> = client.get(&["api", "v1", "events"], &q).await?;
        let last = page.items.last().map(|e| e.id);
        events.extend(page.items);
        match (page.continue_token, last) {
            (Some(_), Some(last)) if after.is_none_or(|a| last > a) => after = Some(last),
            _ => return Ok(events),
        }
    }
}

pub async fn events(
    client: &HubClient,
    format: OutputFormat,
    args: &EventsArgs,
) -> Result<ExitCode, CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(id) = &args.experiment {
        let uid = resolve_experiment_uid(client, id, args.namespace.as_deref()).await?;
        query.push(("experiment", uid));
    }
    if let Some(since) = &args.since {
        query.push(("since", since.clone()));
    }
    let backlog = list_events(client, &query, None).await?;

    if !args.follow {
        match format {
            OutputFormat::Table if backlog.is_empty() => eprintln!("no events found"),
            OutputFormat::Table => emit(&events_table(&backlog).render()),
            _ => emit(&render_structured(format, &ItemList { items: &backlog })?),
        }
        return Ok(ExitCode::Success);
    }

    let mut printer = EventPrinter::new(format);
    for event in &backlog {
        printer.print(event)?;
    }
    let last_id = backlog.iter().map(|e| e.id).max();
    tokio::select! {
        result = follow(client, &query, &mut printer, last_id) => result,
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::Success),
    }
}

/// Prints events one at a time, in a layout that does not need to see them all first.
pub struct EventPrinter {
    format: OutputFormat,
    printed_any: bool,
}

impl EventPrinter {
    pub fn new(format: OutputFormat) -> Self {
        Self {
            format,
            printed_any: false,
        }
    }

    pub fn render(&mut self, event: &EventRecord) -> Result<String, CliError> {
        let first = !self.printed_any;
        self.printed_any = true;
        Ok(match self.format {
            OutputFormat::Table => {
                let mut text = String::new();
                if first {
                    let headers: Vec<String> =
                        EVENT_HEADERS.iter().map(|h| h.to_string()).collect();
                    text.push_str(&event_stream_line(&headers));
                }
                text.push_str(&event_stream_line(&event_row(event)));
                text
            }
            // One compact object per line, so `jq` and line-oriented tools can read the stream.
            OutputFormat::Json => {
                let mut line = serde_json::to_string(event)
                    .map_err(|e| CliError::Protocol(format!("cannot render JSON: {e}")))?;
                line.push('\n');
                line
            }
            OutputFormat::Yaml => format!("---\n{}", render_structured(OutputFormat::Yaml, event)?),
        })
    }

    pub fn print(&mut self, event: &EventRecord) -> Result<(), CliError> {
        let text = self.render(event)?;
        emit(&text);
        Ok(())
    }
}

async fn follow(
    client: &HubClient,
    query: &[(&str, String)],
    printer: &mut EventPrinter,
    mut last_id: Option<i64>,
) -> Result<ExitCode, CliError> {
    // A hub without the stream endpoint (404), one that answered something else, or a stream
    // that ended: carry on by polling from the last event seen. Without a hub, though, there is
    // nothing to poll either.
    // The stream cannot filter by time, so with `--since` and no event seen yet it would
    // replay too much; polling keeps the filter.
    let since_unanchored = last_id.is_none() && query.iter().any(|(k, _)| *k == "since");
    if !since_unanchored {
        if let Err(e @ (CliError::Unreachable { .. } | CliError::Usage(_))) =
            stream(client, query, printer, &mut last_id).await
        {
            return Err(e);
        }
    }
    loop {
        let batch = list_events(client, query, last_id).await?;
        for event in batch {
            if last_id.is_none_or(|last| event.id > last) {
                printer.print(&event)?;
                last_id = Some(event.id);
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Follows `GET /api/v1/events/stream` until it ends; `Err` when it cannot be opened.
async fn stream(
    client: &HubClient,
    query: &[(&str, String)],
    printer: &mut EventPrinter,
    last_id: &mut Option<i64>,
) -> Result<(), CliError> {
    // The stream takes fewer filters than the listing (no `since`); the backlog already
    // applied them, and `after` carries on from it.
    let mut q: Vec<(&str, String)> = query
        .iter()
        .filter(|(k, _)| *k == "experiment")
        .cloned()
        .collect();
    if let Some(id) = *last_id {
        q.push(("after", id.to_string()));
    }
    let mut response = client
        .open_stream(&["api", "v1", "events", "stream"], &q)
        .await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type.starts_with("text/event-stream") {
        return Err(CliError::Protocol(format!(
            "event stream answered with {content_type:?}"
        )));
    }
    let mut parser = SseParser::default();
    while let Some(chunk) = client.next_chunk(&mut response).await? {
        for message in parser.push(&chunk) {
            // The hub dropped events for this slow reader; polling from the last id seen
            // fills the gap.
            if message.event.as_deref() == Some("lagged") {
                return Ok(());
            }
            // Keep-alives and messages of other types carry no event record.
            let Ok(event) = serde_json::from_str::<EventRecord>(&message.data) else {
                continue;
            };
            if last_id.is_none_or(|last| event.id > last) {
                printer.print(&event)?;
                *last_id = Some(event.id);
            }
        }
    }
    Ok(())
}

/// One Server-Sent Events message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

/// Incremental Server-Sent Events parser: chunks in, complete messages out. Chunks may split
/// lines and even UTF-8 characters anywhere, so bytes are kept until a blank line ends a message.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        // CRLF and LF line endings both occur in the wild; carriage returns carry nothing.
        self.buffer
            .extend(chunk.iter().copied().filter(|b| *b != b'\r'));
        let mut messages = Vec::new();
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            if let Some(message) = parse_block(&text) {
                messages.push(message);
            }
        }
        messages
    }
}

fn parse_block(block: &str) -> Option<SseMessage> {
    let mut message = SseMessage::default();
    let mut data_lines: Vec<&str> = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => data_lines.push(value),
            "event" => message.event = Some(value.to_string()),
            "id" => message.id = Some(value.to_string()),
            _ => {}
        }
    }
    if data_lines.is_empty() {
        return None;
    }
    message.data = data_lines.join("\n");
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sse_messages_survive_arbitrary_chunking() {
        let stream = ": keep-alive\n\nid: 4\nevent: chaoshub\ndata: {\"a\":\r\ndata: 1}\r\n\r\n\
                      data: é\n\nretry: 10\n\n";
        let expected = vec![
            SseMessage {
                event: Some("chaoshub".into()),
                id: Some("4".into()),
                data: "{\"a\":\n1}".into(),
            },
            SseMessage {
                event: None,
                id: None,
                data: "é".into(),
            },
        ];
        let bytes = stream.as_bytes();
        for split in 1..bytes.len() {
            let mut parser = SseParser::default();
            let mut got = parser.push(&bytes[..split]);
            got.extend(parser.push(&bytes[split..]));
            assert_eq!(got, expected, "split at {split}");
        }
    }

    #[test]
    fn followed_events_print_as_fixed_columns_json_lines_or_yaml() {
        let event = EventRecord {
            id: 12,
            time: "2024-05-01T12:00:00Z".into(),
            name: "chaoshub.experiment.running".into(),
            experiment_uid: Some("0b7c9a2e-2f1d-4a8e-9c51-3d2b1f0e9a77".into()),
            environment: Some("staging".into()),
            target: None,
            message: "all targets injected".into(),
            attributes: BTreeMap::new(),
        };
        let mut table = EventPrinter::new(OutputFormat::Table);
        let first = table.render(&event).unwrap();
        assert_eq!(
            first,
            "ID       TIME                       EVENT                                  EXPERIMENT                             TARGET             MESSAGE\n\
             12       2024-05-01T12:00:00Z       chaoshub.experiment.running            0b7c9a2e-2f1d-4a8e-9c51-3d2b1f0e9a77   -                  all targets injected\n"
        );
        assert_eq!(table.render(&event).unwrap().lines().count(), 1);
        let mut json = EventPrinter::new(OutputFormat::Json);
        let line = json.render(&event).unwrap();
        assert!(
            line.starts_with("{\"id\":12,") && line.ends_with("}\n") && line.lines().count() == 1
        );
        let mut yaml = EventPrinter::new(OutputFormat::Yaml);
        assert!(yaml.render(&event).unwrap().starts_with("---\nid: 12\n"));
    }

    #[test]
    fn uid_detection() {
        assert!(looks_like_uid("0b7c9a2e-2f1d-4a8e-9c51-3d2b1f0e9a77"));
        assert!(!looks_like_uid("web-delay"));
    }
}
