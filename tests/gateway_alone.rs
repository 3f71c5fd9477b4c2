//! `splitgate gateway`: the gateway running alone in front of a separate
//! issuer, end to end over real sockets. The issuer's endpoints are
//! forwarded with the client's `Host`; each tenant's JWKS is fetched at
//! start, periodically, and at once (rate-limited) on an unknown `kid`; the
//! last good keys survive an issuer outage.

#![allow(clippy::unwrap_used)]

#[path = "support/gateway.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use splitgate_shared::http::{Body, full, service_fn};
use splitgate_shared::keys::{SigningAlg, SigningKey};
use support::{Gateway, Setup, TokenKind, bind, error_doc, wait_until};
use tokio::sync::oneshot;

/// A separate issuer, as far as the gateway can tell: serves each tenant's
/// JWKS by `Host`, counts the fetches, and answers its other endpoints with
/// the `Host` it was asked for.
struct StubIssuer {
    url: String,
    jwks: Arc<Mutex<HashMap<String, String>>>,
    fetches: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

async fn stub_issuer() -> StubIssuer {
    let jwks: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let fetches = Arc::new(AtomicUsize::new(0));
    let (docs, count) = (jwks.clone(), fetches.clone());
    let service = service_fn(move |req: http::Request<Body>| {
        let (docs, count) = (docs.clone(), count.clone());
        async move {
            let host = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            if req.uri().path() == "/.well-known/jwks.json" {
                count.fetch_add(1, Ordering::SeqCst);
                let doc = docs.lock().unwrap().get(&host).cloned();
                return match doc {
                    Some(doc) => http::Response::new(full(doc)),
                    None => {
                        let mut r = http::Response::new(full("unknown host"));
                        *r.status_mut() = http::StatusCode::NOT_FOUND;
                        r
                    }
                };
            }
            let headers: HashMap<String, String> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            http::Response::new(full(
                serde_json::json!({"path": req.uri().path(), "headers": headers}).to_string(),
            ))
        }
    });
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let options = splitgate_shared::http::ServerOptions {
        grace: Duration::from_millis(100),
        ..Default::default()
    };
    tokio::spawn(splitgate_shared::http::serve(
        listener,
        service,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    StubIssuer {
        url,
        jwks,
        fetches,
        stop: Some(stop),
    }
}

fn publish(issuer: &StubIssuer, host: &str, keys: &[&SigningKey]) {
    let doc = serde_json::json!({"keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()});
    issuer
        .jwks
        .lock()
        .unwrap()
        .insert(host.to_owned(), doc.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_in_front_of_a_separate_issuer() {
    let mut issuer = stub_issuer().await;
    let gw = Gateway::build(Setup {
        gateway_toml: "jwks_refresh = \"1h\"",
        alone_with_issuer: Some(issuer.url.clone()),
        ..Setup::default()
    })
    .await;
    publish(&issuer, "acme.test", &[&gw.signing["acme"]]);
    publish(&issuer, "globex.test", &[&gw.signing["globex"]]);
    let fetcher = gw.jwks.clone().unwrap();
    tokio::spawn(fetcher.clone().run());
    wait_until("both tenants' keys are fetched", || {
        gw.keys.get("acme").is_some() && gw.keys.get("globex").is_some()
    })
    .await;
    let acme = gw.token("acme", TokenKind::Customer);
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&acme)).await.status,
        200
    );
    let globex = gw.token("globex", TokenKind::BackofficeClient);
    assert_eq!(
        gw.get("globex.test", "/backoffice/api/users", Some(&globex))
            .await
            .status,
        200
    );

    // Issuer endpoints are forwarded with the client's Host.
    let reply = gw
        .http
        .post(gw.url("globex.test", "/oauth2-token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let reply = support::Reply::from(reply).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let doc = reply.json();
    assert_eq!(doc["path"], "/oauth2-token");
    assert_eq!(
        doc["headers"]["host"],
        format!("globex.test:{}", gw.addr.port())
    );
    assert_eq!(doc["headers"]["x-forwarded-proto"], "http");

    // A rotated-in key: the first token with its kid asks for a refresh;
    // once fetched, it verifies. A second unknown kid right after does not
    // cause another fetch (at most one per tenant every few seconds).
    let rotated = SigningKey::generate(SigningAlg::Rs256).unwrap();
    publish(&issuer, "acme.test", &[&gw.signing["acme"], &rotated]);
    let fetches_before = issuer.fetches.load(Ordering::SeqCst);
    let new_token = rotated
        .sign_jwt(&gw.claims("acme", TokenKind::Customer))
        .unwrap();
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&new_token))
            .await
            .status,
        401
    );
    wait_until("the new key is fetched", || {
        gw.keys
            .get("acme")
            .is_some_and(|set| set.get(rotated.kid()).is_some())
    })
    .await;
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&new_token))
            .await
            .status,
        200
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), fetches_before + 1);
    let stray = support::stray_key(SigningAlg::Rs256)
        .sign_jwt(&gw.claims("acme", TokenKind::Customer))
        .unwrap();
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&stray)).await.status,
        401
    );
    assert!(!fetcher.request_refresh("acme"), "rate-limited");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), fetches_before + 1);

    // The issuer goes away: its endpoints answer 502, a refetch fails, and
    // the last good keys go on verifying.
    drop(issuer.stop.take());
    wait_until("the issuer is gone", || {
        std::net::TcpStream::connect(issuer.url.trim_start_matches("http://")).is_err()
    })
    .await;
    let reply = gw.get("acme.test", "/.well-known/jwks.json", None).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.body,
        error_doc(
            502,
            "bad_gateway",
            "Bad Gateway",
            "the upstream server could not be reached"
        )
    );
    assert_eq!(fetcher.refresh_all().await, 0);
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&acme)).await.status,
        200
    );
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&new_token))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_refreshes_periodically() {
    let issuer = stub_issuer().await;
    let gw = Gateway::build(Setup {
        gateway_toml: "jwks_refresh = \"1s\"",
        alone_with_issuer: Some(issuer.url.clone()),
        ..Setup::default()
    })
    .await;
    publish(&issuer, "acme.test", &[&gw.signing["acme"]]);
    tokio::spawn(gw.jwks.clone().unwrap().run());
    wait_until("acme's keys are fetched", || gw.keys.get("acme").is_some()).await;
    assert!(
        gw.keys.get("globex").is_none(),
        "globex's JWKS is not published yet"
    );
    publish(&issuer, "globex.test", &[&gw.signing["globex"]]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gw.keys.get("globex").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the periodic refresh picks globex up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = gw.token("globex", TokenKind::Customer);
    assert_eq!(
        gw.get("globex.test", "/api/orders", Some(&token))
            .await
            .status,
        200
    );
}
