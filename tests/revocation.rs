//! RFC 7009 revocation, RFC 7662 introspection, and revoking a subject,
//! end to end: every revocation reaches the store and the revocation view.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use splitgate_shared::revocation;
use support::{Reply, Server};

async fn post(
    s: &Server,
    host: &str,
    path: &str,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> Reply {
    let req = s
        .http
        .post(s.url(host, path))
        .basic_auth(client.0, Some(client.1))
        .form(form);
    Reply::from(req.send().await.unwrap()).await
}

async fn introspect(s: &Server, host: &str, client: (&str, &str), token: &str) -> Value {
    let r = post(
        s,
        host,
        "/oauth2-token/introspect",
        client,
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.json()
}

struct Login {
    client: (String, String),
    access: String,
    refresh: String,
}

async fn login(s: &Server, tenant: &str, host: &str, side: &str, user: &str) -> Login {
    let client = s.client(tenant, json!({"side": side, "name": "app", "grants": ["password", "refresh_token"], "scopes": ["orders"]})).await;
    let r = s
        .token(
            host,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", "correct horse"),
            ],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    Login {
        client,
        access: body["access_token"].as_str().unwrap().into(),
        refresh: body["refresh_token"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn introspection_describes_live_tokens_and_nothing_else() {
    let s = Server::start("").await;
    s.user("acme", "backoffice", "alice", "correct horse").await;
    s.user("globex", "backoffice", "alice", "correct horse")
        .await;
    let l = login(&s, "acme", "acme.test", "backoffice", "alice").await;
    let me = (l.client.0.as_str(), l.client.1.as_str());

    let a = introspect(&s, "acme.test", me, &l.access).await;
    assert_eq!(a["active"], true);
    assert_eq!(
        (
            a["sub"].as_str(),
            a["username"].as_str(),
            a["kind"].as_str()
        ),
        (Some("alice"), Some("alice"), Some("user"))
    );
    assert_eq!(
        (a["token_type"].as_str(), a["scope"].as_str()),
        (Some("Bearer"), Some("orders"))
    );
    assert_eq!(a["iss"], "http://acme.test/admin/oauth2-server");
    assert_eq!(a["client_id"], l.client.0.as_str());
    let r = introspect(&s, "acme.test", me, &l.refresh).await;
    assert_eq!(
        (r["active"].as_bool(), r["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );

    // A client of the other side, another tenant's token, and garbage: inactive.
    let sf = s
        .client(
            "acme",
            json!({"side": "storefront", "name": "shop", "grants": ["client_credentials"]}),
        )
        .await;
    assert_eq!(
        introspect(&s, "acme.test", (&sf.0, &sf.1), &l.access).await,
        json!({"active": false})
    );
    let g = login(&s, "globex", "globex.test", "backoffice", "alice").await;
    assert_eq!(
        introspect(&s, "acme.test", me, &g.access).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&s, "acme.test", me, "not.a.token").await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&s, "acme.test", me, "opaque-garbage").await,
        json!({"active": false})
    );

    // Introspection is client-authenticated.
    post(
        &s,
        "acme.test",
        "/oauth2-token/introspect",
        (&l.client.0, "wrong"),
        &[("token", l.access.as_str())],
    )
    .await
    .assert_oauth_error(401, "invalid_client", "client authentication failed");
    post(&s, "acme.test", "/oauth2-token/introspect", me, &[])
        .await
        .assert_oauth_error(400, "invalid_request", "the `token` parameter is missing");
    s.stop().await;
}

#[tokio::test]
async fn revoking_an_access_token_records_and_publishes_it() {
    let s = Server::start("").await;
    s.user("acme", "storefront", "bob@example.com", "correct horse")
        .await;
    let l = login(&s, "acme", "acme.test", "storefront", "bob@example.com").await;
    let me = (l.client.0.as_str(), l.client.1.as_str());
    let mut events = s.store().subscribe();

    let r = post(
        &s,
        "acme.test",
        "/oauth2-token/revoke",
        me,
        &[
            ("token", l.access.as_str()),
            ("token_type_hint", "access_token"),
        ],
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    assert_eq!(
        introspect(&s, "acme.test", me, &l.access).await,
        json!({"active": false})
    );
    // The refresh family is untouched by revoking one access token.
    assert_eq!(
        introspect(&s, "acme.test", me, &l.refresh).await["active"],
        true
    );

    let jti = support::claims(&l.access)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = revocation::load(s.store(), "acme").await.unwrap();
    assert!(
        stored
            .iter()
            .any(|r| matches!(r, revocation::Revocation::Token { jti: j, .. } if *j == jti)),
        "{stored:?}"
    );
    let published = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(splitgate_shared::store::Notice::Event(e)) = events.next().await {
                return e;
            }
        }
    })
    .await
    .expect("the revocation is published within 5 s");
    assert_eq!(published.tenant, "acme");
    s.stop().await;
}

#[tokio::test]
async fn revocation_answers_200_for_unknown_and_foreign_tokens() {
    let s = Server::start("").await;
    s.user("acme", "backoffice", "alice", "correct horse").await;
    let l = login(&s, "acme", "acme.test", "backoffice", "alice").await;
    let other = s
        .client(
            "acme",
            json!({"side": "backoffice", "name": "other", "grants": ["client_credentials"]}),
        )
        .await;
    for token in [
        "unknown-token",
        "a.b.c",
        l.access.as_str(),
        l.refresh.as_str(),
    ] {
        let r = post(
            &s,
            "acme.test",
            "/oauth2-token/revoke",
            (&other.0, &other.1),
            &[("token", token)],
        )
        .await;
        assert_eq!((r.status, r.text.as_str()), (200, ""), "{token}");
    }
    // Another client's tokens were not revoked.
    let me = (l.client.0.as_str(), l.client.1.as_str());
    assert_eq!(
        introspect(&s, "acme.test", me, &l.access).await["active"],
        true
    );
    assert_eq!(
        introspect(&s, "acme.test", me, &l.refresh).await["active"],
        true
    );
    // Revocation needs client authentication.
    let r = Reply::from(
        s.http
            .post(s.url("acme.test", "/oauth2-token/revoke"))
            .form(&[("token", l.access.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_oauth_error(401, "invalid_client", "client authentication is required (HTTP Basic, or client_id and client_secret in the body)");
    // Revoking the refresh token kills the family.
    let r = post(
        &s,
        "acme.test",
        "/oauth2-token/revoke",
        me,
        &[("token", l.refresh.as_str())],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect(&s, "acme.test", me, &l.refresh).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&s, "acme.test", me, &l.access).await,
        json!({"active": false}),
        "the family's access tokens die with it"
    );
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_subject_kills_earlier_tokens_but_not_later_logins() {
    let s = Server::start("").await;
    s.user("acme", "backoffice", "alice", "correct horse").await;
    let l = login(&s, "acme", "acme.test", "backoffice", "alice").await;
    let me = (l.client.0.as_str(), l.client.1.as_str());
    let (status, body) = s
        .admin(
            reqwest::Method::POST,
            "/v1/tenants/acme/revocations",
            Some(json!({"subject": "alice"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "subject");
    assert_eq!(
        introspect(&s, "acme.test", me, &l.access).await,
        json!({"active": false})
    );
    s.token(
        "acme.test",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &l.refresh),
        ],
        Some(me),
    )
    .await
    .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    // Logging in again right away yields a token that is not revoked.
    let again = s
        .token(
            "acme.test",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "correct horse"),
            ],
            Some(me),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        introspect(
            &s,
            "acme.test",
            me,
            again.json()["access_token"].as_str().unwrap()
        )
        .await["active"],
        true
    );
    assert_eq!(
        introspect(
            &s,
            "acme.test",
            me,
            again.json()["refresh_token"].as_str().unwrap()
        )
        .await["active"],
        true
    );
    s.stop().await;
}

#[tokio::test]
async fn the_admin_api_requires_its_token() {
    let s = Server::start("").await;
    let r = Reply::from(
        s.http
            .get(format!(
                "http://{}/v1/tenants/acme/clients",
                s.running.admin
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"error": "unauthorized", "message": "a valid admin token is required (Authorization: Bearer ...)"})
    );
    let r = Reply::from(
        s.http
            .get(format!(
                "http://{}/v1/tenants/acme/clients",
                s.running.admin
            ))
            .bearer_auth("x".repeat(43))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = Reply::from(
        s.http
            .get(format!("http://{}/healthz", s.running.admin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, "ok\n"));
    let r = Reply::from(
        s.http
            .get(format!("http://{}/readyz", s.running.admin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, "ready\n"));
    let (status, body) = s
        .admin(reqwest::Method::GET, "/v1/tenants/nope/clients", None)
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "not_found", "message": "no tenant `nope` in the configuration"})
        )
    );
    let (status, body) = s.admin(reqwest::Method::POST, "/v1/tenants/acme/clients", Some(json!({"side": "storefront", "name": "x", "public": true, "grants": ["client_credentials"]}))).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "invalid_request", "message": "a public client cannot use client_credentials: it has no secret"})
        )
    );
    let (status, body) = s.admin(reqwest::Method::POST, "/v1/tenants/acme/users", Some(json!({"side": "storefront", "username": "not-an-email", "password": "correct horse"}))).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "invalid_request", "message": "a storefront customer is registered by email address"})
        )
    );
    s.stop().await;
}
