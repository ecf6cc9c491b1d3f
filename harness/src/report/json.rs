//! The JSON view: the [`Report`] as it is, with its schema version.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::{Report, SCHEMA_VERSION};

/// Writes one report (`run`, `check`).
pub fn write(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// Several reports (`explore` of several scenarios), as read back.
#[derive(Clone, Debug, Deserialize)]
pub struct Reports {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// One per scenario, in the order explored.
    pub reports: Vec<Report>,
}

/// [`Reports`] as written.
#[derive(Serialize)]
struct ReportsOut<'a> {
    schema_version: u32,
    reports: &'a [Report],
}

/// Writes the reports of an exploration, one per scenario.
pub fn write_all(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    serde_json::to_writer_pretty(
        &mut *out,
        &ReportsOut {
            schema_version: SCHEMA_VERSION,
            reports,
        },
    )?;
    writeln!(out)
}
