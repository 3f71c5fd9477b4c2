//! What tests say to and expect from the processes of a [`Deployment`](super::Deployment):
//! client credentials, the grants, revocation, and the exact documented
//! refusals (an issuer without its store, a gateway with a stale
//! revocation view, a revoked token).

use std::future::Future;
use std::time::{Duration, Instant};

use super::super::Reply;
use super::Process;

/// Credentials of a confidential client.
#[derive(Debug, Clone)]
pub struct ClientCreds {
    pub id: String,
    pub secret: String,
}

impl ClientCreds {
    pub async fn create(issuer: &Process, tenant: &str, side: &str) -> ClientCreds {
        let (id, secret) = issuer.create_client(tenant, side).await;
        ClientCreds { id, secret }
    }

    /// The body fields that authenticate this client.
    pub fn form<'a>(&'a self, rest: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut form = vec![
            ("client_id", self.id.as_str()),
            ("client_secret", self.secret.as_str()),
        ];
        form.extend_from_slice(rest);
        form
    }
}

/// An access token and, for logins, a refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
}

impl Tokens {
    /// From a 200 token response; panics with the answer otherwise.
    pub fn from_reply(reply: &Reply) -> Tokens {
        assert_eq!(reply.status, 200, "token endpoint: {}", reply.text);
        let body = reply.json();
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"].as_str().map(str::to_owned),
        }
    }

    pub fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh token")
    }
}

/// The password grant.
pub async fn login(
    issuer: &Process,
    host: &str,
    client: &ClientCreds,
    username: &str,
    password: &str,
) -> Reply {
    let form = client.form(&[
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ]);
    issuer.token(host, &form).await
}

/// The refresh grant.
pub async fn refresh(issuer: &Process, host: &str, client: &ClientCreds, token: &str) -> Reply {
    let form = client.form(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
    issuer.token(host, &form).await
}

/// The client credentials grant.
pub async fn client_token(issuer: &Process, host: &str, client: &ClientCreds) -> Reply {
    issuer
        .token(host, &client.form(&[("grant_type", "client_credentials")]))
        .await
}

/// RFC 7009 revocation of `token` by `client`.
pub async fn revoke(issuer: &Process, host: &str, client: &ClientCreds, token: &str) -> Reply {
    issuer
        .post_form(
            host,
            "/oauth2-token/revoke",
            &client.form(&[("token", token)]),
        )
        .await
}

/// The exact 503 of an issuer that cannot reach its store (DESIGN §4).
pub const STORE_DOWN: &str = r#"{"error":"temporarily_unavailable","error_description":"the token service cannot reach its store; retry in a moment","message":"the token service cannot reach its store; retry in a moment"}"#;

/// The exact 503 of a gateway whose revocation view is too stale.
pub const REVOCATION_UNAVAILABLE: &str = r#"{"errors":[{"status":"503","code":"revocation_unavailable","title":"Service Unavailable","detail":"revocations cannot be checked right now; retry later"}]}"#;

/// Whether `reply` is the issuer's store-unreachable 503, byte for byte.
pub fn is_store_down(reply: &Reply) -> bool {
    reply.status == 503
        && reply.text == STORE_DOWN
        && reply.header("content-type") == Some("application/json")
}

/// Whether `reply` is the gateway's stale-view 503, byte for byte.
pub fn is_revocation_unavailable(reply: &Reply) -> bool {
    reply.status == 503
        && reply.text == REVOCATION_UNAVAILABLE
        && reply.header("content-type") == Some("application/vnd.api+json")
        && reply.header("retry-after") == Some("5")
}

/// The gateway's 401 for a revoked token.
pub fn is_revoked(reply: &Reply) -> bool {
    reply.status == 401
        && reply.header("www-authenticate").is_some_and(|h| {
            h.contains(r#"error="invalid_token""#)
                && h.contains(r#"error_description="the token has been revoked""#)
        })
}

/// Runs `call` and says how long it took.
pub async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = call.await;
    (out, started.elapsed())
}

/// Asserts the exact store-down 503, answered within `fast`.
pub fn assert_store_down(what: &str, (reply, took): &(Reply, Duration), fast: Duration) {
    assert!(
        is_store_down(reply),
        "{what}: {} {:?} {}",
        reply.status,
        reply.header("content-type"),
        reply.text
    );
    assert!(*took < fast, "{what} took {took:?} to fail");
}

/// The demo JSON:API backend on a free port of 127.0.0.1, as every
/// tenant's upstream.
pub async fn demo_backend() -> splitgate::demo::DemoBackend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the demo backend");
    splitgate::demo::DemoBackend::start(listener).expect("start the demo backend")
}
