//! Messages: one JSON file per copy, as the old application writes them. A sent message is
//! a file in the recipient's `inbox/` and, when the sender is an agent, the same document in
//! the sender's `outbox/`; marking it processed moves the inbox file to `processed/`.
//! The import keys a message by its file's path, so each copy is a row of its own.

use serde_json::Value;

use crate::agents::present_key;
use crate::backend::{Kind, Tx, Val};
use crate::db::{now_text, random_u64, AgentDb};
use crate::error::{AgentDbError, OpResult, Result};
use crate::jsontext::{quote, set_member, ObjectText};
use crate::layout::{agent_of, check_agent_id, check_text, move_to_folder, slug, with_suffix};
use crate::model::{Col, Message, NewMessage, Page, SentMessage, MESSAGE_COLS};

impl AgentDb {
    /// Sends a message: a new file in the recipient's inbox, and in the sender's outbox when
    /// the sender is a registered agent.
    pub async fn send_message(&self, m: &NewMessage) -> Result<SentMessage> {
        check_agent_id(&m.to)?;
        if m.from.is_empty() {
            return Err(AgentDbError::invalid("from", "must not be empty"));
        }
        for (field, v) in [("from", Some(&m.from)), ("body", Some(&m.body))]
            .into_iter()
            .chain([
                ("message_type", m.message_type.as_ref()),
                ("subject", m.subject.as_ref()),
                ("priority", m.priority.as_ref()),
            ])
        {
            if let Some(v) = v {
                check_text(field, v)?;
            }
        }
        let now = chrono::Utc::now();
        let id = format!(
            "{}-{:04x}_{}_to_{}",
            now.format("%Y-%m-%dT%H-%M-%S-%6f"),
            random_u64() & 0xffff,
            slug(&m.from, 60),
            slug(&m.to, 60)
        );
        let sent_at = ferry_core::timestamp::format_utc(now);
        let mut doc = ObjectText::new();
        doc.string("id", &id)
            .opt_string("type", m.message_type.as_deref())
            .string("from", &m.from)
            .string("to", &m.to)
            .string("timestamp", &sent_at)
            .opt_string("priority", m.priority.as_deref())
            .opt_string("subject", m.subject.as_deref())
            .string("message", &m.body)
            .string("status", "pending");
        let text = doc.pretty();
        let (id, text) = (id.as_str(), text.as_str());
        self.run("send_message", id, move || async move {
            let mut tx = self.pool.begin_write().await?;
            self.require_agent(&mut tx, &m.to).await?;
            let name = format!("{id}.json");
            let inbox_path = self
                .free_message_path(&mut tx, self.layout.message(&m.to, "inbox", &name))
                .await?;
            let inbox = self
                .insert_message(&mut tx, &inbox_path, &m.to, "inbox", text.to_owned())
                .await?;
            let outbox = if check_agent_id(&m.from).is_ok()
                && self.agent_exists(&mut tx, &m.from).await?
            {
                let outbox_path = self
                    .free_message_path(&mut tx, self.layout.message(&m.from, "outbox", &name))
                    .await?;
                Some(
                    self.insert_message(&mut tx, &outbox_path, &m.from, "outbox", text.to_owned())
                        .await?,
                )
            } else {
                None
            };
            tx.commit().await?;
            Ok(SentMessage {
                id: id.to_owned(),
                inbox,
                outbox,
            })
        })
        .await
    }

    /// A page of the agent's inbox, newest first.
    pub async fn get_inbox(&self, agent_id: &str, page: Page) -> Result<Vec<Message>> {
        self.mailbox("get_inbox", agent_id, "inbox", page).await
    }

    /// A page of the agent's outbox, newest first.
    pub async fn get_outbox(&self, agent_id: &str, page: Page) -> Result<Vec<Message>> {
        self.mailbox("get_outbox", agent_id, "outbox", page).await
    }

    /// A page of any mailbox folder (`inbox`, `outbox`, `processed`, `processing`, `queue`).
    pub async fn get_mailbox(
        &self,
        agent_id: &str,
        folder: &str,
        page: Page,
    ) -> Result<Vec<Message>> {
        self.mailbox("get_mailbox", agent_id, folder, page).await
    }

    async fn mailbox(
        &self,
        operation: &'static str,
        agent_id: &str,
        folder: &str,
        page: Page,
    ) -> Result<Vec<Message>> {
        self.run(operation, agent_id, move || async move {
            let (mut q, kinds) = self.select(MESSAGE_COLS, "messages WHERE mailbox_agent_id = ");
            q.bind(Val::text(agent_id))
                .push(" AND folder = ")
                .bind(Val::text(folder))
                .push(" ORDER BY sent_at DESC NULLS LAST, message_id DESC LIMIT ")
                .bind(Val::Int(Some(i64::from(page.limit))))
                .push(" OFFSET ")
                .bind(Val::Int(Some(i64::from(page.offset))));
            let rows = self.pool.fetch(&q, &kinds).await?;
            Ok(rows
                .into_iter()
                .map(Message::from_vals)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    /// One message copy, by its id (its file's path).
    pub async fn get_message(&self, message_id: &str) -> Result<Option<Message>> {
        self.run("get_message", message_id, move || async move {
            let (mut q, kinds) = self.select(MESSAGE_COLS, "messages WHERE message_id = ");
            q.bind(Val::text(message_id));
            match self.pool.fetch_optional(&q, &kinds).await? {
                Some(vals) => Ok(Some(Message::from_vals(vals)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Marks an inbox (or processing) message processed: its file moves to the agent's
    /// `processed/` folder, with `status` set to `processed` and a `processed_at` stamp in
    /// the document. Returns the moved copy, whose id is its new path.
    pub async fn mark_processed(&self, message_id: &str) -> Result<Message> {
        self.run("mark_processed", message_id, move || async move {
            let mut tx = self.pool.begin_write().await?;
            let (mut q, kinds) = self.select(
                &[
                    Col::Text("folder"),
                    Col::Json("doc"),
                    Col::Text("doc_snapshot"),
                ],
                "messages WHERE message_id = ",
            );
            q.bind(Val::text(message_id));
            let Some(row) = tx.fetch_optional(&q, &kinds).await? else {
                return Err(AgentDbError::MessageNotFound(message_id.to_owned()).into());
            };
            let mut row = row.into_iter();
            let folder = row.next().and_then(Val::into_text).unwrap_or_default();
            if folder != "inbox" && folder != "processing" {
                return Err(AgentDbError::NotInInbox {
                    message_id: message_id.to_owned(),
                    folder,
                }
                .into());
            }
            let (Some(agent), Some(target)) = (
                agent_of(message_id).map(str::to_owned),
                move_to_folder(message_id, "processed"),
            ) else {
                return Err(AgentDbError::Document {
                    table: "messages",
                    key: message_id.to_owned(),
                    reason: "its path is not in an agent's mailbox folder".into(),
                }
                .into());
            };
            let doc = row.next().and_then(Val::into_text);
            let snapshot = row.next().and_then(Val::into_text);
            let text = self.docs.load("messages", message_id, doc, snapshot)?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| AgentDbError::bad_doc("messages", message_id, e))?;
            let status_key = present_key(&value, &["status", "state"]).unwrap_or("status");
            let not_object = || AgentDbError::Document {
                table: "messages",
                key: message_id.to_owned(),
                reason: "it is not a JSON object".into(),
            };
            let text = set_member(&text, status_key, &quote("processed")).ok_or_else(not_object)?;
            let text =
                set_member(&text, "processed_at", &quote(&now_text())).ok_or_else(not_object)?;
            let target = self.free_message_path(&mut tx, target).await?;
            let mut q = self.sql();
            q.push("DELETE FROM messages WHERE message_id = ")
                .bind(Val::text(message_id));
            tx.execute(&q).await?;
            let moved = self
                .insert_message(&mut tx, &target, &agent, "processed", text)
                .await?;
            tx.commit().await?;
            Ok(moved)
        })
        .await
    }

    /// `path`, or `name-2.json`, `name-3.json` … when a message file of that path exists.
    async fn free_message_path(&self, tx: &mut Tx, path: String) -> OpResult<String> {
        let mut candidate = path.clone();
        for n in 2.. {
            let mut q = self.sql();
            q.push("SELECT 1 FROM messages WHERE message_id = ")
                .bind(Val::text(&candidate));
            if tx.fetch_optional(&q, &[Kind::Int]).await?.is_none() {
                break;
            }
            candidate = with_suffix(&path, n);
        }
        self.lock_file(tx, &candidate).await?;
        Ok(candidate)
    }

    async fn insert_message(
        &self,
        tx: &mut Tx,
        path: &str,
        agent: &str,
        folder: &str,
        text: String,
    ) -> OpResult<Message> {
        let (stored, value) = self.store_json(tx, "messages", path, text).await?;
        let mut cols = self.mapper.message(path, agent, folder, &value);
        cols.extend(stored.json_cols(path, Some(0)));
        tx.execute(&self.insert("messages", &cols)).await?;
        self.fetch_message(tx, path)
            .await?
            .ok_or_else(|| AgentDbError::MessageNotFound(path.to_owned()).into())
    }

    async fn fetch_message(&self, tx: &mut Tx, message_id: &str) -> OpResult<Option<Message>> {
        let (mut q, kinds) = self.select(MESSAGE_COLS, "messages WHERE message_id = ");
        q.bind(Val::text(message_id));
        match tx.fetch_optional(&q, &kinds).await? {
            Some(vals) => Ok(Some(Message::from_vals(vals)?)),
            None => Ok(None),
        }
    }
}
