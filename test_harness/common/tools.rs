//! The programs some suites drive (browsers, IRC clients and servers, Redis, PostgreSQL, the
//! Python `irc` package…), all installed by `scripts/setup.sh`. A suite asks for each with
//! [`require`]; a missing one fails the test with the command that installs it, so no test
//! skips silently.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What a missing tool's panic says.
pub fn missing_message(tool: &str) -> String {
    format!("{tool} is missing: run scripts/setup.sh")
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The project-local Python virtual environment that `scripts/setup.sh` makes (with the PyPI
/// package `irc` in it). Always under the repository's own `target/`, whatever
/// `CARGO_TARGET_DIR` says, because the script does not know that variable's value at test time.
pub fn venv() -> PathBuf {
    repo().join("target/tools/venv")
}

/// The venv's Python interpreter; panics when `scripts/setup.sh` has not made the venv.
pub fn python() -> PathBuf {
    let python = venv().join("bin/python");
    if !is_executable(&python) {
        panic!(
            "{} ({})",
            missing_message("python (the venv)"),
            python.display()
        );
    }
    python
}

/// The program `tool`: a path with a slash is taken as it is; a bare name is looked for on
/// `PATH`, then where Debian puts programs that are not on every user's `PATH` (`/usr/sbin`,
/// PostgreSQL's versioned `bin`, Chromium's own directory), then in the venv and the browser
/// suite's `node_modules/.bin`. Panics with [`missing_message`] when it is nowhere.
pub fn require(tool: &str) -> PathBuf {
    find(tool).unwrap_or_else(|| panic!("{}", missing_message(tool)))
}

/// [`require`] without the panic.
pub fn find(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        let path = PathBuf::from(tool);
        return is_executable(&path).then_some(path);
    }
    search_dirs()
        .into_iter()
        .map(|dir| dir.join(tool))
        .find(|path| is_executable(path))
}

/// Where [`find`] looks, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for dir in [
        "/usr/local/sbin",
        "/usr/sbin",
        "/sbin",
        "/usr/local/bin",
        "/usr/bin",
        "/bin",
    ] {
        dirs.push(PathBuf::from(dir));
    }
    // postgres, initdb and pg_ctl live in /usr/lib/postgresql/VERSION/bin; newest first.
    let mut pg: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    pg.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    dirs.extend(pg.into_iter().map(|(_, dir)| dir));
    dirs.push(PathBuf::from("/usr/lib/chromium"));
    dirs.push(venv().join("bin"));
    dirs.push(repo().join("test_harness/browser/node_modules/.bin"));
    dirs
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished program did.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` (stdin empty, stdout and stderr collected) and waits at most `limit` for it to
/// exit; kills it and panics past that.
pub fn run_bounded(mut cmd: std::process::Command, limit: std::time::Duration) -> Finished {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::Instant;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            String::from_utf8_lossy(&all).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
