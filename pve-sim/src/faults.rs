//! Fault injection: latency, error statuses, lock timeouts, dropped
//! connections and forced task outcomes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a matching request gets instead of normal processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this HTTP status (e.g. 500, 503) and message.
    Status { status: u16, message: String },
    /// Answer 500 `can't lock file '/var/lock/qemu-server/lock-<vmid>.conf' - got timeout`.
    LockTimeout,
    /// Close the connection without any response.
    DropConnection,
}

/// A rule applied to the next `count` matching requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(flatten)]
    pub action: FaultAction,
    /// How many matching requests the rule still applies to.
    pub count: u32,
    /// Only requests with this method (upper case), if set.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path (below `/api2/json`) contains this, if set.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Apply to every n-th matching request only (`5`: 20 % of them,
    /// deterministically); `count` then counts the hits. Default: every one.
    #[serde(default)]
    pub every: Option<u32>,
    /// Matching requests seen so far (for `every`).
    #[serde(default, skip_serializing)]
    pub seen: u32,
}

/// How a task ends, when forced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "value", rename_all = "snake_case")]
pub enum TaskOutcome {
    Ok,
    /// `WARNINGS: n`.
    Warnings(u32),
    /// The task fails with this exit status text.
    Error(String),
}

/// Forces the outcome of the next `count` tasks (optionally of one type,
/// e.g. `qmclone`, `qmstart`, `imgcopy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcomeRule {
    #[serde(flatten)]
    pub outcome: TaskOutcome,
    pub count: u32,
    #[serde(default)]
    pub task_type: Option<String>,
}

#[derive(Debug, Default)]
struct FaultState {
    latency: Duration,
    rules: Vec<FaultRule>,
    task_rules: Vec<TaskOutcomeRule>,
}

/// Shared fault-injection controls.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delay added before every API request is processed.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub fn add_rule(&self, rule: FaultRule) {
        self.lock().rules.push(rule);
    }

    /// The next `count` requests (whose path contains `path_contains`)
    /// answer `status` (e.g. 500 or 503).
    pub fn fail_next(&self, count: u32, status: u16, path_contains: Option<&str>) {
        let message = match status {
            503 => "Service Unavailable".to_string(),
            500 => "Internal Server Error".to_string(),
            other => format!("injected error {other}"),
        };
        self.add_rule(FaultRule {
            action: FaultAction::Status { status, message },
            count,
            method: None,
            path_contains: path_contains.map(str::to_string),
            every: None,
            seen: 0,
        });
    }

    /// The next `count` matching requests fail with a PVE lock timeout.
    pub fn lock_timeout_next(&self, count: u32, path_contains: Option<&str>) {
        self.add_rule(FaultRule {
            action: FaultAction::LockTimeout,
            count,
            method: None,
            path_contains: path_contains.map(str::to_string),
            every: None,
            seen: 0,
        });
    }

    /// Every `every`-th matching request (`count` times) fails with a PVE
    /// lock timeout: `lock_timeout_every(5, 40, Some("/clone"))` makes 20 %
    /// of clone requests hit contention, 40 times at most.
    pub fn lock_timeout_every(&self, every: u32, count: u32, path_contains: Option<&str>) {
        self.add_rule(FaultRule {
            action: FaultAction::LockTimeout,
            count,
            method: None,
            path_contains: path_contains.map(str::to_string),
            every: Some(every.max(1)),
            seen: 0,
        });
    }

    /// The next `count` matching requests get their connection dropped.
    pub fn drop_next(&self, count: u32, path_contains: Option<&str>) {
        self.add_rule(FaultRule {
            action: FaultAction::DropConnection,
            count,
            method: None,
            path_contains: path_contains.map(str::to_string),
            every: None,
            seen: 0,
        });
    }

    /// The next `count` tasks (of `task_type`, if given) end with `outcome`.
    pub fn force_task_outcome(&self, count: u32, task_type: Option<&str>, outcome: TaskOutcome) {
        self.lock().task_rules.push(TaskOutcomeRule {
            outcome,
            count,
            task_type: task_type.map(str::to_string),
        });
    }

    pub fn add_task_rule(&self, rule: TaskOutcomeRule) {
        self.lock().task_rules.push(rule);
    }

    /// Removes all rules and the latency.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    /// Consumes one use of the first rule matching the request.
    pub(crate) fn take_request_fault(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut st = self.lock();
        let mut hit = None;
        for (i, r) in st.rules.iter_mut().enumerate() {
            let matches = r.count > 0
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && r.path_contains.as_deref().is_none_or(|p| path.contains(p));
            if !matches {
                continue;
            }
            if let Some(every) = r.every.filter(|e| *e > 1) {
                r.seen += 1;
                if r.seen % every != 0 {
                    continue;
                }
            }
            hit = Some(i);
            break;
        }
        let idx = hit?;
        let rule = &mut st.rules[idx];
        rule.count -= 1;
        let action = rule.action.clone();
        if rule.count == 0 {
            st.rules.remove(idx);
        }
        Some(action)
    }

    /// Consumes one use of the first task rule matching `task_type`.
    pub(crate) fn take_task_outcome(&self, task_type: &str) -> Option<TaskOutcome> {
        let mut st = self.lock();
        let idx = st
            .task_rules
            .iter()
            .position(|r| r.count > 0 && r.task_type.as_deref().is_none_or(|t| t == task_type))?;
        let rule = &mut st.task_rules[idx];
        rule.count -= 1;
        let outcome = rule.outcome.clone();
        if rule.count == 0 {
            st.task_rules.remove(idx);
        }
        Some(outcome)
    }
}

/// PVE's lock-timeout message for a request path.
pub fn lock_timeout_message(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let file = match segs.as_slice() {
        ["nodes", _, "qemu", vmid, ..] => format!("/var/lock/qemu-server/lock-{vmid}.conf"),
        ["nodes", _, "storage", storage, ..] => {
            format!("/var/lock/pve-manager/pve-storage-{storage}")
        }
        _ => "/var/lock/pve-manager/pve-config.lck".to_string(),
    };
    format!("can't lock file '{file}' - got timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed_in_order() {
        let f = Faults::default();
        f.fail_next(2, 503, Some("/qemu"));
        assert!(f.take_request_fault("GET", "/version").is_none());
        assert!(matches!(
            f.take_request_fault("GET", "/nodes/pve/qemu"),
            Some(FaultAction::Status { status: 503, .. })
        ));
        assert!(f.take_request_fault("GET", "/nodes/pve/qemu").is_some());
        assert!(f.take_request_fault("GET", "/nodes/pve/qemu").is_none());
        let rule: TaskOutcomeRule = serde_json::from_str(
            r#"{"outcome":"warnings","value":2,"count":1,"task_type":"qmclone"}"#,
        )
        .expect("flattened outcome");
        assert_eq!(rule.outcome, TaskOutcome::Warnings(2));
        let rule: FaultRule = serde_json::from_str(
            r#"{"action":"lock_timeout","count":3,"path_contains":"/qemu/101"}"#,
        )
        .expect("fault rule");
        assert_eq!(rule.action, FaultAction::LockTimeout);
        // every 3rd matching request, twice
        f.lock_timeout_every(3, 2, Some("/clone"));
        let hits: Vec<bool> = (0..9)
            .map(|_| {
                f.take_request_fault("POST", "/nodes/pve/qemu/9000/clone")
                    .is_some()
            })
            .collect();
        assert_eq!(
            hits,
            [false, false, true, false, false, true, false, false, false]
        );
        assert_eq!(
            lock_timeout_message("/nodes/pve/qemu/101/config"),
            "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout"
        );
    }
}
