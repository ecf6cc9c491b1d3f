//! Criterion benches; every figure in docs/PERFORMANCE.md comes from here,
//! with the variants of a ratio measured side by side in one run.
//!
//! - `copy_64mib`: a 64 MiB copy into tmpfs vs into fault-fs (trace on, off);
//! - `replace_1mib`: write+fsync+rename of 1 MiB on tmpfs, disk and fault-fs;
//! - `explore_install`: crash points of `install` of a 1 MiB library with a
//!   live canary, vs one plain run of install on tmpfs and on fault-fs, and
//!   the fixed costs around a run (reset, canary start, mount);
//! - `explore_64mib`: the same exploration of a 64 MiB library, sampled.
//!
//! Needs root and /dev/fuse, like the tests. `cargo bench --bench swapfault`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fault_fs::{FaultFs, FaultMount, FaultPlan, Tree};

const COPY_SIZE: usize = 64 << 20;

fn copy_file(from: &Path, to: &Path) {
    // cp, as users copy: read/write in 128 KiB requests.
    let status = Command::new("cp").arg(from).arg(to).status().expect("cp");
    assert!(status.success());
}

fn mount_in(dir: &Path) -> FaultMount {
    mount_tree_in(dir, Tree::new())
}

fn mount_tree_in(dir: &Path, tree: Tree) -> FaultMount {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).expect("mount point");
    FaultMount::mount(FaultFs::new(tree, FaultPlan::default()), &mnt).expect("mount")
}

fn copy_64mib(c: &mut Criterion) {
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let source = shm.path().join("source");
    std::fs::write(&source, vec![0x5a; COPY_SIZE]).expect("source");
    let work = tempfile::tempdir().expect("work dir");
    let mount = mount_in(work.path());
    let mut group = c.benchmark_group("copy_64mib");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(COPY_SIZE as u64));
    group.bench_function("tmpfs", |b| {
        b.iter(|| copy_file(&source, &shm.path().join("copy")))
    });
    group.bench_function("fault-fs", |b| {
        b.iter(|| copy_file(&source, &mount.join("copy")));
        mount.handle().take_trace();
    });
    mount.handle().set_keep_trace(false);
    group.bench_function("fault-fs-no-trace", |b| {
        b.iter(|| copy_file(&source, &mount.join("copy")))
    });
    mount.handle().set_keep_trace(true);
    group.finish();
    // Trace size per op: one copy, counted.
    mount.handle().take_trace();
    copy_file(&source, &mount.join("copy"));
    let ops = mount.handle().trace().len();
    println!(
        "trace: {ops} ops for one 64 MiB copy; {} bytes per record (+ shared interned paths)",
        std::mem::size_of::<fault_fs::OpRecord>()
    );
}

fn replace_once(dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let tmp = dir.join(".target.tmp");
    let mut file = std::fs::File::create(&tmp).expect("create");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("fsync");
    std::fs::rename(&tmp, dir.join("target")).expect("rename");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}

fn replace_1mib(c: &mut Criterion) {
    let bytes = vec![0xa5; 1 << 20];
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("disk dir");
    let work = tempfile::tempdir().expect("work dir");
    let mount = mount_in(work.path());
    let mut group = c.benchmark_group("replace_1mib");
    group.sample_size(20);
    for (name, dir) in [
        ("tmpfs", shm.path()),
        ("disk", disk.path()),
        ("fault-fs", mount.path()),
    ] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &dir, |b, dir| {
            b.iter(|| replace_once(dir, &bytes))
        });
    }
    group.finish();
}

/// Runs `install NEW TARGET` as the strategy would: through `sh -c`.
fn install_once(command: &str, new: &Path, target: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("SWAPFAULT_NEW", new)
        .env("SWAPFAULT_TARGET", target)
        .status()
        .expect("install");
    assert!(status.success());
}

fn explore_install(c: &mut Criterion) {
    let scenario = harness::Scenario::ad_hoc(
        r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
        harness::TargetKind::Lib,
        1 << 20,
        // The same size for the new one: the workload of every earlier
        // figure in docs/PERFORMANCE.md.
        1 << 20,
    );
    let prepared = harness::Prepared::new(scenario).expect("prepare");
    let command = prepared.scenario.strategy.command.clone();
    let options = harness::explore::ExploreOptions::default();
    let stop = AtomicBool::new(false);
    let report = harness::explore::explore(&prepared, &options, &stop, &|_| {}).expect("explore");
    let points = report.points;
    println!(
        "explore_install: {} crash points per exploration ({} run, {} power cuts computed in {} durable states), {} workers",
        points.checked, points.run, points.computed, points.durable_states, options.workers
    );
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let new = shm.path().join("new");
    std::fs::write(&new, &*prepared.new).expect("new");
    let mut group = c.benchmark_group("explore_install");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    // The same strategy, undisturbed, with the old version in place first.
    let target = shm.path().join("libcanary.so");
    group.bench_function("plain-run-tmpfs", |b| {
        b.iter(|| {
            std::fs::write(&target, &*prepared.old).expect("old");
            install_once(&command, &new, &target)
        })
    });
    // The same on a fault-fs mount (no fault, no canary), put back by reset.
    let work = tempfile::tempdir().expect("work dir");
    let initial = prepared.initial_tree();
    let mount = mount_tree_in(work.path(), initial.clone());
    let target = mount.join("app/libcanary.so");
    group.bench_function("plain-run-fault-fs", |b| {
        b.iter(|| {
            mount.handle().reset(&initial);
            install_once(&command, &new, &target)
        })
    });
    // Where a crash point's time goes besides the strategy's own runs.
    group.bench_function("reset-after-install", |b| {
        b.iter_batched(
            || install_once(&command, &new, &target),
            |()| mount.handle().reset(&initial),
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("canary-start", |b| {
        b.iter(|| {
            harness::live::LiveCanary::start(&mount.join("app/canary"), None, None).expect("canary")
        })
    });
    drop(mount);
    group.bench_function("mount-unmount", |b| {
        b.iter(|| drop(mount_in(work.path())));
    });
    // What `swapfault run` does once: mount, stage, canary, strategy, checks.
    group.bench_function("one-run-fresh-mount", |b| {
        b.iter(|| harness::run(&prepared, &[], &harness::RunOptions::default()).expect("run"))
    });
    group.throughput(Throughput::Elements(points.checked as u64));
    group.bench_function("exploration", |b| {
        b.iter(|| harness::explore::explore(&prepared, &options, &stop, &|_| {}).expect("explore"))
    });
    group.finish();
}

/// A real size: `install` of a 64 MiB library under a live canary, its long
/// run of writes sampled (the default). `--exhaustive` takes minutes per
/// exploration here; docs/PERFORMANCE.md times it once with `/usr/bin/time`.
fn explore_64mib(c: &mut Criterion) {
    let scenario = harness::Scenario::ad_hoc(
        r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
        harness::TargetKind::Lib,
        64 << 20,
        harness::scenario::default_new_size(64 << 20),
    );
    let prepared = harness::Prepared::new(scenario).expect("prepare");
    let options = harness::explore::ExploreOptions::default();
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group("explore_64mib");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(120));
    group.bench_function("sampled", |b| {
        b.iter(|| harness::explore::explore(&prepared, &options, &stop, &|_| {}).expect("explore"))
    });
    group.finish();
}

criterion_group!(
    benches,
    copy_64mib,
    replace_1mib,
    explore_install,
    explore_64mib
);
criterion_main!(benches);
