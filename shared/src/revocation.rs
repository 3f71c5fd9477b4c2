//! Revocations: what they are, how they are stored and published, and the
//! in-memory view that answers "is this token revoked?" without a store
//! round trip (DESIGN §5).
//!
//! Each tenant's revocations live in one expiring set (`sg:{t}:revoked`), so
//! a gateway (re)loads a tenant's whole list in one call; every new one is
//! also published as a [`Change::Revoked`] event. [`follow`] keeps a
//! [`RevocationView`] current from those two sources and tracks how long it
//! has been cut off from the store, for the staleness rule of DESIGN §5.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinSet;

use serde::{Deserialize, Serialize};

use crate::store::{self, Change, Event, Notice, Store, StoreResult};
use crate::time::now_millis;

/// One revocation. `until` (Unix seconds) is when it stops mattering: the
/// last moment a token it covers could still be valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Revocation {
    /// One access token, by `jti`.
    Token { jti: String, until: u64 },
    /// Everything of one refresh family or grant, by `sid`.
    Family { sid: String, until: u64 },
    /// Every token of `subject` issued before `before` (Unix seconds).
    Subject {
        subject: String,
        before: u64,
        until: u64,
    },
}

impl Revocation {
    pub fn until(&self) -> u64 {
        match self {
            Revocation::Token { until, .. }
            | Revocation::Family { until, .. }
            | Revocation::Subject { until, .. } => *until,
        }
    }

    /// The set member: `jti:<id>`, `sid:<id>` or `sub:<before>:<subject>`.
    fn member(&self) -> String {
        match self {
            Revocation::Token { jti, .. } => format!("jti:{jti}"),
            Revocation::Family { sid, .. } => format!("sid:{sid}"),
            Revocation::Subject {
                subject, before, ..
            } => format!("sub:{before}:{subject}"),
        }
    }

    fn from_member(member: &str, expires_at_ms: u64) -> Option<Revocation> {
        let until = expires_at_ms / 1000;
        let (kind, rest) = member.split_once(':')?;
        Some(match kind {
            "jti" => Revocation::Token {
                jti: rest.into(),
                until,
            },
            "sid" => Revocation::Family {
                sid: rest.into(),
                until,
            },
            "sub" => {
                let (before, subject) = rest.split_once(':')?;
                Revocation::Subject {
                    subject: subject.into(),
                    before: before.parse().ok()?,
                    until,
                }
            }
            _ => return None,
        })
    }
}

fn set_key(tenant: &str) -> String {
    store::key(tenant, "revoked")
}

/// Writes a revocation to the store and publishes it. The write comes
/// first: a subscriber that misses the event finds it on its next resync.
pub async fn record(store: &Store, tenant: &str, revocation: &Revocation) -> StoreResult<()> {
    store
        .set_add(
            &set_key(tenant),
            &revocation.member(),
            revocation.until().saturating_mul(1000),
        )
        .await?;
    store
        .publish(&Event {
            tenant: tenant.to_owned(),
            change: Change::Revoked {
                revocation: revocation.clone(),
            },
        })
        .await
}

/// Every live revocation of a tenant.
pub async fn load(store: &Store, tenant: &str) -> StoreResult<Vec<Revocation>> {
    Ok(store
        .set_members(&set_key(tenant))
        .await?
        .into_iter()
        .filter_map(|(member, exp)| Revocation::from_member(&member, exp))
        .collect())
}

#[derive(Debug, Default, Clone)]
struct TenantView {
    jti: HashMap<String, u64>,
    sid: HashMap<String, u64>,
    /// subject -> (revoked before, until)
    sub: HashMap<String, (u64, u64)>,
    /// Loaded since the feed last (re)connected, and the feed still up.
    current: bool,
    /// When it stopped being current (Unix ms); 0 if it never was.
    stale_since_ms: u64,
}

impl TenantView {
    fn apply(&mut self, r: &Revocation) {
        match r {
            Revocation::Token { jti, until } => {
                self.jti.insert(jti.clone(), *until);
            }
            Revocation::Family { sid, until } => {
                self.sid.insert(sid.clone(), *until);
            }
            Revocation::Subject {
                subject,
                before,
                until,
            } => {
                let entry = self.sub.entry(subject.clone()).or_insert((0, 0));
                entry.0 = entry.0.max(*before);
                entry.1 = entry.1.max(*until);
            }
        }
    }

    fn prune(&mut self, now: u64) {
        self.jti.retain(|_, until| *until >= now);
        self.sid.retain(|_, until| *until >= now);
        self.sub.retain(|_, (_, until)| *until >= now);
    }

    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.sub.len()
    }

    fn covers(&self, jti: &str, sid: &str, subject: &str, iat: u64) -> bool {
        self.jti.contains_key(jti)
            || self.sid.contains_key(sid)
            || self
                .sub
                .get(subject)
                .is_some_and(|(before, _)| iat < *before)
    }
}

/// `None` while current; otherwise for how long not (never: forever).
fn staleness(view: &TenantView) -> Option<u64> {
    match (view.current, view.stale_since_ms) {
        (true, _) => None,
        (false, 0) => Some(u64::MAX),
        (false, since) => Some(now_millis().saturating_sub(since)),
    }
}

/// What is revoked, per tenant, in memory. Reads take a shared lock; writes
/// (revocations, reloads) are rare.
///
/// Each tenant's part is *current* once it has been loaded from the store
/// since the feed last (re)connected, and stays so while the feed is up.
/// Staleness is per tenant: a store shard that is down for one tenant does
/// not make the others' views stale.
#[derive(Debug, Default)]
pub struct RevocationView {
    tenants: RwLock<HashMap<String, TenantView>>,
}

impl RevocationView {
    pub fn new() -> Arc<RevocationView> {
        Arc::new(RevocationView::default())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, TenantView>> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, TenantView>> {
        self.tenants.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a token with these claims is revoked.
    pub fn is_revoked(&self, tenant: &str, jti: &str, sid: &str, subject: &str, iat: u64) -> bool {
        self.read()
            .get(tenant)
            .is_some_and(|view| view.covers(jti, sid, subject, iat))
    }

    /// The gateway's per-request question, under one read lock: how stale
    /// the tenant's view is (`None` when current, as [`Self::stale_for_ms`])
    /// and whether the token is revoked.
    pub fn check(
        &self,
        tenant: &str,
        jti: &str,
        sid: &str,
        subject: &str,
        iat: u64,
    ) -> (Option<u64>, bool) {
        match self.read().get(tenant) {
            Some(view) => (staleness(view), view.covers(jti, sid, subject, iat)),
            None => (Some(u64::MAX), false),
        }
    }

    /// Whether a refresh family is revoked, directly or through its subject
    /// (a family whose login was at `issued_at`).
    pub fn is_family_revoked(
        &self,
        tenant: &str,
        sid: &str,
        subject: &str,
        issued_at: u64,
    ) -> bool {
        let tenants = self.read();
        let Some(view) = tenants.get(tenant) else {
            return false;
        };
        view.sid.contains_key(sid)
            || view
                .sub
                .get(subject)
                .is_some_and(|(before, _)| issued_at < *before)
    }

    /// When `subject` was last revoked "before T": tokens for it must be
    /// issued at T or later to survive (see `issue_time` in the issuer).
    pub fn subject_revoked_before(&self, tenant: &str, subject: &str) -> Option<u64> {
        self.read()
            .get(tenant)?
            .sub
            .get(subject)
            .map(|(before, _)| *before)
    }

    pub fn apply(&self, tenant: &str, revocation: &Revocation) {
        self.write()
            .entry(tenant.to_owned())
            .or_default()
            .apply(revocation);
    }

    /// Adds a tenant's freshly loaded list and marks that tenant current.
    /// A merge, not a replacement: revocations are only ever added, so an
    /// event applied while the load was in flight is kept.
    pub fn merge_loaded(&self, tenant: &str, revocations: &[Revocation]) {
        let mut tenants = self.write();
        let view = tenants.entry(tenant.to_owned()).or_default();
        for r in revocations {
            view.apply(r);
        }
        view.current = true;
    }

    /// Drops what has expired.
    pub fn prune(&self, now_secs: u64) {
        for view in self.write().values_mut() {
            view.prune(now_secs);
        }
    }

    /// Number of live entries of a tenant (metrics, tests).
    pub fn len(&self, tenant: &str) -> usize {
        self.read().get(tenant).map_or(0, TenantView::len)
    }

    /// `None` while the tenant's view is current; otherwise for how long it
    /// has not been (never loaded counts as forever).
    pub fn stale_for_ms(&self, tenant: &str) -> Option<u64> {
        self.read().get(tenant).map_or(Some(u64::MAX), staleness)
    }

    /// The longest staleness over `tenants` (readiness, metrics).
    pub fn stalest_ms<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) -> Option<u64> {
        tenants
            .into_iter()
            .filter_map(|t| self.stale_for_ms(t))
            .max()
    }

    /// Marks a tenant's view current, as a load does (for views fed by
    /// hand, as in tests).
    pub fn mark_synced(&self, tenant: &str) {
        self.write().entry(tenant.to_owned()).or_default().current = true;
    }

    /// The feed lost the store: every current view starts going stale now.
    fn mark_lost(&self) {
        let now = now_millis();
        for view in self.write().values_mut() {
            if view.current {
                view.current = false;
                view.stale_since_ms = now;
            }
        }
    }
}

/// Keeps `view` current for `tenants` until the store's subscription ends:
/// on every (re)connect each tenant is reloaded on its own (a tenant whose
/// store shard is down is retried with backoff while the others are already
/// current), and each published revocation is applied as it arrives. Run it
/// as a task; it returns when the store shuts down.
pub async fn follow(store: Store, tenants: Vec<String>, view: Arc<RevocationView>) {
    let mut subscription = store.subscribe();
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loads = Loads {
        store: store.clone(),
        set: JoinSet::new(),
        generation: 0,
        failures: HashMap::new(),
    };
    loop {
        tokio::select! {
            notice = subscription.next() => match notice {
                None => return,
                Some(Notice::Resync) => loads.restart(&tenants),
                Some(Notice::Event(Event { tenant, change: Change::Revoked { revocation } })) => {
                    view.apply(&tenant, &revocation);
                }
                Some(Notice::Event(_)) => {}
                Some(Notice::Lost) => {
                    tracing::warn!("lost the store's change events; serving from the last revocation view");
                    view.mark_lost();
                    loads.stop();
                }
            },
            Some(done) = loads.set.join_next(), if !loads.set.is_empty() => {
                // An aborted load (a newer connection superseded it) is dropped.
                if let Ok((generation, tenant, result)) = done {
                    loads.finished(&view, generation, tenant, result);
                }
            }
            _ = prune.tick() => view.prune(crate::time::now_secs()),
        }
    }
}

type LoadResult = (u64, String, StoreResult<Vec<Revocation>>);

/// The reloads of one connection (its `generation`), one task per tenant.
struct Loads {
    store: Store,
    set: JoinSet<LoadResult>,
    generation: u64,
    failures: HashMap<String, u32>,
}

impl Loads {
    fn restart(&mut self, tenants: &[String]) {
        self.stop();
        for tenant in tenants {
            self.spawn(tenant.clone(), Duration::ZERO);
        }
    }

    fn stop(&mut self) {
        self.set.abort_all();
        self.generation += 1;
        self.failures.clear();
    }

    fn spawn(&mut self, tenant: String, delay: Duration) {
        let (store, generation) = (self.store.clone(), self.generation);
        self.set.spawn(async move {
            tokio::time::sleep(delay).await;
            let result = load(&store, &tenant).await;
            (generation, tenant, result)
        });
    }

    fn finished(
        &mut self,
        view: &RevocationView,
        generation: u64,
        tenant: String,
        result: StoreResult<Vec<Revocation>>,
    ) {
        if generation != self.generation {
            return;
        }
        match result {
            Ok(list) => {
                view.merge_loaded(&tenant, &list);
                self.failures.remove(&tenant);
                tracing::debug!(tenant = %tenant, revocations = list.len(), "revocations reloaded");
            }
            Err(e) => {
                let failures = self.failures.entry(tenant.clone()).or_default();
                *failures += 1;
                let delay =
                    Duration::from_millis(50u64 << (*failures).min(6)).min(Duration::from_secs(2));
                tracing::warn!(cause = %e, tenant = %tenant, retry_in = ?delay, "could not reload revocations");
                self.spawn(tenant, delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip() {
        for r in [
            Revocation::Token {
                jti: "j1".into(),
                until: 100,
            },
            Revocation::Family {
                sid: "s:1".into(),
                until: 200,
            },
            Revocation::Subject {
                subject: "a:b@c".into(),
                before: 50,
                until: 300,
            },
        ] {
            assert_eq!(
                Revocation::from_member(&r.member(), r.until() * 1000),
                Some(r)
            );
        }
    }

    #[test]
    fn view_answers_by_jti_sid_and_subject_time() {
        let view = RevocationView::default();
        view.apply(
            "t",
            &Revocation::Token {
                jti: "j".into(),
                until: u64::MAX,
            },
        );
        view.apply(
            "t",
            &Revocation::Family {
                sid: "s".into(),
                until: u64::MAX,
            },
        );
        view.apply(
            "t",
            &Revocation::Subject {
                subject: "alice".into(),
                before: 100,
                until: u64::MAX,
            },
        );
        assert!(view.is_revoked("t", "j", "x", "bob", 0));
        assert!(view.is_revoked("t", "x", "s", "bob", 0));
        assert!(view.is_revoked("t", "x", "x", "alice", 99));
        assert!(!view.is_revoked("t", "x", "x", "alice", 100));
        assert!(!view.is_revoked("other", "j", "s", "alice", 0));
        view.prune(u64::MAX - 1);
        assert_eq!(view.len("t"), 3);
    }

    #[tokio::test]
    async fn follow_loads_then_applies_events() {
        let store = Store::memory();
        record(
            &store,
            "t",
            &Revocation::Token {
                jti: "old".into(),
                until: u64::MAX / 2000,
            },
        )
        .await
        .unwrap();
        let view = RevocationView::new();
        tokio::spawn(follow(store.clone(), vec!["t".into()], view.clone()));
        wait_until(|| view.is_revoked("t", "old", "", "", 0)).await;
        assert_eq!(view.stale_for_ms("t"), None);
        assert_eq!(view.stale_for_ms("never-loaded"), Some(u64::MAX));
        record(
            &store,
            "t",
            &Revocation::Family {
                sid: "new".into(),
                until: u64::MAX / 2000,
            },
        )
        .await
        .unwrap();
        wait_until(|| view.is_revoked("t", "", "new", "", 0)).await;
    }

    async fn wait_until(mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met in time"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
