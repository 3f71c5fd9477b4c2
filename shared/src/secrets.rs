//! Secrets: random tokens, their hashes, constant-time comparison, and the
//! generated secret files (admin token, key-encryption key) kept in the data
//! directory with mode 0600.
//!
//! Client secrets, refresh tokens and authorization codes are 256-bit random
//! strings. They cannot be guessed, so they are stored as a plain SHA-256
//! hash: a slow password hash would add nothing but cap the token endpoint at
//! a few hundred requests per second. Passwords, which people choose, get
//! argon2id in the issuer instead.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::{constant_time, digest, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Fills `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system RNG does not fail on any platform we run on; if it ever did,
    // continuing with predictable secrets would be worse than stopping.
    #[allow(clippy::expect_used)]
    rand::fill(&mut out).expect("the system random number generator failed");
    out
}

/// A fresh 256-bit secret, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A fresh 128-bit identifier, base64url without padding (22 characters):
/// for ids that must not collide but are not secrets (`jti`, `sid`, client
/// ids). Never starts with `-` or `_`, so that an id can follow a flag on a
/// command line (`--client-id <id>`) without being taken for one.
pub fn random_id() -> String {
    loop {
        let id = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        if id.as_bytes()[0].is_ascii_alphanumeric() {
            return id;
        }
    }
}

/// SHA-256 of a high-entropy secret, base64url: how such secrets are stored
/// and looked up. Never use it for passwords.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

/// Compares two secrets (or their hashes) in time that does not depend on
/// where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Reads a generated secret from `path`, creating it with `make` (mode 0600,
/// created exclusively so that two processes starting at once agree on one
/// value) when it does not exist yet.
pub fn load_or_create_secret_file(
    path: &Path,
    make: impl FnOnce() -> String,
) -> std::io::Result<Secret> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let value = make();
            file.write_all(value.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            Ok(Secret(value))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret_file(path),
        Err(e) => Err(e),
    }
}

/// Reads a secret file written by [`load_or_create_secret_file`]. A file that
/// is being written by another process at this instant reads as empty; that
/// is retried briefly rather than returned.
pub fn read_secret_file(path: &Path) -> std::io::Result<Secret> {
    for _ in 0..50 {
        let text = std::fs::read_to_string(path)?;
        let value = text.trim();
        if !value.is_empty() {
            return Ok(Secret(value.to_owned()));
        }
        std::thread::yield_now();
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is empty", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(random_id().len(), 22);
        for _ in 0..1000 {
            assert!(random_id().as_bytes()[0].is_ascii_alphanumeric());
        }
    }

    #[test]
    fn hashes_are_stable_and_compare() {
        assert_eq!(hash_secret("x"), hash_secret("x"));
        assert!(ct_eq(
            hash_secret("x").as_bytes(),
            hash_secret("x").as_bytes()
        ));
        assert!(!ct_eq(
            hash_secret("x").as_bytes(),
            hash_secret("y").as_bytes()
        ));
        assert!(!ct_eq(b"ab", b"abc"));
    }

    #[test]
    fn secret_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin-token");
        let first = load_or_create_secret_file(&path, || "one".into()).unwrap();
        let second = load_or_create_secret_file(&path, || "two".into()).unwrap();
        assert_eq!(first.expose(), "one");
        assert_eq!(second.expose(), "one");
        assert_eq!(format!("{first:?}"), "Secret(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
