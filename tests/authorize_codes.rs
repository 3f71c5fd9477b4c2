//! The `authorization_code` grant at the token endpoint: the code is
//! bound to its client, redirect URI and PKCE challenge, works once (a
//! second use revokes what the first issued), expires, and PKCE is optional
//! only for confidential clients; every refusal with its exact status and
//! body.

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::time::Duration;

use browser::{
    ACME_STOREFRONT, Agent, REDIRECT, REGISTERED, Side, api_status as api, app,
    code_request as request, exchange, start_with_backend as start,
};
use serde_json::json;
use support::{Reply, Server};

const SHORT_CODES: &str = r#"
[tenants.short]
name = "Short"
hosts = ["short.test"]
upstream = "http://127.0.0.1:9"
auth_code_ttl = "1s"
"#;

/// A token request's fields.
type Form = Vec<(&'static str, String)>;

/// A code approved on the storefront by a fresh agent.
async fn fresh_code(s: &Server, client_id: &str, challenge: &str) -> String {
    let mut agent = Agent::new(s);
    let url = ACME_STOREFRONT.authorize(s, &request(client_id, challenge, "x"));
    let location = ACME_STOREFRONT.approve(s, &mut agent, &url).await;
    browser::param(&location, "code").unwrap()
}

#[tokio::test]
async fn code_reuse_revokes_what_the_first_exchange_issued() {
    let (s, _backend) = start("").await;
    let side = ACME_STOREFRONT;
    side.user(&s).await;
    let client_id = app(&s, &side, json!({})).await;
    let pkce = browser::pkce();
    let code = fresh_code(&s, &client_id, &pkce.challenge).await;
    let first = exchange(&s, &side, &client_id, &code, &pkce.verifier).await;
    assert_eq!(first.status, 200);
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = first.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(api(&s, &side, &access).await, 200);

    let second = exchange(&s, &side, &client_id, &code, &pkce.verifier).await;
    second.assert_oauth_error(
        400,
        "invalid_grant",
        "the authorization code was already used; the tokens issued for it have been revoked",
    );
    assert_eq!(
        api(&s, &side, &access).await,
        401,
        "the first access token is revoked"
    );
    let r = s
        .token(
            side.host,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &client_id),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    // A third try says the same.
    let third = exchange(&s, &side, &client_id, &code, &pkce.verifier).await;
    assert_eq!(third.json()["error"], "invalid_grant");
    s.stop().await;
}

#[tokio::test]
async fn the_code_is_bound_to_client_redirect_uri_and_verifier() {
    let (s, _backend) = start("").await;
    let side = ACME_STOREFRONT;
    side.user(&s).await;
    let client_id = app(&s, &side, json!({})).await;
    let thief = app(&s, &side, json!({"name": "thief"})).await;
    let pkce = browser::pkce();
    let code = fresh_code(&s, &client_id, &pkce.challenge).await;
    let grant = |client: &str, redirect: Option<&str>, verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("client_id", client.to_owned()),
        ];
        form.extend(redirect.map(|r| ("redirect_uri", r.to_owned())));
        form.extend(verifier.map(|v| ("code_verifier", v.to_owned())));
        form
    };
    let cases: Vec<(Form, u16, &str, &str)> = vec![
        (
            grant(&thief, Some(REDIRECT), Some(&pkce.verifier)),
            400,
            "invalid_grant",
            "the authorization code was issued to another client",
        ),
        (
            grant(&client_id, Some(REDIRECT), Some(&browser::pkce().verifier)),
            400,
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        ),
        (
            grant(&client_id, Some(REDIRECT), None),
            400,
            "invalid_grant",
            "code_verifier is required: the authorization request had a code_challenge",
        ),
        (
            grant(&client_id, Some(REDIRECT), Some("too-short")),
            400,
            "invalid_request",
            "code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, -, ., _ and ~",
        ),
        (
            grant(&client_id, None, Some(&pkce.verifier)),
            400,
            "invalid_grant",
            "redirect_uri is required: the authorization request had one",
        ),
        (
            grant(
                &client_id,
                Some("http://127.0.0.1:45679/callback"),
                Some(&pkce.verifier),
            ),
            400,
            "invalid_grant",
            "redirect_uri differs from the one of the authorization request",
        ),
    ];
    for (form, status, error, description) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.token(side.host, &form, None)
            .await
            .assert_oauth_error(status, error, description);
    }
    // None of that spent the code.
    let ok = exchange(&s, &side, &client_id, &code, &pkce.verifier).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    exchange(&s, &side, &client_id, "no-such-code", &pkce.verifier)
        .await
        .assert_oauth_error(
            400,
            "invalid_grant",
            "the authorization code is unknown or has expired",
        );
    s.stop().await;
}

#[tokio::test]
async fn pkce_is_optional_only_for_confidential_clients_and_plain_only_when_allowed() {
    let (s, _backend) = start("").await;
    let side = ACME_STOREFRONT;
    side.user(&s).await;
    let (confidential, secret) = s
        .client(
            side.tenant,
            json!({"side": "storefront", "name": "server app", "redirect_uris": [REGISTERED]}),
        )
        .await;
    let mut agent = Agent::new(&s);
    let pairs = [
        ("response_type", "code"),
        ("client_id", confidential.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let location = side
        .approve(&s, &mut agent, &side.authorize(&s, &pairs))
        .await;
    let code = browser::param(&location, "code").unwrap();
    fn code_form<'a>(code: &'a str, verifier: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        form
    }
    // A verifier without a challenge is refused (PKCE downgrade).
    s.token(
        side.host,
        &code_form(&code, Some(&browser::pkce().verifier)),
        Some((&confidential, &secret)),
    )
    .await
    .assert_oauth_error(
        400,
        "invalid_grant",
        "a code_verifier was sent but the authorization request had no code_challenge",
    );
    // The secret alone is enough; without it the client is not authenticated.
    let mut no_secret = code_form(&code, None);
    no_secret.push(("client_id", confidential.as_str()));
    s.token(side.host, &no_secret, None)
        .await
        .assert_oauth_error(401, "invalid_client", "client authentication failed");
    let ok = s
        .token(
            side.host,
            &code_form(&code, None),
            Some((&confidential, &secret)),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    // `plain` for a client allowed it: the challenge is the verifier.
    let plain = app(&s, &side, json!({"allow_plain_pkce": true})).await;
    let verifier = browser::pkce().verifier;
    let pairs = [
        ("response_type", "code"),
        ("client_id", plain.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", verifier.as_str()),
        ("code_challenge_method", "plain"),
    ];
    let location = side
        .approve(&s, &mut Agent::new(&s), &side.authorize(&s, &pairs))
        .await;
    let code = browser::param(&location, "code").unwrap();
    assert_eq!(
        exchange(&s, &side, &plain, &code, &verifier).await.status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn codes_expire() {
    let (s, _backend) = start(SHORT_CODES).await;
    let side = Side {
        host: "short.test",
        tenant: "short",
        ..ACME_STOREFRONT
    };
    let client_id = app(&s, &side, json!({})).await;
    let pkce = browser::pkce();
    let url = browser::url_with(
        &s,
        side.host,
        "/oauth2-token/authorize-visitor",
        &request(&client_id, &pkce.challenge, "x"),
    );
    let r = Reply::from(s.http.get(&url).send().await.unwrap()).await;
    let code = browser::param(r.header("location").unwrap(), "code").unwrap();
    let key = splitgate_shared::store::key(
        "short",
        &format!("code:{}", splitgate_shared::secrets::hash_secret(&code)),
    );
    assert!(
        s.store().get(&key).await.unwrap().is_some(),
        "stored as its hash"
    );
    support::eventually("the code expires", Duration::from_secs(5), || async {
        s.store().get(&key).await.unwrap().is_none().then_some(())
    })
    .await;
    exchange(&s, &side, &client_id, &code, &pkce.verifier)
        .await
        .assert_oauth_error(
            400,
            "invalid_grant",
            "the authorization code is unknown or has expired",
        );
    s.stop().await;
}
