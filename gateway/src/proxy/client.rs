//! The pooled HTTP client towards upstreams: http or https (rustls with the
//! aws-lc-rs provider; the system roots, or `gateway.upstream_ca` instead),
//! HTTP/1.1 and, for https by ALPN, HTTP/2. Connections are kept and reused
//! per upstream; the connect timeout is the connector's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use splitgate_shared::config::GatewayConfig;
use splitgate_shared::http::Body;

use crate::GatewayError;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Which HTTP versions the client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// HTTP/1.1, and HTTP/2 where an https upstream offers it.
    Any,
    /// HTTP/1.1 only: towards the issuer, whose tenant is chosen by the
    /// `Host` header we pass on (HTTP/2 would carry the issuer's own
    /// authority instead).
    Http1,
}

pub fn build(config: &GatewayConfig, versions: Versions) -> Result<UpstreamClient, GatewayError> {
    let tls = tls_config(config.upstream_ca.as_deref())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.upstream_connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match versions {
        Versions::Any => builder.enable_all_versions().wrap_connector(http),
        Versions::Http1 => builder.enable_http1().wrap_connector(http),
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector))
}

fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, GatewayError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| GatewayError::Tls(e.to_string()))?;
    let builder = match ca {
        Some(path) => builder.with_root_certificates(load_ca(path)?),
        None => match builder.clone().with_native_roots() {
            Ok(builder) => builder,
            Err(e) => {
                // Plain-http upstreams still work; https ones will fail
                // with 502 and this warning explains why.
                tracing::warn!(cause = %e, "no system CA certificates; https upstreams cannot be verified (set gateway.upstream_ca)");
                builder.with_root_certificates(RootCertStore::empty())
            }
        },
    };
    Ok(builder.with_no_client_auth())
}

fn load_ca(path: &Path) -> Result<RootCertStore, GatewayError> {
    let bad = |message: String| GatewayError::UpstreamCa {
        path: path.display().to_string(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(roots)
}
