//! Redis errors in the store's three kinds, decided in one place so that
//! every call (plain command, script, pub/sub) fails the same way:
//!
//! - [`StoreError::Unavailable`] for what passes: refused, reset or timed
//!   out connections, `LOADING`, `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, a
//!   failover's `READONLY`;
//! - [`StoreError::Full`] for `OOM` (maxmemory reached) and `MISCONF` (the
//!   disk refuses snapshots): writes are refused while reads go on;
//! - [`StoreError::Failed`] for what retrying will not fix: credentials,
//!   script and type errors, a cluster answered as if it were one server.
//!
//! Also [`redact`], so that a URL with a password can appear in a message.

use std::fmt;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::StoreError;

/// What the store talks to, as messages name it (without credentials).
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The redacted URL, or the cluster's redacted seed URLs.
    pub(super) name: String,
    pub(super) cluster: bool,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cluster {
            write!(f, "the cluster [{}]", self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

/// The store error for a failed Redis call to `target`.
pub(super) fn classify(e: &RedisError, target: &Target) -> StoreError {
    let text = e.to_string();
    if e.code() == Some("OOM") || text.contains("OOM command not allowed") {
        return StoreError::Full(format!(
            "Redis at {target} reached its maxmemory and refuses writes (reads go on)"
        ));
    }
    if e.code() == Some("MISCONF") || text.contains("MISCONF") {
        return StoreError::Full(format!(
            "Redis at {target} refuses writes: it cannot save its snapshot to disk (MISCONF)"
        ));
    }
    if is_auth_error(e) {
        return StoreError::Failed(format!(
            "Redis at {target} refused the credentials: check the user and password in the URL ({})",
            e.category()
        ));
    }
    if e.is_timeout() {
        return StoreError::Unavailable(format!("Redis at {target} did not answer in time"));
    }
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => {
            StoreError::Unavailable(format!("Redis at {target} is unreachable: {text}"))
        }
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        ) => StoreError::Unavailable(format!("Redis at {target} is not ready: {text}")),
        // The cluster client follows redirections itself; one that comes
        // back means the node now serving the slot cannot be reached.
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) if target.cluster => {
            StoreError::Unavailable(format!(
                "the Redis node serving this key in {target} is unreachable: {text}"
            ))
        }
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
            StoreError::Failed(format!(
                "Redis at {target} is a cluster node (it answered {}): set store.cluster instead of store.url",
                e.code().unwrap_or("MOVED")
            ))
        }
        _ if e.is_connection_dropped() => {
            StoreError::Unavailable(format!("Redis at {target} is unreachable: {text}"))
        }
        _ => StoreError::Failed(format!("Redis at {target}: {text}")),
    }
}

fn is_auth_error(e: &RedisError) -> bool {
    if e.kind() == ErrorKind::AuthenticationFailed {
        return true;
    }
    if matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM")) {
        return true;
    }
    // Before Redis 6 a wrong password is a plain `ERR invalid password`.
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.contains("invalid password"))
}

/// A Redis URL without its credentials: `redis://***@host:port/db`.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_user_and_password() {
        assert_eq!(
            redact("redis://user:s3cret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("rediss://:pw@host"), "rediss://***@host");
        assert_eq!(redact("redis://a:b@c@host:1"), "redis://***@host:1");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    fn single() -> Target {
        Target {
            name: "redis://h".into(),
            cluster: false,
        }
    }

    #[test]
    fn io_errors_are_unavailable() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            classify(&refused, &single()),
            StoreError::Unavailable(m) if m.contains("redis://h")
        ));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(
            classify(&timeout, &single()),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn auth_and_client_errors_are_failures() {
        let auth = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(matches!(
            classify(&auth, &single()),
            StoreError::Failed(m) if m.contains("credentials")
        ));
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "bad"));
        assert!(matches!(classify(&parse, &single()), StoreError::Failed(_)));
    }
}
