//! Command-line interface (clap).

use clap::{Args, Parser, Subcommand};

use crate::config::{CommonArgs, Settings};

#[derive(Debug, Parser)]
#[command(name = "control-server", version, about = "Bot-Mox control server", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub common: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// `--data-dir`, `--database-url`, `--config`, accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server.
    Serve(Settings),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration, print it (secrets masked) and exit.
    CheckConfig(Settings),
    /// Print the OpenAPI document (JSON) and exit.
    Openapi,
    /// Manage tenants, users, API tokens, secrets and agents (works while the server runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for automation.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Secrets for agents (the vault).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Agents: pair, list, revoke (acting as the tenant's first active admin).
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create a pairing and print its bundle, its `botmox://` link and the
    /// agent's page in the web console.
    Pair {
        /// The tenant the agent joins.
        #[arg(long)]
        tenant: String,
        /// A name for people (1-200 characters).
        #[arg(long)]
        name: String,
        /// The owner's e-mail (a user of the tenant) [default: the acting admin].
        #[arg(long)]
        owner: Option<String>,
        /// How long the pairing code is valid, 5-1440 [default: 15].
        #[arg(long)]
        expires_minutes: Option<u32>,
        /// The URL agents use [default: `public_url` of the configuration,
        /// else the `listen` address].
        #[arg(long)]
        public_url: Option<String>,
    },
    /// List agents.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke an agent: its token stops working, its queued commands are cancelled.
    Revoke {
        /// The agent's id.
        id: String,
        /// The agent's tenant [default: looked up from the id].
        #[arg(long)]
        tenant: Option<String>,
        /// Why (kept with the agent, up to 500 characters).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Read a secret from standard input, seal it to the agent's public key
    /// (the server never sees it in clear) and bind it to the agent. One
    /// trailing newline is removed. Prints the secret's metadata (JSON).
    Put {
        /// The agent's id (it must have registered its public key: run it once).
        #[arg(long)]
        agent: String,
        /// A label for people (1-200 characters).
        #[arg(long)]
        label: String,
        /// The binding's field name [default: the label].
        #[arg(long)]
        field: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Slug: a-z, 0-9 and '-'.
        #[arg(long)]
        id: String,
        /// Display name [default: the id].
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a generated password unless --password-stdin.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// Also grant the platform role `infra` (server operator).
        #[arg(long)]
        infra: bool,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Change a user's tenant role (and optionally the infra role).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
        /// Grant (`true`) or remove (`false`) the infra role; unchanged if omitted.
        #[arg(long)]
        infra: Option<bool>,
    },
    /// Disable a user and revoke all their tokens.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Re-enable a disabled user.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Set a new password (revokes the user's tokens).
    SetPassword {
        #[arg(long)]
        email: String,
        /// Read the password from standard input; otherwise one is generated and printed.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Lifetime in days [default: 90; max 3650].
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// List a user's API tokens.
    List {
        #[arg(long)]
        email: String,
    },
    /// Revoke an API token by id.
    Revoke {
        #[arg(long)]
        id: String,
    },
}
