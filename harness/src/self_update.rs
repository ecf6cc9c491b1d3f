//! The built-in self-updating program's spec (`--self-update
//! rename+fsync`, `strategy.self_update`): how it replaces its own file.

/// How the built-in self-updating program replaces its own file: the
/// strategy is then the canary itself, started from the target, which
/// replaces the file and executes itself again (see canary.c).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SelfUpdate {
    /// The method.
    pub method: SelfUpdateMethod,
    /// fsync the new bytes, then the directory.
    pub fsync: bool,
    /// Give the temp file the target's mode and xattrs before the rename.
    pub copy_meta: bool,
    /// Remove a staging directory an interrupted run left, instead of
    /// failing on it (mkdir: File exists), as the seed's updater did.
    pub clear_staging: bool,
    /// A failed step is not fatal and the exit says success.
    pub ignore_errors: bool,
}

/// How a self-updating program writes its new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SelfUpdateMethod {
    /// Open its own file with O_TRUNC and copy the new bytes over it.
    #[default]
    InPlace,
    /// A sibling temp file renamed over its own file.
    Rename,
    /// Its own file renamed aside (`.old`), the staged file renamed in.
    RenameAside,
}

impl SelfUpdateMethod {
    const ALL: [SelfUpdateMethod; 3] = [
        SelfUpdateMethod::InPlace,
        SelfUpdateMethod::Rename,
        SelfUpdateMethod::RenameAside,
    ];

    /// The name in a spec.
    pub fn name(self) -> &'static str {
        match self {
            SelfUpdateMethod::InPlace => "in-place",
            SelfUpdateMethod::Rename => "rename",
            SelfUpdateMethod::RenameAside => "rename-aside",
        }
    }
}

/// The format a [`SelfUpdate`] spec takes, for errors.
const SELF_UPDATE_FORMAT: &str = "METHOD[+OPTION...]: in-place, rename or rename-aside, \
     with fsync, copy-meta, clear-staging, ignore-errors (e.g. rename+fsync+copy-meta+clear-staging)";

impl std::str::FromStr for SelfUpdate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('+');
        let method = parts.next().unwrap_or_default();
        let method = SelfUpdateMethod::ALL
            .into_iter()
            .find(|m| m.name() == method)
            .ok_or_else(|| format!("unknown method `{method}` (hint: {SELF_UPDATE_FORMAT})"))?;
        let mut spec = SelfUpdate {
            method,
            ..SelfUpdate::default()
        };
        for option in parts {
            let flag = match option {
                "fsync" => &mut spec.fsync,
                "copy-meta" => &mut spec.copy_meta,
                "clear-staging" => &mut spec.clear_staging,
                "ignore-errors" => &mut spec.ignore_errors,
                other => {
                    return Err(format!(
                        "unknown option `{other}` (hint: {SELF_UPDATE_FORMAT})"
                    ))
                }
            };
            *flag = true;
        }
        Ok(spec)
    }
}

impl std::fmt::Display for SelfUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method.name())?;
        let options = [
            (self.fsync, "fsync"),
            (self.copy_meta, "copy-meta"),
            (self.clear_staging, "clear-staging"),
            (self.ignore_errors, "ignore-errors"),
        ];
        for (_, name) in options.iter().filter(|(on, _)| *on) {
            write!(f, "+{name}")?;
        }
        Ok(())
    }
}

impl SelfUpdate {
    /// The strategy that runs it: the program started as a user would
    /// start it (`SWAPFAULT_SELF`: the target, or under the macOS model
    /// its equal copy), told to update itself.
    pub fn command(&self) -> String {
        format!("exec \"$SWAPFAULT_SELF\" --self-update {self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_update_spec_round_trips_and_names_what_it_takes() {
        for text in [
            "in-place",
            "rename+fsync+copy-meta+clear-staging",
            "rename-aside+ignore-errors",
        ] {
            let spec: SelfUpdate = text.parse().expect("a spec");
            assert_eq!(spec.to_string(), text);
        }
        let spec: SelfUpdate = "rename+copy-meta+fsync".parse().unwrap();
        assert_eq!(
            spec.to_string(),
            "rename+fsync+copy-meta",
            "options in one order"
        );
        for (bad, named) in [("copy", "`copy`"), ("rename+sync", "`sync`")] {
            let err = bad.parse::<SelfUpdate>().unwrap_err();
            assert!(
                err.contains(named) && err.contains("METHOD[+OPTION...]"),
                "{err}"
            );
        }
    }
}
