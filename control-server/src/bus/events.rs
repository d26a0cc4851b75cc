//! Recording timeline events (durable, then a wake-up for SSE streams).

use serde_json::json;

use super::views;
use super::Bus;
use crate::store::agents::AgentRow;
use crate::store::commands::CommandRow;
use crate::store::events::{self, NewEvent};
use crate::store::{now_ms, StoreResult};

impl Bus {
    /// `command.<what>` with the command summary.
    pub async fn command_event(
        &self,
        what: &str,
        row: &CommandRow,
        owner: Option<&str>,
    ) -> StoreResult<()> {
        let data = json!({ "command": views::command_summary(row) }).to_string();
        events::insert(
            self.db.writer(),
            NewEvent {
                tenant_id: &row.tenant_id,
                agent_id: Some(&row.agent_id),
                command_id: Some(&row.id),
                agent_owner_id: owner,
                command_created_by: row.created_by.as_deref(),
                event_type: &format!("command.{what}"),
                data: &data,
                now: now_ms(),
            },
        )
        .await?;
        self.notifier.event_recorded().await;
        Ok(())
    }

    /// `agent.<what>` with the agent view.
    pub async fn agent_event(&self, what: &str, row: &AgentRow) -> StoreResult<()> {
        let now = now_ms();
        let data = json!({ "agent": views::agent(row, now, &self.cfg) }).to_string();
        events::insert(
            self.db.writer(),
            NewEvent {
                tenant_id: &row.tenant_id,
                agent_id: Some(&row.id),
                command_id: None,
                agent_owner_id: row.owner_user_id.as_deref(),
                command_created_by: None,
                event_type: &format!("agent.{what}"),
                data: &data,
                now,
            },
        )
        .await?;
        self.notifier.event_recorded().await;
        Ok(())
    }

    /// The owner of a command's agent (for event visibility).
    pub async fn owner_of(&self, tenant_id: &str, agent_id: &str) -> Option<String> {
        let scope = crate::store::TenantScope::new(tenant_id);
        crate::store::agents::get(self.db.pool(), &scope, agent_id)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.owner_user_id)
    }
}
