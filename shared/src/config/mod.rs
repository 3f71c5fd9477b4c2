//! One typed config tree, loaded once (DESIGN §7, `docs/configuration.md`).
//!
//! [`load`] is the only place that calls figment and the only place that
//! reads `SPLITGATE_` variables. It reports every problem it finds at once,
//! each with its key and the file or variable it came from, and returns a
//! validated [`Config`] that the rest of the program takes by value.

mod file;
mod load;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use load::{ConfigError, ConfigErrors, load, load_file_only, load_str};

use crate::secrets::Secret;
use crate::tenant::Tenant;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub gateway: GatewayConfig,
    pub issuer: IssuerConfig,
    pub log: LogConfig,
    pub tenants: Vec<Tenant>,
}

#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Gateway (and, in `serve` mode, the issuer's public endpoints).
    pub public: SocketAddr,
    /// Admin API, `/healthz`, `/readyz`, `/metrics`.
    pub admin: SocketAddr,
    /// TLS for the public listener; per-tenant certificates are chosen by SNI.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// When `None`, a token is generated into `store.data_dir/admin-token`.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    Embedded,
    Memory,
    Redis,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub data_dir: PathBuf,
    /// One Redis (`backend = "redis"`).
    pub url: Option<String>,
    /// A Redis Cluster's seed nodes (`backend = "redis"`).
    pub cluster: Vec<String>,
    /// 32-byte key-encryption key for signing keys at rest. When `None`, one
    /// is generated into `data_dir/key-encryption-key` (mode 0600).
    pub encryption_key: Option<Secret>,
    /// Upper bound on one store call; past it the call fails with
    /// `temporarily_unavailable` instead of hanging a request.
    pub timeout: Duration,
    /// A PEM CA that `rediss://` servers are verified against, instead of
    /// the system roots.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `splitgate gateway` alone: where issuer endpoints are forwarded and
    /// JWKS fetched from.
    pub issuer_url: Option<http::Uri>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Forward the client's `Authorization` header to the backend.
    pub forward_authorization: bool,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Whole-request deadline (408 before the response starts).
    pub request_timeout: Duration,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    /// Time to the backend's response headers (504 past it).
    pub upstream_timeout: Duration,
    /// A CA (PEM) that https upstreams are verified against, instead of the
    /// system roots (a private PKI for the backends).
    pub upstream_ca: Option<PathBuf>,
    /// Sum of request header bytes (431 past it).
    pub max_header_bytes: usize,
    /// Bearer token length (431 past it).
    pub max_token_bytes: usize,
    /// In-flight requests before load shedding answers 503.
    pub max_concurrent_requests: usize,
    /// How often a separate gateway refetches each tenant's JWKS.
    pub jwks_refresh: Duration,
    /// How long a gateway cut off from the store keeps serving from its last
    /// revocation view.
    pub revocation_max_staleness: Duration,
    /// Past the staleness bound: serve anyway (true) or 503 (false, default).
    pub revocation_fail_open: bool,
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Largest request body the issuer reads (413 past it).
    pub max_body_bytes: usize,
    /// Password hashes computed at once; further logins wait their turn.
    pub password_hash_concurrency: usize,
    /// A rotated-in key is published this long before it signs; longer than
    /// any gateway's `jwks_refresh`.
    pub key_publish_delay: Duration,
    /// Lifetime of a login session cookie on the authorize pages.
    pub login_session_ttl: Duration,
    /// The clock skew gateways allow (`gateway.leeway`): a retired key stays
    /// published this long after its last token's `exp`.
    pub verifier_leeway: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive, e.g. `info,splitgate_gateway=debug`.
    pub filter: String,
    pub format: LogFormat,
}

impl Config {
    /// The configuration with no file and no variables: the defaults of
    /// `docs/configuration.md`, no tenants.
    pub fn defaults() -> Config {
        #[allow(clippy::expect_used)]
        load_str("").expect("the defaults are valid")
    }
}
