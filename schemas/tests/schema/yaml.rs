//! The YAML (and JSON) reading behaviour that matters to users, pinned: YAML 1.2 scalars,
//! duplicate keys, tags, aliases and their expansion bound, document streams, error positions,
//! and the bounds one text may not cross.

use std::time::{Duration, Instant};

use chaoshub_schema::document::{
    json_value, json_value_with, to_yaml, yaml_documents, yaml_documents_with, JsonError, Limits,
};
use chaoshub_schema::{parse_one, split_documents, ValidationErrors};
use serde_json::{json, Value};

fn one(text: &str) -> Value {
    let mut docs = yaml_documents(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(docs.len(), 1, "{text:?}");
    docs.remove(0)
}

fn refused(text: &str) -> ValidationErrors {
    match yaml_documents(text) {
        Ok(v) => panic!("{text:?} was accepted as {v:?}"),
        Err(e) => e,
    }
}

fn message(errors: &ValidationErrors) -> String {
    errors.to_string()
}

#[test]
fn scalars_follow_yaml_1_2_not_1_1() {
    // YAML 1.1 booleans are strings in 1.2 (the "Norway problem"); only true/false spellings are
    // booleans.
    assert_eq!(
        one("a: on\nb: yes\nc: no\nd: off\ne: y\nf: n\ng: NO\n"),
        json!({"a": "on", "b": "yes", "c": "no", "d": "off", "e": "y", "f": "n", "g": "NO"})
    );
    assert_eq!(
        one("a: true\nb: True\nc: FALSE\nd: tRuE\n"),
        json!({"a": true, "b": true, "c": false, "d": "tRuE"})
    );
    // Octal-looking strings: `0755` is not octal 493 (1.1) nor silently 755; it stays the string
    // written, so a numeric field reports it. `0o755` is 1.2's octal.
    assert_eq!(
        one("a: 0755\nb: 0o755\nc: 0x1F\nd: 0\ne: -12\nf: 1_000\n"),
        json!({"a": "0755", "b": 493, "c": 31, "d": 0, "e": -12, "f": "1_000"})
    );
    // `1e3` is a float in 1.2 (1.1 needed a dot).
    assert_eq!(
        one("a: 1e3\nb: 1.5e3\nc: 2.5\n"),
        json!({"a": 1000.0, "b": 1500.0, "c": 2.5})
    );
    // Timestamps are not a 1.2 core type: they stay strings.
    assert_eq!(
        one("a: 2024-01-01\nb: 2001-12-14t21:59:43.10-05:00\n"),
        json!({"a": "2024-01-01", "b": "2001-12-14t21:59:43.10-05:00"})
    );
    assert_eq!(
        one("a: ~\nb: null\nc: Null\nd:\ne: 'null'\n"),
        json!({"a": null, "b": null, "c": null, "d": null, "e": "null"})
    );
    // Quoting always makes a string.
    assert_eq!(
        one("a: \"on\"\nb: '0755'\nc: \"1e3\"\n"),
        json!({"a": "on", "b": "0755", "c": "1e3"})
    );
    // JSON has no infinity or NaN: refused with a position, not turned into null.
    let e = refused("a: .inf\n");
    assert!(message(&e).contains("line 1"), "{e}");
}

#[test]
fn duplicate_keys_are_refused_naming_the_key_and_its_path() {
    let e = refused("a: 1\na: 2\n");
    assert!(message(&e).contains("duplicate key \"a\""), "{e}");
    assert!(message(&e).contains("line 2, column 1"), "{e}");
    let e = refused("spec:\n  selector:\n    mode: one\n    mode: all\n");
    assert_eq!(e.0[0].path, "spec.selector");
    assert!(message(&e).contains("duplicate key \"mode\""), "{e}");
    assert!(message(&e).contains("line 4, column 5"), "{e}");
    // A quoted and a plain spelling of one string are the same key.
    let e = refused("{a: 1, \"a\": 2}");
    assert!(message(&e).contains("duplicate key \"a\""), "{e}");
    // In a sequence of mappings the path names the element.
    let e = refused("items:\n  - x: 1\n  - x: 1\n    x: 2\n");
    assert_eq!(e.0[0].path, "items[1]");
    // The same key in sibling mappings is fine.
    assert_eq!(
        one("a: {x: 1}\nb: {x: 2}\n"),
        json!({"a": {"x": 1}, "b": {"x": 2}})
    );
}

#[test]
fn only_core_schema_tags_are_accepted() {
    for (text, tag) in [
        (
            "a: !!python/object/apply:os.system [\"rm -rf /\"]\n",
            "!!python/object/apply:os.system",
        ),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !!timestamp 2024-01-01\n", "!!timestamp"),
        ("a: !custom x\n", "!custom"),
        (
            "a: !<tag:example.com,2000:app> x\n",
            "tag:example.com,2000:app",
        ),
        ("a: !!set {x: null}\n", "!!set"),
        ("a: !!omap [{x: 1}]\n", "!!omap"),
        ("! a: 1\n", "!"),
    ] {
        let e = refused(text);
        assert!(
            message(&e).contains(tag) && message(&e).contains("not accepted"),
            "{text:?}: {e}"
        );
        assert!(message(&e).contains("line 1"), "{text:?}: {e}");
        assert_eq!(e.0[0].path, if text.starts_with('!') { "" } else { "a" });
    }
    // The core schema's own tags work as YAML says.
    assert_eq!(
        one("a: !!str 12\nb: !!int '12'\nc: !!float 1\nd: !!bool true\ne: !!null ''\nf: !!seq [1]\ng: !!map {x: 1}\n"),
        json!({"a": "12", "b": 12, "c": 1.0, "d": true, "e": null, "f": [1], "g": {"x": 1}})
    );
    // A tag deep in a manifest is refused with the manifest's field path.
    let e = parse_one(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: !!binary aGVsbG8=\nspec: {}\n",
    )
    .unwrap_err();
    assert_eq!(e.0[0].path, "metadata.name", "{e}");
    assert!(message(&e).contains("!!binary"), "{e}");
}

#[test]
fn anchors_and_aliases_are_expanded_within_a_bound() {
    assert_eq!(
        one("base: &b {image: busybox, tag: '1'}\ncopy: *b\nlist: [&x 1, *x, *x]\n"),
        json!({"base": {"image": "busybox", "tag": "1"}, "copy": {"image": "busybox", "tag": "1"}, "list": [1, 1, 1]})
    );
    // Merge keys (YAML 1.1, also read by Kubernetes tooling) merge; explicit keys win.
    assert_eq!(
        one("base: &b {x: 1, y: 1}\nd:\n  <<: *b\n  y: 2\n"),
        json!({"base": {"x": 1, "y": 1}, "d": {"x": 1, "y": 2}})
    );
    // Aliases as keys, or collections as keys, cannot be JSON.
    let e = refused("a: &k x\n*k : 1\n");
    assert!(message(&e).contains("keys must be strings"), "{e}");
    let e = refused("? [1, 2]\n: x\n");
    assert!(message(&e).contains("keys must be strings"), "{e}");
}

/// The classic "billion laughs": 1.5 kB that would expand to 9^9 nodes.
pub fn billion_laughs() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    text
}

#[test]
fn an_alias_bomb_is_refused_quickly_before_expansion() {
    let bomb = billion_laughs();
    assert!(bomb.len() < 2048, "{}", bomb.len());
    let started = Instant::now();
    let e = refused(&bomb);
    let took = started.elapsed();
    assert!(
        message(&e).contains("more than 50000 nodes") && message(&e).contains("aliases counted"),
        "{e}"
    );
    // Refused while reading the 5th level (9^5 > 50,000), long before anything large exists.
    assert!(message(&e).contains("line 5"), "{e}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // A wide alias fan-out of a big anchor is refused the same way.
    let mut wide = String::from("a: &a [");
    wide.push_str(&vec!["1"; 1000].join(","));
    wide.push_str("]\nb: [");
    wide.push_str(&vec!["*a"; 100].join(","));
    wide.push_str("]\n");
    let e = refused(&wide);
    assert!(message(&e).contains("nodes"), "{e}");
}

#[test]
fn document_streams() {
    let docs =
        split_documents("a: 1\n---\nb: 2\n---\n---\n# nothing\n...\n--- |\n  text\n").unwrap();
    assert_eq!(
        docs,
        vec![json!({"a": 1}), json!({"b": 2}), json!("text\n")]
    );
    assert!(split_documents("").unwrap().is_empty());
    assert!(split_documents("# only a comment\n").unwrap().is_empty());
    let limits = Limits {
        max_documents: 3,
        ..Limits::DEFAULT
    };
    let e = yaml_documents_with("a: 1\n---\na: 2\n---\na: 3\n---\na: 4\n", &limits).unwrap_err();
    assert!(message(&e).contains("more than 3 documents"), "{e}");
    assert!(message(&e).contains("line 6"), "{e}");
    // An error in a later document names that document.
    let e = refused("a: 1\n---\nb: [1, 2\nc: 3\n");
    assert!(message(&e).starts_with("document 2:"), "{e}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = refused("a:\n  - b\n   c: 1\n");
    assert!(message(&e).contains("line 3, column 5"), "{e}");
    let e = refused("a: [1, 2\nb: 3\n");
    assert!(message(&e).contains("line 2"), "{e}");
    let e = refused("a: \"unterminated\n");
    assert!(message(&e).contains("not valid YAML"), "{e}");
}

#[test]
fn depth_nodes_and_scalar_size_are_bounded() {
    let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
    let e = refused(&deep);
    assert!(message(&e).contains("deeper than 64"), "{e}");
    let e = json_value(&deep).unwrap_err();
    assert!(e.to_string().contains("deeper than 64"), "{e}");
    // 64 levels are fine.
    let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
    assert!(yaml_documents(&ok).is_ok());
    assert!(json_value(&ok).is_ok());

    let many = format!("[{}]", vec!["0"; 60_000].join(","));
    let e = refused(&many);
    assert!(message(&e).contains("more than 50000 nodes"), "{e}");
    let e = json_value(&many).unwrap_err();
    assert!(e.to_string().contains("more than 50000 nodes"), "{e}");

    let big = format!("a: \"{}\"\n", "x".repeat(300 * 1024));
    let e = refused(&big);
    assert_eq!(e.0[0].path, "a");
    assert!(message(&e).contains("larger than the 262144"), "{e}");
    let big_json = format!("{{\"a\": \"{}\"}}", "x".repeat(300 * 1024));
    let JsonError::Refused(e) = json_value(&big_json).unwrap_err() else {
        panic!("expected a refusal");
    };
    assert_eq!(e.0[0].path, "a");

    let tight = Limits {
        max_scalar_bytes: 4,
        ..Limits::DEFAULT
    };
    let e = json_value_with("{\"spec\": {\"abcdef\": 1}}", &tight).unwrap_err();
    assert!(e.to_string().contains("larger than the 4"), "{e}");
}

#[test]
fn json_bodies_refuse_duplicate_keys_and_keep_syntax_errors_apart() {
    let JsonError::Refused(e) =
        json_value("{\"spec\": {\"duration\": \"1s\", \"duration\": \"1h\"}}").unwrap_err()
    else {
        panic!("expected a refusal");
    };
    assert_eq!(e.0[0].path, "spec");
    assert!(message(&e).contains("duplicate key \"duration\""), "{e}");
    assert!(message(&e).contains("line 1"), "{e}");
    assert!(matches!(json_value("{\"a\": "), Err(JsonError::Syntax(_))));
    assert_eq!(
        json_value("{\"a\": [1, -2, 2.5, true, null, \"x\"]}").unwrap(),
        json!({"a": [1, -2, 2.5, true, null, "x"]})
    );
}

#[test]
fn rendered_yaml_reads_back_as_the_same_value() {
    let value = json!({
        "strings": ["on", "yes", "no", "0755", "1e3", "true", "null", "~", "", "2024-01-01",
                    "a: b", "- x", "#c", "multi\nline\n", "  padded ", "*alias", "&anchor", "!tag"],
        "numbers": [0, -1, 2.5, 1e300, 18446744073709551615u64],
        "nested": {"list": [{"a": null}], "empty": {}, "none": []},
        "bool": false
    });
    let text = to_yaml(&value).unwrap();
    assert_eq!(one(&text), value, "{text}");
}
