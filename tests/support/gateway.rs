//! Support for the gateway's end-to-end tests: the real gateway stack
//! served on a real socket in front of the demo JSON:API backend, with two
//! tenants, their signing keys, a revocation view fed by a memory store's
//! change events, and a stub issuer that records what reaches it.
//!
//! Tokens come from a [`TokenSource`]: [`SignedTokens`] signs them with the
//! tenant's key, with the claims DESIGN §3 gives each kind; a source that
//! runs the issuer's grants can take its place without touching the tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use splitgate::demo::DemoBackend;
use splitgate_shared::config::Config;
use splitgate_shared::http::{Body, HttpService, full, service_fn};
use splitgate_shared::keys::{KeySet, PublishedKeys, SigningAlg, SigningKey};
use splitgate_shared::revocation::RevocationView;
use splitgate_shared::side::{Kind, Side};
use splitgate_shared::store::Store;
use splitgate_shared::{AccessClaims, Tenant, Tenants};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The same two tenants as the other end-to-end tests: different
/// prefixes, algorithms and schemes.
pub const TENANTS: &str = r#"
[tenants.acme]
name = "Acme Shop"
hosts = ["acme.test"]
base_url = "http://acme.test"
upstream = "{UPSTREAM}"
cors_origins = ["https://shop.acme.test"]

[tenants.globex]
name = "Globex"
hosts = ["globex.test"]
base_url = "https://globex.test"
backend_prefix = "/backoffice"
signing_alg = "ES256"
upstream = "{UPSTREAM}"
"#;

/// Every kind of token the matrix uses (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Password or code grant of a back-office user: `sub` = username.
    BackofficeUser,
    /// A storefront customer: `sub` = email.
    Customer,
    /// A storefront guest: `sub` = `visitor:<id>`.
    Guest,
    /// Client credentials of a back-office client: `sub` = client id.
    BackofficeClient,
    /// Client credentials of a storefront client.
    StorefrontClient,
}

impl TokenKind {
    pub const ALL: [TokenKind; 5] = [
        TokenKind::BackofficeUser,
        TokenKind::Customer,
        TokenKind::Guest,
        TokenKind::BackofficeClient,
        TokenKind::StorefrontClient,
    ];

    pub fn side(self) -> Side {
        match self {
            TokenKind::BackofficeUser | TokenKind::BackofficeClient => Side::Backoffice,
            _ => Side::Storefront,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            TokenKind::BackofficeUser => Kind::User,
            TokenKind::Customer => Kind::Customer,
            TokenKind::Guest => Kind::Visitor,
            TokenKind::BackofficeClient | TokenKind::StorefrontClient => Kind::Client,
        }
    }

    /// `(sub, client_id)` as the issuer would set them.
    pub fn subject(self) -> (String, String) {
        match self {
            TokenKind::BackofficeUser => ("admin".into(), "bo-app".into()),
            TokenKind::Customer => ("alice@example.com".into(), "shop-app".into()),
            TokenKind::Guest => ("visitor:v-123".into(), "shop-app".into()),
            TokenKind::BackofficeClient => ("bo-integration".into(), "bo-integration".into()),
            TokenKind::StorefrontClient => ("shop-integration".into(), "shop-integration".into()),
        }
    }
}

/// Where the tests' access tokens come from.
pub trait TokenSource {
    fn token(&self, tenant: &str, kind: TokenKind) -> String;
}

/// Tokens signed with the tenant's current key, claims per DESIGN §3.
pub struct SignedTokens<'a>(pub &'a Gateway);

impl TokenSource for SignedTokens<'_> {
    fn token(&self, tenant: &str, kind: TokenKind) -> String {
        self.0.sign(tenant, &self.0.claims(tenant, kind))
    }
}

/// What the stub issuer saw: (tenant id from the extensions, method, path).
pub type IssuerLog = Arc<Mutex<Vec<(String, String, String)>>>;

/// How to build a [`Gateway`]; the default is the stack in front of the
/// demo backend with a store-fed revocation view and the stub issuer.
pub struct Setup<'a> {
    /// Lines for the `[gateway]` table.
    pub gateway_toml: &'a str,
    /// Whole tables appended after the tenants (`[listen.tls]`, ...).
    pub extra_toml: &'a str,
    /// Every tenant's `upstream`; `{DEMO}` is the demo backend's URL.
    pub upstream: &'a str,
    /// A revocation view of the test's own instead of the store-fed one.
    pub revocations: Option<Arc<RevocationView>>,
    /// An issuer service instead of the stub.
    pub issuer: Option<HttpService>,
    /// Gateway-alone mode: the issuer's URL. Keys then start empty and are
    /// filled by [`Gateway::jwks`] (not yet running), and the issuer's
    /// endpoints are forwarded there.
    pub alone_with_issuer: Option<String>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            gateway_toml: "",
            extra_toml: "",
            upstream: "{DEMO}",
            revocations: None,
            issuer: None,
            alone_with_issuer: None,
        }
    }
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub backend: DemoBackend,
    pub config: Config,
    pub tenants: Tenants,
    pub keys: Arc<PublishedKeys>,
    pub signing: HashMap<String, SigningKey>,
    pub store: Store,
    pub revocations: Arc<RevocationView>,
    pub issuer_log: IssuerLog,
    /// Gateway-alone mode: the fetcher to run.
    pub jwks: Option<splitgate_gateway::JwksFetcher>,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Gateway {
    /// The stack with default settings.
    pub async fn start() -> Gateway {
        Gateway::start_with("").await
    }

    /// The stack with `gateway_toml` lines added to the `[gateway]` table.
    pub async fn start_with(gateway_toml: &str) -> Gateway {
        Gateway::build(Setup {
            gateway_toml,
            ..Setup::default()
        })
        .await
    }

    pub async fn build(setup: Setup<'_>) -> Gateway {
        let backend = DemoBackend::start(bind().await).expect("demo backend");
        let upstream = setup.upstream.replace("{DEMO}", &backend.url());
        let toml = format!(
            "[gateway]\n{}\n{}\n{}",
            setup.gateway_toml,
            TENANTS.replace("{UPSTREAM}", &upstream),
            setup.extra_toml
        );
        let config =
            splitgate_shared::config::load_str(&toml).unwrap_or_else(|e| panic!("config: {e}"));
        let tenants = Tenants::new(config.tenants.clone());
        let keys = PublishedKeys::new();
        let mut signing = HashMap::new();
        for tenant in tenants.iter() {
            let key = SigningKey::generate(tenant.signing_alg).expect("key");
            if setup.alone_with_issuer.is_none() {
                keys.set(&tenant.id, key_set(&[&key]));
            }
            signing.insert(tenant.id.clone(), key);
        }
        let (issuer, jwks) = match &setup.alone_with_issuer {
            Some(url) => {
                let url: http::Uri = url.parse().expect("issuer url");
                let jwks = splitgate_gateway::JwksFetcher::from_config(
                    url.clone(),
                    tenants.clone(),
                    keys.clone(),
                    &config.gateway,
                )
                .expect("fetcher");
                let proxy =
                    splitgate_gateway::issuer_proxy(url, &config.gateway).expect("issuer proxy");
                (Some(proxy), Some(jwks))
            }
            None => (setup.issuer, None),
        };
        let store = Store::memory();
        let revocations = match setup.revocations {
            Some(view) => view,
            None => {
                let view = RevocationView::new();
                tokio::spawn(splitgate_shared::revocation::follow(
                    store.clone(),
                    tenants.iter().map(|t| t.id.clone()).collect(),
                    view.clone(),
                ));
                wait_until("the revocation view syncs", || {
                    tenants.iter().all(|t| view.stale_for_ms(&t.id).is_none())
                })
                .await;
                view
            }
        };
        let issuer_log = IssuerLog::default();
        let parts = splitgate_gateway::GatewayParts {
            config: config.gateway.clone(),
            tenants: tenants.clone(),
            keys: keys.clone(),
            revocations: revocations.clone(),
            issuer: issuer.unwrap_or_else(|| stub_issuer(issuer_log.clone())),
            jwks: jwks.clone(),
        };
        let service = splitgate_gateway::stack(parts).expect("stack");
        let (addr, stop) = serve_on_free_port(service, &config).await;
        Gateway {
            addr,
            backend,
            http: client_for(addr),
            config,
            tenants,
            keys,
            signing,
            store,
            revocations,
            issuer_log,
            jwks,
            _stop: stop,
        }
    }

    pub fn tenant(&self, id: &str) -> &Arc<Tenant> {
        self.tenants.by_id(id).expect("tenant")
    }

    /// `http://<host>:<port><path>`, resolved to the gateway by [`client_for`].
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }

    /// The path of a side's API for a tenant: `/api` or `P/api`.
    pub fn api(&self, tenant: &str, side: Side) -> String {
        self.tenant(tenant).api_path(side)
    }

    /// Valid claims of `kind` for `tenant`, issued now for an hour.
    pub fn claims(&self, tenant: &str, kind: TokenKind) -> AccessClaims {
        let t = self.tenant(tenant);
        let side = kind.side();
        let (sub, client_id) = kind.subject();
        let now = splitgate_shared::time::now_secs();
        AccessClaims {
            iss: t.issuer(side),
            aud: t.audience(side),
            sub,
            client_id,
            exp: now + 3600,
            iat: now,
            nbf: now,
            jti: splitgate_shared::secrets::random_id(),
            scope: if kind.kind() == Kind::Client {
                "orders:read".into()
            } else {
                String::new()
            },
            sid: splitgate_shared::secrets::random_id(),
            kind: kind.kind(),
        }
    }

    pub fn sign(&self, tenant: &str, claims: &AccessClaims) -> String {
        self.signing[tenant].sign_jwt(claims).expect("sign")
    }

    pub fn token(&self, tenant: &str, kind: TokenKind) -> String {
        SignedTokens(self).token(tenant, kind)
    }

    /// GET `path` on `host` with an optional bearer token.
    pub async fn get(&self, host: &str, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.get(self.url(host, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Reply::from(req.send().await.expect("request")).await
    }
}

/// A JWKS-backed key set publishing `keys`.
pub fn key_set(keys: &[&SigningKey]) -> KeySet {
    let jwks = serde_json::json!({
        "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()
    });
    KeySet::from_jwks(&serde_json::from_value(jwks).expect("jwks"))
}

/// A status, headers and body, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// The JSON:API error document the gateway answers with (DESIGN §5).
pub fn error_doc(status: u16, code: &str, title: &str, detail: &str) -> String {
    format!(
        r#"{{"errors":[{{"status":"{status}","code":"{code}","title":"{title}","detail":"{detail}"}}]}}"#
    )
}

/// A stub of the issuer's public endpoints: records the tenant the gateway
/// resolved and answers a small JSON document.
pub fn stub_issuer(log: IssuerLog) -> HttpService {
    service_fn(move |req: http::Request<Body>| {
        let log = log.clone();
        async move {
            let tenant = req
                .extensions()
                .get::<Arc<Tenant>>()
                .map_or_else(|| "<none>".to_owned(), |t| t.id.clone());
            let path = req.uri().path().to_owned();
            log.lock()
                .unwrap()
                .push((tenant.clone(), req.method().to_string(), path.clone()));
            let mut response = http::Response::new(full(
                serde_json::json!({"stub_issuer": true, "tenant": tenant, "path": path})
                    .to_string(),
            ));
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
    })
}

pub async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Serves `service` with the gateway's server options; stops when the
/// returned sender is dropped.
pub async fn serve_on_free_port(
    service: HttpService,
    config: &Config,
) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let tls = splitgate_gateway::public_tls(
        config.listen.tls.as_ref(),
        &Tenants::new(config.tenants.clone()),
    )
    .expect("tls");
    let options = splitgate_gateway::server_options(&config.gateway, tls);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(splitgate_shared::http::serve(
        listener,
        service,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// A client that reaches every test host at `addr`.
pub fn client_for(addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .resolve("acme.test", addr)
        .resolve("globex.test", addr)
        .resolve("unknown.test", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Polls `cond` until it holds, failing after five seconds.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` verbatim (it should say `Connection: close`) and reads
/// the answer to the end: for request targets no client library would
/// send as they are.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the gateway answers in time")
        .expect("read");
    parse_raw(&bytes)
}

/// `GET <target>` with a Host and optional bearer token, over a raw socket.
pub async fn raw_get(addr: SocketAddr, target: &str, host: &str, token: Option<&str>) -> RawReply {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    raw(addr, request.as_bytes()).await
}

fn parse_raw(bytes: &[u8]) -> RawReply {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    RawReply {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A fresh key that no tenant publishes.
pub fn stray_key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg).expect("key")
}
