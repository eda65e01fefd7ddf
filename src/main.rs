use std::process::ExitCode;

fn main() -> ExitCode {
    hsync::cli::main()
}
