//! What users would see: target classes, properties and findings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the target is after (or during) a run, by content and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetClass {
    /// Byte-for-byte the old version.
    Old,
    /// Byte-for-byte the new version.
    New,
    /// No file at the target path.
    Missing,
    /// A zero-length file.
    Empty,
    /// A proper prefix of the old version.
    PrefixOfOld,
    /// A proper prefix of the new version.
    PrefixOfNew,
    /// Anything else: a mix, garbage, or not a regular file.
    Torn,
}

impl TargetClass {
    /// Complete old or complete new: the only classes users may ever see.
    pub fn is_complete(self) -> bool {
        matches!(self, TargetClass::Old | TargetClass::New)
    }

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            TargetClass::Old => "old",
            TargetClass::New => "new",
            TargetClass::Missing => "missing",
            TargetClass::Empty => "empty",
            TargetClass::PrefixOfOld => "prefix-of-old",
            TargetClass::PrefixOfNew => "prefix-of-new",
            TargetClass::Torn => "torn",
        }
    }
}

impl fmt::Display for TargetClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies target bytes (`None`: no file) against old and new.
pub fn classify(bytes: Option<&[u8]>, old: &[u8], new: &[u8]) -> TargetClass {
    let Some(bytes) = bytes else {
        return TargetClass::Missing;
    };
    classify_by(bytes.len() as u64, |v| v.starts_with(bytes), old, new)
}

/// Classifies a file of `len` bytes against old and new, where
/// `is_prefix_of(v)` says whether the file is the first `len` bytes of `v`:
/// so a file in the tree is classified without being copied out.
pub fn classify_by(
    len: u64,
    is_prefix_of: impl Fn(&[u8]) -> bool,
    old: &[u8],
    new: &[u8],
) -> TargetClass {
    let (old_len, new_len) = (old.len() as u64, new.len() as u64);
    if len == new_len && is_prefix_of(new) {
        TargetClass::New
    } else if len == old_len && is_prefix_of(old) {
        TargetClass::Old
    } else if len == 0 {
        TargetClass::Empty
    } else if len < new_len && is_prefix_of(new) {
        TargetClass::PrefixOfNew
    } else if len < old_len && is_prefix_of(old) {
        TargetClass::PrefixOfOld
    } else {
        TargetClass::Torn
    }
}

/// The properties of DESIGN.md §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// An undisturbed run leaves the target equal to new, and says so truthfully.
    Result,
    /// Live processes stay alive and their mappings of the old files never change.
    Live,
    /// Every probe at every stalled op sees complete old or complete new.
    Visible,
    /// After a kill at any op, the target is complete old or new.
    Kill,
    /// After an injected I/O error the target is complete and the exit status truthful.
    Errors,
    /// After a power cut, the durable target is complete old or new.
    Power,
    /// After any interruption, running the strategy again completes the replacement.
    Retry,
    /// Mode, owner and xattrs of the target are as expected.
    Meta,
    /// A successful run leaves no stray files next to the target.
    Tidy,
}

impl Property {
    /// Every property, in report order.
    pub const ALL: [Property; 9] = [
        Property::Result,
        Property::Live,
        Property::Visible,
        Property::Kill,
        Property::Errors,
        Property::Power,
        Property::Retry,
        Property::Meta,
        Property::Tidy,
    ];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Property::Result => "result",
            Property::Live => "live",
            Property::Visible => "visible",
            Property::Kill => "kill",
            Property::Errors => "errors",
            Property::Power => "power",
            Property::Retry => "retry",
            Property::Meta => "meta",
            Property::Tidy => "tidy",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Property {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Property::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Property::ALL.iter().map(|p| p.name()).collect();
                format!("unknown property `{s}` (hint: one of {})", names.join(", "))
            })
    }
}

/// A property that does not hold, where, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The property.
    pub property: Property,
    /// The crash point (`write#3:kill-after`), or `None` for an undisturbed run.
    pub crash_point: Option<String>,
    /// What was seen, in a sentence.
    pub seen: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.crash_point {
            Some(point) => write!(f, "{} at {}: {}", self.property, point, self.seen),
            None => write!(f, "{}: {}", self.property, self.seen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let (old, new) = (b"old-bytes".as_slice(), b"new-bytes!".as_slice());
        assert_eq!(classify(None, old, new), TargetClass::Missing);
        assert_eq!(classify(Some(b""), old, new), TargetClass::Empty);
        assert_eq!(classify(Some(new), old, new), TargetClass::New);
        assert_eq!(classify(Some(old), old, new), TargetClass::Old);
        assert_eq!(classify(Some(b"new-b"), old, new), TargetClass::PrefixOfNew);
        assert_eq!(classify(Some(b"old-"), old, new), TargetClass::PrefixOfOld);
        assert_eq!(
            classify(Some(b"new-bytes"), old, b"new-bytes"),
            TargetClass::New
        );
        assert_eq!(classify(Some(b"nld-bytes"), old, new), TargetClass::Torn);
    }
}
