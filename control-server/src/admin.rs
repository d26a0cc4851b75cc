//! `control-server admin …`: account management straight on the database,
//! usable while the server runs (SQLite WAL / PostgreSQL).

use std::io::BufRead;

use crate::accounts::{self, CreateUser};
use crate::auth::secret;
use crate::cli::{AdminCommand, TenantCommand, TokenCommand, UserCommand};
use crate::db::Db;
use crate::store::tokens;
use crate::store::users::{self, UserRow};
use crate::store::{ms_to_rfc3339, tenants, TenantScope};

pub async fn run(db: &Db, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Tenant { command } => tenant(db, command).await,
        AdminCommand::User { command } => user(db, command).await,
        AdminCommand::Token { command } => token(db, command).await,
    }
}

fn fail(e: accounts::AccountError) -> anyhow::Error {
    match e {
        accounts::AccountError::Invalid(f) => anyhow::anyhow!(
            "{}",
            f.0.iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn tenant(db: &Db, cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create { id, name } => {
            let name = name.unwrap_or_else(|| id.clone());
            let t = accounts::create_tenant(db, &id, &name)
                .await
                .map_err(fail)?;
            println!("created tenant {} ({})", t.id, t.name);
        }
        TenantCommand::List => {
            println!("{:<24} {:<32} {:<25} STATUS", "ID", "NAME", "CREATED");
            for t in tenants::list(db.pool()).await? {
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

async fn find_user(db: &Db, email: &str) -> anyhow::Result<UserRow> {
    let email = accounts::normalize_email(email).map_err(|m| anyhow::anyhow!("email: {m}"))?;
    users::find_by_email(db.pool(), &email)
        .await?
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

async fn user(db: &Db, cmd: UserCommand) -> anyhow::Result<()> {
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
            let u = accounts::create_user(
                db,
                CreateUser {
                    tenant_id: &tenant,
                    email: &email,
                    role: &role,
                    infra,
                    password: &password,
                },
            )
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
            for u in users::list_all(db.pool(), tenant.as_deref()).await? {
                println!(
                    "{:<38} {:<16} {:<32} {:<9} {:<6} {}",
                    u.id,
                    u.tenant_id,
                    u.email,
                    u.role,
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
            let u = accounts::set_role(db, &scope(&u), &u.id, &role, infra)
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
            accounts::set_disabled(db, &scope(&u), &u.id, true)
                .await
                .map_err(fail)?;
            println!("{}: disabled, tokens revoked", u.email);
        }
        UserCommand::Enable { email } => {
            let u = find_user(db, &email).await?;
            accounts::set_disabled(db, &scope(&u), &u.id, false)
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
            accounts::set_password(db, &u, &password)
                .await
                .map_err(fail)?;
            eprintln!("{}: password changed, existing tokens revoked", u.email);
            if generated {
                eprintln!("generated password (shown once):");
                println!("{password}");
            }
        }
    }
    Ok(())
}

async fn token(db: &Db, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { email, name, ttl } => {
            let u = find_user(db, &email).await?;
            if u.disabled_at.is_some() {
                anyhow::bail!("{} is disabled", u.email);
            }
            let (token, row) = accounts::create_api_token(db, &u, &name, ttl)
                .await
                .map_err(fail)?;
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
            for t in tokens::list_for_user(db.pool(), &scope(&u), &u.id, "api").await? {
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
            let Some(tenant) = tokens::tenant_of_api_token(db.pool(), &id).await? else {
                anyhow::bail!("no API token with id {id}");
            };
            if tokens::revoke(db.writer(), &TenantScope::new(tenant), &id).await? {
                println!("revoked {id}");
            } else {
                println!("{id} was already revoked");
            }
        }
    }
    Ok(())
}
