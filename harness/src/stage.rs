//! The world of a run: fault-fs mounted over the scenario's initial tree
//! (with the strategy's TMPDIR as a mount of its own), NEW staged, the live
//! processes started, and the strategy's sandbox. A [`Stage`] serves run
//! after run: [`Stage::prepare`] resets it from a snapshot instead of
//! mounting anew. Each stage lives in a run dir of its own, locked while
//! it lives, so a later start can remove the dirs of runs that died.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fault_fs::tree::{NewNode, NodeKind, ROOT_INO};
use fault_fs::{FaultFs, FaultFsHandle, FaultMount, FaultPlan, Tree};

use crate::error::{io, RunError};
use crate::live::{command_report, LiveCanary};
use crate::observe::LiveReport;
use crate::proc::{exec_through, ChildGuard};
use crate::sandbox::Sandbox;
use crate::scenario::{APP_DIR, STAGING_DIR, TMP_DIR};
use crate::target::{Observed, Prepared};

/// File (in a run's temp dir) where the self-updating program reports.
pub(crate) const SELF_REPORT: &str = "self-update-report";

/// Removes the temp dir of a run, given its mount point, when a signal ends
/// the process before the run's guards can.
pub fn remove_run_dir(mount_point: &Path) {
    if let Some(dir) = mount_point.parent() {
        if dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with(RUN_DIR_PREFIX))
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Prefix of a run's temp dir.
const RUN_DIR_PREFIX: &str = "swapfault-run-";

/// Locks the run dir `dir` itself (an flock on the directory) for as long
/// as the returned guard lives: a run dir whose lock can be taken belongs
/// to a dead run. Locking the dir rather than a file in it leaves no window
/// (between creating the dir and creating a lock file) in which a killed
/// run leaves a dir that no later start would remove.
fn lock_run_dir(dir: &Path) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    let file = std::fs::File::open(dir)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| std::io::Error::from(errno))
}

/// Creates and locks a run dir. Another start may take a new dir for a dead
/// one in the moment before it is locked and remove it: then the lock fails,
/// or it is taken on a dir no longer at its path, and a fresh dir is made.
fn new_run_dir() -> Result<(tempfile::TempDir, nix::fcntl::Flock<std::fs::File>), RunError> {
    use std::os::unix::fs::MetadataExt;
    let mut attempts = 0;
    loop {
        let dir = tempfile::Builder::new()
            .prefix(RUN_DIR_PREFIX)
            .tempdir()
            .map_err(io("cannot create a temp dir"))?;
        let locked = lock_run_dir(dir.path()).and_then(|lock| {
            let held = lock.metadata()?;
            let at_path = std::fs::symlink_metadata(dir.path())?;
            if (held.dev(), held.ino()) == (at_path.dev(), at_path.ino()) && held.nlink() > 0 {
                Ok(lock)
            } else {
                Err(std::io::ErrorKind::NotFound.into())
            }
        });
        match locked {
            Ok(lock) => return Ok((dir, lock)),
            Err(err) if attempts >= 8 => {
                return Err(io("cannot lock the run's temp dir")(err));
            }
            Err(_) => attempts += 1,
        }
    }
}

/// Removes the temp dirs of runs whose process died (SIGKILL, OOM, a CI
/// timeout): their lock is free. A mount left in one (where the mounts
/// were not private) is detached first. The lock is held while the dir is
/// removed, so a start that just made it cannot lock it meanwhile.
pub fn remove_stale_run_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(RUN_DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        if let Ok(_lock) = lock_run_dir(&dir) {
            tracing::info!(dir = %dir.display(), "removing the temp dir of a dead run");
            let _ = nix::mount::umount2(&dir.join("mnt"), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// NEW as staged outside the mount, to tell whether a run changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NewStamp {
    ino: u64,
    len: u64,
    mode: u32,
    mtime: (i64, i64),
}

impl NewStamp {
    fn of(path: &Path) -> Option<NewStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(NewStamp {
            ino: meta.ino(),
            len: meta.len(),
            mode: meta.mode(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

/// A mounted, staged place to run a scenario, reusable run after run.
///
/// [`Stage::prepare`] puts the tree back to the scenario's initial state (a
/// snapshot: no bytes copied, no remount; the kernel drops what it cached of
/// every inode that changed) and restarts only the live processes that the
/// last run harmed or ended. Dropping it kills what runs and unmounts.
pub struct Stage {
    // Field order is drop order: live processes die before the unmount, the
    // unmount happens before the temp dir goes.
    /// The strategy's sandbox, started at the first run.
    pub(crate) sandbox: Option<Sandbox>,
    pub(crate) live: Option<LiveCanary>,
    pub(crate) live_commands: Vec<(String, ChildGuard)>,
    /// The live processes the code-signing model killed since they started.
    pub(crate) signature_kills: Vec<fault_fs::SignatureKill>,
    /// The tree's TMP_DIR as a file system of its own: the strategy's TMPDIR.
    pub(crate) tmp: FaultMount,
    pub(crate) mount: FaultMount,
    /// Where NEW is staged: `SWAPFAULT_NEW`.
    pub(crate) new_path: PathBuf,
    /// NEW's files outside the mount as last staged (see
    /// [`Prepared::new_files`]); `None` when NEW is inside.
    new_stamps: Option<Vec<Option<NewStamp>>>,
    /// The temp dir's path (findings replace it with `$RUN`).
    pub(crate) root: PathBuf,
    /// Held while this stage lives: tells the next start the dir is in use.
    _lock: nix::fcntl::Flock<std::fs::File>,
    _dir: tempfile::TempDir,
}

impl Stage {
    /// Mounts fault-fs over the scenario's initial tree and stages NEW.
    /// Live processes start at [`Stage::prepare`].
    pub fn new(prepared: &Prepared) -> Result<Stage, RunError> {
        let (dir, lock) = new_run_dir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(io("cannot create the mount point"))?;
        let outside = if prepared.scenario.target.new_inside {
            None
        } else {
            let stage = dir.path().join("stage");
            std::fs::create_dir(&stage).map_err(io("cannot create the staging dir"))?;
            Some(stage.join(prepared.new_name()))
        };
        let tmp_dir = dir.path().join(TMP_DIR);
        std::fs::create_dir(&tmp_dir).map_err(io("cannot create the temp mount point"))?;
        let initial = prepared.initial_tree();
        let tmp_ino = initial
            .resolve(TMP_DIR)
            .map_err(|_| io("no temp dir in the tree")(std::io::ErrorKind::NotFound.into()))?;
        let fs = FaultFs::new(initial, FaultPlan::default());
        fs.handle().set_code_signing(prepared.code_signing());
        let tmp = FaultMount::mount(fs.view(tmp_ino), &tmp_dir)?;
        let mount = FaultMount::mount(fs, &mnt)?;
        let new_path = outside
            .clone()
            .unwrap_or_else(|| mount.join(format!("{STAGING_DIR}/{}", prepared.new_name())));
        let mut stage = Stage {
            sandbox: None,
            live: None,
            live_commands: Vec::new(),
            signature_kills: Vec::new(),
            tmp,
            mount,
            new_path,
            new_stamps: None,
            root: dir.path().to_owned(),
            _lock: lock,
            _dir: dir,
        };
        if outside.is_some() {
            stage.stage_new_outside(prepared)?;
        }
        Ok(stage)
    }

    /// The st_dev of the stage's mounts (the tree and its /tmp): what a
    /// `syncfs(2)` of this file system names.
    pub fn devices(&self) -> Vec<u64> {
        use std::os::unix::fs::MetadataExt;
        [self.mount.path(), self.tmp.path()]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.dev())
            .collect()
    }

    pub fn handle(&self) -> &FaultFsHandle {
        self.mount.handle()
    }

    /// Readies the stage for a run: live processes that a run harmed or
    /// ended are stopped, the tree is reset to the initial one, NEW is
    /// staged again if a run consumed or changed it, and the scenario's live
    /// processes run (those still unharmed are kept).
    pub fn prepare(&mut self, prepared: &Prepared) -> Result<(), RunError> {
        if self
            .live
            .as_mut()
            .is_some_and(|live| !live.report().unharmed())
        {
            self.live = None;
        }
        self.live_commands
            .retain_mut(|(_, child)| child.try_exit().is_none());
        self.reset_to(prepared, &prepared.initial)?;
        if let (true, None) = (prepared.live_canary, &self.live) {
            let path = self.mount.join(prepared.program_rel());
            self.live = Some(LiveCanary::start(
                &path,
                None,
                Some(&prepared.sandbox_init),
            )?);
        }
        self.signature_kills.clear();
        if let Some(live) = self.live.as_mut() {
            live.begin_run();
        }
        for command in &prepared.scenario.live_commands {
            if !self.live_commands.iter().any(|(c, _)| c == command) {
                let child = self.start_live_command(prepared, command)?;
                self.live_commands.push((command.clone(), child));
            }
        }
        Ok(())
    }

    /// Readies the stage as a reboot after a power cut would find it: no
    /// live process, and `durable` as the tree.
    pub(crate) fn prepare_after_power_cut(
        &mut self,
        prepared: &Prepared,
        durable: &Tree,
    ) -> Result<(), RunError> {
        self.stop_live();
        self.reset_to(prepared, durable)
    }

    /// Kills the live processes (a power cut: nothing runs after it).
    pub(crate) fn stop_live(&mut self) {
        self.live = None;
        self.live_commands.clear();
    }

    fn reset_to(&mut self, prepared: &Prepared, tree: &Tree) -> Result<(), RunError> {
        self.handle().reset(tree);
        if self.new_stamps.is_some() {
            self.stage_new_outside(prepared)?;
        }
        Ok(())
    }

    /// The directory NEW is staged in: `SWAPFAULT_NEW_DIR`.
    pub(crate) fn new_dir(&self) -> &Path {
        self.new_path.parent().unwrap_or(Path::new("/"))
    }

    /// Writes NEW's files outside the mount unless they are there as last
    /// written.
    fn stage_new_outside(&mut self, prepared: &Prepared) -> Result<(), RunError> {
        let files = prepared.new_files();
        let stamps = |dir: &Path| -> Vec<Option<NewStamp>> {
            files
                .iter()
                .map(|(name, _)| NewStamp::of(&dir.join(name)))
                .collect()
        };
        if self.new_stamps.as_ref() == Some(&stamps(self.new_dir())) {
            return Ok(());
        }
        for (name, bytes) in &files {
            let path = self.new_dir().join(name);
            // A strategy may have left a directory or a link there.
            let _ = std::fs::remove_file(&path);
            write_new(&path, bytes, prepared.new_mtime)?;
        }
        self.new_stamps = Some(stamps(self.new_dir()));
        Ok(())
    }

    /// Starts one of the scenario's live commands in the target's directory.
    fn start_live_command(
        &self,
        prepared: &Prepared,
        command: &str,
    ) -> Result<ChildGuard, RunError> {
        let mut child = exec_through(
            &prepared.sandbox_init,
            &self.mount.join(APP_DIR),
            Path::new("sh"),
        );
        child
            .arg("-c")
            .arg(command)
            .env("SWAPFAULT_TARGET", self.mount.join(prepared.target_rel()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn(child).map_err(|source| RunError::LiveCommand {
            command: command.to_owned(),
            source,
        })?;
        // A live process must be running when the strategy starts.
        std::thread::sleep(Duration::from_millis(50));
        if let Some(exit) = child.try_exit() {
            return Err(RunError::LiveCommandEnded {
                command: command.to_owned(),
                exit,
            });
        }
        Ok(child)
    }

    /// Puts NEW back if the interrupted run consumed or changed it (mv
    /// consumes it), as an updater's retry would download it again.
    pub(crate) fn restage_new(&mut self, prepared: &Prepared) -> Result<(), RunError> {
        if !prepared.scenario.target.new_inside {
            return self.stage_new_outside(prepared);
        }
        // Asked of the tree, not the mount: this process never waits on it.
        self.handle().with_tree(|tree| {
            let node = NewNode {
                perm: 0o755,
                uid: 0,
                gid: 0,
            };
            for (name, bytes) in prepared.new_files() {
                if tree.resolve(&format!("{STAGING_DIR}/{name}")).is_ok() {
                    continue;
                }
                let dir = match tree.resolve(STAGING_DIR) {
                    Ok(dir) => dir,
                    Err(_) => tree
                        .mkdir(ROOT_INO, STAGING_DIR.as_ref(), node)
                        .unwrap_or(ROOT_INO),
                };
                if let Ok(ino) = tree.create_file(dir, name.as_ref(), node) {
                    let _ = tree.write(ino, 0, &bytes);
                    let mtime = Some(prepared.new_mtime);
                    let _ = tree.set_times(ino, mtime, mtime);
                }
            }
        });
        Ok(())
    }

    /// Whether a file the live canary maps may have changed since it
    /// started. It maps files of the initial tree (it is only ever started
    /// from that tree, and kept only while unharmed), and a file has changed
    /// unless its inode still holds the very chunks it started with.
    pub(crate) fn live_maps_may_have_changed(&self, prepared: &Prepared) -> bool {
        let initial = &prepared.initial;
        self.handle().with_tree(|tree| {
            initial.inodes().any(|node| match &node.kind {
                NodeKind::File(before) => tree
                    .content(node.ino)
                    .map_or(true, |now| !now.shares_chunks_with(before)),
                _ => false,
            })
        })
    }

    /// The reports of the live canary (first) and the scenario's live commands.
    pub(crate) fn live_reports(&mut self) -> Vec<LiveReport> {
        let canary = self.live.as_mut().map(|live| live.report());
        let commands = self
            .live_commands
            .iter_mut()
            .map(|(command, child)| command_report(command, child));
        let mut reports: Vec<LiveReport> = canary.into_iter().chain(commands).collect();
        for report in &mut reports {
            report.killed_why = self
                .signature_kills
                .iter()
                .find(|kill| kill.pid == report.pid)
                .map(fault_fs::SignatureKill::reason);
        }
        reports
    }

    /// The run dir: the strategy's sandbox keeps its mounts (and no other
    /// worker's), and binds it back into a `/tmp` of its own when it is in
    /// `/tmp`.
    pub(crate) fn run_dir(&self) -> &Path {
        &self.root
    }

    /// The target, the strays and the other names, read straight from the
    /// tree (no op of ours to trace).
    pub(crate) fn observe(&self, prepared: &Prepared) -> Observed {
        self.handle()
            .with_tree(|tree| prepared.observe(tree, self.mount.path()))
    }

    /// The pids of the live processes: the canary's, then the commands'.
    pub(crate) fn live_pids(&self) -> Vec<u32> {
        self.live
            .as_ref()
            .map(LiveCanary::pid)
            .into_iter()
            .chain(self.live_commands.iter().map(|(_, child)| child.pid()))
            .collect()
    }
}

fn write_new(path: &Path, bytes: &[u8], mtime: std::time::SystemTime) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::create(path).map_err(io("cannot stage NEW"))?;
    (&file).write_all(bytes).map_err(io("cannot stage NEW"))?;
    let times = std::fs::FileTimes::new()
        .set_accessed(mtime)
        .set_modified(mtime);
    file.set_times(times).map_err(io("cannot stage NEW"))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(io("cannot stage NEW"))
}
