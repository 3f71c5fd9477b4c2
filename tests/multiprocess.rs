//! Many processes sharing one state (issue 5): two `splitgate issuer` and
//! two `splitgate gateway` processes on one Redis, then on a three-node
//! Redis Cluster, each gateway in front of its own issuer. A token minted
//! by one issuer works on both gateways (on its side only); a refresh on
//! issuer 1 replayed on issuer 2 revokes the family; a revocation made on
//! one issuer is refused by both gateways within a second; 50 concurrent
//! refreshes of one token spread over both issuers give exactly one
//! success.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use splitgate::demo::DemoBackend;
use support::process::{
    ClientCreds, Deployment, Process, Setup, StoreAt, Tokens, client_token, is_revoked, login,
    refresh, revoke,
};
use support::redis::{RedisCluster, RedisServer};

/// What "enforced by every gateway within 1 s" allows.
const PROPAGATION: Duration = Duration::from_secs(1);
const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_and_two_gateways_share_one_redis() {
    let redis = RedisServer::start();
    shared_state(StoreAt::Redis(redis.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_and_two_gateways_share_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    shared_state(StoreAt::Cluster(cluster.urls())).await;
}

/// The processes of one scenario and what was created through them.
struct World {
    issuers: [Process; 2],
    gateways: [Process; 2],
    deployment: Deployment,
    acme_bo: ClientCreds,
    acme_sf: ClientCreds,
    globex_bo: ClientCreds,
    _backend: DemoBackend,
}

async fn start(store: StoreAt) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = DemoBackend::start(listener).unwrap();
    let deployment = Deployment::new(&Setup::new(store, &backend.url()));
    // Both issuers start at once on an empty store: they race to create
    // each tenant's first key, and must agree on one.
    let (i1, i2) = tokio::join!(deployment.issuer("issuer-1"), deployment.issuer("issuer-2"));
    let (g1, g2) = tokio::join!(
        deployment.gateway("gateway-1", &i1, &[]),
        deployment.gateway("gateway-2", &i2, &[]),
    );
    for host in ["acme.test", "globex.test"] {
        assert_eq!(
            i1.jwks_kids(host).await,
            i2.jwks_kids(host).await,
            "both issuers publish the same keys for {host}"
        );
        assert_eq!(i1.jwks_kids(host).await.len(), 1, "{host}");
    }
    // Clients made on one issuer, users on the other: one shared store.
    let acme_bo = ClientCreds::create(&i1, "acme", "backoffice").await;
    let acme_sf = ClientCreds::create(&i1, "acme", "storefront").await;
    let globex_bo = ClientCreds::create(&i2, "globex", "backoffice").await;
    i2.create_user("acme", "backoffice", "admin", PASSWORD)
        .await;
    i2.create_user("acme", "storefront", "alice@example.com", PASSWORD)
        .await;
    World {
        issuers: [i1, i2],
        gateways: [g1, g2],
        deployment,
        acme_bo,
        acme_sf,
        globex_bo,
        _backend: backend,
    }
}

async fn shared_state(store: StoreAt) {
    let mut w = start(store).await;
    tokens_work_on_both_gateways_on_their_side_only(&w).await;
    replay_on_the_other_issuer_revokes_the_family(&w).await;
    revocation_on_one_issuer_reaches_both_gateways(&w).await;
    fifty_concurrent_refreshes_over_two_issuers_one_success(&w).await;
    for p in w.issuers.iter_mut().chain(w.gateways.iter_mut()) {
        p.assert_running();
    }
    drop(w.deployment);
}

async fn tokens_work_on_both_gateways_on_their_side_only(w: &World) {
    let acme = w.deployment.tenant("acme").clone();
    let globex = w.deployment.tenant("globex").clone();
    let [i1, i2] = &w.issuers;
    // A back-office login on issuer 1, a customer login on issuer 2, a
    // client-credentials token of the other tenant, and a login made
    // through gateway 2 (forwarded to issuer 2).
    let admin = Tokens::from_reply(&login(i1, &acme.host, &w.acme_bo, "admin", PASSWORD).await);
    let alice =
        Tokens::from_reply(&login(i2, &acme.host, &w.acme_sf, "alice@example.com", PASSWORD).await);
    let globex_client = Tokens::from_reply(&client_token(i2, &globex.host, &w.globex_bo).await);
    let via_gateway =
        Tokens::from_reply(&login(&w.gateways[1], &acme.host, &w.acme_bo, "admin", PASSWORD).await);
    let cases = [
        (&acme, &admin.access, acme.backoffice_api(), 200),
        (&acme, &admin.access, acme.storefront_api(), 401),
        (&acme, &via_gateway.access, acme.backoffice_api(), 200),
        (&acme, &via_gateway.access, acme.storefront_api(), 401),
        (&acme, &alice.access, acme.storefront_api(), 200),
        (&acme, &alice.access, acme.backoffice_api(), 401),
        (&globex, &globex_client.access, globex.backoffice_api(), 200),
        (&globex, &globex_client.access, globex.storefront_api(), 401),
        // Another tenant's token, on the right side's path.
        (&globex, &admin.access, globex.backoffice_api(), 401),
        (&acme, &globex_client.access, acme.backoffice_api(), 401),
    ];
    for gateway in &w.gateways {
        for (i, (tenant, token, path, status)) in cases.iter().enumerate() {
            let reply = gateway.get(&tenant.host, path, Some(token)).await;
            assert_eq!(
                reply.status, *status,
                "{}: case {i} ({} {path}): {}",
                gateway.name, tenant.id, reply.text
            );
            if *status == 401 {
                assert!(
                    reply
                        .header("www-authenticate")
                        .is_some_and(|h| h.contains(r#"error="invalid_token""#)),
                    "{:?}",
                    reply.headers
                );
            } else {
                let body = reply.json();
                assert!(body.get("data").is_some(), "{body}");
            }
        }
    }
}

async fn replay_on_the_other_issuer_revokes_the_family(w: &World) {
    let acme = w.deployment.tenant("acme");
    let [i1, i2] = &w.issuers;
    let first = Tokens::from_reply(&login(i1, &acme.host, &w.acme_bo, "admin", PASSWORD).await);
    let second = Tokens::from_reply(&refresh(i1, &acme.host, &w.acme_bo, first.refresh()).await);
    for gateway in &w.gateways {
        let reply = gateway
            .get(&acme.host, &acme.backoffice_api(), Some(&second.access))
            .await;
        assert_eq!(reply.status, 200, "{}: {}", gateway.name, reply.text);
    }
    // The rotated token, replayed on the other issuer.
    let replay = refresh(i2, &acme.host, &w.acme_bo, first.refresh()).await;
    replay.assert_oauth_error(
        400,
        "invalid_grant",
        "the refresh token was already used; its session has been revoked",
    );
    let replayed_at = Instant::now();
    // The whole family is gone: its current refresh token on either issuer,
    // and its access tokens on both gateways.
    for issuer in [i1, i2] {
        refresh(issuer, &acme.host, &w.acme_bo, second.refresh())
            .await
            .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    }
    let took = refused_everywhere(w, &acme.host, &acme.backoffice_api(), &second.access).await;
    eprintln!(
        "family revoked by a replay on issuer 2: refused by the gateways after {took:?} (from the replay's answer: {:?})",
        replayed_at.elapsed()
    );
}

async fn revocation_on_one_issuer_reaches_both_gateways(w: &World) {
    let acme = w.deployment.tenant("acme");
    let [i1, i2] = &w.issuers;
    let login2 = Tokens::from_reply(&login(i2, &acme.host, &w.acme_bo, "admin", PASSWORD).await);
    let bystander = Tokens::from_reply(&login(i2, &acme.host, &w.acme_bo, "admin", PASSWORD).await);
    let path = acme.backoffice_api();
    for gateway in &w.gateways {
        assert_eq!(
            gateway
                .get(&acme.host, &path, Some(&login2.access))
                .await
                .status,
            200
        );
    }
    // One access token (RFC 7009), on the other issuer than minted it.
    let reply = revoke(i1, &acme.host, &w.acme_bo, &login2.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let took = refused_everywhere(w, &acme.host, &path, &login2.access).await;
    eprintln!("an access token revoked on issuer 1: refused by both gateways within {took:?}");
    for gateway in &w.gateways {
        let reply = gateway
            .get(&acme.host, &path, Some(&bystander.access))
            .await;
        assert_eq!(
            reply.status, 200,
            "another login is untouched: {}",
            reply.text
        );
    }

    // Every token of a subject, through the admin API of issuer 2.
    let alice =
        Tokens::from_reply(&login(i1, &acme.host, &w.acme_sf, "alice@example.com", PASSWORD).await);
    let (status, body) = i2
        .admin(
            reqwest::Method::POST,
            "/v1/tenants/acme/revocations",
            Some(json!({"subject": "alice@example.com"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let took = refused_everywhere(w, &acme.host, &acme.storefront_api(), &alice.access).await;
    eprintln!("a subject revoked on issuer 2: refused by both gateways within {took:?}");
    for issuer in [i1, i2] {
        refresh(issuer, &acme.host, &w.acme_sf, alice.refresh())
            .await
            .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    }
}

/// Polls both gateways from now until each refuses `token` as revoked;
/// asserts each did within [`PROPAGATION`] and returns the slower time.
async fn refused_everywhere(w: &World, host: &str, path: &str, token: &str) -> Duration {
    let since = Instant::now();
    let (a, b) = tokio::join!(
        refused_on(&w.gateways[0], host, path, token, since),
        refused_on(&w.gateways[1], host, path, token, since)
    );
    for (gateway, took) in w.gateways.iter().zip([a, b]) {
        assert!(
            took < PROPAGATION,
            "{} refused the revoked token only after {took:?}",
            gateway.name
        );
    }
    a.max(b)
}

/// How long after `since` `gateway` first refused `token` as revoked.
async fn refused_on(
    gateway: &Process,
    host: &str,
    path: &str,
    token: &str,
    since: Instant,
) -> Duration {
    loop {
        let reply = gateway.get(host, path, Some(token)).await;
        if is_revoked(&reply) {
            return since.elapsed();
        }
        assert_eq!(
            reply.status, 200,
            "{}: before the refusal the token works: {}",
            gateway.name, reply.text
        );
        assert!(
            since.elapsed() < PROPAGATION * 5,
            "{}: the revoked token still works after {:?}",
            gateway.name,
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn fifty_concurrent_refreshes_over_two_issuers_one_success(w: &World) {
    let acme = w.deployment.tenant("acme");
    let [i1, _] = &w.issuers;
    let tokens = Tokens::from_reply(&login(i1, &acme.host, &w.acme_bo, "admin", PASSWORD).await);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let replies = futures_util::future::join_all((0..50).map(|i| {
        let barrier = barrier.clone();
        let issuer = &w.issuers[i % 2];
        let (host, client, token) = (&acme.host, &w.acme_bo, tokens.refresh());
        async move {
            barrier.wait().await;
            refresh(issuer, host, client, token).await
        }
    }))
    .await;
    let wins: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        wins.len(),
        1,
        "exactly one success: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.json()["error"], "invalid_grant", "{}", reply.text);
    }
    let by_issuer: Vec<usize> = (0..2)
        .map(|i| {
            replies
                .iter()
                .enumerate()
                .filter(|(n, r)| n % 2 == i && r.status == 400)
                .count()
        })
        .collect();
    eprintln!("50 concurrent refreshes: 1 success, refusals per issuer {by_issuer:?}");
    // The race is a replay: the family is revoked, the winner's tokens too.
    let winner = Tokens::from_reply(wins[0]);
    refresh(&w.issuers[1], &acme.host, &w.acme_bo, winner.refresh())
        .await
        .assert_oauth_error(400, "invalid_grant", "the refresh token has been revoked");
    refused_everywhere(w, &acme.host, &acme.backoffice_api(), &winner.access).await;
}
