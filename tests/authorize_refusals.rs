//! Every refusal of the authorize pages, with its exact status and what the
//! page or the redirect says: requests that cannot be trusted (an error
//! page, never a redirect: unknown clients, open-redirect attempts),
//! requests answered with an error at the client's redirect URI, forged or
//! replayed forms, and wrong passwords.

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::{ACME_BACKOFFICE, ACME_STOREFRONT, Agent, PASSWORD, Side};
use serde_json::json;
use support::{Reply, Server};

const REGISTERED: &str = "http://127.0.0.1/callback";
const REDIRECT: &str = "http://127.0.0.1:5555/callback";

/// A public client with one loopback redirect URI.
async fn app(s: &Server, side: &Side) -> String {
    s.client(
        side.tenant,
        json!({"side": side.name, "name": "App", "public": true, "redirect_uris": [REGISTERED], "scopes": ["read"]}),
    )
    .await
    .0
}

/// A query string from pairs, form-encoded (so that odd values survive).
fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn get(s: &Server, side: &Side, raw_query: &str) -> Reply {
    let url = s.url(
        side.host,
        &format!("{}?{raw_query}", side.path("/oauth2-token/authorize")),
    );
    Reply::from(s.http.get(url).send().await.unwrap()).await
}

/// Asserts an error page: status, its message, and that nothing was
/// redirected or remembered.
fn assert_page(r: &Reply, status: u16, message: &str) {
    assert_eq!(r.status, status, "{message}: {}", r.text);
    assert_eq!(r.header("location"), None, "{message}: never a redirect");
    assert_eq!(r.header("set-cookie"), None, "{message}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(
        r.text
            .contains(&format!("<p class=\"message\">{message}</p>")),
        "{message}: {}",
        r.text
    );
}

#[tokio::test]
async fn untrusted_requests_get_a_page_never_a_redirect() {
    let s = Server::start("").await;
    let side = ACME_STOREFRONT;
    let id = app(&s, &side).await;
    let (two, _) = s
        .client(
            "acme",
            json!({"side": "storefront", "name": "Two", "public": true,
                   "redirect_uris": ["https://app.example.com/cb", REGISTERED]}),
        )
        .await;
    let not_registered = "The redirect URI is not registered for this application.";
    let mut cases: Vec<(String, u16, &str)> = vec![
        (
            query(&[("response_type", "code")]),
            400,
            "The request does not name an application (client_id is missing).",
        ),
        (
            query(&[("client_id", &id), ("client_id", &id)]),
            400,
            "The client_id parameter is repeated.",
        ),
        (
            query(&[("client_id", "nobody"), ("redirect_uri", REDIRECT)]),
            400,
            "The application that sent you here is not registered.",
        ),
        (
            query(&[
                ("client_id", &id),
                ("redirect_uri", REDIRECT),
                ("redirect_uri", REDIRECT),
            ]),
            400,
            "The redirect_uri parameter is repeated.",
        ),
        (
            query(&[("client_id", &two), ("response_type", "code")]),
            400,
            "This application has several redirect URIs: the request must name one (redirect_uri).",
        ),
        (
            format!("client_id={id}&redirect_uri=%ff"),
            400,
            "The sign-in request is not valid UTF-8.",
        ),
        (
            format!("client_id={id}&x={}", "a".repeat(4100)),
            400,
            "The sign-in request is longer than 4096 bytes.",
        ),
    ];
    // Open-redirect attempts against https://app.example.com/cb and the
    // loopback http://127.0.0.1/callback.
    for attack in [
        "https://app.example.com/cb/extra",
        "https://app.example.com/cb/",
        "https://app.example.com/cb?next=https://evil.example",
        "https://app.example.com/cb#frag",
        "https://app.example.com/cb/../cb",
        "https://app.example.com.evil.example/cb",
        "https://evil.example/cb",
        "https://app.example.com@evil.example/cb",
        "https://user@app.example.com/cb",
        "https://evil.example\\@app.example.com/cb",
        "https://evil.example%5C@app.example.com/cb",
        "https:\\\\evil.example/cb",
        "//evil.example/cb",
        "https://APP.example.com/cb",
        "http://app.example.com/cb",
        "https://app.example.com:8443/cb",
        "http://127.0.0.1:5555/callback/extra",
        "http://127.0.0.1:5555/callback?x=1",
        "http://127.0.0.1:5555/callback#x",
        "http://127.0.0.1:1@evil.example/callback",
        "http://evil.example@127.0.0.1:5555/callback",
        "http://127.0.0.2:5555/callback",
        "http://localhost:5555/callback",
        "http://[::1]:5555/callback",
    ] {
        cases.push((
            query(&[
                ("client_id", &two),
                ("redirect_uri", attack),
                ("response_type", "code"),
            ]),
            400,
            not_registered,
        ));
    }
    for (raw, status, message) in &cases {
        let r = get(&s, &side, raw).await;
        assert_page(&r, *status, message);
    }

    // A client of the other side: 404 on each side's endpoint.
    let staff = app(&s, &ACME_BACKOFFICE).await;
    for (side, client) in [(ACME_STOREFRONT, &staff), (ACME_BACKOFFICE, &id)] {
        let r = get(
            &s,
            &side,
            &query(&[("client_id", client), ("response_type", "code")]),
        )
        .await;
        assert_page(&r, 404, "This application does not sign in here.");
    }
    s.stop().await;
}

#[tokio::test]
async fn other_errors_go_back_to_the_client_with_state_and_iss() {
    let s = Server::start("").await;
    let side = ACME_BACKOFFICE;
    let id = app(&s, &side).await;
    let (password_only, _) = s
        .client(
            "acme",
            json!({"side": "backoffice", "name": "Old", "grants": ["password"], "redirect_uris": [REGISTERED]}),
        )
        .await;
    let challenge = browser::pkce().challenge;
    let good = |extra: &[(&'static str, &str)], drop: &str| -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "s1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .filter(|(k, _)| *k != drop)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        pairs
    };
    let cases: Vec<(Pairs, &str, &str)> = vec![
        (
            good(&[], "response_type"),
            "invalid_request",
            "the `response_type` parameter is missing",
        ),
        (
            good(&[("response_type", "token")], "response_type"),
            "unsupported_response_type",
            "only the response type `code` is supported",
        ),
        (
            good(&[("response_type", "code")], ""),
            "invalid_request",
            "the `response_type` parameter is repeated",
        ),
        (
            good(&[("scope", "read"), ("scope", "read")], ""),
            "invalid_request",
            "the `scope` parameter is repeated",
        ),
        (
            good(&[("code_challenge", challenge.as_str())], ""),
            "invalid_request",
            "the `code_challenge` parameter is repeated",
        ),
        (
            good(&[("scope", "admin")], ""),
            "invalid_scope",
            "the scope `admin` is not allowed for this client",
        ),
        (
            good(&[], "code_challenge"),
            "invalid_request",
            "code_challenge_method was sent without a code_challenge",
        ),
        (
            good(
                &[("code_challenge_method", "plain")],
                "code_challenge_method",
            ),
            "invalid_request",
            "this client must use code_challenge_method=S256",
        ),
        (
            good(&[], "code_challenge_method"),
            "invalid_request",
            "this client must use code_challenge_method=S256",
        ),
        (
            good(
                &[("code_challenge_method", "S512")],
                "code_challenge_method",
            ),
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        (
            good(&[("code_challenge", "abc")], "code_challenge"),
            "invalid_request",
            "the code_challenge is malformed",
        ),
    ];
    let iss = "http://acme.test/admin/oauth2-server";
    for (pairs, error, description) in cases {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = get(&s, &side, &query(&pairs)).await;
        assert_eq!(r.status, 302, "{description}: {}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let location = r.header("location").unwrap();
        assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
        assert_eq!(
            browser::query_of(location),
            [
                ("error".to_owned(), error.to_owned()),
                ("error_description".to_owned(), description.to_owned()),
                ("state".to_owned(), "s1".to_owned()),
                ("iss".to_owned(), iss.to_owned()),
            ],
            "{description}"
        );
    }

    // No PKCE from a public client; a repeated state is not echoed; a
    // client without the code grant.
    let exact = |r: &Reply| r.header("location").unwrap().to_owned();
    let r = get(
        &s,
        &side,
        &query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("state", "s2"),
        ]),
    )
    .await;
    assert_eq!(
        exact(&r),
        "http://127.0.0.1:5555/callback?error=invalid_request&error_description=PKCE+is+required%3A+send+a+code_challenge+with+code_challenge_method%3DS256&state=s2&iss=http%3A%2F%2Facme.test%2Fadmin%2Foauth2-server"
    );
    let r = get(
        &s,
        &side,
        &query(&[
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("state", "a"),
            ("state", "b"),
        ]),
    )
    .await;
    assert_eq!(
        exact(&r),
        "http://127.0.0.1:5555/callback?error=invalid_request&error_description=the+%60state%60+parameter+is+repeated&iss=http%3A%2F%2Facme.test%2Fadmin%2Foauth2-server"
    );
    let r = get(
        &s,
        &side,
        &query(&[
            ("client_id", &password_only),
            ("response_type", "code"),
            ("state", "s3"),
        ]),
    )
    .await;
    assert_eq!(
        exact(&r),
        "http://127.0.0.1/callback?error=unauthorized_client&error_description=this+client+may+not+use+the+authorization+code+flow&state=s3&iss=http%3A%2F%2Facme.test%2Fadmin%2Foauth2-server"
    );

    // Wrong methods.
    let url = s.url(side.host, "/admin/oauth2-token/authorize");
    let r = Reply::from(s.http.post(&url).send().await.unwrap()).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = Reply::from(s.http.get(format!("{url}/login")).send().await.unwrap()).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert!(r.text.contains("<p class=\"message\">Use POST here.</p>"));
    let r = Reply::from(s.http.get(format!("{url}/nothing")).send().await.unwrap()).await;
    r.assert_oauth_error(404, "invalid_request", "no such endpoint");
    s.stop().await;
}

/// Owned query pairs.
type Pairs = Vec<(String, String)>;

const FORGED: &str = "This form could not be verified: it has expired or was not sent from this site. Go back to the application and start again.";
const SPENT: &str =
    "This form was already submitted or has expired. Go back to the application and start again.";

/// Posts the login form with the right credentials and the given tokens.
async fn post_login(agent: &mut Agent, url: &str, csrf: Option<&str>, form: Option<&str>) -> Reply {
    let mut fields = vec![("username", ACME_BACKOFFICE.login), ("password", PASSWORD)];
    fields.extend(csrf.map(|c| ("csrf", c)));
    fields.extend(form.map(|f| ("form", f)));
    agent.post(url, &fields).await
}

#[tokio::test]
async fn forms_need_their_session_csrf_token_and_work_once() {
    let s = Server::start("").await;
    let side = ACME_BACKOFFICE;
    side.user(&s).await;
    let id = app(&s, &side).await;
    let challenge = browser::pkce().challenge;
    let authorize = side.authorize(
        &s,
        &[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let login_url = s.url(side.host, "/admin/oauth2-token/authorize/login");
    let mut alice = Agent::new(&s);
    let mut mallory = Agent::new(&s);
    let page = alice.get(&authorize).await;
    let other = mallory.get(&authorize).await;
    let (csrf, form) = (
        browser::hidden(&page.text, "csrf"),
        browser::hidden(&page.text, "form"),
    );
    let (their_csrf, their_form) = (
        browser::hidden(&other.text, "csrf"),
        browser::hidden(&other.text, "form"),
    );
    // Missing CSRF token; another session's token; no session at all;
    // another session's form token.
    let r = post_login(&mut alice, &login_url, None, Some(&form)).await;
    assert_page(&r, 403, FORGED);
    let r = post_login(&mut alice, &login_url, Some(&their_csrf), Some(&form)).await;
    assert_page(&r, 403, FORGED);
    let r = post_login(&mut Agent::new(&s), &login_url, Some(&csrf), Some(&form)).await;
    assert_page(&r, 403, FORGED);
    let r = post_login(&mut alice, &login_url, Some(&csrf), Some(&their_form)).await;
    assert_page(&r, 403, FORGED);
    // Not a form body.
    let r = Reply::from(
        s.http
            .post(&login_url)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_page(
        &r,
        400,
        "the Content-Type must be application&#x2f;x-www-form-urlencoded or application&#x2f;json",
    );

    // A wrong password spends the form; replaying it, even with the right
    // password, fails; the fresh form of the answer works.
    let wrong = alice
        .post(
            &login_url,
            &[
                ("csrf", &csrf),
                ("form", &form),
                ("username", side.login),
                ("password", "wrong password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    let replay = post_login(&mut alice, &login_url, Some(&csrf), Some(&form)).await;
    assert_page(&replay, 400, SPENT);
    let ok = side
        .login(&s, &mut alice, &wrong, side.login, PASSWORD)
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    // After login the old CSRF token is dead too (new session).
    let r = post_login(&mut alice, &login_url, Some(&csrf), Some(&form)).await;
    assert_page(&r, 403, FORGED);

    // Consent: CSRF checked, form single-use.
    let consent = side.follow(&s, &mut alice, &ok).await;
    let consent_url = s.url(side.host, "/admin/oauth2-token/authorize/consent");
    let cform = browser::hidden(&consent.text, "form");
    let r = alice
        .post(&consent_url, &[("form", &cform), ("decision", "allow")])
        .await;
    assert_page(&r, 403, FORGED);
    let allowed = side.decide(&s, &mut alice, &consent, "allow").await;
    assert_eq!(allowed.status, 303);
    let again = side.decide(&s, &mut alice, &consent, "allow").await;
    assert_page(&again, 400, SPENT);
    // A login form token is not a consent form token.
    let fresh = mallory.get(&authorize).await;
    let r = mallory
        .post(
            &consent_url,
            &[
                ("csrf", &browser::hidden(&fresh.text, "csrf")),
                ("form", &browser::hidden(&fresh.text, "form")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_page(&r, 403, FORGED);

    // Logout needs the CSRF token too.
    let logout_url = s.url(side.host, "/admin/oauth2-token/authorize/logout");
    let r = alice.post(&logout_url, &[("csrf", "guess")]).await;
    assert_page(&r, 403, FORGED);
    assert!(alice.session(side.host).is_some(), "still signed in");
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_password_does_not_say_which_part_was_wrong() {
    let s = Server::start("").await;
    for (side, message) in [
        (ACME_BACKOFFICE, "The username or password is incorrect."),
        (ACME_STOREFRONT, "The email or password is incorrect."),
    ] {
        side.user(&s).await;
        let id = app(&s, &side).await;
        let challenge = browser::pkce().challenge;
        let authorize = side.authorize(
            &s,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        let mut agent = Agent::new(&s);
        let mut page = agent.get(&authorize).await;
        let mut bodies = Vec::new();
        for (username, password) in [
            (side.login, "not the password"),
            ("nobody@example.com", PASSWORD),
            ("guest", "guest"),
            (side.login, ""),
        ] {
            let r = side.login(&s, &mut agent, &page, username, password).await;
            assert_eq!(r.status, 400, "{username}");
            assert_eq!(r.header("location"), None);
            assert!(
                r.text.contains(&format!(
                    "<p class=\"error\" role=\"alert\" id=\"login-error\">{message}</p>"
                )),
                "{}",
                r.text
            );
            // The same page whatever was wrong, but for the tokens and the
            // name typed.
            let masked = r
                .text
                .replace(&browser::hidden(&r.text, "csrf"), "C")
                .replace(&browser::hidden(&r.text, "form"), "F")
                .replace(&format!("value=\"{username}\""), "");
            bodies.push(masked);
            page = r;
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:#?}");
        // The name typed comes back, escaped.
        let r = side
            .login(&s, &mut agent, &page, "<b>x\"", "wrong password")
            .await;
        assert!(r.text.contains("value=\"&lt;b&gt;x&quot;\""), "{}", r.text);
    }
    s.stop().await;
}
