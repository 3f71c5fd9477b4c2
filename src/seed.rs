//! `serve --demo` (the README's run command): the demo JSON:API backend on
//! a free port, a demo tenant when none is configured (every configured
//! tenant is pointed at the demo backend otherwise), a back-office and a
//! storefront client, a back-office user and a customer, and the curl
//! commands that show a token working on its side and refused on the other.

use anyhow::{Context, bail};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use splitgate_shared::Config;
use splitgate_shared::http::{HttpService, Method, Request, StatusCode, full};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::demo::DemoBackend;
use crate::run::{self, Listeners, Mode, Running};

const BACKOFFICE_USER: (&str, &str) = ("admin", "demo-admin-password");
const CUSTOMER: (&str, &str) = ("customer@example.com", "demo-customer-password");
const BACKOFFICE_CLIENT: &str = "Demo back office";
const STOREFRONT_CLIENT: &str = "Demo storefront";

pub async fn serve_demo(mut config: Config) -> anyhow::Result<()> {
    let backend = DemoBackend::start(TcpListener::bind("127.0.0.1:0").await?)?;
    let upstream: http::Uri = backend.url().parse()?;
    if config.tenants.is_empty() {
        config.tenants.push(demo_tenant(&config, &backend.url())?);
    } else {
        for tenant in &mut config.tenants {
            tenant.upstream = upstream.clone();
        }
    }
    let listeners = Listeners::bind(&config).await?;
    let running = run::start(Mode::Serve, config.clone(), listeners).await?;
    run::announce(&running);
    let demo = seed(&running, &config)
        .await
        .context("seeding the demo data")?;
    run::say(&instructions(&running, &config, &backend, &demo));
    run::shutdown_signal().await;
    running.stop().await;
    Ok(())
}

fn demo_tenant(config: &Config, backend: &str) -> anyhow::Result<splitgate_shared::Tenant> {
    let port = config.listen.public.port();
    let toml = format!(
        "[tenants.demo]\nname = \"Demo Shop\"\nhosts = [\"localhost\", \"127.0.0.1\", \"demo.localhost\"]\nbase_url = \"http://localhost:{port}\"\nupstream = \"{backend}\"\n"
    );
    let mut parsed =
        splitgate_shared::config::load_str(&toml).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(parsed.tenants.remove(0))
}

/// What was seeded, for the instructions.
pub struct Demo {
    pub tenant: String,
    pub backoffice_client: (String, String),
    pub storefront_client: (String, String),
}

async fn seed(running: &Running, config: &Config) -> anyhow::Result<Demo> {
    let admin = running.admin_service().context("no admin service")?;
    let token = running
        .admin_token
        .as_ref()
        .context("no admin token")?
        .expose()
        .to_owned();
    let call = |method: Method, path: String, body: Option<Value>| {
        let (admin, token) = (admin.clone(), token.clone());
        async move { admin_call(admin, &token, method, &path, body).await }
    };
    let tenant = config.tenants[0].id.clone();
    let base = format!("/v1/tenants/{tenant}");
    // Replace the demo clients of an earlier run (the embedded store keeps them).
    let (_, existing) = call(Method::GET, format!("{base}/clients"), None).await?;
    for client in existing.as_array().into_iter().flatten() {
        if matches!(
            client["name"].as_str(),
            Some(BACKOFFICE_CLIENT | STOREFRONT_CLIENT)
        ) && let Some(id) = client["client_id"].as_str()
        {
            call(Method::DELETE, format!("{base}/clients/{id}"), None).await?;
        }
    }
    let mut clients = Vec::new();
    for (side, name) in [
        ("backoffice", BACKOFFICE_CLIENT),
        ("storefront", STOREFRONT_CLIENT),
    ] {
        let body = json!({"side": side, "name": name, "grants": ["client_credentials", "password", "refresh_token"]});
        let (status, created) = call(Method::POST, format!("{base}/clients"), Some(body)).await?;
        if status != StatusCode::CREATED {
            bail!("creating the {side} client: {created}");
        }
        clients.push((
            created["client_id"].as_str().unwrap_or_default().to_owned(),
            created["client_secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    for (side, (username, password)) in [("backoffice", BACKOFFICE_USER), ("storefront", CUSTOMER)]
    {
        let body = json!({"side": side, "username": username, "password": password});
        let (status, answer) = call(Method::POST, format!("{base}/users"), Some(body)).await?;
        if status != StatusCode::CREATED && status != StatusCode::CONFLICT {
            bail!("creating the {side} user: {answer}");
        }
    }
    let storefront_client = clients.pop().unwrap_or_default();
    let backoffice_client = clients.pop().unwrap_or_default();
    Ok(Demo {
        tenant,
        backoffice_client,
        storefront_client,
    })
}

async fn admin_call(
    admin: HttpService,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(full(body.map(|b| b.to_string()).unwrap_or_default()))?;
    let response = admin.oneshot(request).await?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn instructions(running: &Running, config: &Config, backend: &DemoBackend, demo: &Demo) -> String {
    let tenant = &config.tenants[0];
    let host = tenant
        .hosts
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let url = format!("http://{host}:{}", running.public.port());
    let prefix = &tenant.backend_prefix;
    let (bo_id, bo_secret) = &demo.backoffice_client;
    let (sf_id, sf_secret) = &demo.storefront_client;
    let extract = "sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/'";
    format!(
        r#"
splitgate demo: tenant `{tenant_id}` at {url} (admin API on http://{admin}, demo JSON:API backend on {backend_url})

  back-office client  {bo_id}  secret {bo_secret}
  storefront client   {sf_id}  secret {sf_secret}
  back-office user    {bo_user} / {bo_pass}
  customer            {cu_user} / {cu_pass}

# A back-office token (password grant) opens the back-office API ...
BO=$(curl -s -u {bo_id}:{bo_secret} -d grant_type=password -d username={bo_user} -d password={bo_pass} {url}/oauth2-token | {extract})
curl -s -H "Authorization: Bearer $BO" {url}{prefix}/api/users
# ... and is refused on the storefront API (401):
curl -si -H "Authorization: Bearer $BO" {url}/api/users

# A customer token opens the storefront API and not the back office:
CU=$(curl -s -u {sf_id}:{sf_secret} -d grant_type=password -d username={cu_user} -d password={cu_pass} {url}/oauth2-token | {extract})
curl -s -H "Authorization: Bearer $CU" {url}/api/orders
curl -si -H "Authorization: Bearer $CU" {url}{prefix}/api/orders

# A guest (visitor) token for the storefront:
GUEST=$(curl -s -u {sf_id}:{sf_secret} -d grant_type=password -d username=guest -d password=guest {url}/oauth2-token | {extract})
curl -s -H "Authorization: Bearer $GUEST" {url}/api/products

Press Ctrl-C to stop.
"#,
        tenant_id = demo.tenant,
        admin = running.admin,
        backend_url = backend.url(),
        bo_user = BACKOFFICE_USER.0,
        bo_pass = BACKOFFICE_USER.1,
        cu_user = CUSTOMER.0,
        cu_pass = CUSTOMER.1,
    )
}
