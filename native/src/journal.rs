//! The fault journal: one file per fault under `<state-dir>/journal/`, written (and synced)
//! before the fault touches the host and deleted only after it was removed. At start the agent
//! removes every fault the journal still lists — whatever killed the previous process.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chaoshub_schema::agent::AgentFault;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::inject::Plan;

/// One journalled fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub id: String,
    pub fault: AgentFault,
    pub plan: Plan,
    pub applied_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal entry {path} is unreadable: {message}")]
    Corrupt { path: String, message: String },
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) `<state_dir>/journal`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let dir = state_dir.join("journal");
        fs::create_dir_all(&dir).map_err(|source| JournalError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Journal { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: &str) -> PathBuf {
        // Ids come from the hub or the CLI: keep the file name to a safe alphabet, and add the
        // hash so two ids that differ only in unsafe characters do not share a file.
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        self.dir
            .join(format!("{safe}.{}.json", crate::inject::short_id(id)))
    }

    /// Writes the entry durably: temporary file, fsync, rename, fsync of the directory. After
    /// this returns the entry survives a crash or power cut.
    pub fn record(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let path = self.path_of(&entry.id);
        let tmp = path.with_extension("json.tmp");
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let body = serde_json::to_vec_pretty(entry).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        {
            let mut file = fs::File::create(&tmp).map_err(io)?;
            file.write_all(&body).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        Ok(())
    }

    /// Deletes the entry of a removed fault; a missing entry is fine.
    pub fn forget(&self, id: &str) -> Result<(), JournalError> {
        let path = self.path_of(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|source| JournalError::Io {
                path: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Every entry, oldest first. Unreadable files are returned as errors (and kept on disk for
    /// a person to look at) rather than silently dropped.
    pub fn entries(&self) -> Result<Vec<Result<JournalEntry, JournalError>>, JournalError> {
        let read = fs::read_dir(&self.dir).map_err(|source| JournalError::Io {
            path: self.dir.display().to_string(),
            source,
        })?;
        let mut out = Vec::new();
        for item in read.flatten() {
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // Leftover temporary files of an interrupted write: the rename never happened,
                // so nothing was applied for them.
                if path.to_string_lossy().ends_with(".json.tmp") {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            let entry = fs::read(&path)
                .map_err(|source| JournalError::Io {
                    path: path.display().to_string(),
                    source,
                })
                .and_then(|bytes| {
                    serde_json::from_slice::<JournalEntry>(&bytes).map_err(|e| {
                        JournalError::Corrupt {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        }
                    })
                });
            out.push(entry);
        }
        out.sort_by_key(|e| e.as_ref().map(|e| e.applied_at).ok());
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::agent::{AgentFault, UserDefinedFault};

    fn entry(id: &str) -> JournalEntry {
        JournalEntry {
            id: id.to_string(),
            fault: AgentFault::UserDefined(UserDefinedFault {
                attack_cmd: "true".into(),
                recover_cmd: "true".into(),
            }),
            plan: Plan {
                id: id.to_string(),
                mechanism: "sh".into(),
                undo: serde_json::json!({"x": 1}),
            },
            applied_at: Utc::now(),
            lease_until: Utc::now(),
        }
    }

    #[test]
    fn records_lists_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.record(&entry("a/b c")).unwrap();
        journal.record(&entry("uid-1")).unwrap();
        let all: Vec<_> = journal
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap().id)
            .collect();
        assert_eq!(all.len(), 2);
        assert!(all.contains(&"a/b c".to_string()));
        journal.forget("a/b c").unwrap();
        journal.forget("a/b c").unwrap();
        assert_eq!(journal.entries().unwrap().len(), 1);
    }

    #[test]
    fn corrupt_entries_are_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        fs::write(journal.dir().join("broken.json"), b"{not json").unwrap();
        fs::write(journal.dir().join("half.json.tmp"), b"{").unwrap();
        let entries = journal.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].is_err());
        assert!(!journal.dir().join("half.json.tmp").exists());
    }
}
