//! Path safety (DESIGN §5): one canonical form of the request path, on
//! which the route is chosen and which is also what the backend receives.
//!
//! The danger is a path that the gateway routes to one side while the
//! backend, decoding or resolving it differently, serves the other:
//! `/api/%2e%2e/admin/api/users`, `/api/..;/admin/api/users` (servlet
//! containers drop `;...`), `/api/%252e%252e/...` (a backend that decodes
//! twice), `/api\..\admin\api` (one that treats `\` as `/`). So the path is
//! decoded once, dot segments are resolved on the decoded form, and every
//! byte whose meaning differs between servers is refused rather than
//! interpreted: an encoded `/`, `\` or `%`, a `\`, a `;`, NUL and other
//! control characters, invalid UTF-8 (which includes overlong encodings),
//! and Unicode look-alikes of `.`, `/` and `\`. Empty segments (`//`) are
//! merged. The result is re-encoded with a fixed set of safe characters.

use std::fmt::Write as _;

/// Why a path is refused (400 `invalid_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target must be a path starting with /")]
    NotAPath,
    #[error("the path contains a malformed percent-escape")]
    BadEscape,
    #[error("the path contains an encoded slash")]
    EncodedSlash,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains an encoded percent sign")]
    EncodedPercent,
    #[error("the path contains a NUL or control character")]
    ControlChar,
    #[error("the path contains a ; parameter")]
    Parameter,
    #[error("the path is not valid UTF-8")]
    InvalidUtf8,
    #[error("the path contains a look-alike of a dot, slash or backslash")]
    LookAlike,
    #[error("the path climbs above the root")]
    AboveRoot,
}

/// Characters kept as they are when the path is re-encoded: RFC 3986
/// unreserved, the sub-delimiters except `;`, `:` and `@`. Everything else
/// is percent-encoded.
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

/// Code points that some servers fold into `.`, `/` or `\` (NFKC and
/// "best fit" mappings): refused rather than trusted to stay distinct.
const LOOK_ALIKES: &[char] = &[
    '\u{2024}', // one dot leader -> .
    '\u{2025}', // two dot leader -> ..
    '\u{2026}', // ellipsis -> ...
    '\u{FE52}', // small full stop
    '\u{FF0E}', // fullwidth full stop
    '\u{2044}', // fraction slash
    '\u{2215}', // division slash
    '\u{FF0F}', // fullwidth solidus
    '\u{FE68}', // small reverse solidus
    '\u{FF3C}', // fullwidth reverse solidus
    '\u{29F5}', // reverse solidus operator
];

/// The canonical form of `path` (the path of a request target, without
/// its query), or why there is none.
pub fn normalize(path: &str) -> Result<String, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAPath);
    };
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for raw in rest.split('/') {
        let segment = decode(raw)?;
        trailing_slash = matches!(segment.as_str(), "" | "." | "..");
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        encode_into(segment, &mut out);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Decodes one segment, refusing everything listed in the module docs.
fn decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|h| hex(*h));
                let lo = bytes.get(i + 2).and_then(|l| hex(*l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                i += 3;
                match hi << 4 | lo {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'%' => return Err(PathError::EncodedPercent),
                    decoded => decoded,
                }
            }
            raw => {
                i += 1;
                raw
            }
        };
        match b {
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Parameter),
            0..=0x1F | 0x7F => return Err(PathError::ControlChar),
            _ => out.push(b),
        }
    }
    let text = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)?;
    if text.contains(LOOK_ALIKES) {
        return Err(PathError::LookAlike);
    }
    Ok(text)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn encode_into(segment: &str, out: &mut String) {
    for b in segment.bytes() {
        if is_safe(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Whether `path` is `prefix` or lies under it (`prefix/...`).
pub fn is_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("/", "/"),
            ("/api/users", "/api/users"),
            ("/api/users/", "/api/users/"),
            ("//api//users", "/api/users"),
            ("/api/./users", "/api/users"),
            ("/api/x/../users", "/api/users"),
            ("/api/users/..", "/api/"),
            ("/api/users/.", "/api/users/"),
            ("/api/%2e%2e/admin/api/users", "/admin/api/users"),
            ("/api/%2E%2e/admin/api/users", "/admin/api/users"),
            ("/api/.%2e/admin/api/users", "/admin/api/users"),
            ("/api/%75sers", "/api/users"),
            ("/api/users/%C3%A9t%C3%A9", "/api/users/%C3%A9t%C3%A9"),
            ("/api/users/été", "/api/users/%C3%A9t%C3%A9"),
            ("/api/a%20b", "/api/a%20b"),
            ("/api/a\"b{c}", "/api/a%22b%7Bc%7D"),
            ("/api/a:b@c!$&'()*+,=", "/api/a:b@c!$&'()*+,="),
            ("/API/Users", "/API/Users"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refusals() {
        let cases = [
            ("*", PathError::NotAPath),
            ("", PathError::NotAPath),
            ("/api/%2F..%2Fadmin", PathError::EncodedSlash),
            ("/api/%2f", PathError::EncodedSlash),
            ("/api\\..\\admin\\api", PathError::Backslash),
            ("/api/%5C..%5Cadmin", PathError::Backslash),
            ("/api/%5c", PathError::Backslash),
            ("/api/%00", PathError::ControlChar),
            ("/api/%0d%0aX-Auth-Subject:%20root", PathError::ControlChar),
            ("/api/%7F", PathError::ControlChar),
            ("/api/%252e%252e/admin/api/users", PathError::EncodedPercent),
            ("/api/%25", PathError::EncodedPercent),
            ("/api/..;/admin/api/users", PathError::Parameter),
            ("/api;x=1/users", PathError::Parameter),
            ("/api/%3b", PathError::Parameter),
            ("/api/%C0%AE%C0%AE/admin", PathError::InvalidUtf8),
            ("/api/%E0%80%AE", PathError::InvalidUtf8),
            ("/api/%FF", PathError::InvalidUtf8),
            ("/api/%", PathError::BadEscape),
            ("/api/%2", PathError::BadEscape),
            ("/api/%zz", PathError::BadEscape),
            ("/api/%EF%BC%8E%EF%BC%8E/admin", PathError::LookAlike),
            ("/api/\u{FF0F}admin", PathError::LookAlike),
            ("/..", PathError::AboveRoot),
            ("/api/../../admin/api", PathError::AboveRoot),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), Err(want), "{input}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for input in [
            "/api/%2e%2e/admin/api/x",
            "/api/users/%C3%A9",
            "/api/a%20b/",
            "//x//y/.//z/..",
        ] {
            let once = normalize(input).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{input}");
        }
    }

    #[test]
    fn under_respects_segment_boundaries() {
        assert!(is_under("/api", "/api"));
        assert!(is_under("/api/users", "/api"));
        assert!(!is_under("/apix", "/api"));
        assert!(!is_under("/ap", "/api"));
    }
}
