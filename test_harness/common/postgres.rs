//! A throwaway PostgreSQL for tests: a cluster made with `initdb` in a temporary directory,
//! listening on 127.0.0.1 and a free port (its socket in the same directory), stopped and
//! removed when the test ends, even by a panic or a kill.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user that
//! Debian's package creates (or `nobody`) and its programs run as that user; as anyone else,
//! as oneself. Cleaning up does not depend on our destructors: a watchdog shell, started with
//! the cluster, waits for its standard input to close (which happens however the test process
//! ends), then stops the server and removes the directory.
//!
//! [`PgCluster::shared`] is one cluster per test binary, for tests that each take a database
//! of their own ([`PgCluster::database`]); [`PgCluster::start`] is a cluster of one's own, for a
//! test that stops and starts the server.
//!
//! Needs PostgreSQL's server programs (`/usr/lib/postgresql/*/bin`); scripts/setup.sh installs
//! them. Without them a test fails, naming it.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The database superuser the tests connect as (trusted on the loopback, no password).
pub const PG_USER: &str = "chat";

/// How long `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECS: &str = "60";

/// A running PostgreSQL cluster of the tests.
pub struct PgCluster {
    /// The temporary directory: `data/`, the socket, the log.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Who the server runs as, when that is not us (we are root).
    run_as: Option<(u32, u32)>,
    /// The watchdog's standard input; closing it stops the server and removes `dir`.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

/// A database of its own for one test, dropped (connections and all) when this is.
pub struct PgDatabase<'a> {
    cluster: &'a PgCluster,
    pub name: String,
}

impl PgDatabase<'_> {
    /// Its connection URL.
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// Runs SQL in it with `psql`: the rows, unaligned, `|` between the columns.
    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql)
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.try_psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// The directory of PostgreSQL's server programs, the newest installed.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "this test needs a PostgreSQL server, and none is installed (no \
             /usr/lib/postgresql/*/bin/initdb): run scripts/setup.sh (as root) to install it"
        ),
    }
}

/// The uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

impl PgCluster {
    /// A new cluster of one's own, running; stopped and removed when dropped.
    pub fn start() -> PgCluster {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let bin = bin_dir();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = if root {
            Some(user_ids("postgres").or_else(|| user_ids("nobody")).expect(
                "as root, PostgreSQL needs a user to run as: neither postgres nor nobody exists",
            ))
        } else {
            None
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create the cluster's directory");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("cannot give the cluster's directory to its user");
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            run_as,
            watchdog: Mutex::new(None),
        };
        cluster.start_watchdog();
        let output = cluster
            .command("initdb")
            .args(["-D"])
            .arg(cluster.data())
            .args([
                "-U",
                PG_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .output()
            .expect("cannot run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            describe(&output)
        );
        // The port may be taken between finding it and binding it: then try another.
        for attempt in 1..=5 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return cluster,
                Err(e) if attempt < 5 => eprintln!("postgres: start failed, retrying: {e}"),
                Err(e) => panic!("PostgreSQL did not start: {e}"),
            }
        }
        unreachable!()
    }

    /// The test binary's cluster, started on first use; removed when the process ends.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database.
    pub fn database(&self) -> PgDatabase<'_> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        PgDatabase {
            cluster: self,
            name,
        }
    }

    /// Stops the server (fast: connections are cut), keeping the cluster.
    pub fn stop(&self) {
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", PG_CTL_WAIT_SECS, "stop"])
            .output()
            .expect("cannot run pg_ctl");
        assert!(
            output.status.success(),
            "pg_ctl stop failed: {}",
            describe(&output)
        );
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn resume(&self) {
        if let Err(e) = self.pg_ctl_start() {
            panic!("PostgreSQL did not start again: {e}");
        }
    }

    /// Runs SQL with `psql` in `database`: the rows, unaligned, `|` between the columns.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        match self.try_psql(database, sql) {
            Ok(out) => out,
            Err(e) => panic!("psql failed on {sql:?}: {e}"),
        }
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
            ])
            .args(["-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_string())
        } else {
            Err(describe(&output))
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// One of PostgreSQL's programs, run as the cluster's user, in a process group of its own
    /// (a Ctrl-C at the terminal is for the tests; the watchdog stops the server).
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", PG_CTL_WAIT_SECS, "-o", &options, "start"])
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            Err(format!("{}\nserver log:\n{log}", describe(&output)))
        }
    }

    /// The watchdog: once its standard input closes, it stops the server at once and removes
    /// the directory.
    fn start_watchdog(&mut self) {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "read -r _; \"$1\" -D \"$2\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$3\"",
            "watchdog",
        ])
        .arg(self.bin.join("pg_ctl"))
        .arg(self.data())
        .arg(&self.dir)
        .current_dir(Path::new("/"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().expect("cannot start the cluster's watchdog");
        let stdin = child.stdin.take().expect("the watchdog's stdin");
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some((child, stdin));
    }
}

impl Drop for PgCluster {
    /// Stops the server and removes the directory, and waits until both are done.
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((mut child, mut stdin)) = watchdog {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}
