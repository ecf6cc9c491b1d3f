//! Faults: what happens to an op that a rule matches, and their one-line
//! grammar (`kill-after`, `errno=EIO`, `short-write=50%`, `stall=10s`,
//! `power-cut=strict/written=all`, `errno=EIO+power-cut`). A closed set:
//! every fault a plan can fire is a variant here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::persistence::Cut;

/// How long a `stall` without a duration waits for release before it gives up.
pub const DEFAULT_STALL_DEADLINE: Duration = Duration::from_secs(30);

/// The grammar of one fault, quoted in every parse error.
pub const FAULT_FORMAT: &str = "kill-before[=SIG], kill-after[=SIG], errno=NAME[/once|/persist], \
short-write=K|K%, kill-within=K|K%, stall[=DURATION], \
power-cut[=metadata-ordered|strict][/written=none|all|BYTES], errno=NAME+power-cut[=...], \
short-write=K|K%+errno=ENOSPC|EDQUOT";

/// A fault that does not parse: the text, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault `{fault}`: {reason} (hint: a fault is one of {FAULT_FORMAT})")]
pub struct FaultError {
    /// The fault as given.
    pub fault: String,
    /// What is wrong with it.
    pub reason: String,
}

fn fault_error(fault: &str, reason: impl Into<String>) -> FaultError {
    FaultError {
        fault: fault.to_owned(),
        reason: reason.into(),
    }
}

/// What happens to a matched op.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Signal the caller's process group; answer without applying the op.
    KillBefore(Signal),
    /// Apply the op, signal the caller's process group, then answer.
    KillAfter(Signal),
    /// Fail the op with this errno, without applying it.
    Errno(i32),
    /// Fail the op with this errno, and every later op of the run that
    /// needs space ([`OpKind::needs_space`]), as a full disk (ENOSPC) or an
    /// exhausted quota (EDQUOT) does until space is freed.
    Full(i32),
    /// Apply only part of a write and report the short count.
    ShortWrite(ShortWrite),
    /// Apply only part of a write, then SIGKILL the caller's process
    /// group: a kill that lands while the bytes are being stored. Most
    /// useful on a writeback write ([`crate::OpRecord::writeback`]), which
    /// carries every page the writer stored through a shared mapping: the
    /// pages before the kill reach the file, the rest never do.
    KillWithin(ShortWrite),
    /// Hold the op until released through the API or until the duration
    /// (or [`DEFAULT_STALL_DEADLINE`]) passes, then apply it.
    Stall(Option<Duration>),
    /// Apply the op, then cut the power: the caller's group is SIGKILLed and
    /// only what the cut's persistence model and writeback say is durable
    /// survives (see [`crate::FaultFsHandle::take_power_cut`]).
    PowerCut(Cut),
    /// Fail the op with this errno (once), let the run go on to its end,
    /// then cut the power: what a failed fsync that the strategy ignored
    /// leaves on disk. fault-fs fails the op; the cut at the end is the
    /// caller's ([`crate::FaultFsHandle::durable_state`]).
    ErrnoThenCut(i32, Cut),
    /// A disk that fills up during a write: that write stores only part
    /// and reports the short count, then it is [`Fault::Full`] (this errno
    /// for every later op that needs space). At an op that writes no data,
    /// the op fails at once, as `Full` does.
    Fills(ShortWrite, i32),
}

/// How much of a write a `short-write` fault lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShortWrite {
    /// This many bytes (at most the request's length).
    Bytes(u64),
    /// This percentage of the request, rounded down.
    Percent(u8),
}

impl fmt::Display for ShortWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShortWrite::Bytes(bytes) => write!(f, "{bytes}"),
            ShortWrite::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl Fault {
    /// Whether the fault applies part of a write (and to writes only).
    pub fn partial_write(&self) -> bool {
        matches!(self, Fault::ShortWrite(_) | Fault::KillWithin(_))
    }
}

impl ShortWrite {
    /// Bytes to apply of a write of `len` bytes.
    pub fn bytes_of(self, len: u64) -> u64 {
        match self {
            ShortWrite::Bytes(bytes) => bytes.min(len),
            ShortWrite::Percent(percent) => len * u64::from(percent) / 100,
        }
    }
}

/// The name of an errno (`EIO`), or its number when it has none.
pub fn errno_name(errno: i32) -> String {
    let name = format!("{:?}", nix::errno::Errno::from_raw(errno));
    if name.starts_with('E') {
        name
    } else {
        errno.to_string()
    }
}

/// Whether `errno=NAME` means an error that lasts ([`Fault::Full`]): a
/// full disk or quota stays full until space is freed; other errors are
/// one call's.
pub fn lasts_by_default(errno: i32) -> bool {
    errno == libc::ENOSPC || errno == libc::EDQUOT
}

/// Parses an errno by name (`EIO`, `ENOSPC`, ...) or number.
pub fn parse_errno(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse::<i32>() {
        return (number > 0).then_some(number);
    }
    let upper = name.to_ascii_uppercase();
    (1..200).find(|&n| format!("{:?}", nix::errno::Errno::from_raw(n)) == upper)
}

/// Parses a signal by name, with or without `SIG` (`TERM`, `SIGKILL`), or number.
pub fn parse_signal(name: &str) -> Option<Signal> {
    if let Ok(number) = name.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).ok()
}

fn signal_suffix(signal: Signal) -> String {
    if signal == Signal::SIGKILL {
        String::new()
    } else {
        format!("={}", signal.as_str().trim_start_matches("SIG"))
    }
}

impl Fault {
    /// Whether it cuts the power, now or when the run has ended.
    pub fn cuts_power(&self) -> bool {
        matches!(self, Fault::PowerCut(_) | Fault::ErrnoThenCut(..))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillBefore(signal) => write!(f, "kill-before{}", signal_suffix(*signal)),
            Fault::KillAfter(signal) => write!(f, "kill-after{}", signal_suffix(*signal)),
            // ENOSPC and EDQUOT last unless told otherwise; others do not.
            Fault::Errno(errno) if lasts_by_default(*errno) => {
                write!(f, "errno={}/once", errno_name(*errno))
            }
            Fault::Errno(errno) => write!(f, "errno={}", errno_name(*errno)),
            Fault::Full(errno) if lasts_by_default(*errno) => {
                write!(f, "errno={}", errno_name(*errno))
            }
            Fault::Full(errno) => write!(f, "errno={}/persist", errno_name(*errno)),
            Fault::ShortWrite(short) => write!(f, "short-write={short}"),
            Fault::KillWithin(short) => write!(f, "kill-within={short}"),
            Fault::Stall(None) => f.write_str("stall"),
            Fault::Stall(Some(duration)) => {
                write!(f, "stall={}", humantime::format_duration(*duration))
            }
            Fault::PowerCut(cut) => write!(f, "power-cut={cut}"),
            Fault::ErrnoThenCut(errno, cut) => {
                write!(f, "{}+power-cut={cut}", Fault::Errno(*errno))
            }
            Fault::Fills(short, errno) => {
                write!(f, "short-write={short}+{}", Fault::Full(*errno))
            }
        }
    }
}

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((first, cut)) = s.split_once('+') {
            return match (first.parse()?, cut.parse()?) {
                (Fault::Errno(errno), Fault::PowerCut(cut)) => Ok(Fault::ErrnoThenCut(errno, cut)),
                (Fault::ShortWrite(short), Fault::Full(errno)) => Ok(Fault::Fills(short, errno)),
                _ => Err(fault_error(
                    s,
                    "only errno=NAME+power-cut[=...] and short-write=K+errno=ENOSPC combine \
                     two faults",
                )),
            };
        }
        let (name, arg) = match s.split_once('=') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let signal = |arg: Option<&str>| match arg {
            None => Ok(Signal::SIGKILL),
            Some(arg) => {
                parse_signal(arg).ok_or_else(|| fault_error(s, format!("unknown signal `{arg}`")))
            }
        };
        match name {
            "kill-before" => Ok(Fault::KillBefore(signal(arg)?)),
            "kill-after" => Ok(Fault::KillAfter(signal(arg)?)),
            "errno" => {
                let arg =
                    arg.ok_or_else(|| fault_error(s, "errno needs a name, e.g. errno=EIO"))?;
                let (name, lasting) = match arg.split_once('/') {
                    None => (arg, None),
                    Some((name, "once")) => (name, Some(false)),
                    Some((name, "persist")) => (name, Some(true)),
                    Some((_, how)) => {
                        return Err(fault_error(
                            s,
                            format!("unknown errno mode `/{how}` (once or persist)"),
                        ))
                    }
                };
                let errno = parse_errno(name)
                    .ok_or_else(|| fault_error(s, format!("unknown errno `{name}`")))?;
                Ok(if lasting.unwrap_or(lasts_by_default(errno)) {
                    Fault::Full(errno)
                } else {
                    Fault::Errno(errno)
                })
            }
            "short-write" | "kill-within" => {
                let arg = arg.ok_or_else(|| {
                    fault_error(s, format!("{name} needs a size, e.g. {name}=100 or =50%"))
                })?;
                let short = if let Some(percent) = arg.strip_suffix('%') {
                    match percent.parse::<u8>() {
                        Ok(p) if p < 100 => ShortWrite::Percent(p),
                        _ => return Err(fault_error(s, "a percentage must be 0 to 99")),
                    }
                } else {
                    arg.parse::<u64>()
                        .map(ShortWrite::Bytes)
                        .map_err(|_| fault_error(s, format!("`{arg}` is not a byte count")))?
                };
                Ok(match name {
                    "short-write" => Fault::ShortWrite(short),
                    _ => Fault::KillWithin(short),
                })
            }
            "stall" => match arg {
                None => Ok(Fault::Stall(None)),
                Some(arg) => humantime::parse_duration(arg)
                    .map(|d| Fault::Stall(Some(d)))
                    .map_err(|e| fault_error(s, format!("bad duration `{arg}`: {e}"))),
            },
            "power-cut" => match arg {
                None => Ok(Fault::PowerCut(Cut::default())),
                Some(arg) => arg
                    .parse()
                    .map(Fault::PowerCut)
                    .map_err(|e: String| fault_error(s, e)),
            },
            _ => Err(fault_error(s, format!("unknown fault `{name}`"))),
        }
    }
}

impl serde::Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_lasts_unless_told_once_and_eio_is_one_call() {
        let fault = |text: &str| text.parse::<Fault>().unwrap();
        assert_eq!(fault("errno=ENOSPC"), Fault::Full(libc::ENOSPC));
        assert_eq!(fault("errno=EDQUOT"), Fault::Full(libc::EDQUOT));
        assert_eq!(fault("errno=ENOSPC/once"), Fault::Errno(libc::ENOSPC));
        assert_eq!(fault("errno=EIO"), Fault::Errno(libc::EIO));
        assert_eq!(fault("errno=EIO/persist"), Fault::Full(libc::EIO));
        let fills = Fault::Fills(ShortWrite::Percent(50), libc::ENOSPC);
        assert_eq!(fault("short-write=50%+errno=ENOSPC"), fills);
        assert_eq!(fills.to_string(), "short-write=50%+errno=ENOSPC");
        let err = "short-write=5+errno=EIO".parse::<Fault>().unwrap_err();
        assert!(err.to_string().contains("combine"), "{err}");
        let err = "errno=EIO/always".parse::<Fault>().unwrap_err().to_string();
        assert!(err.contains("once or persist"), "{err}");
    }

    #[test]
    fn a_power_cut_names_its_writeback_and_may_follow_an_error() {
        use crate::persistence::{PersistenceModel, Writeback};
        let fault = |text: &str| text.parse::<Fault>();
        assert_eq!(
            fault("power-cut").unwrap(),
            Fault::PowerCut(Cut::new(PersistenceModel::MetadataOrdered))
        );
        assert_eq!(
            fault("power-cut=strict/written=none").unwrap(),
            Fault::PowerCut(Cut::new(PersistenceModel::Strict))
        );
        assert_eq!(
            fault("errno=EIO+power-cut=strict/written=4096").unwrap(),
            Fault::ErrnoThenCut(
                libc::EIO,
                Cut {
                    model: PersistenceModel::Strict,
                    written: Writeback::Bytes(4096)
                }
            )
        );
        for (text, reason) in [
            ("power-cut=strict/written=some", "bad writeback `some`"),
            ("power-cut=strict/after=1", "unknown power-cut option"),
            ("kill-after+power-cut", "only errno=NAME+power-cut"),
            ("errno=EIO+kill-after", "only errno=NAME+power-cut"),
        ] {
            let err = fault(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn errno_and_signal_names() {
        assert_eq!(parse_errno("ENOSPC"), Some(libc::ENOSPC));
        assert_eq!(parse_errno("edquot"), Some(libc::EDQUOT));
        assert_eq!(errno_name(libc::EROFS), "EROFS");
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Some(Signal::SIGKILL));
    }
}
