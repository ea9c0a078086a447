//! HTML building blocks: escaping, the page shell (head, navigation, header line) and small
//! pieces every page uses. Pages are plain strings written in one pass; nothing is parsed.

use std::fmt::Write;

use chaoshub_schema::auth::Role;

use super::session::Session;

/// Escapes text for element content and double-quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query or path component.
pub fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Experiments,
    New,
    Catalog,
    Environments,
    Orchestration,
    Builder,
    Suites,
    None,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/", "Overview"),
    (Nav::Experiments, "/experiments", "Experiments"),
    (Nav::New, "/new", "New experiment"),
    (Nav::Catalog, "/catalog", "Catalog"),
    (Nav::Environments, "/environments", "Environments"),
    (
        Nav::Orchestration,
        "/orchestration",
        "Schedules & workflows",
    ),
    (Nav::Builder, "/workflows/new", "Workflow builder"),
    (Nav::Suites, "/suites", "Suites"),
];

/// How a page is refreshed by the script: `Live` pages re-render their `<main>` when an event
/// arrives (the script fetches the same URL and swaps the element), `Static` ones never do
/// (forms being edited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Live,
    Static,
}

/// A whole page: head, navigation, the session line with the logout form, and `body` as
/// `<main>`.
pub fn page(
    title: &str,
    nav: Nav,
    session: Option<&Session>,
    refresh: Refresh,
    body: &str,
) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · chaoshub</title><link rel=\"stylesheet\" href=\"/console/static/console.css\">\
<link rel=\"icon\" href=\"/console/static/icon.svg\" type=\"image/svg+xml\">\
<script src=\"/console/static/console.js\" defer></script></head><body>\
<a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\"><a class=\"brand\" href=\"/\">chaoshub</a>",
        esc(title)
    );
    if let Some(session) = session {
        out.push_str("<nav aria-label=\"Main\"><ul>");
        for (n, href, label) in NAV {
            if matches!(*n, Nav::New | Nav::Builder) && session.role < Role::Operator {
                continue;
            }
            let current = if *n == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<li><a href=\"{href}\"{current}>{label}</a></li>");
        }
        out.push_str("</ul></nav>");
        let _ = write!(
            out,
            "<div class=\"who\"><span title=\"signed in with token {0}\">{0} · {1}</span>\
<form method=\"post\" action=\"/logout\">{2}<button class=\"link\">Log out</button></form></div>",
            esc(&session.name),
            session.role,
            csrf_field(session)
        );
    }
    out.push_str("</header>");
    let live = match refresh {
        Refresh::Live => " data-live=\"1\"",
        Refresh::Static => "",
    };
    let _ = write!(
        out,
        "<main id=\"main\"{live}><h1>{}</h1>{body}</main>\
<footer><span id=\"live-state\" aria-live=\"polite\"></span> chaoshub {}</footer></body></html>",
        esc(title),
        env!("CARGO_PKG_VERSION")
    );
    out
}

pub fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"_csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// A one-button form posting to `action` (with the CSRF token and a return path).
pub fn button_form(
    session: &Session,
    action: &str,
    label: &str,
    class: &str,
    back: &str,
    confirm: Option<&str>,
) -> String {
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"{confirm}>{}<input type=\"hidden\" name=\"back\" value=\"{}\"><button class=\"{class}\">{}</button></form>",
        esc(action),
        csrf_field(session),
        esc(back),
        esc(label)
    )
}

/// A phase as a coloured badge (the colour comes from the class; the text says it too).
pub fn phase_badge(phase: &str) -> String {
    format!(
        "<span class=\"badge phase-{}\">{}</span>",
        esc(&phase.to_ascii_lowercase()),
        esc(phase)
    )
}

/// An RFC 3339 time as `HH:MM:SS` with the full time in `title` and a `<time>` element.
pub fn time(rfc3339: &str) -> String {
    let short = rfc3339
        .split_once('T')
        .map(|(_, t)| t.trim_end_matches('Z'))
        .map(|t| t.split('.').next().unwrap_or(t))
        .unwrap_or(rfc3339);
    format!(
        "<time datetime=\"{0}\" title=\"{0}\">{1}</time>",
        esc(rfc3339),
        esc(short)
    )
}

/// Milliseconds as `1h 02m`, `3m 05s` or `12s`.
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A message box (`kind`: `error`, `ok` or `warn`).
pub fn notice(kind: &str, text: &str) -> String {
    format!(
        "<p class=\"notice {kind}\" role=\"{}\">{}</p>",
        if kind == "error" { "alert" } else { "status" },
        esc(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(duration_ms(3_725_000), "1h 02m");
        assert_eq!(duration_ms(185_000), "3m 05s");
        assert_eq!(duration_ms(999), "0s");
        assert!(time("2026-01-02T03:04:05.678Z").contains(">03:04:05<"));
    }
}
