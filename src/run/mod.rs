//! The run modes of DESIGN §7, wired from a validated [`Config`]:
//! `serve` (issuer and gateway in one process), `issuer` alone, and
//! `gateway` alone. [`start`] takes already bound listeners, so tests run
//! exactly what the binary runs on `127.0.0.1:0`.

mod wiring;

use std::net::SocketAddr;

use anyhow::Context;
use splitgate_issuer::{Issuer, IssuerParts};
use splitgate_shared::Config;
use splitgate_shared::http::{HttpService, ServerOptions, serve};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::revocation::{self, RevocationView};
use splitgate_shared::secrets::{Secret, load_or_create_secret_file, random_token};
use splitgate_shared::store::Store;
use splitgate_shared::tenant::Tenants;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which parts run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Issuer,
    Gateway,
}

/// The public and admin listeners, bound before start so that their
/// addresses are known (and so that tests can bind port 0).
#[derive(Debug)]
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let public = TcpListener::bind(config.listen.public)
            .await
            .with_context(|| format!("listen.public: cannot listen on {}", config.listen.public))?;
        let admin = TcpListener::bind(config.listen.admin)
            .await
            .with_context(|| format!("listen.admin: cannot listen on {}", config.listen.admin))?;
        Ok(Listeners { public, admin })
    }

    /// Both on `127.0.0.1:0` (tests, demo).
    pub async fn ephemeral() -> std::io::Result<Listeners> {
        Ok(Listeners {
            public: TcpListener::bind("127.0.0.1:0").await?,
            admin: TcpListener::bind("127.0.0.1:0").await?,
        })
    }
}

/// A started server. Dropping it does not stop it; call [`Running::stop`].
pub struct Running {
    pub mode: Mode,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub store: Store,
    /// `None` in gateway mode, which has no admin API.
    pub admin_token: Option<Secret>,
    pub issuer: Option<Issuer>,
    /// Whether the public listener speaks TLS.
    pub tls: bool,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (within the grace
    /// period), then stops background work.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        for task in self.background {
            task.abort();
        }
    }

    /// The admin service with the admin token: how `serve --demo` seeds
    /// its demo data without a network round trip.
    pub fn admin_service(&self) -> Option<HttpService> {
        self.issuer.as_ref().map(Issuer::admin_service)
    }
}

/// Starts `mode` on `listeners` and returns once everything is serving.
pub async fn start(mode: Mode, config: Config, listeners: Listeners) -> anyhow::Result<Running> {
    let store = Store::open(&config.store)
        .await
        .with_context(|| format!("opening the {:?} store", config.store.backend))?;
    start_with_store(mode, config, listeners, store).await
}

/// [`start`] on a store the caller opened (tests share one between
/// processes-in-a-process).
pub async fn start_with_store(
    mode: Mode,
    config: Config,
    listeners: Listeners,
    store: Store,
) -> anyhow::Result<Running> {
    let tenants = Tenants::new(config.tenants.clone());
    if tenants.is_empty() {
        tracing::warn!("no tenants are configured: every request will be answered 421");
    }
    let (stop, stopped) = watch::channel(false);
    let revocations = RevocationView::new();
    let keys = PublishedKeys::new();
    let mut background = vec![tokio::spawn(revocation::follow(
        store.clone(),
        tenants.iter().map(|t| t.id.clone()).collect(),
        revocations.clone(),
    ))];

    let (issuer, admin_token) = match mode {
        Mode::Serve | Mode::Issuer => {
            let (issuer, token) =
                start_issuer(&config, &tenants, &store, &keys, &revocations).await?;
            (Some(issuer), Some(token))
        }
        Mode::Gateway => {
            if !store.is_shared() {
                tracing::warn!(
                    backend = store.backend_name(),
                    "a separate gateway only sees revocations through a shared store: set store.backend = \"redis\""
                );
            }
            (None, None)
        }
    };

    let shared = wiring::Shared {
        config: &config,
        tenants: &tenants,
        keys: &keys,
        revocations: &revocations,
        store: &store,
    };
    let services = wiring::services(mode, shared, issuer.as_ref())?;
    background.extend(services.background);
    let (public_service, admin_service) = (services.public, services.admin);
    let options = wiring::public_options(&config, &tenants)?;
    let tls = options.tls.is_some();
    let public = listeners.public.local_addr()?;
    let admin = listeners.admin.local_addr()?;
    let servers = vec![
        tokio::spawn(serve(
            listeners.public,
            public_service,
            options.clone(),
            wait(stopped.clone()),
        )),
        tokio::spawn(serve(
            listeners.admin,
            admin_service,
            ServerOptions {
                tls: None,
                ..options
            },
            wait(stopped),
        )),
    ];
    tracing::info!(?mode, %public, %admin, store = store.backend_name(), tenants = config.tenants.len(), "splitgate is serving");
    Ok(Running {
        mode,
        public,
        admin,
        store,
        admin_token,
        issuer,
        tls,
        stop,
        servers,
        background,
    })
}

/// The issuer with its admin token and key-encryption key.
async fn start_issuer(
    config: &Config,
    tenants: &Tenants,
    store: &Store,
    keys: &std::sync::Arc<PublishedKeys>,
    revocations: &std::sync::Arc<RevocationView>,
) -> anyhow::Result<(Issuer, Secret)> {
    let admin_token = admin_token(config)?;
    let kek = splitgate_issuer::load_kek(&config.store)
        .map_err(anyhow::Error::msg)
        .context("store.encryption_key")?;
    let issuer = Issuer::start(IssuerParts {
        config: config.issuer.clone(),
        tenants: tenants.clone(),
        store: store.clone(),
        kek,
        keys: keys.clone(),
        revocations: revocations.clone(),
        admin_token: admin_token.clone(),
    })
    .await
    .context("starting the issuer")?;
    Ok((issuer, admin_token))
}

async fn wait(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// `admin.token`, or the token generated into the data directory.
fn admin_token(config: &Config) -> anyhow::Result<Secret> {
    match &config.admin.token {
        Some(t) => Ok(t.clone()),
        None => {
            let path = config.store.data_dir.join("admin-token");
            load_or_create_secret_file(&path, random_token)
                .with_context(|| format!("creating the admin token file {}", path.display()))
        }
    }
}

/// Prints the one line that says where the server listens (scripts and
/// tests wait for it).
pub fn announce(running: &Running) {
    let scheme = if running.tls { "https" } else { "http" };
    say(&format!(
        "splitgate {:?} listening: public={scheme}://{} admin=http://{}",
        running.mode, running.public, running.admin
    ));
}

/// Writes a line to standard output for whoever started the server. A
/// server must not die because its stdout went away (a closed pipe, a
/// detached terminal), so failures are ignored, unlike `println!`'s.
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
