//! A static accessibility check of a rendered HTML page: what axe-style tools check first, on
//! the HTML a server sends (or a browser's DOM after its scripts ran). The document's language,
//! one `h1`, a name for every form field (a `<label for>`, an enclosing label, or
//! `aria-label(ledby)`), for every button and link, a title for every figure, header cells in
//! every table, alt text on images, unique ids. std-only, like the rest of this crate.

/// One start tag: its name and attributes (the console writes every value in double quotes).
struct Tag<'a> {
    name: String,
    attrs: Vec<(String, &'a str)>,
    /// Byte offset just past the tag's `>`.
    end: usize,
}

impl Tag<'_> {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Every start and end tag of a page, in order (end tags are named `/name`). Script and
/// style contents are skipped.
fn tags(html: &str) -> Vec<Tag<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = html[at..].find('<').map(|i| at + i) {
        let Some(close) = html[open..].find('>').map(|i| open + i) else {
            break;
        };
        let inner = &html[open + 1..close];
        at = close + 1;
        if inner.starts_with('!') {
            continue;
        }
        let name_end = inner
            .find(|c: char| {
                c.is_whitespace() || c == '/' && inner.len() > 1 && !inner.starts_with('/')
            })
            .unwrap_or(inner.len());
        let name = inner[..name_end].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut rest = &inner[name_end..];
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() {
                break;
            }
            let key_end = rest
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(rest.len());
            let key = rest[..key_end].to_ascii_lowercase();
            rest = &rest[key_end..];
            if let Some(after) = rest.strip_prefix("=\"") {
                let value_end = after.find('"').unwrap_or(after.len());
                attrs.push((key, &after[..value_end]));
                rest = &after[(value_end + 1).min(after.len())..];
            } else {
                attrs.push((key, ""));
            }
        }
        let raw_text = name == "script" || name == "style";
        out.push(Tag {
            name: name.clone(),
            attrs,
            end: at,
        });
        if raw_text {
            if let Some(i) = html[at..].find(&format!("</{name}>")) {
                at += i;
            }
        }
    }
    out
}

/// The text between a start tag and its matching end tag, tags removed.
fn text_of(html: &str, tag: &Tag) -> String {
    let close = format!("</{}>", tag.name);
    let inner = &html[tag.end
        ..html[tag.end..]
            .find(&close)
            .map_or(html.len(), |i| tag.end + i)];
    let mut text = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_string()
}

/// Every problem found on the page, each named with the element; empty when none.
pub fn problems(html: &str) -> Vec<String> {
    let tags = tags(html);
    let mut problems = Vec::new();
    if !tags
        .iter()
        .any(|t| t.name == "html" && t.attr("lang").is_some_and(|l| !l.is_empty()))
    {
        problems.push("<html> has no lang".to_string());
    }
    let h1 = tags.iter().filter(|t| t.name == "h1").count();
    if h1 != 1 {
        problems.push(format!("{h1} <h1> elements (one expected)"));
    }
    let mut ids = std::collections::HashSet::new();
    for t in &tags {
        if let Some(id) = t.attr("id") {
            if !ids.insert(id) {
                problems.push(format!("duplicate id {id:?}"));
            }
        }
    }
    let labelled_for: std::collections::HashSet<&str> = tags
        .iter()
        .filter(|t| t.name == "label")
        .filter_map(|t| t.attr("for"))
        .collect();
    let mut label_depth = 0usize;
    for t in &tags {
        match t.name.as_str() {
            "label" => label_depth += 1,
            "/label" => label_depth = label_depth.saturating_sub(1),
            "input" | "select" | "textarea" => {
                let kind = t.attr("type").unwrap_or("text");
                if t.name == "input" && matches!(kind, "hidden" | "submit" | "button" | "reset") {
                    continue;
                }
                let named = label_depth > 0
                    || t.attr("aria-label").is_some_and(|v| !v.is_empty())
                    || t.attr("aria-labelledby").is_some()
                    || t.attr("id").is_some_and(|id| labelled_for.contains(id));
                if !named {
                    problems.push(format!(
                        "<{} name={:?} id={:?}> has no label",
                        t.name,
                        t.attr("name"),
                        t.attr("id")
                    ));
                }
            }
            "button" | "a" => {
                let named = !text_of(html, t).is_empty()
                    || t.attr("aria-label").is_some_and(|v| !v.is_empty())
                    || t.attr("title").is_some_and(|v| !v.is_empty());
                if !named {
                    problems.push(format!("<{} {:?}> has no text", t.name, t.attr("href")));
                }
                if t.name == "a" && t.attr("href").is_none() {
                    problems.push(format!("<a> without href: {:?}", text_of(html, t)));
                }
            }
            "svg" => {
                let hidden = t.attr("aria-hidden") == Some("true");
                let body = &html[t.end
                    ..html[t.end..]
                        .find("</svg>")
                        .map_or(html.len(), |i| t.end + i)];
                if !hidden && (t.attr("role") != Some("img") || !body.contains("<title")) {
                    problems.push("<svg> without role=img and a <title>".to_string());
                }
            }
            "table" => {
                let body = &html[t.end
                    ..html[t.end..]
                        .find("</table>")
                        .map_or(html.len(), |i| t.end + i)];
                if !body.contains("<th") {
                    problems.push("<table> without header cells".to_string());
                }
            }
            "img" if t.attr("alt").is_none() => {
                problems.push(format!("<img src={:?}> without alt", t.attr("src")));
            }
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::problems;

    #[test]
    fn the_check_finds_what_it_checks() {
        let good = "<!doctype html><html lang=\"en\"><body><h1>T</h1><label for=\"a\">A</label><input id=\"a\"><label><input type=\"checkbox\"> b</label><input type=\"hidden\" name=\"_csrf\"><button>Go</button><a href=\"/\">Home</a><svg role=\"img\"><title>x</title></svg><table><tr><th>h</th></tr></table><script>if (a < b) { x = \"<input>\"; }</script></body></html>";
        assert_eq!(problems(good), Vec::<String>::new());
        let bad = "<html><body><h1>T</h1><h1>U</h1><input id=\"x\" name=\"q\"><select id=\"x\"></select><button></button><a>no</a><svg></svg><table><tr><td>1</td></tr></table><img src=\"/i.png\"></body></html>";
        let problems = problems(bad);
        for wanted in [
            "<html> has no lang",
            "2 <h1> elements",
            "duplicate id \"x\"",
            "<input name=Some(\"q\") id=Some(\"x\")> has no label",
            "<select name=None id=Some(\"x\")> has no label",
            "<button None> has no text",
            "<a> without href",
            "<svg> without role=img",
            "<table> without header cells",
            "<img src=Some(\"/i.png\")> without alt",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(wanted)),
                "{wanted} not in {problems:#?}"
            );
        }
    }
}
