//! Progress bars for interactive commands (indicatif), and the log writer that keeps log lines
//! from tearing them. Bars draw on stdout only when it is a terminal and `--quiet` is off;
//! otherwise they are hidden and output stays plain lines. Every line a command prints while
//! bars may be showing goes through [`suspend`], and every log line through [`LogWriter`], so
//! the bars are cleared first and redrawn after.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Decides once whether bars are shown: `enabled` and stdout is a terminal. Later calls
/// change nothing.
pub fn init(enabled: bool) {
    BARS.get_or_init(|| {
        let target = if enabled && io::stdout().is_terminal() {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        MultiProgress::with_draw_target(target)
    });
}

fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::hidden()))
}

/// Whether bars are being drawn.
pub fn shown() -> bool {
    !bars().is_hidden()
}

/// Runs `f` (which prints) with the bars cleared, then redraws them.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    bars().suspend(f)
}

/// A bar for `total` records of `object`, starting at `done`: rows, rate and time left.
pub fn records_bar(object: &str, total: u64, done: u64) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix:>12} [{wide_bar}] {human_pos}/{human_len} rows  {per_sec:0}  {eta} left")
            .expect("invariant: the template is valid")
            .progress_chars("=> ");
    let bar = bars().add(ProgressBar::new(total).with_style(style).with_prefix(object.to_owned()));
    // Counted from here, so a resumed backfill's rate and time left are this run's.
    bar.set_position(done.min(total));
    bar.reset_eta();
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Removes a bar from the screen.
pub fn finish(bar: &ProgressBar) {
    bar.finish_and_clear();
    bars().remove(bar);
}

/// Log output: stderr, with the bars suspended around each line.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

/// The writer [`LogWriter`] hands out for one log line.
#[derive(Debug)]
pub struct SuspendedStderr;

impl Write for SuspendedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        suspend(|| io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // One suspension per log line, not per partial write.
        suspend(|| io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = SuspendedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        SuspendedStderr
    }
}
