//! The code flow with PKCE end to end over real sockets, driven with plain
//! HTTP (forms posted by hand): login and consent on each side of two
//! tenants, the session that spares a second login, logout, guest codes
//! and metadata. The code grant's refusals are in `authorize_codes.rs`.

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::{
    ACME_BACKOFFICE, ACME_STOREFRONT, Agent, GLOBEX_BACKOFFICE, PASSWORD, REDIRECT, Side,
    api_status as api, app, code_request as request, exchange, start_with_backend as start,
};
use serde_json::{Value, json};
use support::{Reply, claims};

/// The other side of the same tenant.
fn other(side: &Side) -> Side {
    match (side.tenant, side.name) {
        ("acme", "backoffice") => ACME_STOREFRONT,
        ("acme", _) => ACME_BACKOFFICE,
        _ => Side {
            prefix: "",
            name: "storefront",
            ..*side
        },
    }
}

#[tokio::test]
async fn login_consent_and_code_exchange_on_each_side() {
    let (s, backend) = start("").await;
    for side in [ACME_BACKOFFICE, ACME_STOREFRONT, GLOBEX_BACKOFFICE] {
        side.user(&s).await;
        let client_id = app(&s, &side, json!({})).await;
        let pkce = browser::pkce();
        let authorize = side.authorize(&s, &request(&client_id, &pkce.challenge, "st-1"));
        let mut agent = Agent::new(&s);

        // The login page, with its headers and an anonymous session.
        let page = agent.get(&authorize).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            page.header("content-security-policy"),
            Some(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://127.0.0.1:45678; frame-ancestors 'none'; base-uri 'none'"
            )
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        let anonymous = agent.session(side.host).unwrap().clone();
        let secure = if side.tenant == "globex" {
            "; Secure"
        } else {
            ""
        };
        assert_eq!(
            anonymous.raw,
            format!(
                "sg_session={}; Path={}/oauth2-token; Max-Age=3600; HttpOnly; SameSite=Lax{secure}",
                anonymous.value, side.prefix
            )
        );
        let tenant_name = if side.tenant == "acme" {
            "Acme Shop"
        } else {
            "Globex"
        };
        assert!(
            page.text.contains(&format!("<header>{tenant_name} · ")),
            "{}",
            page.text
        );
        assert!(page.text.contains("<meta name=\"viewport\""));
        assert!(!page.text.contains("<script"));
        let label = if side.name == "storefront" {
            "Email"
        } else {
            "Username"
        };
        assert!(
            page.text
                .contains(&format!("<label for=\"username\">{label}</label>"))
        );
        assert!(
            page.text
                .contains(&format!("<strong>{} app</strong>", side.name))
        );

        // Login: a new session, back to authorize with the same request.
        let after_login = side
            .login(&s, &mut agent, &page, side.login, PASSWORD)
            .await;
        assert_eq!(after_login.status, 303, "{}", after_login.text);
        let query = authorize.split_once('?').unwrap().1;
        assert_eq!(
            after_login.header("location").unwrap(),
            format!("{}/oauth2-token/authorize?{query}", side.prefix)
        );
        let session = agent.session(side.host).unwrap().clone();
        assert_ne!(
            session.value, anonymous.value,
            "the session id changes at login"
        );
        assert!(
            session
                .raw
                .contains("Max-Age=28800; HttpOnly; SameSite=Lax")
        );

        // Consent names the client, the scopes and the user.
        let consent = side.follow(&s, &mut agent, &after_login).await;
        assert_eq!(consent.status, 200, "{}", consent.text);
        assert!(consent.text.contains(&format!(
            "<strong id=\"client-name\">{} app</strong>",
            side.name
        )));
        assert!(
            consent
                .text
                .contains("<ul id=\"scopes\"><li><code>read</code></li></ul>")
        );
        assert!(
            consent
                .text
                .contains(&format!("<strong id=\"subject\">{}</strong>", side.login))
        );
        assert!(consent.text.contains("<strong>127.0.0.1:45678</strong>"));

        // Allow: code, state and iss, in that order, at the sent URI.
        let allowed = side.decide(&s, &mut agent, &consent, "allow").await;
        assert_eq!(allowed.status, 303);
        let location = allowed.header("location").unwrap();
        assert!(
            location.starts_with(&format!("{REDIRECT}?code=")),
            "{location}"
        );
        let params = browser::query_of(location);
        let names: Vec<_> = params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["code", "state", "iss"]);
        assert_eq!(params[1].1, "st-1");
        assert_eq!(params[2].1, side.iss());
        let code = &params[0].1;
        assert_eq!(code.len(), 43);

        // The code buys tokens of this side, which the gateway accepts on
        // this side only.
        let r = exchange(&s, &side, &client_id, code, &pkce.verifier).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let body = r.json();
        let access = body["access_token"].as_str().unwrap();
        let c = claims(access);
        assert_eq!(c["iss"], side.iss());
        assert_eq!(c["aud"], side.aud());
        assert_eq!(c["sub"], side.login);
        assert_eq!(c["kind"], side.kind);
        assert_eq!(c["client_id"], client_id.as_str());
        assert_eq!(c["scope"], "read");
        if side.tenant == "acme" {
            assert_eq!(api(&s, &side, access).await, 200);
            let seen = backend.requests().pop().unwrap();
            assert_eq!(seen.auth("subject"), Some(side.login));
            assert_eq!(seen.auth("kind"), Some(side.kind));
            assert_eq!(seen.auth("side"), Some(side.name));
            assert_eq!(api(&s, &other(&side), access).await, 401);
        }
        let refreshed = s
            .token(
                side.host,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", body["refresh_token"].as_str().unwrap()),
                    ("client_id", &client_id),
                ],
                None,
            )
            .await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
        assert_eq!(
            claims(refreshed.json()["access_token"].as_str().unwrap())["sid"],
            c["sid"]
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn the_session_spares_a_second_login_until_logout() {
    let (s, _backend) = start("").await;
    let side = ACME_STOREFRONT;
    side.user(&s).await;
    let client_id = app(&s, &side, json!({})).await;
    let mut agent = Agent::new(&s);
    let pkce = browser::pkce();
    side.approve(
        &s,
        &mut agent,
        &side.authorize(&s, &request(&client_id, &pkce.challenge, "one")),
    )
    .await;

    // Same client, same scope: straight back with a code.
    let pkce = browser::pkce();
    let again = agent
        .get(&side.authorize(&s, &request(&client_id, &pkce.challenge, "two")))
        .await;
    assert_eq!(again.status, 302, "{}", again.text);
    let location = again.header("location").unwrap();
    assert_eq!(browser::param(location, "state").as_deref(), Some("two"));
    let code = browser::param(location, "code").unwrap();
    assert_eq!(
        exchange(&s, &side, &client_id, &code, &pkce.verifier)
            .await
            .status,
        200
    );

    // More scope than was allowed: consent again, but no login.
    let mut wider = request(&client_id, &pkce.challenge, "three");
    wider[4] = ("scope", "read write");
    let page = agent.get(&side.authorize(&s, &wider)).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text
            .contains("<li><code>read</code></li><li><code>write</code></li>")
    );
    assert!(!page.text.contains("name=\"password\""));

    // Logout: a page with a button, then the session is gone.
    let logout_url = s.url(side.host, "/oauth2-token/authorize/logout");
    let confirm = agent.get(&logout_url).await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .text
            .contains("You are signed in as cat@example.com.")
    );
    let csrf = browser::hidden(&confirm.text, "csrf");
    let out = agent.post(&logout_url, &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert!(
        out.text
            .contains("<p class=\"message\">You are signed out of Acme Shop.</p>")
    );
    assert_eq!(
        out.header("set-cookie"),
        Some("sg_session=; Path=/oauth2-token; Max-Age=0; HttpOnly; SameSite=Lax")
    );
    assert!(agent.session(side.host).is_none());
    let page = agent
        .get(&side.authorize(&s, &request(&client_id, &pkce.challenge, "four")))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("name=\"password\""), "login again");
    let not_in = agent.get(&logout_url).await;
    assert!(not_in.text.contains("You are not signed in."));

    // "Not you?" on the consent page signs out and returns to authorize.
    let after_login = side
        .login(&s, &mut agent, &page, side.login, PASSWORD)
        .await;
    let consent = side.follow(&s, &mut agent, &after_login).await;
    let query = browser::hidden(&consent.text, "continue").replace("&amp;", "&");
    let csrf = browser::hidden(&consent.text, "csrf");
    let switched = agent
        .post(&logout_url, &[("csrf", &csrf), ("continue", &query)])
        .await;
    assert_eq!(switched.status, 303);
    assert_eq!(
        switched.header("location").unwrap(),
        format!("/oauth2-token/authorize?{query}")
    );
    let page = side.follow(&s, &mut agent, &switched).await;
    assert!(page.text.contains("name=\"password\""));
    s.stop().await;
}

#[tokio::test]
async fn skip_consent_clients_and_deny() {
    let (s, _backend) = start("").await;
    let side = ACME_BACKOFFICE;
    side.user(&s).await;
    let trusted = app(&s, &side, json!({"skip_consent": true, "name": "Trusted"})).await;
    let mut agent = Agent::new(&s);
    let pkce = browser::pkce();
    let page = agent
        .get(&side.authorize(&s, &request(&trusted, &pkce.challenge, "s")))
        .await;
    let after_login = side
        .login(&s, &mut agent, &page, side.login, PASSWORD)
        .await;
    let answer = side.follow(&s, &mut agent, &after_login).await;
    assert_eq!(answer.status, 302, "no consent page: {}", answer.text);
    let code = browser::param(answer.header("location").unwrap(), "code").unwrap();
    assert_eq!(
        exchange(&s, &side, &trusted, &code, &pkce.verifier)
            .await
            .status,
        200
    );

    // Deny: access_denied with state and iss; the session stays.
    let asks = app(&s, &side, json!({"name": "Asks <first>"})).await;
    let consent = agent
        .get(&side.authorize(&s, &request(&asks, &pkce.challenge, "d")))
        .await;
    assert_eq!(consent.status, 200);
    assert!(consent.text.contains("Asks &lt;first&gt;"), "escaped");
    let denied = side.decide(&s, &mut agent, &consent, "deny").await;
    assert_eq!(denied.status, 303);
    assert_eq!(
        denied.header("location").unwrap(),
        "http://127.0.0.1:45678/callback?error=access_denied&error_description=the+user+denied+the+request&state=d&iss=http%3A%2F%2Facme.test%2Fadmin%2Foauth2-server"
    );
    // Neither decision: a page; the form is spent either way.
    let consent = agent
        .get(&side.authorize(&s, &request(&asks, &pkce.challenge, "e")))
        .await;
    let neither = side.decide(&s, &mut agent, &consent, "maybe").await;
    assert_eq!(neither.status, 400);
    assert!(neither.text.contains(
        "<p class=\"message\">Choose Allow or Deny. Go back to the application and start again.</p>"
    ));
    s.stop().await;
}

#[tokio::test]
async fn guest_codes_need_no_login() {
    let (s, backend) = start("").await;
    let side = ACME_STOREFRONT;
    let client_id = app(&s, &side, json!({})).await;
    let pkce = browser::pkce();
    let pairs = request(&client_id, &pkce.challenge, "g");
    let url = browser::url_with(&s, side.host, "/oauth2-token/authorize-visitor", &pairs);
    let r = s.http.get(&url).send().await.unwrap();
    let r = Reply::from(r).await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert!(r.header("set-cookie").is_none(), "no session for guests");
    let location = r.header("location").unwrap();
    let names: Vec<_> = browser::query_of(location)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names, ["code", "state", "iss"]);
    let code = browser::param(location, "code").unwrap();
    let tokens = exchange(&s, &side, &client_id, &code, &pkce.verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let access = tokens.json()["access_token"].as_str().unwrap().to_owned();
    let c = claims(&access);
    assert_eq!(c["kind"], "visitor");
    assert!(c["sub"].as_str().unwrap().starts_with("visitor:"));
    assert_eq!(c["aud"], "http://acme.test/api");
    assert!(tokens.json()["refresh_token"].is_string());
    assert_eq!(api(&s, &side, &access).await, 200);
    assert_eq!(
        backend.requests().pop().unwrap().auth("kind"),
        Some("visitor")
    );
    // Every request is a new visitor.
    let r = Reply::from(s.http.get(&url).send().await.unwrap()).await;
    let code = browser::param(r.header("location").unwrap(), "code").unwrap();
    let second = exchange(&s, &side, &client_id, &code, &pkce.verifier).await;
    assert_ne!(
        claims(second.json()["access_token"].as_str().unwrap())["sub"],
        c["sub"]
    );

    // POST is 405; the back office has no guest endpoint; a back-office
    // client is not served here.
    let post = Reply::from(s.http.post(&url).send().await.unwrap()).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    assert!(post.text.contains("<p class=\"message\">Use GET here.</p>"));
    let bo = browser::url_with(
        &s,
        side.host,
        "/admin/oauth2-token/authorize-visitor",
        &pairs,
    );
    let bo = Reply::from(s.http.get(&bo).send().await.unwrap()).await;
    bo.assert_oauth_error(404, "invalid_request", "no such endpoint");
    let staff = app(&s, &ACME_BACKOFFICE, json!({})).await;
    let staff_url = browser::url_with(
        &s,
        side.host,
        "/oauth2-token/authorize-visitor",
        &request(&staff, &pkce.challenge, "g"),
    );
    let r = Reply::from(s.http.get(&staff_url).send().await.unwrap()).await;
    assert_eq!(r.status, 404);
    assert!(r.header("location").is_none());
    assert!(
        r.text
            .contains("<p class=\"message\">This application does not sign in here.</p>")
    );
    s.stop().await;
}

#[tokio::test]
async fn metadata_lists_the_code_flow() {
    let (s, _backend) = start("").await;
    for (host, path, base, side_prefix) in [
        (
            "acme.test",
            "/.well-known/oauth-authorization-server/oauth2-server",
            "http://acme.test",
            "",
        ),
        (
            "acme.test",
            "/.well-known/oauth-authorization-server/admin/oauth2-server",
            "http://acme.test",
            "/admin",
        ),
        (
            "globex.test",
            "/.well-known/oauth-authorization-server/backoffice/oauth2-server",
            "https://globex.test",
            "/backoffice",
        ),
    ] {
        let doc: Value = s
            .http
            .get(s.url(host, path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], format!("{base}{side_prefix}/oauth2-server"));
        assert_eq!(
            doc["authorization_endpoint"],
            format!("{base}{side_prefix}/oauth2-token/authorize")
        );
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            json!(["S256", "plain"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "client_credentials",
                "password",
                "authorization_code",
                "refresh_token"
            ])
        );
    }
    s.stop().await;
}
