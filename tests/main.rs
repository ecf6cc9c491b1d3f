//! Integration tests: real FUSE mounts, real processes (cp, install, mv,
//! rsync, python3, the canary). One binary; its modules:
//! - `support`: temp dirs, mounts, the swapfault binary, mount checks;
//! - `fs`: fault-fs traces, faults, live mappings, conformance, cleanup;
//! - `bench`: `swapfault bench` on the disk: JSON shape, steps, plot;
//! - `catalog`: single runs of the scenario catalog, `check`, the demo;
//! - `docs`: the README's command, exit-code and scenario-error tables
//!   against the binary;
//! - `fs_model`: fault-fs against a reference model, random op sequences;
//! - `fuzz`: fault schedules across runs and retries, shrunk and replayed;
//! - `explorer`: the expected matrix, reproductions, Ctrl-C, the strategy's
//!   whole process tree in scope;
//! - `sandbox`: SIGKILL and SIGTERM of swapfault leave nothing behind;
//! - `self_update`: programs that replace their own file, under Linux and
//!   the macOS code-signing model.

mod bench;
mod catalog;
mod docs;
mod explorer;
mod fs;
mod fs_model;
mod fuzz;
mod sandbox;
mod self_update;
mod support;
