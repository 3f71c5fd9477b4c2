//! The `redis` store backend against real redis-server processes: the
//! conformance suite on one Redis and on a three-node cluster, then what
//! happens when things go wrong (Redis killed and restarted, a wrong
//! password, no server at all, maxmemory reached, a cluster node stopped).
//!
//! The conformance servers are started once per module and shared by its
//! cases (each case works under its own random tenant); every fault test
//! starts its own servers, since it breaks them.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use splitgate_shared::config::{StoreBackend, StoreConfig};
use splitgate_shared::revocation::Revocation;
use splitgate_shared::secrets::random_id;
use splitgate_shared::store::{Change, Event, Notice, Store, StoreError, Subscription, key};
use support::redis::{RedisCluster, RedisServer};

/// The default `store.timeout`.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What "fails fast" means here: well under the store timeout.
const FAST: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_secs(15);

fn config(url: Option<String>, cluster: Vec<String>) -> StoreConfig {
    StoreConfig {
        backend: StoreBackend::Redis,
        data_dir: std::env::temp_dir(),
        url,
        cluster,
        encryption_key: None,
        timeout: TIMEOUT,
        ca: None,
    }
}

async fn open(url: Option<String>, cluster: Vec<String>) -> Store {
    Store::open(&config(url, cluster))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Redis: {e}"))
}

mod single {
    use super::*;
    use std::sync::LazyLock;

    static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

    async fn store() -> Store {
        open(Some(SERVER.url()), vec![]).await
    }

    splitgate_shared::conformance_tests!(store().await);

    #[tokio::test]
    async fn events_reach_subscribers_of_another_store() {
        events_cross_stores(store().await, store().await).await;
    }

    #[tokio::test]
    async fn type_errors_are_failures() {
        let store = store().await;
        let text = tenant_key("text");
        store.put(&text, b"abc", None).await.unwrap();
        assert!(
            matches!(store.incr(&text, 1, None).await, Err(StoreError::Failed(m)) if m.contains("not an integer"))
        );
        let map = tenant_key("map");
        store.map_put(&map, "f", b"v").await.unwrap();
        assert!(
            matches!(store.get(&map).await, Err(StoreError::Failed(m)) if m.contains("WRONGTYPE"))
        );
        assert!(matches!(
            store.replace(&map, b"v", b"w", None).await,
            Err(StoreError::Failed(_))
        ));
    }

    #[tokio::test]
    async fn set_keys_expire_with_their_last_member() {
        let store = store().await;
        let k = tenant_key("set-ttl");
        let now = splitgate_shared::time::now_millis();
        store.set_add(&k, "a", now + 600_000).await.unwrap();
        store.set_add(&k, "b", now + 300_000).await.unwrap();
        let pttl = SERVER.command(&["PTTL", &k]);
        let support::redis::Reply::Int(ms) = pttl else {
            panic!("PTTL: {pttl:?}")
        };
        // The last member's expiry plus the one-minute grace, give or take.
        assert!((655_000..=661_000).contains(&ms), "{ms}");
    }
}

mod cluster {
    use super::*;
    use std::sync::LazyLock;

    static CLUSTER: LazyLock<RedisCluster> = LazyLock::new(|| RedisCluster::start(3));

    async fn store() -> Store {
        open(None, CLUSTER.urls()).await
    }

    splitgate_shared::conformance_tests!(store().await);

    #[tokio::test]
    async fn events_reach_subscribers_of_another_store() {
        events_cross_stores(store().await, store().await).await;
    }

    #[tokio::test]
    async fn tenants_spread_over_every_node() {
        let store = store().await;
        let mut seen = vec![false; CLUSTER.len()];
        for _ in 0..200 {
            let k = tenant_key("spread");
            store.put(&k, b"x", None).await.unwrap();
            assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"x"[..]));
            seen[CLUSTER.owner_of(&k)] = true;
        }
        assert_eq!(seen, vec![true; CLUSTER.len()]);
    }
}

fn tenant_key(rest: &str) -> String {
    key(&format!("t-{}", random_id()), rest)
}

fn event(tenant: &str, jti: &str) -> Event {
    Event {
        tenant: tenant.to_owned(),
        change: Change::Revoked {
            revocation: Revocation::Token {
                jti: jti.to_owned(),
                until: 4_000_000_000,
            },
        },
    }
}

async fn next(sub: &mut Subscription) -> Notice {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a notice within the deadline")
        .expect("the subscription is open")
}

/// The next notice about `tenant` (or a Resync/Lost), skipping other
/// tests' events on a shared server.
async fn next_for(sub: &mut Subscription, tenant: &str) -> Notice {
    loop {
        match next(sub).await {
            Notice::Event(e) if e.tenant != tenant => continue,
            notice => return notice,
        }
    }
}

/// One store publishes, another one (another process, as far as Redis
/// knows) hears it.
async fn events_cross_stores(publisher: Store, subscriber: Store) {
    let tenant = format!("t-{}", random_id());
    let mut sub = subscriber.subscribe();
    assert_eq!(next(&mut sub).await, Notice::Resync);
    publisher.publish(&event(&tenant, "j1")).await.unwrap();
    assert_eq!(
        next_for(&mut sub, &tenant).await,
        Notice::Event(event(&tenant, "j1"))
    );
}

/// Runs `call`, checks it failed as `Unavailable` within [`FAST`], and
/// returns how long it took.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Duration {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: {result:?}"
    );
    assert!(took < FAST, "{what} took {took:?} to fail");
    took
}

/// Polls `probe` until it returns true or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut probe: F) -> Duration
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

mod faults {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_fail_fast_while_redis_is_down_and_resume_when_it_is_back() {
        let mut server = RedisServer::start();
        let store = open(Some(server.url()), vec![]).await;
        let k = tenant_key("v");
        store.put(&k, b"before", None).await.unwrap();

        server.kill();
        let mut timings = Vec::new();
        for round in 0..3 {
            timings.push(fails_fast(&format!("get #{round}"), store.get(&k)).await);
            timings.push(fails_fast("put", store.put(&k, b"x", None)).await);
            timings.push(fails_fast("replace", store.replace(&k, b"a", b"b", None)).await);
            timings.push(fails_fast("set_members", store.set_members(&k)).await);
            timings.push(fails_fast("publish", store.publish(&event("t", "j"))).await);
            timings.push(fails_fast("ping", store.ping()).await);
        }
        eprintln!("calls while Redis is down failed in {timings:?}");

        server.restart();
        let took = eventually("calls succeed again", || async {
            store.put(&k, b"after", None).await.is_ok()
        })
        .await;
        eprintln!("calls succeeded again {took:?} after the restart");
        assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"after"[..]));
        assert!(store.replace(&k, b"after", b"again", None).await.unwrap());
        store.ping().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_says_lost_then_resyncs_after_a_restart() {
        let mut server = RedisServer::start();
        let store = open(Some(server.url()), vec![]).await;
        let tenant = format!("t-{}", random_id());
        let mut sub = store.subscribe();
        assert_eq!(next(&mut sub).await, Notice::Resync);
        store.publish(&event(&tenant, "before")).await.unwrap();
        assert_eq!(
            next(&mut sub).await,
            Notice::Event(event(&tenant, "before"))
        );

        let killed = Instant::now();
        server.kill();
        assert_eq!(next(&mut sub).await, Notice::Lost);
        eprintln!("Lost {:?} after the kill", killed.elapsed());

        let restarted = Instant::now();
        server.restart();
        assert_eq!(next(&mut sub).await, Notice::Resync);
        eprintln!("Resync {:?} after the restart", restarted.elapsed());
        eventually("publishing works again", || async {
            store.publish(&event(&tenant, "after")).await.is_ok()
        })
        .await;
        assert_eq!(next(&mut sub).await, Notice::Event(event(&tenant, "after")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frozen_redis_times_calls_out_and_the_subscription_notices() {
        let server = RedisServer::start();
        let mut cfg = config(Some(server.url()), vec![]);
        cfg.timeout = Duration::from_millis(300);
        let store = Store::open(&cfg).await.unwrap();
        let k = tenant_key("v");
        store.put(&k, b"v", None).await.unwrap();
        let mut sub = store.subscribe();
        assert_eq!(next(&mut sub).await, Notice::Resync);

        server.pause();
        let started = Instant::now();
        let result = store.get(&k).await;
        let took = started.elapsed();
        eprintln!("a call to a frozen Redis failed after {took:?}: {result:?}");
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(took < Duration::from_millis(600), "{took:?}");
        // The idle subscription finds out with its next ping.
        let lost = tokio::time::timeout(Duration::from_secs(20), sub.next()).await;
        eprintln!("the subscription noticed after {:?}", started.elapsed());
        assert_eq!(lost.unwrap(), Some(Notice::Lost));

        server.resume();
        assert_eq!(next(&mut sub).await, Notice::Resync);
        eventually("calls succeed after the thaw", || async {
            store
                .get(&k)
                .await
                .is_ok_and(|v| v.as_deref() == Some(&b"v"[..]))
        })
        .await;
        store.put(&k, b"w", None).await.unwrap();
        assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"w"[..]));
    }

    #[tokio::test]
    async fn a_subscription_started_while_redis_is_down_waits_for_it() {
        let mut server = RedisServer::start();
        let store = open(Some(server.url()), vec![]).await;
        server.kill();
        let mut sub = store.subscribe();
        // No `Lost` first: the subscriber never had a view to lose.
        let early = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
        assert!(early.is_err(), "nothing until connected: {early:?}");
        server.restart();
        assert_eq!(next(&mut sub).await, Notice::Resync);
    }

    #[tokio::test]
    async fn a_wrong_password_is_a_clear_error_without_the_password() {
        let server = RedisServer::start_with(&["--requirepass", "right-pw-123"]);
        let place = format!("127.0.0.1:{}", server.port());

        let wrong = Store::open(&config(
            Some(server.url_with_password("wrong-pw-456")),
            vec![],
        ))
        .await;
        let Err(StoreError::Failed(message)) = wrong else {
            panic!("a wrong password: {wrong:?}")
        };
        eprintln!("wrong password: {message}");
        assert!(message.contains("refused the credentials"), "{message}");
        assert!(message.contains(&place), "{message}");
        assert!(!message.contains("wrong-pw-456"), "{message}");
        assert!(message.contains("redis://***@"), "{message}");

        let none = Store::open(&config(Some(format!("redis://{place}/")), vec![])).await;
        let Err(StoreError::Failed(message)) = none else {
            panic!("no password: {none:?}")
        };
        assert!(message.contains("refused the credentials"), "{message}");

        // The right one works, for commands and for events.
        let store = open(Some(server.url()), vec![]).await;
        store.ping().await.unwrap();
        let mut sub = store.subscribe();
        assert_eq!(next(&mut sub).await, Notice::Resync);
    }

    #[tokio::test]
    async fn no_server_at_start_is_unavailable_and_names_it() {
        let port = support::redis::free_port();
        let url = format!("redis://:hidden-pw@127.0.0.1:{port}/");
        let started = Instant::now();
        let result = Store::open(&config(Some(url), vec![])).await;
        let took = started.elapsed();
        let Err(StoreError::Unavailable(message)) = result else {
            panic!("no server: {result:?}")
        };
        eprintln!("no server at start: failed in {took:?}: {message}");
        assert!(took < FAST, "{took:?}");
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(message.contains("cannot connect"), "{message}");
        assert!(!message.contains("hidden-pw"), "{message}");

        let cluster = Store::open(&config(None, vec![format!("redis://127.0.0.1:{port}")])).await;
        assert!(
            matches!(&cluster, Err(StoreError::Unavailable(m)) if m.contains("cluster")),
            "{cluster:?}"
        );
    }

    #[tokio::test]
    async fn rediss_verifies_the_server_against_store_ca() {
        // A throwaway CA and a server certificate for 127.0.0.1.
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        std::fs::write(path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(path("server.pem"), cert.pem()).unwrap();
        std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
        let tls_port = support::redis::free_port().to_string();
        let _server = RedisServer::start_with(&[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ]);
        let url = format!("rediss://127.0.0.1:{tls_port}/");

        let mut with_ca = config(Some(url.clone()), vec![]);
        with_ca.ca = Some(dir.path().join("ca.pem"));
        let store = Store::open(&with_ca).await.expect("rediss with store.ca");
        let k = tenant_key("tls");
        store.put(&k, b"over tls", None).await.unwrap();
        assert_eq!(
            store.get(&k).await.unwrap().as_deref(),
            Some(&b"over tls"[..])
        );

        // Without the CA the server's certificate is not trusted: refused at start.
        let refused = Store::open(&config(Some(url), vec![])).await;
        assert!(
            refused.is_err(),
            "an untrusted Redis certificate must be refused"
        );
    }

    #[tokio::test]
    async fn maxmemory_refuses_writes_and_keeps_reads() {
        let server = RedisServer::start();
        let store = open(Some(server.url()), vec![]).await;
        let (v, m, s, c) = (
            tenant_key("v"),
            tenant_key("m"),
            tenant_key("s"),
            tenant_key("c"),
        );
        store.put(&v, b"kept", None).await.unwrap();
        store.map_put(&m, "f", b"kept").await.unwrap();
        let until = splitgate_shared::time::now_millis() + 600_000;
        store.set_add(&s, "member", until).await.unwrap();
        store.incr(&c, 1, None).await.unwrap();
        let taken = tenant_key("take");
        store.put(&taken, b"once", None).await.unwrap();

        // Any write now needs more memory than allowed.
        server.command(&["CONFIG", "SET", "maxmemory", "1"]);
        let full = |what: &str, r: Result<(), StoreError>| match r {
            Err(StoreError::Full(message)) => {
                eprintln!("{what}: {message}");
                assert!(message.contains("maxmemory"), "{what}: {message}")
            }
            other => panic!("{what}: {other:?}"),
        };
        full("put", store.put(&v, b"new", None).await);
        full(
            "insert",
            store.insert(&tenant_key("n"), b"x", None).await.map(|_| ()),
        );
        full(
            "replace",
            store.replace(&v, b"kept", b"new", None).await.map(|_| ()),
        );
        full("incr", store.incr(&c, 1, None).await.map(|_| ()));
        full("map_put", store.map_put(&m, "g", b"x").await);
        full(
            "map_insert",
            store.map_insert(&m, "g", b"x").await.map(|_| ()),
        );
        full("set_add", store.set_add(&s, "other", until).await);

        assert_eq!(store.get(&v).await.unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(
            store.map_get(&m, "f").await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(store.map_all(&m).await.unwrap().len(), 1);
        assert_eq!(
            store.set_members(&s).await.unwrap(),
            vec![("member".into(), until)]
        );
        // Deleting frees memory, so Redis allows it.
        assert_eq!(
            store.take(&taken).await.unwrap().as_deref(),
            Some(&b"once"[..])
        );
        assert!(store.delete(&v).await.unwrap());
        store.publish(&event("t", "j")).await.unwrap();
        store.ping().await.unwrap();

        server.command(&["CONFIG", "SET", "maxmemory", "0"]);
        store.put(&v, b"new", None).await.unwrap();
        assert_eq!(store.incr(&c, 1, None).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_cluster_node_fails_only_its_slots() {
        let mut cluster = RedisCluster::start(3);
        let store = open(None, cluster.urls()).await;
        // One key per node.
        let mut keys = vec![None; cluster.len()];
        while keys.iter().any(Option::is_none) {
            let k = tenant_key("v");
            let owner = cluster.owner_of(&k);
            keys[owner] = Some(k);
        }
        let keys: Vec<String> = keys.into_iter().flatten().collect();
        for k in &keys {
            store.put(k, b"v0", None).await.unwrap();
        }
        let tenant = format!("t-{}", random_id());
        // The subscription is on the first seed, node 0: the one stopped.
        let mut sub = store.subscribe();
        assert_eq!(next(&mut sub).await, Notice::Resync);

        cluster.stop(0);
        let check = |phase: &'static str| {
            let (store, keys) = (&store, &keys);
            async move {
                let took = fails_fast(phase, store.get(&keys[0])).await;
                fails_fast(phase, store.replace(&keys[0], b"v0", b"v1", None)).await;
                eprintln!("{phase}: a call for the stopped node failed in {took:?}");
                for k in &keys[1..] {
                    let started = Instant::now();
                    assert_eq!(
                        store.get(k).await.unwrap().as_deref(),
                        Some(&b"v0"[..]),
                        "{phase}"
                    );
                    store.put(k, b"v0", None).await.unwrap();
                    assert!(store.incr(&format!("{k}:n"), 1, None).await.unwrap() > 0);
                    assert!(started.elapsed() < FAST, "{phase}: {:?}", started.elapsed());
                }
                store.ping().await.unwrap();
            }
        };
        check("just stopped").await;
        assert_eq!(next(&mut sub).await, Notice::Lost);
        assert_eq!(
            next(&mut sub).await,
            Notice::Resync,
            "resubscribed on another node"
        );
        store.publish(&event(&tenant, "while-down")).await.unwrap();
        assert_eq!(
            next_for(&mut sub, &tenant).await,
            Notice::Event(event(&tenant, "while-down"))
        );

        cluster.wait_marked_failed(0);
        check("marked failed").await;

        // A process starting now, with the dead node first among its seeds.
        let late = open(None, cluster.urls()).await;
        assert_eq!(
            late.get(&keys[1]).await.unwrap().as_deref(),
            Some(&b"v0"[..])
        );
        fails_fast("a late store, stopped node", late.get(&keys[0])).await;

        cluster.restart(0);
        let took = eventually("the restarted node serves its slots again", || async {
            store.put(&keys[0], b"v2", None).await.is_ok()
        })
        .await;
        eprintln!("the restarted node served again after {took:?}");
        assert_eq!(
            store.get(&keys[0]).await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
    }
}
