//! The key-encryption key: AES-256-GCM over each tenant's private signing
//! keys before they reach the store (DESIGN §6). The tenant and `kid` are
//! bound in as associated data, so a sealed key copied to another tenant or
//! relabelled does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::secrets::random_bytes;

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("the key-encryption key must be 32 bytes, base64")]
    BadKey,
    #[error(
        "a sealed signing key does not open with this key-encryption key (was store.encryption_key changed?)"
    )]
    Open,
}

pub struct Kek(LessSafeKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// Accepts standard or url-safe base64, with or without padding.
    pub fn from_base64(text: &str) -> Result<Kek, KekError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| KekError::BadKey)?;
        if bytes.len() != 32 {
            return Err(KekError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KekError::BadKey)?;
        Ok(Kek(LessSafeKey::new(key)))
    }

    /// A fresh key, base64, for the generated key file.
    pub fn generate_base64() -> String {
        STANDARD.encode(random_bytes::<32>())
    }

    /// `base64url(nonce || ciphertext || tag)`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        // Sealing only fails for inputs over ~64 GiB.
        #[allow(clippy::expect_used)]
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seal");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, KekError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| KekError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(KekError::Open);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| KekError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_binds_associated_data() {
        let kek = Kek::from_base64(&Kek::generate_base64()).unwrap();
        let sealed = kek.seal(b"private key", "acme/kid1");
        assert_eq!(kek.open(&sealed, "acme/kid1").unwrap(), b"private key");
        assert!(kek.open(&sealed, "other/kid1").is_err());
        let other = Kek::from_base64(&Kek::generate_base64()).unwrap();
        assert!(other.open(&sealed, "acme/kid1").is_err());
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
    }
}
