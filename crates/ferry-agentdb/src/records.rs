//! Devlogs (Markdown with YAML front matter), configuration files and project analyses:
//! one file per record.

use serde_json::{Map, Value};

use crate::backend::{Kind, Val};
use crate::db::{random_u64, AgentDb};
use crate::error::{AgentDbError, Result};
use crate::jsontext::{quote, ObjectText};
use crate::layout::{check_agent_id, check_text, slug, with_suffix};
use crate::model::{Analysis, Col, Devlog, NewAnalysis, NewDevlog, ANALYSIS_COLS, DEVLOG_COLS};

impl AgentDb {
    /// Appends a devlog: a new Markdown file in the agent's `devlogs/` (or the store's, with
    /// no agent) whose front matter holds the title, the time and the tags.
    pub async fn append_devlog(&self, d: &NewDevlog) -> Result<Devlog> {
        if let Some(a) = &d.agent_id {
            check_agent_id(a)?;
        }
        // Front matter values are single-line YAML strings.
        one_line("title", &d.title)?;
        for t in &d.tags {
            one_line("tags", t)?;
        }
        check_text("body", &d.body)?;
        let now = chrono::Utc::now();
        let created_at = ferry_core::timestamp::format_utc(now);
        let mut front = Map::new();
        let mut yaml = String::from("---\n");
        front.insert("title".into(), Value::String(d.title.clone()));
        yaml.push_str(&format!("title: {}\n", quote(&d.title)));
        front.insert("created_at".into(), Value::String(created_at.clone()));
        yaml.push_str(&format!("created_at: {}\n", quote(&created_at)));
        if !d.tags.is_empty() {
            front.insert(
                "tags".into(),
                Value::Array(d.tags.iter().cloned().map(Value::String).collect()),
            );
            let items: Vec<String> = d.tags.iter().map(|t| quote(t)).collect();
            yaml.push_str(&format!("tags: [{}]\n", items.join(", ")));
        }
        yaml.push_str("---\n");
        let text = format!("{yaml}{}", d.body);
        let front = Value::Object(front);
        let name = format!(
            "{}-{:04x}-{}.md",
            now.format("%Y-%m-%dT%H-%M-%S-%6f"),
            random_u64() & 0xffff,
            slug(&d.title.to_lowercase(), 40)
        );
        let path = self.layout.devlog(d.agent_id.as_deref(), &name);
        let (path, text, front) = (path.as_str(), text.as_str(), &front);
        self.run("append_devlog", path, move || async move {
            let mut tx = self.pool.begin_write().await?;
            if let Some(a) = &d.agent_id {
                self.require_agent(&mut tx, a).await?;
            }
            let mut chosen = path.to_owned();
            for n in 2.. {
                let mut q = self.sql();
                q.push("SELECT 1 FROM devlogs WHERE devlog_id = ")
                    .bind(Val::text(&chosen));
                if tx.fetch_optional(&q, &[Kind::Int]).await?.is_none() {
                    break;
                }
                chosen = with_suffix(path, n);
            }
            let stored = self
                .docs
                .store("devlogs", &chosen, text.to_owned(), false)?;
            let mut cols = self
                .mapper
                .devlog(&chosen, d.agent_id.as_deref(), front, &d.body);
            cols.extend(stored.text_cols(&chosen));
            tx.execute(&self.insert("devlogs", &cols)).await?;
            let (mut q, kinds) = self.select(DEVLOG_COLS, "devlogs WHERE devlog_id = ");
            q.bind(Val::text(&chosen));
            let row = tx.fetch_optional(&q, &kinds).await?;
            tx.commit().await?;
            match row {
                Some(vals) => Ok(Devlog::from_vals(vals)?),
                None => Err(AgentDbError::Document {
                    table: "devlogs",
                    key: chosen,
                    reason: "the row was not written".into(),
                }
                .into()),
            }
        })
        .await
    }

    /// Devlogs newest first: an agent's, or every devlog when `agent_id` is `None`.
    pub async fn list_devlogs(&self, agent_id: Option<&str>, limit: u32) -> Result<Vec<Devlog>> {
        self.run("list_devlogs", agent_id.unwrap_or(""), move || async move {
            let (mut q, kinds) = self.select(DEVLOG_COLS, "devlogs");
            if let Some(a) = agent_id {
                q.push(" WHERE agent_id = ").bind(Val::text(a));
            }
            q.push(" ORDER BY created_at DESC NULLS LAST, devlog_id DESC LIMIT ")
                .bind(Val::Int(Some(i64::from(limit))));
            let rows = self.pool.fetch(&q, &kinds).await?;
            Ok(rows
                .into_iter()
                .map(Devlog::from_vals)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    /// The value of the configuration file `config/<name>.json`.
    pub async fn get_config(&self, name: &str) -> Result<Option<Value>> {
        check_config_name(name)?;
        let path = self.layout.config(name);
        let path = path.as_str();
        self.run("get_config", name, move || async move {
            let (mut q, kinds) = self.select(
                &[Col::Json("doc"), Col::Text("doc_snapshot")],
                "configurations WHERE config_id = ",
            );
            q.bind(Val::text(path));
            let Some(row) = self.pool.fetch_optional(&q, &kinds).await? else {
                return Ok(None);
            };
            let mut row = row.into_iter();
            let doc = row.next().and_then(Val::into_text);
            let snapshot = row.next().and_then(Val::into_text);
            let text = self.docs.load("configurations", path, doc, snapshot)?;
            let value = serde_json::from_str(&text)
                .map_err(|e| AgentDbError::bad_doc("configurations", path, e))?;
            Ok(Some(value))
        })
        .await
    }

    /// Writes the configuration file `config/<name>.json` (two-space indented JSON), replacing
    /// what it held.
    pub async fn set_config(&self, name: &str, value: &Value) -> Result<()> {
        check_config_name(name)?;
        let path = self.layout.config(name);
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| AgentDbError::invalid("value", e.to_string()))?;
        text.push('\n');
        let (path, text) = (path.as_str(), text.as_str());
        self.run("set_config", name, move || async move {
            let mut tx = self.pool.begin_write().await?;
            self.lock_file(&mut tx, path).await?;
            let (stored, value) = self
                .store_json(&mut tx, "configurations", path, text.to_owned())
                .await?;
            let mut cols = self.mapper.config(path, &value);
            cols.extend(stored.json_cols(path, Some(0)));
            let mut q = self.sql();
            q.push("SELECT 1 FROM configurations WHERE config_id = ")
                .bind(Val::text(path));
            let q = if tx.fetch_optional(&q, &[Kind::Int]).await?.is_some() {
                self.update("configurations", &cols, "config_id", path)
            } else {
                self.insert("configurations", &cols)
            };
            tx.execute(&q).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Records a project analysis: a new file in `project_analysis/` holding the project,
    /// the type, the time and the result.
    pub async fn record_analysis(&self, a: &NewAnalysis) -> Result<Analysis> {
        for (field, v) in [("project", &a.project), ("analysis_type", &a.analysis_type)] {
            if v.is_empty() {
                return Err(AgentDbError::invalid(field, "must not be empty"));
            }
            check_text(field, v)?;
        }
        let now = chrono::Utc::now();
        let created_at = ferry_core::timestamp::format_utc(now);
        let mut doc = ObjectText::new();
        doc.string("project", &a.project)
            .string("analysis_type", &a.analysis_type)
            .string("created_at", &created_at)
            .value("result", &a.result);
        let text = doc.pretty();
        let name = format!(
            "{}-{}-{}-{:04x}.json",
            slug(&a.project, 40),
            slug(&a.analysis_type, 40),
            now.format("%Y%m%dT%H%M%S%6f"),
            random_u64() & 0xffff
        );
        let path = self.layout.analysis(&name);
        let created = chrono::DateTime::parse_from_rfc3339(&created_at)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc));
        let (path, text) = (path.as_str(), text.as_str());
        self.run("record_analysis", path, move || async move {
            let mut tx = self.pool.begin_write().await?;
            let (stored, value) = self
                .store_json(&mut tx, "project_analyses", path, text.to_owned())
                .await?;
            let mut cols = self.mapper.analysis(path, &value);
            cols.extend(stored.json_cols(path, Some(0)));
            tx.execute(&self.insert("project_analyses", &cols)).await?;
            tx.commit().await?;
            Ok(Analysis {
                analysis_id: path.to_owned(),
                project: Some(a.project.clone()),
                analysis_type: Some(a.analysis_type.clone()),
                created_at: created,
                document: Some(value),
            })
        })
        .await
    }

    /// The newest analysis of a project (of one type, if given).
    pub async fn latest_analysis(
        &self,
        project: &str,
        analysis_type: Option<&str>,
    ) -> Result<Option<Analysis>> {
        self.run("latest_analysis", project, move || async move {
            let mut cols = ANALYSIS_COLS.to_vec();
            cols.push(Col::Text("doc_snapshot"));
            let (mut q, kinds) = self.select(&cols, "project_analyses WHERE project = ");
            q.bind(Val::text(project));
            if let Some(t) = analysis_type {
                q.push(" AND analysis_type = ").bind(Val::text(t));
            }
            q.push(" ORDER BY created_at DESC NULLS LAST, analysis_id DESC LIMIT 1");
            let Some(mut vals) = self.pool.fetch_optional(&q, &kinds).await? else {
                return Ok(None);
            };
            let snapshot = vals.pop().and_then(Val::into_text);
            let mut analysis = Analysis::from_vals(vals)?;
            if analysis.document.is_none() && snapshot.is_some() {
                let text =
                    self.docs
                        .load("project_analyses", &analysis.analysis_id, None, snapshot)?;
                analysis.document = Some(serde_json::from_str(&text).map_err(|e| {
                    AgentDbError::bad_doc("project_analyses", &analysis.analysis_id, e)
                })?);
            }
            Ok(Some(analysis))
        })
        .await
    }
}

fn one_line(field: &'static str, s: &str) -> Result<()> {
    if s.chars().any(char::is_control) {
        return Err(AgentDbError::invalid(
            field,
            "must be one line without control characters",
        ));
    }
    Ok(())
}

/// A configuration name is a file stem: letters, digits, `.`, `_` and `-`.
fn check_config_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AgentDbError::invalid(
            "name",
            format!("`{name}` must be a file name of letters, digits, `.`, `_` and `-`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_are_file_stems() {
        assert!(check_config_name("app.settings-2").is_ok());
        for bad in ["", ".hidden", "a/b", "a b"] {
            assert!(check_config_name(bad).is_err(), "{bad:?}");
        }
        assert!(one_line("title", "a\nb").is_err());
    }
}
