//! The Lua scripts behind the atomic steps (compare-and-swap, take,
//! counters with a TTL on creation, expiring-set insertion), and how they
//! are run.
//!
//! Each script touches one key, so in a cluster it runs on the node that
//! owns the key's slot. Scripts are sent as `EVALSHA`; a server that does
//! not know the script yet (fresh, restarted, a failed-over replica)
//! answers `NOSCRIPT` and gets the source once with `EVAL`, which also
//! caches it there. `SCRIPT LOAD` is not used: a cluster client sends it to
//! every node, so it would fail while any node is down, even for keys whose
//! node is up.
//!
//! The scripts have no `#!lua` line, so they run on Redis 6 as well as 7.
//! Under `maxmemory` Redis refuses their first write with `OOM` (reported
//! as [`StoreError::Full`](crate::store::StoreError::Full)), while a `take`
//! (a read and a delete, which Redis allows when full) still works.

use redis::{ErrorKind, FromRedisValue, RedisResult, ServerErrorKind};

use super::conn::Conn;

/// `KEYS[1]` the value; `ARGV`: expected, new value, TTL in ms (`""`: none).
/// An absent key never matches (`GET` gives `false`).
const REPLACE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
";

/// `KEYS[1]` the value: returns it (or nil) and deletes it. (`GETDEL` does
/// the same from Redis 6.2 on.)
const TAKE: &str = r"
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('DEL', KEYS[1])
end
return value
";

/// `KEYS[1]` the counter; `ARGV`: increment, TTL in ms for a new counter
/// (`""`: none). `INCRBY` refuses a value that is not an integer, and an
/// overflow.
const INCR: &str = r"
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
";

/// `KEYS[1]` the sorted set (score: expiry in Unix ms); `ARGV`: member,
/// its expiry, now (the caller's clock, the one expiries are written in),
/// grace in ms. Drops the expired members, then keeps the key itself alive
/// until its last member expires (plus the grace, for clock skew between
/// the caller and Redis), so an abandoned set goes away by itself.
const SET_ADD: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  local until_ms = tonumber(last[2]) + tonumber(ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', until_ms))
end
return 0
";

pub(super) struct Lua {
    source: &'static str,
    sha1: String,
}

impl Lua {
    fn new(source: &'static str) -> Lua {
        Lua {
            source,
            sha1: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// Runs the script on `key` with `args`.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        conn: &Conn,
        key: &str,
        args: &[&[u8]],
    ) -> RedisResult<T> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(&self.sha1).arg(1).arg(key);
        for arg in args {
            evalsha.arg(*arg);
        }
        match conn.query(&evalsha).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(self.source).arg(1).arg(key);
                for arg in args {
                    eval.arg(*arg);
                }
                conn.query(&eval).await
            }
            other => other,
        }
    }
}

pub(super) struct Scripts {
    pub(super) replace: Lua,
    pub(super) take: Lua,
    pub(super) incr: Lua,
    pub(super) set_add: Lua,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            replace: Lua::new(REPLACE),
            take: Lua::new(TAKE),
            incr: Lua::new(INCR),
            set_add: Lua::new(SET_ADD),
        }
    }
}
