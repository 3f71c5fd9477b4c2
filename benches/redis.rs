//! The Redis backend against the embedded one (issue 5), in one run:
//!
//! - `token_endpoint`: client-credentials tokens/s through `POST
//!   /oauth2-token` of `splitgate issuer` on the embedded store and on a
//!   Redis started for the run, measured the same way (the shared load
//!   generator, 32 connections, interleaved rounds), for RS256 (the
//!   default: signing dominates) and EdDSA (cheap signing: the store's
//!   share shows);
//! - `revocation_propagation`: two separate processes, `splitgate issuer`
//!   and `splitgate gateway`, sharing that Redis; 200 times, a token is
//!   revoked at the issuer (RFC 7009) and the gateway is asked with it
//!   until it refuses. The delay is measured from sending the revocation to
//!   the gateway's first refusal, and from the revocation's answer.
//!
//! Prints JSON lines on stdout (one per algorithm, one for propagation);
//! progress on stderr. Needs `redis-server` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/load.rs"]
mod load;
#[path = "support/server.rs"]
mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use splitgate::run::{self, Listeners, Mode, Running};
use splitgate_shared::config::StoreBackend;
use splitgate_shared::http::{Response, ServerOptions, full, serve, service_fn};
use tokio::net::TcpListener;

use load::Plan;

const PLAN: Plan = Plan {
    connections: 32,
    warmup: Duration::from_secs(1),
    window: Duration::from_secs(5),
    rate: None,
};
const ROUNDS: u32 = 5;
const REVOCATIONS: usize = 200;
const GOAL_RATIO: f64 = 0.60;
const GOAL_PROPAGATION_P99_US: u64 = 100_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let redis = Redis::start();
        throughput(&redis).await;
        propagation(&redis).await;
    });
}

/// A redis-server of this run only, on a free port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it with `apt-get install redis-server`");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut reply = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tenant(alg: &str) -> String {
    format!(
        "[tenants.t{}]\nhosts = [\"{}.bench\"]\nupstream = \"http://127.0.0.1:9\"\nsigning_alg = \"{alg}\"\n",
        alg.to_lowercase(),
        alg.to_lowercase()
    )
}

async fn issuer(
    backend: StoreBackend,
    redis: &Redis,
    tenants: &str,
) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = server::config(dir.path(), tenants);
    if backend == StoreBackend::Redis {
        config.store.backend = StoreBackend::Redis;
        config.store.url = Some(redis.url());
    }
    let running = run::start(
        Mode::Issuer,
        config,
        Listeners::ephemeral().await.expect("bind"),
    )
    .await
    .expect("issuer");
    (running, dir)
}

async fn throughput(redis: &Redis) {
    let tenants = format!("{}{}", tenant("RS256"), tenant("EdDSA"));
    let (embedded, _e) = issuer(StoreBackend::Embedded, redis, &tenants).await;
    let (shared, _r) = issuer(StoreBackend::Redis, redis, &tenants).await;
    for alg in ["RS256", "EdDSA"] {
        let id = format!("t{}", alg.to_lowercase());
        let host = format!("{}.bench", alg.to_lowercase());
        let mut targets = Vec::new();
        for running in [&embedded, &shared] {
            let body =
                json!({"side": "backoffice", "name": "bench", "grants": ["client_credentials"]});
            let (client, secret) = server::create_client(running, &id, body).await;
            let template = server::token_request(&host, &client, &secret);
            let (status, _, body) = load::fetch(running.public, &template).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            targets.push((running.public, template));
        }
        eprintln!("redis: {alg} token endpoint, {ROUNDS} rounds of embedded and redis: {PLAN:?}");
        let outcomes = load::rounds(&targets, PLAN, ROUNDS).await;
        let (e, r) = (&outcomes[0], &outcomes[1]);
        let ratio = r.rps() / e.rps();
        println!(
            "{}",
            json!({
                "bench": "redis_token_endpoint", "alg": alg, "connections": PLAN.connections, "seconds": PLAN.window.as_secs(), "rounds": ROUNDS,
                "embedded_rps": round(e.rps()), "embedded_p50_us": e.percentile_us(0.5), "embedded_p99_us": e.percentile_us(0.99),
                "redis_rps": round(r.rps()), "redis_p50_us": r.percentile_us(0.5), "redis_p99_us": r.percentile_us(0.99),
                "errors": e.errors + r.errors, "ratio": (ratio * 1000.0).round() / 1000.0, "goal": GOAL_RATIO, "met": ratio >= GOAL_RATIO,
            })
        );
    }
    embedded.stop().await;
    shared.stop().await;
}

/// A `splitgate` child process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `splitgate <mode>` and returns it with its public and admin
/// addresses (from the line it prints once serving).
fn spawn(
    mode: &str,
    config: &std::path::Path,
    env: &[(&str, String)],
) -> (Process, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitgate"))
        .args(["--config", config.to_str().unwrap(), mode])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SPLITGATE_LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("splitgate binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=http://")))
            .unwrap_or_else(|| panic!("{line}"))
            .parse()
            .unwrap()
    };
    let (public, admin) = (addr("public"), addr("admin"));
    (Process(child), public, admin)
}

async fn propagation(redis: &Redis) {
    // A backend for the gateway to forward accepted requests to.
    let backend_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = backend_listener.local_addr().unwrap();
    tokio::spawn(serve(
        backend_listener,
        service_fn(|_| async { Response::new(full("{\"data\":[]}")) }),
        ServerOptions::default(),
        std::future::pending(),
    ));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("splitgate.toml");
    let admin_token = splitgate_shared::secrets::random_token();
    std::fs::write(
        &config,
        format!(
            "[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[admin]\ntoken = \"{admin_token}\"\n[store]\nbackend = \"redis\"\nurl = \"{}\"\nencryption_key = \"{}\"\ndata_dir = \"{}\"\n[tenants.shop]\nhosts = [\"shop.bench\"]\nupstream = \"http://{backend}\"\nsigning_alg = \"EdDSA\"\n",
            redis.url(),
            splitgate_shared::keys::kek::Kek::generate_base64(),
            dir.path().display()
        ),
    )
    .unwrap();
    let (_issuer, issuer_public, issuer_admin) = spawn("issuer", &config, &[]);
    let (_gateway, gateway_public, _) = spawn(
        "gateway",
        &config,
        &[(
            "SPLITGATE_GATEWAY__ISSUER_URL",
            format!("http://{issuer_public}"),
        )],
    );

    let http = reqwest::Client::builder()
        .resolve("shop.bench", issuer_public)
        .build()
        .unwrap();
    let gateway = reqwest::Client::builder()
        .resolve("shop.bench", gateway_public)
        .build()
        .unwrap();
    let created: Value = http
        .post(format!("http://{issuer_admin}/v1/tenants/shop/clients"))
        .bearer_auth(&admin_token)
        .json(&json!({"side": "storefront", "name": "bench", "grants": ["client_credentials"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    );
    let issuer_url = format!("http://shop.bench:{}", issuer_public.port());
    let api = format!("http://shop.bench:{}/api/products", gateway_public.port());

    eprintln!(
        "redis: revocation propagation, {REVOCATIONS} revocations, issuer {issuer_public} -> gateway {gateway_public}"
    );
    let (mut from_request, mut after_response) = (Vec::new(), Vec::new());
    for _ in 0..REVOCATIONS {
        let token: Value = http
            .post(format!("{issuer_url}/oauth2-token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        // The gateway accepts it (and has fetched the key) before the revocation.
        let deadline = Instant::now() + Duration::from_secs(10);
        while gateway
            .get(&api)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "the gateway never accepted the token"
            );
        }
        let sent = Instant::now();
        let revoked = http
            .post(format!("{issuer_url}/oauth2-token/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let answered = Instant::now();
        assert_eq!(revoked.status(), 200);
        let deadline = answered + Duration::from_secs(5);
        loop {
            let status = gateway
                .get(&api)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status();
            let now = Instant::now();
            if status == 401 {
                from_request.push(now.duration_since(sent).as_micros() as u64);
                after_response.push(now.duration_since(answered).as_micros() as u64);
                break;
            }
            assert!(
                now < deadline,
                "the gateway never refused the revoked token"
            );
        }
    }
    from_request.sort_unstable();
    after_response.sort_unstable();
    let pct = |v: &[u64], q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let p99 = pct(&from_request, 0.99);
    println!(
        "{}",
        json!({
            "bench": "revocation_propagation", "revocations": REVOCATIONS, "processes": ["issuer", "gateway"], "store": "redis",
            "from_request_p50_us": pct(&from_request, 0.5), "from_request_p99_us": p99, "from_request_max_us": from_request[from_request.len() - 1],
            "after_response_p50_us": pct(&after_response, 0.5), "after_response_p99_us": pct(&after_response, 0.99),
            "goal_p99_us": GOAL_PROPAGATION_P99_US, "met": p99 < GOAL_PROPAGATION_P99_US,
        })
    );
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
