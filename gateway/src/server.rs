//! How the public listener is set up for the gateway: the server options
//! that enforce `gateway.header_read_timeout` and bound the request head,
//! and the TLS configuration with per-tenant certificates chosen by SNI.

use std::sync::Arc;
use std::time::Duration;

use splitgate_shared::Tenants;
use splitgate_shared::config::{GatewayConfig, TlsFiles};
use splitgate_shared::http::{ServerOptions, tls_server_config};

use crate::GatewayError;

/// The [`ServerOptions`] for the public listener. hyper's own head limit
/// is kept well above `gateway.max_header_bytes`, so that an oversize head
/// normally gets the gateway's 431 with a JSON:API body; only a grossly
/// oversize one is cut off by hyper (431 without a body).
pub fn server_options(
    config: &GatewayConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> ServerOptions {
    ServerOptions {
        header_read_timeout: config.header_read_timeout,
        max_head_bytes: config.max_header_bytes.saturating_mul(4).max(64 * 1024),
        handshake_timeout: config.header_read_timeout,
        grace: Duration::from_secs(10),
        tls,
    }
}

/// TLS for the public listener: `listen.tls` as the default certificate
/// and each tenant's own `tls` for its hosts (by SNI). `None` when neither
/// is configured: the listener serves cleartext HTTP/1.1 and h2c.
pub fn public_tls(
    default: Option<&TlsFiles>,
    tenants: &Tenants,
) -> Result<Option<Arc<rustls::ServerConfig>>, GatewayError> {
    let by_sni: Vec<(Vec<String>, TlsFiles)> = tenants
        .iter()
        .filter_map(|t| t.tls.clone().map(|files| (t.hosts.clone(), files)))
        .collect();
    if default.is_none() && by_sni.is_empty() {
        return Ok(None);
    }
    Ok(Some(tls_server_config(default, &by_sni)?))
}
