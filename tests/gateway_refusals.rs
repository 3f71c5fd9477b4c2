//! Every refusal of the gateway that concerns a request's credentials or
//! head, end to end over real sockets: exact status, JSON:API body and
//! RFC 6750 challenge, and the backend never asked.

#![allow(clippy::unwrap_used)]

#[path = "support/gateway.rs"]
mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use splitgate_shared::AccessClaims;
use splitgate_shared::keys::SigningAlg;
use splitgate_shared::revocation::RevocationView;
use support::{Gateway, Setup, TokenKind, error_doc, raw};

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
    never_synced.mark_synced("acme");
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
