//! Signing keys, their public JWKs, and the published key sets that
//! gateways verify against.
//!
//! Tokens are signed here with a parsed key pair held for the key's life
//! (jsonwebtoken would re-parse the private key on every signature, which
//! for RSA costs as much as the signature itself); they are verified with
//! jsonwebtoken in the gateway. The algorithm belongs to the key: a verifier
//! is built for exactly one algorithm and nothing in a token can change it.

pub mod kek;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

/// The signature algorithms a tenant may choose (`signing_alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(KeyError::UnsupportedAlgorithm)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("the private key is malformed or not of its algorithm")]
    Malformed,
    #[error("unsupported algorithm; expected RS256, ES256 or EdDSA")]
    UnsupportedAlgorithm,
    #[error("signing failed")]
    Sign,
    #[error("claims could not be serialised")]
    Claims,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key ready to sign: parsed once, with its JWS header encoded once.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    /// `base64url({"typ":"at+jwt","alg":..,"kid":..})` followed by `.`.
    header: String,
    pair: Pair,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key pair: RSA 2048, P-256 or Ed25519.
    pub fn generate(alg: SigningAlg) -> Result<SigningKey, KeyError> {
        let pkcs8 = match alg {
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError::Generate)?;
                pair.as_der()
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate)?;
                pair.to_pkcs8v1()
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
                pair.to_pkcs8v1()
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
        };
        SigningKey::from_pkcs8(alg, &pkcs8)
    }

    /// Parses a PKCS#8 private key of `alg`; the `kid` is its RFC 7638
    /// thumbprint, so the same key always has the same id.
    pub fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = match alg {
            SigningAlg::Rs256 => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Malformed)?)
            }
            SigningAlg::Es256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| KeyError::Malformed)?,
            ),
            SigningAlg::EdDsa => {
                Pair::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Malformed)?)
            }
        };
        let params = public_params(&pair);
        let kid = thumbprint(&params);
        let header_json = serde_json::json!({"typ": "at+jwt", "alg": alg.as_str(), "kid": kid});
        let header = format!("{}.", URL_SAFE_NO_PAD.encode(header_json.to_string()));
        Ok(SigningKey {
            kid,
            alg,
            header,
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The private key, PKCS#8 DER: only for sealing into the store.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs `claims` as a compact JWS with this key's fixed header.
    pub fn sign_jwt<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Claims)?;
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&self.header);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.sign_raw(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// The raw signature over `message`: what `sign_jwt` costs beyond JSON
    /// and base64 (the ceiling the token endpoint benchmark compares with).
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Pair::Ec(pair) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// The public half as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(match self.alg {
                    SigningAlg::Rs256 => KeyAlgorithm::RS256,
                    SigningAlg::Es256 => KeyAlgorithm::ES256,
                    SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
                }),
                key_id: Some(self.kid.clone()),
                ..Default::default()
            },
            algorithm: public_params(&self.pair),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn public_params(pair: &Pair) -> AlgorithmParameters {
    match pair {
        Pair::Rsa(pair) => {
            let components =
                aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64(&components.n),
                e: b64(&components.e),
            })
        }
        Pair::Ec(pair) => {
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: b64(&point[1..33]),
                y: b64(&point[33..65]),
            })
        }
        Pair::Ed(pair) => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: b64(pair.public_key().as_ref()),
        }),
    }
}

/// RFC 7638 JWK thumbprint (SHA-256) of the public parameters.
fn thumbprint(params: &AlgorithmParameters) -> String {
    // Members in lexicographic order, no whitespace, per RFC 7638 §3.
    let canonical = match params {
        AlgorithmParameters::RSA(p) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, p.e, p.n),
        AlgorithmParameters::EllipticCurve(p) => {
            format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                p.x, p.y
            )
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, p.x)
        }
        _ => String::new(),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A public key that verifies exactly one algorithm.
pub struct VerifyKey {
    pub kid: String,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyKey {
    /// Accepts only signature keys of our three algorithms whose key type
    /// matches the declared `alg`; symmetric (`oct`) keys, keys without
    /// `kid` or `alg`, and mismatches are refused, so a JWKS cannot smuggle
    /// in an HMAC key made of a public key.
    pub fn from_jwk(jwk: &Jwk) -> Option<VerifyKey> {
        let kid = jwk.common.key_id.clone()?;
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return None;
        }
        let alg = match (jwk.common.key_algorithm?, &jwk.algorithm) {
            (KeyAlgorithm::RS256, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (KeyAlgorithm::ES256, AlgorithmParameters::EllipticCurve(p))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            (KeyAlgorithm::EdDSA, AlgorithmParameters::OctetKeyPair(p))
                if p.curve == EllipticCurve::Ed25519 =>
            {
                Algorithm::EdDSA
            }
            _ => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(VerifyKey { kid, alg, key })
    }
}

/// One tenant's published keys: what `/.well-known/jwks.json` serves and
/// what the gateway verifies against.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// The JWKS document, serialised once.
    json: Bytes,
}

impl KeySet {
    pub fn from_jwks(jwks: &JwkSet) -> KeySet {
        let by_kid = jwks
            .keys
            .iter()
            .filter_map(VerifyKey::from_jwk)
            .map(|k| (k.kid.clone(), Arc::new(k)))
            .collect();
        let json = serde_json::to_vec(jwks)
            .map(Bytes::from)
            .unwrap_or_default();
        KeySet { by_kid, json }
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.by_kid.get(kid)
    }

    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }

    /// `{"keys":[...]}`.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }
}

/// The published key sets of every tenant, swapped whole when one changes.
/// In `serve` mode the issuer writes it and the gateway reads it in-process;
/// a separate gateway fills it from each tenant's JWKS over HTTP.
#[derive(Debug, Default)]
pub struct PublishedKeys {
    sets: ArcSwap<HashMap<String, Arc<KeySet>>>,
}

impl PublishedKeys {
    pub fn new() -> Arc<PublishedKeys> {
        Arc::new(PublishedKeys::default())
    }

    /// The tenant's current set; an empty one if none was published yet.
    pub fn get(&self, tenant: &str) -> Option<Arc<KeySet>> {
        self.sets.load().get(tenant).cloned()
    }

    pub fn set(&self, tenant: &str, keys: KeySet) {
        let keys = Arc::new(keys);
        self.sets.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(tenant.to_owned(), keys.clone());
            next
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    #[test]
    fn every_algorithm_signs_what_jsonwebtoken_verifies() {
        for alg in SigningAlg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let claims = Claims {
                sub: "alice".into(),
                exp: crate::time::now_secs() + 60,
            };
            let token = key.sign_jwt(&claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.jwt());
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));

            let jwks = JwkSet {
                keys: vec![key.public_jwk()],
            };
            let set = KeySet::from_jwks(
                &serde_json::from_slice(&serde_json::to_vec(&jwks).unwrap()).unwrap(),
            );
            let verify = set.get(key.kid()).unwrap();
            assert_eq!(verify.alg, alg.jwt());
            let mut validation = jsonwebtoken::Validation::new(verify.alg);
            validation.validate_aud = false;
            let data = jsonwebtoken::decode::<Claims>(&token, &verify.key, &validation).unwrap();
            assert_eq!(data.claims, claims);

            let reparsed = SigningKey::from_pkcs8(alg, key.pkcs8()).unwrap();
            assert_eq!(reparsed.kid(), key.kid(), "kid is the thumbprint");
        }
    }

    #[test]
    fn jwks_refuses_symmetric_and_mismatched_keys() {
        let rsa = SigningKey::generate(SigningAlg::Rs256).unwrap();
        let mut lying = rsa.public_jwk();
        lying.common.key_algorithm = Some(KeyAlgorithm::HS256);
        let mut no_kid = rsa.public_jwk();
        no_kid.common.key_id = None;
        let oct: Jwk =
            serde_json::from_str(r#"{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}"#)
                .unwrap();
        let set = KeySet::from_jwks(&JwkSet {
            keys: vec![lying, no_kid, oct],
        });
        assert!(set.is_empty());
    }
}
