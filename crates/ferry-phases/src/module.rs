//! What a phase is to the runner: a module with typed facts and evidence that runs, is
//! rechecked, says what a killed run left, and is undone, and the table of the five.
//!
//! Adding a phase is writing one module that implements [`PhaseModule`] and putting it in
//! [`MODULES`]; the runner's rules (lock, ledger, gates, attempt chains, interrupted runs)
//! apply to it unchanged.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use ferry_core::config::Config;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::PhaseError;
use crate::gate::{Check, Findings};
use crate::ledger::{self, Entry, Ledger};
use crate::phase::Phase;
use crate::runner::{RollbackOptions, RunOptions};

// The phases' futures are not `Send`: they hold sqlx and ferry-schema futures whose `Send`
// proofs the compiler cannot make through a trait's higher-ranked lifetimes. The runner
// runs on the caller's task (`block_on`), so nothing needs to move them between threads.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// How deep a recheck of a gate's evidence goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// What `status` and "already passed" afford: manifests open, schemas at head, row
    /// counts as recorded. No file is re-hashed and no table read through.
    Quick,
    /// What a later phase builds on: backups re-hashed, tables digested again.
    Full,
}

/// What every phase module sees: the configuration and the ledger as it was when the
/// action began.
pub(crate) struct Cx<'a> {
    pub config: &'a Config,
    pub entries: &'a [Entry],
}

impl Cx<'_> {
    /// The latest run of phase `P`, decoded into its typed facts and evidence.
    pub fn latest_run<P: PhaseModule>(&self) -> Result<Option<Recorded<P>>, PhaseError> {
        ledger::latest_run(self.entries, P::PHASE)
            .map(Recorded::decode)
            .transpose()
    }
}

/// One ledger entry of phase `P`, typed.
pub(crate) struct Recorded<P: PhaseModule> {
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub facts: P::Facts,
    pub evidence: P::Evidence,
}

impl<P: PhaseModule> Recorded<P> {
    pub fn decode(entry: &Entry) -> Result<Self, PhaseError> {
        Ok(Recorded {
            started_at: entry.started_at,
            finished_at: entry.finished_at,
            facts: decode(&entry.facts, "facts", entry)?,
            evidence: decode(&entry.evidence, "evidence", entry)?,
        })
    }
}

/// A null (never written) value is the type's default; anything else must parse.
fn decode<T: DeserializeOwned + Default>(
    value: &Value,
    what: &str,
    entry: &Entry,
) -> Result<T, PhaseError> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(value.clone()).map_err(|e| PhaseError::Ledger {
        path: "phase-runs.json".into(),
        message: format!("the {what} of run {} cannot be read: {e}", entry.run_id),
    })
}

/// A phase's result: its gate checks, a one-line summary, a longer text for people, and
/// what a passed gate still wants a person to see.
pub(crate) struct PhaseResult {
    pub checks: Vec<Check>,
    pub summary: String,
    pub details: String,
    pub findings: Findings,
}

/// A run under way: its chain's facts, the earlier runs of the chain, and the evidence it
/// fills as it goes.
pub(crate) struct RunCx<'a, P: PhaseModule> {
    pub cx: &'a Cx<'a>,
    pub options: &'a RunOptions,
    /// Taken before the chain's first run created anything.
    pub facts: &'a P::Facts,
    /// The earlier runs of this attempt chain, oldest first.
    pub earlier: Vec<Recorded<P>>,
    pub evidence: P::Evidence,
    ledger: &'a Ledger,
    entry: &'a mut Entry,
}

impl<'a, P: PhaseModule> RunCx<'a, P> {
    /// Writes the evidence so far into the run's ledger entry, durably. Call it right after
    /// creating something a rollback must undo, and before changing what a rollback must
    /// restore.
    pub fn checkpoint(&mut self) -> Result<(), PhaseError> {
        self.entry.evidence = to_value(&self.evidence);
        self.ledger.put(self.entry)
    }

    pub fn config(&self) -> &'a Config {
        self.cx.config
    }
}

/// A rollback under way: the chain it undoes and the steps it has taken.
pub(crate) struct RollbackCx<'a, P: PhaseModule> {
    pub cx: &'a Cx<'a>,
    pub options: &'a RollbackOptions,
    pub facts: &'a P::Facts,
    /// The runs of the chain being undone, oldest first.
    pub runs: Vec<Recorded<P>>,
    ledger: &'a Ledger,
    entry: &'a mut Entry,
}

impl<'a, P: PhaseModule> RollbackCx<'a, P> {
    /// Records, durably and before doing it, a change the rollback is about to make, so
    /// that if it stops the ledger says what state things may be in.
    pub fn step(&mut self, what: impl Into<String>) -> Result<(), PhaseError> {
        self.entry.steps.push(what.into());
        self.ledger.put(self.entry)
    }

    pub fn config(&self) -> &'a Config {
        self.cx.config
    }

    /// The newest run of the chain for which `f` gives something.
    pub fn newest<T>(&self, f: impl Fn(&Recorded<P>) -> Option<T>) -> Option<T> {
        self.runs.iter().rev().find_map(f)
    }
}

/// One phase, with its typed facts and evidence.
pub(crate) trait PhaseModule: Sized + Send + Sync + 'static {
    const PHASE: Phase;
    /// What was true before the chain's first run created anything.
    type Facts: Serialize + DeserializeOwned + Default + Send + Sync;
    /// What a run did and found.
    type Evidence: Serialize + DeserializeOwned + Default + Send + Sync;

    /// Reads the pre-phase facts. Creates nothing: it runs before the `started` entry.
    fn facts(cx: &Cx<'_>) -> impl Future<Output = Result<Self::Facts, PhaseError>>;

    /// Does the phase's work and its gate.
    fn run(run: &mut RunCx<'_, Self>) -> impl Future<Output = Result<PhaseResult, PhaseError>>;

    /// Whether what the gate vouched for still holds.
    fn recheck(cx: &Cx<'_>, rec: &Recorded<Self>, depth: Depth)
        -> impl Future<Output = Vec<Check>>;

    /// What a run that was killed left behind, in words, for `status` and the ledger.
    fn left_behind(cx: &Cx<'_>, rec: &Recorded<Self>) -> impl Future<Output = Vec<String>>;

    /// Undoes the chain's runs and verifies; the checks say whether it verified.
    fn rollback(
        rb: &mut RollbackCx<'_, Self>,
    ) -> impl Future<Output = Result<(Vec<Check>, Value), PhaseError>>;

    /// This phase's own precondition, replacing the recheck of the phase before it when
    /// given. Phase 4 uses it: once its sync follower applies new writes, both databases
    /// legitimately differ from gate 3's digests, and it vouches for them itself.
    fn precondition(_cx: &Cx<'_>, _depth: Depth) -> impl Future<Output = Option<Vec<Check>>> {
        async { None }
    }
}

/// The runner's view of a phase module, with the types erased.
pub(crate) trait Module: Send + Sync {
    fn phase(&self) -> Phase;
    fn built(&self) -> bool;
    fn facts<'a>(&'a self, cx: &'a Cx<'a>) -> BoxFuture<'a, Result<Value, PhaseError>>;
    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        ledger: &'a Ledger,
        options: &'a RunOptions,
        entry: &'a mut Entry,
    ) -> BoxFuture<'a, Result<PhaseResult, PhaseError>>;
    fn recheck<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        entry: &'a Entry,
        depth: Depth,
    ) -> BoxFuture<'a, Vec<Check>>;
    fn precondition<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        depth: Depth,
    ) -> BoxFuture<'a, Option<Vec<Check>>>;
    fn left_behind<'a>(&'a self, cx: &'a Cx<'a>, entry: &'a Entry) -> BoxFuture<'a, Vec<String>>;
    fn rollback<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        ledger: &'a Ledger,
        options: &'a RollbackOptions,
        entry: &'a mut Entry,
    ) -> BoxFuture<'a, Result<(Vec<Check>, Value), PhaseError>>;
}

/// The five phases, in order.
pub(crate) static MODULES: [&dyn Module; 5] = [
    &Built::<crate::foundation::Foundation>(PhantomData),
    &Built::<crate::import::Import>(PhantomData),
    &Built::<crate::load::Load>(PhantomData),
    &Built::<crate::sync::Sync>(PhantomData),
    &Built::<crate::signoff::SignOff>(PhantomData),
];

/// The module of `phase`.
pub(crate) fn module(phase: Phase) -> &'static dyn Module {
    let m = MODULES[usize::from(phase.number()) - 1];
    debug_assert_eq!(m.phase(), phase, "MODULES is in phase order");
    m
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The erasing adapter of a [`PhaseModule`].
pub(crate) struct Built<P>(PhantomData<fn() -> P>);

impl<P: PhaseModule> Built<P> {
    fn chain(cx: &Cx<'_>) -> Result<Vec<Recorded<P>>, PhaseError> {
        ledger::chain(cx.entries, P::PHASE)
            .into_iter()
            .map(Recorded::decode)
            .collect()
    }
}

impl<P: PhaseModule> Module for Built<P> {
    fn phase(&self) -> Phase {
        P::PHASE
    }

    fn built(&self) -> bool {
        true
    }

    fn facts<'a>(&'a self, cx: &'a Cx<'a>) -> BoxFuture<'a, Result<Value, PhaseError>> {
        Box::pin(async move { P::facts(cx).await.map(|f| to_value(&f)) })
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        ledger: &'a Ledger,
        options: &'a RunOptions,
        entry: &'a mut Entry,
    ) -> BoxFuture<'a, Result<PhaseResult, PhaseError>> {
        Box::pin(async move {
            let facts: P::Facts = decode(&entry.facts, "facts", entry)?;
            let earlier = Self::chain(cx)?;
            let mut run = RunCx {
                cx,
                options,
                facts: &facts,
                earlier,
                evidence: P::Evidence::default(),
                ledger,
                entry,
            };
            let res = P::run(&mut run).await;
            // Whatever happened, the entry keeps what the run did.
            run.entry.evidence = to_value(&run.evidence);
            res
        })
    }

    fn recheck<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        entry: &'a Entry,
        depth: Depth,
    ) -> BoxFuture<'a, Vec<Check>> {
        Box::pin(async move {
            match Recorded::<P>::decode(entry) {
                Ok(rec) => P::recheck(cx, &rec, depth).await,
                Err(e) => vec![Check::new("evidence readable", false, e.to_string())],
            }
        })
    }

    fn precondition<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        depth: Depth,
    ) -> BoxFuture<'a, Option<Vec<Check>>> {
        Box::pin(P::precondition(cx, depth))
    }

    fn left_behind<'a>(&'a self, cx: &'a Cx<'a>, entry: &'a Entry) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            match Recorded::<P>::decode(entry) {
                Ok(rec) => P::left_behind(cx, &rec).await,
                Err(e) => vec![format!("unknown: {e}")],
            }
        })
    }

    fn rollback<'a>(
        &'a self,
        cx: &'a Cx<'a>,
        ledger: &'a Ledger,
        options: &'a RollbackOptions,
        entry: &'a mut Entry,
    ) -> BoxFuture<'a, Result<(Vec<Check>, Value), PhaseError>> {
        Box::pin(async move {
            let facts: P::Facts = decode(&entry.facts, "facts", entry)?;
            let runs = Self::chain(cx)?;
            let mut rb = RollbackCx {
                cx,
                options,
                facts: &facts,
                runs,
                ledger,
                entry,
            };
            P::rollback(&mut rb).await
        })
    }
}
