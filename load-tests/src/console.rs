//! What the person running the load sees: progress bars on a terminal (none when the
//! output is not a terminal, e.g. in CI) and one-line notes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars and notes for one run.
#[derive(Debug, Clone)]
pub struct Console {
    bars: MultiProgress,
    interactive: bool,
}

impl Console {
    /// Bars on stderr when it is a terminal; plain notes otherwise.
    pub fn new() -> Console {
        let interactive = std::io::stderr().is_terminal();
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Console {
            bars: MultiProgress::with_draw_target(target),
            interactive,
        }
    }

    /// Prints a line above the bars.
    pub fn note(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        if self.interactive {
            // Falls back to stderr if the bars cannot print.
            if self.bars.println(message).is_err() {
                eprintln!("{message}");
            }
        } else {
            eprintln!("{message}");
        }
    }

    /// A bar counting `len` items.
    pub fn counter(&self, len: u64, what: &str) -> ProgressBar {
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {what:<18} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} {{msg}}"
        ))
        .expect("valid progress template")
        .progress_chars("=> ");
        self.add(ProgressBar::new(len).with_style(style))
    }

    /// A bar of `duration` in seconds, with a message for live figures.
    pub fn timer(&self, duration: Duration, what: &str) -> ProgressBar {
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {what:<18} [{{bar:30}}] {{pos}}/{{len}} s {{msg}}"
        ))
        .expect("valid progress template")
        .progress_chars("=> ");
        self.add(ProgressBar::new(duration.as_secs().max(1)).with_style(style))
    }

    fn add(&self, bar: ProgressBar) -> ProgressBar {
        let bar = self.bars.add(bar);
        if self.interactive {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        bar
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}
