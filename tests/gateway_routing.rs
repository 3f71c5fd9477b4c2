//! Routing, end to end over real sockets: path safety (DESIGN §5),
//! table-driven over raw sockets so that every request target reaches the
//! gateway byte for byte, with no hostile spelling of a path ever getting a
//! request to the backend on a side its token does not belong to (each
//! target is tried with a storefront and a back-office token); absolute-form
//! targets; the issuer's endpoints; the RFC 9728 metadata; CORS.

#![allow(clippy::unwrap_used)]

#[path = "support/gateway.rs"]
mod support;

use splitgate::demo::SeenRequest;
use splitgate_shared::side::Side;
use support::{Gateway, TokenKind, error_doc, raw, raw_get};

/// What the gateway makes of a request target.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Routed to `side`'s API with this canonical path: the token of that
    /// side gets 200 and the backend sees exactly this path; the other
    /// side's token gets 401.
    Routes(Side, &'static str),
    /// Refused by the gateway, whatever the token: status and code.
    Refused(u16, &'static str, &'static str),
    /// Refused by hyper's parser before the gateway sees it (400, no body).
    Unparseable,
}

use Expect::{Refused, Routes, Unparseable};

const BO: Side = Side::Backoffice;
const SF: Side = Side::Storefront;

const INVALID: u16 = 400;

fn table() -> Vec<(&'static str, Expect)> {
    let path = |detail| Refused(INVALID, "invalid_path", detail);
    let slash = path("the path contains an encoded slash");
    let backslash = path("the path contains a backslash");
    let control = path("the path contains a NUL or control character");
    let utf8 = path("the path is not valid UTF-8");
    let param = path("the path contains a ; parameter");
    let percent = path("the path contains an encoded percent sign");
    let look_alike = path("the path contains a look-alike of a dot, slash or backslash");
    let escape = path("the path contains a malformed percent-escape");
    let above = path("the path climbs above the root");
    let not_found = Refused(404, "not_found", "no route matches this path");
    vec![
        // Dot segments, plain and percent-encoded (any case).
        ("/api/../admin/api/users", Routes(BO, "/admin/api/users")),
        ("/api/./../admin/api/users", Routes(BO, "/admin/api/users")),
        (
            "/api/%2e%2e/admin/api/users",
            Routes(BO, "/admin/api/users"),
        ),
        (
            "/api/%2E%2E/admin/api/users",
            Routes(BO, "/admin/api/users"),
        ),
        ("/api/.%2e/admin/api/users", Routes(BO, "/admin/api/users")),
        ("/api/%2e./admin/api/users", Routes(BO, "/admin/api/users")),
        ("/admin/api/../../api/users", Routes(SF, "/api/users")),
        (
            "/admin/api/%2e%2e/%2e%2e/api/users",
            Routes(SF, "/api/users"),
        ),
        (
            "/.well-known/../admin/api/users",
            Routes(BO, "/admin/api/users"),
        ),
        (
            "/oauth2-token/../admin/api/users",
            Routes(BO, "/admin/api/users"),
        ),
        ("/api/users/../../../admin/api/users", above),
        ("/../admin/api/users", above),
        // Percent-encoded slashes and backslashes, raw backslashes.
        ("/api/%2F..%2Fadmin/api/users", slash),
        ("/api%2F..%2Fadmin%2Fapi%2Fusers", slash),
        ("/api/..%2fadmin/api/users", slash),
        ("/api/%5C..%5Cadmin/api/users", backslash),
        ("/api\\..\\admin\\api\\users", backslash),
        ("/api/..\\admin/api/users", backslash),
        // Double slashes are merged, on the canonical path that is forwarded.
        ("//admin/api/users", Routes(BO, "/admin/api/users")),
        ("/api//..//admin/api/users", Routes(BO, "/admin/api/users")),
        ("//api//users", Routes(SF, "/api/users")),
        // Case: matching is exact.
        ("/ADMIN/api/users", not_found),
        ("/Admin/API/users", not_found),
        ("/API/users", not_found),
        // Unreserved characters percent-encoded are the same path.
        ("/%61pi/users", Routes(SF, "/api/users")),
        ("/%61dmin/%61pi/users", Routes(BO, "/admin/api/users")),
        // NUL and control characters.
        ("/api/users%00", control),
        ("/api/users%00/../../admin/api/users", control),
        ("/api/%0d%0aX-Auth-Side:%20backoffice", control),
        // Overlong and invalid UTF-8.
        ("/api/%C0%AE%C0%AE/admin/api/users", utf8),
        ("/api/%E0%80%AE%E0%80%AE/admin/api/users", utf8),
        ("/api/%C0%AF..%C0%AFadmin/api/users", utf8),
        ("/api/%FF/../admin/api/users", utf8),
        // Unicode look-alikes of dots and slashes.
        ("/api/%EF%BC%8E%EF%BC%8E/admin/api/users", look_alike),
        ("/api/..%EF%BC%8Fadmin/api/users", look_alike),
        ("/api/\u{FF0E}\u{FF0E}/admin/api/users", look_alike),
        // ;-parameters (servlet containers drop them: `..;` would be `..`).
        ("/api/..;/admin/api/users", param),
        ("/api;/../admin/api/users", param),
        ("/admin;x=1/api/users", param),
        ("/api/users;jsessionid=x", param),
        ("/api/%3b/../admin/api/users", param),
        // Double encoding, and non-standard escapes.
        ("/api/%252e%252e/admin/api/users", percent),
        ("/api/%25%32%65%25%32%65/admin/api/users", percent),
        ("/api/%u002e%u002e/admin/api/users", escape),
        ("/api/%2/admin", escape),
        // The query is not part of the route.
        (
            "/api/users?next=/../admin/api/users",
            Routes(SF, "/api/users"),
        ),
        // Bytes no HTTP parser should accept.
        ("/api/users\t/../../admin", Unparseable),
    ]
}

/// The side of the API a path the backend received belongs to.
fn side_of(seen: &SeenRequest) -> Option<Side> {
    if seen.path.starts_with("/api/") || seen.path == "/api" {
        Some(Side::Storefront)
    } else if seen.path.starts_with("/admin/api") {
        Some(Side::Backoffice)
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hostile_path_crosses_sides() {
    let gw = Gateway::start().await;
    let table = table();
    assert!(table.len() >= 30, "at least 30 hostile paths");
    let tokens = [
        (Side::Storefront, gw.token("acme", TokenKind::Customer)),
        (
            Side::Backoffice,
            gw.token("acme", TokenKind::BackofficeUser),
        ),
    ];
    for (target, expect) in &table {
        for (token_side, token) in &tokens {
            gw.backend.log().clear();
            let reply = raw_get(gw.addr, target, "acme.test", Some(token)).await;
            let seen = gw.backend.requests();
            let case = format!("{target:?} with a {token_side} token");
            // The property: whatever reached the backend is on the token's
            // side, by its path and by the identity the gateway attached.
            for s in &seen {
                assert_eq!(side_of(s), Some(*token_side), "{case}: backend saw {s:?}");
                assert_eq!(s.auth("side"), Some(token_side.as_str()), "{case}");
            }
            match *expect {
                Routes(side, canonical) if side == *token_side => {
                    assert_eq!(reply.status, 200, "{case}: {}", reply.body);
                    assert_eq!(seen.len(), 1, "{case}");
                    assert_eq!(seen[0].path, canonical, "{case}");
                }
                Routes(..) => {
                    assert_eq!(reply.status, 401, "{case}: {}", reply.body);
                    assert_eq!(
                        reply.body,
                        error_doc(
                            401,
                            "invalid_token",
                            "Unauthorized",
                            "the token is not for this API"
                        ),
                        "{case}"
                    );
                    assert!(seen.is_empty(), "{case}");
                }
                Refused(status, code, detail) => {
                    let title = if status == 404 {
                        "Not Found"
                    } else {
                        "Bad Request"
                    };
                    assert_eq!(reply.status, status, "{case}: {}", reply.body);
                    assert_eq!(reply.body, error_doc(status, code, title, detail), "{case}");
                    assert!(seen.is_empty(), "{case}");
                }
                Unparseable => {
                    assert_eq!(reply.status, 400, "{case}: {}", reply.body);
                    assert!(seen.is_empty(), "{case}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_targets_and_disagreeing_hosts() {
    let gw = Gateway::start().await;
    let customer = gw.token("acme", TokenKind::Customer);
    let request = |target: &str, host: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {customer}\r\nConnection: close\r\n\r\n"
        )
    };
    // The authority of the target is the host; dot segments resolve as usual.
    let reply = raw(
        gw.addr,
        request("http://acme.test/api/users", "acme.test").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = raw(
        gw.addr,
        request("http://acme.test/api/../admin/api/users", "acme.test").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 401);
    // A Host that disagrees with the target's authority is refused, in
    // either direction, rather than routed by one and read by the other.
    let disagree = error_doc(
        400,
        "invalid_host",
        "Bad Request",
        "the Host header disagrees with the request target",
    );
    for (target, host) in [
        ("http://globex.test/api/users", "acme.test"),
        ("http://acme.test/api/users", "globex.test"),
        ("http://acme.test:1/api/users", "acme.test"),
    ] {
        let reply = raw(gw.addr, request(target, host).as_bytes()).await;
        assert_eq!(reply.status, 400, "{target} / {host}");
        assert_eq!(reply.body, disagree);
    }
    let reply = raw(
        gw.addr,
        request("http://user@acme.test/api/users", "user@acme.test").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400);
    // A token of one tenant at the other tenant's host, in absolute form.
    let reply = raw(
        gw.addr,
        request("http://globex.test/api/users", "globex.test").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 401);
    let seen = gw.backend.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/api/users");
    assert_eq!(seen[0].auth("tenant"), Some("acme"));
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
