//! The gateway end to end, over real sockets, in front of the demo JSON:API
//! backend: every kind of token against both APIs of both tenants, every
//! refusal with its exact status, body and challenge, revocation through
//! the store's change events, identity headers, CORS, the issuer's
//! endpoints and the RFC 9728 metadata.

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
use splitgate_shared::keys::SigningAlg;
use splitgate_shared::revocation::{self, Revocation, RevocationView};
use splitgate_shared::side::Side;
use splitgate_shared::{AccessClaims, Tenant, Tenants};
use support::{Gateway, Setup, SignedTokens, TokenKind, TokenSource, error_doc, raw, wait_until};

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

/// One refusal case: the `Authorization` value (or none), the expected
/// status, code and detail, and whether the challenge names an error.
struct Bad {
    name: &'static str,
    authorization: Option<String>,
    path: &'static str,
    status: u16,
    code: &'static str,
    detail: &'static str,
}

fn forge(header: serde_json::Value, claims: &AccessClaims, signature: &[u8]) -> String {
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(&serde_json::to_value(claims).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn bad_cases(gw: &Gateway) -> Vec<Bad> {
    let good_claims = gw.claims("acme", TokenKind::Customer);
    let good = gw.sign("acme", &good_claims);
    let kid = gw.signing["acme"].kid().to_owned();
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let now = splitgate_shared::time::now_secs();
    let mut expired = good_claims.clone();
    expired.exp = now - 3600;
    expired.iat = now - 7200;
    expired.nbf = now - 7200;
    let mut unforwardable = good_claims.clone();
    unforwardable.sub = "eve\r\nX-Auth-Side: backoffice".into();
    let mut early = good_claims.clone();
    early.nbf = now + 600;
    let mut tampered: Vec<String> = good.split('.').map(String::from).collect();
    let mut evil = good_claims.clone();
    evil.sub = "admin".into();
    tampered[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
    let tampered = tampered.join(".");
    let mut bad_sig: Vec<String> = good.split('.').map(String::from).collect();
    bad_sig[2] = URL_SAFE_NO_PAD.encode([1u8; 256]);
    let bad_sig = bad_sig.join(".");
    let alg_none = forge(
        serde_json::json!({"typ": "at+jwt", "alg": "none", "kid": kid}),
        &good_claims,
        b"",
    );
    // HS256 keyed with the tenant's public key, as published in its JWKS.
    let hs256 = {
        use jwt_simple::prelude::*;
        let public = serde_json::to_vec(&gw.signing["acme"].public_jwk()).unwrap();
        let key = HS256Key::from_bytes(&public).with_key_id(&kid);
        let claims = Claims::with_custom_claims(good_claims.clone(), Duration::from_hours(1));
        key.authenticate_with_options(
            claims,
            &HeaderOptions {
                signature_type: Some("at+jwt".into()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let stray = support::stray_key(SigningAlg::Rs256)
        .sign_jwt(&good_claims)
        .unwrap();
    let with_header = |name: &str, value: serde_json::Value| {
        let mut header = serde_json::json!({"typ": "at+jwt", "alg": "RS256", "kid": kid});
        header[name] = value;
        let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!(
            "{}.{}",
            b64(&header),
            b64(&serde_json::to_value(&good_claims).unwrap())
        );
        let sig = gw.signing["acme"].sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    let jwk = serde_json::to_value(gw.signing["acme"].public_jwk()).unwrap();
    let backoffice = gw.token("acme", TokenKind::BackofficeUser);
    let other_tenant = gw.token("globex", TokenKind::Customer);
    let case = |name, authorization, status, code, detail| Bad {
        name,
        authorization,
        path: "/api/users",
        status,
        code,
        detail,
    };
    let invalid =
        |name, token: &str, detail| case(name, bearer(token), 401, "invalid_token", detail);
    vec![
        case(
            "no token",
            None,
            401,
            "missing_token",
            "a bearer token is required",
        ),
        case(
            "Basic scheme",
            Some("Basic dXNlcjpwYXNz".into()),
            401,
            "missing_token",
            "a bearer token is required",
        ),
        case(
            "Bearer without token",
            Some("Bearer".into()),
            400,
            "invalid_request",
            "the Authorization header has no token",
        ),
        case(
            "two tokens",
            Some("Bearer a b".into()),
            400,
            "invalid_request",
            "the Authorization header is malformed",
        ),
        case(
            "not a b64token",
            Some("Bearer a\"b".into()),
            400,
            "invalid_request",
            "the Authorization header is malformed",
        ),
        case(
            "oversize token",
            bearer(&"a".repeat(5000)),
            431,
            "token_too_large",
            "the bearer token is too large",
        ),
        Bad {
            path: "/api/users?access_token=x",
            ..case(
                "token in the query",
                bearer(&good),
                400,
                "invalid_request",
                "send the access token in the Authorization header, not the query string",
            )
        },
        invalid("garbage", "not-a-jwt", "the token is not a well-formed JWT"),
        invalid(
            "another tenant",
            &other_tenant,
            "the token is not signed by a key of this tenant",
        ),
        invalid(
            "the other side",
            &backoffice,
            "the token is not for this API",
        ),
        invalid(
            "expired",
            &gw.sign("acme", &expired),
            "the token has expired",
        ),
        invalid(
            "not yet valid",
            &gw.sign("acme", &early),
            "the token is not valid yet",
        ),
        invalid(
            "tampered payload",
            &tampered,
            "the token signature is invalid",
        ),
        invalid(
            "tampered signature",
            &bad_sig,
            "the token signature is invalid",
        ),
        invalid(
            "alg none",
            &alg_none,
            "the token algorithm is not the algorithm of its key",
        ),
        invalid(
            "HS256 with the public key",
            &hs256,
            "the token algorithm is not the algorithm of its key",
        ),
        invalid(
            "kid not in the JWKS",
            &stray,
            "the token is not signed by a key of this tenant",
        ),
        invalid(
            "jku header",
            &with_header("jku", "https://evil.example/jwks".into()),
            "the token header parameter jku is not accepted",
        ),
        invalid(
            "x5u header",
            &with_header("x5u", "https://evil.example/x5u".into()),
            "the token header parameter x5u is not accepted",
        ),
        invalid(
            "jwk header",
            &with_header("jwk", jwk),
            "the token header parameter jwk is not accepted",
        ),
        invalid(
            "typ JWT",
            &with_header("typ", "JWT".into()),
            "the token is not an access token (typ must be at+jwt)",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_exact_answers_and_never_reaches_the_backend() {
    let gw = Gateway::start().await;
    for case in bad_cases(&gw) {
        let mut req = gw.http.get(gw.url("acme.test", case.path));
        if let Some(value) = &case.authorization {
            req = req.header("authorization", value);
        }
        let reply = support::Reply::from(req.send().await.unwrap()).await;
        let name = case.name;
        assert_eq!(reply.status, case.status, "{name}: {}", reply.body);
        let title = match case.status {
            400 => "Bad Request",
            401 => "Unauthorized",
            _ => "Request Header Fields Too Large",
        };
        assert_eq!(
            reply.body,
            error_doc(case.status, case.code, title, case.detail),
            "{name}"
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/vnd.api+json"),
            "{name}"
        );
        let error = match case.code {
            "missing_token" => String::new(),
            "token_too_large" => format!(
                ", error=\"invalid_request\", error_description=\"{}\"",
                case.detail
            ),
            code => format!(", error=\"{code}\", error_description=\"{}\"", case.detail),
        };
        assert_eq!(
            reply.header("www-authenticate"),
            Some(format!("Bearer realm=\"acme\"{error}, resource_metadata=\"http://acme.test/.well-known/oauth-protected-resource/api\"").as_str()),
            "{name}"
        );
    }
    assert!(
        gw.backend.requests().is_empty(),
        "{:?}",
        gw.backend.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_oversize_headers_and_unknown_hosts() {
    let gw = Gateway::start().await;
    let token = gw.token("acme", TokenKind::Customer);
    // Two Authorization headers.
    let reply = raw(
        gw.addr,
        format!("GET /api/users HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        error_doc(
            400,
            "invalid_request",
            "Bad Request",
            "the request has more than one Authorization header"
        )
    );
    // Headers over gateway.max_header_bytes (16 KiB by default).
    let reply = gw
        .http
        .get(gw.url("acme.test", "/api/users"))
        .bearer_auth(&token)
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap();
    let reply = support::Reply::from(reply).await;
    assert_eq!(reply.status, 431);
    assert_eq!(
        reply.body,
        error_doc(
            431,
            "headers_too_large",
            "Request Header Fields Too Large",
            "the request headers are too large"
        )
    );
    // Far past hyper's own bound: hyper answers 431 itself, without a body.
    let reply = raw(
        gw.addr,
        format!("GET /api/users HTTP/1.1\r\nHost: acme.test\r\nX-Padding: {}\r\nConnection: close\r\n\r\n", "p".repeat(100_000)).as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 431);
    assert_eq!(reply.body, "");
    // Unknown host, no host, and a path outside the URL map.
    let reply = gw.get("unknown.test", "/api/users", Some(&token)).await;
    assert_eq!(reply.status, 421);
    assert_eq!(
        reply.body,
        error_doc(
            421,
            "unknown_host",
            "Misdirected Request",
            "no tenant is served at this host"
        )
    );
    let reply = raw(gw.addr, b"GET /api/users HTTP/1.0\r\n\r\n").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        error_doc(
            400,
            "invalid_host",
            "Bad Request",
            "the request has no Host"
        )
    );
    let reply = gw.get("acme.test", "/users", Some(&token)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        error_doc(404, "not_found", "Not Found", "no route matches this path")
    );
    assert!(gw.backend.requests().is_empty());
    assert!(gw.issuer_log.lock().unwrap().is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_revocation_view_closes_authenticated_routes() {
    let never_synced = RevocationView::new();
    let gw = Gateway::build(Setup {
        gateway_toml: "revocation_max_staleness = \"1s\"",
        revocations: Some(never_synced.clone()),
        ..Setup::default()
    })
    .await;
    let token = gw.token("acme", TokenKind::Customer);
    let reply = gw.get("acme.test", "/api/users", Some(&token)).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert_eq!(
        reply.body,
        error_doc(
            503,
            "revocation_unavailable",
            "Service Unavailable",
            "revocations cannot be checked right now; retry later"
        )
    );
    // The issuer's endpoints do not depend on it.
    assert_eq!(
        gw.get("acme.test", "/.well-known/jwks.json", None)
            .await
            .status,
        200
    );
    never_synced.mark_synced();
    assert_eq!(
        gw.get("acme.test", "/api/users", Some(&token)).await.status,
        200
    );

    let open = Gateway::build(Setup {
        gateway_toml: "revocation_fail_open = true",
        revocations: Some(RevocationView::new()),
        ..Setup::default()
    })
    .await;
    let token = open.token("acme", TokenKind::Customer);
    assert_eq!(
        open.get("acme.test", "/api/users", Some(&token))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_endpoints_go_to_the_issuer_with_the_tenant() {
    let gw = Gateway::start().await;
    let cases = [
        ("acme", "POST", "/oauth2-token"),
        ("acme", "GET", "/oauth2-token/authorize"),
        ("acme", "GET", "/oauth2-token/authorize-visitor"),
        ("acme", "POST", "/oauth2-token/revoke"),
        ("acme", "POST", "/oauth2-token/introspect"),
        ("acme", "GET", "/admin/oauth2-token/authorize"),
        ("acme", "GET", "/.well-known/jwks.json"),
        (
            "acme",
            "GET",
            "/.well-known/oauth-authorization-server/oauth2-server",
        ),
        (
            "acme",
            "GET",
            "/.well-known/oauth-authorization-server/admin/oauth2-server",
        ),
        ("globex", "GET", "/backoffice/oauth2-token/authorize"),
        (
            "globex",
            "GET",
            "/.well-known/oauth-authorization-server/backoffice/oauth2-server",
        ),
    ];
    for (tenant, method, path) in cases {
        let reply = gw
            .http
            .request(
                method.parse().unwrap(),
                gw.url(&format!("{tenant}.test"), path),
            )
            .send()
            .await
            .unwrap();
        let reply = support::Reply::from(reply).await;
        assert_eq!(reply.status, 200, "{tenant} {path}");
        assert_eq!(reply.json()["tenant"], tenant, "{path}");
        let last = gw.issuer_log.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            last,
            (tenant.to_owned(), method.to_owned(), path.to_owned())
        );
    }
    // Not issuer paths: 404 here, and neither issuer nor backend is asked.
    for path in [
        "/admin/oauth2-token-x",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/backoffice/oauth2-server",
        "/.well-known/openid-configuration",
        "/oauth2-server",
    ] {
        let reply = gw.get("acme.test", path, None).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    assert_eq!(gw.issuer_log.lock().unwrap().len(), cases.len());
    assert!(gw.backend.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_resource_metadata_for_both_apis() {
    let gw = Gateway::start().await;
    for (host, path, resource, issuer) in [
        (
            "acme.test",
            "/.well-known/oauth-protected-resource/api",
            "http://acme.test/api",
            "http://acme.test/oauth2-server",
        ),
        (
            "acme.test",
            "/.well-known/oauth-protected-resource/admin/api",
            "http://acme.test/admin/api",
            "http://acme.test/admin/oauth2-server",
        ),
        (
            "globex.test",
            "/.well-known/oauth-protected-resource/api",
            "https://globex.test/api",
            "https://globex.test/oauth2-server",
        ),
        (
            "globex.test",
            "/.well-known/oauth-protected-resource/backoffice/api",
            "https://globex.test/backoffice/api",
            "https://globex.test/backoffice/oauth2-server",
        ),
    ] {
        let reply = gw.get(host, path, None).await;
        assert_eq!(reply.status, 200, "{host}{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let doc = reply.json();
        assert_eq!(doc["resource"], resource);
        assert_eq!(doc["authorization_servers"], serde_json::json!([issuer]));
        assert_eq!(
            doc["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
    }
    assert_eq!(
        gw.get(
            "globex.test",
            "/.well-known/oauth-protected-resource/admin/api",
            None
        )
        .await
        .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_for_the_storefront_api_and_token_endpoint_only() {
    let gw = Gateway::start().await;
    let preflight = |host: &str, path: &str, origin: &str| {
        gw.http
            .request(reqwest::Method::OPTIONS, gw.url(host, path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let shop = "https://shop.acme.test";
    for path in ["/api/orders", "/oauth2-token", "/oauth2-token/revoke"] {
        let reply = support::Reply::from(preflight("acme.test", path, shop).await.unwrap()).await;
        assert_eq!(reply.status, 204, "{path}");
        assert_eq!(reply.header("access-control-allow-origin"), Some(shop));
        assert!(
            reply
                .header("access-control-allow-methods")
                .unwrap()
                .contains("POST")
        );
        assert!(
            reply
                .header("access-control-allow-headers")
                .unwrap()
                .contains("Authorization")
        );
    }
    let forbidden = error_doc(
        403,
        "cors_forbidden",
        "Forbidden",
        "this origin may not call this endpoint",
    );
    for (host, path, origin) in [
        ("acme.test", "/api/orders", "https://evil.example"),
        ("acme.test", "/admin/api/orders", shop),
        ("acme.test", "/oauth2-token/authorize", shop),
        ("globex.test", "/api/orders", shop),
    ] {
        let reply = support::Reply::from(preflight(host, path, origin).await.unwrap()).await;
        assert_eq!(reply.status, 403, "{host}{path} from {origin}");
        assert_eq!(reply.body, forbidden);
        assert_eq!(reply.header("access-control-allow-origin"), None);
    }
    assert!(
        gw.issuer_log.lock().unwrap().is_empty(),
        "preflights are answered by the gateway"
    );
    assert!(gw.backend.requests().is_empty());

    // Actual requests: the allowed origin is named, on errors too.
    let token = gw.token("acme", TokenKind::Customer);
    let reply = gw
        .http
        .get(gw.url("acme.test", "/api/orders"))
        .bearer_auth(&token)
        .header("origin", shop)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.headers()["access-control-allow-origin"], shop);
    let reply = gw
        .http
        .get(gw.url("acme.test", "/api/orders"))
        .header("origin", shop)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert_eq!(reply.headers()["access-control-allow-origin"], shop);
    assert!(
        reply.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("WWW-Authenticate")
    );
    let bo = gw.token("acme", TokenKind::BackofficeUser);
    let reply = gw
        .http
        .get(gw.url("acme.test", "/admin/api/orders"))
        .bearer_auth(&bo)
        .header("origin", shop)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_a_request_id() {
    let gw = Gateway::start().await;
    let reply = gw.get("acme.test", "/nowhere", None).await;
    assert!(
        reply
            .header("x-request-id")
            .is_some_and(|id| id.len() >= 32)
    );
    let reply = gw
        .http
        .get(gw.url("acme.test", "/nowhere"))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.headers()["x-request-id"], "trace-me");
}
