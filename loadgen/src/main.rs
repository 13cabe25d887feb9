//! `pushbench`: see [`pushbench::cli`].

fn main() -> std::process::ExitCode {
    pushbench::cli::main()
}
