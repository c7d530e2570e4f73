//! The `rivulet` command: mount, download, seed, info, plugins.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
