//! Foreign keys: added `NOT VALID` once both tables are copied and keyed, then validated.
//! Their columns share one type (chosen over the foreign-key graph when the plan was made),
//! so PostgreSQL accepts them.

use ferry_core::plan::{ObjectKind, TablePlan, TransferPlan};

use super::{column_target, DerivedNames, Step, STAGE_FOREIGN};
use crate::ident::{qualified, quote};
use crate::schema::SourceTable;

pub(super) fn steps(
    plan: &TransferPlan,
    t: &TablePlan,
    src: &SourceTable,
    names: &mut DerivedNames,
    steps: &mut Vec<Step>,
) {
    let schema = &plan.target_schema;
    for (n, fk) in src.foreign_keys.iter().enumerate() {
        let id = format!("fk:{}:{}", t.source, n + 1);
        let what = format!(
            "foreign key ({}) of {:?} to {:?}",
            fk.from.join(", "),
            t.source,
            fk.parent
        );
        let parent = plan
            .tables
            .iter()
            .find(|p| p.source == fk.parent)
            .or_else(|| {
                plan.tables
                    .iter()
                    .find(|p| p.source.eq_ignore_ascii_case(&fk.parent))
            });
        let to: Vec<String> = if fk.to.iter().all(Option::is_none) {
            parent.map(|p| p.primary_key.clone()).unwrap_or_default()
        } else {
            fk.to
                .iter()
                .zip(&fk.from)
                .map(|(t, f)| t.clone().unwrap_or_else(|| f.clone()))
                .collect()
        };
        let text = format!(
            "FOREIGN KEY ({}) REFERENCES {} ({})",
            fk.from.join(", "),
            fk.parent,
            to.join(", ")
        );
        let fail = |why: &str| {
            Step::failed(
                id.clone(),
                STAGE_FOREIGN,
                ObjectKind::ForeignKey,
                what.clone(),
                why,
            )
            .object("", &text)
        };
        let Some(parent) = parent else {
            steps.push(fail("the parent table is not in the SQLite file"));
            continue;
        };
        let from: Option<Vec<&str>> = fk.from.iter().map(|c| column_target(t, c)).collect();
        let to_t: Option<Vec<&str>> = to.iter().map(|c| column_target(parent, c)).collect();
        let (Some(from), Some(to_t)) = (from, to_t) else {
            steps.push(fail("a column is not in the plan"));
            continue;
        };
        if from.len() != to_t.len() {
            steps.push(fail("the parent has no primary key to refer to"));
            continue;
        }
        let name = names.generated(&format!("{}_{}_fkey", t.target, from.join("_")));
        let actions = format!(
            "{}{}",
            action("UPDATE", &fk.on_update),
            action("DELETE", &fk.on_delete)
        );
        let mut add = Step::new(id.clone(), STAGE_FOREIGN, ObjectKind::ForeignKey, what.clone(), vec![format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){actions} NOT VALID",
            qualified(schema, &t.target),
            quote(&name),
            from.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            qualified(schema, &parent.target),
            to_t.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
        )])
        .object("", &text);
        add.deps = vec![t.source.clone(), parent.source.clone()];
        let validate = add.validating(format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            qualified(schema, &t.target),
            quote(&name)
        ));
        steps.push(add);
        steps.push(validate);
    }
}

fn action(on: &str, what: &str) -> String {
    match what.to_ascii_uppercase().as_str() {
        "CASCADE" => format!(" ON {on} CASCADE"),
        "SET NULL" => format!(" ON {on} SET NULL"),
        "SET DEFAULT" => format!(" ON {on} SET DEFAULT"),
        "RESTRICT" => format!(" ON {on} RESTRICT"),
        _ => String::new(),
    }
}
