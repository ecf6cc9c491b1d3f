//! Support for this crate's tests, which use swapfault as a user's crate
//! would, through its public API only.

use std::process::Command;

/// Runs this test binary's other tests again as `nobody` (uid 65534) and
/// returns libtest's output, or `None` when this process is not root (then
/// the run at hand is the unprivileged one). `skip` is the calling test,
/// which must not run itself again. Panics, with the output, when the run
/// fails.
///
/// swapfault in a crate's `cargo test` needs no privilege: it mounts FUSE
/// in a user namespace of its own. /dev/fuse must have the mode
/// distributions ship it with, 0666.
pub fn rerun_as_nobody(skip: &str) -> Option<String> {
    if !is_root() {
        eprintln!("already unprivileged: the other tests of this run are the proof");
        return None;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        panic!("this test needs setpriv (hint: `apt-get install util-linux`)");
    }
    let current = std::env::current_exe().expect("exe");
    let name = current.file_name().expect("name").to_owned();
    // A copy nobody may run, and a home, cache and temp dir it may write.
    let home = std::env::temp_dir().join(format!(
        "swapfault-api-nobody-{}-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::create_dir_all(&home).expect("home");
    let exe = home.join(&name);
    std::fs::copy(&current, &exe).expect("copy");
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home)
        .status()
        .expect("chown");
    assert!(chown.success());
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--skip", skip])
        .env("HOME", &home)
        .env("TMPDIR", &home)
        .env("SWAPFAULT_CACHE", home.join("cache"))
        .current_dir(&home)
        .output()
        .expect("setpriv");
    let _ = std::fs::remove_dir_all(&home);
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "as nobody:\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(out)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}
