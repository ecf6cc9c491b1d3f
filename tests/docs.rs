//! The docs say what the binary does: docs/USAGE.md's command table lists
//! exactly the flags of each command's `--help`, its exit-code table is the
//! one in `src/exit.rs`; docs/SCENARIOS.md's scenario-error table is what
//! the files in `scenarios/invalid/` give; the README's exploration is what
//! `explore` prints.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::swapfault;

/// A document of the repository, by its path from the root.
fn doc(path: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The `--flags` named in `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let name: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        if !name.is_empty() {
            found.insert(format!("--{name}"));
        }
        rest = &rest[at + 2..];
    }
    found
}

/// A markdown table's rows (cells split on unescaped `|`) after `header`.
fn table_rows(readme: &str, header: &str) -> Vec<Vec<String>> {
    let start = readme
        .find(header)
        .unwrap_or_else(|| panic!("no table `{header}`"));
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.replace("\\|", "\u{1}")
                .split('|')
                .map(|cell| cell.trim().replace('\u{1}', "|"))
                .filter(|cell| !cell.is_empty())
                .collect()
        })
        .collect()
}

#[test]
fn the_command_table_names_every_flag_of_every_command() {
    let usage = doc("docs/USAGE.md");
    let rows = table_rows(&usage, "| command | flags | what it does |");
    assert!(usage.contains("Every command takes `--color auto|always|never`"));
    for command in ["demo", "check", "run", "explore", "fuzz", "mount", "bench"] {
        let row = rows
            .iter()
            .find(|row| row[0].starts_with(&format!("`swapfault {command}")))
            .unwrap_or_else(|| panic!("USAGE.md has no row for `swapfault {command}`"));
        let output = swapfault()
            .args([command, "--help"])
            .output()
            .expect("--help");
        let mut help = flags(&String::from_utf8_lossy(&output.stdout));
        help.remove("--help");
        // Global: said once, under the table.
        help.remove("--color");
        let said = flags(&row[..row.len() - 1].join(" "));
        assert_eq!(
            said, help,
            "USAGE.md's row for `{command}` against its --help"
        );
    }
}

#[test]
fn the_exit_code_table_is_the_one_in_src_exit_rs() {
    let source = include_str!("../src/exit.rs");
    let ours: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//! | "))
        .filter(|row| row.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(ours.len(), 6, "{ours:?}");
    let usage = doc("docs/USAGE.md");
    for row in ours {
        assert!(
            usage.contains(&format!("| {row}")),
            "USAGE.md lacks exit row: | {row}"
        );
    }
    // And the top-level help tells it too.
    let output = swapfault().arg("--help").output().expect("--help");
    let help = String::from_utf8_lossy(&output.stdout);
    for code in ["0", "1", "2", "3", "130", "141"] {
        assert!(
            help.contains(&format!("  {code} ")),
            "--help lacks exit {code}: {help}"
        );
    }
}

#[test]
fn each_invalid_scenario_gives_the_line_the_docs_show() {
    let scenarios = doc("docs/SCENARIOS.md");
    let rows = table_rows(&scenarios, "| file | what it says |");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/invalid");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("scenarios/invalid")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let named: BTreeSet<String> = rows
        .iter()
        .map(|r| r[0].trim_matches('`').to_owned())
        .collect();
    assert_eq!(
        named, files,
        "every invalid example is in SCENARIOS.md, and only those"
    );
    for row in &rows {
        let name = row[0].trim_matches('`');
        let fragment = row[1].trim_matches('`').trim();
        let path = format!("scenarios/invalid/{name}");
        let output = swapfault().args(["run", &path]).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{name}: one line: {stderr}"
        );
        assert!(
            stderr.contains(&path) && stderr.contains(fragment),
            "{name}: SCENARIOS.md says `{fragment}`, swapfault says {stderr}"
        );
    }
}

/// The text of the first ```text block after `heading` in `markdown`.
fn text_block_after<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let at = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"));
    let rest = &markdown[at..];
    let start = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let end = rest[start..].find("```").expect("its end");
    &rest[start..start + end]
}

#[test]
fn the_readme_shows_what_explore_prints_for_your_own_strategy() {
    let readme = doc("README.md");
    let command = "cp \"$SWAPFAULT_NEW\" \"$SWAPFAULT_TARGET.tmp\" && mv \"$SWAPFAULT_TARGET.tmp\" \"$SWAPFAULT_TARGET\"";
    assert!(
        readme.contains(&format!("swapfault explore --strategy '{command}'")),
        "the README runs another command"
    );
    let output = swapfault()
        .args(["explore", "--strategy", command])
        .output()
        .expect("explore");
    assert_eq!(output.status.code(), Some(1), "a finding");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text_block_after(&readme, "## Your own strategy").trim_end(),
        printed.trim_end(),
        "the README's exploration against what explore prints"
    );
}

#[test]
fn completions_load_in_bash_and_the_man_page_names_every_command() {
    let output = swapfault()
        .args(["completions", "bash"])
        .output()
        .expect("completions");
    assert!(output.status.success());
    let script = String::from_utf8_lossy(&output.stdout).into_owned();
    // bash loads the script and binds it to the command.
    let bound = std::process::Command::new("bash")
        .args(["-c", "eval \"$SCRIPT\" && complete -p swapfault"])
        .env("SCRIPT", &script)
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&bound.stdout);
    assert!(
        said.contains("_swapfault") && said.trim_end().ends_with(" swapfault"),
        "{said}"
    );
    let output = swapfault().arg("man").output().expect("man");
    assert!(output.status.success());
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.contains(".TH swapfault 1"), "{page}");
    for command in [
        "demo",
        "check",
        "run",
        "explore",
        "fuzz",
        "mount",
        "bench",
        "completions",
    ] {
        assert!(page.contains(command), "the man page lacks `{command}`");
    }
}
