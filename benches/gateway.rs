//! What the gateway's authentication costs (issue 3). One run at 64
//! connections of `GET /api/products` against a JSON:API backend that
//! answers a fixed document (so that the figures measure the gateway, not
//! the backend's own work):
//!
//! - `direct`: the backend itself;
//! - `noauth`: through the gateway stack built without bearer
//!   authentication, revocation and identity headers
//!   (`stack_without_authentication_for_benchmarks`), no token;
//! - `auth`: through `splitgate serve` (gateway in front of the in-process
//!   issuer, RS256, embedded store), with a real client-credentials token
//!   from its token endpoint, the same token on every request.
//!
//! The three are measured in interleaved rounds (direct, noauth, auth,
//! five times): first saturated (64 connections, closed loop: requests/s),
//! then at a fixed offered load of half the slowest one's saturated rate
//! (64 connections, open loop: latency counted from when each request was
//! due), which is where the latency a layer adds can be seen, and last with
//! one connection (one request at a time). On a saturated 2-core machine
//! every percentile is mostly time spent waiting for a core.
//!
//! Prints one JSON line per configuration and a summary line on stdout;
//! progress goes to stderr. See `docs/benchmarks.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/load.rs"]
mod load;
#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use splitgate::run::{self, Listeners, Mode, Running};
use splitgate_gateway::{
    GatewayParts, server_options, stack_without_authentication_for_benchmarks,
};
use splitgate_shared::http::{Response, full, serve, service_fn};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::revocation::RevocationView;
use splitgate_shared::{Config, Tenants};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use load::{Outcome, Plan, Template};

const HOST: &str = "shop.bench";
const PATH: &str = "/api/products";

const PLAN: Plan = Plan {
    connections: 64,
    warmup: Duration::from_secs(1),
    window: Duration::from_secs(5),
    rate: None,
};

/// The same requests one at a time: what each configuration costs a
/// request when nothing queues (the 64-connection percentiles are mostly
/// waiting for a core).
const SERIAL: Plan = Plan {
    connections: 1,
    warmup: Duration::from_millis(500),
    window: Duration::from_secs(2),
    rate: None,
};

/// The saturated plan again at a fixed offered load (set at run time).
const PACED: Plan = Plan { rate: None, ..PLAN };

/// The fractions of the slowest configuration's saturated rate offered in
/// the paced phases: a normal load and a busy one. The goal on added p99 is
/// judged at the first.
const PACED_LOADS: [f64; 2] = [0.25, 0.5];

/// Each configuration is measured in this many slices, interleaved.
const ROUNDS: u32 = 5;

const GOAL_RATIO: f64 = 0.90;
const GOAL_P99_ADDED_US: i64 = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = server::config(
        dir.path(),
        &format!(
            "[tenants.shop]\nhosts = [\"{HOST}\"]\nbase_url = \"http://{HOST}\"\nupstream = \"{}\"\nsigning_alg = \"RS256\"\n",
            backend.url()
        ),
    );
    eprintln!(
        "gateway: backend on {}, {} connections, {} cores",
        backend.addr,
        PLAN.connections,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // All three up at once, then measured in interleaved rounds so that
    // they see the same machine.
    let noauth = NoAuthGateway::start(&config).await;
    let (running, token) = serve_with_token(config).await;
    let targets = [
        (backend.addr, request(None)),
        (noauth.addr, request(None)),
        (running.public, request(Some(&token))),
    ];
    for (addr, template) in &targets {
        let (status, _, body) = load::fetch(*addr, template).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    eprintln!("{ROUNDS} rounds of direct, noauth, auth: {PLAN:?}");
    let loaded = load::rounds(&targets, PLAN, ROUNDS).await;
    let slowest = loaded
        .iter()
        .map(Outcome::rps)
        .fold(f64::INFINITY, f64::min);
    let mut paced = Vec::new();
    for fraction in PACED_LOADS {
        let plan = Plan {
            rate: Some((slowest * fraction).round()),
            ..PACED
        };
        eprintln!("{ROUNDS} rounds of direct, noauth, auth: {plan:?}");
        paced.push((plan, load::rounds(&targets, plan, ROUNDS).await));
    }
    eprintln!("{ROUNDS} rounds of direct, noauth, auth: {SERIAL:?}");
    let serial = load::rounds(&targets, SERIAL, ROUNDS).await;
    running.stop().await;
    noauth.stop().await;
    backend.stop().await;

    let names = ["direct", "noauth", "auth"];
    for (i, name) in names.iter().enumerate() {
        println!("{}", line(name, &loaded[i], &paced, i, &serial[i]));
    }
    let (noauth, auth) = (&loaded[1], &loaded[2]);
    let ratio = auth.rps() / noauth.rps();
    let p99_added = added_p99(&paced[0].1[2], &paced[0].1[0]);
    let added: Vec<Value> = paced
        .iter()
        .map(|(plan, o)| {
            json!({
                "offered_rps": plan.rate,
                "p50_added_us": i64::from(o[2].percentile_us(0.5)) - i64::from(o[0].percentile_us(0.5)),
                "p99_added_us": added_p99(&o[2], &o[0]),
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "bench": "gateway",
            "summary": true,
            "connections": PLAN.connections,
            "seconds": PLAN.window.as_secs(),
            "auth_over_noauth": round(ratio, 3),
            "goal_auth_over_noauth": GOAL_RATIO,
            "p99_added_us": p99_added,
            "p99_added_at_rps": paced[0].0.rate,
            "paced_added": added,
            "saturated_p99_added_us": added_p99(&loaded[2], &loaded[0]),
            "goal_p99_added_us": GOAL_P99_ADDED_US,
            "met": ratio >= GOAL_RATIO && p99_added < GOAL_P99_ADDED_US,
            "one_connection_auth_over_noauth": round(serial[2].rps() / serial[1].rps(), 3),
            "one_connection_p99_added_us": added_p99(&serial[2], &serial[0]),
        })
    );
}

/// `GET /api/products` for the tenant, with `Authorization: Bearer
/// <token>` if given.
fn request(token: Option<&str>) -> Template {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static(HOST));
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/vnd.api+json"),
    );
    if let Some(token) = token {
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("token header"),
        );
    }
    Template {
        method: Method::GET,
        path: PATH.into(),
        headers,
        body: Bytes::new(),
    }
}

/// The backend behind the gateway: a fixed JSON:API document for every
/// request, on the same server loop, doing as little as a backend can.
struct Backend {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Backend {
    async fn start() -> Backend {
        const DOCUMENT: &str = r#"{"data":[{"type":"products","id":"1","attributes":{"name":"Teapot","price":"25.00"}},{"type":"products","id":"2","attributes":{"name":"Cup","price":"6.50"}}]}"#;
        let service = service_fn(|_| async {
            let mut res = Response::new(full(DOCUMENT));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.api+json"),
            );
            res
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            service,
            splitgate_shared::http::ServerOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Backend { addr, stop, server }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.expect("server task");
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The gateway stack without authentication, on the same server loop and
/// options as `serve`'s public listener.
struct NoAuthGateway {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl NoAuthGateway {
    async fn start(config: &Config) -> NoAuthGateway {
        let no_issuer = service_fn(|_| async {
            let mut res = Response::new(full("no issuer here\n"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        });
        let service = stack_without_authentication_for_benchmarks(GatewayParts {
            config: config.gateway.clone(),
            tenants: Tenants::new(config.tenants.clone()),
            keys: PublishedKeys::new(),
            revocations: RevocationView::new(),
            issuer: no_issuer,
            jwks: None,
        })
        .expect("gateway stack");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            service,
            server_options(&config.gateway, None),
            async {
                let _ = stopped.await;
            },
        ));
        NoAuthGateway { addr, stop, server }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.expect("server task");
    }
}

/// `splitgate serve` and a storefront client's client-credentials token
/// from its token endpoint.
async fn serve_with_token(config: Config) -> (Running, String) {
    let listeners = Listeners::ephemeral().await.expect("bind");
    let running = run::start(Mode::Serve, config, listeners)
        .await
        .expect("start serve");
    let (id, secret) = server::create_client(
        &running,
        "shop",
        json!({"side": "storefront", "name": "bench", "grants": ["client_credentials"]}),
    )
    .await;
    let (status, _, body) =
        load::fetch(running.public, &server::token_request(HOST, &id, &secret)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    (running, server::access_token(&body))
}

fn line(
    config: &str,
    loaded: &Outcome,
    paced: &[(Plan, Vec<Outcome>)],
    i: usize,
    serial: &Outcome,
) -> Value {
    let paced: Vec<Value> = paced
        .iter()
        .map(|(plan, outcomes)| {
            let o = &outcomes[i];
            json!({
                "offered_rps": plan.rate,
                "rps": round(o.rps(), 1),
                "p50_us": o.percentile_us(0.50),
                "p99_us": o.percentile_us(0.99),
                "errors": o.errors,
            })
        })
        .collect();
    json!({
        "bench": "gateway",
        "config": config,
        "connections": PLAN.connections,
        "seconds": PLAN.window.as_secs(),
        "rounds": ROUNDS,
        "rps": round(loaded.rps(), 1),
        "p50_us": loaded.percentile_us(0.50),
        "p99_us": loaded.percentile_us(0.99),
        "requests": loaded.ok,
        "errors": loaded.errors,
        "paced": paced,
        "one_connection": {
            "seconds": SERIAL.window.as_secs(),
            "rps": round(serial.rps(), 1),
            "p50_us": serial.percentile_us(0.50),
            "p99_us": serial.percentile_us(0.99),
            "errors": serial.errors,
        },
    })
}

/// `with`'s p99 minus `without`'s, microseconds.
fn added_p99(with: &Outcome, without: &Outcome) -> i64 {
    i64::from(with.percentile_us(0.99)) - i64::from(without.percentile_us(0.99))
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}
