//! The JSON view: the [`Report`] as it is, with its schema version.

use std::io::{self, Write};

use serde::Serialize;

use super::{Report, SCHEMA_VERSION};

/// Writes one report (`run`, `check`).
pub fn write(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// Several reports (`explore` of several scenarios).
#[derive(Serialize)]
struct Reports<'a> {
    schema_version: u32,
    reports: &'a [Report],
}

/// Writes the reports of an exploration, one per scenario.
pub fn write_all(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    serde_json::to_writer_pretty(
        &mut *out,
        &Reports {
            schema_version: SCHEMA_VERSION,
            reports,
        },
    )?;
    writeln!(out)
}
