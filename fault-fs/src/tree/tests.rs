//! The tree on its own: names, links, renames, contents and snapshots.

use super::*;
use proptest::prelude::*;

fn new_node() -> NewNode {
    NewNode {
        perm: 0o644,
        uid: 0,
        gid: 0,
    }
}

proptest! {
    // Content must behave exactly like a Vec<u8> under writes and truncates.
    #[test]
    fn content_matches_a_plain_vec(ops in proptest::collection::vec(
        (any::<bool>(), 0u64..200_000, proptest::collection::vec(any::<u8>(), 0..70_000)), 1..12)) {
        let mut content = Content::default();
        let mut model: Vec<u8> = Vec::new();
        for (is_write, offset, data) in ops {
            if is_write {
                content.write(offset, &data);
                let end = offset as usize + data.len();
                if !data.is_empty() {
                    if model.len() < end { model.resize(end, 0); }
                    model[offset as usize..end].copy_from_slice(&data);
                }
            } else {
                content.truncate(offset);
                model.resize(offset as usize, 0);
            }
            prop_assert_eq!(content.len(), model.len() as u64);
        }
        prop_assert_eq!(&content.to_vec(), &model);
        prop_assert_eq!(&content, &Content::from_bytes(&model));
    }
}

#[test]
fn a_write_far_past_the_end_costs_nothing_for_the_hole() {
    // `dd seek=1T bs=1 count=1`: one byte at 1 TiB.
    let tib = 1u64 << 40;
    let mut content = Content::from_bytes(b"head");
    content.write(tib, b"x");
    assert_eq!(content.len(), tib + 1);
    assert_eq!(content.allocated(), 4 + 1);
    assert_eq!(content.blocks(), 2 * (CHUNK as u64 / 512));
    assert_eq!(content.read(tib - 2, 8), b"\0\0x");
    assert_eq!(content.read(0, 6), b"head\0\0");
    // Holes compare without being read byte by byte, and a snapshot
    // taken before the write is untouched.
    let mut other = Content::from_bytes(b"head");
    assert_ne!(content, other);
    other.write(tib, b"x");
    assert_eq!(content, other);
    content.truncate(tib / 2);
    assert_eq!(content.allocated(), 4);
    assert_eq!(content.len(), tib / 2);
    assert!(!content.is_prefix_of(b"head"));
    content.truncate(3);
    assert!(content.is_prefix_of(b"head"));
}

#[test]
fn snapshot_does_not_see_later_writes() {
    let mut tree = Tree::new();
    let ino = tree
        .create_file(ROOT_INO, OsStr::new("f"), new_node())
        .unwrap();
    tree.write(ino, 0, b"old").unwrap();
    let snapshot = tree.clone();
    tree.write(ino, 0, b"new").unwrap();
    assert_eq!(snapshot.read(ino, 0, 3).unwrap(), b"old");
    assert_eq!(tree.read(ino, 0, 3).unwrap(), b"new");
}

#[test]
fn prefix_test_matches_the_bytes_holes_included() {
    let bytes: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
    let mut content = Content::from_bytes(&bytes[..2 * CHUNK + 7]);
    assert!(content.is_prefix_of(&bytes));
    assert!(
        !content.is_prefix_of(&bytes[..CHUNK]),
        "longer than the bytes"
    );
    let mut other = bytes.clone();
    other[CHUNK + 3] ^= 1;
    assert!(!content.is_prefix_of(&other));
    // A hole (written past the end) reads as zeros.
    content.truncate(0);
    content.write(CHUNK as u64 + 1, &[5]);
    let mut holey = vec![0; CHUNK + 1];
    holey.push(5);
    assert!(content.is_prefix_of(&holey));
    holey[3] = 1;
    assert!(!content.is_prefix_of(&holey));
}

#[test]
fn prefix_test_of_two_contents_reads_only_the_chunks_they_do_not_share() {
    let bytes: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
    let whole = Content::from_bytes(&bytes);
    let mut shared = whole.clone();
    shared.truncate(2 * CHUNK as u64 + 7);
    assert!(shared.is_prefix_of_content(&whole));
    let copied = Content::from_bytes(&bytes[..CHUNK + 1]);
    assert!(
        copied.is_prefix_of_content(&whole),
        "equal bytes, own chunks"
    );
    assert!(whole.is_prefix_of_content(&whole.clone()), "itself");
    assert!(
        !whole.is_prefix_of_content(&shared),
        "longer than the other"
    );
    shared.write(CHUNK as u64 + 3, &[bytes[CHUNK + 3] ^ 1]);
    assert!(!shared.is_prefix_of_content(&whole));
    assert!(Content::default().is_prefix_of_content(&whole));
}

#[test]
fn a_snapshot_differs_only_in_the_inodes_written_since() {
    let mut tree = Tree::new();
    let a = tree
        .create_file(ROOT_INO, OsStr::new("a"), new_node())
        .unwrap();
    let b = tree
        .create_file(ROOT_INO, OsStr::new("b"), new_node())
        .unwrap();
    let snapshot = tree.clone();
    assert!(tree.changed_inodes(&snapshot).is_empty());
    tree.write(a, 0, b"new").unwrap();
    let c = tree
        .create_file(ROOT_INO, OsStr::new("c"), new_node())
        .unwrap();
    tree.chmod(b, 0o700).unwrap();
    let changes: Vec<(u64, bool)> = tree
        .changed_inodes(&snapshot)
        .into_iter()
        .map(|change| (change.ino, change.data))
        .collect();
    // The root gained an entry (a directory: never "same data"); b only
    // changed its mode, so its cached pages may stay.
    assert_eq!(
        changes,
        vec![(ROOT_INO, true), (a, true), (b, false), (c, true)]
    );
}

#[test]
fn same_state_ignores_times_but_not_bytes_or_names() {
    let mut tree = Tree::new();
    let a = tree
        .create_file(ROOT_INO, OsStr::new("a"), new_node())
        .unwrap();
    tree.write(a, 0, &[7; 3 * CHUNK]).unwrap();
    let snapshot = tree.clone();
    // Rewriting the same bytes makes new chunks and a new mtime, not a new state.
    tree.write(a, CHUNK as u64, &[7; CHUNK]).unwrap();
    assert!(tree.same_state(&snapshot));
    tree.write(a, CHUNK as u64, &[8]).unwrap();
    assert!(!tree.same_state(&snapshot));
    let mut renamed = snapshot.clone();
    renamed
        .rename(
            ROOT_INO,
            OsStr::new("a"),
            ROOT_INO,
            OsStr::new("b"),
            RenameMode::Replace,
        )
        .unwrap();
    assert!(!renamed.same_state(&snapshot));
}

#[test]
fn restore_never_reuses_inode_numbers() {
    let mut tree = Tree::new();
    let snapshot = tree.clone();
    let first = tree
        .create_file(ROOT_INO, OsStr::new("a"), new_node())
        .unwrap();
    tree.restore(&snapshot);
    let second = tree
        .create_file(ROOT_INO, OsStr::new("a"), new_node())
        .unwrap();
    assert_ne!(first, second);
}

#[test]
fn a_restored_directory_gets_a_new_generation_a_restored_file_does_not() {
    let mut tree = Tree::new();
    let dir = tree.mkdir(ROOT_INO, OsStr::new("d"), new_node()).unwrap();
    let file = tree
        .create_file(ROOT_INO, OsStr::new("f"), new_node())
        .unwrap();
    let snapshot = tree.clone();
    tree.restore(&snapshot);
    assert_eq!(tree.generation(dir), 0, "nothing was removed");
    tree.rmdir(ROOT_INO, OsStr::new("d")).unwrap();
    tree.unlink(ROOT_INO, OsStr::new("f")).unwrap();
    tree.restore(&snapshot);
    assert_eq!(tree.generation(dir), 1);
    // A file keeps its generation: a live mapping of it stays valid.
    assert_eq!(tree.generation(file), 0);
}

#[test]
fn resolving_follows_relative_absolute_dangling_and_looping_links() {
    let mut tree = Tree::new();
    let app = tree.mkdir(ROOT_INO, OsStr::new("app"), new_node()).unwrap();
    let lib = tree
        .create_file(app, OsStr::new("lib.so.1"), new_node())
        .unwrap();
    let link = |tree: &mut Tree, name: &str, target: &str| {
        tree.symlink(app, OsStr::new(name), OsStr::new(target), new_node())
            .unwrap();
    };
    link(&mut tree, "lib.so", "lib.so.1");
    link(&mut tree, "abs", "/mnt/x/app/lib.so");
    link(&mut tree, "up", "../app/./lib.so");
    link(&mut tree, "outside", "/usr/lib/lib.so");
    link(&mut tree, "dangling", "lib.so.2");
    link(&mut tree, "loop", "loop");
    let resolve = |path: &str| tree.resolve_following(path, "/mnt/x");
    let found = Ok((lib, "/app/lib.so.1".to_owned()));
    assert_eq!(resolve("app/lib.so"), found);
    assert_eq!(resolve("/app/abs"), found);
    assert_eq!(resolve("app/up"), found);
    assert_eq!(resolve("app/outside"), Err(Errno::EXDEV));
    assert_eq!(resolve("app/dangling"), Err(Errno::ENOENT));
    assert_eq!(resolve("app/loop"), Err(Errno::ELOOP));
}

#[test]
fn unlinked_file_stays_readable_while_pinned() {
    let mut tree = Tree::new();
    let ino = tree
        .create_file(ROOT_INO, OsStr::new("f"), new_node())
        .unwrap();
    tree.write(ino, 0, b"data").unwrap();
    tree.pin(ino);
    tree.unlink(ROOT_INO, OsStr::new("f")).unwrap();
    assert_eq!(tree.read(ino, 0, 4).unwrap(), b"data");
    tree.unpin(ino, 1);
    assert_eq!(tree.get(ino).unwrap_err(), Errno::ENOENT);
}
