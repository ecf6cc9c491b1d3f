//! fault-fs on its own: traces, faults, live mappings, conformance, cleanup.

use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fault_fs::{Cut, FaultPlan, OpKind, OpRecord, PersistenceModel, Tree, Writeback};
use harness::live::LiveCanary;

use crate::support::{mounted_under, pattern, swapfault, tree_with_target, wait_for, Scratch};

fn ops_of<'a>(trace: &'a [OpRecord], comm: &str) -> Vec<&'a OpRecord> {
    trace.iter().filter(|op| &*op.comm == comm).collect()
}

fn position(ops: &[&OpRecord], test: impl Fn(&OpRecord) -> bool) -> Option<usize> {
    ops.iter().position(|op| test(op))
}

#[test]
fn traces_tell_cp_install_mv_and_rename_apart() {
    let scratch = Scratch::new();
    let new = scratch.outside("new", &pattern(2, 300_000));
    let mount = scratch.mount(tree_with_target(&pattern(1, 200_000)), FaultPlan::default());
    let target = mount.join("target");
    let run = |command: &mut Command| {
        let status = command.status().expect("run");
        assert!(status.success(), "{command:?}");
    };

    run(Command::new("cp").arg(&new).arg(&target));
    let trace = mount.handle().take_trace();
    let cp = ops_of(&trace, "cp");
    let open = position(&cp, |op| {
        op.kind == OpKind::Open && op.truncates() && &*op.path == "/target"
    })
    .expect("cp opens the existing target with O_TRUNC");
    let write = position(&cp, |op| op.kind == OpKind::Write).expect("cp writes");
    assert!(open < write);
    assert!(!cp
        .iter()
        .any(|op| op.kind == OpKind::Unlink || op.kind == OpKind::Rename));

    run(Command::new("install").arg(&new).arg(&target));
    let trace = mount.handle().take_trace();
    let install = ops_of(&trace, "install");
    let unlink = position(&install, |op| {
        op.kind == OpKind::Unlink && &*op.path == "/target"
    })
    .expect("install unlinks");
    let create = position(&install, |op| op.exclusive() && &*op.path == "/target")
        .expect("install creates with O_EXCL");
    let write = position(&install, |op| op.kind == OpKind::Write).expect("install writes");
    let chmod = position(&install, |op| {
        op.kind == OpKind::Setattr && op.flags & fault_fs::SETATTR_MODE != 0
    })
    .expect("install chmods");
    assert!(
        unlink < create && create < write && write < chmod,
        "{install:#?}"
    );

    std::fs::write(mount.join("staged"), b"staged").expect("stage");
    run(Command::new("mv").arg(mount.join("staged")).arg(&target));
    let trace = mount.handle().take_trace();
    let mv = ops_of(&trace, "mv");
    assert!(mv.iter().any(|op| op.kind == OpKind::Rename
        && &*op.path == "/staged"
        && op.path2.as_deref() == Some("/target")));
    assert!(!mv.iter().any(|op| op.kind == OpKind::Write));

    let script = "import os, sys\n\
        t = sys.argv[1]\n\
        with open(t + '.tmp', 'wb') as f: f.write(b'x' * 1000)\n\
        os.replace(t + '.tmp', t)\n";
    run(Command::new("python3").arg("-c").arg(script).arg(&target));
    let trace = mount.handle().take_trace();
    let py: Vec<&OpRecord> = trace
        .iter()
        .filter(|op| op.comm.starts_with("python"))
        .collect();
    let create = position(&py, |op| {
        op.kind == OpKind::Create && &*op.path == "/target.tmp"
    })
    .expect("python creates the temp file");
    let write = position(&py, |op| {
        op.kind == OpKind::Write && &*op.path == "/target.tmp"
    })
    .expect("python writes the temp file");
    let rename = position(&py, |op| {
        op.kind == OpKind::Rename && op.path2.as_deref() == Some("/target")
    })
    .expect("python renames over the target");
    assert!(create < write && write < rename);
}

#[test]
fn binaries_run_and_libraries_load_from_the_mount() {
    let scratch = Scratch::new();
    let v1 = harness::canary::build(1, 64 * 1024).expect("build canary");
    let mount = scratch.mount(Tree::new(), FaultPlan::default());
    for file in [&v1.exe, &v1.lib] {
        let status = Command::new("cp")
            .arg(file)
            .arg(mount.path())
            .status()
            .expect("cp");
        assert!(status.success());
    }
    // The executable runs from the mount and finds its library there
    // (DT_NEEDED through $ORIGIN).
    let output = Command::new(mount.join("canary"))
        .arg("--once")
        .output()
        .expect("exec from mount");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "version 1 1"
    );
    let maps_lib = mount
        .handle()
        .trace()
        .iter()
        .any(|op| op.kind == OpKind::Read && &*op.path == "/libcanary.so");
    assert!(maps_lib, "the loader read the library through the mount");
    // dlopen of the library in the mount, by a process outside it.
    let output = Command::new(&v1.exe)
        .arg("--load")
        .arg(mount.join("libcanary.so"))
        .output()
        .expect("load probe");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "version 0 1"
    );
}

/// Starts a canary from a fresh mount holding v1, replaces its library with
/// `command`, and returns what the canary itself reported.
fn replace_under_live_canary(command: &str) -> harness::observe::LiveReport {
    let scratch = Scratch::new();
    let v1 = harness::canary::build(1, 256 * 1024).expect("build v1");
    let v2 = harness::canary::build(2, 256 * 1024).expect("build v2");
    let mount = scratch.mount(Tree::new(), FaultPlan::default());
    for file in [&v1.exe, &v1.lib] {
        assert!(Command::new("cp")
            .arg(file)
            .arg(mount.path())
            .status()
            .expect("cp")
            .success());
    }
    let mut live = LiveCanary::start(&mount.join("canary"), None, None).expect("start canary");
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("NEW", &v2.lib)
        .env("TARGET", mount.join("libcanary.so"))
        .status()
        .expect("replace");
    assert!(status.success(), "{command}");
    live.settle(Duration::from_secs(3), true);
    live.report()
}

#[test]
fn cp_over_a_mapped_library_changes_the_running_process() {
    let report = replace_under_live_canary(r#"cp "$NEW" "$TARGET""#);
    assert!(!report.unharmed(), "{}", report.describe());
}

#[test]
fn install_leaves_the_running_process_on_its_old_inode() {
    let report = replace_under_live_canary(r#"install "$NEW" "$TARGET""#);
    assert!(report.unharmed(), "{}", report.describe());
    assert_eq!(report.first.as_ref().map(|b| b.lib), Some(1));
}

const CHUNK: usize = 128 * 1024;

/// Runs `cp new /target` under `plan`; returns its status, stderr, and the target.
fn cp_under(plan: &str) -> (std::process::ExitStatus, String, Vec<u8>, Vec<u8>) {
    let scratch = Scratch::new();
    let new_bytes = pattern(7, 4 * CHUNK);
    let new = scratch.outside("new", &new_bytes);
    let plan = FaultPlan::from_specs(&[plan]).expect("plan");
    let mount = scratch.mount(tree_with_target(&pattern(1, 4 * CHUNK)), plan);
    let output = Command::new("cp")
        .arg(&new)
        .arg(mount.join("target"))
        .process_group(0)
        .output()
        .expect("cp");
    let target = std::fs::read(mount.join("target")).expect("read target");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        target,
        new_bytes,
    )
}

#[test]
fn kill_after_the_second_write_leaves_two_chunks() {
    let (status, _, target, new) = cp_under("write#2@/target:kill-after");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(target, new[..2 * CHUNK]);
}

#[test]
fn kill_before_the_second_write_leaves_one_chunk() {
    let (status, _, target, new) = cp_under("write#2@/target:kill-before");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(target, new[..CHUNK]);
}

#[test]
fn enospc_makes_cp_fail_with_its_own_message() {
    let (status, stderr, _, _) = cp_under("write@/target:errno=ENOSPC");
    assert!(!status.success());
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// Runs a shell that writes twice, makes a directory and reads, under
/// `plan`; returns the three statuses and what it read.
fn write_twice_under(plan: &str) -> String {
    let scratch = Scratch::new();
    let plan = FaultPlan::from_specs(&[plan]).expect("plan");
    let mount = scratch.mount(tree_with_target(b"old"), plan);
    let output = Command::new("sh")
        .arg("-c")
        .arg(
            r#"printf x >"$1/a" 2>/dev/null; w1=$?; printf y >"$1/a" 2>/dev/null; w2=$?
               mkdir "$1/d" 2>/dev/null; m=$?; echo "$w1 $w2 $m $(cat "$1/target")""#,
        )
        .arg("sh")
        .arg(mount.path())
        .process_group(0)
        .output()
        .expect("sh");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_full_disk_stays_full_for_the_run_and_eio_fails_one_call() {
    // ENOSPC lasts: the second write and the mkdir fail too; reads work.
    assert_eq!(write_twice_under("write#1:errno=ENOSPC"), "1 1 1 old");
    assert_eq!(write_twice_under("write#1:errno=EDQUOT"), "1 1 1 old");
    // Once, it is one call's, as EIO is unless told to persist.
    assert_eq!(write_twice_under("write#1:errno=ENOSPC/once"), "1 0 0 old");
    assert_eq!(write_twice_under("write#1:errno=EIO"), "1 0 0 old");
    assert_eq!(write_twice_under("write#1:errno=EIO/persist"), "1 1 1 old");
}

#[test]
fn stall_holds_the_write_until_released_while_others_read() {
    let scratch = Scratch::new();
    let new_bytes = pattern(7, 2 * CHUNK);
    let new = scratch.outside("new", &new_bytes);
    let plan = FaultPlan::from_specs(&["write#1@/target:stall"]).expect("plan");
    let mount = scratch.mount(tree_with_target(&pattern(1, 2 * CHUNK)), plan);
    let mut cp = Command::new("cp")
        .arg(&new)
        .arg(mount.join("target"))
        .spawn()
        .expect("cp");
    let stalled = mount
        .handle()
        .wait_for_stall(Duration::from_secs(5))
        .expect("the write stalls");
    assert_eq!(stalled.kind, OpKind::Write);
    // A second process reads the target meanwhile: truncated, nothing written yet.
    let seen = std::fs::read(mount.join("target")).expect("read during stall");
    assert!(seen.is_empty());
    assert!(
        cp.try_wait().expect("try_wait").is_none(),
        "cp waits on the stalled write"
    );
    mount.handle().release_stalls();
    assert!(cp.wait().expect("cp").success());
    assert_eq!(
        std::fs::read(mount.join("target")).expect("read"),
        new_bytes
    );
}

#[test]
fn stall_ends_at_its_deadline() {
    let scratch = Scratch::new();
    let new = scratch.outside("new", &pattern(7, CHUNK));
    let plan = FaultPlan::from_specs(&["write#1@/target:stall=200ms"]).expect("plan");
    let mount = scratch.mount(tree_with_target(b"old"), plan);
    let status = Command::new("cp")
        .arg(&new)
        .arg(mount.join("target"))
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "nobody released the stall: its deadline did"
    );
    let stalled = mount
        .handle()
        .trace()
        .into_iter()
        .find(|op| op.fault.is_some());
    assert_eq!(
        stalled.map(|op| op.kind),
        Some(OpKind::Write),
        "the stall fired"
    );
}

/// Waits (up to 10 s) for `swapfault mount` to have mounted `dir`.
fn assert_mounted_soon(dir: &Path) {
    let up = wait_for(Duration::from_secs(10), || !mounted_under(dir).is_empty());
    assert!(up, "{} was not mounted within 10 s", dir.display());
}

#[test]
fn swapfault_mount_unmounts_on_sigterm_and_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let scratch = Scratch::new();
        let seed = scratch.dir.path().join("seed");
        std::fs::create_dir(&seed).expect("seed dir");
        std::fs::write(seed.join("file"), b"hello").expect("seed file");
        let trace = scratch.dir.path().join("trace.jsonl");
        let mut child = swapfault()
            .arg("mount")
            .arg(scratch.mnt())
            .arg("--from")
            .arg(&seed)
            .arg("--trace")
            .arg(&trace)
            .stderr(Stdio::null())
            .spawn()
            .expect("swapfault mount");
        assert_mounted_soon(&scratch.mnt());
        assert_eq!(
            std::fs::read(scratch.mnt().join("file")).expect("read"),
            b"hello"
        );
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().expect("wait");
        assert!(status.success(), "{status:?}");
        assert!(mounted_under(&scratch.mnt()).is_empty());
        let lines = std::fs::read_to_string(&trace).expect("trace written");
        assert!(
            lines.lines().any(|l| l.contains("\"kind\":\"read\"")),
            "{lines}"
        );
    }
}

#[test]
fn a_sigkilled_swapfault_mount_leaves_no_mount() {
    let scratch = Scratch::new();
    let mut child = swapfault()
        .arg("mount")
        .arg(scratch.mnt())
        .stderr(Stdio::null())
        .spawn()
        .expect("swapfault mount");
    assert_mounted_soon(&scratch.mnt());
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let gone = wait_for(Duration::from_secs(2), || {
        mounted_under(&scratch.mnt()).is_empty()
    });
    if !gone {
        let _ = nix::mount::umount2(&scratch.mnt(), nix::mount::MntFlags::MNT_DETACH);
    }
    assert!(gone, "the mount outlived its SIGKILLed server by 2 s");
}

#[test]
fn mount_errors_name_the_fix() {
    let scratch = Scratch::new();
    std::fs::write(scratch.mnt().join("x"), b"x").expect("make non-empty");
    let output = swapfault()
        .arg("mount")
        .arg(scratch.mnt())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not empty") && stderr.contains("hint:"),
        "{stderr}"
    );
    let output = swapfault()
        .arg("mount")
        .arg("/nonexistent/dir")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
    let output = swapfault()
        .args(["mount", "/tmp", "--fault", "write#0:kill"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the format is [retry[N]:]OPS[#N[+K]]")
    );
}

#[test]
fn a_panic_while_mounted_leaves_no_mount() {
    let scratch = Scratch::new();
    let mnt = scratch.mnt();
    let result = std::panic::catch_unwind(|| {
        let _mount = scratch.mount(Tree::new(), FaultPlan::default());
        assert!(!mounted_under(&mnt).is_empty());
        panic!("test failure while mounted");
    });
    assert!(result.is_err());
    assert!(mounted_under(&mnt).is_empty());
}

/// One script of operations; every step's outcome as text ("ok ..." or the errno).
fn conformance_script(root: &Path) -> Vec<String> {
    let mut log = Vec::new();
    let mut note = |step: &str, result: std::io::Result<String>| {
        log.push(match result {
            Ok(value) => format!("{step}: ok {value}"),
            Err(err) => format!("{step}: errno {}", err.raw_os_error().unwrap_or(-1)),
        });
    };
    let p = |name: &str| root.join(name);
    note(
        "create",
        std::fs::write(p("a"), b"hello world").map(|_| String::new()),
    );
    note(
        "read",
        std::fs::read(p("a")).map(|b| String::from_utf8_lossy(&b).into_owned()),
    );
    note(
        "excl",
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p("a"))
            .map(|_| String::new()),
    );
    note(
        "truncate",
        std::fs::OpenOptions::new()
            .write(true)
            .open(p("a"))
            .and_then(|f| f.set_len(5))
            .map(|_| String::new()),
    );
    note(
        "size",
        std::fs::metadata(p("a")).map(|m| m.len().to_string()),
    );
    note(
        "append",
        (|| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p("a"))?;
            f.write_all(b"!")?;
            Ok(std::fs::read(p("a"))?.len().to_string())
        })(),
    );
    note(
        "extend",
        std::fs::OpenOptions::new()
            .write(true)
            .open(p("a"))
            .and_then(|f| f.set_len(10))
            .and_then(|_| std::fs::read(p("a")))
            .map(|b| format!("{b:?}")),
    );
    note(
        "write b",
        std::fs::write(p("b"), b"bbb").map(|_| String::new()),
    );
    note(
        "rename over file",
        std::fs::rename(p("b"), p("a"))
            .and_then(|_| std::fs::read(p("a")))
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    );
    note("b gone", std::fs::metadata(p("b")).map(|_| String::new()));
    note("mkdir", std::fs::create_dir(p("d")).map(|_| String::new()));
    note(
        "mkdir again",
        std::fs::create_dir(p("d")).map(|_| String::new()),
    );
    note(
        "mkdir e",
        std::fs::create_dir(p("e")).map(|_| String::new()),
    );
    note(
        "rename dir over empty dir",
        std::fs::rename(p("e"), p("d")).map(|_| String::new()),
    );
    note(
        "file in d",
        std::fs::write(p("d/f"), b"f").map(|_| String::new()),
    );
    note(
        "mkdir e2",
        std::fs::create_dir(p("e")).map(|_| String::new()),
    );
    note(
        "rename dir over full dir",
        std::fs::rename(p("e"), p("d")).map(|_| String::new()),
    );
    note(
        "rename file over dir",
        std::fs::rename(p("a"), p("d")).map(|_| String::new()),
    );
    note(
        "rename dir over file",
        std::fs::rename(p("e"), p("a")).map(|_| String::new()),
    );
    note(
        "rename dir into itself",
        std::fs::rename(p("d"), p("d/sub")).map(|_| String::new()),
    );
    note(
        "rmdir full",
        std::fs::remove_dir(p("d")).map(|_| String::new()),
    );
    note(
        "unlink dir",
        std::fs::remove_file(p("d")).map(|_| String::new()),
    );
    note(
        "open missing",
        std::fs::File::open(p("missing")).map(|_| String::new()),
    );
    note(
        "write dir",
        std::fs::OpenOptions::new()
            .write(true)
            .open(p("d"))
            .map(|_| String::new()),
    );
    note(
        "mkdir under file",
        std::fs::create_dir(p("a/x")).map(|_| String::new()),
    );
    note(
        "link",
        std::fs::hard_link(p("a"), p("c"))
            .and_then(|_| std::fs::metadata(p("a")))
            .map(|m| m.nlink().to_string()),
    );
    note(
        "link same inode",
        (|| Ok((std::fs::metadata(p("a"))?.ino() == std::fs::metadata(p("c"))?.ino()).to_string()))(
        ),
    );
    note(
        "link exists",
        std::fs::hard_link(p("a"), p("c")).map(|_| String::new()),
    );
    note(
        "rename onto own link",
        std::fs::rename(p("a"), p("c"))
            .and_then(|_| std::fs::metadata(p("a")))
            .map(|m| m.nlink().to_string()),
    );
    note(
        "unlink open file",
        (|| {
            let mut f = std::fs::File::open(p("c"))?;
            std::fs::remove_file(p("c"))?;
            std::fs::remove_file(p("a"))?;
            let mut s = String::new();
            f.seek(SeekFrom::Start(0))?;
            f.read_to_string(&mut s)?;
            Ok(s)
        })(),
    );
    note(
        "symlink",
        std::os::unix::fs::symlink("target-name", p("s"))
            .and_then(|_| std::fs::read_link(p("s")))
            .map(|t| t.display().to_string()),
    );
    note(
        "xattr set",
        xattr::set(p("d/f"), "user.k", b"v").map(|_| String::new()),
    );
    note(
        "xattr get",
        xattr::get(p("d/f"), "user.k").map(|v| format!("{v:?}")),
    );
    note(
        "xattr list",
        xattr::list(p("d/f")).map(|l| format!("{:?}", l.collect::<Vec<_>>())),
    );
    note(
        "xattr remove",
        xattr::remove(p("d/f"), "user.k").map(|_| String::new()),
    );
    note(
        "xattr missing",
        xattr::get(p("d/f"), "user.k").map(|v| format!("{v:?}")),
    );
    note(
        "chmod",
        (|| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p("d/f"), std::fs::Permissions::from_mode(0o640))?;
            Ok(format!(
                "{:o}",
                std::fs::metadata(p("d/f"))?.mode() & 0o7777
            ))
        })(),
    );
    note(
        "create mode",
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(p("m"))
            .and_then(|_| std::fs::metadata(p("m")))
            .map(|m| format!("{:o}", m.mode() & 0o777)),
    );
    let renameat2 = |from: &str, to: &str, flags: u32| -> std::io::Result<String> {
        let (from, to) = (
            CString::new(p(from).to_string_lossy().as_bytes()).unwrap_or_default(),
            CString::new(p(to).to_string_lossy().as_bytes()).unwrap_or_default(),
        );
        // SAFETY: valid NUL-terminated paths; AT_FDCWD with absolute paths.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                flags,
            )
        };
        if rc == 0 {
            Ok(String::new())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    note(
        "write x",
        std::fs::write(p("x"), b"x").map(|_| String::new()),
    );
    note(
        "write y",
        std::fs::write(p("y"), b"y").map(|_| String::new()),
    );
    note("noreplace", renameat2("x", "y", libc::RENAME_NOREPLACE));
    note(
        "exchange",
        renameat2("x", "y", libc::RENAME_EXCHANGE)
            .and_then(|_| std::fs::read(p("x")))
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    );
    note(
        "exchange missing",
        renameat2("x", "nope", libc::RENAME_EXCHANGE),
    );
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    log.push(format!("listing: {names:?}"));
    log
}

#[test]
fn conformance_with_a_plain_directory() {
    let plain = tempfile::tempdir().expect("plain dir");
    let expected = conformance_script(plain.path());
    let scratch = Scratch::new();
    let mount = scratch.mount(Tree::new(), FaultPlan::default());
    let actual = conformance_script(mount.path());
    for (want, got) in expected.iter().zip(&actual) {
        assert_eq!(want, got);
    }
    assert_eq!(expected.len(), actual.len());
}

/// A read-only shared mapping of a whole file, unmapped on drop.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn of(path: &Path, len: usize) -> Mapping {
        let file = std::fs::File::open(path).expect("open for mmap");
        // SAFETY: a fresh read-only shared mapping of an open file, kept
        // until drop; the fd may close once it is made.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "mmap");
        Mapping { addr, len }
    }

    fn bytes(&self) -> Vec<u8> {
        // SAFETY: the mapping is `len` bytes, readable, alive until drop.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }.to_vec()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `of` mapped.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

#[test]
fn a_reset_drops_what_the_kernel_cached() {
    let scratch = Scratch::new();
    let old = pattern(1, 2 * CHUNK);
    let new = pattern(9, 3 * CHUNK);
    let initial = tree_with_target(&old);
    let mount = scratch.mount(initial.clone(), FaultPlan::default());
    let target = mount.join("target");
    // A live mapping of the old bytes, as a running program holds one.
    let mapping = Mapping::of(&target, old.len());
    assert_eq!(mapping.bytes(), old);
    let status = Command::new("cp")
        .arg(scratch.outside("new", &new))
        .arg(&target)
        .status()
        .expect("cp");
    assert!(status.success());
    std::fs::write(mount.join("stray"), b"left by the run").expect("stray");
    assert_eq!(
        mapping.bytes(),
        new[..old.len()],
        "cp wrote into the mapped pages"
    );

    // The kernel sends a release after close returns, on its own time:
    // wait for cp's and ours (not the mapping's: it keeps its file open),
    // or one could land after the reset.
    let released = wait_for(Duration::from_secs(2), || {
        let trace = mount.handle().trace();
        let count = |kinds: &[OpKind]| trace.iter().filter(|op| kinds.contains(&op.kind)).count();
        count(&[OpKind::Open, OpKind::Create]) == count(&[OpKind::Release]) + 1
    });
    assert!(released, "every open file was released");
    mount.handle().reset(&initial);
    assert!(mount.handle().trace().is_empty(), "the trace starts anew");

    assert_eq!(mapping.bytes(), old, "the mapping reads the restored bytes");
    assert_eq!(
        std::fs::read(&target).expect("read"),
        old,
        "no stale pages or size"
    );
    assert_eq!(
        std::fs::metadata(&target).expect("stat").len(),
        old.len() as u64
    );
    assert!(!mount.join("stray").exists(), "the run's files are gone");
}

#[test]
fn a_reset_brings_back_a_directory_that_a_process_held_while_it_was_removed() {
    let scratch = Scratch::new();
    let mut initial = Tree::new();
    let node = fault_fs::tree::NewNode {
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    let app = initial
        .mkdir(fault_fs::tree::ROOT_INO, "app".as_ref(), node)
        .expect("mkdir");
    let lib = initial
        .create_file(app, "lib".as_ref(), node)
        .expect("create");
    initial.write(lib, 0, b"old library").expect("write");
    let mount = scratch.mount(initial.clone(), FaultPlan::default());
    // Open inside the directory, as a live canary maps its library: the
    // kernel keeps the directory's inode while the file is open.
    let held = std::fs::File::open(mount.join("app/lib")).expect("open");
    let swap = Command::new("sh")
        .arg("-c")
        .arg("mv app app.old && mkdir app && rm -rf app.old")
        .current_dir(mount.path())
        .status()
        .expect("sh");
    assert!(swap.success());
    mount.handle().reset(&initial);
    // The kernel marked the removed directory dead; under its old number
    // and generation every lookup in it would fail.
    assert_eq!(
        std::fs::read(mount.join("app/lib")).expect("read after the reset"),
        b"old library"
    );
    std::fs::write(mount.join("app/new"), b"x").expect("create in the directory");
    drop(held);
}

/// Replaces /target by temp file + rename, fsyncing nothing.
const TEMP_RENAME: &str = r#"import os, sys
tmp = os.path.join(os.path.dirname(sys.argv[2]), ".target.tmp")
with open(tmp, "wb") as out, open(sys.argv[1], "rb") as src:
    out.write(src.read())
os.rename(tmp, sys.argv[2])
"#;

#[test]
fn the_durable_log_is_what_a_power_cut_leaves() {
    let old = pattern(1, CHUNK);
    let new_bytes = pattern(9, 2 * CHUNK);
    let replace = |scratch: &Scratch, mount: &fault_fs::FaultMount| {
        Command::new("python3")
            .arg("-c")
            .arg(TEMP_RENAME)
            .arg(scratch.outside("new", &new_bytes))
            .arg(mount.join("target"))
            .status()
            .expect("python3")
    };
    // The recording: no fault, every durable state logged.
    let scratch = Scratch::new();
    let mount = scratch.mount(tree_with_target(&old), FaultPlan::default());
    mount.handle().log_durable_states(true);
    assert!(replace(&scratch, &mount).success());
    let rename = mount
        .handle()
        .trace()
        .into_iter()
        .find(|op| op.kind == OpKind::Rename)
        .expect("a rename");
    let logged = mount.handle().take_durable_states();
    drop(mount);
    let at_rename: Vec<_> = logged
        .iter()
        .filter(|state| state.seq == rename.seq)
        .collect();
    // Nothing was synced: none, a torn state and all of the data, per model.
    assert!(at_rename.len() >= 6, "{} states", at_rename.len());
    for computed in at_rename {
        let cut = computed.cut;
        // The same strategy on a fresh mount, the power cut real this time.
        let scratch = Scratch::new();
        let spec = format!("rename#1:power-cut={cut}");
        let plan = FaultPlan::from_specs(&[spec.as_str()]).expect("plan");
        let mount = scratch.mount(tree_with_target(&old), plan);
        let status = replace(&scratch, &mount);
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the machine went off");
        let real = mount.handle().take_power_cut().expect("the cut fired");
        assert!(computed.tree.same_state(&real.tree), "{cut}");
        let durable = computed.tree.resolve("target").expect("target");
        let content = computed.tree.content(durable).expect("a file").to_vec();
        match (cut.model, cut.written) {
            // The rename is durable, the data it names is not: empty.
            (PersistenceModel::MetadataOrdered, Writeback::None) => assert!(content.is_empty()),
            // Written back before the cut, though never synced.
            (PersistenceModel::MetadataOrdered, Writeback::All) => assert_eq!(content, new_bytes),
            (PersistenceModel::MetadataOrdered, Writeback::Bytes(bytes)) => {
                assert_eq!(content, new_bytes[..bytes as usize], "{cut}")
            }
            // The rename itself is not durable: the old file as it was.
            (PersistenceModel::Strict, _) => assert_eq!(content, old),
        }
    }
}

/// Overwrites the file argv[1] in place with argv[2] (as many bytes as the
/// old has), in three writes, never synced: Python's `os.pwrite`.
const PWRITE_IN_PLACE: &str = r#"import os, sys
new = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY)
third = len(new) // 3
for start in (0, third, 2 * third):
    end = len(new) if start == 2 * third else start + third
    os.pwrite(fd, new[start:end], start)
"#;

#[test]
fn a_power_cut_may_find_unsynced_writes_written_back_in_part() {
    // Three writes of 40 KiB: under 128 KiB, so each is one FUSE write.
    let old = pattern(1, 120 * 1024);
    let new_bytes = pattern(9, 120 * 1024);
    let scratch = Scratch::new();
    let mount = scratch.mount(tree_with_target(&old), FaultPlan::default());
    mount.handle().log_durable_states(true);
    let status = Command::new("python3")
        .args(["-c", PWRITE_IN_PLACE])
        .arg(mount.join("target"))
        .arg(scratch.outside("new", &new_bytes))
        .status()
        .expect("python3");
    assert!(status.success());
    let trace = mount.handle().trace();
    let writes: Vec<u64> = trace
        .iter()
        .filter(|op| op.kind == OpKind::Write)
        .map(|op| op.seq)
        .collect();
    assert_eq!(writes.len(), 3, "{trace:?}");
    let logged = mount.handle().take_durable_states();
    let target_at = |seq: u64, cut: Cut| {
        let state = logged
            .iter()
            .find(|state| state.seq == seq && state.cut == cut)
            .unwrap_or_else(|| panic!("no state {cut} after op {seq}"));
        let ino = state.tree.resolve("target").expect("target");
        state.tree.content(ino).expect("a file").to_vec()
    };
    let ordered = |written| Cut {
        model: PersistenceModel::MetadataOrdered,
        written,
    };
    let third = 40 * 1024;
    let last = writes[2];
    // None written back: the old bytes; all: the new.
    assert_eq!(target_at(last, ordered(Writeback::None)), old);
    assert_eq!(target_at(last, ordered(Writeback::All)), new_bytes);
    // The first write (of three) written back: 40 KiB new, the rest old.
    let first_only = target_at(last, ordered(Writeback::Bytes(third as u64)));
    assert_eq!(first_only[..third], new_bytes[..third]);
    assert_eq!(first_only[third..], old[third..]);
    // The last write torn at the page nearest its middle (20 KiB into it).
    let torn = 2 * third + 20 * 1024;
    let page_cut = target_at(last, ordered(Writeback::Bytes(torn as u64)));
    assert_eq!(page_cut[..torn], new_bytes[..torn]);
    assert_eq!(page_cut[torn..], old[torn..]);
    // Synced data is no longer unsynced: after an fsync, only one state.
    let fd = std::fs::OpenOptions::new()
        .write(true)
        .open(mount.join("target"))
        .expect("open");
    fd.sync_all().expect("fsync");
    let fsync = mount
        .handle()
        .trace()
        .into_iter()
        .rfind(|op| op.kind == OpKind::Fsync)
        .expect("an fsync");
    let after: Vec<_> = mount
        .handle()
        .take_durable_states()
        .into_iter()
        .filter(|state| state.seq == fsync.seq)
        .map(|state| state.cut.written)
        .collect();
    assert_eq!(after, [Writeback::None, Writeback::None]);
}

#[test]
fn a_write_at_one_tebibyte_costs_nothing_for_the_hole() {
    // Before contents were sparse, every 64 KiB chunk up to the offset was
    // allocated: 16 million of them here, enough to abort the daemon.
    let scratch = Scratch::new();
    let mount = scratch.mount(tree_with_target(b"head"), FaultPlan::default());
    let target = mount.join("target");
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .args(["bs=1", "count=1", "seek=1T", "conv=notrunc", "status=none"])
        .status()
        .expect("dd");
    assert!(status.success(), "{status:?}");
    let meta = std::fs::metadata(&target).expect("stat");
    assert_eq!(meta.len(), (1u64 << 40) + 1);
    // Two chunks hold data (the head and the byte at 1 TiB): stat says so.
    assert!(meta.blocks() <= 2 * 128, "{} blocks", meta.blocks());
    let mut file = std::fs::File::open(&target).expect("open");
    let mut buf = [7u8; 8];
    file.seek(SeekFrom::Start((1 << 40) - 4)).expect("seek");
    file.read_exact(&mut buf[..5])
        .expect("read across the hole");
    assert_eq!(&buf[..5], &[0, 0, 0, 0, 0]);
    // The tree holds the five bytes written, not 1 TiB, and the daemon
    // still serves.
    mount.handle().with_tree(|tree| {
        let ino = tree.resolve("target").expect("target");
        let content = tree.content(ino).expect("content");
        assert_eq!(content.allocated(), 5);
    });
    assert_eq!(std::fs::read_dir(mount.path()).expect("readdir").count(), 1);
}

#[test]
fn a_view_is_another_file_system_over_the_same_tree() {
    let scratch = Scratch::new();
    let mut tree = tree_with_target(b"old");
    let tmp = tree
        .mkdir(
            fault_fs::tree::ROOT_INO,
            "tmp".as_ref(),
            fault_fs::tree::NewNode {
                perm: 0o1777,
                uid: 0,
                gid: 0,
            },
        )
        .expect("tmp");
    let fs = fault_fs::FaultFs::new(tree.clone(), FaultPlan::default());
    let view = fs.view(tmp);
    let mount = fault_fs::FaultMount::mount(fs, &scratch.mnt()).expect("mount");
    let view_dir = scratch.dir.path().join("view");
    std::fs::create_dir(&view_dir).expect("view dir");
    let view_mount = fault_fs::FaultMount::mount(view, &view_dir).expect("mount the view");

    // What is written through the view is in the tree, under its directory,
    // and in the one trace, named by its path in the tree.
    std::fs::write(view_dir.join("download"), b"new").expect("write in the view");
    assert_eq!(
        std::fs::read(mount.join("tmp/download")).expect("read"),
        b"new"
    );
    let writes: Vec<String> = mount
        .handle()
        .trace()
        .iter()
        .filter(|op| op.kind == OpKind::Write)
        .map(|op| op.path.to_string())
        .collect();
    assert_eq!(writes, ["/tmp/download"]);
    assert_eq!(
        std::fs::metadata(&view_dir).expect("root").ino(),
        1,
        "the view's root is its mount's root"
    );

    // Between the two mounts a rename is a move across file systems.
    let err = std::fs::rename(view_dir.join("download"), mount.join("target"))
        .expect_err("a rename across mounts");
    assert_eq!(err.raw_os_error(), Some(libc::EXDEV));

    // A reset reaches both mounts' caches.
    mount.handle().reset(&tree);
    assert!(!view_dir.join("download").exists(), "gone after the reset");
    drop(view_mount);
    drop(mount);
}

#[test]
fn a_hold_parks_the_next_op_until_released() {
    let scratch = Scratch::new();
    let mount = scratch.mount(tree_with_target(b"old"), FaultPlan::default());
    let handle = mount.handle().clone();
    handle.hold_next_op(Some(std::time::Instant::now() + Duration::from_secs(10)));
    // The next op waits until released; the tree has not changed meanwhile.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!("echo new > {}", mount.join("written").display()))
        .spawn()
        .expect("writer");
    let held = handle
        .wait_for_stall(Duration::from_secs(5))
        .expect("the writer's first op is held");
    assert_eq!(held.fault, None, "a hold is no fault");
    assert!(handle.with_tree(|tree| tree.resolve("written").is_err()));
    handle.release_stalls();
    assert!(writer.wait().expect("writer").success());
    assert!(handle.with_tree(|tree| tree.resolve("written").is_ok()));
}

/// Copies the file named by argv[2] into the file argv[1] through a
/// shared mapping, then unmaps it: the stores reach the file system only as
/// the kernel's writeback.
const MMAP_COPY: &str = "import mmap, os, sys\n\
    data = open(sys.argv[2], 'rb').read()\n\
    fd = os.open(sys.argv[1], os.O_RDWR)\n\
    m = mmap.mmap(fd, len(data), flags=mmap.MAP_SHARED)\n\
    m[:] = data\n\
    m.close()\n\
    os.close(fd)\n";

#[test]
fn writes_through_a_shared_mapping_are_the_writers_and_a_kill_within_them_keeps_a_prefix() {
    crate::support::require(&[("python3", "python3")]);
    let scratch = Scratch::new();
    let new_bytes = pattern(7, 4 * CHUNK);
    let new = scratch.outside("new", &new_bytes);
    let old_bytes = pattern(1, 4 * CHUNK);
    let copy = |mount: &fault_fs::FaultMount| {
        Command::new("python3")
            .args(["-c", MMAP_COPY])
            .arg(mount.join("target"))
            .arg(&new)
            .process_group(0)
            .status()
            .expect("python3")
    };

    // Undisturbed: the kernel writes the pages back as pid 0, and the trace
    // gives them to the process that opened the file for writing.
    let mount = scratch.mount(tree_with_target(&old_bytes), FaultPlan::default());
    assert!(copy(&mount).success());
    let trace = mount.handle().take_trace();
    let writes: Vec<&OpRecord> = trace.iter().filter(|op| op.kind == OpKind::Write).collect();
    assert!(!writes.is_empty(), "no writeback write in {trace:#?}");
    for write in &writes {
        assert!(write.writeback, "{write}");
        assert_eq!(&*write.comm, "python3", "{write}");
        assert_ne!(write.pid, 0, "{write}");
    }
    assert_eq!(
        std::fs::read(mount.join("target")).expect("read"),
        new_bytes
    );
    drop(mount);

    // Killed halfway through the stores: the first half is new, the rest
    // old, on the file and through the kernel's cache alike (it had every
    // new page, and must not keep those the file never got).
    let plan = FaultPlan::from_specs(&["write#1@/target:kill-within=50%"]).expect("plan");
    let mount = scratch.mount(tree_with_target(&old_bytes), plan);
    // A reader that maps the file throughout, as a live process does (a
    // reader that opens the file anew gets no cached pages anyway).
    let reader = std::fs::File::open(mount.join("target")).expect("open");
    let len = old_bytes.len();
    // SAFETY: a fresh read-only shared mapping of a file of `len` bytes,
    // unmapped below; nothing else aliases it as Rust memory.
    let mapped = unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&reader),
            0,
        );
        assert_ne!(at, libc::MAP_FAILED, "mmap");
        std::slice::from_raw_parts(at as *const u8, len)
    };
    assert_eq!(mapped, &old_bytes[..]);
    let status = copy(&mount);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let half = writes[0].len as usize / 2;
    let mut expected = new_bytes[..half].to_vec();
    expected.extend_from_slice(&old_bytes[half..]);
    // (Looked at before any open: an open drops the cache of the file.)
    let agrees = wait_for(Duration::from_secs(5), || mapped == &expected[..]);
    // SAFETY: the mapping made above, no longer borrowed after this.
    unsafe { libc::munmap(mapped.as_ptr() as *mut libc::c_void, len) };
    drop(reader);
    assert!(
        agrees,
        "the cache keeps pages that the killed writer never stored"
    );
    assert_eq!(std::fs::read(mount.join("target")).expect("read"), expected);
    let trace = mount.handle().take_trace();
    // Whatever else the kernel wrote back for the dead writer was refused.
    let after: Vec<&OpRecord> = trace
        .iter()
        .filter(|op| op.kind == OpKind::Write && op.fault.is_none())
        .collect();
    assert!(after.iter().all(|op| op.errno == libc::EIO), "{after:#?}");
}

/// The macOS code-signing model on its own: a process that executes `copy`,
/// which runs as `prog`, is killed with SIGKILL once an op changes `prog`'s
/// bytes, and the kill names the file; writing back the bytes already there
/// changes no page and kills nobody.
#[test]
fn code_signing_kills_who_runs_a_file_whose_bytes_change() {
    use fault_fs::tree::{NewNode, ROOT_INO};
    use fault_fs::CodeSigning;
    let scratch = Scratch::new();
    let program = std::fs::read("/bin/sleep").expect("/bin/sleep");
    let mut tree = Tree::new();
    let node = NewNode {
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    let mut file = |name: &str| {
        let ino = tree
            .create_file(ROOT_INO, name.as_ref(), node)
            .expect("create");
        tree.write(ino, 0, &program).expect("write");
        ino
    };
    let (prog, copy) = (file("prog"), file("copy"));
    let mount = scratch.mount(tree, FaultPlan::default());
    let handle = mount.handle();
    handle.set_code_signing(Some(CodeSigning::new().runs_as(copy, prog)));
    let mut running = Command::new(mount.join("copy"))
        .arg("30")
        .process_group(0)
        .spawn()
        .expect("run the copy");
    let target = std::fs::OpenOptions::new()
        .write(true)
        .open(mount.join("prog"))
        .expect("prog is not running itself, so it opens for writing");
    use std::os::unix::fs::FileExt;
    target
        .write_all_at(&program[..4096], 0)
        .expect("the same bytes");
    assert!(
        running.try_wait().expect("wait").is_none(),
        "the same bytes kill nobody"
    );
    assert!(handle.take_signature_kills().is_empty());
    target.write_all_at(&[0xff; 16], 0).expect("other bytes");
    let status = running.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let kills = handle.take_signature_kills();
    assert_eq!(kills.len(), 1, "{kills:?}");
    assert_eq!(
        (kills[0].pid, kills[0].path.as_str()),
        (running.id(), "/prog")
    );
    assert_eq!(
        kills[0].reason(),
        "code signature invalid: page of prog changed on disk"
    );
}
