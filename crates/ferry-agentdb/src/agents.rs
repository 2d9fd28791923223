//! Agents (`agents.json` members) and their status (`<agent>/status.json`).

use serde_json::Value;

use crate::backend::{Kind, Sql, Tx, Val};
use crate::db::{now_text, AgentDb};
use crate::error::{AgentDbError, OpResult, Result};
use crate::jsontext::{quote, set_member, ObjectText};
use crate::layout::{check_agent_id, check_text};
use crate::model::{
    select_list, Agent, AgentStatus, Col, NewAgent, StatusUpdate, AGENT_COLS, STATUS_COLS,
};

impl AgentDb {
    /// Registers an agent: a new member of `agent_workspaces/agents.json`. An agent known
    /// only from its workspace folder (a placeholder row of the import) is adopted; an agent
    /// already in a file is refused.
    pub async fn register_agent(&self, agent: &NewAgent) -> Result<Agent> {
        check_agent_id(&agent.agent_id)?;
        for (field, v) in [
            ("display_name", &agent.display_name),
            ("role", &agent.role),
            ("status", &agent.status),
        ] {
            if let Some(v) = v {
                check_text(field, v)?;
            }
        }
        self.run("register_agent", &agent.agent_id, move || {
            self.register_tx(agent)
        })
        .await
    }

    async fn register_tx(&self, a: &NewAgent) -> OpResult<Agent> {
        let mut tx = self.pool.begin_write().await?;
        let path = self.layout.agents_file();
        self.lock_file(&mut tx, &path).await?;
        let mut q = self.sql();
        q.push("SELECT source_path FROM agents WHERE agent_id = ")
            .bind(Val::text(&a.agent_id));
        let existing = tx.fetch_optional(&q, &[Kind::Text]).await?;
        if let Some(Some(source_path)) = existing.clone().map(|mut r| r.remove(0).into_text()) {
            return Err(AgentDbError::AgentExists {
                agent_id: a.agent_id.clone(),
                source_path,
            }
            .into());
        }
        let mut q = self.sql();
        q.push("SELECT COALESCE(MAX(source_record) + 1, 0) FROM agents WHERE source_path = ")
            .bind(Val::text(&path));
        let record = tx
            .fetch_optional(&q, &[Kind::Int])
            .await?
            .and_then(|mut r| r.remove(0).into_int())
            .unwrap_or(0);
        let mut doc = ObjectText::new();
        doc.string("agent_id", &a.agent_id)
            .opt_string("display_name", a.display_name.as_deref())
            .opt_string("role", a.role.as_deref())
            .opt_string("status", a.status.as_deref());
        if let Some(c) = &a.capabilities {
            doc.value("capabilities", c);
        }
        doc.string("registered_at", &now_text());
        let text = doc.compact();
        let (stored, value) = self
            .store_json(&mut tx, "agents", &a.agent_id, text)
            .await?;
        let mut cols = self.mapper.agent(&a.agent_id, &value);
        cols.extend(stored.json_cols(&path, Some(record)));
        let q = if existing.is_some() {
            self.update("agents", &cols, "agent_id", &a.agent_id)
        } else {
            self.insert("agents", &cols)
        };
        tx.execute(&q).await?;
        let agent = self.fetch_agent(&mut tx, &a.agent_id).await?;
        tx.commit().await?;
        agent.ok_or_else(|| AgentDbError::AgentNotFound(a.agent_id.clone()).into())
    }

    async fn fetch_agent(&self, tx: &mut Tx, id: &str) -> OpResult<Option<Agent>> {
        let (mut q, kinds) = self.select(AGENT_COLS, "agents WHERE agent_id = ");
        q.bind(Val::text(id));
        match tx.fetch_optional(&q, &kinds).await? {
            Some(vals) => Ok(Some(Agent::from_vals(vals)?)),
            None => Ok(None),
        }
    }

    /// One agent, registered or known from its workspace folder.
    pub async fn get_agent(&self, agent_id: &str) -> Result<Option<Agent>> {
        self.run("get_agent", agent_id, move || async move {
            let (mut q, kinds) = self.select(AGENT_COLS, "agents WHERE agent_id = ");
            q.bind(Val::text(agent_id));
            match self.pool.fetch_optional(&q, &kinds).await? {
                Some(vals) => Ok(Some(Agent::from_vals(vals)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Every agent, by id.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        self.run("list_agents", "", move || async move {
            let (q, kinds) = self.select(AGENT_COLS, "agents ORDER BY agent_id");
            let rows = self.pool.fetch(&q, &kinds).await?;
            Ok(rows
                .into_iter()
                .map(Agent::from_vals)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    /// The agent's `status.json` as its row holds it.
    pub async fn get_agent_status(&self, agent_id: &str) -> Result<Option<AgentStatus>> {
        self.run("get_agent_status", agent_id, move || async move {
            let (mut q, kinds) = self.select(STATUS_COLS, "agent_status WHERE agent_id = ");
            q.bind(Val::text(agent_id));
            match self.pool.fetch_optional(&q, &kinds).await? {
                Some(vals) => Ok(Some(AgentStatus::from_vals(vals)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Sets the agent's status (and current task, performance) in its `status.json`: the
    /// members the import reads are set in the document's text, every other byte stays; a
    /// new `status.json` is written when the agent has none.
    pub async fn update_agent_status(
        &self,
        agent_id: &str,
        update: &StatusUpdate,
    ) -> Result<AgentStatus> {
        check_agent_id(agent_id)?;
        check_text("status", &update.status)?;
        if let Some(t) = &update.current_task {
            check_text("current_task", t)?;
        }
        self.run("update_agent_status", agent_id, move || {
            self.update_status_tx(agent_id, update)
        })
        .await
    }

    async fn update_status_tx(&self, agent_id: &str, u: &StatusUpdate) -> OpResult<AgentStatus> {
        let mut tx = self.pool.begin_write().await?;
        self.require_agent(&mut tx, agent_id).await?;
        let (mut q, kinds) = self.select(
            &[
                Col::Text("source_path"),
                Col::Json("doc"),
                Col::Text("doc_snapshot"),
            ],
            "agent_status WHERE agent_id = ",
        );
        q.bind(Val::text(agent_id));
        let existing = tx.fetch_optional(&q, &kinds).await?;
        let now = now_text();
        let (path, text) = match existing {
            Some(row) => {
                let mut row = row.into_iter();
                let path = row.next().and_then(Val::into_text).unwrap_or_default();
                self.lock_file(&mut tx, &path).await?;
                let doc = row.next().and_then(Val::into_text);
                let snapshot = row.next().and_then(Val::into_text);
                let text = self.docs.load("agent_status", agent_id, doc, snapshot)?;
                let value: Value = serde_json::from_str(&text)
                    .map_err(|e| AgentDbError::bad_doc("agent_status", agent_id, e))?;
                let mut edits = vec![("status".to_owned(), quote(&u.status))];
                if let Some(t) = &u.current_task {
                    edits.push(("current_task".to_owned(), quote(t)));
                }
                if let Some(p) = &u.performance {
                    let key = present_key(&value, &["performance_metrics", "performance"])
                        .unwrap_or("performance_metrics");
                    edits.push((key.to_owned(), p.to_string()));
                }
                let key = present_key(&value, &["last_update", "last_updated", "timestamp"])
                    .unwrap_or("last_updated");
                edits.push((key.to_owned(), quote(&now)));
                let mut text = text;
                for (k, v) in edits {
                    text = set_member(&text, &k, &v).ok_or_else(|| AgentDbError::Document {
                        table: "agent_status",
                        key: agent_id.to_owned(),
                        reason: "it is not a JSON object".into(),
                    })?;
                }
                (path, text)
            }
            None => {
                let path = self.layout.status_file(agent_id);
                self.lock_file(&mut tx, &path).await?;
                let mut doc = ObjectText::new();
                doc.string("agent_id", agent_id)
                    .string("status", &u.status)
                    .opt_string("current_task", u.current_task.as_deref())
                    .string("last_updated", &now);
                if let Some(p) = &u.performance {
                    doc.value("performance_metrics", p);
                }
                (path, doc.pretty())
            }
        };
        let (stored, value) = self
            .store_json(&mut tx, "agent_status", agent_id, text)
            .await?;
        let mut cols = self.mapper.status(agent_id, &value);
        cols.extend(stored.json_cols(&path, Some(0)));
        let mut q = self.sql();
        q.push("SELECT 1 FROM agent_status WHERE agent_id = ")
            .bind(Val::text(agent_id));
        let q = if tx.fetch_optional(&q, &[Kind::Int]).await?.is_some() {
            self.update("agent_status", &cols, "agent_id", agent_id)
        } else {
            self.insert("agent_status", &cols)
        };
        tx.execute(&q).await?;
        let (mut q, kinds) = self.select(STATUS_COLS, "agent_status WHERE agent_id = ");
        q.bind(Val::text(agent_id));
        let row = tx.fetch(&q, &kinds).await?.into_iter().next();
        tx.commit().await?;
        let row = row.ok_or_else(|| AgentDbError::AgentNotFound(agent_id.to_owned()))?;
        Ok(AgentStatus::from_vals(row)?)
    }

    /// Fails with [`AgentDbError::AgentNotFound`] unless the agent has a row.
    pub(crate) async fn require_agent(&self, tx: &mut Tx, agent_id: &str) -> OpResult<()> {
        if self.agent_exists(tx, agent_id).await? {
            Ok(())
        } else {
            Err(AgentDbError::AgentNotFound(agent_id.to_owned()).into())
        }
    }

    pub(crate) async fn agent_exists(&self, tx: &mut Tx, agent_id: &str) -> OpResult<bool> {
        let mut q = self.sql();
        q.push("SELECT 1 FROM agents WHERE agent_id = ")
            .bind(Val::text(agent_id));
        Ok(tx.fetch_optional(&q, &[Kind::Int]).await?.is_some())
    }

    /// `SELECT <cols> FROM <rest>`, for this backend.
    pub(crate) fn select(&self, cols: &[Col], rest: &str) -> (Sql, Vec<Kind>) {
        let (list, kinds) = select_list(self.kind, cols);
        let mut q = self.sql();
        q.push(&format!("SELECT {list} FROM {rest}"));
        (q, kinds)
    }
}

/// The first of `keys` the document has a non-null value for (the one the import reads),
/// else the first it has at all.
pub(crate) fn present_key<'k>(doc: &Value, keys: &[&'k str]) -> Option<&'k str> {
    let obj = doc.as_object()?;
    keys.iter()
        .find(|k| obj.get(**k).is_some_and(|v| !v.is_null()))
        .or_else(|| keys.iter().find(|k| obj.contains_key(**k)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_the_import_reads_is_the_one_set() {
        let doc = serde_json::json!({"last_update": null, "last_updated": "x", "timestamp": "y"});
        assert_eq!(
            present_key(&doc, &["last_update", "last_updated", "timestamp"]),
            Some("last_updated")
        );
        let doc = serde_json::json!({"last_update": null});
        assert_eq!(
            present_key(&doc, &["last_updated", "last_update"]),
            Some("last_update")
        );
        assert_eq!(present_key(&serde_json::json!({}), &["a"]), None);
    }
}
