//! The two sides of a tenant and the kinds of token subject.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which of a tenant's two APIs a client, a user or a token belongs to.
///
/// Fixed at creation for clients and users; carried by every token through
/// its `iss` and `aud` (DESIGN §2). The two sides never share a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Staff and integrations: `B/P/api/...`.
    Backoffice,
    /// Customers, guests and storefront apps: `B/api/...`.
    Storefront,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Backoffice, Side::Storefront];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Backoffice => "backoffice",
            Side::Storefront => "storefront",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = UnknownSide;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "backoffice" => Ok(Side::Backoffice),
            "storefront" => Ok(Side::Storefront),
            _ => Err(UnknownSide),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("side must be `backoffice` or `storefront`")]
pub struct UnknownSide;

/// What a token's subject is (the `kind` claim, DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A back-office user; `sub` is the username.
    User,
    /// A storefront customer; `sub` is the email.
    Customer,
    /// A storefront guest; `sub` is `visitor:<id>`.
    Visitor,
    /// A client acting for itself (client credentials); `sub` is the client id.
    Client,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Customer => "customer",
            Kind::Visitor => "visitor",
            Kind::Client => "client",
        }
    }

    /// The kind of person a side's login checks: users for the back office,
    /// customers for the storefront.
    pub fn person(side: Side) -> Kind {
        match side {
            Side::Backoffice => Kind::User,
            Side::Storefront => Kind::Customer,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
