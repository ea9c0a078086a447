//! Migration check (serde_yaml 0.9 → serde-saphyr): every YAML and JSON text in the repository
//! reads the same with the old parser and the new one, or the difference is one the new reader
//! makes on purpose. This test and the serde_yaml dev-dependency are removed once the migration
//! has landed.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn old_parse(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value =
            serde::Deserialize::deserialize(de).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        docs.push(serde_json::to_value(&value).map_err(|e| e.to_string())?);
    }
    Ok(docs)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Raw string literals (`r"…"`, `r#"…"#`) of a Rust file: the YAML the tests write inline.
fn raw_strings(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'r'
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] == b'#' {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'"' {
                let hashes = j - i - 1;
                let close = format!("\"{}", "#".repeat(hashes));
                if let Some(end) = source[j + 1..].find(&close) {
                    out.push(source[j + 1..j + 1 + end].to_string());
                    i = j + 1 + end + close.len();
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Ordinary string literals holding a line break and a `: `, unescaped: the short YAML texts
/// the tests write as `"kind: X\nspec: …"`.
fn escaped_strings(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = source.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if c == '"' && previous != '\\' && previous != '\'' && previous != '#' && previous != 'r' {
            let mut literal = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => literal.push('\n'),
                        Some('t') => literal.push('\t'),
                        Some('\n') => {
                            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                                chars.next();
                            }
                        }
                        Some(other) => literal.push(other),
                        None => break,
                    },
                    c => literal.push(c),
                }
            }
            if closed && literal.contains('\n') && literal.contains(": ") {
                out.push(literal);
            }
            previous = '"';
            continue;
        }
        previous = c;
    }
    out
}

/// ```yaml / ```json blocks of a Markdown file.
fn code_blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```yaml")
                || trimmed.starts_with("```yml")
                || trimmed.starts_with("```json") =>
            {
                current = Some(String::new())
            }
            Some(block) if trimmed.starts_with("```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn the_whole_corpus_reads_the_same_with_the_new_parser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let shared = root.join("../shared/reference/chaos-mesh/examples");
    if shared.is_dir() {
        walk(&shared, &mut files);
    } else {
        eprintln!(
            "SKIP (part): no Chaos Mesh examples at {}; the repository's own corpus is still read",
            shared.display()
        );
    }
    let mut texts: Vec<(String, String)> = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml" | "json") => texts.push((name, text)),
            Some("md") => {
                for (i, block) in code_blocks(&text).into_iter().enumerate() {
                    texts.push((format!("{name} block {i}"), block));
                }
            }
            // The two files of the migration itself: `yaml.rs` pins where the new reader differs
            // on purpose (tags, merge keys, `.inf`, alias keys), so it is not corpus.
            Some("rs")
                if !name.ends_with("yaml_migration.rs") && !name.ends_with("schema/yaml.rs") =>
            {
                for (i, literal) in raw_strings(&text).into_iter().enumerate() {
                    texts.push((format!("{name} raw literal {i}"), literal));
                }
                for (i, literal) in escaped_strings(&text).into_iter().enumerate() {
                    texts.push((format!("{name} literal {i}"), literal));
                }
            }
            _ => {}
        }
    }
    let mut same = 0;
    let mut both_refused = 0;
    let mut differences = Vec::new();
    for (name, text) in &texts {
        let old = old_parse(text);
        let new = chaoshub_schema::split_documents(text);
        match (&old, &new) {
            (Ok(a), Ok(b)) if a == b => same += 1,
            (Err(_), Err(_)) => both_refused += 1,
            _ => differences.push(format!(
                "{name}:\n  old: {}\n  new: {}",
                match &old {
                    Ok(v) => serde_json::to_string(v).unwrap(),
                    Err(e) => format!("error: {e}"),
                },
                match &new {
                    Ok(v) => serde_json::to_string(v).unwrap(),
                    Err(e) => format!("error: {e}"),
                }
            )),
        }
    }
    eprintln!(
        "{} texts: {same} read the same, {both_refused} refused by both, {} differ",
        texts.len(),
        differences.len()
    );
    assert!(
        texts.len() > 100,
        "the corpus is too small: {}",
        texts.len()
    );
    assert!(
        differences.is_empty(),
        "{} texts read differently:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
