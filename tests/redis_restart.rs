//! Redis killed and restarted under load (issue 5): two issuers and two
//! gateway processes keep taking logins, refreshes, client-credentials
//! tokens and API calls while their Redis is killed (SIGKILL) and started
//! again. The outcome is exact:
//!
//! - no wrong answer: every response is the right success or a documented
//!   503 (`temporarily_unavailable` from an issuer, `revocation_unavailable`
//!   from a gateway past `revocation_max_staleness`); never a 500, never a
//!   200 for a revoked token or a token on the wrong side;
//! - no lost refresh family: a family whose last rotation succeeded before
//!   the kill refreshes with its latest token once Redis is back;
//! - no crash: every child is still running at the end.
//!
//! Redis keeps an append-only file fsynced on every write, as
//! `docs/operations.md` asks, so a restarted Redis has what it acknowledged.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use splitgate::demo::DemoBackend;
use support::Reply;
use support::process::{
    ClientCreds, Deployment, Process, Setup, StoreAt, TenantInfo, Tokens, client_token,
    is_revocation_unavailable, is_revoked, is_store_down, login, refresh, revoke,
};
use support::redis::RedisServer;

const PASSWORD: &str = "correct horse battery";
const DEADLINE: Duration = Duration::from_secs(20);

/// Counts of what happened, the wrong answers, and when each worker first
/// succeeded after the restart.
#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    counts: Mutex<BTreeMap<String, usize>>,
    wrong: Mutex<Vec<String>>,
    restarted: Mutex<Option<Instant>>,
    first_ok_after: Mutex<BTreeMap<String, Duration>>,
}

impl Tally {
    fn count(&self, what: &str) {
        *self.counts.lock().unwrap().entry(what.into()).or_default() += 1;
    }

    fn get(&self, what: &str) -> usize {
        self.counts.lock().unwrap().get(what).copied().unwrap_or(0)
    }

    fn wrong(&self, what: String) {
        self.wrong.lock().unwrap().push(what);
    }

    /// A success of `worker`: its first one after the restart is timed.
    fn ok(&self, worker: &str) {
        self.count(&format!("{worker}: ok"));
        if let Some(restarted) = *self.restarted.lock().unwrap() {
            self.first_ok_after
                .lock()
                .unwrap()
                .entry(worker.into())
                .or_insert_with(|| restarted.elapsed());
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }
}

/// Everything the workers share.
struct Load<'a> {
    issuers: &'a [Process; 2],
    gateways: &'a [Process; 2],
    acme: &'a TenantInfo,
    bo: &'a ClientCreds,
    valid: &'a Tokens,
    revoked: &'a Tokens,
    revoked_family: &'a Tokens,
    tally: Tally,
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(15)).await;
}

/// Calls one gateway with every kind of token; each answer must be one of
/// those allowed for it.
async fn gateway_worker(l: &Load<'_>, gateway: &Process) {
    let worker = format!("{} checks", gateway.name);
    let (host, bo_api, sf_api) = (
        &l.acme.host,
        l.acme.backoffice_api(),
        l.acme.storefront_api(),
    );
    while l.tally.running() {
        let reply = gateway.get(host, &bo_api, Some(&l.valid.access)).await;
        if reply.status == 200 {
            l.tally.ok(&worker);
        } else if is_revocation_unavailable(&reply) {
            l.tally.count(&format!("{}: stale 503", gateway.name));
        } else {
            l.tally
                .wrong(format!("{worker}: valid token: {}", show(&reply)));
        }
        let reply = gateway.get(host, &sf_api, Some(&l.valid.access)).await;
        if reply.status != 401 || reply.header("www-authenticate").is_none() {
            l.tally
                .wrong(format!("{worker}: wrong side: {}", show(&reply)));
        }
        for (what, token) in [
            ("revoked token", l.revoked),
            ("revoked family", l.revoked_family),
        ] {
            let reply = gateway.get(host, &bo_api, Some(&token.access)).await;
            if !is_revoked(&reply) && !is_revocation_unavailable(&reply) {
                l.tally.wrong(format!("{worker}: {what}: {}", show(&reply)));
            }
        }
        pause().await;
    }
}

/// Rotates one refresh family over both issuers. A 503 leaves the token
/// as it was, unless Redis applied the rotation and died before it could
/// answer: then the retry is a replay, and only then is "already used"
/// an acceptable answer (counted apart; a new login takes over).
async fn refresh_worker(l: &Load<'_>, n: usize) {
    let worker = format!("refresher {n}");
    let mut token = None::<String>;
    let mut ambiguous = false;
    let mut round = n;
    while l.tally.running() {
        round += 1;
        let issuer = &l.issuers[round % 2];
        let Some(current) = token.clone() else {
            let reply = login(issuer, &l.acme.host, l.bo, "admin", PASSWORD).await;
            if reply.status == 200 {
                token = Tokens::from_reply(&reply).refresh;
            } else if !is_store_down(&reply) {
                l.tally.wrong(format!("{worker}: login: {}", show(&reply)));
            }
            pause().await;
            continue;
        };
        let reply = refresh(issuer, &l.acme.host, l.bo, &current).await;
        if reply.status == 200 {
            token = Tokens::from_reply(&reply).refresh;
            ambiguous = false;
            l.tally.ok(&worker);
        } else if is_store_down(&reply) {
            ambiguous = true;
            l.tally.count(&format!("{}: 503", issuer.name));
        } else if ambiguous && reply.status == 400 && reply.text.contains("already used") {
            l.tally.count("refresh lost to an ambiguous 503");
            token = None;
        } else {
            l.tally
                .wrong(format!("{worker} on {}: {}", issuer.name, show(&reply)));
            token = None;
        }
        pause().await;
    }
}

/// Logins (password grant) and client-credentials tokens over both
/// issuers; each token got is used on a gateway at once.
async fn token_worker(l: &Load<'_>, password: bool) {
    let worker = if password { "logins" } else { "client tokens" };
    let mut round = 0;
    while l.tally.running() {
        round += 1;
        let issuer = &l.issuers[round % 2];
        let reply = if password {
            login(issuer, &l.acme.host, l.bo, "admin", PASSWORD).await
        } else {
            client_token(issuer, &l.acme.host, l.bo).await
        };
        if is_store_down(&reply) {
            l.tally.count(&format!("{}: 503", issuer.name));
        } else if reply.status != 200 {
            l.tally
                .wrong(format!("{worker} on {}: {}", issuer.name, show(&reply)));
        } else {
            l.tally.ok(worker);
            let token = Tokens::from_reply(&reply).access;
            let gateway = &l.gateways[round % 2];
            let reply = gateway
                .get(&l.acme.host, &l.acme.backoffice_api(), Some(&token))
                .await;
            if reply.status != 200 && !is_revocation_unavailable(&reply) {
                l.tally.wrong(format!(
                    "{worker}: fresh token on {}: {}",
                    gateway.name,
                    show(&reply)
                ));
            }
        }
        pause().await;
    }
}

fn show(reply: &Reply) -> String {
    format!("{} {}", reply.status, reply.text)
}

const REFRESHERS: usize = 4;

fn workers() -> Vec<String> {
    let mut all: Vec<String> = (0..REFRESHERS).map(|n| format!("refresher {n}")).collect();
    all.extend(["logins".into(), "client tokens".into()]);
    all.extend(["gateway-1 checks".into(), "gateway-2 checks".into()]);
    all
}

/// Warm-up, kill, outage until both issuers and both gateways have
/// answered their 503s, restart, and traffic until every worker has
/// succeeded again.
async fn control(l: &Load<'_>, redis: &mut RedisServer) {
    let all = workers();
    until("every worker succeeds before the kill", || {
        all.iter().all(|w| l.tally.get(&format!("{w}: ok")) >= 3)
    })
    .await;
    redis.kill();
    let killed = Instant::now();
    until("both issuers and both gateways answer 503", || {
        [
            "issuer-1: 503",
            "issuer-2: 503",
            "gateway-1: stale 503",
            "gateway-2: stale 503",
        ]
        .iter()
        .all(|w| l.tally.get(w) > 0)
    })
    .await;
    eprintln!("Redis down for {:?}", killed.elapsed());
    redis.restart();
    *l.tally.restarted.lock().unwrap() = Some(Instant::now());
    until("every worker succeeds after the restart", || {
        l.tally.first_ok_after.lock().unwrap().len() == all.len()
    })
    .await;
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    l.tally.stop.store(true, Ordering::Relaxed);
}

async fn until(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let backend =
        DemoBackend::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let mut setup = Setup::new(StoreAt::Redis(redis.url()), &backend.url());
    setup.gateway = "revocation_max_staleness = \"2s\"".into();
    let d = Deployment::new(&setup);
    let (i1, i2) = tokio::join!(d.issuer("issuer-1"), d.issuer("issuer-2"));
    let (g1, g2) = tokio::join!(
        d.gateway("gateway-1", &i1, &[]),
        d.gateway("gateway-2", &i2, &[])
    );
    let (mut issuers, mut gateways) = ([i1, i2], [g1, g2]);
    let acme = d.tenant("acme").clone();
    let bo = ClientCreds::create(&issuers[0], "acme", "backoffice").await;
    issuers[1]
        .create_user("acme", "backoffice", "admin", PASSWORD)
        .await;
    let log_in = |i: usize| login(&issuers[i % 2], &acme.host, &bo, "admin", PASSWORD);

    let valid = Tokens::from_reply(&log_in(0).await);
    let revoked = Tokens::from_reply(&log_in(1).await);
    assert_eq!(
        revoke(&issuers[0], &acme.host, &bo, &revoked.access)
            .await
            .status,
        200
    );
    let revoked_family = Tokens::from_reply(&log_in(0).await);
    assert_eq!(
        revoke(&issuers[1], &acme.host, &bo, revoked_family.refresh())
            .await
            .status,
        200
    );
    // Quiet families: rotated on both issuers, then left alone until Redis
    // is back.
    let mut quiet = Vec::new();
    for n in 0..3 {
        let mut tokens = Tokens::from_reply(&log_in(n).await);
        for i in 0..2 {
            tokens = Tokens::from_reply(
                &refresh(&issuers[(n + i) % 2], &acme.host, &bo, tokens.refresh()).await,
            );
        }
        quiet.push(tokens);
    }

    let load = Load {
        issuers: &issuers,
        gateways: &gateways,
        acme: &acme,
        bo: &bo,
        valid: &valid,
        revoked: &revoked,
        revoked_family: &revoked_family,
        tally: Tally::default(),
    };
    let mut work: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> =
        Vec::new();
    for g in load.gateways {
        work.push(Box::pin(gateway_worker(&load, g)));
    }
    for n in 0..REFRESHERS {
        work.push(Box::pin(refresh_worker(&load, n)));
    }
    work.push(Box::pin(token_worker(&load, true)));
    work.push(Box::pin(token_worker(&load, false)));
    tokio::join!(
        futures_util::future::join_all(work),
        control(&load, &mut redis)
    );

    let counts = load.tally.counts.lock().unwrap().clone();
    let recovery = load.tally.first_ok_after.lock().unwrap().clone();
    eprintln!("answers: {counts:#?}");
    eprintln!("first success after the restart: {recovery:#?}");
    let wrong = load.tally.wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");

    // No lost refresh family.
    for (n, tokens) in quiet.iter().enumerate() {
        let reply = refresh(&issuers[n % 2], &acme.host, &bo, tokens.refresh()).await;
        assert_eq!(reply.status, 200, "quiet family {n}: {}", reply.text);
    }
    // Revocations made before the kill still hold.
    for issuer in &issuers {
        refresh(issuer, &acme.host, &bo, revoked_family.refresh())
            .await
            .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    }
    for gateway in &gateways {
        for token in [&revoked, &revoked_family] {
            let reply = gateway
                .get(&acme.host, &acme.backoffice_api(), Some(&token.access))
                .await;
            assert!(is_revoked(&reply), "{}: {}", gateway.name, show(&reply));
        }
    }
    // No crash.
    for p in issuers.iter_mut().chain(gateways.iter_mut()) {
        p.assert_running();
    }
}
