//! The `swapfault` binary: everything lives in [`cli`] and the library crates.

mod cli;
mod exit;

fn main() -> std::process::ExitCode {
    cli::init_tracing();
    cli::main()
}
