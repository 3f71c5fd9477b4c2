//! A few counters, served in the Prometheus text format on the admin
//! listener's `/metrics`. Lock-free: one atomic per series.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clients::Grant;
use crate::error::Code;

const ERRORS: [Code; 8] = [
    Code::InvalidRequest,
    Code::InvalidClient,
    Code::InvalidGrant,
    Code::UnauthorizedClient,
    Code::UnsupportedGrantType,
    Code::InvalidScope,
    Code::TemporarilyUnavailable,
    Code::UnsupportedTokenType,
];

#[derive(Debug, Default)]
pub struct Metrics {
    issued: [AtomicU64; 4],
    errors: [AtomicU64; 8],
}

impl Metrics {
    pub fn issued(&self, grant: Grant) {
        let i = Grant::ALL.iter().position(|g| *g == grant).unwrap_or(0);
        self.issued[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, code: Code) {
        let i = ERRORS.iter().position(|c| *c == code).unwrap_or(0);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP splitgate_tokens_issued_total Access tokens issued, by grant.\n");
        out.push_str("# TYPE splitgate_tokens_issued_total counter\n");
        for (grant, n) in Grant::ALL.iter().zip(&self.issued) {
            let _ = writeln!(
                out,
                "splitgate_tokens_issued_total{{grant=\"{}\"}} {}",
                grant.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP splitgate_token_errors_total Token, revocation and introspection errors, by OAuth error code.\n");
        out.push_str("# TYPE splitgate_token_errors_total counter\n");
        for (code, n) in ERRORS.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "splitgate_token_errors_total{{error=\"{}\"}} {}",
                code.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        out
    }
}
