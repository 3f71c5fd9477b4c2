//! Redirect URIs: what may be registered, and when a presented one matches
//! (exactly; a loopback URI may differ in port, RFC 8252 §7.3).

use url::{Host, Url};

/// Checks a redirect URI at registration: absolute, no fragment, no
/// userinfo; https, or http on a loopback address, or a private-use scheme
/// with a dot in it (RFC 8252 §7.1, e.g. `com.example.app:/callback`).
pub fn validate_registered(uri: &str) -> Result<(), String> {
    let bad = |why: &str| format!("redirect URI `{uri}` {why}");
    let url = Url::parse(uri).map_err(|_| bad("is not an absolute URL"))?;
    if url.as_str() != uri && format!("{uri}/") != url.as_str() {
        return Err(bad(
            "is not in normal form (write it exactly as the client will send it)",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(bad("must use https (http is only for loopback addresses)")),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(bad(
            "must use https, http on loopback, or a private-use scheme such as com.example.app",
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The registered URI that `presented` matches, if any. Comparison is on
/// the exact string; only for a loopback IP literal may the port differ.
pub fn find_match<'a>(registered: &'a [String], presented: &str) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == presented) {
        return Some(exact);
    }
    let presented_url = Url::parse(presented).ok()?;
    if presented_url.scheme() != "http"
        || !matches!(presented_url.host(), Some(Host::Ipv4(_) | Host::Ipv6(_)))
    {
        return None;
    }
    if !is_loopback(&presented_url)
        || !presented_url.username().is_empty()
        || presented_url.password().is_some()
        || presented_url.fragment().is_some()
    {
        return None;
    }
    // Rebuild the presented URI without its port and require the result to
    // equal a registered string exactly: no normalisation tricks get through.
    let mut portless = presented_url.clone();
    portless.set_port(None).ok()?;
    let raw_without_port = strip_port_raw(presented)?;
    registered.iter().map(String::as_str).find(|r| {
        Url::parse(r).is_ok_and(|u| {
            u.scheme() == "http"
                && u.port().is_none()
                && u.as_str() == portless.as_str()
                && *r == raw_without_port
        })
    })
}

/// `http://127.0.0.1:1234/cb?x` -> `http://127.0.0.1/cb?x`, on the raw text.
fn strip_port_raw(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        authority.split(':').next()?
    };
    let port = &authority[host.len()..];
    if !(port.is_empty()
        || (port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    Some(format!("http://{host}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_rules() {
        assert!(validate_registered("https://app.example.com/cb").is_ok());
        assert!(validate_registered("http://127.0.0.1/cb").is_ok());
        assert!(validate_registered("http://localhost:3000/cb").is_ok());
        assert!(validate_registered("com.example.app:/callback").is_ok());
        assert!(validate_registered("http://app.example.com/cb").is_err());
        assert!(validate_registered("https://app.example.com/cb#x").is_err());
        assert!(validate_registered("https://u:p@app.example.com/cb").is_err());
        assert!(validate_registered("/cb").is_err());
        assert!(validate_registered("javascript:alert(1)").is_err());
    }

    #[test]
    fn matching_is_exact_but_for_loopback_ports() {
        let reg = vec![
            "https://app.example.com/cb".to_owned(),
            "http://127.0.0.1/cb".to_owned(),
            "http://[::1]/cb".to_owned(),
        ];
        assert_eq!(
            find_match(&reg, "https://app.example.com/cb"),
            Some("https://app.example.com/cb")
        );
        assert_eq!(
            find_match(&reg, "http://127.0.0.1:51234/cb"),
            Some("http://127.0.0.1/cb")
        );
        assert_eq!(
            find_match(&reg, "http://[::1]:8080/cb"),
            Some("http://[::1]/cb")
        );
        for attack in [
            "https://app.example.com/cb/extra",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb#frag",
            "https://app.example.com.evil.com/cb",
            "https://evil.com/cb",
            "https://app.example.com@evil.com/cb",
            "https://evil.com\\@app.example.com/cb",
            "https://APP.example.com/cb",
            "http://127.0.0.1:1@evil.com/cb",
            "http://127.0.0.1:99/cb/../cb",
            "http://127.0.0.1:99/CB",
            "http://127.0.0.2:99/cb",
            "http://localhost:99/cb",
        ] {
            assert_eq!(find_match(&reg, attack), None, "{attack}");
        }
    }
}
