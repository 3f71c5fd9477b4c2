//! What real `splitgate` processes do when their Redis fails (issue 5,
//! `docs/operations.md` "When Redis fails"), each fault with a clear
//! outcome: Redis down (fast, exact 503s; everything resumes without a
//! restart), a gateway's stale revocation view (fail closed, or open when
//! configured), revocations made while a gateway was cut off (enforced on
//! reconnect), a wrong Redis password (a clear error at start), Redis at
//! `maxmemory` (writes refused, reads go on). A stopped cluster node is in
//! `redis_cluster_faults.rs`, Redis killed and restarted under load in
//! `redis_restart.rs`.
//!
//! The Redis servers here keep an append-only file fsynced on every write
//! (`docs/operations.md` asks for persistence), so that a restarted Redis
//! still has what it acknowledged.
#![allow(clippy::unwrap_used)]

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::Reply;
use support::process::{
    ClientCreds, Deployment, Process, Setup, StoreAt, Tokens, assert_store_down, client_token,
    demo_backend, is_revocation_unavailable, is_revoked, is_store_down, login, refresh, revoke,
    timed,
};
use support::redis::RedisServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const PASSWORD: &str = "correct horse battery";
/// "Fails fast": `store.timeout` (500 ms in these configs) plus slack for a
/// loaded machine.
const FAST: Duration = Duration::from_millis(1500);
const DEADLINE: Duration = Duration::from_secs(20);

/// A Redis that keeps what it acknowledged across a kill.
pub fn persistent_redis() -> RedisServer {
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    use support::redis::Reply::{Array, Bulk};
    assert_eq!(
        server.command(&["CONFIG", "GET", "appendonly"]),
        Array(vec![Bulk(b"appendonly".to_vec()), Bulk(b"yes".to_vec())]),
    );
    server
}

fn assert_store_down_fast(what: &str, answer: &(Reply, Duration)) {
    assert_store_down(what, answer, FAST);
}

/// Polls `probe` until it holds; returns how long that took.
async fn until<F, Fut>(what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// One issuer and its clients and user on tenant `acme`.
struct Acme {
    host: String,
    api: String,
    bo: ClientCreds,
}

impl Acme {
    async fn create(d: &Deployment, issuer: &Process) -> Acme {
        let tenant = d.tenant("acme");
        let bo = ClientCreds::create(issuer, "acme", "backoffice").await;
        issuer
            .create_user("acme", "backoffice", "admin", PASSWORD)
            .await;
        Acme {
            host: tenant.host.clone(),
            api: tenant.backoffice_api(),
            bo,
        }
    }

    async fn login(&self, issuer: &Process) -> Reply {
        login(issuer, &self.host, &self.bo, "admin", PASSWORD).await
    }

    async fn call(&self, gateway: &Process, token: &str) -> Reply {
        gateway.get(&self.host, &self.api, Some(token)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_with_exact_503s_and_everything_resumes() {
    let mut redis = persistent_redis();
    let backend = demo_backend().await;
    let mut setup = Setup::new(StoreAt::Redis(redis.url()), &backend.url());
    setup.gateway = "revocation_max_staleness = \"30s\"".into();
    let d = Deployment::new(&setup);
    let mut issuer = d.issuer("issuer").await;
    let mut gateway = d.gateway("gateway", &issuer, &[]).await;
    let acme = Acme::create(&d, &issuer).await;
    let before = Tokens::from_reply(&acme.login(&issuer).await);

    redis.kill();
    let killed = Instant::now();
    for round in 0..3 {
        let r = |what: &str| format!("round {round}: {what}");
        assert_store_down_fast(&r("password grant"), &timed(acme.login(&issuer)).await);
        assert_store_down_fast(
            &r("refresh grant"),
            &timed(refresh(&issuer, &acme.host, &acme.bo, before.refresh())).await,
        );
        assert_store_down_fast(
            &r("client credentials"),
            &timed(client_token(&issuer, &acme.host, &acme.bo)).await,
        );
        assert_store_down_fast(
            &r("revocation"),
            &timed(revoke(&issuer, &acme.host, &acme.bo, &before.access)).await,
        );
        // Through the gateway, which forwards the issuer's answer as it is.
        assert_store_down_fast(
            &r("login via the gateway"),
            &timed(acme.login(&gateway)).await,
        );
        let ((status, body), took) = timed(issuer.admin(
            reqwest::Method::POST,
            "/v1/tenants/acme/clients",
            Some(serde_json::json!({"side": "storefront", "name": "x"})),
        ))
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        assert!(took < FAST, "admin call took {took:?}");
        // The gateway serves from its last revocation view meanwhile.
        let reply = acme.call(&gateway, &before.access).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for p in [&issuer, &gateway] {
            assert_eq!(p.probe("/readyz").await, 503, "{}: /readyz", p.name);
            assert_eq!(p.probe("/healthz").await, 200, "{}: /healthz", p.name);
        }
    }
    eprintln!("{:?} of 503s while Redis was down", killed.elapsed());

    redis.restart();
    let restarted = Instant::now();
    let after = loop {
        let reply = acme.login(&issuer).await;
        if reply.status == 200 {
            break Tokens::from_reply(&reply);
        }
        assert!(is_store_down(&reply), "{}", reply.text);
        assert!(
            restarted.elapsed() < DEADLINE,
            "no login within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = restarted.elapsed();
    eprintln!("the issuer served logins again {took:?} after Redis restarted");
    // The family survived, and its refresh token was not spent by the
    // failed attempts.
    let next = Tokens::from_reply(&refresh(&issuer, &acme.host, &acme.bo, before.refresh()).await);
    for p in [&issuer, &gateway] {
        until(&format!("{} ready", p.name), || async {
            p.probe("/readyz").await == 200
        })
        .await;
    }
    eprintln!(
        "both processes ready {:?} after the restart",
        restarted.elapsed()
    );
    // The gateway follows events again: a new revocation is enforced.
    let reply = revoke(&issuer, &acme.host, &acme.bo, &next.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let since = Instant::now();
    until(
        "the gateway refuses the token revoked after the restart",
        || async { is_revoked(&acme.call(&gateway, &next.access).await) },
    )
    .await;
    let took = since.elapsed();
    eprintln!("a revocation after the restart reached the gateway in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(acme.call(&gateway, &after.access).await.status, 200);
    issuer.assert_running();
    gateway.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_view_fails_closed_or_open_as_configured() {
    let mut redis = persistent_redis();
    let backend = demo_backend().await;
    let mut setup = Setup::new(StoreAt::Redis(redis.url()), &backend.url());
    setup.gateway = "revocation_max_staleness = \"2s\"".into();
    let d = Deployment::new(&setup);
    let mut issuer = d.issuer("issuer").await;
    let (closed, open) = tokio::join!(
        d.gateway("gateway-fail-closed", &issuer, &[]),
        d.gateway(
            "gateway-fail-open",
            &issuer,
            &[("SPLITGATE_GATEWAY__REVOCATION_FAIL_OPEN", "true")]
        ),
    );
    let (mut closed, mut open) = (closed, open);
    let acme = Acme::create(&d, &issuer).await;
    let valid = Tokens::from_reply(&acme.login(&issuer).await);
    let revoked = Tokens::from_reply(&acme.login(&issuer).await);
    assert_eq!(
        revoke(&issuer, &acme.host, &acme.bo, &revoked.access)
            .await
            .status,
        200
    );
    for g in [&closed, &open] {
        until("the revocation reached the gateway", || async {
            is_revoked(&acme.call(g, &revoked.access).await)
        })
        .await;
    }
    let metadata = "/.well-known/oauth-protected-resource/admin/api";

    redis.kill();
    let killed = Instant::now();
    // Until the bound, both serve from their last view; then the one that
    // fails closed answers 503 on authenticated routes, the other goes on.
    let flipped = loop {
        let (c, o, r) = tokio::join!(
            acme.call(&closed, &valid.access),
            acme.call(&open, &valid.access),
            acme.call(&open, &revoked.access),
        );
        let at = killed.elapsed();
        assert_eq!(
            o.status, 200,
            "fail-open, valid token at {at:?}: {}",
            o.text
        );
        assert!(
            is_revoked(&r),
            "fail-open, revoked token at {at:?}: {}",
            r.text
        );
        if is_revocation_unavailable(&c) {
            break at;
        }
        assert_eq!(c.status, 200, "fail-closed at {at:?}: {}", c.text);
        assert!(at < Duration::from_secs(10), "still serving after {at:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    eprintln!("the fail-closed gateway answered 503 {flipped:?} after Redis was killed");
    assert!(
        flipped >= Duration::from_secs(2),
        "{flipped:?}: before the bound"
    );
    assert!(
        flipped < Duration::from_secs(5),
        "{flipped:?}: long after the bound"
    );
    // Fail closed: every authenticated request, revoked or not; routes
    // without a token, and refusals made before the revocation check, as
    // usual.
    for token in [&valid.access, &revoked.access] {
        let reply = acme.call(&closed, token).await;
        assert!(
            is_revocation_unavailable(&reply),
            "{}: {}",
            reply.status,
            reply.text
        );
    }
    let wrong_side = closed
        .get(&acme.host, "/api/users", Some(&valid.access))
        .await;
    assert_eq!(wrong_side.status, 401, "{}", wrong_side.text);
    assert_eq!(closed.get(&acme.host, &acme.api, None).await.status, 401);
    for g in [&closed, &open] {
        let reply = g.get(&acme.host, metadata, None).await;
        assert_eq!(reply.status, 200, "{}: {}", g.name, reply.text);
    }
    // Fail open: still the last view, revoked tokens still refused.
    assert_eq!(acme.call(&open, &valid.access).await.status, 200);
    assert!(is_revoked(&acme.call(&open, &revoked.access).await));

    redis.restart();
    let took = until("the fail-closed gateway serves again", || async {
        acme.call(&closed, &valid.access).await.status == 200
    })
    .await;
    eprintln!("the fail-closed gateway served again {took:?} after Redis restarted");
    for g in [&closed, &open] {
        assert!(
            is_revoked(&acme.call(g, &revoked.access).await),
            "{}",
            g.name
        );
    }
    for p in [&mut issuer, &mut closed, &mut open] {
        p.assert_running();
    }
}

/// A TCP relay to Redis that can cut every connection through it and
/// refuse new ones, so that one process loses Redis while the others keep
/// it.
struct Relay {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watching) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watching.borrow() {
                    continue; // dropped: the connection is closed at once
                }
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(to).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// The gateway's staleness gauge (0 while its feed is live).
async fn stale_ms(gateway: &Process) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", gateway.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("splitgate_revocation_view_stale_milliseconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no staleness gauge in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_made_while_a_gateway_was_cut_off_are_enforced_on_reconnect() {
    let redis = RedisServer::start();
    let relay = Relay::start(redis.addr()).await;
    let backend = demo_backend().await;
    let mut setup = Setup::new(StoreAt::Redis(redis.url()), &backend.url());
    setup.gateway = "revocation_max_staleness = \"30s\"".into();
    let d = Deployment::new(&setup);
    let mut issuer = d.issuer("issuer").await;
    // The gateway reaches Redis only through the relay.
    let relay_url = relay.url();
    let mut gateway = d
        .gateway("gateway", &issuer, &[("SPLITGATE_STORE__URL", &relay_url)])
        .await;
    let acme = Acme::create(&d, &issuer).await;
    let token = Tokens::from_reply(&acme.login(&issuer).await);
    let family = Tokens::from_reply(&acme.login(&issuer).await);
    let bystander = Tokens::from_reply(&acme.login(&issuer).await);
    for t in [&token, &family, &bystander] {
        assert_eq!(acme.call(&gateway, &t.access).await.status, 200);
    }

    relay.set_cut(true);
    until("the gateway notices it lost its feed", || async {
        stale_ms(&gateway).await > 0
    })
    .await;
    // Revoked while the gateway is away: it cannot hear the events.
    assert_eq!(
        revoke(&issuer, &acme.host, &acme.bo, &token.access)
            .await
            .status,
        200
    );
    assert_eq!(
        revoke(&issuer, &acme.host, &acme.bo, family.refresh())
            .await
            .status,
        200
    );
    refresh(&issuer, &acme.host, &acme.bo, family.refresh())
        .await
        .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    // Within the staleness bound it serves from the view it has.
    assert_eq!(acme.call(&gateway, &token.access).await.status, 200);

    // A gateway starting now loads the current set.
    let late = d.gateway("gateway-late", &issuer, &[]).await;
    assert!(is_revoked(&acme.call(&late, &token.access).await));
    assert!(is_revoked(&acme.call(&late, &family.access).await));
    assert_eq!(acme.call(&late, &bystander.access).await.status, 200);
    drop(late);

    relay.set_cut(false);
    let back = Instant::now();
    until("the gateway reloads on reconnect", || async {
        is_revoked(&acme.call(&gateway, &token.access).await)
    })
    .await;
    eprintln!(
        "the cut-off gateway enforced what was revoked meanwhile {:?} after the relay reopened",
        back.elapsed()
    );
    assert!(is_revoked(&acme.call(&gateway, &family.access).await));
    assert_eq!(acme.call(&gateway, &bystander.access).await.status, 200);
    // Each tenant is reloaded on its own: all of them are current shortly.
    until("every tenant's view is current again", || async {
        stale_ms(&gateway).await == 0
    })
    .await;
    issuer.assert_running();
    gateway.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_is_a_clear_error_at_start() {
    let redis = RedisServer::start_with(&["--requirepass", "right-pw-7f3a"]);
    let place = format!("127.0.0.1:{}", redis.port());
    for (what, url) in [
        ("a wrong password", redis.url_with_password("wrong-pw-91c2")),
        ("no password", format!("redis://{place}/")),
    ] {
        let d = Deployment::new(&Setup::new(StoreAt::Redis(url), "http://127.0.0.1:9"));
        for mode in ["issuer", "gateway"] {
            let env = [("SPLITGATE_GATEWAY__ISSUER_URL", "http://127.0.0.1:9")];
            let started = Instant::now();
            let exit = match d.try_start(mode, mode, &env).await {
                Ok(_) => panic!("{mode} started with {what}"),
                Err(exit) => exit,
            };
            let took = started.elapsed();
            let first = exit.log.lines().last().unwrap_or_default().to_owned();
            eprintln!(
                "{mode} with {what}: exit {:?} after {took:?}: {first}",
                exit.code
            );
            assert_eq!(exit.code, Some(1), "{mode}, {what}: {exit}");
            assert!(took < Duration::from_secs(10), "{took:?}");
            assert!(exit.log.contains("refused the credentials"), "{exit}");
            assert!(exit.log.contains(&place), "{exit}");
            assert!(!exit.log.contains("wrong-pw-91c2"), "{exit}");
            assert!(!exit.log.contains("right-pw-7f3a"), "{exit}");
        }
    }
    // The right one starts.
    let d = Deployment::new(&Setup::new(
        StoreAt::Redis(redis.url()),
        "http://127.0.0.1:9",
    ));
    let issuer = d.issuer("issuer").await;
    assert_eq!(issuer.probe("/readyz").await, 200);
    assert!(!issuer.log().contains("right-pw-7f3a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_at_maxmemory_refuses_writes_and_serves_reads() {
    let redis = RedisServer::start();
    let backend = demo_backend().await;
    let d = Deployment::new(&Setup::new(StoreAt::Redis(redis.url()), &backend.url()));
    let mut issuer = d.issuer("issuer").await;
    let mut gateway = d.gateway("gateway", &issuer, &[]).await;
    let acme = Acme::create(&d, &issuer).await;
    let tokens = Tokens::from_reply(&acme.login(&issuer).await);

    redis.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    // Writes: logins, refreshes, revocations, admin changes.
    assert_store_down_fast("password grant", &timed(acme.login(&issuer)).await);
    assert_store_down_fast(
        "refresh grant",
        &timed(refresh(&issuer, &acme.host, &acme.bo, tokens.refresh())).await,
    );
    assert_store_down_fast(
        "revocation",
        &timed(revoke(&issuer, &acme.host, &acme.bo, &tokens.access)).await,
    );
    let (status, body) = issuer
        .admin(
            reqwest::Method::POST,
            "/v1/tenants/acme/clients",
            Some(serde_json::json!({"side": "storefront", "name": "x"})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the store is full"),
        "{body}"
    );
    assert!(
        issuer.log().contains("the store is full"),
        "{}",
        issuer.log()
    );
    // Reads: client credentials, introspection, the admin API's lists, and
    // every gateway request.
    let client = Tokens::from_reply(&client_token(&issuer, &acme.host, &acme.bo).await);
    let introspected = issuer
        .post_form(
            &acme.host,
            "/oauth2-token/introspect",
            &acme.bo.form(&[("token", &client.access)]),
        )
        .await;
    assert_eq!(introspected.status, 200, "{}", introspected.text);
    assert_eq!(introspected.json()["active"], true);
    let (status, list) = issuer
        .admin(reqwest::Method::GET, "/v1/tenants/acme/clients", None)
        .await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(1)));
    for token in [&tokens.access, &client.access] {
        let reply = acme.call(&gateway, token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(issuer.probe("/readyz").await, 200);
    assert_eq!(gateway.probe("/readyz").await, 200);

    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    let next = Tokens::from_reply(&refresh(&issuer, &acme.host, &acme.bo, tokens.refresh()).await);
    assert_eq!(acme.call(&gateway, &next.access).await.status, 200);
    issuer.assert_running();
    gateway.assert_running();
}
