//! What differs between runs of the same crash point, named the same way
//! every time so that findings compare: process ids, mktemp-style
//! suffixes, and the random parts of the names an exploration met.

use std::collections::BTreeSet;

use crate::outcome::{PointResult, RunOutcome};

/// Replaces what differs between runs of the same crash point: mktemp-style
/// suffixes of paths (`/app/.swap.Uw1f1j` becomes `/app/.swap.XXXXXX`, an
/// xattr `user.origin` stays) and process ids
/// (`(pid 1306)` becomes `(pid N)`).
pub fn redact_run_names(text: &str) -> String {
    let mut after_pid = false;
    text.split(' ')
        .map(|word| {
            let (core, tail) = word.split_at(
                word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .len(),
            );
            let pid = std::mem::replace(&mut after_pid, word == "(pid");
            if pid && !core.is_empty() && core.chars().all(|c| c.is_ascii_digit()) {
                return format!("N{tail}");
            }
            match core.rsplit_once('.') {
                Some((stem, suffix))
                    if word.contains('/')
                        && suffix.len() == 6
                        && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    format!("{stem}.XXXXXX{tail}")
                }
                // A temp name made unique by a process id (`.x.tmp-1306`).
                _ => match core.rsplit_once("tmp-") {
                    Some((stem, pid))
                        if word.contains('/')
                            && !pid.is_empty()
                            && pid.chars().all(|c| c.is_ascii_digit()) =>
                    {
                        format!("{stem}tmp-N{tail}")
                    }
                    _ => word.to_owned(),
                },
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The names (path components) an exploration met: in the recorded run's
/// ops and in what its crash points saw. Two draws of the same temp name
/// (`.tmpHuFbBK` and `.tmpQwErTy` from the tempfile crate's `.tmp` + six
/// random characters) tell its random part from its fixed part, whatever
/// library made it.
pub struct RecordedNames(BTreeSet<String>);

impl RecordedNames {
    /// The names of `record`'s traces and of the paths `results` saw.
    pub fn of(record: &RunOutcome, results: &[PointResult]) -> Self {
        let ops = record
            .trace
            .iter()
            .chain(record.retry_traces.iter().flatten());
        let traced = ops.flat_map(|op| {
            std::iter::once(op.path.to_string()).chain(op.path2.as_ref().map(|p| p.to_string()))
        });
        let seen = results.iter().flat_map(|r| &r.findings).flat_map(|f| {
            f.seen
                .split(' ')
                .filter(|w| w.contains('/'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        let names = traced
            .chain(seen)
            .flat_map(|path| {
                path.split('/')
                    .map(|part| core_of(part).0.to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|name| !name.is_empty())
            .collect();
        RecordedNames(names)
    }

    /// `text` with the random characters of the names in its paths
    /// redacted: a path component that differs from another name met only
    /// inside one run of letters and digits (in four or more places) has
    /// that run's last six characters, or the whole run where more of it
    /// differs, replaced by `X`, where that leaves a fixed part. So two
    /// draws read the same.
    pub fn redact(&self, text: &str) -> String {
        text.split(' ')
            .map(|word| {
                if !word.contains('/') {
                    return word.to_owned();
                }
                word.split('/')
                    .map(|part| {
                        let (core, tail) = core_of(part);
                        match self.redacted(core) {
                            Some(redacted) => format!("{redacted}{tail}"),
                            None => part.to_owned(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn redacted(&self, name: &str) -> Option<String> {
        if !name.is_ascii() {
            return None;
        }
        let bytes = name.as_bytes();
        // Python's tempfile draws `_` too (`.update.tctrkx_a`).
        let alnum = |i: usize| bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_';
        self.0
            .iter()
            .filter(|other| other.len() == name.len() && *other != name)
            .find_map(|other| {
                let other = other.as_bytes();
                let differs: Vec<usize> =
                    (0..bytes.len()).filter(|&i| bytes[i] != other[i]).collect();
                let (first, last) = (*differs.first()?, *differs.last()?);
                if differs.len() < 4 || !(first..=last).all(alnum) {
                    return None;
                }
                // The run of letters and digits around the differences.
                let start = (0..first)
                    .rev()
                    .take_while(|&i| alnum(i))
                    .last()
                    .unwrap_or(first);
                let end = (last + 1..bytes.len())
                    .take_while(|&i| alnum(i))
                    .last()
                    .map_or(last + 1, |i| i + 1);
                let from = if first + 6 >= end && end >= start + 6 {
                    end - 6
                } else {
                    start
                };
                // A draw is six characters or more, beside a fixed part
                // (`mnt` and `app` are two names, not two draws).
                if end - from < 6 || end - from == bytes.len() {
                    return None;
                }
                let mut out = bytes.to_vec();
                out[from..end].fill(b'X');
                String::from_utf8(out).ok()
            })
    }
}

/// A path component without the punctuation that follows it in a text
/// (`.tmpHuFbBK,`), and that punctuation.
fn core_of(part: &str) -> (&str, &str) {
    let len = part
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .len();
    part.split_at(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_parts_of_recorded_names_are_redacted() {
        let names = RecordedNames(
            [
                "app",
                "mnt",
                ".tmpQwErTy",
                ".tmpHuFbBK",
                ".self.__temp__aB3dE9",
                ".self.__temp__Vblc0y",
                ".atomicwriteZZ9ZZZ",
                ".update.tctrkx_a",
                ".update._sj3fwi0",
                ".atomicwriteZx2DyE",
                "tmpfile.tmp",
                ".libcanary.so.previous",
                "user.origin",
            ]
            .map(str::to_owned)
            .into(),
        );
        assert_eq!(
            names.redact("stray files left: /app/.tmpHuFbBK, /app/.self.__temp__Vblc0y"),
            "stray files left: /app/.tmpXXXXXX, /app/.self.__temp__XXXXXX"
        );
        // Python's tempfile draws underscores too.
        assert_eq!(
            names.redact("stray files left: /app/.update._sj3fwi0"),
            "stray files left: /app/.update.XXXXXXXX"
        );
        // A draw whose first characters happen to match another's reads
        // the same; a directory's random part too.
        assert_eq!(
            names.redact("/app/.atomicwriteZx2DyE/tmpfile.tmp"),
            "/app/.atomicwriteXXXXXX/tmpfile.tmp"
        );
        // Names with no other draw, words that are not paths, and a name
        // one character off another, stay.
        assert_eq!(
            names.redact("/app/.libcanary.so.previous /app/.libcanary.so.previout /app/x"),
            "/app/.libcanary.so.previous /app/.libcanary.so.previout /app/x"
        );
        assert_eq!(
            names.redact("the xattr user.origin"),
            "the xattr user.origin"
        );
        assert_eq!(names.redact("$RUN/mnt/app/x"), "$RUN/mnt/app/x");
    }

    #[test]
    fn temp_names_and_pids_are_redacted() {
        assert_eq!(
            redact_run_names("stray files left: /app/.swap.8czbLu, /app/x"),
            "stray files left: /app/.swap.XXXXXX, /app/x"
        );
        assert_eq!(
            redact_run_names("live canary (pid 1306) died: killed by SIGBUS"),
            "live canary (pid N) died: killed by SIGBUS"
        );
        assert_eq!(
            redact_run_names("stray files left: /app/.libcanary.so.tmp-122, /app/libcanary.so.2"),
            "stray files left: /app/.libcanary.so.tmp-N, /app/libcanary.so.2"
        );
        assert_eq!(
            redact_run_names("xattrs lost or changed: user.origin"),
            "xattrs lost or changed: user.origin"
        );
    }
}
