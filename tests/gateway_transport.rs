//! The gateway's transport, end to end over real sockets: TLS with a
//! per-tenant certificate by SNI, HTTP/2 by ALPN and h2c, slow clients,
//! upstreams that are down, refusing, slow or https with a private CA, the
//! whole-request timeout and load shedding, and bodies streamed in both
//! directions.

#![allow(clippy::unwrap_used)]

#[path = "support/gateway.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use splitgate_shared::http::{Body, BoxError, HttpService, full, service_fn};
use support::{Gateway, Setup, TokenKind, bind, error_doc, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// A throwaway CA and the certificates it signs, as PEM files.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki {
            ca,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A leaf for `names`: (cert path, key path, DER).
    fn leaf(&self, name: &str, names: &[&str]) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        let cert_path = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.der().clone())
    }

    fn ca_path(&self) -> PathBuf {
        let path = self.dir.path().join("ca.crt");
        std::fs::write(&path, self.ca.pem()).unwrap();
        path
    }

    fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Sends one request over an HTTP/2 connection on `io`.
async fn h2_get<IO>(io: IO, uri: &str, token: &str) -> (u16, String)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = send.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_chooses_each_tenants_certificate_by_sni_and_h2_by_alpn() {
    let pki = Pki::new();
    let (default_cert, default_key, default_der) = pki.leaf("default", &["acme.test"]);
    let (globex_cert, globex_key, globex_der) = pki.leaf("globex", &["globex.test"]);
    let extra = format!(
        "[listen.tls]\ncert = {:?}\nkey = {:?}\n[tenants.globex.tls]\ncert = {:?}\nkey = {:?}\n",
        default_cert, default_key, globex_cert, globex_key
    );
    let gw = Gateway::build(Setup {
        extra_toml: &extra,
        ..Setup::default()
    })
    .await;

    // globex by SNI: its own certificate, HTTP/2 by ALPN.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = pki
        .client(&[b"h2", b"http/1.1"])
        .connect(ServerName::try_from("globex.test").unwrap(), tcp)
        .await
        .unwrap();
    let (_, session) = tls.get_ref();
    assert_eq!(session.peer_certificates().unwrap()[0], globex_der);
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    let token = gw.token("globex", TokenKind::BackofficeUser);
    let (status, body) = h2_get(tls, "https://globex.test/backoffice/api/users", &token).await;
    assert_eq!(status, 200, "{body}");
    let seen = gw.backend.requests();
    assert_eq!(seen.last().unwrap().forwarded["x-forwarded-proto"], "https");
    assert_eq!(seen.last().unwrap().auth("tenant"), Some("globex"));

    // acme has no certificate of its own: the listener's default, HTTP/1.1.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = pki
        .client(&[b"http/1.1"])
        .connect(ServerName::try_from("acme.test").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], default_der);
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let token = gw.token("acme", TokenKind::Customer);
    let req = http::Request::get("/api/users")
        .header("host", "acme.test")
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    send.ready().await.unwrap();

    // A certificate is no authority: a globex token over the acme certificate
    // is still refused at the acme host.
    let req = http::Request::get("/api/users")
        .header("host", "acme.test")
        .header(
            "authorization",
            format!("Bearer {}", gw.token("globex", TokenKind::Customer)),
        )
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge() {
    let gw = Gateway::start().await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let token = gw.token("acme", TokenKind::Guest);
    let uri = format!("http://acme.test:{}/api/products/1", gw.addr.port());
    let (status, body) = h2_get(tcp, &uri, &token).await;
    assert_eq!(status, 200, "{body}");
    let seen = gw.backend.requests();
    assert_eq!(seen[0].path, "/api/products/1");
    assert_eq!(seen[0].auth("kind"), Some("visitor"));
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (status, _) = h2_get(tcp, &uri.replace("/api/", "/admin/api/"), &token).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let gw = Gateway::start_with("header_read_timeout = \"300ms\"").await;
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /api/users HTTP/1.1\r\nHost: acme.test\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is closed, not left open");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        answer.is_empty(),
        "no response: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(gw.backend.requests().is_empty());
}

/// An upstream that accepts connections and closes them at once.
async fn refusing_upstream() -> SocketAddr {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    addr
}

/// An upstream that reads requests and never answers; counts connections.
async fn silent_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_refusing_or_slow() {
    let down = {
        let listener = bind().await;
        listener.local_addr().unwrap()
    };
    let bad_gateway = error_doc(
        502,
        "bad_gateway",
        "Bad Gateway",
        "the upstream server could not be reached",
    );
    let timeout = error_doc(
        504,
        "gateway_timeout",
        "Gateway Timeout",
        "the upstream server did not answer in time",
    );
    for (name, upstream, status, body) in [
        ("down", format!("http://{down}"), 502, &bad_gateway),
        (
            "refusing",
            format!("http://{}", refusing_upstream().await),
            502,
            &bad_gateway,
        ),
        (
            "slow",
            format!("http://{}", silent_upstream().await.0),
            504,
            &timeout,
        ),
    ] {
        let gw = Gateway::build(Setup {
            gateway_toml: "upstream_timeout = \"300ms\"",
            upstream: &upstream,
            ..Setup::default()
        })
        .await;
        let token = gw.token("acme", TokenKind::Customer);
        let started = tokio::time::Instant::now();
        let reply = gw.get("acme.test", "/api/users", Some(&token)).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(&reply.body, body, "{name}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/vnd.api+json")
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_request_timeout_and_load_shedding() {
    let (silent, accepted) = silent_upstream().await;
    let upstream = format!("http://{silent}");
    let gw = Gateway::build(Setup {
        gateway_toml: "request_timeout = \"300ms\"\nupstream_timeout = \"10s\"",
        upstream: &upstream,
        ..Setup::default()
    })
    .await;
    let token = gw.token("acme", TokenKind::Customer);
    let reply = gw.get("acme.test", "/api/users", Some(&token)).await;
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_doc(
            408,
            "request_timeout",
            "Request Timeout",
            "the request took too long"
        )
    );

    // One request in flight fills a gateway limited to one: the next is
    // shed at once, not queued.
    let full = Gateway::build(Setup {
        gateway_toml: "max_concurrent_requests = 1\nupstream_timeout = \"10s\"",
        upstream: &upstream,
        ..Setup::default()
    })
    .await;
    let token = full.token("acme", TokenKind::Customer);
    let before = accepted.load(Ordering::SeqCst);
    let (client, url) = (full.http.clone(), full.url("acme.test", "/api/users"));
    let pending = tokio::spawn({
        let token = token.clone();
        async move { client.get(url).bearer_auth(token).send().await }
    });
    wait_until("the first request reaches the upstream", || {
        accepted.load(Ordering::SeqCst) > before
    })
    .await;
    let reply = full.get("acme.test", "/api/users", Some(&token)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.body,
        error_doc(
            503,
            "overloaded",
            "Service Unavailable",
            "the gateway is overloaded; retry later"
        )
    );
    pending.abort();
}

/// An upstream whose responses and request handling the test steers:
/// `GET /api/stream` sends one chunk, then a second when told to;
/// `POST /api/upload` reports its first chunk, then counts the rest.
struct Steered {
    addr: SocketAddr,
    release: mpsc::Sender<()>,
    first_chunk: Arc<tokio::sync::Notify>,
    _stop: oneshot::Sender<()>,
}

async fn steered_upstream() -> Steered {
    let (release, released) = mpsc::channel::<()>(1);
    let released = Arc::new(tokio::sync::Mutex::new(released));
    let first_chunk = Arc::new(tokio::sync::Notify::new());
    let notify = first_chunk.clone();
    let service: HttpService = service_fn(move |req: http::Request<Body>| {
        let released = released.clone();
        let notify = notify.clone();
        async move {
            if req.method() == http::Method::POST {
                let mut body = req.into_body();
                let mut total = 0;
                let mut first = true;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        total += data.len();
                        if first {
                            first = false;
                            notify.notify_one();
                        }
                    }
                }
                return http::Response::new(full(format!("{{\"received\":{total}}}")));
            }
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                    .await;
                let _ = released.lock().await.recv().await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"second"))))
                    .await;
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|frame| (frame, rx))
            });
            http::Response::new(StreamBody::new(stream).boxed())
        }
    });
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(splitgate_shared::http::serve(
        listener,
        service,
        Default::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Steered {
        addr,
        release,
        first_chunk,
        _stop: stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_in_both_directions() {
    let upstream = steered_upstream().await;
    let gw = Gateway::build(Setup {
        upstream: &format!("http://{}", upstream.addr),
        ..Setup::default()
    })
    .await;
    let token = gw.token("acme", TokenKind::Customer);
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);

    // Download: the first chunk arrives while the upstream still holds the
    // second, so the gateway cannot be collecting the body first.
    let req = http::Request::get("/api/stream")
        .header("host", "acme.test")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Either::Left(Empty::<Bytes>::new()))
        .unwrap();
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk arrives before the body is complete")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    upstream.release.send(()).await.unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
    send.ready().await.unwrap();

    // Upload: the upstream sees the first chunk while the client still
    // holds the rest.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let req = http::Request::post("/api/upload")
        .header("host", "acme.test")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Either::Right(StreamBody::new(stream)))
        .unwrap();
    let sending = tokio::spawn(async move { send.send_request(req).await });
    tx.send(Ok(Frame::data(Bytes::from(vec![b'a'; 64 * 1024]))))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), upstream.first_chunk.notified())
        .await
        .expect("the upstream gets the first chunk before the body is complete");
    tx.send(Ok(Frame::data(Bytes::from(vec![b'b'; 1024 * 1024]))))
        .await
        .unwrap();
    drop(tx);
    let response = sending.await.unwrap().unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        format!("{{\"received\":{}}}", 64 * 1024 + 1024 * 1024)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_verified_with_the_configured_ca() {
    let pki = Pki::new();
    let (cert, key, _) = pki.leaf("upstream", &["localhost"]);
    let tls = splitgate_shared::http::tls_server_config(
        Some(&splitgate_shared::config::TlsFiles { cert, key }),
        &[],
    )
    .unwrap();
    let demo_like: HttpService = service_fn(|req: http::Request<Body>| async move {
        http::Response::new(full(format!("tls upstream saw {}", req.uri().path())))
    });
    let listener = bind().await;
    let port = listener.local_addr().unwrap().port();
    let (_stop, stopped) = oneshot::channel::<()>();
    let options = splitgate_shared::http::ServerOptions {
        tls: Some(tls),
        ..Default::default()
    };
    tokio::spawn(splitgate_shared::http::serve(
        listener,
        demo_like,
        options,
        async {
            let _ = stopped.await;
        },
    ));

    let upstream = format!("https://localhost:{port}");
    let trusted = Gateway::build(Setup {
        gateway_toml: &format!("upstream_ca = {:?}", pki.ca_path()),
        upstream: &upstream,
        ..Setup::default()
    })
    .await;
    let token = trusted.token("acme", TokenKind::Customer);
    let reply = trusted.get("acme.test", "/api/users", Some(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "tls upstream saw /api/users");

    // Without the CA (system roots only) the upstream is not trusted.
    let untrusted = Gateway::build(Setup {
        upstream: &upstream,
        ..Setup::default()
    })
    .await;
    let token = untrusted.token("acme", TokenKind::Customer);
    let reply = untrusted.get("acme.test", "/api/users", Some(&token)).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
}
