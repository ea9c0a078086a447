//! A throwaway PostgreSQL server for tests, from Debian's binaries
//! (`/usr/lib/postgresql/<version>/bin`, package `postgresql`).
//!
//! The server runs as an unprivileged user (PostgreSQL refuses root: `nobody` through
//! `runuser` when the tests run as root), in a fresh directory under the system's temporary
//! folder, on a free loopback port with its unix socket inside that directory, with `trust`
//! authentication for the superuser `postgres`. It is stopped (`pg_ctl stop -m immediate`) and
//! its directory removed on drop, which also runs when a test panics. A watchdog process does
//! the same when the test process ends without dropping it (the one server a test binary
//! shares, [`shared`], lives in a static), so no server outlives its tests.
//!
//! Databases are made and dropped with the server's own `psql`, so this crate keeps no
//! dependencies. Missing binaries are a `SKIP` line outside CI and a failure under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

const MISSING: &str =
    "PostgreSQL (Debian postgresql) not installed: run scripts/install-test-deps.sh";

/// A running server; stopped and removed on drop.
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `runuser -u nobody --` when the tests run as root.
    run_as: Option<String>,
    watchdog: Option<Child>,
}

/// The directory holding `initdb`, `pg_ctl` and `psql`: `$POSTGRES_BIN_DIR`, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The server this test binary shares (started on first use; each test makes its own database
/// with [`PostgresServer::create_database`]). `None` after a `SKIP` line when PostgreSQL is not
/// installed (a panic under `CI=true`).
pub fn shared() -> Option<&'static PostgresServer> {
    static SHARED: OnceLock<Option<PostgresServer>> = OnceLock::new();
    let server = SHARED.get_or_init(|| PostgresServer::start_with(&[], &[]));
    if server.is_none() {
        crate::skip_or_fail_in_ci(MISSING);
    }
    server.as_ref()
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// uid and gid of `user` from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl PostgresServer {
    /// Starts a server of its own (for a test that needs settings of its own: `settings` are
    /// `-c name=value` options, `files` are written into the data directory, readable by the
    /// server only, e.g. a TLS key). `None` after a `SKIP` line when PostgreSQL is missing.
    pub fn start(settings: &[(&str, &str)], files: &[(&str, &[u8])]) -> Option<PostgresServer> {
        let server = Self::start_with(settings, files);
        if server.is_none() {
            crate::skip_or_fail_in_ci(MISSING);
        }
        server
    }

    fn start_with(settings: &[(&str, &str)], files: &[(&str, &[u8])]) -> Option<PostgresServer> {
        let bin = bin_dir()?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chaoshub-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let run_as = if effective_uid() == Some(0) {
            let (uid, gid) = user_ids("nobody")
                .unwrap_or_else(|| panic!("PostgreSQL refuses root and there is no user nobody"));
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
            Some("nobody".to_string())
        } else {
            None
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        let mut server = PostgresServer {
            bin,
            dir,
            port: 0,
            run_as,
            watchdog: None,
        };
        server.start_watchdog();
        let data = server.dir.join("data");
        server.run_checked(
            server.command("initdb").args([
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ]),
            "initdb",
        );
        for (name, content) in files {
            let path = data.join(name);
            std::fs::write(&path, content)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            if server.run_as.is_some() {
                let (uid, gid) = user_ids("nobody").expect("looked up above");
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
            }
        }
        // A port taken between the probe and the start fails the start: try another.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                server.dir.display()
            );
            for (name, value) in settings {
                options.push_str(&format!(" -c {name}={value}"));
            }
            let out = server
                .command("pg_ctl")
                .args(["-D", &data.to_string_lossy()])
                .args(["-l", &server.dir.join("server.log").to_string_lossy()])
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
            if out.status.success() {
                server.port = port;
                return Some(server);
            }
            last = format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
            );
        }
        panic!(
            "PostgreSQL did not start in {}: {last}",
            server.dir.display()
        );
    }

    /// A command running `program` from the server's binaries as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run_checked(&self, command: &mut Command, what: &str) {
        let out = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A process in its own session that stops the server and removes its directory once this
    /// test process has ended (however it ended), if [`Drop`] has not already done so.
    fn start_watchdog(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let runner = match &self.run_as {
            Some(user) => format!("runuser -u {user} -- "),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -d {data} ]; then {runner}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; fi; \
             rm -rf {dir}",
            pid = std::process::id(),
            data = quote(&self.dir.join("data").to_string_lossy()),
            pg_ctl = quote(&pg_ctl.to_string_lossy()),
            dir = quote(&self.dir.to_string_lossy()),
        );
        let spawned = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .or_else(|_| {
                Command::new("sh")
                    .args(["-c", &script])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            });
        self.watchdog = spawned.ok();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (data in `data/`, log in `server.log`, socket beside them).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of `database` as the superuser, over TCP on loopback, with `sslmode` as given.
    pub fn url_with(&self, database: &str, sslmode: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode={sslmode}",
            self.port
        )
    }

    /// The URL of `database`, TLS off.
    pub fn url(&self, database: &str) -> String {
        self.url_with(database, "disable")
    }

    /// Runs SQL with `psql` in `database`; returns its unaligned, tuples-only output. Panics
    /// when it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", database, "-c", sql])
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new empty database, dropped when the guard is.
    pub fn create_database(&self) -> TestDatabase<'_> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        TestDatabase {
            url: self.url(&name),
            server: self,
            name,
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.dir.join("data").to_string_lossy()])
            .args(["-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// A database of a test; dropped (closing its connections) with the guard.
pub struct TestDatabase<'a> {
    server: &'a PostgresServer,
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable`
    pub url: String,
}

impl TestDatabase<'_> {
    pub fn server(&self) -> &PostgresServer {
        self.server
    }
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        // WITH (FORCE) ends connections a store left open (PostgreSQL 13 and later).
        let _ = Command::new(self.server.bin.join("psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-p"])
            .arg(self.server.port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
