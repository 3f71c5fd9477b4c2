//! Everything the splitgate issuer and gateway agree on: the config model,
//! tenants and sides, token claims, keys and JWKS, the [`Store`] and its
//! backends, the revocation view, error documents, the HTTP server loop and
//! telemetry set-up.
//!
//! Nothing here routes HTTP requests; that is the issuer's and the gateway's
//! job. See `docs/architecture.md` for how the pieces fit.

pub mod claims;
pub mod config;
pub mod duration;
pub mod errors;
pub mod http;
pub mod keys;
pub mod revocation;
pub mod secrets;
pub mod side;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod time;

pub use claims::AccessClaims;
pub use config::Config;
pub use side::{Kind, Side};
pub use store::{Store, StoreError};
pub use tenant::{Tenant, Tenants};
