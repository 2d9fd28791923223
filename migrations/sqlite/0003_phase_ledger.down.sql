DROP TABLE ferry_phase_runs;
