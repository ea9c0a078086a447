//! Mutators and hostile inputs shared by every router's generator.

use serde_json::{Map, Value};

use super::Rng;

/// Scalars that parsers and validators tend to treat specially. No host names: whatever a
/// mutation puts into a URL field can only point at loopback (tests reach nothing else).
const STRINGS: &[&str] = &[
    "",
    " ",
    "all",
    "one",
    "fixed",
    "fixed-percent",
    "random-max-percent",
    "-1",
    "0",
    "1e400",
    "-0",
    "10x",
    "100ms",
    "-5s",
    "1.5s",
    "9999999999h",
    "NaN",
    "null",
    "~",
    "true",
    "yes",
    "delay",
    "loss",
    "pod-kill",
    "cpu",
    "NetworkChaos",
    "PodChaos",
    "Schedule",
    "Workflow",
    "Suite",
    "Template",
    "Environment",
    "chaos-mesh.org/v1alpha1",
    "chaoshub.dev/v1alpha1",
    "fuzz",
    "default",
    "*",
    "../../etc/passwd",
    "/proc/self/mem",
    "%00",
    "{{ x }}",
    "{{",
    "}}",
    "{{ parameters.app }}",
    "'",
    "\"",
    "\\",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "ü",
    "日本語",
    "😀",
    "\r\n",
    "http://127.0.0.1:9/",
    "unix:///nonexistent/fuzz.sock",
    "app=web",
    "app in (web, db)",
    "!app",
    "0 0 * * *",
    "@every 1s",
    "2026-13-45T99:99:99Z",
    "1970-01-01T00:00:00Z",
    "9223372036854775808",
];

const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!python/object/apply:os.system ",
    "---\n",
    "...\n",
    "{",
    "}",
    "[",
    "]",
    "\t",
    "\"",
    "'",
    "#",
    "%YAML 1.1\n",
    "? ",
    "|\n",
    ">-\n",
    ",",
    "\\u0000",
    "\\ud800",
    "1e99999",
    "\u{feff}",
    "\0",
    "\u{2028}",
];

/// A random string: a known-interesting one, random printable text, or arbitrary characters.
pub fn random_string(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 | 1 => rng.pick(STRINGS).to_string(),
        2 => (0..rng.size(24))
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect(),
        _ => (0..rng.size(40))
            .map(|_| match rng.below(6) {
                0 => char::from_u32(rng.below(0x80) as u32).unwrap_or('?'),
                1 => char::from_u32(0x80 + rng.below(0x780) as u32).unwrap_or('?'),
                2 => char::from_u32(0x1F300 + rng.below(0x300) as u32).unwrap_or('?'),
                _ => (b' ' + rng.below(95) as u8) as char,
            })
            .collect(),
    }
}

/// A random number: small, extreme, fractional, negative.
pub fn random_number(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::from(rng.below(10) as i64),
        1 => Value::from(-(rng.below(1000) as i64)),
        2 => Value::from(i64::MAX - rng.below(2) as i64),
        3 => Value::from(u64::MAX),
        4 => serde_json::Number::from_f64(rng.next_u64() as f64 / 7.0e3)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => Value::from(rng.next_u64() as i64),
    }
}

/// A random JSON value at most `depth` levels deep.
pub fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 4 } else { 6 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.percent(50)),
        2 => random_number(rng),
        3 => Value::String(random_string(rng)),
        4 => Value::Array(
            (0..rng.size(5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.size(6))
                .map(|_| (random_string(rng), random_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// Changes one random spot of `doc`: deletes a key, replaces a value (with a random one, a
/// different type, a huge string, a deep nest), adds an unknown key, or duplicates an item.
pub fn mutate_value(rng: &mut Rng, doc: &mut Value) {
    // Walk down a random path, stopping at random.
    let mut node = doc;
    loop {
        let children = match &*node {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if children == 0 || rng.percent(25) {
            break;
        }
        let i = rng.below(children);
        node = match node {
            Value::Object(m) => m.values_mut().nth(i).expect("index below len"),
            Value::Array(a) => &mut a[i],
            _ => unreachable!("only containers have children"),
        };
    }
    match rng.below(9) {
        0 => {
            if let Value::Object(m) = node {
                if !m.is_empty() {
                    let key = m
                        .keys()
                        .nth(rng.below(m.len()))
                        .cloned()
                        .unwrap_or_default();
                    m.remove(&key);
                    return;
                }
            }
            *node = random_value(rng, 2);
        }
        1 => {
            if let Value::Object(m) = node {
                m.insert(random_string(rng), random_value(rng, 2));
                return;
            }
            *node = random_value(rng, 2);
        }
        2 => {
            if let Value::Array(a) = node {
                if let Some(first) = a.first().cloned() {
                    let copies = rng.size(64);
                    a.extend(std::iter::repeat_n(first, copies));
                    return;
                }
            }
            *node = Value::Array(vec![node.clone(); rng.range(1, 3)]);
        }
        3 => *node = Value::String("x".repeat(rng.size(300_000))),
        // Deeper than any parser's bound (JSON's is 128 levels), shallow enough that building,
        // printing and dropping it here stays within a thread's stack in a debug build (all three
        // recurse); the text-only nests of `deep_nesting` go far deeper.
        4 => *node = nested_value(rng.size(400)),
        5 => *node = random_number(rng),
        6 => *node = Value::String(random_string(rng)),
        7 => *node = Value::Null,
        _ => *node = random_value(rng, 3),
    }
}

/// `[[[…]]]` or `{"a":{"a":…}}`, `depth` levels.
pub fn nested_value(depth: usize) -> Value {
    let mut v = Value::from(1);
    for i in 0..depth {
        v = if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut m = Map::new();
            m.insert("a".into(), v);
            Value::Object(m)
        };
    }
    v
}

/// A YAML text of `value` in block style (strings double-quoted with JSON escapes, which YAML's
/// double-quoted scalars share).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    yaml_into(value, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn yaml_into(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                out.push_str(&pad);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                match v {
                    Value::Object(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_into(v, indent + 2, out);
                    }
                    Value::Array(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_into(v, indent, out);
                    }
                    _ => {
                        out.push(' ');
                        out.push_str(&v.to_string());
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for v in a {
                out.push_str(&pad);
                out.push('-');
                match v {
                    Value::Object(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_into(v, indent + 2, out);
                    }
                    Value::Array(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_into(v, indent + 2, out);
                    }
                    _ => {
                        out.push(' ');
                        out.push_str(&v.to_string());
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

/// Byte-level damage, one to four times: bit flips, special bytes, truncation, splicing with
/// `other`, a repeated or deleted chunk, an inserted YAML/JSON token.
pub fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..rng.range(1, 4) {
        let len = bytes.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = *rng.pick(&[
                    0u8, b'\n', b':', b'-', b'&', b'*', b'!', b'{', b'[', 0xff, 0xc3, b'"', b'\t',
                    b'%',
                ]);
            }
            2 => bytes.truncate(rng.below(len + 1)),
            3 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.size(256)).min(len);
                let chunk = bytes[start..end].to_vec();
                let at = rng.below(len + 1);
                for _ in 0..rng.range(1, 8) {
                    bytes.splice(at..at, chunk.iter().copied());
                }
            }
            5 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.size(256)).min(len);
                bytes.drain(start..end);
            }
            _ => {
                let at = rng.below(len + 1);
                let token = rng.pick(TOKENS).as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
        }
    }
}

/// A YAML alias bomb ("billion laughs"): `levels` anchors each referring `width` times to the
/// previous one; small on the wire, `width^levels` nodes expanded.
pub fn alias_bomb(rng: &mut Rng) -> String {
    let levels = rng.range(3, 12);
    let width = rng.range(2, 12);
    let mut text = String::from("apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\n");
    text.push_str("a0: &a0 [\"lol\", \"lol\"]\n");
    for l in 1..levels {
        let refs = vec![format!("*a{}", l - 1); width].join(", ");
        text.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
    }
    match rng.below(3) {
        0 => text.push_str(&format!("spec: {{selector: {{pods: *a{}}}}}\n", levels - 1)),
        1 => text.push_str(&format!(
            "metadata:\n  <<: *a{}\n  name: bomb\n",
            levels - 1
        )),
        _ => {}
    }
    text
}

/// Anchors merged into each other (`<<: [*a, *b]`) many times over.
pub fn merge_bomb(rng: &mut Rng) -> String {
    let levels = rng.range(3, 10);
    let mut text = String::from("m0: &m0 {k0: 1, k1: 2}\n");
    for l in 1..levels {
        text.push_str(&format!(
            "m{l}: &m{l}\n  <<: [*m{p}, *m{p}, *m{p}]\n  k{l}: {l}\n",
            p = l - 1
        ));
    }
    text.push_str(&format!("spec:\n  <<: *m{}\n", levels - 1));
    text
}

/// Deep nesting in one of four spellings: JSON arrays, JSON objects, YAML flow, YAML block.
pub fn deep_nesting(rng: &mut Rng) -> (&'static str, String) {
    let depth = rng.size(200_000).max(2);
    match rng.below(4) {
        0 => (
            "application/json",
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
        ),
        1 => (
            "application/json",
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        ),
        2 => (
            "application/yaml",
            format!("spec: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth)),
        ),
        _ => {
            let depth = depth.min(3000);
            let mut text = String::from("spec:\n");
            for i in 1..depth {
                text.push_str(&" ".repeat(i));
                text.push_str("a:\n");
            }
            text.push_str(&" ".repeat(depth));
            text.push_str("b: 1\n");
            ("application/yaml", text)
        }
    }
}

/// `doc` as JSON or YAML with one key of a random mapping written twice.
pub fn duplicate_key(rng: &mut Rng, doc: &Value) -> (&'static str, String) {
    let yaml = rng.percent(50);
    let text = if yaml { to_yaml(doc) } else { doc.to_string() };
    // Find a key in the text and repeat its line (YAML) or its pair (JSON).
    let keys: Vec<&str> = match doc {
        Value::Object(m) => m.keys().map(String::as_str).collect(),
        _ => vec![],
    };
    let Some(key) = (!keys.is_empty()).then(|| *rng.pick(&keys)) else {
        return if yaml {
            ("application/yaml", "a: 1\na: 2\n".into())
        } else {
            ("application/json", "{\"a\": 1, \"a\": 2}".into())
        };
    };
    let quoted = Value::String(key.to_string()).to_string();
    if yaml {
        ("application/yaml", format!("{text}{quoted}: 1\n"))
    } else {
        let inner = text.trim_start_matches('{');
        (
            "application/json",
            format!("{{{quoted}: {}, {inner}", random_value(rng, 1)),
        )
    }
}

/// `doc` with one string (or a new key) grown to up to ~2 MB.
pub fn huge_scalar(rng: &mut Rng, doc: &Value) -> Value {
    let mut doc = doc.clone();
    let big = Value::String(
        rng.pick(&["x", "é", "日", " ", "\\"])
            .repeat(rng.size(2_000_000)),
    );
    if let Value::Object(m) = &mut doc {
        let key = m
            .keys()
            .nth(rng.below(m.len().max(1)))
            .cloned()
            .unwrap_or_else(|| "metadata".into());
        match m.get_mut(&key) {
            Some(Value::Object(inner)) => {
                inner.insert("name".into(), big);
            }
            _ => {
                m.insert(key, big);
            }
        }
        return doc;
    }
    big
}

/// Many YAML documents in one body.
pub fn multi_document(rng: &mut Rng, doc: &Value) -> String {
    let one = to_yaml(doc);
    let n = rng.size(3000).max(2);
    let mut text = String::new();
    for _ in 0..n {
        text.push_str("---\n");
        text.push_str(&one);
        if text.len() > 1_200_000 {
            break;
        }
    }
    text
}

/// YAML tags and scalars that some parsers turn into objects, binaries or timestamps.
pub fn tagged_yaml(rng: &mut Rng) -> String {
    let tag = rng.pick(&[
        "!!python/object/apply:os.system [\"true\"]",
        "!!binary aGVsbG8=",
        "!!timestamp 2001-12-14t21:59:43.10-05:00",
        "!custom {a: 1}",
        "!<tag:yaml.org,2002:str> x",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!float .nan",
        "!!int 0x7fffffffffffffffff",
        "&anchor *anchor",
        "*undefined",
        "? [complex, key]\n: value",
    ]);
    format!("apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {tag}}}\nspec: {{x: {tag}}}\n")
}

/// A content type: a correct one most of the time, or something odd.
pub fn content_type(rng: &mut Rng, natural: &'static str) -> Option<String> {
    match rng.below(12) {
        0 => None,
        1 => Some(
            rng.pick(&[
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/octet-stream",
                "",
                "application/",
                "*/*",
                "application/json; charset=utf-16",
                "application/yaml; charset=latin1",
                "application/x-yaml",
                "text/yaml",
                "application/merge-patch+json",
                "application/json\t",
            ])
            .to_string(),
        ),
        2 => Some(format!("{natural}; {}", random_header_text(rng, 40))),
        _ => Some(natural.to_string()),
    }
}

/// Bytes valid in a header value (visible ASCII, space, tab, obs-text), of up to `max` bytes.
pub fn random_header_text(rng: &mut Rng, max: usize) -> String {
    let bytes = random_header_bytes(rng, max);
    String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| c.is_ascii() && (*c == '\t' || (' '..='~').contains(c)))
        .collect()
}

/// Bytes valid in a header value (visible ASCII, space, tab, obs-text 0x80–0xff).
pub fn random_header_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    (0..rng.size(max))
        .map(|_| match rng.below(10) {
            0 => 0x80 + rng.below(0x80) as u8,
            1 => b'\t',
            _ => b' ' + rng.below(95) as u8,
        })
        .collect()
}

/// A malformed `Authorization` value (`None`: no header at all). Never a valid credential:
/// `token` (the real one) appears only damaged, with another scheme, or with extra bytes.
pub fn bad_authorization(rng: &mut Rng, token: &str) -> Option<Vec<u8>> {
    let value: Vec<u8> = match rng.below(16) {
        0 => return None,
        1 => Vec::new(),
        2 => rng
            .pick(&[
                "Bearer",
                "Bearer ",
                "Bearer      ",
                "bearer",
                "BEARER \t",
                "Bearer\t",
            ])
            .as_bytes()
            .to_vec(),
        3 => format!(
            "{} {token}",
            rng.pick(&[
                "Basic",
                "Digest",
                "Token",
                "Negotiate",
                "NTLM",
                "AWS4-HMAC-SHA256",
                "Bearer:",
                "Bearer,",
                "Bearerx",
                "B",
                "HOBA",
                "Mutual"
            ])
        )
        .into_bytes(),
        4 => format!("Basic {}", random_header_text(rng, 200)).into_bytes(),
        // Huge tokens: below, at and above the server's 8 kB credential bound.
        5 => {
            let n = *rng.pick(&[8184usize, 8185, 8192, 8193, 16_000, 65_000]) - 7;
            let mut v = b"Bearer ".to_vec();
            v.extend(std::iter::repeat_n(b'A' + rng.below(26) as u8, n));
            v
        }
        6 => {
            let mut v = b"Bearer ".to_vec();
            v.extend(std::iter::repeat_n(b'x', rng.size(300_000)));
            v
        }
        // Non-ASCII (obs-text) in the scheme or the credential.
        7 => {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(token.as_bytes());
            let at = rng.range(7, v.len());
            v.insert(at, 0x80 + rng.below(0x80) as u8);
            v
        }
        8 => {
            let mut v = "Bearer ".as_bytes().to_vec();
            v.extend("tökén-日本".as_bytes());
            v
        }
        // The real token, damaged.
        9 => {
            let mut t = token.as_bytes().to_vec();
            if t.is_empty() {
                t.push(b'x');
            }
            let i = rng.below(t.len());
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let mut v = b"Bearer ".to_vec();
            v.extend(t);
            v
        }
        10 => {
            let cut = rng.below(token.len().max(1));
            format!("Bearer {}", &token[..cut.min(token.len())]).into_bytes()
        }
        11 => format!(
            "Bearer {token}{}",
            rng.pick(&["x", " x", ",", "\t\tx", " Bearer x"])
        )
        .into_bytes(),
        12 => format!("Bearer {}", token.to_uppercase()).into_bytes(),
        13 => format!("Bearer x, Bearer {token}").into_bytes(),
        14 => random_header_bytes(rng, 400),
        _ => format!("Bearer {}", random_header_text(rng, 128)).into_bytes(),
    };
    Some(value)
}

/// Percent-encodes every byte outside the unreserved set.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path segment: a plausible id, random text (percent-encoded), an encoded slash or dot
/// segment, a very long one.
pub fn random_segment(rng: &mut Rng, plausible: &[&str]) -> String {
    match rng.below(8) {
        0 | 1 if !plausible.is_empty() => rng.pick(plausible).to_string(),
        2 => percent_encode(random_string(rng).as_bytes()),
        3 => rng
            .pick(&[
                "%2F",
                "..",
                "%2e%2e",
                ".",
                "%00",
                "%ff%fe",
                "%",
                "%zz",
                "a%2Fb",
                "%E2%80%AE",
            ])
            .to_string(),
        4 => "a".repeat(rng.size(20_000).max(1)),
        5 => format!("{:032x}", rng.next_u64()),
        _ => {
            let bytes: Vec<u8> = (0..rng.range(1, 40))
                .map(|_| rng.below(256) as u8)
                .collect();
            percent_encode(&bytes)
        }
    }
}

/// A query string (without `?`) over `keys` and random ones: repeated keys, empty values,
/// bad percent-encodings, huge numbers, booleans spelled oddly.
pub fn random_query(rng: &mut Rng, keys: &[&str]) -> String {
    let n = rng.size(8);
    let mut parts = Vec::new();
    for _ in 0..n {
        let key = if !keys.is_empty() && rng.percent(75) {
            rng.pick(keys).to_string()
        } else {
            percent_encode(random_string(rng).as_bytes())
        };
        let value = match rng.below(10) {
            0 => String::new(),
            1 => rng
                .pick(&[
                    "true",
                    "false",
                    "TRUE",
                    "1",
                    "0",
                    "yes",
                    "-1",
                    "18446744073709551616",
                    "9999999999999999999999",
                    "1e3",
                    "NaN",
                ])
                .to_string(),
            2 => rng
                .pick(&["%", "%zz", "%ff", "%00", "%C0%AF", "+", "a+b", "%2B"])
                .to_string(),
            3 => "9".repeat(rng.size(400).max(1)),
            4 => percent_encode(rng.pick(STRINGS).as_bytes()),
            5 => rng
                .pick(&[
                    "2026-12-06T21:00:00Z",
                    "2026-12-06",
                    "yesterday",
                    "0",
                    "-1s",
                    "1h",
                    "Running",
                    "Pending",
                    "Failed",
                    "NetworkChaos",
                    "fuzz",
                    "default",
                ])
                .to_string(),
            _ => percent_encode(random_string(rng).as_bytes()),
        };
        match rng.below(10) {
            0 => parts.push(key),
            1 => parts.push(format!("{key}={value}={value}")),
            _ => parts.push(format!("{key}={value}")),
        }
    }
    let sep = if rng.percent(5) { ";" } else { "&" };
    let mut q = parts.join(sep);
    if rng.percent(5) {
        q.push_str("&&&=&");
    }
    q
}

/// A client address in the benchmarking range 198.18.0.0/15 or the documentation prefix
/// 2001:db8::/32 (never a real peer).
pub fn random_source(rng: &mut Rng) -> std::net::SocketAddr {
    let port = 1024 + rng.below(60_000) as u16;
    if rng.percent(50) {
        let n = rng.next_u64() as u32;
        let ip = std::net::Ipv4Addr::new(198, 18 + ((n >> 16) & 1) as u8, (n >> 8) as u8, n as u8);
        std::net::SocketAddr::from((ip, port))
    } else {
        let n = rng.next_u64();
        let ip = std::net::Ipv6Addr::new(
            0x2001,
            0x0db8,
            (n >> 48) as u16,
            (n >> 32) as u16,
            (n >> 16) as u16,
            n as u16,
            rng.next_u64() as u16,
            rng.next_u64() as u16,
        );
        std::net::SocketAddr::from((ip, port))
    }
}
