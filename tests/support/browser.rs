//! The user agents the authorize tests drive the login and consent pages
//! with: [`Agent`], plain HTTP with a cookie jar (forms are posted by hand,
//! their tokens read out of the HTML), and [`Browser`], real headless
//! Chromium through chromedriver (WebDriver, via `fantoccini`). Also the
//! client's side of a redirect: [`Callback`], a tiny server on 127.0.0.1
//! that records what reaches its redirect URI.
//!
//! The browser is never optional: a missing `chromium` or `chromedriver`
//! fails the test with the command that installs them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use splitgate::demo::DemoBackend;
use splitgate::run::Mode;
use splitgate_shared::http::{Response, ServerOptions, full, serve, service_fn};
use splitgate_shared::secrets::{hash_secret, random_token};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{Reply, Server, eventually};

/// Debian's paths; `SPLITGATE_CHROMIUM` and `SPLITGATE_CHROMEDRIVER`
/// override them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install chromium chromium-driver";

/// A PKCE verifier and its S256 challenge (BASE64URL(SHA-256(verifier)),
/// which is exactly how the store hashes secrets).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = random_token();
    Pkce {
        challenge: hash_secret(&verifier),
        verifier,
    }
}

/// `http://{host}:{port}{path}?{pairs}`, form-encoded.
pub fn url_with(server: &Server, host: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url(host, path)).unwrap_or_else(|e| panic!("{e}"));
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    url.to_string()
}

/// The `value` of the first `<input name="{name}">` of a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// The query parameters of a URL, in order.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .into_owned()
        .collect()
}

/// One query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A cookie as the agent keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub host: String,
    pub name: String,
    pub value: String,
    pub path: String,
    /// The whole `Set-Cookie` line it came from, for asserting attributes.
    pub raw: String,
}

/// A minimal browser over plain HTTP: keeps cookies per host and path,
/// follows no redirects, and remembers every `Set-Cookie` it saw.
pub struct Agent {
    http: reqwest::Client,
    pub jar: Vec<Cookie>,
}

impl Agent {
    pub fn new(server: &Server) -> Agent {
        Agent {
            http: server.http.clone(),
            jar: Vec::new(),
        }
    }

    fn cookie_header(&self, url: &url::Url) -> Option<String> {
        let host = url.host_str()?;
        let path = url.path();
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|c| {
                c.host == host
                    && (path == c.path
                        || path
                            .strip_prefix(c.path.as_str())
                            .is_some_and(|rest| rest.starts_with('/')))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep_cookies(&mut self, url: &url::Url, reply: &Reply) {
        let host = url.host_str().unwrap_or_default().to_owned();
        for line in reply.headers.get_all("set-cookie") {
            let raw = line.to_str().expect("ASCII Set-Cookie").to_owned();
            let mut parts = raw.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|p| p.split_once('='))
                .expect("name=value");
            let mut path = "/".to_owned();
            let mut gone = false;
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                if k.eq_ignore_ascii_case("path") {
                    path = v.to_owned();
                }
                if k.eq_ignore_ascii_case("max-age") && v == "0" {
                    gone = true;
                }
            }
            self.jar
                .retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !gone {
                self.jar.push(Cookie {
                    host: host.clone(),
                    name: name.to_owned(),
                    value: value.to_owned(),
                    path,
                    raw: raw.clone(),
                });
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Reply {
        let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let req = match self.cookie_header(&parsed) {
            Some(cookies) => req.header("cookie", cookies),
            None => req,
        };
        let reply = Reply::from(req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"))).await;
        self.keep_cookies(&parsed, &reply);
        reply
    }

    pub async fn get(&mut self, url: &str) -> Reply {
        let req = self.http.get(url);
        self.send(req, url).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Reply {
        let req = self.http.post(url).form(form);
        self.send(req, url).await
    }

    /// The session cookie of a host, if any.
    pub fn session(&self, host: &str) -> Option<&Cookie> {
        self.jar
            .iter()
            .find(|c| c.host == host && c.name == "sg_session")
    }
}

/// One side of a tenant as the tests reach it.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    pub host: &'static str,
    pub tenant: &'static str,
    /// `backoffice` or `storefront`.
    pub name: &'static str,
    /// `""` for the storefront, the backend prefix for the back office.
    pub prefix: &'static str,
    /// What the login form asks for, and the kind of token it yields.
    pub login: &'static str,
    pub kind: &'static str,
}

pub const ACME_BACKOFFICE: Side = Side {
    host: "acme.test",
    tenant: "acme",
    name: "backoffice",
    prefix: "/admin",
    login: "ann",
    kind: "user",
};
pub const ACME_STOREFRONT: Side = Side {
    host: "acme.test",
    tenant: "acme",
    name: "storefront",
    prefix: "",
    login: "cat@example.com",
    kind: "customer",
};
pub const GLOBEX_BACKOFFICE: Side = Side {
    host: "globex.test",
    tenant: "globex",
    name: "backoffice",
    prefix: "/backoffice",
    login: "gus",
    kind: "user",
};

pub const PASSWORD: &str = "correct horse battery";

impl Side {
    pub fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    pub fn authorize(&self, server: &Server, pairs: &[(&str, &str)]) -> String {
        url_with(
            server,
            self.host,
            &self.path("/oauth2-token/authorize"),
            pairs,
        )
    }

    pub fn iss(&self) -> String {
        let scheme = if self.tenant == "globex" {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{}/oauth2-server", self.host, self.prefix)
    }

    pub fn aud(&self) -> String {
        self.iss().replace("/oauth2-server", "/api")
    }

    /// Creates the side's login user.
    pub async fn user(&self, server: &Server) {
        server
            .user(self.tenant, self.name, self.login, PASSWORD)
            .await;
    }

    /// Posts a login form shown in `page`.
    pub async fn login(
        &self,
        server: &Server,
        agent: &mut Agent,
        page: &Reply,
        username: &str,
        password: &str,
    ) -> Reply {
        let url = server.url(self.host, &self.path("/oauth2-token/authorize/login"));
        let (csrf, form) = (hidden(&page.text, "csrf"), hidden(&page.text, "form"));
        agent
            .post(
                &url,
                &[
                    ("csrf", &csrf),
                    ("form", &form),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await
    }

    /// Posts the consent form shown in `page` with `decision`.
    pub async fn decide(
        &self,
        server: &Server,
        agent: &mut Agent,
        page: &Reply,
        decision: &str,
    ) -> Reply {
        let url = server.url(self.host, &self.path("/oauth2-token/authorize/consent"));
        let (csrf, form) = (hidden(&page.text, "csrf"), hidden(&page.text, "form"));
        agent
            .post(
                &url,
                &[("csrf", &csrf), ("form", &form), ("decision", decision)],
            )
            .await
    }

    /// Follows a relative `Location` (the return to authorize after login).
    pub async fn follow(&self, server: &Server, agent: &mut Agent, reply: &Reply) -> Reply {
        let location = reply.header("location").expect("a Location");
        assert!(location.starts_with('/'), "{location}");
        agent.get(&server.url(self.host, location)).await
    }

    /// Logs in and allows: from the authorize URL to the client's redirect
    /// (its `Location`).
    pub async fn approve(&self, server: &Server, agent: &mut Agent, authorize: &str) -> String {
        let page = agent.get(authorize).await;
        assert_eq!(page.status, 200, "login page: {}", page.text);
        let after_login = self.login(server, agent, &page, self.login, PASSWORD).await;
        assert_eq!(after_login.status, 303, "login: {}", after_login.text);
        let consent = self.follow(server, agent, &after_login).await;
        assert_eq!(consent.status, 200, "consent page: {}", consent.text);
        let allowed = self.decide(server, agent, &consent, "allow").await;
        assert_eq!(allowed.status, 303, "consent: {}", allowed.text);
        allowed.header("location").expect("Location").to_owned()
    }
}

// The client's side of the flow, shared by the authorize tests.

/// The registered redirect URI, and the one sent (loopback: any port).
pub const REGISTERED: &str = "http://127.0.0.1/callback";
pub const REDIRECT: &str = "http://127.0.0.1:45678/callback";

/// `serve` with the demo JSON:API backend as every tenant's upstream.
pub async fn start_with_backend(extra: &str) -> (Server, DemoBackend) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = DemoBackend::start(listener).expect("demo backend");
    let s = Server::start_with(Mode::Serve, extra, &backend.url(), None).await;
    (s, backend)
}

/// A public code-flow client of `side` (scopes `read` and `write`, the
/// loopback redirect URI), with `extra` fields.
pub async fn app(s: &Server, side: &Side, extra: Value) -> String {
    let mut body = json!({
        "side": side.name,
        "name": format!("{} app", side.name),
        "public": true,
        "redirect_uris": [REGISTERED],
        "scopes": ["read", "write"],
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    s.client(side.tenant, body).await.0
}

/// An authorization request for scope `read` with an S256 challenge.
pub fn code_request<'a>(
    client_id: &'a str,
    challenge: &'a str,
    state: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", state),
        ("scope", "read"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Exchanges a code at the token endpoint as a public client.
pub async fn exchange(
    s: &Server,
    side: &Side,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> Reply {
    s.token(
        side.host,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

/// The gateway's status for `GET <side>/api/orders` with `token`.
pub async fn api_status(s: &Server, side: &Side, token: &str) -> u16 {
    s.http
        .get(s.url(side.host, &side.path("/api/orders")))
        .bearer_auth(token)
        .send()
        .await
        .expect("gateway call")
        .status()
        .as_u16()
}

/// Where test output (screenshots) goes: `target/test-output/`.
pub fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-output");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A client's redirect URI: records every request's path and query.
pub struct Callback {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
}

impl Callback {
    pub async fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let service = service_fn(move |req: splitgate_shared::http::Request<_>| {
            let log = log.clone();
            async move {
                let target = req.uri().path_and_query().map(|p| p.to_string());
                log.lock().unwrap().extend(target);
                let mut res = Response::new(full(
                    "<!doctype html><title>Callback</title><p>Signed in; back in the app.</p>",
                ));
                res.headers_mut()
                    .insert("content-type", "text/html".parse().unwrap());
                res
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, service, ServerOptions::default(), async {
            let _ = stopped.await;
        }));
        Callback {
            addr,
            seen,
            _stop: stop,
        }
    }

    /// The redirect URI to send: the registered `http://127.0.0.1/callback`
    /// with this server's port (RFC 8252 loopback rule).
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.addr.port())
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Headless Chromium driven through a chromedriver this test started.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// The binary at `default`, or at `$var`; a missing one fails the test.
fn require(var: &str, default: &str) -> String {
    let binary = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&binary).exists(),
        "{binary} is missing: the browser tests need Chromium and ChromeDriver \
         (Debian: `{INSTALL}`)"
    );
    binary
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session; every host
    /// in `hosts` resolves to 127.0.0.1 inside the browser.
    pub async fn start(hosts: &[&str]) -> Browser {
        let chromium = require("SPLITGATE_CHROMIUM", CHROMIUM);
        let chromedriver = require("SPLITGATE_CHROMEDRIVER", CHROMEDRIVER);
        let port = free_port();
        let log = output_dir().join("chromedriver.log");
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{chromedriver} does not start ({e}); `{INSTALL}`"));
        let webdriver = format!("http://127.0.0.1:{port}");
        wait_ready(&webdriver).await;
        let profile = tempfile::tempdir().expect("profile dir");
        let rules = hosts
            .iter()
            .map(|h| format!("MAP {h} 127.0.0.1"))
            .collect::<Vec<_>>()
            .join(",");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-proxy-server",
                    "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
                    format!("--host-resolver-rules={rules}"),
                    format!("--user-data-dir={}", profile.path().display()),
                    // A phone-sized window: the screenshots show the pages
                    // as a phone would.
                    "--window-size=412,915",
                ],
                // The pages must work without JavaScript: the browser runs
                // with it switched off for pages.
                "prefs": {"profile.managed_default_content_settings.javascript": 2},
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| {
                panic!("no Chromium session through {chromedriver} ({e}); `{INSTALL}`")
            });
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Saves a screenshot of the current page under `target/test-output/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = output_dir().join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        path
    }

    /// Waits until the browser's URL satisfies `done`.
    pub async fn wait_for_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        eventually(what, Duration::from_secs(15), || async {
            let url = self.client.current_url().await.ok()?;
            done(url.as_str()).then(|| url.to_string())
        })
        .await
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

async fn wait_ready(webdriver: &str) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let status = format!("{webdriver}/status");
    eventually(
        "chromedriver answers /status",
        Duration::from_secs(20),
        || {
            let http = http.clone();
            let status = status.clone();
            async move {
                let body: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                (body["value"]["ready"] == true).then_some(())
            }
        },
    )
    .await;
}
