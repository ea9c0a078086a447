//! Group commit and read connections for the SQLite store.
//!
//! One connection writes. A writer that finds others queued behind it leaves its transaction
//! open for them: each later writer runs its work in the same transaction (inside its own
//! savepoint, so a refused write undoes only itself), and the last writer of the queue commits
//! once for all of them, with one fsync. Every writer returns only when the transaction that
//! holds its work is durable (committed at the level its write needs), so nothing is ever
//! acknowledged before it is on disk; if that commit fails, every writer of the batch gets the
//! error. Under load the fsyncs are shared between writers; alone, a writer commits at once
//! and pays no wait.
//!
//! Reads use their own connections (a small pool; WAL lets them run beside the writer), so they
//! only ever see committed data and never hold up a batch. An in-memory store has a single
//! connection: its reads first commit any open batch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use rusqlite::Connection;

use super::Durability;
use crate::store::StoreError;

/// Writers committed together at most; beyond it the batch is committed and a new one begun.
const MAX_BATCH: usize = 256;

/// Read connections open at once (busy or idle). Each holds its own page cache and copy of
/// the schema, so an unbounded pool lets a burst of reads (a hostile request flood, a large
/// scan on many threads) pin memory for the process's life. A thread that already holds a
/// reader may open one more beyond the cap, so a nested read can never wait for itself.
const MAX_READERS: usize = 4;

/// Page cache of one read connection, in KiB (SQLite's default is 2,000 KiB per connection).
const READER_CACHE_KIB: i64 = 1024;

thread_local! {
    /// Pooled readers this thread holds now.
    static HELD_READERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The read connections: idle ones, and how many are open in all.
#[derive(Default)]
struct ReaderPool {
    idle: Vec<Connection>,
    open: usize,
}

/// The fsync a write needs: `Full` for lifecycle transitions under `store.synchronous =
/// "lifecycle"`, else what the store was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Normal,
    Full,
}

/// How one batch ended, shared by its writers.
type Outcome = Arc<OnceLock<Result<(), String>>>;

struct Batch {
    level: Level,
    /// Writers whose work is in the batch.
    members: usize,
    outcome: Outcome,
}

/// The writer connection and the batch open on it.
pub(super) struct Writer {
    conn: Connection,
    open: Option<Batch>,
    /// The connection's `synchronous` setting now (only changed between transactions).
    level: Level,
}

/// Counters for tests and benches.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Transactions committed for batched writes.
    pub commits: AtomicU64,
    /// Batched writes made durable.
    pub writes: AtomicU64,
}

pub(super) struct GroupCommit {
    writer: Mutex<Writer>,
    committed: Condvar,
    /// Writers waiting for the writer connection.
    queued: AtomicUsize,
    durability: Durability,
    /// The database file, for read connections; none for an in-memory store.
    path: Option<PathBuf>,
    readers: Mutex<ReaderPool>,
    /// Signalled when a reader is given back or closed.
    reader_free: Condvar,
    pub stats: Stats,
}

/// The writer connection, held exclusively; any open batch was committed first.
pub(super) struct Exclusive<'a>(MutexGuard<'a, Writer>);

impl std::ops::Deref for Exclusive<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

/// A connection for reading: one of the pool, or the writer's for an in-memory store.
pub(super) enum Reader<'a> {
    Pooled(&'a GroupCommit, Option<Connection>),
    Writer(Exclusive<'a>),
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Pooled(_, conn) => conn.as_ref().expect("a pooled reader holds its connection"),
            Reader::Writer(w) => w,
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Reader::Pooled(group, conn) = self {
            HELD_READERS.with(|h| h.set(h.get().saturating_sub(1)));
            if let Some(conn) = conn.take() {
                let mut pool = lock(&group.readers);
                if pool.open <= MAX_READERS {
                    pool.idle.push(conn);
                } else {
                    // One opened beyond the cap for a nested read: closed, not kept.
                    pool.open -= 1;
                    drop(pool);
                    drop(conn);
                }
                group.reader_free.notify_one();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave SQLite half-written (a batch whose writer
    // panicked is settled before the panic goes on), so a poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_reader(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(conn)
}

fn pragma_level(level: Level) -> &'static str {
    match level {
        Level::Normal => "NORMAL",
        Level::Full => "FULL",
    }
}

/// The `synchronous` level a write needs under `durability`.
fn level_of(durability: Durability, lifecycle: bool) -> Level {
    match durability {
        Durability::Normal => Level::Normal,
        Durability::Full => Level::Full,
        Durability::Lifecycle if lifecycle => Level::Full,
        Durability::Lifecycle => Level::Normal,
    }
}

/// The `synchronous` setting a store opens with under `durability` (what its plain writes use).
pub(super) fn initial_synchronous(durability: Durability) -> &'static str {
    pragma_level(level_of(durability, false))
}

impl GroupCommit {
    /// Takes `conn` (WAL, schema in place, `synchronous` set to [`initial_synchronous`]) as
    /// the writer.
    pub(super) fn new(conn: Connection, durability: Durability, path: Option<PathBuf>) -> Self {
        let level = level_of(durability, false);
        Self {
            writer: Mutex::new(Writer {
                conn,
                open: None,
                level,
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
            durability,
            path,
            readers: Mutex::new(ReaderPool::default()),
            reader_free: Condvar::new(),
            stats: Stats::default(),
        }
    }

    pub(super) fn durability(&self) -> Durability {
        self.durability
    }

    fn level_for(&self, lifecycle: bool) -> Level {
        level_of(self.durability, lifecycle)
    }

    /// The writer connection to itself, after committing any open batch: for the writes that
    /// manage their own transaction, and reads of an in-memory store.
    pub(super) fn exclusive(&self) -> Exclusive<'_> {
        let mut w = lock(&self.writer);
        self.settle(&mut w, None);
        Exclusive(w)
    }

    /// A connection that sees only committed data.
    pub(super) fn read(&self) -> Result<Reader<'_>, StoreError> {
        let Some(path) = &self.path else {
            return Ok(Reader::Writer(self.exclusive()));
        };
        let nested = HELD_READERS.with(|h| h.get()) > 0;
        let mut pool = lock(&self.readers);
        loop {
            if let Some(conn) = pool.idle.pop() {
                HELD_READERS.with(|h| h.set(h.get() + 1));
                return Ok(Reader::Pooled(self, Some(conn)));
            }
            if pool.open < MAX_READERS || nested {
                break;
            }
            pool = self
                .reader_free
                .wait(pool)
                .unwrap_or_else(|p| p.into_inner());
        }
        pool.open += 1;
        drop(pool);
        match open_reader(path) {
            Ok(conn) => {
                HELD_READERS.with(|h| h.set(h.get() + 1));
                Ok(Reader::Pooled(self, Some(conn)))
            }
            Err(e) => {
                lock(&self.readers).open -= 1;
                self.reader_free.notify_one();
                Err(e)
            }
        }
    }

    /// Read connections open now (busy and idle).
    #[cfg(test)]
    fn readers_open(&self) -> usize {
        lock(&self.readers).open
    }

    /// Runs `f` in the open batch (or a new one) and returns once the batch is durable.
    /// `lifecycle` writes are committed with `synchronous=FULL` under the `lifecycle`
    /// durability. `f` must not commit or roll back the transaction itself.
    pub(super) fn write<R>(
        &self,
        lifecycle: bool,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let level = self.level_for(lifecycle);
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut w = lock(&self.writer);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        // A write that needs an fsync never joins a batch that would be committed without.
        if w.open.as_ref().is_some_and(|b| b.level < level) {
            self.settle(&mut w, None);
        }
        if w.open.is_none() {
            if let Err(e) = Self::begin(&mut w, level) {
                return Err(e.into());
            }
        }
        let outcome = Arc::clone(&w.open.as_ref().expect("a batch is open").outcome);

        let result = match w.conn.execute_batch("SAVEPOINT chaoshub_write") {
            Err(e) => Ok(Err(StoreError::from(e))),
            Ok(()) => {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&w.conn)));
                let undo = !matches!(ran, Ok(Ok(_)));
                if !w.conn.is_autocommit() {
                    let end = if undo {
                        "ROLLBACK TO chaoshub_write; RELEASE chaoshub_write"
                    } else {
                        "RELEASE chaoshub_write"
                    };
                    if let Err(e) = w.conn.execute_batch(end) {
                        tracing::error!(error = %e, "cannot end a write's savepoint");
                    }
                }
                ran
            }
        };
        if w.conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk) or the
            // write ended it: nothing of the batch was kept.
            w.open = None;
            let why = "the transaction was rolled back by SQLite before its commit";
            let _ = outcome.set(Err(why.to_string()));
            self.committed.notify_all();
            return match result {
                Ok(Ok(_)) => Err(StoreError::Unavailable(why.into())),
                Ok(Err(e)) => Err(e),
                Err(panic) => {
                    drop(w);
                    std::panic::resume_unwind(panic)
                }
            };
        }
        let kept = matches!(result, Ok(Ok(_)));
        if kept {
            if let Some(batch) = w.open.as_mut() {
                batch.members += 1;
            }
        }
        // The last writer of the queue (or a full batch) commits for everyone in it.
        let members = w.open.as_ref().map_or(0, |b| b.members);
        if self.queued.load(Ordering::SeqCst) == 0 || members >= MAX_BATCH {
            let mut own = None;
            self.settle(&mut w, Some(&mut own));
            if let (true, Some(e)) = (kept, own) {
                return Err(e.into());
            }
        }
        let value = match result {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => return Err(e),
            Err(panic) => {
                drop(w);
                std::panic::resume_unwind(panic)
            }
        };
        // Acknowledged only once durable.
        let w = self
            .committed
            .wait_while(w, |_| outcome.get().is_none())
            .unwrap_or_else(|p| p.into_inner());
        drop(w);
        match outcome.get() {
            Some(Ok(())) => Ok(value),
            Some(Err(why)) => Err(StoreError::Unavailable(format!(
                "the write was not stored: {why}"
            ))),
            None => unreachable!("waited until the batch had an outcome"),
        }
    }

    fn begin(w: &mut Writer, level: Level) -> rusqlite::Result<()> {
        if w.level != level {
            w.conn
                .pragma_update(None, "synchronous", pragma_level(level))?;
            w.level = level;
        }
        w.conn.execute_batch("BEGIN IMMEDIATE")?;
        w.open = Some(Batch {
            level,
            members: 0,
            outcome: Arc::new(OnceLock::new()),
        });
        Ok(())
    }

    /// Commits the open batch, if any, and wakes its writers. `own` receives the commit's
    /// error for the caller.
    fn settle(&self, w: &mut Writer, own: Option<&mut Option<rusqlite::Error>>) {
        let Some(batch) = w.open.take() else {
            return;
        };
        let done = if batch.members == 0 {
            w.conn.execute_batch("ROLLBACK")
        } else {
            w.conn.execute_batch("COMMIT")
        };
        let result = match done {
            Ok(()) => {
                if batch.members > 0 {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .writes
                        .fetch_add(batch.members as u64, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(e) => {
                if !w.conn.is_autocommit() {
                    if let Err(e) = w.conn.execute_batch("ROLLBACK") {
                        tracing::error!(error = %e, "cannot roll back a batch whose commit failed");
                    }
                }
                tracing::error!(error = %e, writes = batch.members, "a batch of store writes could not be committed; each writer gets the error");
                let text = e.to_string();
                if let Some(own) = own {
                    *own = Some(e);
                }
                Err(text)
            }
        };
        let _ = batch.outcome.set(result);
        self.committed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    use crate::store::{NewEvent, SqliteStore, Store, StoreError};

    fn event(n: usize) -> NewEvent {
        NewEvent {
            name: "test.group".into(),
            message: format!("write {n}"),
            ..NewEvent::default()
        }
    }

    /// Holds the writer connection until `n` writers queue behind it, then lets them go.
    fn queue_behind(store: &Arc<SqliteStore>, n: usize, spawn: impl Fn(usize)) {
        let held = store.lock();
        for i in 0..n {
            spawn(i);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.group.queued.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the writers never queued");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
    }

    /// At most `MAX_READERS` read connections are open however many threads read at once; a
    /// reader beyond them waits for one to be given back, except a thread's nested read, which
    /// is served at once and closed when dropped.
    #[test]
    fn read_connections_are_capped_and_a_nested_read_never_waits() {
        use super::MAX_READERS;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), "lifecycle").unwrap());
        let count = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .unwrap()
        };
        let start = Arc::new(Barrier::new(16));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (store, start, peak) =
                    (Arc::clone(&store), Arc::clone(&start), Arc::clone(&peak));
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..50 {
                        let conn = store.group.read().unwrap();
                        assert!(count(&conn) > 0);
                        peak.fetch_max(store.group.readers_open(), Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=MAX_READERS).contains(&peak),
            "{peak} readers were open at once"
        );

        // All the pool's readers held by other threads: a fresh thread waits, this thread's
        // nested read does not.
        let outer = store.group.read().unwrap();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let held: Vec<_> = (0..MAX_READERS - 1)
                    .map(|_| store.group.read().unwrap())
                    .collect();
                held_tx.send(()).unwrap();
                hold_rx.recv().unwrap();
                drop(held);
            })
        };
        held_rx.recv().unwrap();
        assert_eq!(store.group.readers_open(), MAX_READERS);
        let (got_tx, got_rx) = std::sync::mpsc::channel::<()>();
        let waiter = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let conn = store.group.read().unwrap();
                assert!(count(&conn) > 0);
                got_tx.send(()).unwrap();
            })
        };
        assert!(
            got_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a fifth reader was opened while {MAX_READERS} were busy"
        );
        let nested = store.group.read().unwrap();
        assert!(count(&nested) > 0);
        assert_eq!(store.group.readers_open(), MAX_READERS + 1);
        drop(nested);
        assert_eq!(
            store.group.readers_open(),
            MAX_READERS,
            "the extra reader was kept"
        );
        hold_tx.send(()).unwrap();
        got_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the waiting reader was never served");
        holder.join().unwrap();
        waiter.join().unwrap();
        drop(outer);
        assert_eq!(store.group.readers_open(), MAX_READERS);
    }

    /// Writers queued at once share one commit, each is acknowledged only when a separate
    /// connection (which sees committed data only) can read its write, and a refused write in
    /// the batch undoes only itself.
    #[test]
    fn queued_writers_share_one_commit_and_return_only_when_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), "lifecycle").unwrap());
        let path = dir.path().join("chaoshub.db");
        let (before_commits, before_writes) = store.commit_stats();
        let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
        queue_behind(&store, 8, |i| {
            let store = Arc::clone(&store);
            let path = path.clone();
            handles.lock().unwrap().push(std::thread::spawn(move || {
                let outcome = if i == 3 {
                    // A write that fails inside the batch (the experiment does not exist).
                    store
                        .set_desired(
                            "no-such-uid",
                            chaoshub_schema::api::DesiredState::Stop,
                            None,
                            &[event(i)],
                        )
                        .map(|_| ())
                } else {
                    store.append_events(&[event(i)]).map(|_| ())
                };
                // Acknowledged: another connection must see it now.
                let other = rusqlite::Connection::open(&path).unwrap();
                let seen: i64 = other
                    .query_row(
                        "SELECT COUNT(*) FROM events WHERE message = ?1",
                        [format!("write {i}")],
                        |r| r.get(0),
                    )
                    .unwrap();
                (i, outcome.is_ok(), seen)
            }));
        });
        let results: Vec<_> = std::mem::take(&mut *handles.lock().unwrap())
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        for (i, ok, seen) in results {
            if i == 3 {
                assert!(!ok, "the write on a missing experiment must fail");
                assert_eq!(seen, 0, "the failed write's event must be undone");
            } else {
                assert!(ok, "write {i} failed");
                assert_eq!(
                    seen, 1,
                    "write {i} was acknowledged before it was committed"
                );
            }
        }
        let (commits, writes) = store.commit_stats();
        assert_eq!(writes - before_writes, 7, "seven writes were kept");
        // One commit for all eight, or two: the failing transition needs FULL sync, so if it
        // came after some of the events it committed their NORMAL batch first.
        let commits = commits - before_commits;
        assert!(
            (1..=2).contains(&commits),
            "8 queued writers took {commits} commits"
        );
    }

    /// Writers from many threads at once: all of them stored, with far fewer commits than
    /// writes, and reads on other connections running beside the writers.
    #[test]
    fn concurrent_writers_are_all_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), "full").unwrap());
        let threads = 16;
        let each = 50;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..each {
                        store.append_events(&[event(t * 1000 + i)]).unwrap();
                        let page = store
                            .list_events(&crate::store::EventFilter {
                                limit: 1,
                                ..Default::default()
                            })
                            .unwrap();
                        assert_eq!(page.len(), 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let all = store
            .list_events(&crate::store::EventFilter {
                limit: 10_000,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), threads * each);
        let (commits, writes) = store.commit_stats();
        assert_eq!(writes as usize, threads * each);
        assert!(commits <= writes, "{commits} commits for {writes} writes");
        eprintln!("{writes} writes from {threads} threads in {commits} commits");
    }

    /// When SQLite drops the whole transaction under a batch, no writer of that batch is told
    /// its write was stored.
    #[test]
    fn a_batch_lost_before_its_commit_fails_every_writer_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), "normal").unwrap());
        let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
        queue_behind(&store, 4, |i| {
            let store = Arc::clone(&store);
            handles.lock().unwrap().push(std::thread::spawn(move || {
                let r = store.batched(|conn| {
                    crate::store::sqlite::insert_events(conn, &[event(i)])?;
                    if i == 2 {
                        // Stands for SQLite rolling the transaction back on an I/O error.
                        conn.execute_batch("ROLLBACK")?;
                    }
                    Ok(())
                });
                (i, r)
            }));
        });
        let results: Vec<_> = std::mem::take(&mut *handles.lock().unwrap())
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let stored = store
            .list_events(&crate::store::EventFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        let stored: Vec<&str> = stored.iter().map(|e| e.message.as_str()).collect();
        for (i, r) in results {
            let message = format!("write {i}");
            match r {
                Ok(()) => assert!(
                    stored.contains(&message.as_str()),
                    "write {i} was acknowledged but is not stored"
                ),
                Err(StoreError::Unavailable(_)) | Err(StoreError::Database(_)) => {}
                Err(e) => panic!("write {i}: unexpected error {e}"),
            }
        }
    }
}
