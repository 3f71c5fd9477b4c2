//! Token endpoint throughput against its two ceilings (issue 2), for RS256,
//! ES256 and EdDSA in one run. Prints one JSON line per algorithm on
//! stdout; progress goes to stderr. See `docs/benchmarks.md`.
//!
//! - `endpoint_rps`: client-credentials tokens/s from `POST /oauth2-token`
//!   of `splitgate issuer` (embedded store, a confidential client made
//!   through the admin API), driven over real sockets by `support/load.rs`.
//! - `ceiling_sign_rps`: `sign_jwt` of the same tenant key over claims of
//!   the same size, one thread per core, no HTTP running meanwhile.
//! - `ceiling_http_rps`: the same server loop (`http::serve`, same options)
//!   with a handler that reads the request and returns the endpoint's own
//!   response (same body size, same headers), same load generator.
//!
//! The three are measured in interleaved rounds (endpoint, signing, HTTP,
//! five times), so that they see the same machine.
//!
//! `cargo bench --bench token_endpoint -- ES256 EdDSA` runs only those.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/load.rs"]
mod load;
#[path = "support/server.rs"]
mod server;

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use splitgate::run::{self, Listeners, Mode, Running};
use splitgate_shared::http::{Body, Request, Response, ServerOptions, full, serve, service_fn};
use splitgate_shared::keys::SigningKey;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use load::{Outcome, Plan};

/// One tenant per algorithm: (alg, tenant id, host).
const TENANTS: [(&str, &str, &str); 3] = [
    ("RS256", "rs", "rs.bench"),
    ("ES256", "es", "es.bench"),
    ("EdDSA", "ed", "ed.bench"),
];

const HTTP_PLAN: Plan = Plan {
    connections: 32,
    warmup: Duration::from_secs(1),
    window: Duration::from_secs(5),
    rate: None,
};

/// The signing ceiling is steady after a moment; a shorter run keeps the
/// whole benchmark under a minute.
const SIGN_PLAN: Plan = Plan {
    connections: 0, // threads: one per core
    warmup: Duration::from_millis(500),
    window: Duration::from_secs(3),
    rate: None,
};

/// Each figure is measured in this many slices, interleaved.
const ROUNDS: u32 = 5;

const GOAL: f64 = 0.70;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tenants: String = TENANTS
        .iter()
        .map(|(alg, id, host)| {
            format!(
                "[tenants.{id}]\nhosts = [\"{host}\"]\nbase_url = \"http://{host}\"\nupstream = \"http://127.0.0.1:9\"\nsigning_alg = \"{alg}\"\n"
            )
        })
        .collect();
    let config = server::config(dir.path(), &tenants);
    let options = splitgate_gateway::server_options(&config.gateway, None);
    let listeners = Listeners::ephemeral().await.expect("bind");
    let running = run::start(Mode::Issuer, config, listeners)
        .await
        .expect("start the issuer");
    eprintln!(
        "token_endpoint: issuer on {} (embedded store), {} cores",
        running.public,
        cores()
    );
    // `cargo bench --bench token_endpoint -- ES256` runs only the named
    // algorithms (for profiling); cargo's own flags are ignored.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (alg, tenant, host) in TENANTS {
        if !only.is_empty() && !only.iter().any(|o| o == alg) {
            continue;
        }
        let line = bench_alg(&running, &options, alg, tenant, host).await;
        println!("{line}");
    }
    running.stop().await;
}

async fn bench_alg(
    running: &Running,
    options: &ServerOptions,
    alg: &str,
    tenant: &str,
    host: &str,
) -> Value {
    let (id, secret) = server::create_client(
        running,
        tenant,
        json!({"side": "backoffice", "name": "bench", "grants": ["client_credentials"]}),
    )
    .await;
    let request = server::token_request(host, &id, &secret);
    let (status, headers, body) = load::fetch(running.public, &request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let token = server::access_token(&body);

    let key = running
        .issuer
        .as_ref()
        .expect("issuer mode has an issuer")
        .signer(tenant)
        .expect("the tenant has a signing key");
    let claims = Arc::new(claims_of(&token));
    let probe = key.sign_jwt(&*claims).expect("sign");
    assert_eq!(probe.len(), token.len(), "ceiling claims differ in size");
    let ceiling = HttpCeiling::start(options, headers, body).await;

    // Interleaved, so that the three figures see the same machine.
    let (plan, sign_plan) = (HTTP_PLAN.slice(ROUNDS), SIGN_PLAN.slice(ROUNDS));
    let mut endpoint: Option<Outcome> = None;
    let mut http: Option<Outcome> = None;
    let mut signatures = 0u64;
    for round in 1..=ROUNDS {
        eprintln!("{alg}: round {round}/{ROUNDS}: endpoint, signing, HTTP ceiling");
        let e = load::run(running.public, request.clone(), plan).await;
        absorb(&mut endpoint, e);
        let (key, claims) = (key.clone(), claims.clone());
        signatures += tokio::task::spawn_blocking(move || sign_ceiling(&key, &claims, sign_plan))
            .await
            .expect("signing threads");
        let h = load::run(ceiling.addr, request.clone(), plan).await;
        absorb(&mut http, h);
    }
    ceiling.stop().await;
    let sign_rps = signatures as f64 / SIGN_PLAN.window.as_secs_f64();
    report(
        alg,
        &endpoint.expect("rounds ran"),
        sign_rps,
        &http.expect("rounds ran"),
        token.len(),
    )
}

fn absorb(total: &mut Option<Outcome>, outcome: Outcome) {
    match total {
        Some(total) => total.absorb(outcome),
        None => *total = Some(outcome),
    }
}

fn report(
    alg: &str,
    endpoint: &Outcome,
    sign_rps: f64,
    http: &Outcome,
    token_bytes: usize,
) -> Value {
    let http_rps = http.rps();
    let (lower, ceiling) = if sign_rps <= http_rps {
        ("sign", sign_rps)
    } else {
        ("http", http_rps)
    };
    let ratio = endpoint.rps() / ceiling;
    // Signing and HTTP share the same cores, so their costs per token add:
    // the most any endpoint could reach is the harmonic combination.
    let combined = 1.0 / (1.0 / sign_rps + 1.0 / http_rps);
    json!({
        "bench": "token_endpoint",
        "alg": alg,
        "connections": HTTP_PLAN.connections,
        "seconds": HTTP_PLAN.window.as_secs(),
        "rounds": ROUNDS,
        "endpoint_rps": round(endpoint.rps(), 1),
        "ceiling_sign_rps": round(sign_rps, 1),
        "ceiling_http_rps": round(http_rps, 1),
        "lower_ceiling": lower,
        "ratio": round(ratio, 3),
        "goal": GOAL,
        "met": ratio >= GOAL,
        "combined_ceiling_rps": round(combined, 1),
        "ratio_to_combined": round(endpoint.rps() / combined, 3),
        "endpoint_p50_us": endpoint.percentile_us(0.50),
        "endpoint_p99_us": endpoint.percentile_us(0.99),
        "token_bytes": token_bytes,
        "cores": cores(),
        "errors": endpoint.errors + http.errors,
    })
}

/// The claims of an issued token, to sign tokens of exactly its size.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("claims")
}

/// Signatures made in `plan.window` after `plan.warmup`, one thread per
/// core.
fn sign_ceiling(key: &SigningKey, claims: &Value, plan: Plan) -> u64 {
    let from = Instant::now() + plan.warmup;
    let until = from + plan.window;
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores())
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0u64;
                    loop {
                        black_box(key.sign_jwt(black_box(claims)).expect("sign"));
                        let now = Instant::now();
                        if now >= until {
                            return count;
                        }
                        if now >= from {
                            count += 1;
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("signing thread"))
            .sum()
    })
}

/// The server loop with a trivial handler that reads the request and
/// answers the endpoint's own response: same options, same body, same
/// headers.
struct HttpCeiling {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl HttpCeiling {
    async fn start(options: &ServerOptions, headers: HeaderMap, body: Bytes) -> HttpCeiling {
        // Every header the endpoint sent except those hyper writes itself.
        let mut fixed = headers;
        for name in [header::CONTENT_LENGTH, header::DATE, header::CONNECTION] {
            fixed.remove(name);
        }
        let fixed = Arc::new(fixed);
        let service = service_fn(move |req: Request<Body>| {
            let (fixed, body) = (fixed.clone(), body.clone());
            async move {
                let _ = req.into_body().collect().await;
                let mut res = Response::new(full(body));
                *res.headers_mut() = (*fixed).clone();
                res
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, service, options.clone(), async {
            let _ = stopped.await;
        }));
        HttpCeiling { addr, stop, server }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.expect("server task");
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}
