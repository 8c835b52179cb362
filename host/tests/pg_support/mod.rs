//! A throw-away PostgreSQL cluster for the shared-store tests: `initdb` in
//! a temporary directory (as `nobody` when run as root: initdb refuses
//! root), `postgres` on 127.0.0.1 and a free port only, one cluster per
//! test binary, one fresh database per test.
//!
//! The server runs under a small `sh` guard that holds a pipe from the
//! test process: when the test binary exits (however it exits), the pipe
//! closes, and the guard stops the server (fast shutdown) and removes the
//! directory. Without PostgreSQL a test prints a loud `SKIPPED:` line and
//! passes; with `CAPBOX_REQUIRE_POSTGRES=1` (CI) it fails instead.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How to install what is missing (printed when the server is required).
const INSTALL_HINT: &str = "install PostgreSQL (Debian/Ubuntu: `apt-get install -y postgresql`; \
     the tests look in `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH)";

/// A running throw-away cluster.
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    /// The guard's stdin: closing it (at exit) stops the server.
    _guard_stdin: Mutex<ChildStdin>,
    _guard: Mutex<Child>,
}

/// The directory holding `initdb` and `postgres`, if PostgreSQL is installed.
pub fn find_bindir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_both(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        let initdb = std::fs::canonicalize(dir.join("initdb")).ok()?;
        let real = initdb.parent()?.to_path_buf();
        has_both(&real).then_some(real)
    })
}

fn required() -> bool {
    std::env::var("CAPBOX_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program args…`, as `nobody` when we are root.
fn unprivileged(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl PgServer {
    /// The cluster of this test binary (started on first use), or `None`
    /// after printing `SKIPPED: <test>: …` when PostgreSQL is not
    /// installed. Panics when it is required (`CAPBOX_REQUIRE_POSTGRES=1`)
    /// but missing, or when it is installed but does not start.
    pub fn get(test: &str) -> Option<&'static PgServer> {
        static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
        match SERVER.get_or_init(PgServer::start) {
            Ok(server) => Some(server),
            Err(why) if required() => panic!(
                "{test}: PostgreSQL is required (CAPBOX_REQUIRE_POSTGRES=1) but {why}; {INSTALL_HINT}"
            ),
            Err(why) => {
                // Straight to the stderr handle, not `eprintln!`: the test
                // harness captures the macro's output of passing tests.
                let line = format!(
                    "SKIPPED: {test}: {why} — the PostgreSQL store is NOT tested ({INSTALL_HINT}; \
                     CAPBOX_REQUIRE_POSTGRES=1 makes this a failure)\n"
                );
                let _ = std::io::stderr().write_all(line.as_bytes());
                None
            }
        }
    }

    fn start() -> Result<PgServer, String> {
        let Some(bindir) = find_bindir() else {
            return Err("PostgreSQL is not installed".to_owned());
        };
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("capbox-pg-")
            .tempdir()
            .map_err(|e| format!("no temp dir: {e}"))?
            .keep();
        let data = dir.join("data");
        if root {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&dir)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                panic!("cannot chown {} to nobody", dir.display());
            }
        }
        let out = unprivileged(&bindir.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "capbox", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for attempt in 0..3 {
            let port = free_port();
            match PgServer::launch(&bindir, &dir, &data, port, root) {
                Ok(server) => return Ok(server),
                Err(log) if attempt == 2 => panic!("postgres did not start: {log}"),
                Err(_) => {}
            }
        }
        unreachable!()
    }

    fn launch(
        bindir: &Path,
        dir: &Path,
        data: &Path,
        port: u16,
        root: bool,
    ) -> Result<PgServer, String> {
        let mut server = unprivileged(&bindir.join("postgres"), root);
        server
            .arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=60",
            ]);
        let program = server.get_program().to_owned();
        let args: Vec<_> = server.get_args().map(|a| a.to_owned()).collect();
        // sh -c GUARD sh DIR PROGRAM ARGS…: the server runs until our
        // stdin closes, then stops and its directory goes.
        let guard = r#"dir=$1; shift; "$@" 2>"$dir/log" & pid=$!
            read _ignored; kill -INT $pid 2>/dev/null; wait $pid; rm -rf "$dir""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(guard)
            .arg("sh")
            .arg(dir)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let server = PgServer {
            port,
            dir: dir.to_owned(),
            _guard_stdin: Mutex::new(stdin),
            _guard: Mutex::new(child),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if postgres::Client::connect(&server.url("postgres"), postgres::NoTls).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(_)) = server._guard.lock().unwrap().try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        Err(log)
    }

    /// `postgres://capbox@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://capbox@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database for one test; its URL.
    pub fn fresh_db(&self, test: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}_{}",
            test.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .take(40)
                .collect::<String>(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = self.client("postgres");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        self.url(&name)
    }

    /// A plain client on database `db` (to look at or damage rows).
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls).unwrap()
    }

    /// A client on the database of `url` (from [`PgServer::fresh_db`]).
    pub fn client_for(&self, url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls).unwrap()
    }

    /// The cluster's directory (removed when the test binary exits).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
