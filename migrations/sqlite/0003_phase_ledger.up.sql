-- The phase ledger: every phase run, gate verdict and rollback, with its evidence.
--
-- ferry writes each entry here and, first, to the JSON mirror under state_dir
-- (`state_dir/ledger/phase-runs.json`), which survives when a rollback replaces this file.
-- Like every `ferry_*` table it stays in SQLite and is never transferred.

CREATE TABLE IF NOT EXISTS ferry_phase_runs (
    run_id        TEXT PRIMARY KEY NOT NULL,
    phase         INTEGER NOT NULL CHECK (phase BETWEEN 1 AND 5),
    action        TEXT NOT NULL CHECK (action IN ('run', 'rollback')),
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('passed', 'failed', 'error', 'rolled_back')),
    gate_passed   INTEGER CHECK (gate_passed IN (0, 1)),
    summary       TEXT NOT NULL,
    evidence      TEXT NOT NULL CHECK (json_valid(evidence)),
    ferry_version TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    forced_reason TEXT
);
CREATE INDEX IF NOT EXISTS ferry_phase_runs_phase_idx ON ferry_phase_runs (phase, started_at);
