//! `control-server admin …`: account management straight on the database,
//! usable while the server runs (SQLite WAL / PostgreSQL).

use std::io::{BufRead, Read};
use std::sync::Arc;

use botmox_protocol::envelope::Zeroizing;

use crate::auth::secret;
use crate::cli::{AdminCommand, SecretCommand, TenantCommand, TokenCommand, UserCommand};
use crate::config::Config;
use crate::crypto::DataKeys;
use crate::db::ids::{AgentId, TenantId, TokenId};
use crate::db::{ms_to_rfc3339, Db, TenantScope};
use crate::domains::accounts::service::{CreateUser, UserRow};
use crate::domains::accounts::{AccountError, AccountsService};
use crate::domains::agents::AgentsService;
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
    }
}

/// The secrets service the CLI uses (the data key of `cfg.data_dir`, the
/// agents service for the agent's public key), without an HTTP server.
pub fn secrets_service(
    db: &Db,
    cfg: &Config,
    accounts: Arc<AccountsService>,
) -> anyhow::Result<SecretsService> {
    let notifier = Arc::new(Notifier::new(db));
    let events = EventsService::new(db.clone(), notifier.clone());
    let agents = Arc::new(AgentsService::new(
        db.clone(),
        cfg.bus,
        accounts,
        events,
        notifier,
    ));
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
