//! Which service answers on which listener in each mode, and the server
//! options (TLS, header timeout) from config.

use std::sync::Arc;

use anyhow::Context;
use splitgate_gateway::{
    GatewayParts, JwksFetcher, issuer_proxy, public_tls, server_options, stack,
};
use splitgate_issuer::Issuer;
use splitgate_shared::Config;
use splitgate_shared::http::{
    Body, HttpService, Request, Response, ServerOptions, StatusCode, full, header, service_fn,
};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::revocation::RevocationView;
use splitgate_shared::store::Store;
use splitgate_shared::tenant::Tenants;
use tokio::task::JoinHandle;

use super::Mode;

/// The public service, the admin service, and background tasks they need.
pub struct Services {
    pub public: HttpService,
    pub admin: HttpService,
    pub background: Vec<JoinHandle<()>>,
}

pub struct Shared<'a> {
    pub config: &'a Config,
    pub tenants: &'a Tenants,
    pub keys: &'a Arc<PublishedKeys>,
    pub revocations: &'a Arc<RevocationView>,
    pub store: &'a Store,
}

pub fn services(
    mode: Mode,
    shared: Shared<'_>,
    issuer: Option<&Issuer>,
) -> anyhow::Result<Services> {
    let gateway = |issuer_service: HttpService, jwks: Option<JwksFetcher>| {
        stack(GatewayParts {
            config: shared.config.gateway.clone(),
            tenants: shared.tenants.clone(),
            keys: shared.keys.clone(),
            revocations: shared.revocations.clone(),
            issuer: issuer_service,
            jwks,
        })
        .context("building the gateway")
    };
    match (mode, issuer) {
        // One process: the gateway in front, the issuer behind it in-process.
        (Mode::Serve, Some(issuer)) => Ok(Services {
            public: gateway(issuer.public_service(), None)?,
            admin: issuer.admin_service(),
            background: vec![],
        }),
        // The issuer alone, usually behind separate gateways.
        (Mode::Issuer, Some(issuer)) => Ok(Services {
            public: issuer.public_service(),
            admin: issuer.admin_service(),
            background: vec![],
        }),
        // The gateway alone: issuer endpoints forwarded, keys fetched over HTTP.
        (Mode::Gateway, None) => {
            let url = shared
                .config
                .gateway
                .issuer_url
                .clone()
                .context("gateway.issuer_url is required to run the gateway alone")?;
            let fetcher = JwksFetcher::from_config(
                url.clone(),
                shared.tenants.clone(),
                shared.keys.clone(),
                &shared.config.gateway,
            )
            .context("gateway.issuer_url")?;
            let background = vec![tokio::spawn(fetcher.clone().run())];
            let public = gateway(
                issuer_proxy(url, &shared.config.gateway).context("gateway.issuer_url")?,
                Some(fetcher),
            )?;
            let admin = gateway_admin(
                shared.store.clone(),
                shared.tenants.clone(),
                shared.keys.clone(),
                shared.revocations.clone(),
            );
            Ok(Services {
                public,
                admin,
                background,
            })
        }
        _ => anyhow::bail!("internal: {mode:?} started without the parts it needs"),
    }
}

/// The admin listener of a separate gateway: health and readiness only
/// (clients, users and keys are the issuer's).
fn gateway_admin(
    store: Store,
    tenants: Tenants,
    keys: Arc<PublishedKeys>,
    revocations: Arc<RevocationView>,
) -> HttpService {
    service_fn(move |req: Request<Body>| {
        let (store, tenants, keys, revocations) = (
            store.clone(),
            tenants.clone(),
            keys.clone(),
            revocations.clone(),
        );
        async move {
            let text = |status: StatusCode, body: String| {
                let mut r = Response::new(full(body));
                *r.status_mut() = status;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    splitgate_shared::http::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                r
            };
            match req.uri().path() {
                "/healthz" => text(StatusCode::OK, "ok\n".into()),
                "/readyz" => {
                    let missing: Vec<_> = tenants
                        .iter()
                        .filter(|t| keys.get(&t.id).is_none_or(|k| k.is_empty()))
                        .map(|t| t.id.clone())
                        .collect();
                    if !missing.is_empty() {
                        text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: no keys yet for {}\n", missing.join(", ")),
                        )
                    } else if let Err(e) = store.ping().await {
                        text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n"))
                    } else {
                        text(StatusCode::OK, "ready\n".into())
                    }
                }
                "/metrics" => {
                    let stale = revocations
                        .stalest_ms(tenants.iter().map(|t| t.id.as_str()))
                        .map_or(0, |ms| ms.min(u64::MAX / 2));
                    text(
                        StatusCode::OK,
                        format!(
                            "# HELP splitgate_revocation_view_stale_milliseconds How long the stalest tenant's revocation view has not been known current (0 when all are live).\n# TYPE splitgate_revocation_view_stale_milliseconds gauge\nsplitgate_revocation_view_stale_milliseconds {stale}\n"
                        ),
                    )
                }
                _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
            }
        }
    })
}

/// Options of the public listener: TLS from `listen.tls` and the tenants'
/// own certificates, and the gateway's header limits.
pub fn public_options(config: &Config, tenants: &Tenants) -> anyhow::Result<ServerOptions> {
    let tls = public_tls(config.listen.tls.as_ref(), tenants).context("listen.tls")?;
    Ok(server_options(&config.gateway, tls))
}
