//! Who gets through the gateway, end to end over real sockets in front of
//! the demo JSON:API backend: every kind of token against both APIs of both
//! tenants (tokens signed with the tenant keys, and tokens from the real
//! issuer in `serve` mode), the identity the backend is told, and
//! revocation through the store's change events and through the issuer.

#![allow(clippy::unwrap_used)]

#[path = "support/gateway.rs"]
mod support;

/// The binary's own test support: `serve` mode, admin API, token endpoint.
#[path = "support/mod.rs"]
mod serve_support;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use splitgate::demo::DemoBackend;
use splitgate_shared::revocation::{self, Revocation};
use splitgate_shared::side::Side;
use splitgate_shared::{AccessClaims, Tenant, Tenants};
use support::{Gateway, SignedTokens, TokenKind, TokenSource, error_doc, raw, wait_until};

fn claims_of(token: &str) -> AccessClaims {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

fn other(tenant: &str) -> &'static str {
    if tenant == "acme" { "globex" } else { "acme" }
}

/// Who presents what: a kind of token of the tenant, of the other tenant,
/// or nothing.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Own(TokenKind),
    OtherTenant(TokenKind),
    Anonymous,
}

/// Where the matrix runs: a gateway in front of the demo backend, either
/// the gateway alone with a stub issuer or the whole `serve` mode.
struct Deployment<'a> {
    http: &'a reqwest::Client,
    port: u16,
    backend: &'a DemoBackend,
    tenants: Tenants,
}

impl Deployment<'_> {
    fn of(gw: &Gateway) -> Deployment<'_> {
        Deployment {
            http: &gw.http,
            port: gw.addr.port(),
            backend: &gw.backend,
            tenants: gw.tenants.clone(),
        }
    }

    fn tenant(&self, id: &str) -> &Arc<Tenant> {
        self.tenants.by_id(id).unwrap()
    }

    fn api(&self, tenant: &str, side: Side) -> String {
        self.tenant(tenant).api_path(side)
    }

    async fn get(&self, host: &str, path: &str, token: Option<&str>) -> support::Reply {
        let mut req = self.http.get(format!("http://{host}:{}{path}", self.port));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        support::Reply::from(req.send().await.unwrap()).await
    }
}

/// The matrix of the "done when": each caller against each API,
/// with the backend's record checked after every cell.
async fn matrix(gw: &Deployment<'_>, tokens: &impl TokenSource) {
    let mut callers: Vec<Caller> = TokenKind::ALL.iter().map(|k| Caller::Own(*k)).collect();
    callers.push(Caller::Anonymous);
    callers.extend(TokenKind::ALL.iter().map(|k| Caller::OtherTenant(*k)));
    let mut allowed_cells = 0;
    for tenant in ["acme", "globex"] {
        let host = format!("{tenant}.test");
        let t = gw.tenant(tenant).clone();
        for caller in &callers {
            let token = match caller {
                Caller::Own(kind) => Some(tokens.token(tenant, *kind)),
                Caller::OtherTenant(kind) => Some(tokens.token(other(tenant), *kind)),
                Caller::Anonymous => None,
            };
            for api in Side::ALL {
                let path = format!("{}/orders", gw.api(tenant, api));
                gw.backend.log().clear();
                let reply = gw.get(&host, &path, token.as_deref()).await;
                let cell = format!("{tenant} {caller:?} on the {api} API");
                let seen = gw.backend.requests();
                let challenge = |error: Option<&str>| {
                    let mut c = format!("Bearer realm=\"{tenant}\"");
                    if let Some(e) = error {
                        c.push_str(&format!(
                            ", error=\"invalid_token\", error_description=\"{e}\""
                        ));
                    }
                    format!(
                        "{c}, resource_metadata=\"{}{}\"",
                        t.base_url,
                        t.resource_metadata_path(api)
                    )
                };
                let refused = |detail: Option<&str>| {
                    assert_eq!(reply.status, 401, "{cell}: {}", reply.body);
                    let body = match detail {
                        Some(d) => error_doc(401, "invalid_token", "Unauthorized", d),
                        None => error_doc(
                            401,
                            "missing_token",
                            "Unauthorized",
                            "a bearer token is required",
                        ),
                    };
                    assert_eq!(reply.body, body, "{cell}");
                    assert_eq!(
                        reply.header("www-authenticate"),
                        Some(challenge(detail).as_str()),
                        "{cell}"
                    );
                    assert!(seen.is_empty(), "{cell}: the backend saw {seen:?}");
                };
                match caller {
                    Caller::Own(kind) if kind.side() == api => {
                        allowed_cells += 1;
                        assert_eq!(reply.status, 200, "{cell}: {}", reply.body);
                        assert_eq!(
                            reply.header("content-type"),
                            Some("application/vnd.api+json")
                        );
                        assert_eq!(seen.len(), 1, "{cell}: {seen:?}");
                        let claims = claims_of(token.as_deref().unwrap_or_default());
                        let s = &seen[0];
                        assert_eq!(s.path, path, "{cell}");
                        assert!(s.authorization, "{cell}: Authorization is forwarded");
                        assert_eq!(s.auth("tenant"), Some(tenant), "{cell}");
                        assert_eq!(s.auth("side"), Some(api.as_str()), "{cell}");
                        assert_eq!(s.auth("subject"), Some(claims.sub.as_str()), "{cell}");
                        let expected_subject = match kind {
                            TokenKind::BackofficeUser => claims.sub == "admin",
                            TokenKind::Customer => claims.sub == "alice@example.com",
                            TokenKind::Guest => claims.sub.starts_with("visitor:"),
                            _ => claims.sub == claims.client_id,
                        };
                        assert!(expected_subject, "{cell}: sub {}", claims.sub);
                        assert_eq!(s.auth("kind"), Some(kind.kind().as_str()), "{cell}");
                        assert_eq!(
                            s.auth("client-id"),
                            Some(claims.client_id.as_str()),
                            "{cell}"
                        );
                        assert_eq!(s.auth("scope"), Some(claims.scope.as_str()), "{cell}");
                        assert_eq!(s.auth("token-id"), Some(claims.jti.as_str()), "{cell}");
                        assert_eq!(s.identity.len(), 7, "{cell}: {:?}", s.identity);
                        assert_eq!(reply.json()["meta"]["caller"]["subject"], claims.sub);
                    }
                    Caller::Own(_) => refused(Some("the token is not for this API")),
                    Caller::OtherTenant(_) => {
                        refused(Some("the token is not signed by a key of this tenant"))
                    }
                    Caller::Anonymous => refused(None),
                }
            }
        }
    }
    assert_eq!(
        allowed_cells,
        2 * TokenKind::ALL.len(),
        "each own token passes on its side only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_reaches_only_its_own_side_of_its_own_tenant() {
    let gw = Gateway::start().await;
    matrix(&Deployment::of(&gw), &SignedTokens(&gw)).await;
}

/// Tokens from the real issuer's grants: password (back-office user,
/// customer, guest) and client credentials of each side.
struct IssuerTokens(HashMap<(String, TokenKind), String>);

impl TokenSource for IssuerTokens {
    fn token(&self, tenant: &str, kind: TokenKind) -> String {
        self.0[&(tenant.to_owned(), kind)].clone()
    }
}

impl IssuerTokens {
    async fn obtain(s: &serve_support::Server) -> IssuerTokens {
        let mut tokens = HashMap::new();
        for tenant in ["acme", "globex"] {
            let host = format!("{tenant}.test");
            let app = |side: &str, grant: &str| serde_json::json!({"side": side, "name": format!("{side} {grant}"), "grants": [grant]});
            let (bo_app, bo_app_secret) = s.client(tenant, app("backoffice", "password")).await;
            let (sf_app, sf_app_secret) = s.client(tenant, app("storefront", "password")).await;
            let (bo_cc, bo_cc_secret) = s
                .client(tenant, app("backoffice", "client_credentials"))
                .await;
            let (sf_cc, sf_cc_secret) = s
                .client(tenant, app("storefront", "client_credentials"))
                .await;
            s.user(tenant, "backoffice", "admin", "correct horse battery")
                .await;
            s.user(
                tenant,
                "storefront",
                "alice@example.com",
                "battery staple horse",
            )
            .await;
            let password = |username: &'static str, password: &'static str| {
                vec![
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", password),
                ]
            };
            let cc = vec![("grant_type", "client_credentials")];
            for (kind, form, client, secret) in [
                (
                    TokenKind::BackofficeUser,
                    password("admin", "correct horse battery"),
                    &bo_app,
                    &bo_app_secret,
                ),
                (
                    TokenKind::Customer,
                    password("alice@example.com", "battery staple horse"),
                    &sf_app,
                    &sf_app_secret,
                ),
                (
                    TokenKind::Guest,
                    password("guest", "guest"),
                    &sf_app,
                    &sf_app_secret,
                ),
                (
                    TokenKind::BackofficeClient,
                    cc.clone(),
                    &bo_cc,
                    &bo_cc_secret,
                ),
                (
                    TokenKind::StorefrontClient,
                    cc.clone(),
                    &sf_cc,
                    &sf_cc_secret,
                ),
            ] {
                let reply = s.token(&host, &form, Some((client, secret))).await;
                assert_eq!(reply.status, 200, "{tenant} {kind:?}: {}", reply.text);
                let token = reply.json()["access_token"].as_str().unwrap().to_owned();
                tokens.insert((tenant.to_owned(), kind), token);
            }
        }
        IssuerTokens(tokens)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_matrix_with_tokens_from_the_issuer_in_serve_mode() {
    let backend = DemoBackend::start(support::bind().await).unwrap();
    let s =
        serve_support::Server::start_with(splitgate::run::Mode::Serve, "", &backend.url(), None)
            .await;
    let tokens = IssuerTokens::obtain(&s).await;
    let config = splitgate_shared::config::load_str(
        &serve_support::TENANTS.replace("{UPSTREAM}", &backend.url()),
    )
    .unwrap();
    let deployment = Deployment {
        http: &s.http,
        port: s.running.public.port(),
        backend: &backend,
        tenants: Tenants::new(config.tenants),
    };
    wait_for_revocation_feed(&deployment, &tokens).await;
    matrix(&deployment, &tokens).await;

    // A token revoked through the issuer (RFC 7009) is refused on the very
    // next request.
    let (app, secret) = s
        .client(
            "acme",
            serde_json::json!({"side": "storefront", "name": "revoker", "grants": ["password"]}),
        )
        .await;
    let login = [
        ("grant_type", "password"),
        ("username", "alice@example.com"),
        ("password", "battery staple horse"),
    ];
    let reply = s.token("acme.test", &login, Some((&app, &secret))).await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        deployment
            .get("acme.test", "/api/orders", Some(&token))
            .await
            .status,
        200
    );
    let revoke = s
        .http
        .post(s.url("acme.test", "/oauth2-token/revoke"))
        .basic_auth(&app, Some(&secret))
        .form(&[
            ("token", token.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let reply = deployment
        .get("acme.test", "/api/orders", Some(&token))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_doc(
            401,
            "invalid_token",
            "Unauthorized",
            "the token has been revoked"
        )
    );
    s.stop().await;
}

/// In `serve` mode the revocation view syncs in the background; until it
/// has, API routes answer 503.
async fn wait_for_revocation_feed(d: &Deployment<'_>, tokens: &IssuerTokens) {
    let token = tokens.token("acme", TokenKind::Customer);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while d.get("acme.test", "/api", Some(&token)).await.status == 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revocation view never synced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    d.backend.log().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_comes_from_the_token_only() {
    let gw = Gateway::start().await;
    let token = gw.token("acme", TokenKind::Customer);
    // Spoofed identity, and an attempt to have the gateway's own headers
    // dropped as hop-by-hop.
    let request = format!(
        "GET /api/users HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\n\
         X-Auth-Subject: admin\r\nX-Auth-Side: backoffice\r\nX-Auth-Tenant: globex\r\nX-Auth-Extra: 1\r\n\
         X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Host: globex.test\r\nForwarded: for=10.9.9.9\r\n\
         Connection: close, X-Auth-Subject, X-Auth-Side, X-Forwarded-For\r\n\r\n"
    );
    let reply = raw(gw.addr, request.as_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = gw.backend.requests();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.auth("subject"), Some("alice@example.com"));
    assert_eq!(s.auth("side"), Some("storefront"));
    assert_eq!(s.auth("tenant"), Some("acme"));
    assert_eq!(s.auth("extra"), None);
    assert_eq!(
        s.forwarded.get("x-forwarded-for").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(
        s.forwarded.get("x-forwarded-proto").map(String::as_str),
        Some("http")
    );
    assert_eq!(
        s.forwarded.get("x-forwarded-host").map(String::as_str),
        Some("acme.test")
    );
    assert_eq!(
        s.host.as_deref(),
        Some(gw.backend.addr().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_is_not_forwarded_when_configured_off() {
    let gw = Gateway::start_with("forward_authorization = false").await;
    let token = gw.token("globex", TokenKind::BackofficeClient);
    let reply = gw
        .get("globex.test", "/backoffice/api/products", Some(&token))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = gw.backend.requests();
    assert!(!seen[0].authorization);
    assert_eq!(seen[0].auth("subject"), Some("bo-integration"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_from_the_store_apply_to_the_next_request() {
    let gw = Gateway::start().await;
    let revoked = "the token has been revoked";
    let expect_revoked = |reply: support::Reply| {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(
            reply.body,
            error_doc(401, "invalid_token", "Unauthorized", revoked)
        );
    };
    let until = splitgate_shared::time::now_secs() + 3600;
    // By jti: the token works (and is cached), is revoked, and is refused.
    let token = gw.token("acme", TokenKind::Customer);
    let claims = claims_of(&token);
    assert_eq!(
        gw.get("acme.test", "/api/orders", Some(&token))
            .await
            .status,
        200
    );
    revocation::record(
        &gw.store,
        "acme",
        &Revocation::Token {
            jti: claims.jti.clone(),
            until,
        },
    )
    .await
    .unwrap();
    wait_until("the view has the jti", || {
        gw.revocations.is_revoked("acme", &claims.jti, "", "", 0)
    })
    .await;
    expect_revoked(gw.get("acme.test", "/api/orders", Some(&token)).await);
    // By sid: a whole refresh family.
    let token = gw.token("globex", TokenKind::BackofficeUser);
    let claims = claims_of(&token);
    revocation::record(
        &gw.store,
        "globex",
        &Revocation::Family {
            sid: claims.sid.clone(),
            until,
        },
    )
    .await
    .unwrap();
    wait_until("the view has the sid", || {
        gw.revocations.is_revoked("globex", "", &claims.sid, "", 0)
    })
    .await;
    expect_revoked(
        gw.get("globex.test", "/backoffice/api/orders", Some(&token))
            .await,
    );
    // By subject: tokens issued before the cut-off, not after.
    let old = gw.token("acme", TokenKind::BackofficeUser);
    let before = claims_of(&old).iat + 1;
    revocation::record(
        &gw.store,
        "acme",
        &Revocation::Subject {
            subject: "admin".into(),
            before,
            until,
        },
    )
    .await
    .unwrap();
    wait_until("the view has the subject", || {
        gw.revocations
            .is_revoked("acme", "", "", "admin", before - 1)
    })
    .await;
    expect_revoked(gw.get("acme.test", "/admin/api/orders", Some(&old)).await);
    let mut fresh = gw.claims("acme", TokenKind::BackofficeUser);
    fresh.iat = before;
    let fresh = gw.sign("acme", &fresh);
    assert_eq!(
        gw.get("acme.test", "/admin/api/orders", Some(&fresh))
            .await
            .status,
        200
    );
    // The other tenant's same subject is untouched.
    let globex_admin = gw.token("globex", TokenKind::BackofficeUser);
    assert_eq!(
        gw.get("globex.test", "/backoffice/api/orders", Some(&globex_admin))
            .await
            .status,
        200
    );
}
