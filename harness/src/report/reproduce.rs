//! The one command that reproduces a finding: the scenario (its file, or
//! the ad-hoc flags that make it, with whatever was given apart from the
//! file) and the fault.

use fault_fs::Rule;

use crate::scenario::{default_new_size, Override, Platform, Scenario, Versions};

/// Quotes `text` for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The environment variable a scenario's [`Scenario::rerun`] reads its
/// faults from (fault specs, separated by spaces).
pub const FAULT_ENV: &str = "SWAPFAULT_FAULT";

/// The command that reruns a scenario; a reproduction adds its faults
/// ([`reproduction`]).
pub fn reproduction_prefix(scenario: &Scenario) -> String {
    if let Some(rerun) = &scenario.rerun {
        return rerun.clone();
    }
    match &scenario.source {
        Some(path) => {
            let mut command = format!("swapfault run {}", shell_quote(&path.display().to_string()));
            for given in &scenario.overrides {
                command.push_str(&match given {
                    Override::Size(size) => format!(" --size {size}"),
                    Override::NewSize(size) => format!(" --new-size {size}"),
                    Override::Platform(platform) => format!(" --platform {}", platform.name()),
                    Override::Timeout(timeout) => {
                        format!(" --timeout {}", humantime::format_duration(*timeout))
                    }
                    Override::Linger(linger) => {
                        format!(" --linger {}", humantime::format_duration(*linger))
                    }
                });
            }
            command
        }
        None => {
            let kind = scenario.target.kind.name();
            let strategy = match &scenario.strategy.self_update {
                Some(spec) => format!("--self-update {spec}"),
                None => format!("--strategy {}", shell_quote(&scenario.strategy.command)),
            };
            let mut command = format!("swapfault check {strategy} --target {kind}");
            if scenario.platform != Platform::Linux {
                command.push_str(&format!(" --platform {}", scenario.platform.name()));
            }
            for given in &scenario.overrides {
                match given {
                    Override::Timeout(timeout) => {
                        let timeout = humantime::format_duration(*timeout);
                        command.push_str(&format!(" --timeout {timeout}"));
                    }
                    Override::Linger(linger) => {
                        let linger = humantime::format_duration(*linger);
                        command.push_str(&format!(" --linger {linger}"));
                    }
                    // Given as flags of their own below.
                    Override::Size(_) | Override::NewSize(_) | Override::Platform(_) => {}
                }
            }
            match &scenario.target.versions {
                Versions::Canary { size, new_size } => {
                    command.push_str(&format!(" --size {size}"));
                    if *new_size != default_new_size(*size) {
                        command.push_str(&format!(" --new-size {new_size}"));
                    }
                }
                Versions::Files { old, new } => {
                    for (flag, path) in [("--old", old), ("--new", new)] {
                        let path = shell_quote(&path.display().to_string());
                        command.push_str(&format!(" {flag} {path}"));
                    }
                }
            }
            if scenario.target.symlink {
                command.push_str(" --symlinked");
            }
            for live in &scenario.live_commands {
                command.push_str(&format!(" --live {}", shell_quote(live)));
            }
            command
        }
    }
}

/// The command that reruns this very run: the scenario and its faults.
pub fn run_command(scenario: &Scenario, faults: &[Rule]) -> String {
    let specs: Vec<String> = faults.iter().map(Rule::to_string).collect();
    reproduction(scenario, &specs)
}

/// The command that runs `scenario` under the fault specs `faults`:
/// swapfault's own with a `--fault` each, or the scenario's
/// [`Scenario::rerun`] with the faults in [`FAULT_ENV`] before it.
pub fn reproduction(scenario: &Scenario, faults: &[String]) -> String {
    let prefix = reproduction_prefix(scenario);
    if scenario.rerun.is_some() {
        return format!("{FAULT_ENV}={} {prefix}", shell_quote(&faults.join(" ")));
    }
    let mut command = prefix;
    for spec in faults {
        command.push_str(" --fault ");
        command.push_str(&shell_quote(spec));
    }
    command
}
