//! `chaoshub migrate --from sqlite:DATA_DIR --to postgres://…`: copies every table of a hub's
//! SQLite store into an empty PostgreSQL store, keeping ids and sequence numbers, then reads
//! both back and compares per-table row counts and SHA-256 checksums of a canonical dump.
//!
//! The canonical dump of a table is its rows in primary-key order (byte order for text keys,
//! SQLite's and PostgreSQL's `COLLATE "C"` alike), each value written with a type tag and its
//! length, so two stores have the same checksum exactly when they hold the same rows.

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::OpenFlags;
use sha2::{Digest, Sha256};

use super::{PgStore, SqliteStore, StoreError};

/// What a column holds, for reading it from either database and for the canonical dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Int,
    Text,
    OptText,
    /// 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Bool,
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Col)],
    /// `ORDER BY` of the canonical dump.
    key: &'static [&'static str],
    /// The identity column whose sequence must continue after the copied ids.
    identity: Option<&'static str>,
}

use Col::*;

const TABLES: &[Table] = &[
    Table {
        name: "experiments",
        columns: &[
            ("seq", Int),
            ("uid", Text),
            ("name", Text),
            ("namespace", Text),
            ("kind", Text),
            ("api_version", Text),
            ("environment", Text),
            ("phase", Text),
            ("archived", Bool),
            ("desired", Text),
            ("desired_reason", OptText),
            ("metadata", Text),
            ("spec", Text),
            ("status", Text),
        ],
        key: &["seq"],
        identity: Some("seq"),
    },
    Table {
        name: "events",
        columns: &[
            ("id", Int),
            ("time", Text),
            ("name", Text),
            ("experiment_uid", OptText),
            ("environment", OptText),
            ("target", OptText),
            ("message", Text),
            ("attributes", Text),
        ],
        key: &["id"],
        identity: Some("id"),
    },
    Table {
        name: "environments",
        columns: &[("name", Text), ("object", Text)],
        key: &["name"],
        identity: None,
    },
    Table {
        name: "settings",
        columns: &[("key", Text), ("value", Text)],
        key: &["key"],
        identity: None,
    },
    Table {
        name: "suite_runs",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("suite", Text),
            ("phase", Text),
            ("created_at", Text),
            ("journal", Text),
        ],
        key: &["seq"],
        identity: Some("seq"),
    },
    Table {
        name: "api_tokens",
        columns: &[
            ("name", Text),
            ("hash", Text),
            ("role", Text),
            ("namespaces", Text),
            ("environments", Text),
            ("created_at", Text),
            ("expires_at", OptText),
            ("last_used_at", OptText),
            ("revoked_at", OptText),
        ],
        key: &["name"],
        identity: None,
    },
    Table {
        name: "audit",
        columns: &[
            ("id", Int),
            ("time", Text),
            ("principal", Text),
            ("role", OptText),
            ("source", Text),
            ("method", Text),
            ("route", Text),
            ("path", Text),
            ("object", OptText),
            ("outcome", Text),
            ("status", Int),
            ("message", OptText),
        ],
        key: &["id"],
        identity: Some("id"),
    },
    Table {
        name: "agent_join_tokens",
        columns: &[
            ("id", Text),
            ("environment", Text),
            ("hash", Text),
            ("created_at", Text),
            ("expires_at", OptText),
            ("revoked_at", OptText),
            ("last_used_at", OptText),
            ("uses", Int),
        ],
        key: &["id"],
        identity: None,
    },
    Table {
        name: "agent_credentials",
        columns: &[
            ("environment", Text),
            ("name", Text),
            ("hash", Text),
            ("join_token_id", Text),
            ("created_at", Text),
            ("last_used_at", OptText),
        ],
        key: &["environment", "name"],
        identity: None,
    },
];

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

impl Value {
    fn to_sql(&self, col: Col) -> Box<dyn ToSql + Sync + Send> {
        match (self, col) {
            (Value::Int(n), _) => Box::new(*n),
            (Value::Text(t), _) => Box::new(t.clone()),
            (Value::Bool(b), _) => Box::new(*b),
            (Value::Null, Int) => Box::new(None::<i64>),
            (Value::Null, Bool) => Box::new(None::<bool>),
            (Value::Null, _) => Box::new(None::<String>),
        }
    }
}

/// A table's running checksum and row count.
struct Digest256 {
    hash: Sha256,
    rows: u64,
}

impl Digest256 {
    fn new() -> Self {
        Self {
            hash: Sha256::new(),
            rows: 0,
        }
    }

    fn row(&mut self, values: &[Value]) {
        for v in values {
            match v {
                Value::Null => self.hash.update(b"N;"),
                Value::Int(n) => self.hash.update(format!("I{n};").as_bytes()),
                Value::Bool(b) => self.hash.update(if *b { b"B1;" } else { b"B0;" }),
                Value::Text(t) => {
                    self.hash.update(format!("T{}:", t.len()).as_bytes());
                    self.hash.update(t.as_bytes());
                    self.hash.update(b";");
                }
            }
        }
        self.hash.update(b"\n");
        self.rows += 1;
    }

    fn finish(self) -> (u64, String) {
        use std::fmt::Write;
        let mut hex = String::with_capacity(64);
        for b in self.hash.finalize().iter() {
            let _ = write!(hex, "{b:02x}");
        }
        (self.rows, hex)
    }
}

/// One table's figures on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    pub source_sha256: String,
    pub target_sha256: String,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_sha256 == self.target_sha256
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading the SQLite store")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the target already holds data ({0}); migrate into an empty database, or pass --force to replace what it holds")]
    NotEmpty(String),
    #[error(
        "--from must be sqlite:DATA_DIR (the hub's data directory, holding chaoshub.db), got {0:?}"
    )]
    Source(String),
}

/// The data directory of `--from sqlite:DATA_DIR` (a path to `chaoshub.db` itself is accepted).
pub fn source_dir(from: &str) -> Result<std::path::PathBuf, MigrateError> {
    let path = from
        .strip_prefix("sqlite:")
        .ok_or_else(|| MigrateError::Source(from.to_string()))?;
    let path = Path::new(path.strip_prefix("//").unwrap_or(path));
    if path.as_os_str().is_empty() {
        return Err(MigrateError::Source(from.to_string()));
    }
    Ok(if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    })
}

/// Copies the SQLite store in `data_dir` into the PostgreSQL store at `to` and verifies the
/// copy. A target holding any row is refused unless `force` (then it is emptied first).
pub fn sqlite_to_postgres(
    data_dir: &Path,
    to: &str,
    force: bool,
) -> Result<Vec<TableCheck>, MigrateError> {
    if !data_dir.join("chaoshub.db").is_file() {
        return Err(MigrateError::Source(format!(
            "sqlite:{} (no chaoshub.db there)",
            data_dir.display()
        )));
    }
    // Opening it once brings an older hub's file to the current tables (all `IF NOT EXISTS`).
    drop(SqliteStore::open(data_dir, "normal")?);
    let source = rusqlite::Connection::open_with_flags(
        data_dir.join("chaoshub.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let target = PgStore::connect(to)?;
    let sums = target.call(move |client| copy_all(&source, client, force))??;
    let read_back = target.call(|client| {
        TABLES
            .iter()
            .map(|t| digest_postgres(client, t))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(sums
        .into_iter()
        .zip(read_back)
        .zip(TABLES)
        .map(
            |(((source_rows, source_sha256), (target_rows, target_sha256)), t)| TableCheck {
                table: t.name.to_string(),
                source_rows,
                source_sha256,
                target_rows,
                target_sha256,
            },
        )
        .collect())
}

fn copy_all(
    source: &rusqlite::Connection,
    client: &mut postgres::Client,
    force: bool,
) -> Result<Result<Vec<(u64, String)>, MigrateError>, StoreError> {
    let mut run = || -> Result<Vec<(u64, String)>, MigrateError> {
        let mut tx = client.transaction().map_err(StoreError::from)?;
        let mut held = Vec::new();
        for t in TABLES {
            let n: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM {}", t.name), &[])
                .map_err(StoreError::from)?
                .get(0);
            if n > 0 {
                held.push(format!("{} {}", n, t.name));
            }
        }
        if !held.is_empty() {
            if !force {
                return Err(MigrateError::NotEmpty(held.join(", ")));
            }
            let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            tx.batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", names.join(", ")))
                .map_err(StoreError::from)?;
        }
        // A consistent read of the source: one read transaction over every table.
        source.execute_batch("BEGIN")?;
        let mut sums = Vec::new();
        for t in TABLES {
            sums.push(copy_table(source, &mut tx, t)?);
        }
        source.execute_batch("COMMIT")?;
        tx.commit().map_err(StoreError::from)?;
        Ok(sums)
    };
    match run() {
        Ok(sums) => Ok(Ok(sums)),
        Err(MigrateError::Store(e)) => Err(e),
        Err(e) => Ok(Err(e)),
    }
}

fn copy_table(
    source: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    t: &Table,
) -> Result<(u64, String), MigrateError> {
    let columns: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let insert = tx
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.name,
            columns.join(", "),
            placeholders.join(", ")
        ))
        .map_err(StoreError::from)?;
    let mut stmt = source.prepare(&format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        t.name,
        t.key.join(", ")
    ))?;
    let mut rows = stmt.query([])?;
    let mut digest = Digest256::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(t.columns.len());
        for (i, (_, col)) in t.columns.iter().enumerate() {
            values.push(match col {
                Int => Value::Int(row.get(i)?),
                Text => Value::Text(row.get(i)?),
                OptText => row
                    .get::<_, Option<String>>(i)?
                    .map_or(Value::Null, Value::Text),
                Bool => Value::Bool(row.get::<_, i64>(i)? != 0),
            });
        }
        digest.row(&values);
        let params: Vec<Box<dyn ToSql + Sync + Send>> = values
            .iter()
            .zip(t.columns)
            .map(|(v, (_, col))| v.to_sql(*col))
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(&insert, &refs).map_err(StoreError::from)?;
    }
    if let Some(id) = t.identity {
        // New rows continue after the copied ids.
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), COALESCE(MAX({1}), 1), MAX({1}) IS NOT NULL) FROM {0}",
                t.name, id
            ),
            &[],
        )
        .map_err(StoreError::from)?;
    }
    Ok(digest.finish())
}

fn digest_postgres(client: &mut postgres::Client, t: &Table) -> Result<(u64, String), StoreError> {
    let columns: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    let order: Vec<String> = t
        .key
        .iter()
        .map(|k| {
            let text = t.columns.iter().any(|(c, kind)| c == k && *kind != Int);
            if text {
                format!("{k} COLLATE \"C\"")
            } else {
                k.to_string()
            }
        })
        .collect();
    use postgres::fallible_iterator::FallibleIterator;
    // Streamed, so a large event log is never held whole in memory.
    let mut rows = client.query_raw(
        &format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            t.name,
            order.join(", ")
        ),
        std::iter::empty::<i64>(),
    )?;
    let mut digest = Digest256::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(t.columns.len());
        for (i, (_, col)) in t.columns.iter().enumerate() {
            values.push(match col {
                Int => Value::Int(row.try_get(i)?),
                Text => Value::Text(row.try_get(i)?),
                OptText => row
                    .try_get::<_, Option<String>>(i)?
                    .map_or(Value::Null, Value::Text),
                Bool => Value::Bool(row.try_get(i)?),
            });
        }
        digest.row(&values);
    }
    Ok(digest.finish())
}

/// The verification table `chaoshub migrate` prints.
pub fn render(checks: &[TableCheck]) -> String {
    let mut out = format!(
        "{:<18} {:>10} {:>10}  {:<64}  {}\n",
        "TABLE", "SQLITE", "POSTGRES", "SHA256 (sqlite / postgres)", "RESULT"
    );
    for c in checks {
        let same = c.source_sha256 == c.target_sha256;
        out.push_str(&format!(
            "{:<18} {:>10} {:>10}  {:<64}  {}\n",
            c.table,
            c.source_rows,
            c.target_rows,
            c.source_sha256,
            if c.matches() { "ok" } else { "MISMATCH" }
        ));
        if !same {
            out.push_str(&format!(
                "{:<18} {:>10} {:>10}  {}\n",
                "", "", "", c.target_sha256
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(rows: &[Vec<Value>]) -> String {
        let mut d = Digest256::new();
        for r in rows {
            d.row(r);
        }
        d.finish().1
    }

    /// The canonical dump tells apart what a naive join of values would not.
    #[test]
    fn checksums_tell_apart_null_empty_types_and_boundaries() {
        let t = |s: &str| Value::Text(s.to_string());
        let base = sum(&[vec![t("ab"), t("c")]]);
        assert_eq!(base, sum(&[vec![t("ab"), t("c")]]));
        assert_ne!(base, sum(&[vec![t("a"), t("bc")]]));
        assert_ne!(sum(&[vec![Value::Null]]), sum(&[vec![t("")]]));
        assert_ne!(sum(&[vec![Value::Int(1)]]), sum(&[vec![t("1")]]));
        assert_ne!(sum(&[vec![Value::Bool(true)]]), sum(&[vec![Value::Int(1)]]));
        assert_ne!(
            sum(&[vec![t("a")], vec![t("b")]]),
            sum(&[vec![t("a"), t("b")]])
        );
    }

    #[test]
    fn a_mismatch_is_reported() {
        let ok = TableCheck {
            table: "events".into(),
            source_rows: 2,
            target_rows: 2,
            source_sha256: "aa".into(),
            target_sha256: "aa".into(),
        };
        let bad = TableCheck {
            target_sha256: "bb".into(),
            ..ok.clone()
        };
        assert!(ok.matches());
        assert!(!bad.matches());
        let text = render(&[ok, bad]);
        assert_eq!(text.matches(" ok\n").count(), 1, "{text}");
        assert!(text.contains("MISMATCH"), "{text}");
        assert!(text.contains("bb"), "{text}");
    }

    #[test]
    fn the_source_is_a_sqlite_data_dir() {
        assert_eq!(
            source_dir("sqlite:/var/lib/chaoshub").unwrap(),
            std::path::PathBuf::from("/var/lib/chaoshub")
        );
        assert!(source_dir("postgres://x/y").is_err());
        assert!(source_dir("sqlite:").is_err());
    }
}
