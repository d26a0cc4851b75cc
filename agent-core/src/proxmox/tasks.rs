//! PVE tasks through the generated `nodes/{node}/tasks/{upid}` sub-clients:
//! status, log tail, and waiting with `exitstatus` checked (`OK` and
//! `WARNINGS: n` succeed, anything else fails with the log tail).

use std::time::{Duration, Instant};

use proxmox_api::nodes::node::tasks::upid::{log, status, UpidClient};
use serde_json::Value;

use super::api_client::pve_json;
use super::{enc, PveApi, PveError};
use crate::retry::{Backoff, RetryPolicy};

/// Node name from `UPID:node:…`.
pub fn upid_node(upid: &str) -> Result<&str, PveError> {
    let mut it = upid.split(':');
    match (it.next(), it.next()) {
        (Some("UPID"), Some(node)) if !node.is_empty() => Ok(node),
        _ => Err(PveError::Config(format!("{upid:?} is not a Proxmox UPID"))),
    }
}

/// `/nodes/{node}/tasks/{upid}`; the node comes from the UPID.
fn task(api: &PveApi, upid: &str) -> Result<UpidClient<PveApi>, PveError> {
    Ok(api.node(upid_node(upid)?).tasks().upid(&enc(upid)))
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
pub async fn task_status(api: &PveApi, upid: &str) -> Result<status::GetOutput, PveError> {
    task(api, upid)?.status().get().await
}

/// A task's status once it stops or `wait` has passed, whichever is first,
/// polling every `interval` (a long poll of the status: the caller gets a
/// still-running task's status back, not an error). `wait` zero: one read.
pub async fn task_status_within(
    api: &PveApi,
    upid: &str,
    wait: Duration,
    interval: Duration,
) -> Result<status::GetOutput, PveError> {
    let start = Instant::now();
    loop {
        let st = task_status(api, upid).await?;
        if st.status == status::Status::Stopped || start.elapsed() + interval > wait {
            return Ok(st);
        }
        tokio::select! {
            _ = api.cancel().cancelled() => return Err(PveError::Cancelled),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// The last `lines` lines of a task log.
pub async fn task_log_tail(
    api: &PveApi,
    upid: &str,
    lines: usize,
) -> Result<Vec<String>, PveError> {
    let params = log::GetParams {
        limit: Some(
            log::LimitInt::try_from(50_000)
                .map_err(|e| PveError::InvalidParams(format!("task log limit: {e}")))?,
        ),
        ..Default::default()
    };
    let all = task(api, upid)?.log().get(params).await?;
    let skip = all.len().saturating_sub(lines);
    Ok(all.into_iter().skip(skip).map(|line| line.t).collect())
}

/// Polls a task every `interval` until it stops. `OK` and `WARNINGS: n`
/// succeed (the result is the final status plus `warnings` and, for
/// warnings, the log lines that say so); anything else fails with the last
/// 20 log lines. A 400/404 right after creation is retried (the task may not
/// be visible yet).
pub async fn wait_task(
    api: &PveApi,
    upid: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<Value, PveError> {
    let start = Instant::now();
    let poll = api.with_retry(RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::new(interval, interval, 0.0),
        max_elapsed: timeout,
        max_retry_after: interval,
    });
    let status_client = task(&poll, upid)?.status();
    loop {
        match status_client.get().await {
            Ok(st) if st.status == status::Status::Stopped => {
                return finish_task(api, upid, st).await
            }
            Ok(_) => {}
            Err(PveError::Api { status, .. })
                if (status == 400 || status == 404)
                    && start.elapsed() < Duration::from_secs(10) => {}
            Err(e) => return Err(e),
        }
        if start.elapsed() + interval > timeout {
            return Err(PveError::TimedOut(format!(
                "Proxmox task {upid} timed out after {}s",
                timeout.as_secs()
            )));
        }
        tokio::select! {
            _ = api.cancel().cancelled() => return Err(PveError::Cancelled),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn finish_task(
    api: &PveApi,
    upid: &str,
    status: status::GetOutput,
) -> Result<Value, PveError> {
    let exit = status.exitstatus.clone().unwrap_or_default();
    let mut out = pve_json(&status)?;
    if exit == "OK" {
        out["warnings"] = Value::from(0);
        return Ok(out);
    }
    if let Some(n) = exit
        .strip_prefix("WARNINGS: ")
        .and_then(|n| n.trim().parse::<u64>().ok())
    {
        let lines = task_log_tail(api, upid, 200).await.unwrap_or_default();
        let warn: Vec<Value> = lines
            .into_iter()
            .filter(|l| l.contains("WARN"))
            .map(Value::from)
            .collect();
        out["warnings"] = Value::from(n);
        out["warning_lines"] = Value::Array(warn);
        return Ok(out);
    }
    let tail = task_log_tail(api, upid, 20)
        .await
        .map(|l| l.join("\n"))
        .unwrap_or_else(|e| format!("(task log unavailable: {e})"));
    Err(PveError::TaskFailed {
        upid: upid.to_string(),
        exitstatus: if exit.is_empty() {
            "unknown".into()
        } else {
            exit
        },
        log_tail: tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_comes_from_the_upid() {
        assert_eq!(
            upid_node("UPID:pve1:0000A1B2:0001:65F0:qmclone:9000:root@pam:").unwrap(),
            "pve1"
        );
        for bad in ["", "UPID::x", "TASK:pve:1", "pve"] {
            assert_eq!(
                upid_node(bad).unwrap_err().code(),
                "PROXMOX_CONFIG_ERROR",
                "{bad}"
            );
        }
    }
}
