//! File faults: create, modify-mode, delete, append, replace and rename, each restored exactly
//! (content and mode) on recovery.
//!
//! Everything recovery needs is decided and recorded at plan time: the original mode, the
//! original length, and backup paths named after the fault id in the *same directory* as the
//! file (`.<name>.chaoshub-<short id>.bak`), so a backup is a rename on the same file system —
//! atomic, no copy of a possibly large file through another disk — and a restarted agent finds
//! it from the journal alone. The plan refuses a path that does not exist (or, for create, one
//! that does) and a directory where the backup cannot be written.
//!
//! Content changes (append, replace) are made in place, keeping the inode, so hard links and
//! processes holding the file open see the fault as they would see any other writer.

use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chaoshub_schema::agent::{AgentFault, FileAction, FileFault};
use nix::unistd::{access, AccessFlags};
use serde::{Deserialize, Serialize};

use crate::inject::{short_id, Applied, InjectError, Injector, Plan};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileUndo {
    action: FileAction,
    path: PathBuf,
    /// modify-mode, replace: the permission bits before the fault.
    #[serde(default)]
    original_mode: Option<u32>,
    /// modify-mode: the mode applied; create: the mode of the new file, if any.
    #[serde(default)]
    mode: Option<u32>,
    /// append: the length before the fault, and how many bytes the fault adds.
    #[serde(default)]
    original_len: Option<u64>,
    #[serde(default)]
    appended_len: Option<u64>,
    /// delete: where the file is moved; replace: the copy of the original content.
    #[serde(default)]
    backup: Option<PathBuf>,
    /// rename: the new path.
    #[serde(default)]
    dest: Option<PathBuf>,
}

/// The `file` injector.
#[derive(Debug, Default)]
pub struct FileInjector;

impl FileInjector {
    pub fn new() -> Self {
        FileInjector
    }
}

fn file_of(fault: &AgentFault) -> Result<&FileFault, InjectError> {
    match fault {
        AgentFault::File(f) => Ok(f),
        _ => Err(InjectError::Invalid("not a file fault".to_string())),
    }
}

fn undo_of(plan: &Plan) -> Result<FileUndo, InjectError> {
    serde_json::from_value(plan.undo.clone())
        .map_err(|e| InjectError::Invalid(format!("file plan {}: bad undo record: {e}", plan.id)))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The backup path for `path` under fault `id`: hidden, in the same directory.
fn backup_path(path: &Path, id: &str) -> Result<PathBuf, InjectError> {
    let name = path
        .file_name()
        .ok_or_else(|| InjectError::Invalid(format!("{} names no file", path.display())))?;
    Ok(parent_of(path).join(format!(
        ".{}.chaoshub-{}.bak",
        name.to_string_lossy(),
        short_id(id)
    )))
}

fn require_exists(path: &Path) -> Result<std::fs::Metadata, InjectError> {
    std::fs::symlink_metadata(path)
        .map_err(|e| InjectError::Invalid(format!("{} cannot be used: {e}", path.display())))
}

fn require_absent(path: &Path, what: &str) -> Result<(), InjectError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(InjectError::Invalid(format!(
            "{what} {} already exists; refusing to overwrite it",
            path.display()
        )));
    }
    Ok(())
}

/// The directory must accept new entries (a read-only file system fails this even for root).
fn require_writable_dir(dir: &Path) -> Result<(), InjectError> {
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        InjectError::Invalid(format!(
            "directory {} is not writable ({e}); the backup cannot be made there",
            dir.display()
        ))
    })
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) -> Result<(), InjectError> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| InjectError::io(format!("chmod {mode:o} {}", path.display()), e))
}

fn io_at(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> InjectError {
    let context = format!("{what} {}", path.display());
    move |e| InjectError::io(context, e)
}

/// Writes `content` over the file in place (same inode) and flushes it.
fn rewrite_in_place(path: &Path, content: &[u8]) -> Result<(), InjectError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io_at("opening", path))?;
    file.write_all(content).map_err(io_at("writing", path))?;
    file.sync_all().map_err(io_at("syncing", path))
}

/// The appended text: `data` repeated `count` times (default once).
fn appended(fault: &FileFault) -> Result<String, InjectError> {
    let data = fault
        .data
        .as_deref()
        .ok_or_else(|| InjectError::Invalid("file append: data is required".to_string()))?;
    Ok(data.repeat(fault.count.unwrap_or(1) as usize))
}

fn replaced(original: &[u8], fault: &FileFault) -> Result<Vec<u8>, InjectError> {
    let data = fault.data.as_deref().unwrap_or("");
    match fault.origin.as_deref() {
        // Without `origin` the whole content is replaced.
        None => Ok(data.as_bytes().to_vec()),
        Some("") => Err(InjectError::Invalid(
            "file replace: origin is empty".to_string(),
        )),
        Some(origin) => {
            let text = std::str::from_utf8(original).map_err(|_| {
                InjectError::Invalid(
                    "file replace: the file is not UTF-8 text; give no origin to replace the \
                     whole content"
                        .to_string(),
                )
            })?;
            if !text.contains(origin) {
                return Err(InjectError::Invalid(format!(
                    "file replace: {origin:?} does not occur in the file"
                )));
            }
            Ok(text.replace(origin, data).into_bytes())
        }
    }
}

impl Injector for FileInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::File(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let fault = file_of(fault)?;
        if fault.path.is_empty() {
            return Err(InjectError::Invalid(
                "file fault: path is empty".to_string(),
            ));
        }
        let path = PathBuf::from(&fault.path);
        let mut undo = FileUndo {
            action: fault.action,
            path: path.clone(),
            original_mode: None,
            mode: None,
            original_len: None,
            appended_len: None,
            backup: None,
            dest: None,
        };
        match fault.action {
            FileAction::Create => {
                require_absent(&path, "file")?;
                let parent = parent_of(&path);
                if !parent.is_dir() {
                    return Err(InjectError::Invalid(format!(
                        "directory {} does not exist",
                        parent.display()
                    )));
                }
                require_writable_dir(&parent)?;
                undo.mode = fault.mode.map(|m| m & 0o7777);
            }
            FileAction::ModifyMode => {
                let meta = require_exists(&path)?;
                let mode = fault.mode.ok_or_else(|| {
                    InjectError::Invalid("file modify-mode: mode is required".to_string())
                })?;
                if mode > 0o7777 {
                    return Err(InjectError::Invalid(format!(
                        "file modify-mode: {mode:o} is not a permission mode (at most 7777)"
                    )));
                }
                undo.original_mode = Some(mode_of(&meta));
                undo.mode = Some(mode);
            }
            FileAction::Delete => {
                require_exists(&path)?;
                let backup = backup_path(&path, id)?;
                require_absent(&backup, "backup")?;
                require_writable_dir(&parent_of(&path))?;
                undo.backup = Some(backup);
            }
            FileAction::Append => {
                let meta = require_exists(&path)?;
                if !meta.is_file() {
                    return Err(InjectError::Invalid(format!(
                        "{} is not a regular file",
                        path.display()
                    )));
                }
                undo.original_len = Some(meta.len());
                undo.appended_len = Some(appended(fault)?.len() as u64);
            }
            FileAction::Replace => {
                let meta = require_exists(&path)?;
                if !meta.is_file() {
                    return Err(InjectError::Invalid(format!(
                        "{} is not a regular file",
                        path.display()
                    )));
                }
                let original = std::fs::read(&path).map_err(io_at("reading", &path))?;
                replaced(&original, fault)?;
                let backup = backup_path(&path, id)?;
                require_absent(&backup, "backup")?;
                require_writable_dir(&parent_of(&path))?;
                undo.original_mode = Some(mode_of(&meta));
                undo.backup = Some(backup);
            }
            FileAction::Rename => {
                require_exists(&path)?;
                let dest = PathBuf::from(fault.dest.as_deref().unwrap_or_default());
                if dest.as_os_str().is_empty() {
                    return Err(InjectError::Invalid(
                        "file rename: dest is required".to_string(),
                    ));
                }
                require_absent(&dest, "destination")?;
                require_writable_dir(&parent_of(&path))?;
                require_writable_dir(&parent_of(&dest))?;
                undo.dest = Some(dest);
            }
        }
        Ok(Plan {
            id: id.to_string(),
            mechanism: format!("file-{}", fault.action.as_str()),
            undo: serde_json::to_value(&undo)
                .map_err(|e| InjectError::Failed(format!("encoding file plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, fault: &AgentFault) -> Result<Applied, InjectError> {
        let fault = file_of(fault)?;
        let undo = undo_of(plan)?;
        let path = &undo.path;
        match undo.action {
            FileAction::Create => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(io_at("creating", path))?;
                file.write_all(fault.data.as_deref().unwrap_or("").as_bytes())
                    .map_err(io_at("writing", path))?;
                if let Some(mode) = undo.mode {
                    set_mode(path, mode)?;
                }
            }
            FileAction::ModifyMode => {
                let mode = undo
                    .mode
                    .ok_or_else(|| InjectError::Invalid("plan has no mode".to_string()))?;
                set_mode(path, mode)?;
            }
            FileAction::Delete => {
                let backup = undo
                    .backup
                    .as_ref()
                    .ok_or_else(|| InjectError::Invalid("plan has no backup path".to_string()))?;
                require_absent(backup, "backup")?;
                std::fs::rename(path, backup).map_err(io_at("moving away", path))?;
            }
            FileAction::Append => {
                let mut file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(io_at("opening", path))?;
                file.write_all(appended(fault)?.as_bytes())
                    .map_err(io_at("appending to", path))?;
                file.sync_all().map_err(io_at("syncing", path))?;
            }
            FileAction::Replace => {
                let backup = undo
                    .backup
                    .as_ref()
                    .ok_or_else(|| InjectError::Invalid("plan has no backup path".to_string()))?;
                let original = std::fs::read(path).map_err(io_at("reading", path))?;
                let new_content = replaced(&original, fault)?;
                // The backup is complete and on disk before the file changes.
                let mut copy = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(backup)
                    .map_err(io_at("creating backup", backup))?;
                copy.write_all(&original)
                    .and_then(|_| copy.sync_all())
                    .map_err(io_at("writing backup", backup))?;
                rewrite_in_place(path, &new_content)?;
            }
            FileAction::Rename => {
                let dest = undo
                    .dest
                    .as_ref()
                    .ok_or_else(|| InjectError::Invalid("plan has no dest".to_string()))?;
                require_absent(dest, "destination")?;
                std::fs::rename(path, dest).map_err(io_at("renaming", path))?;
            }
        }
        tracing::info!(
            fault_id = %plan.id,
            action = undo.action.as_str(),
            path = %path.display(),
            "file fault applied"
        );
        Ok(Applied::nothing_running())
    }

    fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
        let undo = undo_of(plan)?;
        let path = &undo.path;
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        Ok(match undo.action {
            FileAction::Create => exists(path),
            FileAction::ModifyMode => {
                std::fs::metadata(path).is_ok_and(|m| Some(mode_of(&m)) == undo.mode)
            }
            FileAction::Delete => !exists(path) && undo.backup.as_deref().is_some_and(exists),
            FileAction::Append => std::fs::metadata(path).is_ok_and(|m| {
                m.len() >= undo.original_len.unwrap_or(0) + undo.appended_len.unwrap_or(0)
            }),
            FileAction::Replace => undo.backup.as_deref().is_some_and(exists) && exists(path),
            FileAction::Rename => !exists(path) && undo.dest.as_deref().is_some_and(exists),
        })
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo = undo_of(plan)?;
        let path = &undo.path;
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        match undo.action {
            FileAction::Create => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(InjectError::io(format!("removing {}", path.display()), e)),
            },
            FileAction::ModifyMode => {
                if let Some(mode) = undo.original_mode {
                    if exists(path) {
                        set_mode(path, mode)?;
                    }
                }
            }
            FileAction::Delete => {
                if let Some(backup) = undo.backup.as_ref().filter(|b| exists(b)) {
                    if exists(path) {
                        // Something recreated the file meanwhile; the original wins, as the
                        // fault promised to bring it back.
                        tracing::warn!(
                            fault_id = %plan.id,
                            path = %path.display(),
                            "file was recreated during the fault; restoring the original over it"
                        );
                    }
                    std::fs::rename(backup, path).map_err(io_at("restoring", path))?;
                }
            }
            FileAction::Append => {
                if let (Some(len), true) = (undo.original_len, exists(path)) {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io_at("opening", path))?;
                    if file.metadata().map(|m| m.len()).unwrap_or(0) > len {
                        file.set_len(len).map_err(io_at("truncating", path))?;
                        file.sync_all().map_err(io_at("syncing", path))?;
                    }
                }
            }
            FileAction::Replace => {
                if let Some(backup) = undo.backup.as_ref().filter(|b| exists(b)) {
                    let original =
                        std::fs::read(backup).map_err(io_at("reading backup", backup))?;
                    if exists(path) {
                        rewrite_in_place(path, &original)?;
                    } else {
                        std::fs::write(path, &original).map_err(io_at("restoring", path))?;
                    }
                    if let Some(mode) = undo.original_mode {
                        set_mode(path, mode)?;
                    }
                    std::fs::remove_file(backup).map_err(io_at("removing backup", backup))?;
                }
            }
            FileAction::Rename => {
                if let Some(dest) = undo.dest.as_ref().filter(|d| exists(d)) {
                    if exists(path) {
                        return Err(InjectError::Failed(format!(
                            "cannot rename {} back: {} exists again; resolve by hand",
                            dest.display(),
                            path.display()
                        )));
                    }
                    std::fs::rename(dest, path).map_err(io_at("renaming back", dest))?;
                }
            }
        }
        tracing::info!(
            fault_id = %plan.id,
            action = undo.action.as_str(),
            path = %path.display(),
            "file fault removed"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(action: FileAction) -> FileFault {
        FileFault {
            action,
            path: String::new(),
            data: None,
            count: None,
            mode: None,
            origin: None,
            dest: None,
        }
    }

    #[test]
    fn backup_path_is_hidden_beside_the_file() {
        let backup = backup_path(Path::new("/etc/app.conf"), "f1").unwrap();
        assert_eq!(
            backup,
            PathBuf::from(format!("/etc/.app.conf.chaoshub-{}.bak", short_id("f1")))
        );
    }

    #[test]
    fn replace_rules() {
        let mut f = fault(FileAction::Replace);
        f.data = Some("B".to_string());
        assert_eq!(replaced(b"xAyA", &f).unwrap(), b"B");
        f.origin = Some("A".to_string());
        assert_eq!(replaced(b"xAyA", &f).unwrap(), b"xByB");
        assert!(replaced(b"xyz", &f).is_err());
    }

    #[test]
    fn append_repeats_count_times() {
        let mut f = fault(FileAction::Append);
        assert!(appended(&f).is_err());
        f.data = Some("ab".to_string());
        f.count = Some(3);
        assert_eq!(appended(&f).unwrap(), "ababab");
    }
}
