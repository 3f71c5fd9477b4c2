//! The file's tables, the one rule for expiry, and every step on them: the
//! reads that callers run in their own read transaction, and the writes
//! ([`Op`]) that the writer thread applies in its batch transaction.
//!
//! Values and set members that can expire are also listed in an expiry
//! index keyed by `(expires_at_ms, ...)`, kept exact on every write, so that
//! [`Tables::purge`] finds what has expired by reading the front of the
//! index instead of scanning everything.

use std::time::Duration;

use redb::{ReadableTable, StorageError, Table, TableDefinition, TableError, WriteTransaction};

use super::super::memory::parse_counter;
use super::super::{StoreError, StoreResult};

/// key -> (expires_at_ms, or 0 for never; value)
pub(super) const VALUES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("values");
/// (expires_at_ms, key): one row per value that has an expiry.
pub(super) const VALUE_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("value_expiry");
/// (key, field) -> value
pub(super) const MAPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("maps");
/// (key, member) -> expires_at_ms
pub(super) const SETS: TableDefinition<(&str, &str), u64> = TableDefinition::new("sets");
/// (expires_at_ms, key, member): one row per set member.
pub(super) const SET_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("set_expiry");

/// Whether a value stored with `expires_at` (0: never) is still there at
/// `now`. Set members always have an expiry, so the same rule applies.
fn is_live(expires_at: u64, now: u64) -> bool {
    expires_at == 0 || expires_at > now
}

/// The expiry of a value written at `now` with `ttl` (0: never), as the
/// memory backend computes it.
fn expiry(ttl: Option<Duration>, now: u64) -> u64 {
    ttl.map_or(0, |t| {
        let millis = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        now.saturating_add(millis.max(1))
    })
}

/// A value and its expiry, unless absent or expired.
pub(super) fn live_value(
    values: &impl ReadableTable<&'static str, (u64, &'static [u8])>,
    key: &str,
    now: u64,
) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
    Ok(values.get(key)?.and_then(|guard| {
        let (expires_at, value) = guard.value();
        is_live(expires_at, now).then(|| (expires_at, value.to_vec()))
    }))
}

/// Every field of the map at `key`, sorted by field (the table's order).
pub(super) fn map_entries(
    maps: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &str,
) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
    let mut entries = Vec::new();
    for entry in maps.range::<(&str, &str)>((key, "")..)? {
        let (k, v) = entry?;
        let (owner, field) = k.value();
        if owner != key {
            break;
        }
        entries.push((field.to_owned(), v.value().to_vec()));
    }
    Ok(entries)
}

/// The live members of the set at `key` with their expiry, sorted by member.
pub(super) fn set_members(
    sets: &impl ReadableTable<(&'static str, &'static str), u64>,
    key: &str,
    now: u64,
) -> Result<Vec<(String, u64)>, StorageError> {
    let mut members = Vec::new();
    for entry in sets.range::<(&str, &str)>((key, "")..)? {
        let (k, v) = entry?;
        let (owner, member) = k.value();
        if owner != key {
            break;
        }
        let expires_at = v.value();
        if is_live(expires_at, now) {
            members.push((member.to_owned(), expires_at));
        }
    }
    Ok(members)
}

/// One write, as queued for the writer thread. (No `Debug`: values may be
/// secret and must not reach a log by accident.)
pub(super) enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Insert {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Replace {
        key: String,
        expected: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Take {
        key: String,
    },
    Delete {
        key: String,
    },
    Incr {
        key: String,
        by: i64,
        ttl: Option<Duration>,
    },
    MapPut {
        key: String,
        field: String,
        value: Vec<u8>,
    },
    MapInsert {
        key: String,
        field: String,
        value: Vec<u8>,
    },
    MapDelete {
        key: String,
        field: String,
    },
    SetAdd {
        key: String,
        member: String,
        expires_at: u64,
    },
    /// Writes nothing: proves that the writer answers and a write
    /// transaction can begin (`/readyz`).
    Ping,
}

/// What an [`Op`] answers; which variant follows from the op.
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
pub(super) enum Answer {
    Done,
    Flag(bool),
    Value(Option<Vec<u8>>),
    Count(i64),
}

/// What a step returns: the outer error is the storage failing, which dooms
/// the whole transaction; the inner one is this step's own refusal (not a
/// counter), which leaves the transaction and the other steps alone.
type Step = Result<StoreResult<Answer>, StorageError>;

/// Every table, open in one write transaction.
pub(super) struct Tables<'t> {
    values: Table<'t, &'static str, (u64, &'static [u8])>,
    value_expiry: Table<'t, (u64, &'static str), ()>,
    maps: Table<'t, (&'static str, &'static str), &'static [u8]>,
    sets: Table<'t, (&'static str, &'static str), u64>,
    set_expiry: Table<'t, (u64, &'static str, &'static str), ()>,
    /// Whether anything was written. If not, the writer aborts instead of
    /// committing, which saves an fsync.
    pub(super) changed: bool,
}

impl<'t> Tables<'t> {
    /// Opens (creating on first use) every table.
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, TableError> {
        Ok(Tables {
            values: txn.open_table(VALUES)?,
            value_expiry: txn.open_table(VALUE_EXPIRY)?,
            maps: txn.open_table(MAPS)?,
            sets: txn.open_table(SETS)?,
            set_expiry: txn.open_table(SET_EXPIRY)?,
            changed: false,
        })
    }

    /// Applies one write with the semantics of the memory backend.
    pub(super) fn apply(&mut self, op: &Op, now: u64) -> Step {
        let answer = match op {
            Op::Put { key, value, ttl } => {
                self.set_value(key, value, expiry(*ttl, now))?;
                Answer::Done
            }
            Op::Insert { key, value, ttl } => {
                let absent = live_value(&self.values, key, now)?.is_none();
                if absent {
                    self.set_value(key, value, expiry(*ttl, now))?;
                }
                Answer::Flag(absent)
            }
            Op::Replace {
                key,
                expected,
                value,
                ttl,
            } => {
                let matches = live_value(&self.values, key, now)?
                    .is_some_and(|(_, current)| current == *expected);
                if matches {
                    self.set_value(key, value, expiry(*ttl, now))?;
                }
                Answer::Flag(matches)
            }
            Op::Take { key } => match live_value(&self.values, key, now)? {
                Some((_, value)) => {
                    self.remove_value(key)?;
                    Answer::Value(Some(value))
                }
                None => Answer::Value(None),
            },
            Op::Delete { key } => {
                let live = live_value(&self.values, key, now)?.is_some();
                if live {
                    self.remove_value(key)?;
                }
                Answer::Flag(live)
            }
            Op::Incr { key, by, ttl } => return self.incr(key, *by, *ttl, now),
            Op::MapPut { key, field, value } => {
                self.maps
                    .insert((key.as_str(), field.as_str()), value.as_slice())?;
                self.changed = true;
                Answer::Done
            }
            Op::MapInsert { key, field, value } => {
                let k = (key.as_str(), field.as_str());
                let absent = self.maps.get(k)?.is_none();
                if absent {
                    self.maps.insert(k, value.as_slice())?;
                    self.changed = true;
                }
                Answer::Flag(absent)
            }
            Op::MapDelete { key, field } => {
                let removed = self.maps.remove((key.as_str(), field.as_str()))?.is_some();
                self.changed |= removed;
                Answer::Flag(removed)
            }
            Op::SetAdd {
                key,
                member,
                expires_at,
            } => {
                self.set_add(key, member, *expires_at)?;
                Answer::Done
            }
            Op::Ping => Answer::Done,
        };
        Ok(Ok(answer))
    }

    fn incr(&mut self, key: &str, by: i64, ttl: Option<Duration>, now: u64) -> Step {
        let (next, expires_at) = match live_value(&self.values, key, now)? {
            Some((expires_at, value)) => {
                let current = match parse_counter(&value) {
                    Ok(current) => current,
                    Err(refused) => return Ok(Err(refused)),
                };
                let Some(next) = current.checked_add(by) else {
                    return Ok(Err(StoreError::Failed("counter overflow".into())));
                };
                // The TTL is the one set when the counter was created.
                (next, expires_at)
            }
            None => (by, expiry(ttl, now)),
        };
        self.set_value(key, next.to_string().as_bytes(), expires_at)?;
        Ok(Ok(Answer::Count(next)))
    }

    /// Writes a value and keeps the expiry index in step.
    fn set_value(&mut self, key: &str, value: &[u8], expires_at: u64) -> Result<(), StorageError> {
        let old = self
            .values
            .insert(key, (expires_at, value))?
            .map(|guard| guard.value().0);
        if let Some(old) = old.filter(|old| *old != 0 && *old != expires_at) {
            self.value_expiry.remove((old, key))?;
        }
        if expires_at != 0 {
            self.value_expiry.insert((expires_at, key), ())?;
        }
        self.changed = true;
        Ok(())
    }

    /// Removes a value and its expiry index row.
    fn remove_value(&mut self, key: &str) -> Result<(), StorageError> {
        let old = self.values.remove(key)?.map(|guard| guard.value().0);
        if let Some(old) = old {
            if old != 0 {
                self.value_expiry.remove((old, key))?;
            }
            self.changed = true;
        }
        Ok(())
    }

    fn set_add(&mut self, key: &str, member: &str, expires_at: u64) -> Result<(), StorageError> {
        let old = self
            .sets
            .insert((key, member), expires_at)?
            .map(|guard| guard.value());
        if let Some(old) = old.filter(|old| *old != expires_at) {
            self.set_expiry.remove((old, key, member))?;
        }
        self.set_expiry.insert((expires_at, key, member), ())?;
        self.changed = true;
        Ok(())
    }

    /// Deletes up to `limit` expired values and up to `limit` expired set
    /// members, oldest first. `true` if more may be left.
    pub(super) fn purge(&mut self, now: u64, limit: usize) -> Result<bool, StorageError> {
        // Every index row with expires_at <= now sorts before this bound.
        let bound = now.saturating_add(1);
        let more_values = self.purge_values(bound, limit)?;
        let more_members = self.purge_members(bound, limit)?;
        Ok(more_values || more_members)
    }

    fn purge_values(&mut self, bound: u64, limit: usize) -> Result<bool, StorageError> {
        let mut due = Vec::new();
        for entry in self
            .value_expiry
            .range::<(u64, &str)>(..(bound, ""))?
            .take(limit)
        {
            let (k, _) = entry?;
            let (expires_at, key) = k.value();
            due.push((expires_at, key.to_owned()));
        }
        for (expires_at, key) in &due {
            // The index is kept exact; the check only guards against
            // deleting a value that a later write gave another expiry.
            let current = self.values.get(key.as_str())?.map(|g| g.value().0);
            if current == Some(*expires_at) {
                self.values.remove(key.as_str())?;
            }
            self.value_expiry.remove((*expires_at, key.as_str()))?;
        }
        self.changed |= !due.is_empty();
        Ok(due.len() == limit)
    }

    fn purge_members(&mut self, bound: u64, limit: usize) -> Result<bool, StorageError> {
        let mut due = Vec::new();
        for entry in self
            .set_expiry
            .range::<(u64, &str, &str)>(..(bound, "", ""))?
            .take(limit)
        {
            let (k, _) = entry?;
            let (expires_at, key, member) = k.value();
            due.push((expires_at, key.to_owned(), member.to_owned()));
        }
        for (expires_at, key, member) in &due {
            let k = (key.as_str(), member.as_str());
            if self.sets.get(k)?.map(|g| g.value()) == Some(*expires_at) {
                self.sets.remove(k)?;
            }
            self.set_expiry
                .remove((*expires_at, key.as_str(), member.as_str()))?;
        }
        self.changed |= !due.is_empty();
        Ok(due.len() == limit)
    }
}
