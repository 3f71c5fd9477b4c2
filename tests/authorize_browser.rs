//! The code flow in a real browser: headless Chromium (through chromedriver
//! and WebDriver), with JavaScript switched off for pages, logs in and
//! consents on each side of a tenant, lands on the client's loopback
//! redirect URI with a code, and the code buys a token that the gateway
//! accepts on that side only. Screenshots of the login and consent pages
//! are saved under `target/test-output/`.
//!
//! This test never skips: without `chromium` and `chromedriver` it fails
//! and says how to install them.

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::panic::AssertUnwindSafe;

use browser::{ACME_BACKOFFICE, ACME_STOREFRONT, Browser, Callback, PASSWORD, Side};
use fantoccini::Locator;
use futures_util::FutureExt;
use serde_json::json;
use splitgate::demo::DemoBackend;
use support::{Server, claims};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_consents_and_gets_a_working_code_on_each_side() {
    let (s, backend) = browser::start_with_backend("").await;
    let callback = Callback::start().await;
    let browser = Browser::start(&["acme.test"]).await;
    let outcome = AssertUnwindSafe(async {
        // Pages run without JavaScript here: a script cannot even set a title.
        c_goto_data(&browser).await;
        for side in [ACME_BACKOFFICE, ACME_STOREFRONT] {
            flow(&s, &backend, &callback, &browser, &side).await;
        }
    })
    .catch_unwind()
    .await;
    browser.close().await;
    s.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn c_goto_data(browser: &Browser) {
    let c = &browser.client;
    c.goto("data:text/html,<title>static</title><script>document.title='scripted'</script>")
        .await
        .unwrap();
    assert_eq!(c.title().await.unwrap(), "static", "JavaScript is off");
}

async fn flow(
    s: &Server,
    backend: &DemoBackend,
    callback: &Callback,
    browser: &Browser,
    side: &Side,
) {
    let c = &browser.client;
    side.user(s).await;
    let (client_id, _) = s
        .client(
            side.tenant,
            json!({"side": side.name, "name": format!("Acme {} app", side.name), "public": true,
                   "redirect_uris": ["http://127.0.0.1/callback"], "scopes": ["read", "write"]}),
        )
        .await;
    let pkce = browser::pkce();
    let state = format!("state-{}", side.name);
    let redirect_uri = callback.redirect_uri();
    let authorize = side.authorize(
        s,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", &redirect_uri),
            ("state", &state),
            ("scope", "read write"),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    );

    // Login page.
    c.goto(&authorize).await.unwrap();
    let username = c.wait().for_element(Locator::Id("username")).await.unwrap();
    assert!(c.title().await.unwrap().ends_with("· Acme Shop"));
    let header = c
        .find(Locator::Css("header"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let side_label = if side.name == "backoffice" {
        "Back office"
    } else {
        "Storefront"
    };
    assert_eq!(
        header.to_lowercase(),
        format!("acme shop · {side_label}").to_lowercase()
    );
    browser
        .screenshot(&format!("authorize-login-{}.png", side.name))
        .await;

    // A wrong password first: the page says so, without saying which.
    username.send_keys(side.login).await.unwrap();
    let password = c.find(Locator::Id("password")).await.unwrap();
    password.send_keys("not my password").await.unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = c
        .wait()
        .for_element(Locator::Id("login-error"))
        .await
        .unwrap();
    let expected = match side.name {
        "backoffice" => "The username or password is incorrect.",
        _ => "The email or password is incorrect.",
    };
    assert_eq!(error.text().await.unwrap(), expected);

    // The right password (the name typed is kept).
    let password = c.find(Locator::Id("password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Consent page.
    let allow = c.wait().for_element(Locator::Id("allow")).await.unwrap();
    let client_name = c
        .find(Locator::Id("client-name"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(client_name, format!("Acme {} app", side.name));
    let scopes = c
        .find(Locator::Id("scopes"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        scopes.split_whitespace().collect::<Vec<_>>(),
        ["read", "write"]
    );
    browser
        .screenshot(&format!("authorize-consent-{}.png", side.name))
        .await;
    allow.click().await.unwrap();

    // Redirected to the client with code, state and iss.
    let landed = browser
        .wait_for_url("the redirect to the client", |u| {
            u.starts_with(&redirect_uri)
        })
        .await;
    let params = browser::query_of(&landed);
    let names: Vec<_> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["code", "state", "iss"]);
    assert_eq!(params[1].1, state);
    assert_eq!(params[2].1, side.iss());
    assert!(
        callback
            .requests()
            .iter()
            .any(|r| landed.ends_with(r.as_str())),
        "the callback server saw the redirect"
    );
    let code = &params[0].1;

    // The client exchanges the code.
    let tokens = s
        .token(
            side.host,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect_uri),
                ("client_id", &client_id),
                ("code_verifier", &pkce.verifier),
            ],
            None,
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let access = tokens.json()["access_token"].as_str().unwrap().to_owned();
    let c_ = claims(&access);
    assert_eq!(c_["sub"], side.login);
    assert_eq!(c_["kind"], side.kind);
    assert_eq!(c_["scope"], "read write");

    // The gateway takes it on its side, and refuses it on the other.
    let call = |path: String| {
        let http = s.http.clone();
        let url = s.url(side.host, &path);
        let token = access.clone();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(side.path("/api/orders")).await, 200);
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.auth("subject"), Some(side.login));
    assert_eq!(seen.auth("side"), Some(side.name));
    let other = if side.prefix.is_empty() {
        "/admin/api/orders"
    } else {
        "/api/orders"
    };
    assert_eq!(call(other.to_owned()).await, 401);

    // The browser's session spares a second login and consent.
    let again = authorize.replace(&state, "second");
    c.goto(&again).await.unwrap();
    let landed = browser
        .wait_for_url("the second redirect", |u| u.starts_with(&redirect_uri))
        .await;
    assert_eq!(browser::param(&landed, "state").as_deref(), Some("second"));
    assert!(browser::param(&landed, "code").is_some());
}
