//! Integration tests: real FUSE mounts, real processes (cp, install, mv,
//! rsync, python3, the canary). One binary (and `tests/matrix.rs`, the
//! whole catalog explored, a binary of its own); its modules:
//! - `support`: temp dirs, mounts, the swapfault binary, mount checks;
//! - `fs`: fault-fs traces, faults, live mappings, conformance, cleanup;
//! - `bench`: `swapfault bench` on the disk: JSON shape, steps, plot;
//! - `catalog`: single runs of the scenario catalog, `check`, the demo;
//! - `docs`: the README's command, exit-code and scenario-error tables
//!   against the binary;
//! - `fs_model`: fault-fs against a reference model, random op sequences;
//! - `layout`: modules import one way, files stay readable;
//! - `machine`: the same verdict with a nested sandbox, a detached helper,
//!   a fixed path in /tmp, a loaded machine, a suspended swapfault;
//! - `fuzz`: fault schedules across runs and retries, shrunk and replayed;
//! - `explorer`: reproductions, workers, Ctrl-C, the strategy's whole
//!   process tree in scope, rootless runs, partitions;
//! - `sandbox`: SIGKILL and SIGTERM of swapfault leave nothing behind;
//! - `self_update`: programs that replace their own file, under Linux and
//!   the macOS code-signing model;
//! - `snapshots`: the human report, JUnit and errors as users read them.

mod bench;
mod catalog;
mod docs;
mod explorer;
mod fs;
mod fs_model;
mod fuzz;
mod layout;
mod machine;
mod sandbox;
mod self_update;
mod snapshots;
mod support;
