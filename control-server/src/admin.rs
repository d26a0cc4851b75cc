//! `control-server admin …`: account management straight on the database,
//! usable while the server runs (SQLite WAL / PostgreSQL).

use std::io::{BufRead, Read};
use std::sync::Arc;

use botmox_protocol::envelope::Zeroizing;

use crate::auth::{secret, Identity, IdentitySource, Role};
use crate::cli::{
    AdminCommand, AgentCommand, SecretCommand, TenantCommand, TokenCommand, UserCommand,
};
use crate::config::{Config, TlsMode};
use crate::crypto::DataKeys;
use crate::db::ids::{AgentId, TenantId, TokenId, UserId};
use crate::db::{ms_to_rfc3339, Db, TenantScope};
use crate::domains::accounts::service::{CreateUser, UserRow};
use crate::domains::accounts::{AccountError, AccountsService};
use crate::domains::agents::service::PairingInput;
use crate::domains::agents::store::AGENT_LIST;
use crate::domains::agents::{AgentError, AgentsService};
use crate::domains::events::EventsService;
use crate::domains::secrets::service::MAX_VALUE_BYTES;
use crate::domains::secrets::{SecretError, SecretMeta, SecretsService};
use crate::notify::Notifier;

/// Run an admin command on the (migrated) database `db`.
pub async fn run(db: &Db, cfg: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let accounts = Arc::new(AccountsService::new(db.clone(), cfg)?);
    match cmd {
        AdminCommand::Tenant { command } => tenant(&accounts, command).await,
        AdminCommand::User { command } => user(&accounts, command).await,
        AdminCommand::Token { command } => token(&accounts, command).await,
        AdminCommand::Secret { command } => {
            let secrets = secrets_service(db, cfg, accounts)?;
            secret_cmd(&secrets, command, &mut std::io::stdin().lock())
                .await
                .map(|_| ())
        }
        AdminCommand::Agent { command } => {
            let agents = agents_service(db, cfg, accounts.clone());
            agent_cmd(&accounts, &agents, cfg, command).await
        }
    }
}

/// The agents service the CLI uses, without an HTTP server.
pub fn agents_service(db: &Db, cfg: &Config, accounts: Arc<AccountsService>) -> AgentsService {
    let notifier = Arc::new(Notifier::new(db));
    let events = EventsService::new(db.clone(), notifier.clone());
    AgentsService::new(db.clone(), cfg.bus, accounts, events, notifier)
}

/// The secrets service the CLI uses (the data key of `cfg.data_dir`, the
/// agents service for the agent's public key), without an HTTP server.
pub fn secrets_service(
    db: &Db,
    cfg: &Config,
    accounts: Arc<AccountsService>,
) -> anyhow::Result<SecretsService> {
    let agents = Arc::new(agents_service(db, cfg, accounts));
    let keys = Arc::new(DataKeys::load_or_create(&cfg.data_dir)?);
    Ok(SecretsService::new(db.clone(), keys, agents))
}

/// Everything on `input`, minus one trailing newline (`\n` or `\r\n`).
pub fn read_secret(input: &mut impl Read) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    input
        .take(MAX_VALUE_BYTES as u64 + 3)
        .read_to_end(&mut buf)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.is_empty() {
        anyhow::bail!("no secret on standard input");
    }
    if buf.len() > MAX_VALUE_BYTES {
        anyhow::bail!("the secret is larger than {MAX_VALUE_BYTES} bytes");
    }
    Ok(buf)
}

/// The error as the API names it (`CODE: message`), field errors listed.
fn secret_fail(e: SecretError) -> anyhow::Error {
    match e {
        SecretError::InvalidCreate(f) => anyhow::anyhow!("{f}"),
        other => {
            let api = crate::http::error::ApiError::from(other);
            match api.cause {
                Some(cause) => anyhow::anyhow!("{}: {} ({cause})", api.code, api.message),
                None => anyhow::anyhow!("{}: {}", api.code, api.message),
            }
        }
    }
}

/// `admin secret …`, reading the secret from `input`; returns the stored
/// secret's metadata (also printed as JSON).
pub async fn secret_cmd(
    secrets: &SecretsService,
    cmd: SecretCommand,
    input: &mut impl Read,
) -> anyhow::Result<SecretMeta> {
    match cmd {
        SecretCommand::Put {
            agent,
            label,
            field,
        } => {
            let value = read_secret(input)?;
            let (meta, binding) = secrets
                .put_for_agent(
                    &AgentId::from(agent.as_str()),
                    &label,
                    field.as_deref(),
                    &value,
                )
                .await
                .map_err(secret_fail)?;
            eprintln!(
                "stored secret {} sealed to agent {} (key {}), bound as field `{}`",
                meta.id, agent, meta.key_id, binding.field_name
            );
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"secret": meta, "binding": binding})
                )?
            );
            Ok(meta)
        }
    }
}

fn fail(e: AccountError) -> anyhow::Error {
    match e {
        AccountError::Invalid(f) => anyhow::anyhow!("{f}"),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn tenant(db: &AccountsService, cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create { id, name } => {
            let name = name.unwrap_or_else(|| id.clone());
            let t = db.create_tenant(&id, &name).await.map_err(fail)?;
            println!("created tenant {} ({})", t.id, t.name);
        }
        TenantCommand::List => {
            println!("{:<24} {:<32} {:<25} STATUS", "ID", "NAME", "CREATED");
            for t in db.all_tenants().await.map_err(fail)? {
                let status = if t.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<32} {:<25} {status}",
                    t.id,
                    t.name,
                    ms_to_rfc3339(t.created_at)
                );
            }
        }
    }
    Ok(())
}

async fn find_user(db: &AccountsService, email: &str) -> anyhow::Result<UserRow> {
    db.find_user_by_email(email)
        .await
        .map_err(fail)?
        .ok_or_else(|| anyhow::anyhow!("no user with e-mail {email}"))
}

fn scope(u: &UserRow) -> TenantScope {
    TenantScope::new(u.tenant_id.clone())
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(pw)
}

async fn user(db: &AccountsService, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            tenant,
            email,
            role,
            infra,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                (secret::generate_password(), true)
            };
            let u = db
                .create_user(CreateUser {
                    tenant_id: &TenantId::from(tenant),
                    email: &email,
                    role: &role,
                    infra,
                    password: &password,
                })
                .await
                .map_err(fail)?;
            eprintln!(
                "created user {} ({}) in tenant {}",
                u.email, u.role, u.tenant_id
            );
            if generated {
                eprintln!("generated password (shown once):");
                println!("{password}");
            }
        }
        UserCommand::List { tenant } => {
            println!(
                "{:<38} {:<16} {:<32} {:<9} {:<6} STATUS",
                "ID", "TENANT", "EMAIL", "ROLE", "INFRA"
            );
            let tenant = tenant.map(TenantId::from);
            for u in db.list_all_users(tenant.as_ref()).await.map_err(fail)? {
                println!(
                    "{:<38} {:<16} {:<32} {:<9} {:<6} {}",
                    u.id,
                    u.tenant_id,
                    u.email,
                    u.role.as_str(),
                    if u.platform_role.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    if u.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    }
                );
            }
        }
        UserCommand::SetRole { email, role, infra } => {
            let u = find_user(db, &email).await?;
            let infra = infra.unwrap_or(u.platform_role.is_some());
            let u = db
                .set_role(&scope(&u), &u.id, &role, infra)
                .await
                .map_err(fail)?;
            println!(
                "{}: role {}{}",
                u.email,
                u.role,
                if u.platform_role.is_some() {
                    " + infra"
                } else {
                    ""
                }
            );
        }
        UserCommand::Disable { email } => {
            let u = find_user(db, &email).await?;
            db.set_disabled(&scope(&u), &u.id, true)
                .await
                .map_err(fail)?;
            println!("{}: disabled, tokens revoked", u.email);
        }
        UserCommand::Enable { email } => {
            let u = find_user(db, &email).await?;
            db.set_disabled(&scope(&u), &u.id, false)
                .await
                .map_err(fail)?;
            println!("{}: enabled", u.email);
        }
        UserCommand::SetPassword {
            email,
            password_stdin,
        } => {
            let u = find_user(db, &email).await?;
            let (password, generated) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                (secret::generate_password(), true)
            };
            db.set_password(&u, &password).await.map_err(fail)?;
            eprintln!("{}: password changed, existing tokens revoked", u.email);
            if generated {
                eprintln!("generated password (shown once):");
                println!("{password}");
            }
        }
    }
    Ok(())
}

async fn token(db: &AccountsService, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { email, name, ttl } => {
            let u = find_user(db, &email).await?;
            if u.disabled_at.is_some() {
                anyhow::bail!("{} is disabled", u.email);
            }
            let (token, row) = db.issue_api_token(&u, &name, ttl).await.map_err(fail)?;
            eprintln!(
                "created API token {} for {} (expires {}); shown once:",
                row.id,
                u.email,
                row.expires_at.map(ms_to_rfc3339).unwrap_or_default()
            );
            println!("{token}");
        }
        TokenCommand::List { email } => {
            let u = find_user(db, &email).await?;
            println!(
                "{:<38} {:<20} {:<12} {:<25} {:<25} STATUS",
                "ID", "NAME", "HINT", "EXPIRES", "LAST USED"
            );
            for t in db.api_tokens_of(&u).await.map_err(fail)? {
                println!(
                    "{:<38} {:<20} {:<12} {:<25} {:<25} {}",
                    t.id,
                    t.name.unwrap_or_default(),
                    t.token_hint,
                    t.expires_at.map(ms_to_rfc3339).unwrap_or_default(),
                    t.last_used_at
                        .map(ms_to_rfc3339)
                        .unwrap_or_else(|| "never".into()),
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        TokenCommand::Revoke { id } => {
            match db
                .revoke_api_token_anywhere(&TokenId::from(id.as_str()))
                .await
            {
                Ok(true) => println!("revoked {id}"),
                Ok(false) => println!("{id} was already revoked"),
                Err(AccountError::TokenNotFound) => anyhow::bail!("no API token with id {id}"),
                Err(e) => return Err(fail(e)),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- agents

/// The error as the API names it (`CODE: message`), field errors listed.
fn agent_fail(e: AgentError) -> anyhow::Error {
    match e {
        AgentError::Validation(f) => anyhow::anyhow!("{f}"),
        other => {
            let api = crate::http::error::ApiError::from(other);
            anyhow::anyhow!("{}: {}", api.code, api.message)
        }
    }
}

/// An active tenant, or a refusal naming it.
async fn active_tenant(accounts: &AccountsService, tenant: &str) -> anyhow::Result<TenantId> {
    let row = accounts
        .all_tenants()
        .await
        .map_err(fail)?
        .into_iter()
        .find(|t| t.id.as_str() == tenant)
        .ok_or_else(|| anyhow::anyhow!("no tenant {tenant} (see `admin tenant list`)"))?;
    if row.disabled_at.is_some() {
        anyhow::bail!("tenant {tenant} is disabled");
    }
    Ok(row.id)
}

/// The identity of a user, as the API would see them.
fn identity_of(u: &UserRow) -> Identity {
    Identity {
        source: IdentitySource::ApiToken,
        user_id: u.id.clone(),
        email: u.email.clone(),
        tenant_id: u.tenant_id.clone(),
        role: u.role,
        infra: u.is_infra(),
        token_id: None,
    }
}

/// Pairings and revocations record who did them, so the CLI acts as a real
/// person: the tenant's first active admin (by e-mail).
async fn acting_admin(accounts: &AccountsService, tenant: &TenantId) -> anyhow::Result<Identity> {
    accounts
        .list_all_users(Some(tenant))
        .await
        .map_err(fail)?
        .iter()
        .find(|u| u.role == Role::Admin && u.disabled_at.is_none())
        .map(identity_of)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "tenant {tenant} has no active admin for the CLI to act as; create one with \
                 `admin user create --tenant {tenant} --role admin --email …`"
            )
        })
}

/// A tenant-wide read-only view for listing (it records nothing, so it
/// needs no person behind it).
fn lister(tenant: &TenantId) -> Identity {
    Identity {
        source: IdentitySource::ApiToken,
        user_id: UserId::from("admin-cli"),
        email: String::new(),
        tenant_id: tenant.clone(),
        role: Role::Admin,
        infra: false,
        token_id: None,
    }
}

/// The URL agents use: `--public-url`, the configured `public_url`, else
/// the listen address; and the certificate pin when the server makes its
/// own certificate (the same file the server uses, created if missing).
fn pairing_target(
    cfg: &Config,
    public_url: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    let pin = match cfg.tls {
        TlsMode::SelfSigned => Some(crate::tls::self_signed(&cfg.data_dir, &cfg.tls_san)?.sha256),
        _ => None,
    };
    let url = match public_url.or_else(|| cfg.public_url.clone()) {
        Some(u) => {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                anyhow::bail!("--public-url must start with https:// or http://");
            }
            u.trim_end_matches('/').to_string()
        }
        None => {
            let scheme = if cfg.tls == TlsMode::Off {
                "http"
            } else {
                "https"
            };
            eprintln!(
                "note: no public_url configured; agents will connect to {scheme}://{} \
                 (pass --public-url for agents on other machines)",
                cfg.listen
            );
            format!("{scheme}://{}", cfg.listen)
        }
    };
    Ok((url, pin))
}

/// `admin agent …`.
pub async fn agent_cmd(
    accounts: &AccountsService,
    agents: &AgentsService,
    cfg: &Config,
    cmd: AgentCommand,
) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Pair {
            tenant,
            name,
            owner,
            expires_minutes,
            public_url,
        } => {
            let tenant = active_tenant(accounts, &tenant).await?;
            let actor = acting_admin(accounts, &tenant).await?;
            let owner = match owner {
                None => None,
                Some(email) => {
                    let u = find_user(accounts, &email).await?;
                    if u.tenant_id != tenant {
                        anyhow::bail!("{} is not a user of tenant {tenant}", u.email);
                    }
                    if u.disabled_at.is_some() {
                        anyhow::bail!("{} is disabled", u.email);
                    }
                    Some(u)
                }
            };
            let (url, pin) = pairing_target(cfg, public_url)?;
            let p = agents
                .create_pairing(
                    &actor,
                    PairingInput {
                        name: Some(name),
                        expires_in_minutes: expires_minutes,
                        owner_user_id: owner.as_ref().map(|u| u.id.clone()),
                        proxmox: None,
                    },
                    url.clone(),
                    pin,
                )
                .await
                .map_err(agent_fail)?;
            eprintln!(
                "created pairing for agent {} ({}) in tenant {tenant}, owner {}, by {}",
                p.agent.id,
                p.agent.name,
                owner
                    .as_ref()
                    .map_or(actor.email.as_str(), |u| u.email.as_str()),
                actor.email
            );
            println!("agent:   {}", p.agent.id);
            println!("expires: {}", p.pairing_expires_at);
            println!("bundle:  {}", p.pairing_bundle);
            println!("link:    {}", p.pairing_uri);
            println!("console: {url}/console/agents/{}", p.agent.id);
        }
        AgentCommand::List { tenant } => {
            let tenants = match tenant {
                Some(t) => vec![active_tenant(accounts, &t).await?],
                None => accounts
                    .all_tenants()
                    .await
                    .map_err(fail)?
                    .into_iter()
                    .map(|t| t.id)
                    .collect(),
            };
            let emails: std::collections::HashMap<UserId, String> = accounts
                .list_all_users(None)
                .await
                .map_err(fail)?
                .into_iter()
                .map(|u| (u.id, u.email))
                .collect();
            println!(
                "{:<38} {:<16} {:<24} {:<8} {:<11} {:<25} {:<10} OWNER",
                "ID", "TENANT", "NAME", "STATUS", "CONNECTION", "LAST SEEN", "VERSION"
            );
            for t in &tenants {
                let caller = lister(t);
                for page in 1.. {
                    let (params, _) = AGENT_LIST
                        .parse(
                            &format!("page={page}&limit=200&sort=created_at&order=asc"),
                            &[],
                        )
                        .map_err(|f| anyhow::anyhow!("{f}"))?;
                    let found = agents.list(&caller, &params).await.map_err(agent_fail)?;
                    let n = found.items.len();
                    for a in found.items {
                        let owner = a
                            .owner_user_id
                            .as_ref()
                            .map(|o| {
                                emails
                                    .get(&UserId::from(o.as_str()))
                                    .cloned()
                                    .unwrap_or_else(|| o.clone())
                            })
                            .unwrap_or_default();
                        println!(
                            "{:<38} {:<16} {:<24} {:<8} {:<11} {:<25} {:<10} {owner}",
                            a.id,
                            a.tenant_id,
                            a.name,
                            a.status,
                            a.connection,
                            a.last_seen_at.unwrap_or_else(|| "never".into()),
                            a.version.unwrap_or_default(),
                        );
                    }
                    if n < 200 {
                        break;
                    }
                }
            }
        }
        AgentCommand::Revoke { id, tenant, reason } => {
            let agent_id = AgentId::from(id.as_str());
            let tenant = match tenant {
                Some(t) => active_tenant(accounts, &t).await?,
                None => {
                    agents
                        .find_anywhere(&agent_id)
                        .await
                        .map_err(agent_fail)?
                        .ok_or_else(|| anyhow::anyhow!("no agent with id {id}"))?
                        .tenant_id
                }
            };
            let actor = acting_admin(accounts, &tenant).await?;
            let a = agents
                .revoke(&actor, &agent_id, reason)
                .await
                .map_err(agent_fail)?;
            println!(
                "revoked agent {} ({}) in tenant {tenant}; its queued commands are cancelled",
                a.id, a.name
            );
        }
    }
    Ok(())
}
