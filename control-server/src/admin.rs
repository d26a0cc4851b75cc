//! `control-server admin …`: account management straight on the database,
//! usable while the server runs (SQLite WAL / PostgreSQL).

use std::io::BufRead;

use crate::auth::secret;
use crate::cli::{AdminCommand, TenantCommand, TokenCommand, UserCommand};
use crate::db::ids::{TenantId, TokenId};
use crate::db::{ms_to_rfc3339, TenantScope};
use crate::domains::accounts::service::{CreateUser, UserRow};
use crate::domains::accounts::{AccountError, AccountsService};

pub async fn run(db: &AccountsService, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Tenant { command } => tenant(db, command).await,
        AdminCommand::User { command } => user(db, command).await,
        AdminCommand::Token { command } => token(db, command).await,
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
