//! Real `splitgate issuer|gateway|serve` child processes sharing one
//! generated config, as `docs/operations.md` describes a deployment: the
//! same store, `store.encryption_key`, `admin.token` and `[tenants.*]`
//! tables in every process, each on its own `127.0.0.1:0` listeners.
//!
//! A [`Deployment`] writes the config into a temporary directory;
//! [`Deployment::start`] spawns one process and waits for the line the
//! binary prints once it serves (`splitgate <Mode> listening: public=...
//! admin=...`), which gives its real addresses. Each child's standard error
//! (its log) goes to a file beside the config, printed when a test fails.
//!
//! Children are killed when their [`Process`] is dropped. Each one also has
//! a watchdog (`sh` reading a pipe from this process) that kills it if the
//! test binary exits without dropping it, so no `splitgate` outlives the
//! tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::Reply;

mod oauth;
// Not every test binary that includes `support` uses these.
#[allow(unused_imports)]
pub use oauth::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_splitgate");

/// How long a child may take to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Upper bound of any one HTTP call a test makes to a child.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the processes keep their state.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// One Redis: `store.url`.
    Redis(String),
    /// A Redis Cluster's seed nodes: `store.cluster`.
    Cluster(Vec<String>),
}

/// One tenant of the generated config: `hosts = ["<id>.test"]`.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    pub id: String,
    pub host: String,
    /// The back-office prefix (`/admin`, `/backoffice`).
    pub prefix: String,
}

impl TenantInfo {
    /// A proxied back-office API path.
    pub fn backoffice_api(&self) -> String {
        format!("{}/api/users", self.prefix)
    }

    /// A proxied storefront API path.
    pub fn storefront_api(&self) -> String {
        "/api/users".into()
    }
}

/// What goes into the shared config.
#[derive(Debug, Clone)]
pub struct Setup {
    pub store: StoreAt,
    /// Every tenant's `upstream` (the test's demo backend).
    pub upstream: String,
    /// Tenant ids; the first gets RS256 and `/admin`, the second ES256 and
    /// `/backoffice`, any further EdDSA and `/admin`.
    pub tenants: Vec<String>,
    /// Lines for `[gateway]` (`jwks_refresh = "1s"` is always set).
    pub gateway: String,
    /// Lines for `[issuer]` (`key_publish_delay = "2s"` unless given here).
    pub issuer: String,
    /// Lines added to every `[tenants.*]` table.
    pub tenant: String,
    /// `store.timeout`.
    pub store_timeout: String,
}

impl Setup {
    /// Two tenants (`acme`, `globex`) on `store`, short test timings.
    pub fn new(store: StoreAt, upstream: &str) -> Setup {
        Setup {
            store,
            upstream: upstream.to_owned(),
            tenants: vec!["acme".into(), "globex".into()],
            gateway: String::new(),
            issuer: String::new(),
            tenant: String::new(),
            store_timeout: "500ms".into(),
        }
    }
}

/// One generated config, shared by every process of a test.
pub struct Deployment {
    /// Shared with every [`Process`], whose log lives in it.
    dir: std::sync::Arc<tempfile::TempDir>,
    path: PathBuf,
    pub admin_token: String,
    pub tenants: Vec<TenantInfo>,
}

impl Deployment {
    pub fn new(setup: &Setup) -> Deployment {
        let dir = tempfile::Builder::new()
            .prefix("splitgate-procs-")
            .tempdir()
            .expect("temp dir");
        let admin_token = splitgate_shared::secrets::random_token();
        let encryption_key = splitgate_shared::keys::kek::Kek::generate_base64();
        let store = match &setup.store {
            StoreAt::Redis(url) => format!("url = {url:?}"),
            StoreAt::Cluster(urls) => format!("cluster = {urls:?}"),
        };
        let mut toml = format!(
            "[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [admin]\ntoken = {admin_token:?}\n\n\
             [store]\nbackend = \"redis\"\ndata_dir = {data:?}\n{store}\n\
             encryption_key = {encryption_key:?}\ntimeout = {timeout:?}\n\n\
             [gateway]\njwks_refresh = \"1s\"\n{gateway}\n\n\
             [issuer]\n{issuer}\n",
            data = dir.path().join("data").display().to_string(),
            timeout = setup.store_timeout,
            gateway = setup.gateway,
            issuer = if setup.issuer.contains("key_publish_delay") {
                setup.issuer.clone()
            } else {
                format!("key_publish_delay = \"2s\"\n{}", setup.issuer)
            },
        );
        let mut tenants = Vec::new();
        for (i, id) in setup.tenants.iter().enumerate() {
            let (alg, prefix) = match i {
                0 => ("RS256", "/admin"),
                1 => ("ES256", "/backoffice"),
                _ => ("EdDSA", "/admin"),
            };
            let host = format!("{id}.test");
            toml.push_str(&format!(
                "\n[tenants.{id}]\nhosts = [{host:?}]\nbase_url = \"http://{host}\"\n\
                 backend_prefix = {prefix:?}\nsigning_alg = {alg:?}\nupstream = {up:?}\n{extra}\n",
                up = setup.upstream,
                extra = setup.tenant,
            ));
            tenants.push(TenantInfo {
                id: id.clone(),
                host,
                prefix: prefix.into(),
            });
        }
        let path = dir.path().join("splitgate.toml");
        std::fs::write(&path, toml).expect("write the config");
        Deployment {
            dir: std::sync::Arc::new(dir),
            path,
            admin_token,
            tenants,
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.path
    }

    pub fn tenant(&self, id: &str) -> &TenantInfo {
        self.tenants
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
    }

    /// `splitgate issuer`.
    pub async fn issuer(&self, name: &str) -> Process {
        self.start(name, "issuer", &[]).await
    }

    /// `splitgate gateway` in front of `issuer`, ready (keys loaded, store
    /// reachable).
    pub async fn gateway(&self, name: &str, issuer: &Process, env: &[(&str, &str)]) -> Process {
        let url = issuer.public_url();
        let mut all = vec![("SPLITGATE_GATEWAY__ISSUER_URL", url.as_str())];
        all.extend_from_slice(env);
        let gateway = self.start(name, "gateway", &all).await;
        gateway.wait_ready().await;
        gateway
    }

    /// Spawns `splitgate <mode>` with `env` on top of the config and waits
    /// until it serves; panics with its log if it exits first.
    pub async fn start(&self, name: &str, mode: &str, env: &[(&str, &str)]) -> Process {
        match self.try_start(name, mode, env).await {
            Ok(process) => process,
            Err(exit) => panic!("{name} ({mode}) did not start: {exit}"),
        }
    }

    /// Like [`start`](Self::start), but an early exit is returned.
    pub async fn try_start(
        &self,
        name: &str,
        mode: &str,
        env: &[(&str, &str)],
    ) -> Result<Process, Exit> {
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("create the log file");
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&self.path)
            .arg(mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // Only what the test sets: nothing from the environment running it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SPLITGATE_") {
                command.env_remove(key);
            }
        }
        command.env("SPLITGATE_LOG__FILTER", "warn");
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("spawn splitgate");
        let (watchdog, watchdog_pipe) = watchdog(child.id());
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || read_stdout(stdout, tx));
        let mut process = Process {
            name: name.to_owned(),
            child,
            watchdog: Some((watchdog, watchdog_pipe)),
            public: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log_path,
            _dir: self.dir.clone(),
            admin_token: self.admin_token.clone(),
            hosts: self.tenants.iter().map(|t| t.host.clone()).collect(),
            http: reqwest::Client::new(),
        };
        let line = tokio::time::timeout(START_DEADLINE, rx).await;
        let Ok(Ok(line)) = line else {
            let code = wait_exit(&mut process.child);
            return Err(Exit {
                code,
                log: process.log(),
            });
        };
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=http://")))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name} address in {line:?}"))
        };
        process.public = field("public");
        process.admin = field("admin");
        process.http = client(process.public, &process.hosts);
        Ok(process)
    }

    /// Runs the CLI (`splitgate --config ... --admin-url <admin> <args>`).
    pub async fn cli(&self, admin: &Process, args: &[&str]) -> std::process::Output {
        let mut command = tokio::process::Command::new(BIN);
        command
            .arg("--config")
            .arg(&self.path)
            .arg("--admin-url")
            .arg(format!("http://{}", admin.admin))
            .args(args)
            .env("SPLITGATE_LOG__FILTER", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(CALL_TIMEOUT, command.output())
            .await
            .expect("the CLI answers in time")
            .expect("run the CLI")
    }
}

/// Reads the child's standard output: the first line is the listening
/// line; the rest is drained so that the child never writes to a closed
/// pipe.
fn read_stdout(stdout: std::process::ChildStdout, tx: tokio::sync::oneshot::Sender<String>) {
    let mut lines = BufReader::new(stdout).lines();
    let mut tx = Some(tx);
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("splitgate ")
            && line.contains(" listening: ")
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(line);
        }
    }
}

/// The exit status of a child that has stopped or is about to (killed
/// after a grace period otherwise).
fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sh` waiting for its stdin to close (this process exiting without
/// dropping the [`Process`]), then killing `pid`.
fn watchdog(pid: u32) -> (Child, ChildStdin) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"read _; kill -9 "$1" 2>/dev/null"#)
        .arg("watchdog")
        .arg(pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the watchdog (sh)");
    let pipe = child.stdin.take().expect("watchdog stdin");
    (child, pipe)
}

/// A reqwest client that reaches every tenant host at `addr`.
fn client(addr: SocketAddr, hosts: &[String]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(CALL_TIMEOUT);
    for host in hosts {
        builder = builder.resolve(host, addr);
    }
    builder.build().expect("client")
}

/// A child that exited before serving.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub log: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {:?}; its log:\n{}", self.code, self.log)
    }
}

/// A running `splitgate` child.
pub struct Process {
    pub name: String,
    child: Child,
    watchdog: Option<(Child, ChildStdin)>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
    _dir: std::sync::Arc<tempfile::TempDir>,
    admin_token: String,
    hosts: Vec<String>,
    http: reqwest::Client,
}

impl Process {
    pub fn public_url(&self) -> String {
        format!("http://{}", self.public)
    }

    /// `http://<host>:<port><path>` on the public listener.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.public.port())
    }

    /// What the child has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the child is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn assert_running(&mut self) {
        assert!(
            self.is_running(),
            "{} exited: {:?}; its log:\n{}",
            self.name,
            self.child.try_wait(),
            self.log()
        );
    }

    /// GET on the public listener, with a bearer token if given.
    pub async fn get(&self, host: &str, path: &str, bearer: Option<&str>) -> Reply {
        let mut req = self.http.get(self.url(host, path));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        Reply::from(req.send().await.expect("GET")).await
    }

    /// A form POST on the public listener (token, revoke, introspect), with
    /// the client's credentials in the body.
    pub async fn post_form(&self, host: &str, path: &str, form: &[(&str, &str)]) -> Reply {
        let req = self.http.post(self.url(host, path)).form(form);
        Reply::from(req.send().await.expect("POST")).await
    }

    /// The token endpoint.
    pub async fn token(&self, host: &str, form: &[(&str, &str)]) -> Reply {
        self.post_form(host, "/oauth2-token", form).await
    }

    /// The tenant's JWKS `kid`s, as this process serves them.
    pub async fn jwks_kids(&self, host: &str) -> Vec<String> {
        let reply = self.get(host, "/.well-known/jwks.json", None).await;
        assert_eq!(reply.status, 200, "{}: JWKS: {}", self.name, reply.text);
        let mut kids: Vec<String> = reply.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect();
        kids.sort();
        kids
    }

    /// GET on the admin listener without a token (`/readyz`, ...).
    pub async fn probe(&self, path: &str) -> u16 {
        match self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await
        {
            Ok(res) => res.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Waits until `/readyz` answers 200 (for a gateway: keys fetched and
    /// store reachable).
    pub async fn wait_ready(&self) {
        super::eventually(&format!("{} ready", self.name), START_DEADLINE, || async {
            (self.probe("/readyz").await == 200).then_some(())
        })
        .await;
    }

    /// Calls the admin API with the admin token.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.admin))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("admin call");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a client through the admin API: (client_id, client_secret).
    pub async fn create_client(&self, tenant: &str, side: &str) -> (String, String) {
        let body = serde_json::json!({"side": side, "name": format!("{side} app")});
        let (status, created) = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/tenants/{tenant}/clients"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "create client: {created}");
        (
            created["client_id"].as_str().expect("client_id").to_owned(),
            created["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        )
    }

    /// Creates a user through the admin API.
    pub async fn create_user(&self, tenant: &str, side: &str, username: &str, password: &str) {
        let body = serde_json::json!({"side": side, "username": username, "password": password});
        let (status, created) = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/tenants/{tenant}/users"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "create user: {created}");
    }

    /// Stops the child now (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.disarm_watchdog();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The watchdog must go first: once the child is reaped, its pid may
    /// be reused.
    fn disarm_watchdog(&mut self) {
        if let Some((mut watchdog, pipe)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(pipe);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- log of {} (last lines) ----", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
