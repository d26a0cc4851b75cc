//! The console's templates (askama, `templates/console/`) and the view
//! models they show. Views hold display-ready text: the templates only
//! loop, branch and escape.

use askama::Template;
use botmox_protocol::{Agent, Command};

use crate::db::list::Page;
use crate::domains::bots::service::{ArchiveEntry, Bot, LogEntry};
use crate::domains::finance::service::{DailyStats, GoldPrice, Operation};
use crate::domains::vm_jobs::service::{ItemView, JobSummary};
use crate::domains::vm_jobs::ItemStep;

/// What every signed-in page shares: navigation and who is signed in.
pub struct Layout {
    pub title: String,
    /// The active navigation entry.
    pub nav: &'static str,
    pub email: String,
    /// The tenant role.
    pub role: &'static str,
    /// The platform role of server operators, on top of the tenant role.
    pub infra: bool,
    pub tenant: String,
    pub csrf: String,
    /// `/console/assets/<build-hash>`.
    pub assets: String,
    /// Operator or higher: may pair agents, cancel commands and jobs.
    pub can_operate: bool,
    /// Admin (or infra): may revoke agents.
    pub is_admin: bool,
}

/// `2026-11-30T12:00:01.123Z` → `2026-11-30 12:00:01 UTC`.
pub fn when(rfc3339: &str) -> String {
    let s = rfc3339.split('.').next().unwrap_or(rfc3339);
    let s = s.trim_end_matches('Z').replacen('T', " ", 1);
    format!("{s} UTC")
}

/// `revoked` → `Revoked`.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn when_opt(t: Option<&str>) -> String {
    t.map(when).unwrap_or_else(|| "—".into())
}

/// `CODE: message`, either alone, or nothing.
fn error_text(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(m)) => format!("{code}: {m}"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => String::new(),
    }
}

/// One `<option>` of a filter's `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    /// "Any" first, then each value; `current` is selected.
    pub fn list(values: &[&str], current: &str, any: &str) -> Vec<Choice> {
        std::iter::once(("", any))
            .chain(values.iter().map(|v| (*v, *v)))
            .map(|(value, label)| Choice {
                value: value.into(),
                label: label.replace('_', " "),
                selected: value == current,
            })
            .collect()
    }
}

/// Page links of a list (the list kit's `page`, kept in the URL).
pub struct Pager {
    pub total: i64,
    pub page: u32,
    pub pages: u32,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `link(page)` builds the URL of another page of the same view.
    pub fn new<T>(page: &Page<T>, link: impl Fn(u32) -> String) -> Pager {
        let current = page.page.unwrap_or(1);
        let limit = i64::from(page.limit.max(1));
        let pages = u32::try_from((page.total + limit - 1) / limit)
            .unwrap_or(u32::MAX)
            .max(1);
        Pager {
            total: page.total,
            page: current,
            pages,
            prev: (current > 1).then(|| link(current - 1)),
            next: (current < pages).then(|| link(current + 1)),
        }
    }
}

// ---- sign-in and errors ----

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub assets: String,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
    /// Shown while the first start's password file exists.
    pub first_run_file: Option<String>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ErrorPage {
    pub fn assets(&self) -> String {
        super::assets::base_url()
    }
}

// ---- agents ----

pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub machine: String,
    pub connection: String,
    pub status: String,
    pub last_seen: String,
    pub version: String,
    pub owner: String,
}

impl AgentRow {
    pub fn new(a: &Agent, me: &str) -> AgentRow {
        AgentRow {
            id: a.id.clone(),
            name: if a.name.is_empty() {
                a.machine_name.clone().unwrap_or_else(|| "(unnamed)".into())
            } else {
                a.name.clone()
            },
            machine: a.machine_name.clone().unwrap_or_default(),
            connection: a.connection.clone(),
            status: a.status.clone(),
            last_seen: when_opt(a.last_seen_at.as_deref()),
            version: a.version.clone().unwrap_or_else(|| "—".into()),
            owner: match a.owner_user_id.as_deref() {
                Some(o) if o == me => "you".into(),
                Some(o) => o.into(),
                None => "—".into(),
            },
        }
    }
}

/// One count of the dashboard's agents panel.
pub struct Count {
    pub label: &'static str,
    pub class: &'static str,
    pub n: i64,
    pub href: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
pub struct DashboardPage {
    pub layout: Layout,
    pub agents: Vec<Count>,
    pub agents_total: i64,
    pub jobs: Vec<JobRow>,
    pub failed: Vec<CommandRow>,
    /// License expiry alerts (admins; empty for other roles).
    pub alerts: Vec<super::delivery::LicenseAlert>,
}

#[derive(Template)]
#[template(path = "console/agents.html")]
pub struct AgentsPage {
    pub layout: Layout,
    pub rows: Vec<AgentRow>,
    pub pager: Pager,
    pub q: String,
    pub statuses: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    /// This view's URL (live refresh re-fetches it).
    pub url: String,
}

pub struct Prop {
    pub name: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "console/agent.html")]
pub struct AgentPage {
    pub layout: Layout,
    pub agent: AgentRow,
    pub props: Vec<Prop>,
    pub capabilities: Vec<String>,
    /// Pretty JSON of what the agent reports (targets, host facts).
    pub metadata: Option<String>,
    pub commands: Vec<CommandRow>,
    pub can_revoke: bool,
    pub can_withdraw: bool,
    pub url: String,
}

impl AgentPage {
    pub fn props(a: &Agent) -> Vec<Prop> {
        let mut p = vec![
            Prop {
                name: "Id",
                value: a.id.clone(),
            },
            Prop {
                name: "Machine",
                value: a.machine_name.clone().unwrap_or_else(|| "—".into()),
            },
            Prop {
                name: "Platform",
                value: a.platform.clone().unwrap_or_else(|| "—".into()),
            },
            Prop {
                name: "Version",
                value: a.version.clone().unwrap_or_else(|| "—".into()),
            },
            Prop {
                name: "Owner",
                value: a.owner_user_id.clone().unwrap_or_else(|| "—".into()),
            },
            Prop {
                name: "Created",
                value: when(&a.created_at),
            },
            Prop {
                name: "Paired",
                value: when_opt(a.paired_at.as_deref()),
            },
            Prop {
                name: "Last seen",
                value: when_opt(a.last_seen_at.as_deref()),
            },
        ];
        if let Some(t) = &a.pairing_expires_at {
            p.push(Prop {
                name: "Pairing expires",
                value: when(t),
            });
        }
        if let Some(t) = &a.revoked_at {
            p.push(Prop {
                name: "Revoked",
                value: when(t),
            });
            p.push(Prop {
                name: "Revoke reason",
                value: a.revoke_reason.clone().unwrap_or_else(|| "—".into()),
            });
        }
        p
    }
}

// ---- commands ----

pub struct CommandRow {
    pub id: String,
    pub command_type: String,
    pub status: String,
    pub agent_id: String,
    pub attempt: String,
    pub created: String,
    pub finished: String,
    pub error: String,
}

impl CommandRow {
    pub fn new(c: &Command) -> CommandRow {
        CommandRow {
            id: c.id.clone(),
            command_type: c.command_type.clone(),
            status: c.status.as_str().into(),
            agent_id: c.agent_id.clone(),
            attempt: format!("{}/{}", c.attempt, c.max_attempts),
            created: when(&c.created_at),
            finished: when_opt(c.finished_at.as_deref()),
            error: error_text(c.error_code.as_deref(), c.error_message.as_deref()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/commands.html")]
pub struct CommandsPage {
    pub layout: Layout,
    pub rows: Vec<CommandRow>,
    pub pager: Pager,
    pub q: String,
    pub agent_id: String,
    pub statuses: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
    /// Operator or higher: the dispatch form is shown.
    pub can_dispatch: bool,
    /// The caller's active agents (the dispatch form's picker).
    pub agents: Vec<Choice>,
    /// `proxmox.<action>` and `ssh.<action>`: the server's action lists.
    pub actions: Vec<Choice>,
}

pub struct OutputLine {
    pub seq: i64,
    pub stream: String,
    pub data: String,
}

#[derive(Template)]
#[template(path = "console/command.html")]
pub struct CommandPage {
    pub layout: Layout,
    pub command: CommandRow,
    /// (what, when) in order; only the steps that happened.
    pub timeline: Vec<Prop>,
    pub payload: String,
    pub result: Option<String>,
    pub progress: Option<String>,
    pub output: Vec<OutputLine>,
    pub can_cancel: bool,
    pub cancel_requested: bool,
    /// Still in flight: the page re-reads itself.
    pub live: bool,
    pub url: String,
}

pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

impl CommandPage {
    pub fn timeline(c: &Command) -> Vec<Prop> {
        [
            ("Created", Some(&c.created_at)),
            ("Dispatched", c.dispatched_at.as_ref()),
            ("Started", c.started_at.as_ref()),
            ("Finished", c.finished_at.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, t)| {
            t.map(|t| Prop {
                name,
                value: when(t),
            })
        })
        .collect()
    }
}

// ---- VM jobs ----

pub struct JobRow {
    pub id: String,
    pub status: String,
    pub node: String,
    pub agent_id: String,
    pub items: i64,
    pub created: String,
    pub finished: String,
    pub error: String,
}

impl JobRow {
    pub fn new(j: &JobSummary) -> JobRow {
        JobRow {
            id: j.id.to_string(),
            status: j.status.to_string(),
            node: j.node.clone(),
            agent_id: j.agent_id.clone(),
            items: j.item_count,
            created: when(&j.created_at),
            finished: when_opt(j.finished_at.as_deref()),
            error: error_text(j.error_code.as_deref(), j.error_message.as_deref()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/vm_job_new.html")]
pub struct VmJobNewPage {
    pub layout: Layout,
    /// The caller's active agents.
    pub agents: Vec<Choice>,
    /// Unattend profiles (the caller's default first, selected).
    pub profiles: Vec<Choice>,
    pub playbooks: Vec<Choice>,
    /// Sent with the form: submitting the same rendered form twice (a
    /// double click, a retry after a lost answer) returns the same job.
    pub idempotency_key: String,
}

#[derive(Template)]
#[template(path = "console/vm_jobs.html")]
pub struct VmJobsPage {
    pub can_create: bool,
    pub layout: Layout,
    pub rows: Vec<JobRow>,
    pub pager: Pager,
    pub q: String,
    pub statuses: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

pub struct ItemRow {
    pub index: i64,
    pub name: String,
    /// The VM's SMBIOS uuid once it is registered (empty before): its page
    /// in the VM registry (details and the guest's provisioning steps).
    pub vm_uuid: String,
    pub step: String,
    pub state: String,
    pub attempt: i64,
    pub vmid: String,
    pub ip: String,
    pub progress: String,
    pub error: String,
    pub command_id: String,
    pub failed: bool,
}

impl ItemRow {
    pub fn new(i: &ItemView) -> ItemRow {
        ItemRow {
            index: i.index,
            name: i.name.clone(),
            // registered in the VM registry from `registering` on
            vm_uuid: if matches!(
                i.step,
                ItemStep::Starting | ItemStep::Installing | ItemStep::Detaching | ItemStep::Done
            ) {
                i.vm_uuid.clone()
            } else {
                String::new()
            },
            step: i.step.to_string(),
            state: i.state.replace('_', " "),
            attempt: i.attempt,
            vmid: i.vmid.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
            ip: i.ip.clone().unwrap_or_else(|| "—".into()),
            progress: i.progress.clone().unwrap_or_else(|| "—".into()),
            error: error_text(i.error_code.as_deref(), i.error_message.as_deref()),
            command_id: i.command_id.clone().unwrap_or_default(),
            failed: i.step == crate::domains::vm_jobs::ItemStep::Failed,
        }
    }
}

#[derive(Template)]
#[template(path = "console/vm_job.html")]
pub struct VmJobPage {
    pub layout: Layout,
    pub job: JobRow,
    /// Items per step, e.g. ("done", 2).
    pub counts: Vec<Prop>,
    pub done: i64,
    pub items: Vec<ItemRow>,
    pub can_cancel: bool,
    pub can_retry: bool,
    pub live: bool,
    pub url: String,
}

// ---- not found ----

#[derive(Template)]
#[template(path = "console/not_found.html")]
pub struct NotFoundPage {
    pub layout: Layout,
    pub path: String,
}

// ---- bots ----

/// The ban mechanisms the ban form offers (the API's enum).
pub const BAN_MECHANISMS: &[&str] = &[
    "battlenet_account_closure",
    "battlenet_account_suspension",
    "game_suspension",
    "hardware_ban",
    "ip_ban",
    "other",
];

pub struct BotRow {
    pub id: String,
    pub name: String,
    pub project: String,
    pub status: String,
    pub stage: String,
    pub character: String,
    pub level: String,
    pub updated: String,
}

impl BotRow {
    pub fn new(b: &Bot) -> BotRow {
        let c = &b.character;
        let character = [c.name.as_deref(), c.class.as_deref(), c.server.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ");
        BotRow {
            id: b.id.to_string(),
            name: b.name.clone(),
            project: b.project_id.as_str().replace('_', " "),
            status: b.status.as_str().to_string(),
            stage: b
                .lifecycle
                .current_stage
                .map_or_else(|| "—".into(), |s| s.as_str().to_string()),
            character: if character.is_empty() {
                "—".into()
            } else {
                character
            },
            level: c.level.map_or_else(|| "—".into(), |l| l.to_string()),
            updated: when(&b.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/bots.html")]
pub struct BotsPage {
    pub layout: Layout,
    pub rows: Vec<BotRow>,
    pub pager: Pager,
    pub q: String,
    pub statuses: Vec<Choice>,
    pub projects: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

/// One lifecycle log entry.
/// One archived (banned) bot with its snapshot.
pub struct ArchiveRow {
    pub bot_id: String,
    pub name: String,
    pub project: String,
    pub character: String,
    pub level: String,
    pub archived: String,
    pub ban_date: String,
    pub mechanism: String,
    pub reason: String,
    /// `—` while banned, else when the bot was unbanned.
    pub unbanned: String,
}

impl ArchiveRow {
    pub fn new(a: &ArchiveEntry) -> ArchiveRow {
        let c = &a.snapshot.character;
        let character = [c.name.as_deref(), c.class.as_deref(), c.server.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        ArchiveRow {
            bot_id: a.bot_id.to_string(),
            name: a.name.clone(),
            project: a.snapshot.project_id.as_str().to_string(),
            character: if character.is_empty() {
                "—".into()
            } else {
                character
            },
            level: a
                .snapshot
                .final_level
                .map(|l| l.to_string())
                .unwrap_or_else(|| "—".into()),
            archived: when(&a.archived_at),
            ban_date: a.ban_details.ban_date.clone(),
            mechanism: a.ban_details.ban_mechanism.as_str().replace('_', " "),
            reason: a.ban_details.ban_reason.clone(),
            unbanned: when_opt(a.ban_details.unbanned_at.as_deref()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/bots_archive.html")]
pub struct BotsArchivePage {
    pub layout: Layout,
    pub rows: Vec<ArchiveRow>,
    pub pager: Pager,
    pub q: String,
    pub projects: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
}

pub struct LogRow {
    pub when: String,
    pub kind: String,
    pub message: String,
}

impl LogRow {
    pub fn new(e: &LogEntry) -> LogRow {
        LogRow {
            when: when(&e.timestamp),
            kind: e.kind.as_str().replace('_', " "),
            message: e.message.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/bot.html")]
pub struct BotPage {
    pub layout: Layout,
    pub bot: BotRow,
    pub props: Vec<Prop>,
    /// The current ban, if banned.
    pub ban: Vec<Prop>,
    pub log: Vec<LogRow>,
    pub log_total: i64,
    /// Statuses the transition form offers (not the current one, not `banned`).
    pub targets: Vec<Choice>,
    pub mechanisms: Vec<Choice>,
    /// Operator or higher.
    pub can_act: bool,
    pub banned: bool,
    pub url: String,
}

impl BotPage {
    pub fn props(b: &Bot) -> Vec<Prop> {
        let c = &b.character;
        let text = |v: Option<&str>| v.unwrap_or("—").to_string();
        vec![
            Prop {
                name: "Id",
                value: b.id.to_string(),
            },
            Prop {
                name: "Project",
                value: b.project_id.as_str().replace('_', " "),
            },
            Prop {
                name: "Character",
                value: text(c.name.as_deref()),
            },
            Prop {
                name: "Level",
                value: c.level.map_or_else(|| "—".into(), |l| l.to_string()),
            },
            Prop {
                name: "Class / race",
                value: format!("{} / {}", text(c.class.as_deref()), text(c.race.as_deref())),
            },
            Prop {
                name: "Server",
                value: text(c.server.as_deref()),
            },
            Prop {
                name: "Faction",
                value: c
                    .faction
                    .map_or_else(|| "—".into(), |f| f.as_str().to_string()),
            },
            Prop {
                name: "Status before the ban",
                value: b
                    .lifecycle
                    .previous_status
                    .map_or_else(|| "—".into(), |s| s.as_str().to_string()),
            },
            Prop {
                name: "Created",
                value: when(&b.created_at),
            },
        ]
    }

    pub fn ban(b: &Bot) -> Vec<Prop> {
        match (&b.lifecycle.ban_details, b.status.as_str() == "banned") {
            (Some(d), true) => vec![
                Prop {
                    name: "Ban date",
                    value: d.ban_date.clone(),
                },
                Prop {
                    name: "Mechanism",
                    value: d.ban_mechanism.as_str().replace('_', " "),
                },
                Prop {
                    name: "Reason",
                    value: d.ban_reason.clone(),
                },
            ],
            _ => Vec::new(),
        }
    }
}

// ---- finance ----

pub struct OperationRow {
    pub date: String,
    pub kind: String,
    pub category: String,
    pub amount: String,
    pub description: String,
    pub bot: String,
}

impl OperationRow {
    pub fn new(o: &Operation) -> OperationRow {
        OperationRow {
            date: o.date.get(..10).unwrap_or(&o.date).to_string(),
            kind: o.kind.as_str().to_string(),
            category: o.category.clone(),
            amount: format!("{:.2} {}", o.amount, o.currency.as_str()),
            description: o.description.clone().unwrap_or_default(),
            bot: o.bot_id.clone().unwrap_or_default(),
        }
    }
}

/// One day's bar of the net-profit chart, in SVG user units.
pub struct Bar {
    pub day: String,
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// `gain` (net ≥ 0) or `loss`.
    pub class: &'static str,
    pub title: String,
}

/// A server-drawn bar chart over a window of days (the finance page's net
/// profit and gold price): one bar per day that has a value, at its day's
/// place in the window, up (gain) or down (loss) from the zero line.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    /// The zero line's y.
    pub zero: String,
    pub bars: Vec<Bar>,
    pub from: String,
    pub to: String,
    pub max: String,
}

impl Chart {
    pub const WIDTH: u32 = 720;
    pub const HEIGHT: u32 = 200;
    const PAD: f64 = 10.0;

    /// `days`: the window's length; `first_day`: its first UTC day number;
    /// `stats`: `YYYY-MM-DD` → the day's figures (days without operations
    /// are absent). One bar per day: its net profit.
    pub fn new(
        first_day: i64,
        days: i64,
        stats: &std::collections::BTreeMap<String, DailyStats>,
    ) -> Chart {
        Chart::plot(first_day, days, |day| {
            let d = stats.get(day)?;
            Some((
                d.net_profit,
                format!(
                    "{day}: net {:.2} (revenue {:.2}, expenses {:.2}, {} active bots)",
                    d.net_profit, d.total_revenue, d.total_expenses, d.active_bots
                ),
            ))
        })
    }

    /// The gold price per day (`prices`: `YYYY-MM-DD` → the day's mean
    /// USD price of one gold; days without a sale are absent).
    pub fn gold(
        first_day: i64,
        days: i64,
        prices: &std::collections::BTreeMap<String, GoldPrice>,
    ) -> Chart {
        Chart::plot(first_day, days, |day| {
            let p = prices.get(day)?;
            Some((p.price, format!("{day}: {:.4} USD per gold", p.price)))
        })
    }

    /// One bar per day of the window for which `value(day)` gives a value
    /// and its tooltip, at its day's place, up from the zero line for a
    /// value ≥ 0 (`gain`) and down for a negative one (`loss`).
    fn plot(first_day: i64, days: i64, value: impl Fn(&str) -> Option<(f64, String)>) -> Chart {
        let slot = f64::from(Self::WIDTH) / days.max(1) as f64;
        // The window's days that have a value, at their index in it.
        let shown: Vec<(i64, String, f64, String)> = (0..days)
            .filter_map(|i| {
                let day = crate::domains::finance::service::day_key(first_day + i);
                let (v, title) = value(&day)?;
                Some((i, day, v, title))
            })
            .collect();
        let top = shown
            .iter()
            .map(|(_, _, v, _)| v.max(0.0))
            .fold(0.0_f64, f64::max);
        let bottom = shown
            .iter()
            .map(|(_, _, v, _)| (-v).max(0.0))
            .fold(0.0_f64, f64::max);
        let span = (top + bottom).max(f64::EPSILON);
        let usable = f64::from(Self::HEIGHT) - 2.0 * Self::PAD;
        let zero = Self::PAD + usable * top / span;
        let bars = shown
            .into_iter()
            .map(|(i, day, v, title)| {
                let h = (usable * v.abs() / span).max(1.0);
                let gain = v >= 0.0;
                Bar {
                    x: format!("{:.1}", i as f64 * slot + slot * 0.15),
                    y: format!("{:.1}", if gain { zero - h } else { zero }),
                    width: format!("{:.1}", slot * 0.7),
                    height: format!("{h:.1}"),
                    class: if gain { "gain" } else { "loss" },
                    title,
                    day,
                }
            })
            .collect();
        Chart {
            width: Self::WIDTH,
            height: Self::HEIGHT,
            zero: format!("{zero:.1}"),
            bars,
            from: crate::domains::finance::service::day_key(first_day),
            to: crate::domains::finance::service::day_key(first_day + days - 1),
            max: {
                let m = top.max(bottom);
                if m > 0.0 && m < 1.0 {
                    format!("{m:.4}")
                } else {
                    format!("{m:.2}")
                }
            },
        }
    }
}

#[derive(Template)]
#[template(path = "console/finance.html")]
pub struct FinancePage {
    pub layout: Layout,
    pub rows: Vec<OperationRow>,
    pub pager: Pager,
    pub q: String,
    pub types: Vec<Choice>,
    pub currencies: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
    pub chart: Chart,
    /// The gold price per day over the same window.
    pub gold: Chart,
    /// Today (UTC), the form's default date.
    pub today: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(date: &str, revenue: f64, expenses: f64) -> (String, DailyStats) {
        (
            date.into(),
            DailyStats {
                date: date.into(),
                total_expenses: expenses,
                total_revenue: revenue,
                net_profit: revenue - expenses,
                active_bots: 0,
                total_farmed: Default::default(),
            },
        )
    }

    #[test]
    fn chart_bars_sit_on_their_day_and_scale_to_the_extremes() {
        // Day 20000 is 2024-10-04; a 10-day window.
        let s = [
            stats("2024-10-04", 300.0, 0.0),
            stats("2024-10-08", 0.0, 100.0),
            stats("2024-10-13", 150.0, 0.0),
            stats("2024-10-20", 999.0, 0.0), // outside the window
        ]
        .into_iter()
        .collect();
        let c = Chart::new(20000, 10, &s);
        assert_eq!(
            (c.from.as_str(), c.to.as_str()),
            ("2024-10-04", "2024-10-13")
        );
        let days: Vec<_> = c.bars.iter().map(|b| b.day.as_str()).collect();
        assert_eq!(days, ["2024-10-04", "2024-10-08", "2024-10-13"]);
        // 720 wide / 10 days = 72 per slot, bars 70 % wide and centred.
        let x: Vec<_> = c.bars.iter().map(|b| b.x.as_str()).collect();
        assert_eq!(x, ["10.8", "298.8", "658.8"]);
        assert!(c.bars.iter().all(|b| b.width == "50.4"));
        // 180 usable units for 300 up + 100 down: zero at 10 + 135.
        assert_eq!(c.zero, "145.0");
        let first = &c.bars[0];
        assert_eq!(
            (first.class, first.y.as_str(), first.height.as_str()),
            ("gain", "10.0", "135.0")
        );
        let loss = &c.bars[1];
        assert_eq!(
            (loss.class, loss.y.as_str(), loss.height.as_str()),
            ("loss", "145.0", "45.0")
        );
        assert_eq!(c.bars[2].height, "67.5");
        assert_eq!(c.max, "300.00");
    }

    #[test]
    fn an_empty_window_has_no_bars() {
        let c = Chart::new(20000, 30, &Default::default());
        assert!(c.bars.is_empty());
        assert_eq!(c.to, "2024-11-02");
    }
}
