//! The HTTP server loop both the issuer and the gateway run on, and the
//! body types they share. It routes nothing: it accepts connections (TLS
//! optional, HTTP/1.1 and HTTP/2 by ALPN or prior knowledge), bounds how
//! long a client may take to send its headers, tags every request with its
//! connection's facts, and drains on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request and response body type: streaming, boxed once.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole HTTP application as a cloneable service: what the issuer hands
/// the gateway in `serve` mode, and what [`serve`] runs.
pub type HttpService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// The `http` types a service needs, for crates that serve through this
/// module without depending on `http` themselves (the demo backend).
pub use ::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

/// Wraps an async function as an [`HttpService`]: for small servers that
/// need no middleware (the demo backend, stub servers in tests).
pub fn service_fn<F, Fut>(f: F) -> HttpService
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    tower::util::BoxCloneSyncService::new(tower::service_fn(move |req| {
        let fut = f(req);
        async move { Ok::<_, Infallible>(fut.await) }
    }))
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Facts about the connection a request arrived on, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

/// Limits applied before any service sees a request.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// A client that has not sent its whole request head by then is cut
    /// off (slowloris).
    pub header_read_timeout: Duration,
    /// Buffer bound for an HTTP/1 request head and HTTP/2 header list;
    /// beyond it hyper answers 431 itself. Services enforce their own,
    /// smaller limits with proper error bodies.
    pub max_head_bytes: usize,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// How long in-flight requests may finish after shutdown begins.
    pub grace: Duration,
    /// TLS: `None` serves cleartext (HTTP/1.1 and h2c).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            max_head_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting and gives open connections `options.grace` to finish.
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let builder = Arc::new(http_builder(&options));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(5);
                    pair
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead
                    // of spinning, and keep serving open connections.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = PerConnection {
            service: service.clone(),
            info: ConnInfo {
                peer,
                local,
                tls: tls.is_some(),
            },
        };
        tokio::spawn(connection(
            stream,
            tls.clone(),
            options.handshake_timeout,
            builder.clone(),
            svc,
            graceful.watcher(),
        ));
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!(grace = ?options.grace, "connections still open after the grace period; closing them");
        }
    }
}

/// HTTP/1.1 and HTTP/2 with the head limits and the header read timeout.
fn http_builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(options.max_head_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30));
    builder
}

/// One connection: the TLS handshake when there is TLS, then HTTP until
/// the client closes or shutdown drains it.
async fn connection(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handshake_timeout: Duration,
    builder: Arc<auto::Builder<TokioExecutor>>,
    svc: PerConnection,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let peer = svc.info.peer;
    let result = match tls {
        None => {
            watcher
                .watch(
                    builder
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned(),
                )
                .await
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(cause = %e, %peer, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            watcher
                .watch(
                    builder
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned(),
                )
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(cause = %e, %peer, "connection ended with an error");
    }
}

/// Adapts the application to hyper for one connection: boxes the body and
/// tags each request with the connection's [`ConnInfo`].
#[derive(Clone)]
struct PerConnection {
    service: HttpService,
    info: ConnInfo,
}

impl hyper::service::Service<http::Request<Incoming>> for PerConnection {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = tower::util::Oneshot<HttpService, http::Request<Body>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let mut req =
            req.map(|body| -> Body { body.map_err(|e| -> BoxError { Box::new(e) }).boxed() });
        req.extensions_mut().insert(self.info);
        self.service.clone().oneshot(req)
    }
}

/// Reads a whole request body up to `limit` bytes. `Err(TooLarge)` as soon
/// as the limit is passed (or announced by `Content-Length`), without
/// reading the rest.
pub async fn read_body_limited(
    mut body: Body,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    // A plain frame loop rather than `http_body_util::Limited`: its generic
    // error bound trips rustc's `Send` inference for the callers' futures.
    let mut buf = bytes::BytesMut::with_capacity(content_length.map_or(1024, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is too large")]
    TooLarge,
    #[error("the request body could not be read: {0}")]
    Read(String),
}

/// `Content-Length` as a number, when present and valid.
pub fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Loads a PEM certificate chain and private key into a rustls server
/// config with ALPN `h2` and `http/1.1`.
pub fn tls_server_config(
    default: Option<&crate::config::TlsFiles>,
    by_sni: &[(Vec<String>, crate::config::TlsFiles)],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let resolver = SniResolver::load(default, by_sni)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Chooses a certificate by SNI: a tenant's own where it has one, else the
/// listener's default.
#[derive(Debug)]
struct SniResolver {
    default: Option<Arc<rustls::sign::CertifiedKey>>,
    by_name: std::collections::HashMap<String, Arc<rustls::sign::CertifiedKey>>,
}

impl SniResolver {
    fn load(
        default: Option<&crate::config::TlsFiles>,
        by_sni: &[(Vec<String>, crate::config::TlsFiles)],
    ) -> Result<Self, TlsError> {
        let mut by_name = std::collections::HashMap::new();
        for (names, files) in by_sni {
            let key = Arc::new(certified_key(files)?);
            for name in names {
                by_name.insert(name.to_ascii_lowercase(), key.clone());
            }
        }
        let default = default.map(certified_key).transpose()?.map(Arc::new);
        if default.is_none() && by_name.is_empty() {
            return Err(TlsError::Config("no certificate configured".into()));
        }
        Ok(SniResolver { default, by_name })
    }
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

fn certified_key(files: &crate::config::TlsFiles) -> Result<rustls::sign::CertifiedKey, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |path: &std::path::Path, message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(&files.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_err(&files.key, e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_err(&files.key, e.to_string()))?;
    Ok(rustls::sign::CertifiedKey::new(certs, signing_key))
}
