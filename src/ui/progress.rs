//! Progress of a repair's steps, the one interface the wizard and `repair`
//! share: an indicatif bar on a terminal that can redraw, plain timestamped
//! lines on a pipe or a serial console (which would show a bar's redraws as
//! garbage), nothing under `-q`, `--json` or `--output runcommand`.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use vmrescue::progress::Activity;
use vmrescue::recipe::repair::Progress;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    Bar,
    Lines,
    Off,
}

impl ProgressMode {
    /// A bar only where the terminal can redraw it.
    pub(crate) fn for_stderr(enabled: bool) -> Self {
        use std::io::IsTerminal;
        let dumb = matches!(
            std::env::var("TERM").as_deref(),
            Ok("dumb" | "vt100" | "vt220") | Err(_)
        );
        match (enabled, std::io::stderr().is_terminal() && !dumb) {
            (false, _) => ProgressMode::Off,
            (true, true) => ProgressMode::Bar,
            (true, false) => ProgressMode::Lines,
        }
    }
}

/// Shows a repair's [`Progress`] events and the library's other long work
/// ([`Activity`]: LVM activation, fsck, the stages of a boot).
pub(crate) struct StepProgress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    /// The spinner of the activity running now (terminal mode).
    spinner: Option<ProgressBar>,
    /// The step running now and when it started (for its duration).
    current: Option<(String, Instant)>,
}

fn clock() -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second]");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

impl StepProgress {
    pub(crate) fn new(mode: ProgressMode) -> Self {
        StepProgress {
            mode,
            bar: None,
            spinner: None,
            current: None,
        }
    }

    pub(crate) fn event(&mut self, event: Progress) {
        match event {
            Progress::Applying {
                step,
                total,
                change,
                ..
            } => self.step(step, total, &change.headline()),
            Progress::Verifying { .. } => {
                self.finish_step();
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                if self.mode != ProgressMode::Off {
                    eprintln!("{} verifying by inspecting the target again…", clock());
                }
            }
        }
    }

    fn step(&mut self, step: usize, total: usize, headline: &str) {
        self.finish_step();
        let label = format!("[{}/{total}] {headline}", step + 1);
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Bar => {
                let bar = self.bar.get_or_insert_with(|| {
                    let bar = ProgressBar::new(total as u64);
                    if let Ok(style) = ProgressStyle::with_template(
                        "  [{pos}/{len}] {bar:20} {elapsed} {wide_msg}",
                    ) {
                        bar.set_style(style);
                    }
                    bar.enable_steady_tick(std::time::Duration::from_millis(500));
                    bar
                });
                bar.set_position(step as u64);
                bar.set_message(headline.to_string());
            }
            ProgressMode::Lines => eprintln!("{} {label}", clock()),
        }
        self.current = Some((label, Instant::now()));
    }

    pub(crate) fn activity(&mut self, activity: &Activity) {
        match (self.mode, activity) {
            (ProgressMode::Off, _) => {}
            (ProgressMode::Lines, Activity::Started { what }) => eprintln!("{} {what}…", clock()),
            (
                ProgressMode::Lines,
                Activity::Reached {
                    what,
                    milestone,
                    seconds,
                },
            ) => {
                eprintln!("{} {what}: {milestone} ({seconds} s)", clock())
            }
            (ProgressMode::Lines, Activity::Finished { what, seconds }) => {
                if *seconds >= 1 {
                    eprintln!("{} {what} done ({seconds} s)", clock());
                }
            }
            (ProgressMode::Bar, Activity::Started { what }) => {
                let spinner = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template("  {spinner} {elapsed} {wide_msg}")
                {
                    spinner.set_style(style);
                }
                spinner.enable_steady_tick(std::time::Duration::from_millis(200));
                spinner.set_message(format!("{what}…"));
                self.spinner = Some(spinner);
            }
            (
                ProgressMode::Bar,
                Activity::Reached {
                    what, milestone, ..
                },
            ) => {
                if let Some(spinner) = &self.spinner {
                    spinner.set_message(format!("{what}: {milestone}"));
                }
            }
            (ProgressMode::Bar, Activity::Finished { .. }) => {
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
                }
            }
        }
    }

    /// A step that took a while gets a line with its duration.
    fn finish_step(&mut self) {
        let Some((label, started)) = self.current.take() else {
            return;
        };
        let seconds = started.elapsed().as_secs();
        if self.mode == ProgressMode::Lines && seconds >= 1 {
            eprintln!("{} {label} ({seconds} s)", clock());
        }
    }
}

/// Shows the library's long work ([`Activity`]) for the rest of the
/// process, in `mode`.
pub(crate) fn show_activities(mode: ProgressMode) {
    if mode == ProgressMode::Off {
        return;
    }
    let shown = std::sync::Mutex::new(StepProgress::new(mode));
    vmrescue::progress::set_hook(Box::new(move |activity| {
        if let Ok(mut shown) = shown.lock() {
            shown.activity(activity);
        }
    }));
}
