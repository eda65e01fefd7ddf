//! Running the real `hsync` binary against a simulator: a config file, the command with the
//! simulator's token in the variable the config names, and failure messages that show
//! everything the binary printed.

use std::path::{Path, PathBuf};
use std::process::Output;

use hsync_sim::DEFAULT_TOKEN;

/// The variable the configs written here name for the token.
pub const TOKEN_VAR: &str = "HSYNC_TEST_SIM_TOKEN";

/// Writes `dir/hsync.toml` for the simulator at `base_url`, the token in [`TOKEN_VAR`], and
/// `sections` (more TOML: `[destination]`, `[sync]`, `[limits]`, ...).
pub fn write_config(dir: &Path, base_url: &str, sections: &str) -> PathBuf {
    let path = dir.join("hsync.toml");
    let text = format!("[hubspot]\nbase_url = \"{base_url}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n{sections}\n");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// The binary with `args` (after `--config config` when given), the token (`None`: the
/// variable is unset) and warnings-only logs.
pub fn command(config: Option<&Path>, args: &[&str], token: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(args).env("RUST_LOG", "warn").kill_on_drop(true);
    match token {
        Some(t) => cmd.env(TOKEN_VAR, t),
        None => cmd.env_remove(TOKEN_VAR),
    };
    cmd
}

/// Runs the binary with the simulator's token and waits for it.
pub async fn hsync(config: &Path, args: &[&str]) -> Output {
    command(Some(config), args, Some(DEFAULT_TOKEN)).output().await.expect("run hsync")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn explain(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), stdout(o), String::from_utf8_lossy(&o.stderr))
}
