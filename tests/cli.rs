//! The `splitgate` binary itself: `config check`, and the admin commands
//! of DESIGN §7 against a running `splitgate serve`.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_splitgate");

/// A `splitgate serve` child process, killed on drop.
struct Serve {
    child: Child,
    config: std::path::PathBuf,
    public: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("splitgate.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn start() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[store]\ndata_dir = \"{}\"\n[tenants.acme]\nhosts = [\"acme.test\"]\nupstream = \"http://127.0.0.1:9\"\n",
            dir.path().join("data").display()
        ),
    );
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("SPLITGATE_LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The one line the binary prints once it is serving.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    Serve {
        public: field("public"),
        admin: field("admin"),
        child,
        config,
        _dir: dir,
    }
}

impl Serve {
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut child = Command::new(BIN)
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "--admin-url",
                &self.admin,
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let (code, out, err) = self.cli(args, stdin);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON object ({e}): {out}"))
    }
}

#[test]
fn config_check_reports_every_error_with_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[listen]\npublik = \"x\"\n[tenants.acme]\nhosts = [\"a\"]\nupstream = \"ftp://x\"\naccess_token_ttl = \"soon\"\n",
    );
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "listen.publik: unknown key; expected one of: public, admin, tls (in {})",
            path.display()
        )),
        "{err}"
    );
    // Unknown keys are reported first; once they are fixed, every invalid value is.
    let path = write_config(
        dir.path(),
        "[tenants.acme]\nhosts = [\"a\"]\nupstream = \"ftp://x\"\naccess_token_ttl = \"soon\"\n",
    );
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.starts_with("2 configuration errors:\n"), "{err}");
    assert!(err.contains(&format!("tenants.acme.upstream: `ftp://x` must be an http or https URL with a host and no path, e.g. \"http://127.0.0.1:9000\" (in {})", path.display())), "{err}");
    assert!(
        err.contains("tenants.acme.access_token_ttl: `soon` is not a duration"),
        "{err}"
    );
    // A variable overrides the file and is named as the source of its error.
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .env("SPLITGATE_TENANTS__ACME__UPSTREAM", "http://127.0.0.1:9000")
        .env("SPLITGATE_TENANTS__ACME__ACCESS_TOKEN_TTL", "15m")
        .env("SPLITGATE_STORE__BACKEND", "postgres")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.backend: `postgres` is not one of: embedded, memory, redis (in environment variable SPLITGATE_STORE__BACKEND)"), "{err}");
    let good = write_config(
        dir.path(),
        "[tenants.acme]\nhosts = [\"a\"]\nupstream = \"http://127.0.0.1:9000\"\n",
    );
    let out = Command::new(BIN)
        .args(["--config", good.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_deploy_configs_are_valid() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let check = |path: &str, env: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .args(["--config", path, "config", "check"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    check(&format!("{deploy}/quickstart.toml"), &[]);
    // The shared-Redis config takes its URL (with the password) from a variable.
    let redis = [("SPLITGATE_STORE__URL", "redis://:secret@redis:6379/0")];
    check(&format!("{deploy}/shared-redis.toml"), &redis);
    // The Kubernetes ConfigMap embeds the same kind of file.
    let configmap = std::fs::read_to_string(format!("{deploy}/kubernetes/configmap.yaml")).unwrap();
    let toml: String = configmap
        .split("splitgate.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    check(write_config(dir.path(), &toml).to_str().unwrap(), &redis);
}

#[tokio::test]
async fn admin_commands_manage_clients_users_keys_and_revocations() {
    let serve = start();
    let created = serve.json(
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--side",
            "backoffice",
            "--name",
            "ops",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--json",
        ],
        None,
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "a 256-bit secret");
    let listed = serve.json(&["client", "list", "--tenant", "acme", "--json"], None);
    assert_eq!(listed["clients"][0]["client_id"], id.as_str());
    assert!(
        listed.to_string().find(&secret).is_none(),
        "the secret is shown only once"
    );

    let user = serve.json(
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--side",
            "backoffice",
            "--username",
            "alice",
            "--password-stdin",
            "--json",
        ],
        Some("correct horse\n"),
    );
    assert_eq!(user["username"], "alice");
    let users = serve.json(
        &[
            "user",
            "list",
            "--tenant",
            "acme",
            "--side",
            "backoffice",
            "--json",
        ],
        None,
    );
    assert_eq!(users["users"][0]["username"], "alice");

    let http = support::client_for(serve.public.trim_start_matches("http://").parse().unwrap());
    let url = format!(
        "http://acme.test:{}/oauth2-token",
        serve.public.rsplit(':').next().unwrap()
    );
    let login = || {
        http.post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "correct horse"),
            ])
            .send()
    };
    let token: Value = login().await.unwrap().json().await.unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let introspect = |t: String| {
        http.post(format!("{}/introspect", url))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", t)])
            .send()
    };
    assert_eq!(
        introspect(access.clone())
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["active"],
        true
    );

    let revoked = serve.json(
        &["revoke", "--tenant", "acme", "--subject", "alice", "--json"],
        None,
    );
    assert_eq!(revoked["subject"], "alice");
    assert_eq!(
        introspect(access)
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["active"],
        false
    );

    let keys = serve.json(&["keys", "list", "--tenant", "acme", "--json"], None);
    assert_eq!(keys["keys"][0]["state"], "signing");
    assert_eq!(keys["keys"][0]["alg"], "RS256");
    let rotated = serve.json(&["keys", "rotate", "--tenant", "acme", "--json"], None);
    assert_eq!(
        rotated["state"], "pending",
        "a rotated-in key is published before it signs"
    );

    let (code, out, _) = serve.cli(
        &[
            "user",
            "disable",
            "--tenant",
            "acme",
            "--side",
            "backoffice",
            "--username",
            "alice",
        ],
        None,
    );
    assert_eq!((code, out.trim()), (0, "disabled backoffice user alice"));
    assert_eq!(login().await.unwrap().status(), 400);
    let (code, _, err) = serve.cli(
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--side",
            "backoffice",
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("another password"),
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: a backoffice user `alice` already exists (409 Conflict)"
    );
    let (code, _, err) = serve.cli(
        &[
            "client",
            "delete",
            "--tenant",
            "acme",
            "--client-id",
            "nope",
        ],
        None,
    );
    assert_eq!(
        (code, err.trim()),
        (1, "error: no client `nope` (404 Not Found)")
    );
    // An id that starts with a hyphen is a value, not a flag.
    let (code, _, err) = serve.cli(
        &["client", "delete", "--tenant", "acme", "--client-id", "-x1"],
        None,
    );
    assert_eq!(
        (code, err.trim()),
        (1, "error: no client `-x1` (404 Not Found)")
    );
    let (code, out, _) = serve.cli(
        &["client", "delete", "--tenant", "acme", "--client-id", &id],
        None,
    );
    assert_eq!(
        (code, out.trim().to_owned()),
        (0, format!("deleted client {id}"))
    );
}

/// Starts `serve --demo` on free ports in `data`; returns the child and
/// everything it printed up to its instructions' last line.
fn start_demo(data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--demo"])
        .env("SPLITGATE_LISTEN__PUBLIC", "127.0.0.1:0")
        .env("SPLITGATE_LISTEN__ADMIN", "127.0.0.1:0")
        .env("SPLITGATE_STORE__DATA_DIR", data)
        .env("SPLITGATE_LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Press Ctrl-C to stop.") {
        assert!(
            out.read_line(&mut text).unwrap() > 0,
            "the demo exited early: {text}"
        );
    }
    (child, text)
}

/// The words after `label` on the line that starts with it.
fn words_after(text: &str, label: &str) -> Vec<String> {
    let line = text
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in {text}"));
    line[label.len()..]
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn serve_demo_seeds_clients_and_users_whose_tokens_work_on_their_side_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = start_demo(&dir.path().join("data"));
    let _ = first.kill();
    let _ = first.wait();
    // Started again on the same data directory, the demo data is replaced,
    // not duplicated, and what it prints works.
    let (mut child, text) = start_demo(&dir.path().join("data"));
    assert!(
        text.contains("curl -s -H \"Authorization: Bearer $BO\""),
        "{text}"
    );
    let public = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("public=http://"))
        .unwrap()
        .to_owned();
    let (bo, sf) = (
        words_after(&text, "back-office client"),
        words_after(&text, "storefront client"),
    );
    assert_eq!((bo[1].as_str(), sf[1].as_str()), ("secret", "secret"));
    let http = reqwest::Client::new();
    let token = |client: &[String], user: &str, password: &str| {
        let req = http
            .post(format!("http://{public}/oauth2-token"))
            .basic_auth(&client[0], Some(&client[2]))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ]);
        async move {
            req.send().await.unwrap().json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let bo_token = token(&bo, "admin", "demo-admin-password").await;
    let cu_token = token(&sf, "customer@example.com", "demo-customer-password").await;
    let get = |path: &str, t: &str| {
        http.get(format!("http://{public}{path}"))
            .bearer_auth(t)
            .send()
    };
    assert_eq!(
        get("/admin/api/users", &bo_token).await.unwrap().status(),
        200
    );
    assert_eq!(get("/api/users", &bo_token).await.unwrap().status(), 401);
    assert_eq!(get("/api/orders", &cu_token).await.unwrap().status(), 200);
    assert_eq!(
        get("/admin/api/orders", &cu_token).await.unwrap().status(),
        401
    );
    let (status, clients) = {
        let admin = text
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .find_map(|w| w.strip_prefix("admin="))
            .unwrap()
            .to_owned();
        let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
        let r = http
            .get(format!("{admin}/v1/tenants/demo/clients"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(
        clients.as_array().unwrap().len(),
        2,
        "one back-office and one storefront demo client: {clients}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
