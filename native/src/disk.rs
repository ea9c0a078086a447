//! Disk faults: `fill` (a file that takes a size or a share of the free space) and
//! `write-payload` / `read-payload` (worker threads that keep the disk busy).
//!
//! Every file the agent creates is named after the fault id (`chaoshub-fill-<short id>.dat`,
//! `chaoshub-payload-<short id>-<n>.dat`) and listed in the plan, so removal deletes exactly those
//! files — never a user's — and works from the journal alone after a restart. A read payload
//! aimed at an existing file reads that file and never deletes it.
//!
//! Fill uses `fallocate(2)`, which reserves the blocks at once without writing them; on file
//! systems that do not support it (some network and FUSE file systems) it writes zeros instead.
//! Payload writers write their file in 1 MiB chunks and `fdatasync` after each pass so the data
//! really reaches the device; readers drop the file from the page cache (`POSIX_FADV_DONTNEED`)
//! before each pass, so the reads hit the disk rather than memory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::{AgentFault, DiskAction, DiskFault};
use nix::errno::Errno;
use nix::fcntl::{fallocate, posix_fadvise, FallocateFlags, PosixFadviseAdvice};
use serde::{Deserialize, Serialize};

use crate::inject::{short_id, Applied, InjectError, Injector, Plan, Worker};

/// Payload file size when the fault gives none.
pub const DEFAULT_PAYLOAD_BYTES: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiskUndo {
    action: DiskAction,
    /// Files this fault creates (and removal deletes).
    created: Vec<PathBuf>,
    /// read-payload of an existing file: the file read (never deleted).
    #[serde(default)]
    read_target: Option<PathBuf>,
    /// Fill size, or payload size per worker.
    size_bytes: u64,
    workers: u32,
}

/// The `disk` injector.
#[derive(Debug, Default)]
pub struct DiskInjector;

impl DiskInjector {
    pub fn new() -> Self {
        DiskInjector
    }
}

fn disk_of(fault: &AgentFault) -> Result<&DiskFault, InjectError> {
    match fault {
        AgentFault::Disk(d) => Ok(d),
        _ => Err(InjectError::Invalid("not a disk fault".to_string())),
    }
}

fn undo_of(plan: &Plan) -> Result<DiskUndo, InjectError> {
    serde_json::from_value(plan.undo.clone())
        .map_err(|e| InjectError::Invalid(format!("disk plan {}: bad undo record: {e}", plan.id)))
}

/// Bytes available to unprivileged users on the file system holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> Result<u64, InjectError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        InjectError::io(
            format!("statvfs {}", dir.display()),
            std::io::Error::from(e),
        )
    })?;
    Ok(stat.blocks_available() * stat.fragment_size())
}

fn require_dir(path: &Path) -> Result<(), InjectError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(InjectError::Invalid(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(e) => Err(InjectError::Invalid(format!(
            "directory {} cannot be used: {e}",
            path.display()
        ))),
    }
}

fn create_new(path: &Path) -> Result<File, InjectError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| InjectError::io(format!("creating {}", path.display()), e))
}

fn remove_if_present(path: &Path) -> Result<(), InjectError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InjectError::io(format!("removing {}", path.display()), e)),
    }
}

fn write_zeros(file: &mut File, bytes: u64, stop: Option<&AtomicBool>) -> std::io::Result<u64> {
    let zeros = vec![0u8; CHUNK];
    let mut written = 0u64;
    while written < bytes {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let n = (bytes - written).min(CHUNK as u64) as usize;
        file.write_all(&zeros[..n])?;
        written += n as u64;
    }
    Ok(written)
}

/// Reserves `bytes` for `file`: fallocate, or zeros where the file system lacks it. Returns the
/// method used.
fn fill_file(file: &mut File, bytes: u64) -> Result<&'static str, InjectError> {
    let len = i64::try_from(bytes)
        .map_err(|_| InjectError::Invalid(format!("{bytes} bytes is too large a fill")))?;
    match fallocate(&*file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok("fallocate"),
        Err(Errno::EOPNOTSUPP) => {
            write_zeros(file, bytes, None)
                .and_then(|_| file.sync_data())
                .map_err(|e| InjectError::io("writing zeros", e))?;
            Ok("zeros")
        }
        Err(e) => Err(InjectError::io("fallocate", std::io::Error::from(e))),
    }
}

struct PayloadWorker {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
    expected: usize,
    bytes: Arc<AtomicU64>,
    handles: Vec<JoinHandle<()>>,
    /// (when, bytes) of the previous `measured()`, for a rate.
    last: Mutex<(Instant, u64, Option<f64>)>,
}

impl PayloadWorker {
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for PayloadWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Worker for PayloadWorker {
    fn is_alive(&self) -> bool {
        self.running.load(Ordering::Relaxed) == self.expected
    }

    /// Bytes per second moved by the workers since the previous call (or since the start).
    fn measured(&self) -> Option<f64> {
        let mut last = self.last.lock().ok()?;
        let (since, base, value) = *last;
        let elapsed = since.elapsed();
        if elapsed < Duration::from_millis(500) {
            return value;
        }
        let now = self.bytes.load(Ordering::Relaxed);
        let rate = now.saturating_sub(base) as f64 / elapsed.as_secs_f64();
        *last = (Instant::now(), now, Some(rate));
        Some(rate)
    }

    fn stop(mut self: Box<Self>) {
        self.shutdown();
    }
}

fn write_loop(path: &Path, size: u64, stop: &AtomicBool, bytes: &AtomicU64) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    while !stop.load(Ordering::Relaxed) {
        file.seek(SeekFrom::Start(0))?;
        let mut done = 0u64;
        let chunk = vec![0x5au8; CHUNK];
        while done < size && !stop.load(Ordering::Relaxed) {
            let n = (size - done).min(CHUNK as u64) as usize;
            file.write_all(&chunk[..n])?;
            done += n as u64;
            bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        file.sync_data()?;
    }
    Ok(())
}

fn read_loop(path: &Path, stop: &AtomicBool, bytes: &AtomicU64) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    while !stop.load(Ordering::Relaxed) {
        // Drop cached pages so the next pass reads from the device.
        let _ = posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        file.seek(SeekFrom::Start(0))?;
        let mut read_any = false;
        while !stop.load(Ordering::Relaxed) {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            read_any = true;
            bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        if !read_any {
            // An empty file: nothing to read, do not spin.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn payload_paths(dir: &Path, id: &str, workers: u32) -> Vec<PathBuf> {
    let short = short_id(id);
    (0..workers)
        .map(|n| dir.join(format!("chaoshub-payload-{short}-{n}.dat")))
        .collect()
}

impl Injector for DiskInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::Disk(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let disk = disk_of(fault)?;
        let path = PathBuf::from(&disk.path);
        if disk.workers == 0 || disk.workers > 256 {
            return Err(InjectError::Invalid(format!(
                "disk: workers must be 1–256, got {}",
                disk.workers
            )));
        }
        let (created, read_target, size, mechanism) = match disk.action {
            DiskAction::Fill => {
                require_dir(&path)?;
                let free = free_bytes(&path)?;
                let size = match (disk.size_bytes, disk.percent) {
                    (Some(size), None) => size,
                    (None, Some(pct)) if pct > 0.0 && pct <= 100.0 => {
                        (free as f64 * pct / 100.0) as u64
                    }
                    (None, Some(pct)) => {
                        return Err(InjectError::Invalid(format!(
                            "disk fill: percent must be in (0, 100], got {pct}"
                        )))
                    }
                    _ => {
                        return Err(InjectError::Invalid(
                            "disk fill: give exactly one of sizeBytes or percent".to_string(),
                        ))
                    }
                };
                if size == 0 {
                    return Err(InjectError::Invalid("disk fill: size is 0".to_string()));
                }
                if size > free {
                    return Err(InjectError::Invalid(format!(
                        "disk fill: {size} bytes requested but {} has only {free} bytes free",
                        path.display()
                    )));
                }
                let file = path.join(format!("chaoshub-fill-{}.dat", short_id(id)));
                (vec![file], None, size, "fallocate")
            }
            DiskAction::WritePayload => {
                require_dir(&path)?;
                let size = disk.size_bytes.unwrap_or(DEFAULT_PAYLOAD_BYTES).max(1);
                let total = size.saturating_mul(u64::from(disk.workers));
                let free = free_bytes(&path)?;
                if total > free {
                    return Err(InjectError::Invalid(format!(
                        "disk write-payload: {} workers × {size} bytes need {total} bytes but {} \
                         has only {free} bytes free",
                        disk.workers,
                        path.display()
                    )));
                }
                (
                    payload_paths(&path, id, disk.workers),
                    None,
                    size,
                    "write-threads",
                )
            }
            DiskAction::ReadPayload => {
                let meta = std::fs::metadata(&path).map_err(|e| {
                    InjectError::Invalid(format!("{} cannot be used: {e}", path.display()))
                })?;
                let size = disk.size_bytes.unwrap_or(DEFAULT_PAYLOAD_BYTES).max(1);
                if meta.is_dir() {
                    // One shared file to read, created by the agent.
                    let file = payload_paths(&path, id, 1);
                    (file, None, size, "read-threads")
                } else {
                    (Vec::new(), Some(path.clone()), meta.len(), "read-threads")
                }
            }
        };
        for file in &created {
            if file.exists() {
                return Err(InjectError::Invalid(format!(
                    "{} already exists; another fault with the same id?",
                    file.display()
                )));
            }
        }
        let undo = DiskUndo {
            action: disk.action,
            created,
            read_target,
            size_bytes: size,
            workers: disk.workers,
        };
        Ok(Plan {
            id: id.to_string(),
            mechanism: mechanism.to_string(),
            undo: serde_json::to_value(&undo)
                .map_err(|e| InjectError::Failed(format!("encoding disk plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        let undo = undo_of(plan)?;
        match undo.action {
            DiskAction::Fill => {
                let Some(path) = undo.created.first() else {
                    return Err(InjectError::Invalid(
                        "disk fill plan names no file".to_string(),
                    ));
                };
                let mut file = create_new(path)?;
                match fill_file(&mut file, undo.size_bytes) {
                    Ok(method) => {
                        tracing::info!(
                            fault_id = %plan.id,
                            path = %path.display(),
                            bytes = undo.size_bytes,
                            method,
                            "disk filled"
                        );
                        Ok(Applied::nothing_running())
                    }
                    Err(e) => {
                        drop(file);
                        remove_if_present(path)?;
                        Err(e)
                    }
                }
            }
            DiskAction::WritePayload | DiskAction::ReadPayload => {
                let stop = Arc::new(AtomicBool::new(false));
                // Set to the worker count once known; each thread decrements it on exit.
                let running = Arc::new(AtomicUsize::new(0));
                let bytes = Arc::new(AtomicU64::new(0));
                // Payload files exist before the workers start: writers rewrite them in place,
                // readers need something to read.
                for path in &undo.created {
                    let mut file = create_new(path)?;
                    if undo.action == DiskAction::ReadPayload {
                        if let Err(e) = write_zeros(&mut file, undo.size_bytes, None)
                            .and_then(|_| file.sync_data())
                        {
                            drop(file);
                            remove_if_present(path)?;
                            return Err(InjectError::io(
                                format!("writing the payload file {}", path.display()),
                                e,
                            ));
                        }
                    }
                }
                let targets: Vec<PathBuf> = match (&undo.action, &undo.read_target) {
                    (DiskAction::ReadPayload, Some(target)) => {
                        vec![target.clone(); undo.workers as usize]
                    }
                    (DiskAction::ReadPayload, None) => {
                        vec![
                            undo.created.first().cloned().unwrap_or_default();
                            undo.workers as usize
                        ]
                    }
                    _ => undo.created.clone(),
                };
                running.store(targets.len(), Ordering::Relaxed);
                let mut worker = PayloadWorker {
                    stop: Arc::clone(&stop),
                    running: Arc::clone(&running),
                    expected: targets.len(),
                    bytes: Arc::clone(&bytes),
                    handles: Vec::new(),
                    last: Mutex::new((Instant::now(), 0, None)),
                };
                let short: String = short_id(&plan.id).chars().take(8).collect();
                for (n, target) in targets.into_iter().enumerate() {
                    let (stop, running, bytes) =
                        (Arc::clone(&stop), Arc::clone(&running), Arc::clone(&bytes));
                    let action = undo.action;
                    let size = undo.size_bytes;
                    let fault_id = plan.id.clone();
                    let handle = std::thread::Builder::new()
                        .name(format!("io{short}-{n}"))
                        .spawn(move || {
                            let result = match action {
                                DiskAction::WritePayload => {
                                    write_loop(&target, size, &stop, &bytes)
                                }
                                _ => read_loop(&target, &stop, &bytes),
                            };
                            if let Err(e) = result {
                                tracing::warn!(
                                    fault_id = %fault_id,
                                    path = %target.display(),
                                    error = %e,
                                    "disk payload worker stopped"
                                );
                            }
                            running.fetch_sub(1, Ordering::Relaxed);
                        })
                        .map_err(|e| InjectError::io("starting a disk payload thread", e))?;
                    worker.handles.push(handle);
                }
                tracing::info!(
                    fault_id = %plan.id,
                    action = undo.action.as_str(),
                    workers = undo.workers,
                    bytes = undo.size_bytes,
                    "disk payload workers started"
                );
                Ok(Applied {
                    worker: Some(Box::new(worker)),
                    undo_update: None,
                })
            }
        }
    }

    fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
        let undo = undo_of(plan)?;
        match undo.action {
            DiskAction::Fill => Ok(undo.created.first().is_some_and(|path| {
                std::fs::metadata(path).is_ok_and(|m| {
                    // fallocate reserves blocks; zeros write them: either way they are allocated.
                    m.len() >= undo.size_bytes && m.blocks() * 512 >= undo.size_bytes
                })
            })),
            // The workers' liveness is the worker's `is_alive`; here the files must exist.
            DiskAction::WritePayload => Ok(undo.created.iter().all(|p| p.exists())),
            DiskAction::ReadPayload => Ok(undo
                .read_target
                .as_ref()
                .map_or_else(|| undo.created.iter().all(|p| p.exists()), |t| t.exists())),
        }
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo = undo_of(plan)?;
        for path in &undo.created {
            remove_if_present(path)?;
            tracing::info!(fault_id = %plan.id, path = %path.display(), "disk fault file removed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_paths_are_named_after_the_id() {
        let paths = payload_paths(Path::new("/d"), "fault-1", 2);
        let short = short_id("fault-1");
        assert_eq!(
            paths,
            vec![
                PathBuf::from(format!("/d/chaoshub-payload-{short}-0.dat")),
                PathBuf::from(format!("/d/chaoshub-payload-{short}-1.dat")),
            ]
        );
    }

    #[test]
    fn fill_refuses_more_than_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let fault = AgentFault::Disk(DiskFault {
            action: DiskAction::Fill,
            path: dir.path().display().to_string(),
            size_bytes: Some(u64::MAX / 2),
            percent: None,
            workers: 1,
        });
        let err = DiskInjector::new()
            .plan("f", &fault)
            .unwrap_err()
            .to_string();
        assert!(err.contains("free"), "{err}");
    }
}
