//! Real `redis-server` processes for tests: one server ([`RedisServer`]) or
//! a small cluster ([`RedisCluster`]), each on free ports of 127.0.0.1 with
//! its own temporary directory, no persistence, and nothing shared with any
//! other Redis on the machine.
//!
//! Servers are stopped when dropped. A server kept in a `static` is never
//! dropped, so each one also has a watchdog (`sh` reading a pipe from this
//! process): when the test binary exits, however it exits, the pipe closes
//! and the watchdog kills the server and removes its directory.
//!
//! Readiness is a `PING` polled against a deadline, never a fixed sleep.
//! Commands for setting up and inspecting servers go through [`Resp`], a
//! few lines of RESP over a plain socket.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const NOT_INSTALLED: &str =
    "redis-server not found: install it with `apt-get install redis-server`";
const START_DEADLINE: Duration = Duration::from_secs(15);
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
const SLOTS: u32 = 16384;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

pub struct RedisServer {
    port: u16,
    extra: Vec<String>,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    watchdog: Child,
    watchdog_pipe: Option<ChildStdin>,
}

impl RedisServer {
    /// A fresh server with the defaults.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A fresh server with extra `redis-server` arguments, e.g.
    /// `["--requirepass", "pw"]` or `["--maxmemory", "2mb"]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let password = extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| extra.get(i + 1).cloned());
        // A port found free may be taken before redis-server binds it: try
        // a few.
        let mut failure = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("splitgate-redis-")
                .tempdir()
                .expect("temp dir");
            let (watchdog, pipe) = watchdog(dir.path());
            let mut server = RedisServer {
                port: free_port(),
                extra: extra.clone(),
                password: password.clone(),
                dir,
                child: None,
                watchdog,
                watchdog_pipe: Some(pipe),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => failure = e,
            }
        }
        panic!("redis-server did not start: {failure}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/`, with the password if one was set.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => self.url_with_password(pw),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The pid is dead now: the watchdog must not kill it again.
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running server");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal}: {status}");
    }

    /// Starts the server again on the same port with the same arguments
    /// (its data is gone: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// One command, answered; panics if the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Reply {
        Resp::connect(self.addr(), self.password.as_deref())
            .and_then(|mut r| r.command(args))
            .unwrap_or_else(|e| panic!("redis command {args:?} on port {}: {e}", self.port))
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("redis.pid")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .arg("--pidfile")
            .arg(self.pid_file())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_INSTALLED}"),
            Err(e) => panic!("spawning redis-server: {e}"),
        };
        self.child = Some(child);
        self.wait_ready().inspect_err(|_| self.kill())
    }

    /// Polls `PING` until the server answers, it exits, or the deadline.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                return Err(format!("exited with {status}; its log:\n{log}"));
            }
            let answer = Resp::connect(self.addr(), self.password.as_deref())
                .and_then(|mut r| r.command(&["PING"]));
            if matches!(answer, Ok(Reply::Status(ref s)) if s == "PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG within {START_DEADLINE:?}: {answer:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        drop(self.watchdog_pipe.take());
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// `sh` waiting for its stdin to close (this process exiting), then
/// killing the server whose pid file is in `dir` and removing `dir`.
fn watchdog(dir: &Path) -> (Child, ChildStdin) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"read _; pid="$(cat "$1/redis.pid" 2>/dev/null)"; [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$1""#)
        .arg("watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the redis watchdog (sh)");
    let pipe = child.stdin.take().expect("watchdog stdin");
    (child, pipe)
}

/// A Redis Cluster of primaries (no replicas), slots split evenly, nodes
/// told to tolerate a missing node (`cluster-require-full-coverage no`)
/// and to notice one quickly (`cluster-node-timeout 2000`).
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    bus_ports: Vec<u16>,
}

impl RedisCluster {
    pub fn start(n: usize) -> RedisCluster {
        assert!(n >= 1, "a cluster needs a node");
        let mut nodes = Vec::with_capacity(n);
        let mut bus_ports = Vec::with_capacity(n);
        for _ in 0..n {
            let bus = free_port().to_string();
            let node = RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus,
                "--cluster-node-timeout",
                "2000",
                "--cluster-require-full-coverage",
                "no",
            ]);
            bus_ports.push(bus.parse().expect("port"));
            nodes.push(node);
        }
        let cluster = RedisCluster { nodes, bus_ports };
        for (i, node) in cluster.nodes.iter().enumerate() {
            let (first, last) = cluster.slots_of(i);
            expect_ok(node.command(&[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &first.to_string(),
                &last.to_string(),
            ]));
        }
        for (node, bus) in cluster.nodes.iter().zip(&cluster.bus_ports).skip(1) {
            expect_ok(cluster.nodes[0].command(&[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &node.port().to_string(),
                &bus.to_string(),
            ]));
        }
        cluster.wait_until("every node sees every slot", |c| {
            (0..c.nodes.len()).all(|i| c.sees_all_slots(i))
        });
        cluster
    }

    /// The seed URLs (every node).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The first and last slot node `i` serves.
    pub fn slots_of(&self, i: usize) -> (u32, u32) {
        let n = self.nodes.len() as u32;
        let i = i as u32;
        (i * SLOTS / n, (i + 1) * SLOTS / n - 1)
    }

    /// Which node serves `key` (asked of a running node).
    pub fn owner_of(&self, key: &str) -> usize {
        let live = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        let slot = match live.command(&["CLUSTER", "KEYSLOT", key]) {
            Reply::Int(slot) => slot as u32,
            other => panic!("CLUSTER KEYSLOT: {other:?}"),
        };
        (0..self.nodes.len())
            .find(|&i| {
                let (first, last) = self.slots_of(i);
                (first..=last).contains(&slot)
            })
            .expect("every slot has a node")
    }

    /// Kills node `i`.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again (it rejoins from its `nodes.conf`).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Waits until the running nodes agree that node `i` has failed.
    pub fn wait_marked_failed(&self, i: usize) {
        let port = format!(":{}@", self.nodes[i].port());
        self.wait_until("the other nodes mark the stopped node failed", |c| {
            c.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let nodes = n.command(&["CLUSTER", "NODES"]).text();
                nodes
                    .lines()
                    .any(|l| l.contains(&port) && l.contains(" master,fail "))
            })
        });
    }

    fn sees_all_slots(&self, i: usize) -> bool {
        let info = self.nodes[i].command(&["CLUSTER", "INFO"]).text();
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        info.contains("cluster_state:ok")
            && info.contains(&format!("cluster_slots_ok:{SLOTS}"))
            && info.contains(&known)
    }

    fn wait_until(&self, what: &str, ready: impl Fn(&RedisCluster) -> bool) {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {CLUSTER_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn expect_ok(reply: Reply) {
    assert_eq!(reply, Reply::Status("OK".into()), "cluster set-up");
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text (bulk and status as they are, others debug-printed).
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        }
    }
}

/// A blocking RESP2 client, enough to set servers up and look inside.
pub struct Resp {
    reader: BufReader<TcpStream>,
}

impl Resp {
    pub fn connect(addr: SocketAddr, password: Option<&str>) -> io::Result<Resp> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut resp = Resp {
            reader: BufReader::new(stream),
        };
        if let Some(pw) = password {
            resp.command(&["AUTH", pw])?;
        }
        Ok(resp)
    }

    pub fn command(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        self.read()
    }

    fn read(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| io::Error::other(format!("bad RESP line {line:?}")))
        };
        Ok(match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(number()?),
            "$" => match number()? {
                -1 => Reply::Nil,
                len => {
                    let mut body = vec![0; len as usize + 2];
                    io::Read::read_exact(&mut self.reader, &mut body)?;
                    body.truncate(len as usize);
                    Reply::Bulk(body)
                }
            },
            "*" => match number()? {
                -1 => Reply::Nil,
                len => (0..len)
                    .map(|_| self.read())
                    .collect::<io::Result<_>>()
                    .map(Reply::Array)?,
            },
            _ => return Err(io::Error::other(format!("bad RESP line {line:?}"))),
        })
    }
}
