//! The demo JSON:API backend of `serve --demo`, also the backend that the
//! gateway's end-to-end tests put behind the gateway.
//!
//! It stands for the existing backend splitgate fronts: users, products and
//! orders for both sides, under `/api/...` (storefront) and `<prefix>/api/...`
//! (back office, any prefix), as JSON:API documents
//! (`application/vnd.api+json`). It trusts the gateway completely and does
//! no authentication of its own; each document's `meta` shows who the
//! gateway said is calling. Every request it receives is recorded (method,
//! path, query, the `X-Auth-*` and `X-Forwarded-*` headers, whether
//! `Authorization` arrived), so tests can assert exactly what reached it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use splitgate_shared::errors::{JSON_API, json_api_error_body};
use splitgate_shared::http::{
    Body, HeaderValue, Method, Request, Response, ServerOptions, StatusCode, content_length, full,
    header, read_body_limited, serve, service_fn,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Largest request body the demo reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `Host` as received.
    pub host: Option<String>,
    /// Every `x-auth-*` header, by lowercase name.
    pub identity: BTreeMap<String, String>,
    /// Every `x-forwarded-*` header, by lowercase name.
    pub forwarded: BTreeMap<String, String>,
    /// Whether an `Authorization` header arrived.
    pub authorization: bool,
}

impl SeenRequest {
    /// An `x-auth-*` header's value, e.g. `auth("subject")`.
    pub fn auth(&self, name: &str) -> Option<&str> {
        self.identity
            .get(&format!("x-auth-{name}"))
            .map(String::as_str)
    }
}

/// How many requests the log keeps: the latest ones. `serve --demo` may
/// run for days; the log must not grow with it.
const LOG_CAPACITY: usize = 10_000;

/// The latest requests seen, shared with the server task.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<std::collections::VecDeque<SeenRequest>>>);

impl RequestLog {
    pub fn all(&self) -> Vec<SeenRequest> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, seen: SeenRequest) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(seen);
    }
}

/// A running demo backend; dropping it stops the server.
#[derive(Debug)]
pub struct DemoBackend {
    addr: SocketAddr,
    log: RequestLog,
    _stop: oneshot::Sender<()>,
}

impl DemoBackend {
    /// Serves on `listener` (bind `127.0.0.1:0` for a free port) until
    /// dropped.
    pub fn start(listener: TcpListener) -> std::io::Result<DemoBackend> {
        let addr = listener.local_addr()?;
        let log = RequestLog::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let handler_log = log.clone();
        let service = service_fn(move |req| handle(handler_log.clone(), req));
        tokio::spawn(serve(listener, service, ServerOptions::default(), async {
            let _ = stopped.await;
        }));
        Ok(DemoBackend {
            addr,
            log,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: what a tenant's `upstream` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.log.all()
    }

    pub fn log(&self) -> RequestLog {
        self.log.clone()
    }
}

async fn handle(log: RequestLog, req: Request<Body>) -> Response<Body> {
    let headers_with = |prefix: &str| -> BTreeMap<String, String> {
        req.headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with(prefix))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect()
    };
    let seen = SeenRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        host: req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
        identity: headers_with("x-auth-"),
        forwarded: headers_with("x-forwarded-"),
        authorization: req.headers().contains_key(header::AUTHORIZATION),
    };
    log.push(seen.clone());

    let Some((side, rest)) = split_side(&seen.path) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such resource");
    };
    let caller = json!({
        "side": side,
        "tenant": seen.auth("tenant"),
        "subject": seen.auth("subject"),
        "kind": seen.auth("kind"),
    });
    let method = req.method().clone();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (Method::GET | Method::HEAD, []) => document(
            StatusCode::OK,
            json!({
                "meta": {"caller": caller},
                "links": {
                    "users": format!("{}/users", seen.path.trim_end_matches('/')),
                    "products": format!("{}/products", seen.path.trim_end_matches('/')),
                    "orders": format!("{}/orders", seen.path.trim_end_matches('/')),
                },
            }),
        ),
        (Method::GET | Method::HEAD, [kind]) => match collection(side, kind) {
            Some(items) => document(
                StatusCode::OK,
                json!({"data": items, "meta": {"caller": caller}}),
            ),
            None => error(StatusCode::NOT_FOUND, "not_found", "no such resource type"),
        },
        (Method::GET | Method::HEAD, [kind, id]) => {
            let item = collection(side, kind)
                .and_then(|items| items.into_iter().find(|item| item["id"] == *id));
            match item {
                Some(item) => document(
                    StatusCode::OK,
                    json!({"data": item, "meta": {"caller": caller}}),
                ),
                None => error(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            }
        }
        (Method::POST, [kind]) if collection(side, kind).is_some() => {
            create(req, kind, caller).await
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the demo backend serves GET, and POST on collections",
        ),
    }
}

/// `/api/...` is the storefront; `<prefix>/api/...` the back office.
fn split_side(path: &str) -> Option<(&'static str, &str)> {
    let under_api = |p: &str| p.is_empty() || p.starts_with('/');
    if let Some(rest) = path.strip_prefix("/api") {
        return under_api(rest).then_some(("storefront", rest));
    }
    let at = path.find("/api")?;
    let rest = &path[at + 4..];
    (at > 0 && under_api(rest)).then_some(("backoffice", rest))
}

/// A POST to a collection: the body is read (which is what the streaming
/// tests need) and echoed back as a new resource.
async fn create(req: Request<Body>, kind: &str, caller: Value) -> Response<Body> {
    let length = content_length(req.headers());
    let bytes = match read_body_limited(req.into_body(), length, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_body",
                &e.to_string(),
            );
        }
    };
    let attributes = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|doc| doc.pointer("/data/attributes").cloned())
        .unwrap_or_else(|| json!({}));
    document(
        StatusCode::CREATED,
        json!({
            "data": {"type": kind, "id": "new", "attributes": attributes},
            "meta": {"caller": caller, "received_bytes": bytes.len()},
        }),
    )
}

fn resource(kind: &str, id: &str, attributes: Value) -> Value {
    json!({"type": kind, "id": id, "attributes": attributes})
}

fn collection(side: &str, kind: &str) -> Option<Vec<Value>> {
    let backoffice = side == "backoffice";
    Some(match kind {
        "users" if backoffice => vec![
            resource("users", "1", json!({"username": "admin", "role": "admin"})),
            resource("users", "2", json!({"username": "clerk", "role": "staff"})),
        ],
        "users" => vec![resource(
            "users",
            "1",
            json!({"email": "alice@example.com", "name": "Alice"}),
        )],
        "products" => vec![
            resource(
                "products",
                "1",
                if backoffice {
                    json!({"name": "Teapot", "price": "25.00", "stock": 12})
                } else {
                    json!({"name": "Teapot", "price": "25.00"})
                },
            ),
            resource("products", "2", json!({"name": "Cup", "price": "6.50"})),
        ],
        "orders" if backoffice => vec![
            resource(
                "orders",
                "1001",
                json!({"status": "shipped", "total": "31.50", "customer": "alice@example.com"}),
            ),
            resource(
                "orders",
                "1002",
                json!({"status": "pending", "total": "6.50", "customer": "bob@example.com"}),
            ),
        ],
        "orders" => vec![resource(
            "orders",
            "1001",
            json!({"status": "shipped", "total": "31.50"}),
        )],
        _ => return None,
    })
}

fn document(status: StatusCode, doc: Value) -> Response<Body> {
    let mut response = Response::new(full(doc.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    response
}

fn error(status: StatusCode, code: &str, detail: &str) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(full(json_api_error_body(status, code, title, detail)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_by_prefix() {
        assert_eq!(split_side("/api/users"), Some(("storefront", "/users")));
        assert_eq!(split_side("/api"), Some(("storefront", "")));
        assert_eq!(
            split_side("/admin/api/users"),
            Some(("backoffice", "/users"))
        );
        assert_eq!(split_side("/x/y/api"), Some(("backoffice", "")));
        assert_eq!(split_side("/apix"), None);
        assert_eq!(split_side("/admin/apix"), None);
        assert_eq!(split_side("/users"), None);
    }
}
