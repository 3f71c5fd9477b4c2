//! Shared test support: servers started in-process exactly as the binary
//! starts them (real sockets on 127.0.0.1:0), a client that reaches each
//! tenant by its host name, admin helpers, and polling with a deadline.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use splitgate::run::{self, Listeners, Mode, Running};
use splitgate_shared::store::Store;

/// Two tenants with different prefixes and algorithms, so that every test
/// runs against two at once. `{UPSTREAM}` is replaced by the caller's
/// backend address.
pub const TENANTS: &str = r#"
[tenants.acme]
name = "Acme Shop"
hosts = ["acme.test"]
base_url = "http://acme.test"
upstream = "{UPSTREAM}"

[tenants.globex]
name = "Globex"
hosts = ["globex.test"]
base_url = "https://globex.test"
backend_prefix = "/backoffice"
signing_alg = "ES256"
upstream = "{UPSTREAM}"
"#;

pub struct Server {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Server {
    /// `serve` mode, memory store, the two test tenants, plus `extra` TOML.
    pub async fn start(extra: &str) -> Server {
        Self::start_with(Mode::Serve, extra, "http://127.0.0.1:9", None).await
    }

    pub async fn start_with(
        mode: Mode,
        extra: &str,
        upstream: &str,
        store: Option<Store>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            "[store]\nbackend = \"memory\"\ndata_dir = \"{}\"\n{}\n{}",
            dir.path().display(),
            TENANTS.replace("{UPSTREAM}", upstream),
            extra
        );
        let config = splitgate_shared::config::load_str(&toml)
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let listeners = Listeners::ephemeral().await.expect("bind");
        let store = store.unwrap_or_else(Store::memory);
        let running = run::start_with_store(mode, config, listeners, store)
            .await
            .expect("start");
        let http = client_for(running.public);
        Server { running, dir, http }
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.running.public.port())
    }

    pub fn store(&self) -> &Store {
        &self.running.store
    }

    /// Calls the admin API; returns status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = self
            .running
            .admin_token
            .as_ref()
            .expect("admin token")
            .expose()
            .to_owned();
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.running.admin))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("admin call");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a client; returns (client_id, client_secret or "").
    pub async fn client(&self, tenant: &str, body: Value) -> (String, String) {
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
                .unwrap_or_default()
                .to_owned(),
        )
    }

    pub async fn user(&self, tenant: &str, side: &str, username: &str, password: &str) {
        let body = json!({"side": side, "username": username, "password": password});
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/tenants/{tenant}/users"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "create user: {body}");
    }

    /// POSTs a form to the token endpoint of `host`, optionally with HTTP
    /// Basic client authentication.
    pub async fn token(
        &self,
        host: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Reply {
        let mut req = self.http.post(self.url(host, "/oauth2-token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        Reply::from(req.send().await.expect("token request")).await
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// A reqwest client whose every host name resolves to `addr`.
pub fn client_for(addr: SocketAddr) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for host in [
        "acme.test",
        "globex.test",
        "short.test",
        "unknown.test",
        "localhost",
    ] {
        builder = builder.resolve(host, addr);
    }
    builder.build().expect("client")
}

/// What the `oauth2` crate's HTTP hook returns.
pub type OAuth2Future = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>,
>;

/// The `oauth2` crate's HTTP hook, over the server's client (which resolves
/// the tenants' host names to it).
pub fn oauth2_http(server: &Server) -> impl Fn(oauth2::HttpRequest) -> OAuth2Future + use<> {
    let http = server.http.clone();
    move |request: oauth2::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut req = http.request(parts.method, parts.uri.to_string()).body(body);
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let res = req.send().await?;
            let mut out = http::Response::builder().status(res.status());
            for (name, value) in res.headers() {
                out = out.header(name, value);
            }
            Ok(out.body(res.bytes().await?.to_vec()).expect("response"))
        })
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn from(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OAuth error: exact status and the exact body shape.
    pub fn assert_oauth_error(&self, status: u16, error: &str, description: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.json(),
            json!({"error": error, "error_description": description, "message": description}),
            "body"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// The claims of a JWT, unverified (for asserting what was issued).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

pub fn header(jwt: &str) -> Value {
    let head = jwt.split('.').next().expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).expect("base64url")).expect("JSON header")
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Polls `probe` until it yields `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
pub mod process;
pub mod redis;
