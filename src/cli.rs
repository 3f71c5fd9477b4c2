//! The command line of DESIGN §7.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "splitgate",
    version,
    about = "An OAuth issuer and gateway that keeps back-office and storefront tokens apart"
)]
pub struct Cli {
    /// The TOML config file; `SPLITGATE_` variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The admin API to call (default: `http://<listen.admin>`).
    #[arg(long, global = true, value_name = "URL")]
    pub admin_url: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer and the gateway in one process (the default).
    Serve {
        /// Also start a demo JSON:API backend and seed demo clients and
        /// users, printing curl commands to try them.
        #[arg(long)]
        demo: bool,
    },
    /// Run the issuer alone.
    Issuer,
    /// Run the gateway alone, in front of `gateway.issuer_url`.
    Gateway,
    /// Run only the demo JSON:API backend (for the compose and Kubernetes
    /// examples; `serve --demo` starts it by itself).
    DemoBackend {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
    },
    /// Manage OAuth clients (through the admin API).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage back-office users and storefront customers.
    #[command(subcommand)]
    User(UserCommand),
    /// List or rotate a tenant's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Revoke every token of a subject issued before now.
    Revoke {
        #[arg(long)]
        tenant: String,
        /// The token subject: a username, a customer's email, `visitor:<id>`
        /// or a client id.
        #[arg(long)]
        subject: String,
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration and report every error.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    Backoffice,
    Storefront,
}

impl SideArg {
    pub fn as_str(self) -> &'static str {
        match self {
            SideArg::Backoffice => "backoffice",
            SideArg::Storefront => "storefront",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; its secret is printed once.
    Create(ClientCreate),
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long, allow_hyphen_values = true)]
        client_id: String,
    },
    /// Refuse the client's credentials until it is enabled again.
    Disable {
        #[arg(long)]
        tenant: String,
        #[arg(long, allow_hyphen_values = true)]
        client_id: String,
    },
    Enable {
        #[arg(long)]
        tenant: String,
        #[arg(long, allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    #[arg(long)]
    pub tenant: String,
    #[arg(long, value_enum)]
    pub side: SideArg,
    #[arg(long)]
    pub name: String,
    /// client_credentials, password, authorization_code or refresh_token;
    /// repeat for several. Default: all the client's kind allows.
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// A scope the client may request; repeat for several.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// A client without a secret (browser or mobile app).
    #[arg(long)]
    pub public: bool,
    /// Skip the consent page for this (first-party) client.
    #[arg(long)]
    pub skip_consent: bool,
    /// Allow the PKCE `plain` method (S256 is always allowed).
    #[arg(long)]
    pub allow_plain_pkce: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum)]
        side: SideArg,
        /// Username (back office) or email (storefront).
        #[arg(long)]
        username: String,
        /// Read the password from standard input (required: passwords never
        /// go on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum)]
        side: Option<SideArg>,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user and revoke their tokens.
    Disable(UserRef),
    Enable(UserRef),
    /// Delete a user and revoke their tokens.
    Delete(UserRef),
}

#[derive(Debug, Args)]
pub struct UserRef {
    #[arg(long)]
    pub tenant: String,
    #[arg(long, value_enum)]
    pub side: SideArg,
    #[arg(long)]
    pub username: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a key that signs after `issuer.key_publish_delay`; the old one
    /// retires once its tokens have expired.
    Rotate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration and print every error, or `ok`.
    Check,
}
