//! A program that replaces its own executable with the file its one
//! argument names, by the `self-replace` crate, as a self-updating program
//! calls it. tests/crates.rs runs it from the target.

fn main() {
    let Some(new) = std::env::args_os().nth(1) else {
        eprintln!("usage: self-updating NEW");
        std::process::exit(2);
    };
    if let Err(err) = self_replace::self_replace(&new) {
        eprintln!("self-updating: {err}");
        std::process::exit(1);
    }
}
