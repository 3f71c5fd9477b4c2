//! Key rotation across processes (issue 5, `docs/operations.md` "Key
//! rotation"): `splitgate keys rotate --tenant T` adds a key that every
//! issuer publishes at once and that signs only after `key_publish_delay`
//! (longer than the gateways' `jwks_refresh`); the old key stays published
//! until every token it signed has expired, then is dropped. All of it
//! under continuous traffic through two issuers and two gateway processes,
//! without one failed request.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use splitgate::demo::DemoBackend;
use splitgate_shared::time::{now_millis, now_secs};
use support::process::{
    ClientCreds, Deployment, Process, Setup, StoreAt, TenantInfo, Tokens, client_token,
};
use support::redis::RedisServer;

const TTL: u64 = 3;
const PUBLISH_DELAY: u64 = 2;
/// `docs/operations.md`: dropped "a few seconds" after the last token
/// expired (the issuer's margin, with `gateway.leeway = 0`).
const DROP_MARGIN: u64 = 5;
/// How old a token the traffic reuses may be (well within [`TTL`]).
const REUSE_AFTER: Duration = Duration::from_millis(800);
/// Tokens live at least `TTL - 1` s (whole-second `iat`, no leeway).
const MAX_REUSE_AGE: Duration = Duration::from_millis(1500);

/// One minted token, as the traffic saw it.
struct Minted {
    tenant: String,
    kid: String,
    iat: u64,
}

/// What the traffic did, and everything that went wrong.
#[derive(Default)]
struct Traffic {
    stop: AtomicBool,
    requests: AtomicUsize,
    minted: Mutex<Vec<Minted>>,
    failures: Mutex<Vec<String>>,
}

impl Traffic {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    fn kids_seen(&self, tenant: &str, after: u64) -> Vec<String> {
        let minted = self.minted.lock().unwrap();
        let mut kids: Vec<String> = minted
            .iter()
            .filter(|m| m.tenant == tenant && m.iat >= after)
            .map(|m| m.kid.clone())
            .collect();
        kids.sort();
        kids.dedup();
        kids
    }
}

/// Mints client-credentials tokens from one issuer and calls both
/// gateways with each, and with the one minted about [`REUSE_AFTER`]
/// before it, until told to stop. Every answer must be a success.
async fn traffic(
    t: &Traffic,
    issuer: &Process,
    gateways: &[Process; 2],
    tenant: &TenantInfo,
    client: &ClientCreds,
) {
    let mut older: Option<(Instant, String)> = None;
    let mut reused: Option<(Instant, String)> = None;
    while !t.stop.load(Ordering::Relaxed) {
        let reply = client_token(issuer, &tenant.host, client).await;
        t.requests.fetch_add(1, Ordering::Relaxed);
        if reply.status != 200 {
            t.fail(format!(
                "{}: token for {}: {} {}",
                issuer.name, tenant.id, reply.status, reply.text
            ));
            tokio::time::sleep(Duration::from_millis(30)).await;
            continue;
        }
        let token = Tokens::from_reply(&reply).access;
        let (header, claims) = (support::header(&token), support::claims(&token));
        t.minted.lock().unwrap().push(Minted {
            tenant: tenant.id.clone(),
            kid: header["kid"].as_str().unwrap().to_owned(),
            iat: claims["iat"].as_u64().unwrap(),
        });
        if older
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= REUSE_AFTER)
        {
            reused = older.take();
            older = Some((Instant::now(), token.clone()));
        }
        // Never one that may have expired on a very slow machine.
        let reuse = reused
            .as_ref()
            .filter(|(at, _)| at.elapsed() < MAX_REUSE_AGE)
            .map(|(_, token)| token);
        for gateway in gateways {
            for (which, token) in [("fresh", Some(&token)), ("older", reuse)] {
                let Some(token) = token else { continue };
                let reply = gateway
                    .get(&tenant.host, &tenant.backoffice_api(), Some(token))
                    .await;
                t.requests.fetch_add(1, Ordering::Relaxed);
                if reply.status != 200 {
                    let kid = support::header(token)["kid"].clone();
                    t.fail(format!(
                        "{}: {which} {} token (kid {kid}, minted by {}): {} {}",
                        gateway.name, tenant.id, issuer.name, reply.status, reply.text
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_continuous_traffic_fails_no_request() {
    let redis = RedisServer::start();
    let backend =
        DemoBackend::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let mut setup = Setup::new(StoreAt::Redis(redis.url()), &backend.url());
    setup.tenant = format!("access_token_ttl = \"{TTL}s\"");
    setup.gateway = "leeway = \"0s\"".into();
    setup.issuer = format!("key_publish_delay = \"{PUBLISH_DELAY}s\"");
    let d = Deployment::new(&setup);
    let (i1, i2) = tokio::join!(d.issuer("issuer-1"), d.issuer("issuer-2"));
    let (g1, g2) = tokio::join!(
        d.gateway("gateway-1", &i1, &[]),
        d.gateway("gateway-2", &i2, &[])
    );
    let (issuers, gateways) = ([i1, i2], [g1, g2]);
    let (acme, globex) = (d.tenant("acme").clone(), d.tenant("globex").clone());
    let acme_client = ClientCreds::create(&issuers[0], "acme", "backoffice").await;
    let globex_client = ClientCreds::create(&issuers[1], "globex", "backoffice").await;

    let t = Traffic::default();
    let workers = futures_util::future::join_all(
        [(&acme, &acme_client), (&globex, &globex_client)]
            .into_iter()
            .flat_map(|(tenant, client)| issuers.iter().map(move |issuer| (issuer, tenant, client)))
            .map(|(issuer, tenant, client)| traffic(&t, issuer, &gateways, tenant, client)),
    );
    let control = async {
        rotate_and_watch(&d, &issuers, &t, &acme, &globex).await;
        t.stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(workers, control);

    let failures = t.failures.lock().unwrap();
    eprintln!(
        "{} requests during the rotation, {} failed",
        t.requests.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    drop(failures);
    for mut p in issuers.into_iter().chain(gateways) {
        p.assert_running();
    }
}

/// A key as `keys rotate` and the admin API show it.
struct Rotated {
    kid: String,
    active_at: u64,
    drop_at_old: u64,
}

/// The controller: warms up, rotates both tenants (acme with the CLI
/// against issuer 1, globex through issuer 2's admin API), and watches
/// the new keys get published, start signing, and the old ones drop.
async fn rotate_and_watch(
    d: &Deployment,
    issuers: &[Process; 2],
    t: &Traffic,
    acme: &TenantInfo,
    globex: &TenantInfo,
) {
    let warm = now_secs();
    support::eventually("traffic is flowing", Duration::from_secs(10), || async {
        (t.minted.lock().unwrap().len() >= 8).then_some(())
    })
    .await;
    let old: BTreeMap<&str, String> = [(&acme.id, acme), (&globex.id, globex)]
        .into_iter()
        .map(|(id, tenant)| {
            let kids = t.kids_seen(&tenant.id, warm);
            assert_eq!(
                kids.len(),
                1,
                "{id}: one key signs before the rotation: {kids:?}"
            );
            (id.as_str(), kids[0].clone())
        })
        .collect();

    // acme: `splitgate keys rotate` against issuer 1.
    let asked = now_millis();
    let out = d
        .cli(
            &issuers[0],
            &["keys", "rotate", "--tenant", "acme", "--json"],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acme_key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let acme_new = rotated(&acme_key, asked);
    // globex: the admin API of issuer 2.
    let asked = now_millis();
    let (status, globex_key) = issuers[1]
        .admin(
            reqwest::Method::POST,
            "/v1/tenants/globex/keys/rotate",
            None,
        )
        .await;
    assert_eq!(status, 200, "{globex_key}");
    let globex_new = rotated(&globex_key, asked);
    let rotated_at = Instant::now();

    // Published at once by the issuer that rotated, and within a second
    // by the other (it hears of the change through Redis).
    for (tenant, new) in [(acme, &acme_new), (globex, &globex_new)] {
        let mut both = vec![old[tenant.id.as_str()].clone(), new.kid.clone()];
        both.sort();
        for issuer in issuers {
            support::eventually(
                &format!("{} publishes the new {} key", issuer.name, tenant.id),
                Duration::from_secs(1),
                || async { (issuer.jwks_kids(&tenant.host).await == both).then_some(()) },
            )
            .await;
        }
    }
    eprintln!(
        "both issuers published both new keys {:?} after the rotations",
        rotated_at.elapsed()
    );
    let out = d
        .cli(&issuers[1], &["keys", "list", "--tenant", "acme", "--json"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: BTreeMap<String, String> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().into(),
                k["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    if now_secs() < acme_new.active_at {
        assert_eq!(states[&acme_new.kid], "pending", "{list}");
        assert_eq!(states[&old["acme"]], "signing", "{list}");
    }

    // The new keys sign from `active_at` on, and only they.
    for (tenant, new) in [(acme, &acme_new), (globex, &globex_new)] {
        support::eventually(
            &format!("tokens of {} signed by the new key", tenant.id),
            Duration::from_secs(PUBLISH_DELAY + 5),
            || async {
                t.kids_seen(&tenant.id, new.active_at)
                    .contains(&new.kid)
                    .then_some(())
            },
        )
        .await;
    }
    eprintln!(
        "the new keys signed {:?} after the rotations",
        rotated_at.elapsed()
    );

    // The old keys stay published until their last token has expired.
    let drop_at = acme_new.drop_at_old.max(globex_new.drop_at_old);
    for (tenant, new) in [(acme, &acme_new), (globex, &globex_new)] {
        for issuer in issuers {
            support::eventually(
                &format!("{} drops the old {} key", issuer.name, tenant.id),
                Duration::from_secs(drop_at.saturating_sub(now_secs()) + 5),
                || async {
                    let kids = issuer.jwks_kids(&tenant.host).await;
                    if kids.contains(&old[tenant.id.as_str()]) {
                        return None;
                    }
                    assert!(
                        now_secs() >= new.drop_at_old,
                        "{}: the old {} key dropped before {}",
                        issuer.name,
                        tenant.id,
                        new.drop_at_old
                    );
                    assert_eq!(kids, vec![new.kid.clone()]);
                    Some(())
                },
            )
            .await;
        }
    }
    eprintln!(
        "the old keys were dropped {:?} after the rotations",
        rotated_at.elapsed()
    );
    // Gateways refresh without the old keys; traffic goes on a little.
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What signed when: the old key up to `active_at`, the new one after.
    for (tenant, new) in [(acme, &acme_new), (globex, &globex_new)] {
        let minted = t.minted.lock().unwrap();
        for m in minted.iter().filter(|m| m.tenant == tenant.id) {
            if m.kid == new.kid {
                assert!(
                    m.iat >= new.active_at,
                    "{}: new key before active_at",
                    tenant.id
                );
            } else {
                assert_eq!(m.kid, old[tenant.id.as_str()], "{}: a third key", tenant.id);
                assert!(
                    m.iat <= new.active_at,
                    "{}: old key after active_at",
                    tenant.id
                );
            }
        }
    }
}

/// Checks the answer of a rotation asked at `asked_ms`: a pending key
/// that signs no sooner than `key_publish_delay` after the request.
fn rotated(key: &Value, asked_ms: u64) -> Rotated {
    assert_eq!(key["state"], "pending", "{key}");
    let active_at = key["active_at"].as_u64().unwrap();
    assert!(
        active_at * 1000 >= asked_ms + PUBLISH_DELAY * 1000,
        "the new key signs at {active_at} (s), less than {PUBLISH_DELAY} s after the rotation at {asked_ms} (ms): {key}"
    );
    Rotated {
        kid: key["kid"].as_str().unwrap().to_owned(),
        active_at,
        drop_at_old: active_at + TTL + DROP_MARGIN,
    }
}
