//! The CLI's admin commands: each is one call to the running server's
//! admin API (DESIGN §7), printed for people or, with `--json`, as one JSON
//! object.

use std::io::Read;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use splitgate_shared::Config;
use splitgate_shared::secrets::read_secret_file;

use crate::cli::{ClientCommand, Command, KeysCommand, UserCommand};

/// Where the admin API is and how to authenticate to it.
pub struct AdminClient {
    base: String,
    token: String,
}

impl AdminClient {
    /// From config: `listen.admin` (a wildcard address is reached on
    /// loopback) and `admin.token`, else the generated token file.
    pub fn from_config(config: &Config, url: Option<&str>) -> anyhow::Result<AdminClient> {
        let mut addr: SocketAddr = config.listen.admin;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let token = match &config.admin.token {
            Some(t) => t.expose().to_owned(),
            None => {
                let path = config.store.data_dir.join("admin-token");
                read_secret_file(&path)
                    .with_context(|| format!("reading the admin token from {} (start splitgate once to create it, or set admin.token)", path.display()))?
                    .expose()
                    .to_owned()
            }
        };
        let base = url.map_or_else(
            || format!("http://{addr}"),
            |u| u.trim_end_matches('/').to_owned(),
        );
        Ok(AdminClient { base, token })
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))?;
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(30), client.request(request))
                .await
                .context("the admin API did not answer within 30 s")?
                .with_context(|| {
                    format!(
                        "cannot reach the admin API at {} (is splitgate running?)",
                        self.base
                    )
                })?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"message": String::from_utf8_lossy(&bytes)}));
        if !status.is_success() {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            bail!("{message} ({status})");
        }
        Ok(value)
    }
}

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn tenant_path(tenant: &str, rest: &str) -> String {
    format!("/v1/tenants/{}/{rest}", seg(tenant))
}

/// Runs one admin command; `Ok(())` means it succeeded and was printed.
pub async fn run(config: &Config, url: Option<&str>, command: Command) -> anyhow::Result<()> {
    let admin = AdminClient::from_config(config, url)?;
    match command {
        Command::Client(c) => client(&admin, c).await,
        Command::User(u) => user(&admin, u).await,
        Command::Keys(k) => keys(&admin, k).await,
        Command::Revoke {
            tenant,
            subject,
            json: as_json,
        } => {
            let body = json!({"subject": subject});
            let revocation = admin
                .call(
                    http::Method::POST,
                    &tenant_path(&tenant, "revocations"),
                    Some(body),
                )
                .await?;
            if as_json {
                println!("{revocation}");
            } else {
                println!("revoked every token of {subject} issued before now");
            }
            Ok(())
        }
        Command::Serve { .. }
        | Command::Issuer
        | Command::Gateway
        | Command::DemoBackend { .. }
        | Command::Config(_) => {
            bail!("not an admin command")
        }
    }
}

async fn client(admin: &AdminClient, command: ClientCommand) -> anyhow::Result<()> {
    let (tenant, client_id, action) = match command {
        ClientCommand::Create(c) => {
            let body = json!({
                "side": c.side.as_str(), "name": c.name, "grants": c.grants, "redirect_uris": c.redirect_uris,
                "scopes": c.scopes, "public": c.public, "skip_consent": c.skip_consent, "allow_plain_pkce": c.allow_plain_pkce,
            });
            let created = admin
                .call(
                    http::Method::POST,
                    &tenant_path(&c.tenant, "clients"),
                    Some(body),
                )
                .await?;
            if c.json {
                println!("{created}");
            } else {
                let fields = [
                    "client_id",
                    "client_secret",
                    "name",
                    "side",
                    "public",
                    "grants",
                    "redirect_uris",
                    "scopes",
                ];
                print_fields(&created, &fields);
                if created.get("client_secret").is_some() {
                    println!("\nThe secret is shown only now: store it.");
                }
            }
            return Ok(());
        }
        ClientCommand::List {
            tenant,
            json: as_json,
        } => {
            let list = admin
                .call(http::Method::GET, &tenant_path(&tenant, "clients"), None)
                .await?;
            print_list(
                &list,
                "clients",
                as_json,
                &["client_id", "side", "name", "public", "grants", "disabled"],
            );
            return Ok(());
        }
        ClientCommand::Delete { tenant, client_id } => (tenant, client_id, "delete"),
        ClientCommand::Disable { tenant, client_id } => (tenant, client_id, "disable"),
        ClientCommand::Enable { tenant, client_id } => (tenant, client_id, "enable"),
    };
    let path = tenant_path(&tenant, &format!("clients/{}", seg(&client_id)));
    match action {
        "delete" => admin.call(http::Method::DELETE, &path, None).await?,
        _ => {
            admin
                .call(http::Method::POST, &format!("{path}/{action}"), None)
                .await?
        }
    };
    println!("{action}d client {client_id}");
    Ok(())
}

async fn user(admin: &AdminClient, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            tenant,
            side,
            username,
            password_stdin: _,
            json: as_json,
        } => {
            let password = read_password()?;
            let body = json!({"side": side.as_str(), "username": username, "password": password});
            let user = admin
                .call(
                    http::Method::POST,
                    &tenant_path(&tenant, "users"),
                    Some(body),
                )
                .await?;
            if as_json {
                println!("{user}");
            } else {
                println!("created {} user {}", side.as_str(), username);
            }
            Ok(())
        }
        UserCommand::List {
            tenant,
            side,
            json: as_json,
        } => {
            let path = match side {
                Some(s) => tenant_path(&tenant, &format!("users?side={}", s.as_str())),
                None => tenant_path(&tenant, "users"),
            };
            let list = admin.call(http::Method::GET, &path, None).await?;
            print_list(&list, "users", as_json, &["side", "username", "disabled"]);
            Ok(())
        }
        UserCommand::Disable(u) => user_action(admin, "disable", u).await,
        UserCommand::Enable(u) => user_action(admin, "enable", u).await,
        UserCommand::Delete(u) => user_action(admin, "delete", u).await,
    }
}

async fn keys(admin: &AdminClient, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List {
            tenant,
            json: as_json,
        } => {
            let list = admin
                .call(http::Method::GET, &tenant_path(&tenant, "keys"), None)
                .await?;
            print_list(
                &list,
                "keys",
                as_json,
                &["kid", "alg", "state", "active_at", "drop_at"],
            );
        }
        KeysCommand::Rotate {
            tenant,
            json: as_json,
        } => {
            let key = admin
                .call(
                    http::Method::POST,
                    &tenant_path(&tenant, "keys/rotate"),
                    None,
                )
                .await?;
            if as_json {
                println!("{key}");
            } else {
                print_fields(&key, &["kid", "alg", "state", "active_at"]);
            }
        }
    }
    Ok(())
}

/// Disable, enable or delete a user.
async fn user_action(
    admin: &AdminClient,
    action: &str,
    u: crate::cli::UserRef,
) -> anyhow::Result<()> {
    let path = tenant_path(
        &u.tenant,
        &format!("users/{}/{}", u.side.as_str(), seg(&u.username)),
    );
    match action {
        "delete" => admin.call(http::Method::DELETE, &path, None).await?,
        _ => {
            admin
                .call(http::Method::POST, &format!("{path}/{action}"), None)
                .await?
        }
    };
    println!("{action}d {} user {}", u.side.as_str(), u.username);
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    let password = text
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&text)
        .to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        if let Some(value) = v.get(*f) {
            println!("{f}: {}", show(value));
        }
    }
}

fn print_list(list: &Value, name: &str, as_json: bool, columns: &[&str]) {
    if as_json {
        println!("{}", json!({ name: list }));
        return;
    }
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    columns
                        .iter()
                        .map(|c| item.get(*c).map(show).unwrap_or_default())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!(
        "{}",
        line(columns.iter().map(|c| c.to_uppercase()).collect()).trim_end()
    );
    for row in rows {
        println!("{}", line(row).trim_end());
    }
}
