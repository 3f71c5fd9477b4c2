//! The load generator both benchmarks measure with, so that every figure
//! they print is counted the same way.
//!
//! `connections` hyper 1 HTTP/1.1 client connections (keep-alive, TCP
//! no-delay), each a task that sends the same request again as soon as the
//! previous response body has been read in full (closed loop, one request
//! in flight per connection). All connections start together; responses
//! that complete during the warm-up are discarded, and those that complete
//! inside the measuring window are counted: a `200` adds one to `ok` and
//! its latency (request sent to last body byte read) to the record, any
//! other status, transport error or timeout adds one to `errors`. Rates
//! and percentiles are computed from those raw counts and latencies.
//!
//! With a `rate`, the load is open-loop instead (wrk2's method): each
//! connection sends on a fixed schedule that adds up to `rate` requests per
//! second; a request that falls behind its schedule is counted from when
//! it was *due*, so time spent queued behind a slow response is not hidden
//! (no coordinated omission). That is how latency added by a layer is measured below
//! saturation.
//!
//! The machine is shared (2 cores for the load generator and the servers,
//! and other work may come and go), so figures that are compared with
//! each other are measured in interleaved rounds ([`rounds`]): each target
//! in turn for a slice of the window, on fresh connections, so that drift
//! over time and the luck of how tasks land on cores affect all of them
//! alike.
#![allow(dead_code)] // each benchmark uses its own part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A request that stalls this long counts as an error (and its
/// connection is replaced): a hung server must not hang the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one load run lasts and how many connections drive it.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub window: Duration,
    /// Total requests per second across all connections (open loop);
    /// `None`: as fast as responses come back (closed loop).
    pub rate: Option<f64>,
}

impl Plan {
    /// One round's share of this plan (warm-up and window split evenly).
    pub fn slice(self, rounds: u32) -> Plan {
        Plan {
            connections: self.connections,
            warmup: self.warmup / rounds,
            window: self.window / rounds,
            rate: self.rate,
        }
    }
}

/// The one request a run sends over and over. `headers` must include
/// `Host` (client connections do not add it).
#[derive(Debug, Clone)]
pub struct Template {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Template {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self
            .path
            .parse()
            .expect("template path is an origin-form URI");
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// What a run counted inside its measuring window.
#[derive(Debug)]
pub struct Outcome {
    /// `200` responses completed in the window.
    pub ok: u64,
    /// Other statuses, transport errors and timeouts in the window.
    pub errors: u64,
    /// The window's length.
    pub seconds: f64,
    /// Latency of every counted `200`, microseconds, sorted ascending.
    latencies_us: Vec<u32>,
}

impl Outcome {
    /// `200` responses per second of the measuring window.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// The `q` quantile (0 < q <= 1) of the recorded latencies by the
    /// nearest-rank method, microseconds; 0 when nothing was recorded.
    pub fn percentile_us(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let rank = (q * self.latencies_us.len() as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, self.latencies_us.len()) - 1]
    }

    /// Adds another measurement of the same target.
    pub fn absorb(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
    }
}

/// Measures every target with `plan`, interleaved: `rounds` times, each
/// target in turn for its slice of the plan. One [`Outcome`] per target,
/// in order, over the whole window.
pub async fn rounds(targets: &[(SocketAddr, Template)], plan: Plan, rounds: u32) -> Vec<Outcome> {
    let slice = plan.slice(rounds);
    let mut outcomes: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    for _ in 0..rounds {
        for ((addr, template), total) in targets.iter().zip(outcomes.iter_mut()) {
            let outcome = run(*addr, template.clone(), slice).await;
            match total {
                Some(total) => total.absorb(outcome),
                None => *total = Some(outcome),
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("at least one round"))
        .collect()
}

/// What one connection counted.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, counted: bool, what: impl FnOnce() -> String) {
        if counted {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(what());
            }
        }
    }
}

/// Drives `template` at `addr` for `plan.warmup + plan.window` and counts
/// the window. Reports the first error of each kind on stderr.
pub async fn run(addr: SocketAddr, template: Template, plan: Plan) -> Outcome {
    let template = Arc::new(template);
    let start = Instant::now();
    let from = start + plan.warmup;
    let until = from + plan.window;
    // Open loop: each connection's own interval, and staggered first sends
    // so that the connections do not fire in lockstep.
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.connections as f64 / rate));
    let tasks: Vec<_> = (0..plan.connections)
        .map(|i| {
            let schedule = interval.map(|every| Schedule {
                next: start + every.mul_f64(i as f64 / plan.connections as f64),
                every,
            });
            tokio::spawn(connection(addr, template.clone(), from, until, schedule))
        })
        .collect();
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        seconds: plan.window.as_secs_f64(),
        latencies_us: Vec::new(),
    };
    let mut first_error = None;
    for task in tasks {
        let tally = task.await.expect("load task panicked");
        outcome.ok += tally.ok;
        outcome.errors += tally.errors;
        outcome.latencies_us.extend(tally.latencies_us);
        first_error = first_error.or(tally.first_error);
    }
    outcome.latencies_us.sort_unstable();
    if let Some(e) = first_error {
        eprintln!("  {} errors in the window; the first: {e}", outcome.errors);
    }
    outcome
}

/// When an open-loop connection's next request is due.
struct Schedule {
    next: Instant,
    every: Duration,
}

/// One connection's loop until `until` (closed, or open with a
/// `schedule`); replaces the connection after a transport error.
async fn connection(
    addr: SocketAddr,
    template: Arc<Template>,
    from: Instant,
    until: Instant,
    mut schedule: Option<Schedule>,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let now = Instant::now();
        if now >= until {
            return tally;
        }
        if sender.is_none() {
            match connect(addr).await {
                Ok(conn) => sender = Some(conn),
                Err(e) => {
                    tally.error(now >= from, || format!("connect: {e}"));
                    // Not synchronisation: a pause before reconnecting, so
                    // a refusing server is not hammered in a tight loop.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(conn) = sender.as_mut() else {
            continue;
        };
        // Open loop: a request that is already due (the previous response
        // came back late) is sent at once and its latency counted from when
        // it was due, so queueing is not hidden; otherwise wait for its time
        // and count from the actual send (the timer wheel's millisecond
        // granularity is the generator's lateness, not the server's).
        let began = match schedule.as_mut() {
            Some(s) => {
                let due = s.next;
                s.next += s.every;
                if due >= until {
                    return tally;
                }
                if Instant::now() >= due {
                    due
                } else {
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                }
            }
            None => Instant::now(),
        };
        let result = tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, &template)).await;
        let done = Instant::now();
        let counted = done >= from && done < until;
        match result {
            Ok(Ok((StatusCode::OK, _))) => {
                if counted {
                    tally.ok += 1;
                    let us = done.duration_since(began).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(Ok((status, body))) => tally.error(counted, || {
                format!("status {status}: {}", String::from_utf8_lossy(&body))
            }),
            Ok(Err(e)) => {
                sender = None;
                tally.error(counted, || format!("transport: {e}"));
            }
            Err(_) => {
                sender = None;
                tally.error(counted, || {
                    format!("no response within {REQUEST_TIMEOUT:?}")
                });
            }
        }
    }
}

async fn connect(
    addr: SocketAddr,
) -> Result<SendRequest<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends the template once and reads the whole response body.
async fn exchange(
    conn: &mut SendRequest<Full<Bytes>>,
    template: &Template,
) -> Result<(StatusCode, Bytes), hyper::Error> {
    conn.ready().await?;
    let res = conn.send_request(template.request()).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One request on a fresh connection: status, headers and body. How the
/// benchmarks fetch the token and response they then replay.
pub async fn fetch(addr: SocketAddr, template: &Template) -> (StatusCode, HeaderMap, Bytes) {
    let mut conn = connect(addr).await.expect("connect");
    conn.ready().await.expect("connection ready");
    let res = conn
        .send_request(template.request())
        .await
        .expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}
