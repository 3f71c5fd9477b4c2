//! Keys for a gateway that runs alone (`splitgate gateway`, DESIGN §5):
//! each tenant's JWKS is fetched from the issuer
//! (`GET <issuer_url>/.well-known/jwks.json` with the tenant's `Host`),
//! refetched every `gateway.jwks_refresh`, and refetched at once when a
//! token names a `kid` the gateway does not know, at most once every
//! [`JwksFetcher::MIN_INTERVAL`] per tenant so that made-up `kid`s cannot
//! turn the gateway against the issuer. A failed fetch keeps the last good
//! set: an issuer outage does not stop the gateway from verifying.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::JwkSet;
use splitgate_shared::Tenants;
use splitgate_shared::config::GatewayConfig;
use splitgate_shared::http::{BoxError, empty, read_body_limited};
use splitgate_shared::keys::{KeySet, PublishedKeys};
use tokio::sync::mpsc;

use crate::GatewayError;
use crate::proxy::client::{self, UpstreamClient, Versions};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why one fetch failed (logged; the last good set stays).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the issuer could not be reached: {0}")]
    Unreachable(String),
    #[error("the issuer did not answer in time")]
    Timeout,
    #[error("the issuer answered {0}")]
    Status(StatusCode),
    #[error("the JWKS document is unreadable: {0}")]
    Document(String),
    #[error("the tenant has no host to ask for")]
    NoHost,
}

/// Fetches and refreshes every tenant's JWKS into [`PublishedKeys`].
/// Cheap to clone; all clones share one state and one refresh queue.
#[derive(Clone)]
pub struct JwksFetcher {
    inner: Arc<Inner>,
}

struct Inner {
    jwks_url: Uri,
    tenants: Tenants,
    keys: Arc<PublishedKeys>,
    refresh: Duration,
    client: UpstreamClient,
    timeout: Duration,
    /// When each tenant last asked for an immediate refresh.
    last_request: Mutex<HashMap<String, Instant>>,
    wake: mpsc::Sender<String>,
    queue: Mutex<Option<mpsc::Receiver<String>>>,
}

impl JwksFetcher {
    /// The smallest gap between two immediate refreshes of one tenant.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

    /// A fetcher with default timeouts and the system CA roots.
    pub fn new(
        issuer_url: Uri,
        tenants: Tenants,
        keys: Arc<PublishedKeys>,
        refresh: Duration,
    ) -> Result<JwksFetcher, GatewayError> {
        let mut config = splitgate_shared::Config::defaults().gateway;
        config.jwks_refresh = refresh;
        JwksFetcher::from_config(issuer_url, tenants, keys, &config)
    }

    /// A fetcher with the gateway's refresh period, timeouts and
    /// `upstream_ca`.
    pub fn from_config(
        issuer_url: Uri,
        tenants: Tenants,
        keys: Arc<PublishedKeys>,
        config: &GatewayConfig,
    ) -> Result<JwksFetcher, GatewayError> {
        let jwks_url = join(&issuer_url, "/.well-known/jwks.json")
            .ok_or_else(|| GatewayError::IssuerUrl(issuer_url.to_string()))?;
        let (wake, queue) = mpsc::channel(64);
        Ok(JwksFetcher {
            inner: Arc::new(Inner {
                jwks_url,
                tenants,
                keys,
                refresh: config.jwks_refresh,
                client: client::build(config, Versions::Http1)?,
                timeout: config.upstream_timeout,
                last_request: Mutex::default(),
                wake,
                queue: Mutex::new(Some(queue)),
            }),
        })
    }

    /// Fetches every tenant now, then keeps them fresh: periodically and on
    /// [`request_refresh`](Self::request_refresh). Run it as a task; it
    /// returns only if called twice (the second call has nothing to do).
    pub async fn run(self) {
        let queue = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut queue) = queue else {
            tracing::warn!("JwksFetcher::run called twice; the second call returns");
            return;
        };
        self.refresh_all().await;
        let period = self.inner.refresh;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.refresh_all().await;
                }
                Some(tenant) = queue.recv() => {
                    self.refresh_logged(&tenant).await;
                }
            }
        }
    }

    /// Asks for an immediate refetch of `tenant_id`'s keys (a token named a
    /// `kid` we do not have). Ignored if the tenant asked less than
    /// [`MIN_INTERVAL`](Self::MIN_INTERVAL) ago; `true` if queued.
    pub fn request_refresh(&self, tenant_id: &str) -> bool {
        let now = Instant::now();
        {
            let mut last = self
                .inner
                .last_request
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last
                .get(tenant_id)
                .is_some_and(|at| now.duration_since(*at) < Self::MIN_INTERVAL)
            {
                return false;
            }
            last.insert(tenant_id.to_owned(), now);
        }
        self.inner.wake.try_send(tenant_id.to_owned()).is_ok()
    }

    /// Fetches every tenant once; the number whose keys are now published
    /// and current.
    pub async fn refresh_all(&self) -> usize {
        let mut ok = 0;
        for tenant in self.inner.tenants.iter() {
            if self.refresh_logged(&tenant.id).await {
                ok += 1;
            }
        }
        ok
    }

    async fn refresh_logged(&self, tenant_id: &str) -> bool {
        match self.refresh(tenant_id).await {
            Ok(changed) => {
                if changed {
                    tracing::info!(tenant = tenant_id, "fetched new signing keys");
                }
                true
            }
            Err(e) => {
                tracing::warn!(tenant = tenant_id, cause = %e, "could not fetch the JWKS; keeping the last good keys");
                false
            }
        }
    }

    /// Fetches one tenant's JWKS; `Ok(true)` if the published set changed.
    pub async fn refresh(&self, tenant_id: &str) -> Result<bool, FetchError> {
        let inner = &self.inner;
        let host = inner
            .tenants
            .by_id(tenant_id)
            .and_then(|t| t.hosts.first())
            .ok_or(FetchError::NoHost)?;
        let req = Request::get(inner.jwks_url.clone())
            .header(header::HOST, host.as_str())
            .header(header::ACCEPT, "application/json")
            .body(empty())
            .map_err(|e| FetchError::Document(e.to_string()))?;
        let fetch = async {
            let response = inner
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Unreachable(e.to_string()))?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(response.status()));
            }
            let length = splitgate_shared::http::content_length(response.headers());
            let body = response
                .into_body()
                .map_err(|e| -> BoxError { Box::new(e) })
                .boxed();
            read_body_limited(body, length, MAX_JWKS_BYTES)
                .await
                .map_err(|e| FetchError::Document(e.to_string()))
        };
        let bytes = tokio::time::timeout(inner.timeout, fetch)
            .await
            .map_err(|_| FetchError::Timeout)??;
        let jwks: JwkSet =
            serde_json::from_slice(&bytes).map_err(|e| FetchError::Document(e.to_string()))?;
        let set = KeySet::from_jwks(&jwks);
        // Republishing an identical set would needlessly empty the
        // verified-token cache, which is keyed by the set.
        if inner
            .keys
            .get(tenant_id)
            .is_some_and(|current| current.json() == set.json())
        {
            return Ok(false);
        }
        inner.keys.set(tenant_id, set);
        Ok(true)
    }
}

fn join(base: &Uri, path: &str) -> Option<Uri> {
    let prefix = base.path().trim_end_matches('/');
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(base.scheme()?.clone());
    parts.authority = Some(base.authority()?.clone());
    parts.path_and_query = Some(format!("{prefix}{path}").parse().ok()?);
    Uri::from_parts(parts).ok()
}
