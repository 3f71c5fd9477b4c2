//! Path safety (DESIGN §5), table-driven, over raw sockets so that every
//! request target reaches the gateway byte for byte: no hostile spelling
//! of a path ever gets a request to the backend on a side its token does
//! not belong to. Each target is tried with a storefront (customer) token
//! and a back-office (user) token of the same tenant.

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
