//! `POST /oauth2-token` end to end over real sockets, for two tenants at
//! once: every grant, and every error case of issue 2 with its exact
//! status and body.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, claims, header};

const SHORT_TENANT: &str = r#"
[tenants.short]
hosts = ["short.test"]
upstream = "http://127.0.0.1:9"
access_token_ttl = "90s"
refresh_token_ttl = "1s"
"#;

async fn cc_client(s: &Server, tenant: &str, side: &str) -> (String, String) {
    s.client(tenant, json!({"side": side, "name": format!("{side} integration"), "grants": ["client_credentials"], "scopes": ["read", "write"]}))
        .await
}

async fn app_client(s: &Server, tenant: &str, side: &str) -> (String, String) {
    s.client(tenant, json!({"side": side, "name": format!("{side} app"), "grants": ["password", "refresh_token"]})).await
}

#[tokio::test]
async fn client_credentials_tokens_carry_the_side_and_tenant() {
    let s = Server::start("").await;
    for (host, tenant, side, iss, aud) in [
        (
            "acme.test",
            "acme",
            "backoffice",
            "http://acme.test/admin/oauth2-server",
            "http://acme.test/admin/api",
        ),
        (
            "acme.test",
            "acme",
            "storefront",
            "http://acme.test/oauth2-server",
            "http://acme.test/api",
        ),
        (
            "globex.test",
            "globex",
            "backoffice",
            "https://globex.test/backoffice/oauth2-server",
            "https://globex.test/backoffice/api",
        ),
        (
            "globex.test",
            "globex",
            "storefront",
            "https://globex.test/oauth2-server",
            "https://globex.test/api",
        ),
    ] {
        let (id, secret) = cc_client(&s, tenant, side).await;
        let r = s
            .token(
                host,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
        let body = r.json();
        let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["access_token", "expires_in", "token_type"],
            "no refresh token for client credentials"
        );
        assert!(
            r.text
                .starts_with(r#"{"token_type":"Bearer","expires_in":3600,"access_token":""#),
            "{}",
            r.text
        );
        let token = body["access_token"].as_str().unwrap();
        let h = header(token);
        assert_eq!(h["typ"], "at+jwt");
        assert_eq!(h["alg"], if tenant == "acme" { "RS256" } else { "ES256" });
        assert!(h["kid"].as_str().is_some_and(|k| !k.is_empty()));
        let c = claims(token);
        assert_eq!(c["iss"], iss);
        assert_eq!(c["aud"], aud);
        assert_eq!(c["sub"], id.as_str());
        assert_eq!(c["client_id"], id.as_str());
        assert_eq!(c["kind"], "client");
        assert_eq!(c["scope"], "read write");
        assert_eq!(
            c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
            3600
        );
        assert_eq!(c["nbf"], c["iat"]);
        assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
        assert!(c["sid"].as_str().is_some_and(|j| j.len() >= 16));
    }
    s.stop().await;
}

#[tokio::test]
async fn basic_auth_json_bodies_and_charsets_are_accepted() {
    let s = Server::start("").await;
    let (id, secret) = cc_client(&s, "acme", "backoffice").await;
    let basic = s
        .token(
            "acme.test",
            &[("grant_type", "client_credentials"), ("scope", "read")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(basic.status, 200, "{}", basic.text);
    assert_eq!(
        claims(basic.json()["access_token"].as_str().unwrap())["scope"],
        "read"
    );

    let json_body =
        json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret})
            .to_string();
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
    ] {
        let r = s
            .http
            .post(s.url("acme.test", "/oauth2-token"))
            .header("content-type", content_type)
            .body(json_body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{content_type}");
    }
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let r = s
        .http
        .post(s.url("acme.test", "/oauth2-token"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn password_grant_checks_the_clients_side_directory() {
    let s = Server::start("").await;
    s.user("acme", "backoffice", "alice", "correct horse").await;
    s.user("acme", "storefront", "Carol@Example.com", "battery staple")
        .await;
    let (bo, bo_secret) = app_client(&s, "acme", "backoffice").await;
    let (sf, sf_secret) = app_client(&s, "acme", "storefront").await;

    let r = s
        .token(
            "acme.test",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "correct horse"),
            ],
            Some((&bo, &bo_secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert!(
        r.text
            .starts_with(r#"{"token_type":"Bearer","expires_in":3600,"access_token":""#)
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["kind"].as_str(), c["aud"].as_str()),
        (
            Some("alice"),
            Some("user"),
            Some("http://acme.test/admin/api")
        )
    );

    // Customers log in by email, case-insensitively; `sub` is the email as registered.
    let r = s
        .token(
            "acme.test",
            &[
                ("grant_type", "password"),
                ("username", "CAROL@example.COM"),
                ("password", "battery staple"),
            ],
            Some((&sf, &sf_secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["kind"].as_str(), c["aud"].as_str()),
        (
            Some("Carol@Example.com"),
            Some("customer"),
            Some("http://acme.test/api")
        )
    );

    // Wrong password, unknown user, and a user of the other side: one answer.
    for (client, secret, user, password) in [
        (&bo, &bo_secret, "alice", "wrong password"),
        (&bo, &bo_secret, "mallory", "correct horse"),
        (&bo, &bo_secret, "Carol@Example.com", "battery staple"),
        (&sf, &sf_secret, "alice", "correct horse"),
    ] {
        let r = s
            .token(
                "acme.test",
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                ],
                Some((client, secret)),
            )
            .await;
        r.assert_oauth_error(
            400,
            "invalid_grant",
            "the username or password is incorrect",
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn guest_logins_make_a_new_visitor_each_time_and_refresh_keeps_it() {
    let s = Server::start("").await;
    let (sf, sf_secret) = app_client(&s, "globex", "storefront").await;
    let guest = [
        ("grant_type", "password"),
        ("username", "guest"),
        ("password", "guest"),
    ];
    let first = s
        .token("globex.test", &guest, Some((&sf, &sf_secret)))
        .await
        .json();
    let second = s
        .token("globex.test", &guest, Some((&sf, &sf_secret)))
        .await
        .json();
    let (c1, c2) = (
        claims(first["access_token"].as_str().unwrap()),
        claims(second["access_token"].as_str().unwrap()),
    );
    assert_eq!(c1["kind"], "visitor");
    assert!(c1["sub"].as_str().unwrap().starts_with("visitor:"));
    assert_ne!(c1["sub"], c2["sub"], "every guest login is a new visitor");
    assert_eq!(c1["aud"], "https://globex.test/api");

    let refreshed = s
        .token(
            "globex.test",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ],
            Some((&sf, &sf_secret)),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let c3 = claims(refreshed.json()["access_token"].as_str().unwrap());
    assert_eq!(
        (c3["sub"].clone(), c3["kind"].clone(), c3["sid"].clone()),
        (c1["sub"].clone(), json!("visitor"), c1["sid"].clone())
    );

    let (bo, bo_secret) = app_client(&s, "globex", "backoffice").await;
    s.token("globex.test", &guest, Some((&bo, &bo_secret)))
        .await
        .assert_oauth_error(
            400,
            "invalid_grant",
            "the username or password is incorrect",
        );
    s.stop().await;
}

async fn login(s: &Server, host: &str, client: (&str, &str), user: &str, password: &str) -> Value {
    let r = s
        .token(
            host,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ],
            Some(client),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let s = Server::start("").await;
    s.user("acme", "backoffice", "alice", "correct horse").await;
    let (id, secret) = app_client(&s, "acme", "backoffice").await;
    let first = login(&s, "acme.test", (&id, &secret), "alice", "correct horse").await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();

    let second = s
        .token(
            "acme.test",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    let rt2 = second.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "the refresh token rotates");
    assert_eq!(
        claims(second.json()["access_token"].as_str().unwrap())["sid"],
        claims(first["access_token"].as_str().unwrap())["sid"]
    );

    // Narrowing is allowed, widening is not.
    let wide = s
        .token(
            "acme.test",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt2),
                ("scope", "admin"),
            ],
            Some((&id, &secret)),
        )
        .await;
    wide.assert_oauth_error(
        400,
        "invalid_scope",
        "the scope `admin` is not allowed beyond what was originally granted",
    );

    // Replaying the rotated token revokes the family: the current one dies too.
    let replay = s
        .token(
            "acme.test",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
            Some((&id, &secret)),
        )
        .await;
    replay.assert_oauth_error(
        400,
        "invalid_grant",
        "the refresh token was already used; its session has been revoked",
    );
    let after = s
        .token(
            "acme.test",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
            Some((&id, &secret)),
        )
        .await;
    after.assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    s.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_refreshes_of_one_token_give_exactly_one_success() {
    let s = Server::start("").await;
    s.user("acme", "storefront", "dave@example.com", "correct horse")
        .await;
    let (id, secret) = app_client(&s, "acme", "storefront").await;
    let rt = login(
        &s,
        "acme.test",
        (&id, &secret),
        "dave@example.com",
        "correct horse",
    )
    .await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = s.http.clone();
        let url = s.url("acme.test", "/oauth2-token");
        let (id, secret, rt) = (id.clone(), secret.clone(), rt.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn expired_revoked_and_foreign_refresh_tokens_are_invalid_grants() {
    let s = Server::start(SHORT_TENANT).await;
    s.user("short", "backoffice", "erin", "correct horse").await;
    s.user("acme", "backoffice", "alice", "correct horse").await;
    let short = app_client(&s, "short", "backoffice").await;
    let acme = app_client(&s, "acme", "backoffice").await;
    let acme_other = app_client(&s, "acme", "backoffice").await;

    // Expired: the tenant's refresh tokens live one second.
    let rt = login(
        &s,
        "short.test",
        (&short.0, &short.1),
        "erin",
        "correct horse",
    )
    .await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait (by introspection, which does not use the token up) until it has expired.
    support::eventually("the refresh token expires", Duration::from_secs(10), || {
        let req = s
            .http
            .post(s.url("short.test", "/oauth2-token/introspect"))
            .basic_auth(&short.0, Some(&short.1))
            .form(&[("token", rt.as_str())]);
        async move {
            let r = support::Reply::from(req.send().await.unwrap()).await;
            (r.json() == json!({"active": false})).then_some(())
        }
    })
    .await;
    s.token(
        "short.test",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&short.0, &short.1)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_grant",
        "the refresh token is unknown or has expired",
    );

    // Foreign: another tenant's token, and another client's token.
    let rt = login(
        &s,
        "acme.test",
        (&acme.0, &acme.1),
        "alice",
        "correct horse",
    )
    .await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.token(
        "short.test",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&short.0, &short.1)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_grant",
        "the refresh token is unknown or has expired",
    );
    let other_tenant_client = app_client(&s, "globex", "backoffice").await;
    s.token(
        "globex.test",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&other_tenant_client.0, &other_tenant_client.1)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_grant",
        "the refresh token is unknown or has expired",
    );
    s.token(
        "acme.test",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&acme_other.0, &acme_other.1)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_grant",
        "the refresh token was issued to another client",
    );

    // Revoked through RFC 7009.
    let revoke = s
        .http
        .post(s.url("acme.test", "/oauth2-token/revoke"))
        .basic_auth(&acme.0, Some(&acme.1))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    s.token(
        "acme.test",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&acme.0, &acme.1)),
    )
    .await
    .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    s.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_invalid_request_and_lose_nothing() {
    let s = Server::start("").await;
    let (id, secret) = cc_client(&s, "acme", "backoffice").await;
    let url = s.url("acme.test", "/oauth2-token");
    let send = |content_type: &'static str, body: String| {
        let req = s
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        async move { support::Reply::from(req.send().await.unwrap()).await }
    };
    let desc_missing = "the `grant_type` parameter is missing";
    send("application/json", "{\"grant_type\": ".into())
        .await
        .assert_oauth_error(400, "invalid_request", "the body is not a JSON object of strings: EOF while parsing a value at line 1 column 15");
    send("application/json", r#"{"grant_type": 5}"#.into())
        .await
        .assert_oauth_error(400, "invalid_request", "the body is not a JSON object of strings: `grant_type` must be a string at line 1 column 17");
    send("text/plain", "grant_type=client_credentials".into())
        .await
        .assert_oauth_error(
            400,
            "invalid_request",
            "the Content-Type must be application/x-www-form-urlencoded or application/json",
        );
    send(
        "application/x-www-form-urlencoded; charset=latin1",
        "grant_type=x".into(),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_request",
        "only the UTF-8 charset is supported",
    );
    send(
        "application/x-www-form-urlencoded",
        format!("client_id={id}&client_secret={secret}"),
    )
    .await
    .assert_oauth_error(400, "invalid_request", desc_missing);
    send("application/x-www-form-urlencoded", format!("grant_type=client_credentials&grant_type=password&client_id={id}&client_secret={secret}"))
        .await
        .assert_oauth_error(400, "invalid_request", "the `grant_type` parameter is repeated");
    send("application/json", format!(r#"{{"grant_type":"client_credentials","client_id":"{id}","client_id":"{id}","client_secret":"{secret}"}}"#))
        .await
        .assert_oauth_error(400, "invalid_request", "the `client_id` parameter is repeated");
    send(
        "application/x-www-form-urlencoded",
        format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}&pad={}",
            "x".repeat(70_000)
        ),
    )
    .await
    .assert_oauth_error(
        413,
        "invalid_request",
        "the request body is larger than 65536 bytes",
    );
    send(
        "application/x-www-form-urlencoded",
        format!("grant_type=urn:example:magic&client_id={id}&client_secret={secret}"),
    )
    .await
    .assert_oauth_error(
        400,
        "unsupported_grant_type",
        "the grant type `urn:example:magic` is not supported",
    );
    send(
        "application/x-www-form-urlencoded",
        format!("grant_type=password&client_id={id}&client_secret={secret}&username=a&password=b"),
    )
    .await
    .assert_oauth_error(
        400,
        "unauthorized_client",
        "this client may not use the password grant",
    );
    send(
        "application/x-www-form-urlencoded",
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=admin"),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_scope",
        "the scope `admin` is not allowed for this client",
    );

    let get = support::Reply::from(s.http.get(&url).send().await.unwrap()).await;
    get.assert_oauth_error(405, "invalid_request", "use POST");
    assert_eq!(get.header("allow"), Some("POST"));
    // Nothing was lost: the client still gets its token.
    let ok = s
        .token(
            "acme.test",
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(ok.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let s = Server::start("").await;
    let (id, secret) = cc_client(&s, "acme", "backoffice").await;
    let cc = [("grant_type", "client_credentials")];

    // Wrong secret over Basic: 401 with a Basic challenge.
    let r = s
        .token("acme.test", &cc, Some((&id, "not-the-secret")))
        .await;
    r.assert_oauth_error(401, "invalid_client", "client authentication failed");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"acme\", charset=\"UTF-8\"")
    );
    // Wrong secret in the body: 401 without a challenge.
    let r = s
        .token(
            "acme.test",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "nope"),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(401, "invalid_client", "client authentication failed");
    assert_eq!(r.header("www-authenticate"), None);
    // No authentication at all.
    s.token("acme.test", &cc, None)
        .await
        .assert_oauth_error(401, "invalid_client", "client authentication is required (HTTP Basic, or client_id and client_secret in the body)");
    // Both methods at once.
    s.token(
        "acme.test",
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
        Some((&id, &secret)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_request",
        "authenticate the client with HTTP Basic or with client_secret in the body, not both",
    );
    // The Host selects the tenant: acme's client does not exist at globex.
    s.token("globex.test", &cc, Some((&id, &secret)))
        .await
        .assert_oauth_error(401, "invalid_client", "client authentication failed");
    // A disabled client is refused like a wrong secret, and works again once enabled.
    let (status, _) = s
        .admin(
            reqwest::Method::POST,
            &format!("/v1/tenants/acme/clients/{id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    s.token("acme.test", &cc, Some((&id, &secret)))
        .await
        .assert_oauth_error(401, "invalid_client", "client authentication failed");
    s.admin(
        reqwest::Method::POST,
        &format!("/v1/tenants/acme/clients/{id}/enable"),
        None,
    )
    .await;
    assert_eq!(
        s.token("acme.test", &cc, Some((&id, &secret))).await.status,
        200
    );
    // An unknown host is not a tenant at all: the gateway answers 421.
    let r = s.token("unknown.test", &cc, Some((&id, &secret))).await;
    assert_eq!(r.status, 421);
    assert_eq!(
        r.json(),
        json!({"errors": [{"status": "421", "code": "unknown_host", "title": "Misdirected Request", "detail": "no tenant is served at this host"}]})
    );
    s.stop().await;
}

#[tokio::test]
async fn a_disabled_user_is_refused_like_a_wrong_password() {
    let s = Server::start("").await;
    s.user("acme", "backoffice", "frank", "correct horse").await;
    let (id, secret) = app_client(&s, "acme", "backoffice").await;
    let rt =
        login(&s, "acme.test", (&id, &secret), "frank", "correct horse").await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    let (status, _) = s
        .admin(
            reqwest::Method::POST,
            "/v1/tenants/acme/users/backoffice/frank/disable",
            None,
        )
        .await;
    assert_eq!(status, 200);
    s.token(
        "acme.test",
        &[
            ("grant_type", "password"),
            ("username", "frank"),
            ("password", "correct horse"),
        ],
        Some((&id, &secret)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_grant",
        "the username or password is incorrect",
    );
    s.token(
        "acme.test",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        Some((&id, &secret)),
    )
    .await
    .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    s.stop().await;
}

#[tokio::test]
async fn metadata_and_jwks_are_served_per_side_at_the_exact_paths() {
    let s = Server::start("").await;
    for (host, path, issuer) in [
        (
            "acme.test",
            "/.well-known/oauth-authorization-server/oauth2-server",
            "http://acme.test/oauth2-server",
        ),
        (
            "acme.test",
            "/.well-known/oauth-authorization-server/admin/oauth2-server",
            "http://acme.test/admin/oauth2-server",
        ),
        (
            "globex.test",
            "/.well-known/oauth-authorization-server/backoffice/oauth2-server",
            "https://globex.test/backoffice/oauth2-server",
        ),
    ] {
        let r = support::Reply::from(s.http.get(s.url(host, path)).send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let m = r.json();
        let base = issuer
            .trim_end_matches("/oauth2-server")
            .trim_end_matches("/admin")
            .trim_end_matches("/backoffice");
        assert_eq!(m["issuer"], issuer);
        assert_eq!(m["token_endpoint"], format!("{base}/oauth2-token"));
        assert_eq!(m["jwks_uri"], format!("{base}/.well-known/jwks.json"));
        assert_eq!(
            m["revocation_endpoint"],
            format!("{base}/oauth2-token/revoke")
        );
        assert_eq!(
            m["introspection_endpoint"],
            format!("{base}/oauth2-token/introspect")
        );
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "none"])
        );
    }
    let jwks = support::Reply::from(
        s.http
            .get(s.url("globex.test", "/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .json();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private parts in the JWKS");
    s.stop().await;
}
