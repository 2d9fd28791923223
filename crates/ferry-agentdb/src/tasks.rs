//! Tasks: elements of an agent's `task_list.json`. The file is also kept whole in a
//! `documents` row (the profile's `keep_document`), so every change to a task changes that
//! row too: the element is appended to, or replaced inside, the file's text.

use serde_json::Value;

use crate::agents::present_key;
use crate::backend::{Kind, Tx, Val};
use crate::db::{now_text, random_u64, AgentDb};
use crate::error::{AgentDbError, OpResult, Result};
use crate::jsontext::{elements, push_element, quote, set_member, splice, task_array, ObjectText};
use crate::layout::{agent_of, check_agent_id, check_text};
use crate::mapping::container;
use crate::model::{Col, NewTask, Task, TASK_COLS};
use crate::vocab::TASK_STATUS;

/// The `documents.kind` of a task list kept whole (the profile's rule kind).
const TASK_LIST_KIND: &str = "task_list";

impl AgentDb {
    /// Appends a task to the agent's `task_list.json`.
    pub async fn create_task(&self, task: &NewTask) -> Result<Task> {
        check_agent_id(&task.agent_id)?;
        check_text("title", &task.title)?;
        for (field, v) in [
            ("task_id", &task.task_id),
            ("description", &task.description),
            ("status", &task.status),
            ("priority", &task.priority),
        ] {
            if let Some(v) = v {
                check_text(field, v)?;
            }
        }
        let task_id = match &task.task_id {
            Some(id) if id.is_empty() => {
                return Err(AgentDbError::invalid("task_id", "must not be empty"))
            }
            Some(id) => id.clone(),
            None => format!(
                "{}-task-{}-{:04x}",
                task.agent_id,
                chrono::Utc::now().format("%Y%m%dT%H%M%S%6f"),
                random_u64() & 0xffff
            ),
        };
        let id = task_id.as_str();
        self.run("create_task", id, move || self.create_task_tx(task, id))
            .await
    }

    async fn create_task_tx(&self, t: &NewTask, task_id: &str) -> OpResult<Task> {
        let mut tx = self.pool.begin_write().await?;
        self.require_agent(&mut tx, &t.agent_id).await?;
        let mut q = self.sql();
        q.push("SELECT source_path FROM tasks WHERE task_id = ")
            .bind(Val::text(task_id));
        if let Some(row) = tx.fetch_optional(&q, &[Kind::Text]).await? {
            return Err(AgentDbError::TaskExists {
                task_id: task_id.to_owned(),
                source_path: row
                    .into_iter()
                    .next()
                    .and_then(Val::into_text)
                    .unwrap_or_default(),
            }
            .into());
        }
        // The agent's list where the import found it, else where the layout puts it.
        let mut q = self.sql();
        q.push("SELECT document_path FROM documents WHERE kind = ")
            .bind(Val::text(TASK_LIST_KIND))
            .push(" AND agent_id = ")
            .bind(Val::text(&t.agent_id))
            .push(" ORDER BY document_path LIMIT 1");
        let path = tx
            .fetch_optional(&q, &[Kind::Text])
            .await?
            .and_then(|r| r.into_iter().next().and_then(Val::into_text))
            .unwrap_or_else(|| self.layout.task_list(&t.agent_id));
        self.lock_file(&mut tx, &path).await?;
        let mut element = ObjectText::new();
        element
            .string("task_id", task_id)
            .string("title", &t.title)
            .opt_string("description", t.description.as_deref())
            .opt_string("status", t.status.as_deref())
            .opt_string("priority", t.priority.as_deref())
            .string("created_at", &now_text());
        let element = element.compact();
        let (stored, value) = self.store_json(&mut tx, "tasks", task_id, element).await?;
        let element = stored.inline.clone().unwrap_or_default();
        let container_text = self.load_container(&mut tx, &path).await?;
        let (file_text, index) = match &container_text {
            Some(text) => {
                let range = task_array(text).ok_or_else(|| not_a_list(&path))?;
                push_element(text, range, &element).ok_or_else(|| not_a_list(&path))?
            }
            None => (format!("[\n  {element}\n]\n"), 0),
        };
        let mut cols = self.mapper.task(&t.agent_id, &path, index as i64, &value);
        cols.extend(stored.json_cols(&path, Some(index as i64)));
        tx.execute(&self.insert("tasks", &cols)).await?;
        self.save_container(
            &mut tx,
            &path,
            &t.agent_id,
            file_text,
            container_text.is_some(),
        )
        .await?;
        let task = self.fetch_task(&mut tx, task_id).await?;
        tx.commit().await?;
        task.ok_or_else(|| AgentDbError::TaskNotFound(task_id.to_owned()).into())
    }

    /// One task.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        self.run("get_task", task_id, move || async move {
            let (mut q, kinds) = self.select(TASK_COLS, "tasks WHERE task_id = ");
            q.bind(Val::text(task_id));
            match self.pool.fetch_optional(&q, &kinds).await? {
                Some(vals) => Ok(Some(Task::from_vals(vals)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// The agent's tasks, newest first (by `created_at`; tasks without one last), at most
    /// `limit`.
    pub async fn get_agent_tasks(&self, agent_id: &str, limit: u32) -> Result<Vec<Task>> {
        self.run("get_agent_tasks", agent_id, move || async move {
            let (mut q, kinds) = self.select(TASK_COLS, "tasks WHERE agent_id = ");
            q.bind(Val::text(agent_id))
                .push(" ORDER BY created_at DESC NULLS LAST, task_id DESC LIMIT ")
                .bind(Val::Int(Some(i64::from(limit))));
            let rows = self.pool.fetch(&q, &kinds).await?;
            Ok(rows
                .into_iter()
                .map(Task::from_vals)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    /// Sets a task's status as the application writes it (normalised for `status`, kept in
    /// `status_raw`), stamps `updated_at`, and `completed_at` when the status means
    /// completed.
    pub async fn update_task_status(&self, task_id: &str, status: &str) -> Result<Task> {
        check_text("status", status)?;
        self.run("update_task_status", task_id, move || async move {
            let mut tx = self.pool.begin_write().await?;
            let current = self.task_doc(&mut tx, task_id).await?;
            let now = now_text();
            let status_key = present_key(&current.value, &["status", "state"]).unwrap_or("status");
            let updated_key = present_key(&current.value, &["updated_at", "last_updated"])
                .unwrap_or("updated_at");
            let mut edits = vec![(status_key, quote(status)), (updated_key, quote(&now))];
            if TASK_STATUS.canonical(status) == "completed" {
                edits.push(("completed_at", quote(&now)));
            }
            let mut text = current.text.clone();
            for (k, v) in edits {
                text = set_member(&text, k, &v).ok_or_else(|| not_an_object(task_id))?;
            }
            self.rewrite_task(&mut tx, &current, text).await?;
            let task = self.fetch_task(&mut tx, task_id).await?;
            tx.commit().await?;
            task.ok_or_else(|| AgentDbError::TaskNotFound(task_id.to_owned()).into())
        })
        .await
    }

    /// Records that `task_id` depends on `depends_on`: a `task_dependencies` row, and the id
    /// in the task's `depends_on` list in its document (so the file keeps it too).
    pub async fn add_task_dependency(&self, task_id: &str, depends_on: &str) -> Result<()> {
        if task_id == depends_on {
            return Err(AgentDbError::invalid(
                "depends_on",
                format!("task {task_id} cannot depend on itself"),
            ));
        }
        self.run("add_task_dependency", task_id, move || async move {
            let mut tx = self.pool.begin_write().await?;
            let current = self.task_doc(&mut tx, task_id).await?;
            let mut q = self.sql();
            q.push("SELECT 1 FROM tasks WHERE task_id = ")
                .bind(Val::text(depends_on));
            if tx.fetch_optional(&q, &[Kind::Int]).await?.is_none() {
                return Err(AgentDbError::TaskNotFound(depends_on.to_owned()).into());
            }
            let mut q = self.sql();
            q.push("INSERT INTO task_dependencies (task_id, depends_on_task_id) VALUES (")
                .bind_all([Val::text(task_id), Val::text(depends_on)])
                .push(") ON CONFLICT DO NOTHING");
            tx.execute(&q).await?;
            let mut list: Vec<Value> = match current.value.get("depends_on") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            if !list.iter().any(|v| v.as_str() == Some(depends_on)) {
                list.push(Value::String(depends_on.to_owned()));
                let text = set_member(&current.text, "depends_on", &Value::Array(list).to_string())
                    .ok_or_else(|| not_an_object(task_id))?;
                self.rewrite_task(&mut tx, &current, text).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The tasks `task_id` depends on, by id.
    pub async fn get_task_dependencies(&self, task_id: &str) -> Result<Vec<String>> {
        self.run("get_task_dependencies", task_id, move || async move {
            let mut q = self.sql();
            q.push("SELECT depends_on_task_id FROM task_dependencies WHERE task_id = ")
                .bind(Val::text(task_id))
                .push(" ORDER BY depends_on_task_id");
            let rows = self.pool.fetch(&q, &[Kind::Text]).await?;
            Ok(rows
                .into_iter()
                .filter_map(|r| r.into_iter().next().and_then(Val::into_text))
                .collect())
        })
        .await
    }

    async fn fetch_task(&self, tx: &mut Tx, task_id: &str) -> OpResult<Option<Task>> {
        let (mut q, kinds) = self.select(TASK_COLS, "tasks WHERE task_id = ");
        q.bind(Val::text(task_id));
        match tx.fetch_optional(&q, &kinds).await? {
            Some(vals) => Ok(Some(Task::from_vals(vals)?)),
            None => Ok(None),
        }
    }

    /// A task's document and where it lives, with its file locked for the transaction.
    async fn task_doc(&self, tx: &mut Tx, task_id: &str) -> OpResult<TaskDoc> {
        let (mut q, kinds) = self.select(
            &[
                Col::Text("source_path"),
                Col::Int("source_record"),
                Col::Json("doc"),
                Col::Text("doc_snapshot"),
            ],
            "tasks WHERE task_id = ",
        );
        q.bind(Val::text(task_id));
        let Some(row) = tx.fetch_optional(&q, &kinds).await? else {
            return Err(AgentDbError::TaskNotFound(task_id.to_owned()).into());
        };
        let mut row = row.into_iter();
        let path = row.next().and_then(Val::into_text);
        let record = row.next().and_then(Val::into_int).unwrap_or(0);
        let doc = row.next().and_then(Val::into_text);
        let snapshot = row.next().and_then(Val::into_text);
        let Some(path) = path else {
            return Err(AgentDbError::Document {
                table: "tasks",
                key: task_id.to_owned(),
                reason: "the task names no file (source_path is empty)".into(),
            }
            .into());
        };
        let Some(agent) = agent_of(&path).map(str::to_owned) else {
            return Err(AgentDbError::Document {
                table: "tasks",
                key: task_id.to_owned(),
                reason: format!("{path} is not in an agent's workspace"),
            }
            .into());
        };
        self.lock_file(tx, &path).await?;
        let text = self.docs.load("tasks", task_id, doc, snapshot)?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| AgentDbError::bad_doc("tasks", task_id, e))?;
        Ok(TaskDoc {
            task_id: task_id.to_owned(),
            path,
            record,
            agent,
            text,
            value,
        })
    }

    /// Writes a task's new document into its row and into its file's `documents` row.
    async fn rewrite_task(&self, tx: &mut Tx, current: &TaskDoc, text: String) -> OpResult<()> {
        let (stored, value) = self.store_json(tx, "tasks", &current.task_id, text).await?;
        let text = stored.inline.clone().unwrap_or_default();
        let container_text = self.load_container(tx, &current.path).await?;
        let file_text = match &container_text {
            Some(file) => {
                let range = task_array(file).ok_or_else(|| not_a_list(&current.path))?;
                let items = elements(file, range).ok_or_else(|| not_a_list(&current.path))?;
                let at = usize::try_from(current.record)
                    .ok()
                    .and_then(|i| items.get(i))
                    .ok_or_else(|| AgentDbError::Document {
                        table: "documents",
                        key: current.path.clone(),
                        reason: format!(
                            "the list has no element {} for task {}",
                            current.record, current.task_id
                        ),
                    })?;
                Some(splice(file, at.clone(), &text))
            }
            None => None,
        };
        let mut cols = self
            .mapper
            .task(&current.agent, &current.path, current.record, &value);
        cols.extend(stored.json_cols(&current.path, Some(current.record)));
        tx.execute(&self.update("tasks", &cols, "task_id", &current.task_id))
            .await?;
        if let Some(file_text) = file_text {
            self.save_container(tx, &current.path, &current.agent, file_text, true)
                .await?;
        }
        Ok(())
    }

    /// The whole text of a file kept in `documents`, if it has a row.
    async fn load_container(&self, tx: &mut Tx, path: &str) -> OpResult<Option<String>> {
        let (mut q, kinds) = self.select(
            &[Col::Json("doc"), Col::Text("doc_snapshot")],
            "documents WHERE document_path = ",
        );
        q.bind(Val::text(path));
        let Some(row) = tx.fetch_optional(&q, &kinds).await? else {
            return Ok(None);
        };
        let mut row = row.into_iter();
        let doc = row.next().and_then(Val::into_text);
        let snapshot = row.next().and_then(Val::into_text);
        Ok(Some(self.docs.load("documents", path, doc, snapshot)?))
    }

    async fn save_container(
        &self,
        tx: &mut Tx,
        path: &str,
        agent_id: &str,
        text: String,
        exists: bool,
    ) -> OpResult<()> {
        let (stored, _) = self.store_json(tx, "documents", path, text).await?;
        let mut cols = container(path, TASK_LIST_KIND, agent_id);
        cols.extend(stored.document_cols());
        let q = if exists {
            self.update("documents", &cols, "document_path", path)
        } else {
            self.insert("documents", &cols)
        };
        tx.execute(&q).await?;
        Ok(())
    }
}

/// A task's document, read for an edit.
struct TaskDoc {
    task_id: String,
    path: String,
    record: i64,
    agent: String,
    text: String,
    value: Value,
}

fn not_a_list(path: &str) -> AgentDbError {
    AgentDbError::Document {
        table: "documents",
        key: path.to_owned(),
        reason: "the file holds no list of tasks (a top-level array or a `tasks` array)".into(),
    }
}

fn not_an_object(task_id: &str) -> AgentDbError {
    AgentDbError::Document {
        table: "tasks",
        key: task_id.to_owned(),
        reason: "it is not a JSON object".into(),
    }
}
