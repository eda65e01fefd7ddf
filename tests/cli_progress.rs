//! Progress bars of `hsync backfill` as a real subprocess: on a terminal (a pseudo-terminal
//! from util-linux `script`) each object gets a bar with rows, rate and time left, and the
//! summary lines still appear; with stdout piped the output is only the plain summary lines,
//! without a single escape sequence.

use std::path::Path;
use std::process::Stdio;

use hsync_sim::{LimitSettings, PortalSpec, DEFAULT_TOKEN};

use crate::support::cli::{explain, hsync, stdout, write_config, TOKEN_VAR};
use crate::support::{limited, Sim};

const CONTACTS: u64 = 2_000;

fn config(dir: &Path, sim: &Sim) -> std::path::PathBuf {
    let sections = format!(
        "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\"]\n",
        dir.join("w.db").display()
    );
    write_config(dir, &sim.handle.base_url(), &sections)
}

/// Single-quoted for `sh -c`.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[tokio::test]
async fn backfill_draws_bars_on_a_terminal_and_plain_lines_when_piped() {
    // Rate-limited, so the backfill's 11 searches take long enough for the bar to be drawn.
    let portal = PortalSpec { contacts: CONTACTS, ..crate::support::small_portal() };
    let sim = Sim::start(limited(portal, LimitSettings::default())).await;
    let summary = format!("contacts: {CONTACTS} rows in {} pages, done", CONTACTS.div_ceil(200));

    let piped_dir = tempfile::tempdir().unwrap();
    let piped = hsync(&config(piped_dir.path(), &sim), &["backfill"]).await;
    assert_eq!(piped.status.code(), Some(0), "{}", explain(&piped));
    assert_eq!(stdout(&piped), format!("{summary}\n"), "only the summary line: {}", explain(&piped));
    assert!(!explain(&piped).contains('\u{1b}'), "no escape sequences anywhere: {}", explain(&piped));

    let tty_dir = tempfile::tempdir().unwrap();
    let config = config(tty_dir.path(), &sim);
    let inner =
        format!("{} --config {} backfill", quoted(env!("CARGO_BIN_EXE_hsync")), quoted(&config.to_string_lossy()));
    let mut script = tokio::process::Command::new("script");
    script.args(["--quiet", "--return", "--command", &inner, "/dev/null"]);
    script.env(TOKEN_VAR, DEFAULT_TOKEN).env("RUST_LOG", "warn").env("TERM", "xterm").env("COLUMNS", "120");
    script.stdin(Stdio::null()).kill_on_drop(true);
    let tty = script.output().await.expect("util-linux script runs the binary on a pseudo-terminal");
    let screen = stdout(&tty);
    assert_eq!(tty.status.code(), Some(0), "{}", explain(&tty));
    assert!(screen.contains(&summary), "the summary line still appears: {}", explain(&tty));
    let bar = screen
        .split(['\r', '\n'])
        .find(|l| l.contains("contacts [") && l.contains("/2,000 rows"))
        .unwrap_or_else(|| panic!("no progress bar was drawn: {screen:?}"));
    assert!(bar.contains("/s") && bar.contains(" left"), "the bar shows the rate and the time left: {bar:?}");
}
