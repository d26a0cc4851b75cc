//! The console's pages: extract the signed-in user and the view's query,
//! call domain services, render. Lists take the list kit's query
//! parameters from the page's own URL, so every view is a link.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::views::{
    AgentPage, AgentRow, AgentsPage, ArchiveRow, BotPage, BotRow, BotsArchivePage, BotsPage, Chart,
    Choice, CommandPage, CommandRow, CommandsPage, Count, DashboardPage, FinancePage, ItemRow,
    JobRow, LogRow, NotFoundPage, OperationRow, OutputLine, Pager, Prop, VmJobNewPage, VmJobPage,
    VmJobsPage, BAN_MECHANISMS,
};
use super::{render, ConsoleError, ConsoleUser};
use crate::auth::Role;
use crate::db::ids::{AgentId, BotId, CommandId, VmJobId};
use crate::db::list::{ListParams, ListSpec};
use crate::db::now_ms;
use crate::domains::agents::store::AGENT_LIST;
use crate::domains::agents::Caller;
use crate::domains::bots::store::{
    BotStatus, ARCHIVE_LIST, BOT_LIST, LOG_LIST, PROJECT_NAMES, STATUS_NAMES,
};
use crate::domains::commands::service::command_view;
use crate::domains::commands::service::{PROXMOX_ACTIONS, SSH_ACTIONS};
use crate::domains::commands::store::COMMAND_LIST;
use crate::domains::finance::service::day_key;
use crate::domains::finance::store::OPERATION_LIST;
use crate::domains::provisioning::store::PLAYBOOK_LIST;
use crate::domains::unattend::store::PROFILE_LIST;
use crate::domains::vm_jobs::store::JOB_LIST;
use crate::state::AppState;

pub(super) type PageResult = Result<Html<String>, ConsoleError>;

/// The query's value of `key` ("" when absent).
pub(super) fn param(raw: &str, key: &str) -> String {
    form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The same query with `key` set to `value` (pagination links).
pub(super) fn with_param(raw: &str, key: &str, value: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.as_bytes()).filter(|(k, _)| k != key) {
        out.append_pair(&k, &v);
    }
    out.append_pair(key, value);
    out.finish()
}

/// Are any of these filters set?
pub(super) fn any_of(raw: &str, keys: &[&str]) -> bool {
    keys.iter().any(|k| !param(raw, k).is_empty())
}

/// Parse a view's query with the list kit (empty values mean "any").
pub(super) fn list_params(spec: &'static ListSpec, raw: &str) -> Result<ListParams, ConsoleError> {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.as_bytes()).filter(|(_, v)| !v.is_empty()) {
        kept.append_pair(&k, &v);
    }
    Ok(spec.parse(&kept.finish(), &[])?.0)
}

pub(super) fn url(path: &str, raw: &str) -> String {
    if raw.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{raw}")
    }
}

/// `GET /console`: agents by connection state, running VM jobs, recent
/// failed commands, license expiry alerts (admins).
pub async fn dashboard(State(state): State<AppState>, user: ConsoleUser) -> PageResult {
    let me = &user.identity;
    // Connection states as `agents::service::connection_state` computes
    // them, counted by the list kit in SQL (`total` of a one-row page).
    let bus = state.agents.config();
    let now = now_ms();
    let online_since = now - 2 * bus.heartbeat_interval_s as i64 * 1000;
    let offline_before = now - bus.offline_after_s as i64 * 1000;
    let count = |query: String| {
        let state = state.clone();
        async move {
            let params = list_params(&AGENT_LIST, &format!("{query}&limit=1"))?;
            Ok::<i64, ConsoleError>(state.agents.list(me, &params).await?.total)
        }
    };
    let online = count(format!("status=active&last_seen_at_gte={online_since}")).await?;
    let seen = count(format!("status=active&last_seen_at_gte={offline_before}")).await?;
    let active = count("status=active".into()).await?;
    let pending = count("status=pending".into()).await?;
    let revoked = count("status=revoked".into()).await?;
    let agents = vec![
        Count {
            label: "Online",
            class: "online",
            n: online,
            href: "/console/agents?status=active&sort=last_seen_at&order=desc".into(),
        },
        Count {
            label: "Unreachable",
            class: "unreachable",
            n: (seen - online).max(0),
            href: "/console/agents?status=active&sort=last_seen_at&order=desc".into(),
        },
        Count {
            label: "Offline",
            class: "offline",
            n: (active - seen).max(0),
            href: "/console/agents?status=active&sort=last_seen_at&order=asc".into(),
        },
        Count {
            label: "Pending pairing",
            class: "pending",
            n: pending,
            href: "/console/agents?status=pending".into(),
        },
        Count {
            label: "Revoked",
            class: "revoked",
            n: revoked,
            href: "/console/agents?status=revoked".into(),
        },
    ];
    let jobs_q = list_params(
        &JOB_LIST,
        "status_in=pending,running&sort=created_at&order=desc&limit=10",
    )?;
    let jobs = state.vm_jobs.list(me, &jobs_q).await?;
    let failed_q = list_params(
        &COMMAND_LIST,
        "status_in=failed,expired&sort=finished_at&order=desc&limit=10",
    )?;
    let failed = state
        .commands
        .list(&Caller::User(me.clone()), &failed_q)
        .await?;
    let alerts = super::delivery::license_alerts(&state, me).await?;
    render(&DashboardPage {
        alerts,
        layout: user.layout("dashboard", "Dashboard"),
        agents,
        agents_total: active + pending + revoked,
        jobs: jobs.items.iter().map(JobRow::new).collect(),
        failed: failed
            .items
            .iter()
            .map(|r| CommandRow::new(&command_view(r)))
            .collect(),
    })
}

/// `GET /console/agents`: the list kit's filters in the URL.
pub async fn agents(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&AGENT_LIST, &raw)?;
    let page = state.agents.list(&user.identity, &params).await?;
    let me = user.identity.user_id.to_string();
    render(&AgentsPage {
        layout: user.layout("agents", "Agents"),
        rows: page.items.iter().map(|a| AgentRow::new(a, &me)).collect(),
        pager: Pager::new(&page, |p| {
            url("/console/agents", &with_param(&raw, "page", &p.to_string()))
        }),
        q: param(&raw, "q"),
        statuses: Choice::list(
            &["pending", "active", "revoked"],
            &param(&raw, "status"),
            "Any status",
        ),
        sorts: Choice::list(
            &["name", "last_seen_at", "status", "machine_name"],
            &param(&raw, "sort"),
            "Newest",
        ),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "status"]),
        url: url("/console/agents", &raw),
    })
}

/// `GET /console/agents/{id}`: metadata, what it reports, recent commands.
pub async fn agent(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let me = &user.identity;
    let a = state.agents.get_view(me, &AgentId::from(id)).await?;
    let recent = list_params(
        &COMMAND_LIST,
        &format!(
            "{}&sort=created_at&order=desc&limit=10",
            with_param("", "agent_id", &a.id)
        ),
    )?;
    let commands = state
        .commands
        .list(&Caller::User(me.clone()), &recent)
        .await?;
    render(&AgentPage {
        agent: AgentRow::new(&a, me.user_id.as_str()),
        props: AgentPage::props(&a),
        capabilities: a.capabilities.clone(),
        metadata: a.metadata.as_ref().map(super::views::pretty),
        commands: commands
            .items
            .iter()
            .map(|r| CommandRow::new(&command_view(r)))
            .collect(),
        can_revoke: me.has(Role::Admin) && a.status != "revoked",
        can_withdraw: me.has(Role::Operator) && a.status == "pending",
        url: format!("/console/agents/{}", a.id),
        layout: user.layout("agents", format!("Agent {}", a.name)),
    })
}

/// `GET /console/commands`.
pub async fn commands(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&COMMAND_LIST, &raw)?;
    let page = state
        .commands
        .list(&Caller::User(user.identity.clone()), &params)
        .await?;
    let statuses: Vec<&str> = botmox_protocol::CommandStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    render(&CommandsPage {
        layout: user.layout("commands", "Commands"),
        rows: page
            .items
            .iter()
            .map(|r| CommandRow::new(&command_view(r)))
            .collect(),
        pager: Pager::new(&page, |p| {
            url(
                "/console/commands",
                &with_param(&raw, "page", &p.to_string()),
            )
        }),
        q: param(&raw, "q"),
        agent_id: param(&raw, "agent_id"),
        statuses: Choice::list(&statuses, &param(&raw, "status"), "Any status"),
        filtered: any_of(&raw, &["q", "status", "agent_id"]),
        url: url("/console/commands", &raw),
        can_dispatch: user.identity.has(Role::Operator),
        agents: if user.identity.has(Role::Operator) {
            active_agents(&state, &user).await?
        } else {
            Vec::new()
        },
        actions: PROXMOX_ACTIONS
            .iter()
            .map(|a| format!("proxmox.{a}"))
            .chain(SSH_ACTIONS.iter().map(|a| format!("ssh.{a}")))
            .map(|t| Choice {
                selected: t == "proxmox.status",
                label: t.clone(),
                value: t,
            })
            .collect(),
    })
}

/// How many agents, profiles and playbooks a form's picker offers.
const PICKER_ROWS: u32 = 200;

/// The caller's active agents by name: the pickers of the dispatch form
/// and the VM-job wizard (the API refuses agents the caller may not use).
async fn active_agents(state: &AppState, user: &ConsoleUser) -> Result<Vec<Choice>, ConsoleError> {
    let q = list_params(
        &AGENT_LIST,
        &format!("status=active&sort=name&order=asc&limit={PICKER_ROWS}"),
    )?;
    let page = state.agents.list(&user.identity, &q).await?;
    let me = user.identity.user_id.as_str();
    Ok(page
        .items
        .iter()
        .filter(|a| user.identity.has(Role::Admin) || a.owner_user_id.as_deref() == Some(me))
        .map(|a| Choice {
            value: a.id.clone(),
            label: format!(
                "{} ({})",
                a.name,
                a.machine_name.as_deref().unwrap_or("not registered")
            ),
            selected: false,
        })
        .collect())
}

/// `GET /console/vm-jobs/new`: the create form, in the order of the
/// job's steps; it posts to `POST /api/v1/vm-jobs`, whose validation
/// errors land on the fields.
pub async fn vm_job_new(State(state): State<AppState>, user: ConsoleUser) -> PageResult {
    let me = &user.identity;
    me.require(Role::Operator)?;
    let profiles_q = list_params(
        &PROFILE_LIST,
        &format!("sort=name&order=asc&limit={PICKER_ROWS}"),
    )?;
    let mut profiles = state.unattend.list(me, &profiles_q).await?.items;
    // the caller's default profile first: it is the one selected
    profiles.sort_by_key(|p| !(p.is_default && p.owner_user_id == me.user_id.as_str()));
    let playbooks_q = list_params(
        &PLAYBOOK_LIST,
        &format!("sort=name&order=asc&limit={PICKER_ROWS}"),
    )?;
    let playbooks = state.provisioning.list_playbooks(me, &playbooks_q).await?;
    render(&VmJobNewPage {
        agents: active_agents(&state, &user).await?,
        profiles: profiles
            .iter()
            .enumerate()
            .map(|(i, p)| Choice {
                value: p.id.to_string(),
                label: if p.is_default {
                    format!("{} (default)", p.name)
                } else {
                    p.name.clone()
                },
                selected: i == 0,
            })
            .collect(),
        playbooks: std::iter::once(Choice {
            value: String::new(),
            label: "No playbook".into(),
            selected: true,
        })
        .chain(playbooks.items.iter().map(|p| Choice {
            value: p.id.to_string(),
            label: p.name.clone(),
            selected: false,
        }))
        .collect(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        layout: user.layout("vm-jobs", "New VM job"),
    })
}

/// `GET /console/commands/{id}`: status timeline, payload, result, output.
pub async fn command(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let caller = Caller::User(user.identity.clone());
    let id = CommandId::from(id);
    let row = state.commands.visible_command(&caller, &id).await?;
    let c = command_view(&row);
    let output = state.commands.read_output(&caller, &id, 0, 500).await?;
    let live = !c.status.is_terminal();
    render(&CommandPage {
        timeline: CommandPage::timeline(&c),
        payload: super::views::pretty(&c.payload),
        result: c.result.as_ref().map(super::views::pretty),
        progress: c.progress.as_ref().map(super::views::pretty),
        output: output
            .into_iter()
            .map(|o| OutputLine {
                seq: o.seq,
                stream: o.stream,
                data: o.data,
            })
            .collect(),
        can_cancel: user.identity.has(Role::Operator) && live && !c.cancel_requested,
        cancel_requested: c.cancel_requested,
        live,
        url: format!("/console/commands/{}", c.id),
        command: CommandRow::new(&c),
        layout: user.layout("commands", format!("Command {}", c.command_type)),
    })
}

/// `GET /console/vm-jobs`.
pub async fn vm_jobs(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&JOB_LIST, &raw)?;
    let page = state.vm_jobs.list(&user.identity, &params).await?;
    render(&VmJobsPage {
        can_create: user.identity.has(Role::Operator),
        layout: user.layout("vm-jobs", "VM jobs"),
        rows: page.items.iter().map(JobRow::new).collect(),
        pager: Pager::new(&page, |p| {
            url(
                "/console/vm-jobs",
                &with_param(&raw, "page", &p.to_string()),
            )
        }),
        q: param(&raw, "q"),
        statuses: Choice::list(
            &["pending", "running", "completed", "failed", "cancelled"],
            &param(&raw, "status"),
            "Any status",
        ),
        filtered: any_of(&raw, &["q", "status"]),
        url: url("/console/vm-jobs", &raw),
    })
}

/// `GET /console/vm-jobs/{id}`: the per-VM table of steps.
pub async fn vm_job(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let view = state
        .vm_jobs
        .get(&user.identity, &VmJobId::from(id))
        .await?;
    let live = !view.job.status.is_final();
    let operator = user.identity.has(Role::Operator);
    render(&VmJobPage {
        counts: view
            .counts
            .iter()
            .map(|(step, n)| Prop {
                name: "",
                value: format!("{}: {n}", step.replace('_', " ")),
            })
            .collect(),
        done: view.counts.get("done").copied().unwrap_or(0),
        items: view.items.iter().map(ItemRow::new).collect(),
        can_cancel: operator && live,
        can_retry: operator && view.job.status != crate::domains::vm_jobs::JobStatus::Cancelled,
        live,
        url: format!("/console/vm-jobs/{}", view.job.id),
        job: JobRow::new(&view.job),
        layout: user.layout("vm-jobs", "VM job"),
    })
}

/// `GET /console/bots`: the list kit's filters in the URL.
pub async fn bots(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&BOT_LIST, &raw)?;
    let page = state.bots.list(&user.identity, &params).await?;
    render(&BotsPage {
        layout: user.layout("bots", "Bots"),
        rows: page.items.iter().map(BotRow::new).collect(),
        pager: Pager::new(&page, |p| {
            url("/console/bots", &with_param(&raw, "page", &p.to_string()))
        }),
        q: param(&raw, "q"),
        statuses: Choice::list(STATUS_NAMES, &param(&raw, "status"), "Any status"),
        projects: Choice::list(PROJECT_NAMES, &param(&raw, "project_id"), "Any project"),
        sorts: Choice::list(
            &[
                "name",
                "status",
                "current_stage",
                "character_level",
                "updated_at",
            ],
            &param(&raw, "sort"),
            "Newest",
        ),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "status", "project_id"]),
        url: url("/console/bots", &raw),
    })
}

/// `GET /console/bots/archive`: banned bots' archive snapshots (list kit
/// in the URL), newest first.
pub async fn bots_archive(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&ARCHIVE_LIST, &raw)?;
    let page = state.bots.archive(&user.identity, &params).await?;
    render(&BotsArchivePage {
        layout: user.layout("bots", "Bot archive"),
        rows: page.items.iter().map(ArchiveRow::new).collect(),
        pager: Pager::new(&page, |p| {
            url(
                "/console/bots/archive",
                &with_param(&raw, "page", &p.to_string()),
            )
        }),
        q: param(&raw, "q"),
        projects: Choice::list(PROJECT_NAMES, &param(&raw, "project_id"), "Any project"),
        sorts: Choice::list(
            &["archived_at", "name", "character_name", "project_id"],
            &param(&raw, "sort"),
            "Newest",
        ),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "project_id"]),
    })
}

/// Options of a form's `<select>` without an "any" entry.
pub(super) fn options(values: impl IntoIterator<Item = &'static str>) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            value: v.into(),
            label: v.replace('_', " "),
            selected: false,
        })
        .collect()
}

/// How many lifecycle log entries a bot's page shows.
const BOT_LOG_ROWS: u32 = 50;

/// `GET /console/bots/{id}`: details, ban, lifecycle log and actions.
pub async fn bot(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let me = &user.identity;
    let b = state.bots.get(me, &BotId::from(id)).await?;
    let log_q = list_params(&LOG_LIST, &format!("limit={BOT_LOG_ROWS}"))?;
    let log = state.bots.log(me, &b.id, &log_q).await?;
    let banned = b.status == BotStatus::Banned;
    render(&BotPage {
        props: BotPage::props(&b),
        ban: BotPage::ban(&b),
        log: log.items.iter().map(LogRow::new).collect(),
        log_total: log.total,
        targets: options(
            STATUS_NAMES
                .iter()
                .copied()
                .filter(|s| *s != "banned" && *s != b.status.as_str()),
        ),
        mechanisms: options(BAN_MECHANISMS.iter().copied()),
        can_act: me.has(Role::Operator),
        banned,
        url: format!("/console/bots/{}", b.id),
        bot: BotRow::new(&b),
        layout: user.layout("bots", format!("Bot {}", b.name)),
    })
}

/// The finance chart's window: the last 30 UTC days, today included.
const CHART_DAYS: i64 = 30;

/// `GET /console/finance`: the daily net-profit and gold-price charts, the
/// operations (list kit in the URL) and the create form.
pub async fn finance(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let me = &user.identity;
    let raw = q.unwrap_or_default();
    let params = list_params(&OPERATION_LIST, &raw)?;
    let page = state.finance.list(me, &params).await?;
    let today = now_ms().div_euclid(86_400_000);
    let first = today - (CHART_DAYS - 1);
    let stats = state
        .finance
        .daily_stats(me, first * 86_400_000, (today + 1) * 86_400_000)
        .await?;
    let prices = state
        .finance
        .gold_price_history(me, first * 86_400_000, (today + 1) * 86_400_000)
        .await?;
    render(&FinancePage {
        layout: user.layout("finance", "Finance"),
        rows: page.items.iter().map(OperationRow::new).collect(),
        pager: Pager::new(&page, |p| {
            url(
                "/console/finance",
                &with_param(&raw, "page", &p.to_string()),
            )
        }),
        q: param(&raw, "q"),
        types: Choice::list(&["income", "expense"], &param(&raw, "type"), "Any type"),
        currencies: Choice::list(&["USD", "gold"], &param(&raw, "currency"), "Any currency"),
        sorts: Choice::list(
            &["date", "category", "type", "created_at"],
            &param(&raw, "sort"),
            "Newest date",
        ),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "type", "currency"]),
        url: url("/console/finance", &raw),
        chart: Chart::new(first, CHART_DAYS, &stats),
        gold: Chart::gold(first, CHART_DAYS, &prices),
        today: day_key(today),
    })
}

/// Any other `/console/…` path.
pub async fn not_found(user: ConsoleUser, uri: axum::http::Uri) -> Response {
    let page = NotFoundPage {
        layout: user.layout("", "Not found"),
        path: uri.path().to_string(),
    };
    match render(&page) {
        Ok(html) => (StatusCode::NOT_FOUND, html).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_helpers() {
        assert_eq!(param("q=a+b&status=", "q"), "a b");
        assert_eq!(param("q=a", "status"), "");
        assert_eq!(with_param("q=x&page=2", "page", "3"), "q=x&page=3");
        assert_eq!(with_param("", "agent_id", "a&b"), "agent_id=a%26b");
        assert!(any_of("status=active", &["q", "status"]));
        assert!(!any_of("status=&q=", &["q", "status"]));
        assert_eq!(url("/console/agents", ""), "/console/agents");
    }

    #[test]
    fn empty_filters_mean_any() {
        let p = list_params(&AGENT_LIST, "status=&q=&sort=&order=").unwrap();
        assert!(p.filters.is_empty());
        assert!(list_params(&AGENT_LIST, "sort=bogus").is_err());
    }
}
