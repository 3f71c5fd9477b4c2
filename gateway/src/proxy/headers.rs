//! Header hygiene between client, gateway and upstream: hop-by-hop headers
//! (RFC 9110 §7.6.1) never cross the proxy, and `X-Forwarded-*` are the
//! gateway's own statement about the client, never the client's.

use http::{HeaderMap, HeaderName, header};

use crate::tenant::Forwarding;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Connection-scoped headers, removed in both directions.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, including those that `Connection`
/// names. On a request this runs before the gateway adds anything, so a
/// client cannot use `Connection: X-Auth-Subject` to strip what the
/// gateway sets.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-For/Proto/Host` from what the tenant layer
/// established, and drops the other spellings of the same claims.
pub fn set_forwarded(headers: &mut HeaderMap, forwarding: &Forwarding) {
    headers.remove(header::FORWARDED);
    headers.remove("x-real-ip");
    match &forwarding.for_chain {
        Some(chain) => {
            headers.insert(X_FORWARDED_FOR, chain.clone());
        }
        None => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    headers.insert(X_FORWARDED_PROTO, forwarding.proto.clone());
    headers.insert(X_FORWARDED_HOST, forwarding.host.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn removes_listed_and_standard_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn forwarded_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("x-real-ip", HeaderValue::from_static("1.2.3.4"));
        set_forwarded(
            &mut h,
            &Forwarding {
                host: HeaderValue::from_static("acme.test"),
                proto: HeaderValue::from_static("https"),
                for_chain: Some(HeaderValue::from_static("192.0.2.1")),
            },
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "acme.test");
        assert!(!h.contains_key("forwarded") && !h.contains_key("x-real-ip"));
    }
}
