//! Load and latency harness.
