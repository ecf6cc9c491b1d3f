//! The code's layout, as ARCHITECTURE.md draws it: modules of one crate
//! import one way (no cycle), the judge and the reports stand on the
//! shared vocabulary only, and no file outgrows a reader.
//!
//! A module is a top-level file or directory of a crate's `src/`; it
//! imports another when its code (not its comments) names `crate::OTHER`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates of the workspace, by their `src/`.
const CRATES: [&str; 3] = ["fault-fs/src", "harness/src", "src"];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The lines of `path` that are code: not blank, not a comment.
fn code_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read source")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .map(str::to_owned)
        .collect()
}

/// The modules of the crate at `src` and those each one imports.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(src) {
        let rel = path.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let names = graph.entry(module.clone()).or_default();
        for line in code_lines(&path) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A lowercase name is a module; `crate::Type` is a re-export.
                if name != module && name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    names.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_modules_of_each_crate_import_one_way() {
    for src in CRATES {
        let graph = imports(&root().join(src));
        assert!(graph.len() > 1 || src == "src", "{src}: {graph:?}");
        if let Some(cycle) = cycle(&graph) {
            panic!("{src}: an import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_judge_and_the_reports_stand_on_the_vocabulary_alone() {
    let graph = imports(&root().join("harness/src"));
    let below = |module: &str, allowed: &[&str]| {
        let names = &graph[module];
        let extra: Vec<&String> = names
            .iter()
            .filter(|n| !allowed.contains(&n.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} imports {extra:?}");
    };
    // The judge sees observations and says verdicts: nothing else.
    below("judge", &["observe", "outcome"]);
    // The reports read what explore and fuzz hand them, never the engines
    // (the judge only in their tests, to judge hand-built observations).
    below("report", &["observe", "outcome", "scenario", "judge"]);
    // The vocabulary stands on nothing of the engine's.
    below("observe", &[]);
    below("outcome", &["observe"]);
}

#[test]
fn no_file_is_over_a_thousand_lines_of_code_but_the_fuse_handlers() {
    for src in CRATES {
        for path in sources(&root().join(src)) {
            let lines = code_lines(&path).len();
            // The FUSE handlers: one thin method per request the kernel sends.
            if path.ends_with("fault-fs/src/fs.rs") {
                continue;
            }
            assert!(lines <= 1000, "{}: {lines} lines of code", path.display());
        }
    }
}
