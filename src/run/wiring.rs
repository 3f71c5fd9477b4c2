//! Which service answers on which listener in each mode, and the server
//! options (TLS, header timeout) from config.

use std::sync::Arc;

use anyhow::Context;
use splitgate_issuer::Issuer;
use splitgate_shared::Config;
use splitgate_shared::http::{HttpService, ServerOptions, tls_server_config};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::revocation::RevocationView;
use splitgate_shared::store::Store;
use splitgate_shared::tenant::Tenants;
use tokio::task::JoinHandle;

use super::Mode;

type Services = (HttpService, HttpService, Vec<JoinHandle<()>>);

pub fn services(
    mode: Mode,
    _config: &Config,
    _tenants: &Tenants,
    _keys: &Arc<PublishedKeys>,
    _revocations: &Arc<RevocationView>,
    issuer: Option<&Issuer>,
    _store: &Store,
) -> anyhow::Result<Services> {
    match (mode, issuer) {
        // TODO(gateway): serve mode puts the gateway stack in front.
        (Mode::Serve | Mode::Issuer, Some(issuer)) => {
            Ok((issuer.public_service(), issuer.admin_service(), vec![]))
        }
        _ => anyhow::bail!("gateway mode is not wired yet"),
    }
}

pub fn server_options(config: &Config, tenants: &Tenants) -> anyhow::Result<ServerOptions> {
    let by_sni: Vec<_> = tenants
        .iter()
        .filter_map(|t| t.tls.clone().map(|files| (t.hosts.clone(), files)))
        .collect();
    let tls = if config.listen.tls.is_some() || !by_sni.is_empty() {
        Some(tls_server_config(config.listen.tls.as_ref(), &by_sni).context("listen.tls")?)
    } else {
        None
    };
    Ok(ServerOptions {
        header_read_timeout: config.gateway.header_read_timeout,
        max_head_bytes: (config.gateway.max_header_bytes * 4).max(64 * 1024),
        tls,
        ..ServerOptions::default()
    })
}
