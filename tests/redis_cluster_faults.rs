//! A stopped Redis Cluster node under real `splitgate` processes (issue 5,
//! `docs/operations.md` "When Redis fails"): the tenants whose keys live
//! on it fail fast with the exact 503 until it is back, the others are
//! unaffected, and the gateways' event subscription, which was on that
//! node, moves to another one.
//!
//! Every tenant's keys share one hash slot (`{tenant}`), so the test picks
//! two tenant ids on different nodes: one on node 0 (the first seed, where
//! every process subscribes first), one elsewhere.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use splitgate::demo::DemoBackend;
use support::process::{
    ClientCreds, Deployment, Process, Setup, StoreAt, Tokens, assert_store_down, demo_backend,
    is_revoked, is_store_down, login, refresh, revoke, timed,
};
use support::redis::RedisCluster;

const PASSWORD: &str = "correct horse battery";
/// "Fails fast": `store.timeout` (500 ms here) plus slack for a loaded
/// machine.
const FAST: Duration = Duration::from_millis(1500);
const DEADLINE: Duration = Duration::from_secs(20);

fn fails_fast(what: &str, answer: &(support::Reply, Duration)) {
    assert_store_down(what, answer, FAST);
}

/// Polls `probe` until it holds; returns how long that took.
async fn until<F, Fut>(what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
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

/// Two tenant ids whose keys live on different nodes: the first on node
/// 0 (the first seed, where every process subscribes), the second not.
fn tenants_apart(cluster: &RedisCluster) -> (String, String) {
    let names = [
        "acme",
        "globex",
        "initech",
        "umbrella",
        "hooli",
        "wonka",
        "tyrell",
        "stark",
        "wayne",
        "soylent",
        "cyberdyne",
        "aperture",
    ];
    let node = |t: &str| cluster.owner_of(&splitgate_shared::store::key(t, "x"));
    let on_zero = names
        .iter()
        .find(|t| node(t) == 0)
        .expect("a tenant on node 0");
    let elsewhere = names
        .iter()
        .find(|t| node(t) != 0)
        .expect("a tenant elsewhere");
    (on_zero.to_string(), elsewhere.to_string())
}

/// A cluster, a tenant on node 0 (`down`) and one elsewhere (`up`), one
/// issuer and one gateway; node 0 is then stopped.
struct ClusterBed {
    cluster: RedisCluster,
    d: Deployment,
    issuer: Process,
    gateway: Process,
    down: (String, ClientCreds, Tokens),
    up: (String, ClientCreds, Tokens),
    _backend: DemoBackend,
}

async fn cluster_with_node_zero_stopped(staleness: &str) -> ClusterBed {
    let mut cluster = RedisCluster::start(3);
    let (down_id, up_id) = tenants_apart(&cluster);
    let backend = demo_backend().await;
    let mut setup = Setup::new(StoreAt::Cluster(cluster.urls()), &backend.url());
    setup.tenants = vec![down_id.clone(), up_id.clone()];
    setup.gateway = format!("revocation_max_staleness = {staleness:?}");
    let d = Deployment::new(&setup);
    let issuer = d.issuer("issuer").await;
    let gateway = d.gateway("gateway", &issuer, &[]).await;
    let mut beds = Vec::new();
    for id in [&down_id, &up_id] {
        let tenant = d.tenant(id).clone();
        let client = ClientCreds::create(&issuer, id, "backoffice").await;
        issuer
            .create_user(id, "backoffice", "admin", PASSWORD)
            .await;
        let tokens =
            Tokens::from_reply(&login(&issuer, &tenant.host, &client, "admin", PASSWORD).await);
        let reply = gateway
            .get(&tenant.host, &tenant.backoffice_api(), Some(&tokens.access))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        beds.push((id.clone(), client, tokens));
    }
    // Snapshot node 0 first, so that it comes back with its data (these
    // nodes keep no append-only file): the stop is the fault, not data loss.
    assert_eq!(
        cluster.node(0).command(&["SAVE"]),
        support::redis::Reply::Status("OK".into())
    );
    cluster.stop(0);
    let up = beds.pop().unwrap();
    let down = beds.pop().unwrap();
    ClusterBed {
        cluster,
        d,
        issuer,
        gateway,
        down,
        up,
        _backend: backend,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cluster_node_fails_only_its_tenants_on_the_issuer() {
    let mut bed = cluster_with_node_zero_stopped("30s").await;
    let (down, up) = (
        bed.d.tenant(&bed.down.0).clone(),
        bed.d.tenant(&bed.up.0).clone(),
    );
    eprintln!(
        "node 0 stopped: tenant {} is down, {} is up",
        down.id, up.id
    );
    for round in 0..3 {
        // The tenant on the stopped node: fast, exact 503s.
        let (client, tokens) = (&bed.down.1, &bed.down.2);
        fails_fast(
            &format!("round {round}: login, {}", down.id),
            &timed(login(&bed.issuer, &down.host, client, "admin", PASSWORD)).await,
        );
        fails_fast(
            &format!("round {round}: refresh, {}", down.id),
            &timed(refresh(&bed.issuer, &down.host, client, tokens.refresh())).await,
        );
        // The other tenant: unaffected.
        let (client, tokens) = (&bed.up.1, &bed.up.2);
        let (reply, took) = timed(login(&bed.issuer, &up.host, client, "admin", PASSWORD)).await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text);
        assert!(took < FAST, "{took:?}");
        let fresh = Tokens::from_reply(&reply);
        let reply = bed
            .gateway
            .get(&up.host, &up.backoffice_api(), Some(&fresh.access))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let _ = tokens;
    }
    // The gateway verifies both tenants' tokens from memory.
    for (tenant, tokens) in [(&down, &bed.down.2), (&up, &bed.up.2)] {
        let reply = bed
            .gateway
            .get(&tenant.host, &tenant.backoffice_api(), Some(&tokens.access))
            .await;
        assert_eq!(reply.status, 200, "{}: {}", tenant.id, reply.text);
    }

    bed.cluster.restart(0);
    let took = until("the stopped node's tenant logs in again", || async {
        let reply = login(&bed.issuer, &down.host, &bed.down.1, "admin", PASSWORD).await;
        assert!(
            reply.status == 200 || is_store_down(&reply),
            "{}",
            reply.text
        );
        reply.status == 200
    })
    .await;
    eprintln!(
        "tenant {} served again {took:?} after node 0 restarted",
        down.id
    );
    let next = Tokens::from_reply(
        &refresh(&bed.issuer, &down.host, &bed.down.1, bed.down.2.refresh()).await,
    );
    let reply = bed
        .gateway
        .get(&down.host, &down.backoffice_api(), Some(&next.access))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    bed.issuer.assert_running();
    bed.gateway.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cluster_node_leaves_other_tenants_revocations_enforced() {
    let mut bed = cluster_with_node_zero_stopped("4s").await;
    let stopped = Instant::now();
    let up = bed.d.tenant(&bed.up.0).clone();
    let (client, tokens) = (&bed.up.1, &bed.up.2);
    let fresh = Tokens::from_reply(&login(&bed.issuer, &up.host, client, "admin", PASSWORD).await);
    let call = |token: &str| {
        let (gateway, host, path) = (&bed.gateway, up.host.clone(), up.backoffice_api());
        let token = token.to_owned();
        async move { gateway.get(&host, &path, Some(&token)).await }
    };
    // Traffic for a while: the gateway's subscription, which was on node
    // 0, has moved to another node by now.
    while stopped.elapsed() < Duration::from_secs(3) {
        let reply = call(&tokens.access).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A revocation of the tenant whose node is up is enforced within 1 s.
    let reply = revoke(&bed.issuer, &up.host, client, &tokens.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let since = Instant::now();
    let mut late = None;
    loop {
        let reply = call(&tokens.access).await;
        if is_revoked(&reply) {
            break;
        }
        if since.elapsed() > Duration::from_secs(1) && late.is_none() {
            late = Some(format!("{} {}", reply.status, reply.text));
        }
        assert!(since.elapsed() < DEADLINE, "never refused: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "tenant {} (node up): revocation enforced {:?} after the revoke",
        up.id,
        since.elapsed()
    );
    // Past the staleness bound, that tenant is still served ("other
    // tenants are unaffected").
    while stopped.elapsed() < Duration::from_secs(6) {
        let reply = call(&fresh.access).await;
        assert_eq!(
            reply.status,
            200,
            "tenant {} (node up), {:?} after node 0 stopped: {}",
            up.id,
            stopped.elapsed(),
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        late, None,
        "a revoked token of a tenant whose node is up was served for over 1 s"
    );
    bed.cluster.restart(0);
    bed.issuer.assert_running();
    bed.gateway.assert_running();
}
