//! Guest visitors: anonymous storefront identities, one per `guest`/`guest`
//! login (or `authorize-visitor`), kept for `visitor_ttl` and refreshed
//! while their family is.

use serde::{Deserialize, Serialize};
use splitgate_shared::Tenant;
use splitgate_shared::secrets::random_id;
use splitgate_shared::store::{self, Store, StoreResult, encode};
use splitgate_shared::time::now_secs;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Visitor {
    id: String,
    created_at: u64,
}

fn visitor_key(tenant: &str, id: &str) -> String {
    store::key(tenant, &format!("visitor:{id}"))
}

/// The token subject of a visitor.
pub fn subject(id: &str) -> String {
    format!("visitor:{id}")
}

/// Creates a visitor and returns its subject (`visitor:<id>`).
pub async fn create(store: &Store, tenant: &Tenant) -> StoreResult<String> {
    let id = random_id();
    let record = Visitor {
        id: id.clone(),
        created_at: now_secs(),
    };
    store
        .put(
            &visitor_key(&tenant.id, &id),
            &encode(&record),
            Some(tenant.visitor_ttl),
        )
        .await?;
    Ok(subject(&id))
}

/// Whether the visitor behind `subject` still exists; extends its life
/// when it does, so that an active guest is not forgotten.
pub async fn touch(store: &Store, tenant: &Tenant, subject: &str) -> StoreResult<bool> {
    let Some(id) = subject.strip_prefix("visitor:") else {
        return Ok(false);
    };
    let key = visitor_key(&tenant.id, id);
    match store.get(&key).await? {
        Some(raw) => {
            store.put(&key, &raw, Some(tenant.visitor_ttl)).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}
