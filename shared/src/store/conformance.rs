//! The store conformance suite: the exact behaviour every backend must
//! have. Each backend's tests run it with [`conformance_tests!`]:
//!
//! ```ignore
//! splitgate_shared::conformance_tests!(Store::memory());
//! ```
//!
//! The expression is evaluated inside each async test, so it may `.await`.
//! Every case works under its own random tenant, so backends that share a
//! server between cases (Redis) stay isolated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::{Change, Event, Notice, Store, key};
use crate::revocation::Revocation;
use crate::secrets::random_id;
use crate::time::now_millis;

const DEADLINE: Duration = Duration::from_secs(10);

fn fresh_key(rest: &str) -> String {
    key(&format!("t-{}", random_id()), rest)
}

/// Polls `probe` until it returns true or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn values_round_trip(store: &Store) {
    let k = fresh_key("value");
    assert_eq!(store.get(&k).await.unwrap(), None);
    store.put(&k, b"one", None).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"one"[..]));
    store.put(&k, b"two", None).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(store.delete(&k).await.unwrap());
    assert!(!store.delete(&k).await.unwrap());
    assert_eq!(store.get(&k).await.unwrap(), None);
}

pub async fn values_are_binary_safe(store: &Store) {
    let k = fresh_key("binary");
    let value: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    store.put(&k, &value, None).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Some(value));
    let empty = fresh_key("empty");
    store.put(&empty, b"", None).await.unwrap();
    assert_eq!(store.get(&empty).await.unwrap(), Some(vec![]));
}

pub async fn values_expire(store: &Store) {
    let short = fresh_key("short");
    let forever = fresh_key("forever");
    store
        .put(&short, b"x", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    store.put(&forever, b"y", None).await.unwrap();
    assert!(
        store.get(&short).await.unwrap().is_some(),
        "present before its TTL"
    );
    eventually("a value with a TTL expires", || async {
        store.get(&short).await.unwrap().is_none()
    })
    .await;
    assert!(
        !store.delete(&short).await.unwrap(),
        "an expired value is not deleted again"
    );
    assert!(
        store.take(&short).await.unwrap().is_none(),
        "an expired value cannot be taken"
    );
    assert_eq!(
        store.get(&forever).await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    // Re-putting with a TTL replaces "no expiry" and vice versa.
    store
        .put(&forever, b"y", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    eventually("a TTL set by put applies", || async {
        store.get(&forever).await.unwrap().is_none()
    })
    .await;
}

pub async fn insert_only_if_absent(store: &Store) {
    let k = fresh_key("insert");
    assert!(store.insert(&k, b"first", None).await.unwrap());
    assert!(!store.insert(&k, b"second", None).await.unwrap());
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"first"[..]));
    let e = fresh_key("insert-expiring");
    assert!(
        store
            .insert(&e, b"a", Some(Duration::from_millis(200)))
            .await
            .unwrap()
    );
    eventually("insert succeeds once the old value expired", || async {
        store.insert(&e, b"b", None).await.unwrap()
    })
    .await;
    assert_eq!(store.get(&e).await.unwrap().as_deref(), Some(&b"b"[..]));
}

pub async fn replace_is_compare_and_swap(store: &Store) {
    let k = fresh_key("cas");
    assert!(
        !store.replace(&k, b"", b"x", None).await.unwrap(),
        "absent never matches"
    );
    store.put(&k, b"v1", None).await.unwrap();
    assert!(!store.replace(&k, b"v0", b"v2", None).await.unwrap());
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(
        store
            .replace(&k, b"v1", b"v2", Some(Duration::from_millis(250)))
            .await
            .unwrap()
    );
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    eventually("replace sets the new TTL", || async {
        store.get(&k).await.unwrap().is_none()
    })
    .await;
}

pub async fn replace_has_one_winner(store: &Store) {
    let k = fresh_key("cas-race");
    store.put(&k, b"gen-0", None).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move {
                store
                    .replace(&k, b"gen-0", format!("gen-1-{i}").as_bytes(), None)
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one of 50 concurrent replaces wins");
}

pub async fn take_is_single_use(store: &Store) {
    let k = fresh_key("take");
    assert_eq!(store.take(&k).await.unwrap(), None);
    store
        .put(&k, b"code", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move { store.take(&k).await })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        if let Some(v) = t.await.unwrap().unwrap() {
            got.push(v);
        }
    }
    assert_eq!(
        got,
        vec![b"code".to_vec()],
        "exactly one of 50 concurrent takes gets the value"
    );
    assert_eq!(store.get(&k).await.unwrap(), None);
}

pub async fn counters(store: &Store) {
    let k = fresh_key("counter");
    assert_eq!(
        store
            .incr(&k, 1, Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.incr(&k, 5, None).await.unwrap(), 6);
    assert_eq!(store.incr(&k, -2, None).await.unwrap(), 4);
    eventually("a counter expires with the TTL of its creation", || async {
        store.get(&k).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.incr(&k, 1, None).await.unwrap(), 1);
    let text = fresh_key("not-a-counter");
    store.put(&text, b"abc", None).await.unwrap();
    assert!(store.incr(&text, 1, None).await.is_err());
}

pub async fn maps(store: &Store) {
    let k = fresh_key("map");
    let other = fresh_key("map");
    assert_eq!(store.map_get(&k, "a").await.unwrap(), None);
    assert_eq!(store.map_all(&k).await.unwrap(), vec![]);
    store.map_put(&k, "b", b"2").await.unwrap();
    store.map_put(&k, "a", b"1").await.unwrap();
    store.map_put(&other, "a", b"other").await.unwrap();
    assert!(!store.map_insert(&k, "a", b"x").await.unwrap());
    assert!(store.map_insert(&k, "c", b"3").await.unwrap());
    store.map_put(&k, "b", b"22").await.unwrap();
    assert_eq!(
        store.map_get(&k, "a").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        store.map_all(&k).await.unwrap(),
        vec![
            ("a".into(), b"1".to_vec()),
            ("b".into(), b"22".to_vec()),
            ("c".into(), b"3".to_vec())
        ]
    );
    assert!(store.map_delete(&k, "a").await.unwrap());
    assert!(!store.map_delete(&k, "a").await.unwrap());
    assert_eq!(store.map_all(&k).await.unwrap().len(), 2);
    assert_eq!(
        store.map_all(&other).await.unwrap(),
        vec![("a".into(), b"other".to_vec())]
    );
    assert!(store.map_delete(&k, "b").await.unwrap());
    assert!(store.map_delete(&k, "c").await.unwrap());
    assert_eq!(store.map_all(&k).await.unwrap(), vec![]);
}

pub async fn map_insert_has_one_winner(store: &Store) {
    let k = fresh_key("map-race");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move {
                store
                    .map_insert(&k, "name", format!("{i}").as_bytes())
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(wins, 1);
}

pub async fn expiring_sets(store: &Store) {
    let k = fresh_key("set");
    let now = now_millis();
    assert_eq!(store.set_members(&k).await.unwrap(), vec![]);
    store.set_add(&k, "b", now + 60_000).await.unwrap();
    store.set_add(&k, "a", now + 60_000).await.unwrap();
    store
        .set_add(&k, "gone", now.saturating_sub(1_000))
        .await
        .unwrap();
    store.set_add(&k, "soon", now + 300).await.unwrap();
    let members = store.set_members(&k).await.unwrap();
    let names: Vec<_> = members.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        names == ["a", "b", "soon"] || names == ["a", "b"],
        "{names:?}"
    );
    assert_eq!(members[0].1, now + 60_000, "members carry their expiry");
    eventually("set members expire", || async {
        store.set_members(&k).await.unwrap().len() == 2
    })
    .await;
    store.set_add(&k, "a", now + 120_000).await.unwrap();
    assert_eq!(
        store.set_members(&k).await.unwrap()[0],
        ("a".into(), now + 120_000),
        "re-adding updates the expiry"
    );
}

pub async fn events_reach_every_subscriber_in_order(store: &Store) {
    let tenant = format!("t-{}", random_id());
    let mut first = store.subscribe();
    let mut second = store.subscribe();
    for sub in [&mut first, &mut second] {
        assert_eq!(
            next(sub).await,
            Notice::Resync,
            "a subscription starts with a resync"
        );
    }
    let events: Vec<Event> = (0..3)
        .map(|i| Event {
            tenant: tenant.clone(),
            change: Change::Revoked {
                revocation: Revocation::Token {
                    jti: format!("j{i}"),
                    until: 4_000_000_000,
                },
            },
        })
        .chain([Event {
            tenant: tenant.clone(),
            change: Change::KeysChanged,
        }])
        .collect();
    for e in &events {
        store.publish(e).await.unwrap();
    }
    for sub in [&mut first, &mut second] {
        let mut seen = Vec::new();
        while seen.len() < events.len() {
            match next(sub).await {
                // Other cases may publish on a shared server: keep ours.
                Notice::Event(e) if e.tenant == tenant => seen.push(e),
                Notice::Event(_) | Notice::Resync => {}
                Notice::Lost => panic!("lost the connection during the test"),
            }
        }
        assert_eq!(seen, events);
    }
}

async fn next(sub: &mut super::Subscription) -> Notice {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a notice within the deadline")
        .expect("the subscription is open")
}

pub async fn ping(store: &Store) {
    store.ping().await.unwrap();
}

/// Generates one `#[tokio::test]` per conformance case. `$make` is an
/// expression evaluating to a [`Store`]; it may `.await`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            values_round_trip, values_are_binary_safe, values_expire, insert_only_if_absent,
            replace_is_compare_and_swap, replace_has_one_winner, take_is_single_use, counters,
            maps, map_insert_has_one_winner, expiring_sets, events_reach_every_subscriber_in_order, ping);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: $crate::store::Store = $make;
                $crate::store::conformance::$case(&store).await;
            }
        )*
    };
}
