//! Loading: figment merges the TOML file and `SPLITGATE_` variables; we then
//! report every unknown key, every type error (section by section) and every
//! invalid value, each with its key and where it came from.

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::Provider;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};

use super::Config;
use super::file::{RawConfig, SECTIONS, TENANT_KEYS, TLS_KEYS, TOP_KEYS};
use super::validate;

const ENV_PREFIX: &str = "SPLITGATE_";
const ENV_SPLIT: &str = "__";

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `tenants.acme.access_token_ttl`.
    pub key: String,
    /// The file or variable the value came from (`default` when none did).
    pub source: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (in {})", self.key, self.message, self.source)
    }
}

/// Every problem found, in the order the keys were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads `path` (when given; it must exist) and the `SPLITGATE_` variables.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if !path.is_file() {
            return Err(ConfigErrors(vec![ConfigError {
                key: "--config".into(),
                source: path.display().to_string(),
                message: "no such file".into(),
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split(ENV_SPLIT));
    load_figment(&figment)
}

/// Loads TOML text alone, without the environment: for tests and for
/// configs built in code (`serve --demo`).
pub fn load_str(toml: &str) -> Result<Config, ConfigErrors> {
    load_figment(&Figment::from(Toml::string(toml)))
}

/// Loads a TOML file alone, without the environment (tests).
pub fn load_file_only(path: &Path) -> Result<Config, ConfigErrors> {
    load_figment(&Figment::from(Toml::file_exact(path)))
}

fn load_figment(figment: &Figment) -> Result<Config, ConfigErrors> {
    let sources = Sources { figment };
    let data = match figment.data() {
        Ok(mut profiles) => profiles
            .remove(&figment::Profile::Default)
            .unwrap_or_default(),
        Err(e) => return Err(ConfigErrors(figment_errors(&sources, e))),
    };

    let mut errors = unknown_keys(&sources, &data);
    let raw = if errors.is_empty() {
        extract_sections(&sources, &mut errors)
    } else {
        None
    };
    let Some(raw) = raw else {
        return Err(ConfigErrors(errors));
    };
    match validate::validate(raw) {
        Ok(config) => Ok(config),
        Err(invalid) => Err(ConfigErrors(
            invalid
                .into_iter()
                .map(|(key, message)| ConfigError {
                    source: sources.of(&key),
                    key,
                    message,
                })
                .collect(),
        )),
    }
}

/// Where a key's value came from, in words a user can act on.
struct Sources<'a> {
    figment: &'a Figment,
}

impl Sources<'_> {
    fn of(&self, key: &str) -> String {
        // A key that failed may be absent (a required key left out): fall
        // back to its nearest present parent.
        let mut probe = key;
        loop {
            if let Some(md) = self.figment.find_metadata(probe) {
                return describe(md, key);
            }
            match probe.rfind('.') {
                Some(i) => probe = &probe[..i],
                None => return "default".into(),
            }
        }
    }
}

fn describe(md: &figment::Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if md.name.contains("environment") => format!(
            "environment variable {ENV_PREFIX}{}",
            key.split('.')
                .map(|k| k.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(ENV_SPLIT)
        ),
        _ => md.name.to_string(),
    }
}

fn figment_errors(sources: &Sources<'_>, error: figment::Error) -> Vec<ConfigError> {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "(file)".to_owned()
            } else {
                e.path.join(".")
            };
            let source = match &e.metadata {
                Some(md) => describe(md, &key),
                None => sources.of(&key),
            };
            ConfigError {
                key,
                source,
                message: e.kind.to_string(),
            }
        })
        .collect()
}

fn unknown_keys(sources: &Sources<'_>, data: &Dict) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut unknown = |key: String, allowed: &[&str]| {
        errors.push(ConfigError {
            source: sources.of(&key),
            message: format!("unknown key; expected one of: {}", allowed.join(", ")),
            key,
        });
    };
    for (top, value) in data {
        if !TOP_KEYS.contains(&top.as_str()) {
            unknown(top.clone(), TOP_KEYS);
            continue;
        }
        let Value::Dict(_, table) = value else {
            continue;
        };
        if top == "tenants" {
            for (id, tenant) in table {
                let Value::Dict(_, fields) = tenant else {
                    continue;
                };
                for (field, value) in fields {
                    let key = format!("tenants.{id}.{field}");
                    if !TENANT_KEYS.contains(&field.as_str()) {
                        unknown(key, TENANT_KEYS);
                    } else if field == "tls" {
                        check_table(value, &key, TLS_KEYS, &mut unknown);
                    }
                }
            }
            continue;
        }
        let Some((_, allowed)) = SECTIONS.iter().find(|(name, _)| name == top) else {
            continue;
        };
        for (field, value) in table {
            let key = format!("{top}.{field}");
            if !allowed.contains(&field.as_str()) {
                unknown(key, allowed);
            } else if let Some((_, nested)) = SECTIONS.iter().find(|(name, _)| *name == key) {
                check_table(value, &key, nested, &mut unknown);
            }
        }
    }
    errors
}

fn check_table(
    value: &Value,
    prefix: &str,
    allowed: &[&str],
    unknown: &mut impl FnMut(String, &[&str]),
) {
    if let Value::Dict(_, fields) = value {
        for field in fields.keys() {
            if !allowed.contains(&field.as_str()) {
                unknown(format!("{prefix}.{field}"), allowed);
            }
        }
    }
}

/// Extracts each section on its own so that a type error in one does not
/// hide the errors of the others.
fn extract_sections(sources: &Sources<'_>, errors: &mut Vec<ConfigError>) -> Option<RawConfig> {
    let figment = sources.figment;
    let mut raw = RawConfig::default();
    let mut section = |name: &str, errors: &mut Vec<ConfigError>| -> bool {
        if figment.find_value(name).is_err() {
            return false; // absent: defaults
        }
        let result = match name {
            "listen" => figment.extract_inner(name).map(|v| raw.listen = v),
            "admin" => figment.extract_inner(name).map(|v| raw.admin = v),
            "store" => figment.extract_inner(name).map(|v| raw.store = v),
            "gateway" => figment.extract_inner(name).map(|v| raw.gateway = v),
            "issuer" => figment.extract_inner(name).map(|v| raw.issuer = v),
            "log" => figment.extract_inner(name).map(|v| raw.log = v),
            _ => figment.extract_inner(name).map(|v| raw.tenants = v),
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                // figment appends the `extract_inner` path after the
                // field's own path; put the section first again.
                let e = e.into_iter().map(|mut e| {
                    if e.path.last().map(String::as_str) == Some(name) {
                        e.path.pop();
                    }
                    e.path.insert(0, name.to_owned());
                    e
                });
                errors.extend(e.flat_map(|e| figment_errors(sources, e)));
                false
            }
        }
    };
    let before = errors.len();
    for name in [
        "listen", "admin", "store", "gateway", "issuer", "log", "tenants",
    ] {
        section(name, errors);
    }
    (errors.len() == before).then_some(raw)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn reports_every_unknown_key_with_its_source() {
        let (dir, path) = temp_file(
            "[listen]\npublik = \"x\"\n[tenants.a]\nhosts=[\"a\"]\nupstreem = \"x\"\n[nope]\n",
        );
        let errors = load_file_only(&path).unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["listen.publik", "nope", "tenants.a.upstreem"]);
        assert!(
            errors
                .0
                .iter()
                .all(|e| e.source == path.display().to_string()),
            "{errors}"
        );
        drop(dir);
    }

    #[test]
    fn reports_type_errors_of_several_sections() {
        let errors = load_str(
            "[listen]\npublic = 5\n[store]\ncluster = \"x\"\n[tenants.a]\nhosts = \"a\"\n",
        )
        .unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["listen.public", "store.cluster", "tenants.a.hosts"],
            "{errors}"
        );
    }

    #[test]
    fn env_source_is_named_as_the_variable() {
        let md = figment::Metadata::named("`SPLITGATE_` environment variable(s)");
        assert_eq!(
            describe(&md, "store.url"),
            "environment variable SPLITGATE_STORE__URL"
        );
    }

    #[test]
    fn section_key_lists_match_the_structs() {
        // Every listed key must be accepted by the struct: a config setting
        // all of them at once parses.
        let mut toml = String::new();
        for (section, keys) in SECTIONS {
            if section.contains('.') {
                continue;
            }
            toml.push_str(&format!("[{section}]\n"));
            for key in *keys {
                if SECTIONS
                    .iter()
                    .any(|(s, _)| *s == format!("{section}.{key}"))
                {
                    continue;
                }
                toml.push_str(&format!("{key} = {}\n", sample(key)));
            }
        }
        let figment = Figment::from(Toml::string(&toml));
        let sources = Sources { figment: &figment };
        let mut errors = Vec::new();
        assert!(
            extract_sections(&sources, &mut errors).is_some(),
            "{errors:?}"
        );
    }

    pub(crate) fn temp_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("splitgate.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn sample(key: &str) -> &'static str {
        match key {
            "cluster" | "trusted_proxies" => "[]",
            "forward_authorization" | "revocation_fail_open" => "true",
            k if k.starts_with("max_") || k.ends_with("concurrency") => "1",
            _ => "\"x\"",
        }
    }
}
