//! Finishing a managed copy: the foreign keys taken off for the copy are put back (and
//! validated), and identity and serial sequences are set past the highest key.

use ferry_core::plan::{ObjectKind, TransferPlan};

use super::{mark, setval_sql, Step, STAGE_FOREIGN, STAGE_KEYS};
use crate::bookkeeping::DeferredConstraint;
use crate::ident::{qualified, quote};

/// Steps that finish a managed copy.
pub fn managed_steps(
    plan: &TransferPlan,
    deferred: &[DeferredConstraint],
    sequences: &[(String, String, String)],
) -> Vec<Step> {
    let schema = &plan.target_schema;
    let source_of = |target: &str| plan.tables.iter().find(|t| t.target == target);
    let everything: Vec<String> = plan.tables.iter().map(|t| t.source.clone()).collect();
    let mut steps = Vec::new();
    for (table, column, sequence) in sequences {
        let t = qualified(schema, table);
        let mut s = Step::new(
            format!("seq:{table}:{column}"),
            STAGE_KEYS,
            ObjectKind::Sequence,
            format!("sequence of {table:?}.{column:?} set past the highest key"),
            vec![setval_sql(sequence, &t, column, None)],
        )
        .object(sequence, "");
        if let Some(p) = source_of(table) {
            mark(std::slice::from_mut(&mut s), p);
        }
        steps.push(s);
    }
    for c in deferred {
        let t = qualified(schema, &c.table);
        let mut add = Step::new(
            format!("fk:{}:{}", c.table, c.name),
            STAGE_FOREIGN,
            ObjectKind::ForeignKey,
            format!("foreign key {:?} of {:?}", c.name, c.table),
            vec![format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} {} NOT VALID",
                quote(&c.name),
                c.definition
            )],
        )
        .object(&c.name, &c.definition);
        if let Some(p) = source_of(&c.table) {
            mark(std::slice::from_mut(&mut add), p);
        }
        let v = add.validating(format!(
            "ALTER TABLE {t} VALIDATE CONSTRAINT {}",
            quote(&c.name)
        ));
        // The referenced table is named only inside the definition: wait for every table.
        add.deps.clone_from(&everything);
        steps.push(add);
        steps.push(v);
    }
    steps
}
