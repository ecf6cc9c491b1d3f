//! What to change: the usual fix for what a group of findings saw, one
//! line, so that a finding says what to do as well as what went wrong.
//! It is advice from the property and the observation, never a verdict:
//! the verdicts come from the runs alone.

use crate::outcome::Property;

/// The usual fix for a finding of `property` that saw `seen`.
pub fn fix_for(property: Property, seen: &str) -> &'static str {
    match property {
        // Damage after an interruption or a retry: a step that removes or
        // rewrites another file of the application and puts it back later.
        _ if seen.contains("the application is damaged")
            || seen.contains("left the application damaged") =>
        {
            "never remove or rewrite the application's other files on the way: \
             leave them alone, or replace each as the target is, by a rename of a \
             complete new copy, so that a run cut off anywhere leaves a program \
             that starts"
        }
        Property::Result if seen.contains("no reason to touch") => {
            "touch nothing but the target: leave the program's other files and its \
             directory as they were (a directory made by mkdtemp is 0700: give it the \
             old one's mode before it takes the old one's place)"
        }
        Property::Result if seen.contains("self-updating program") => {
            "replace the running program by a rename of a complete new file over it, \
             not by writing into it, and exec the new file only once the rename is done"
        }
        Property::Result => {
            "exit 0 only once the target is the new version: check every step's \
             result, and stop with a non-zero exit at the first that failed"
        }
        Property::Live => {
            "never write into a file a running program maps (cp, truncate, pwrite): \
             write the new version to a temporary file and rename it over the target; \
             the running program keeps the old inode"
        }
        Property::Visible => {
            "make the new version appear in one step: a rename over the target, never \
             an unlink, a create or a write of the target itself that others can see \
             half done"
        }
        Property::Kill => {
            "write the new version to a temporary file in the target's directory and \
             rename it over the target once it is complete: a kill then leaves old or new"
        }
        Property::Errors if seen.contains("exited 0") => {
            "check the result of every write, fsync and rename, stop at the first \
             failure with a non-zero exit, and never rename a file whose write or \
             fsync failed (a retried fsync does not bring the data back)"
        }
        Property::Errors => {
            "on a failed write, fsync or rename, remove the temporary file and leave \
             the target as it was: replace it only by a rename of a complete, synced file"
        }
        Property::Power => {
            "fsync the temporary file before the rename and the directory after it: \
             without the first a power cut can leave the new name on unwritten data, \
             without the second the old name"
        }
        Property::Retry => {
            "make a second run start over: ignore or delete what an interrupted run \
             left (a partial download, a temporary file) instead of trusting it"
        }
        Property::Meta => {
            "give the temporary file the target's mode, owner and xattrs before the \
             rename (or, in the library, pass .mode() and .xattrs() if your files \
             have none)"
        }
        Property::Tidy => {
            "remove the temporary file on every way out, and the ones an interrupted \
             run left at the next start (name them so they can be found)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_fix_and_the_observation_picks_among_them() {
        for property in Property::ALL {
            assert!(!fix_for(property, "").is_empty(), "{property:?}");
        }
        let damaged = "after the kill the application is damaged: app/canary: missing";
        assert!(fix_for(Property::Kill, damaged).contains("other files"));
        let exited_0 = "the strategy exited 0 after the error, but the target is empty";
        assert!(fix_for(Property::Errors, exited_0).contains("never rename a file"));
        assert!(
            fix_for(Property::Errors, "after the error the target is missing")
                .contains("leave the target as it was")
        );
    }
}
