//! The splitgate issuer: mints audience-scoped access tokens for one side of
//! one tenant at a time (DESIGN §3, §4), and keeps what those tokens depend
//! on: clients, users, visitors, refresh families, revocations and signing
//! keys, all in the [`Store`].
//!
//! [`Issuer::start`] loads (or creates) every tenant's keys and starts the
//! background work (key maintenance, following other issuers' key changes);
//! [`Issuer::public_service`] and [`Issuer::admin_service`] are the two HTTP
//! faces. The issuer never reads the environment and never binds a socket:
//! the binary's wiring does that (`src/run.rs`).

mod access;
mod admin;
mod authorize;
pub mod clients;
mod error;
mod grants;
mod introspect;
pub mod keyring;
mod metadata;
mod metrics;
mod params;
mod public;
mod redirect;
mod refresh;
mod scope;
mod tokens;
pub mod users;
mod visitors;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use splitgate_shared::config::IssuerConfig;
use splitgate_shared::http::{Body, HttpService};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::keys::kek::Kek;
use splitgate_shared::revocation::RevocationView;
use splitgate_shared::secrets::Secret;
use splitgate_shared::store::{Change, Notice, Store};
use splitgate_shared::{Tenants, config};
use tower::util::BoxCloneSyncService;

pub use keyring::KeyRingError;

/// What the issuer is built from.
pub struct IssuerParts {
    pub config: IssuerConfig,
    pub tenants: Tenants,
    pub store: Store,
    /// Unseals the signing keys (see [`load_kek`]).
    pub kek: Kek,
    /// Where the tenants' public keys are published; in `serve` mode the
    /// gateway reads the same instance.
    pub keys: Arc<PublishedKeys>,
    /// The revocation view, kept current by `revocation::follow` (started
    /// by the wiring); revocations made here are applied to it at once.
    pub revocations: Arc<RevocationView>,
    /// The admin API's bearer token.
    pub admin_token: Secret,
}

/// Everything a request handler needs, shared behind one `Arc`.
pub(crate) struct Ctx {
    config: IssuerConfig,
    tenants: Tenants,
    store: Store,
    keys: keyring::KeyRing,
    passwords: users::Passwords,
    revocations: Arc<RevocationView>,
    admin_token: Secret,
    metrics: metrics::Metrics,
}

/// A running issuer. Cheap to clone.
#[derive(Clone)]
pub struct Issuer {
    ctx: Arc<Ctx>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("signing keys: {0}")]
    Keys(#[from] KeyRingError),
    #[error("password hashing: {0}")]
    Passwords(#[from] users::UserError),
}

impl Issuer {
    /// Loads or creates every tenant's signing keys, publishes them, and
    /// starts the background tasks. Fails when the store cannot be read or
    /// the keys do not open with this key-encryption key.
    pub async fn start(parts: IssuerParts) -> Result<Issuer, StartError> {
        let keys = keyring::KeyRing::new(
            parts.store.clone(),
            parts.kek,
            parts.keys,
            parts.config.key_publish_delay,
            parts.config.verifier_leeway,
        );
        keys.start(&parts.tenants).await?;
        let ctx = Arc::new(Ctx {
            passwords: users::Passwords::new(parts.config.password_hash_concurrency)?,
            config: parts.config,
            tenants: parts.tenants,
            store: parts.store,
            keys,
            revocations: parts.revocations,
            admin_token: parts.admin_token,
            metrics: metrics::Metrics::default(),
        });
        tokio::spawn(maintain_keys(Arc::downgrade(&ctx)));
        tokio::spawn(follow_key_changes(
            Arc::downgrade(&ctx),
            ctx.store.subscribe(),
        ));
        Ok(Issuer { ctx })
    }

    /// Token, revocation, introspection, metadata and JWKS endpoints.
    pub fn public_service(&self) -> HttpService {
        BoxCloneSyncService::new(Face {
            ctx: self.ctx.clone(),
            admin: false,
        })
    }

    /// The admin API with `/healthz`, `/readyz` and `/metrics`.
    pub fn admin_service(&self) -> HttpService {
        BoxCloneSyncService::new(Face {
            ctx: self.ctx.clone(),
            admin: true,
        })
    }

    /// The key ring (benchmarks sign with it directly to measure the
    /// signing ceiling).
    pub fn signer(&self, tenant: &str) -> Option<Arc<splitgate_shared::keys::SigningKey>> {
        self.ctx.keys.signer(tenant)
    }
}

/// One of the issuer's two HTTP faces as a tower service.
#[derive(Clone)]
struct Face {
    ctx: Arc<Ctx>,
    admin: bool,
}

impl tower::Service<http::Request<Body>> for Face {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let ctx = self.ctx.clone();
        if self.admin {
            Box::pin(async move { Ok(admin::handle(ctx, req).await) })
        } else {
            Box::pin(async move { Ok(public::handle(ctx, req).await) })
        }
    }
}

/// Republishes keys as time moves them through their life, and drops the
/// expired ones. Ends with the issuer.
async fn maintain_keys(ctx: std::sync::Weak<Ctx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ctx) = ctx.upgrade() else { return };
        ctx.keys.maintain(&ctx.tenants).await;
    }
}

/// Reloads a tenant's keys when another issuer changed them, and every
/// tenant's after a reconnect.
async fn follow_key_changes(
    ctx: std::sync::Weak<Ctx>,
    mut events: splitgate_shared::store::Subscription,
) {
    while let Some(notice) = events.next().await {
        let Some(ctx) = ctx.upgrade() else { return };
        let tenants: Vec<_> = match &notice {
            Notice::Event(e) if e.change == Change::KeysChanged => {
                ctx.tenants.by_id(&e.tenant).into_iter().cloned().collect()
            }
            Notice::Resync => ctx.tenants.iter().cloned().collect(),
            _ => continue,
        };
        for tenant in tenants {
            if let Err(e) = ctx.keys.reload(&tenant).await {
                tracing::warn!(cause = %e, tenant = %tenant.id, "could not reload signing keys");
            }
        }
    }
}

/// The key-encryption key: `store.encryption_key` when set, else the file
/// `key-encryption-key` in the data directory, created (0600) at first
/// start.
pub fn load_kek(store: &config::StoreConfig) -> Result<Kek, String> {
    let text = match &store.encryption_key {
        Some(k) => k.clone(),
        None => splitgate_shared::secrets::load_or_create_secret_file(
            &store.data_dir.join("key-encryption-key"),
            Kek::generate_base64,
        )
        .map_err(|e| {
            format!(
                "{}: {e}",
                store.data_dir.join("key-encryption-key").display()
            )
        })?,
    };
    Kek::from_base64(text.expose()).map_err(|e| e.to_string())
}
