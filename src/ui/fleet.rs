//! `vmrescue az-fleet`'s screen: a status line per VM in flight and the
//! summary table.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use vmrescue::fleet::engine::Observer;
use vmrescue::fleet::summary::{self, Outcome, VmReport};
use vmrescue::fleet::{Step, VmRef};

/// A status line per VM in flight (a spinner on a terminal, plain lines
/// otherwise), and one line per VM when it is done.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    total: usize,
    done: Mutex<usize>,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(total: usize, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal() && !quiet;
        Progress {
            multi: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
            total,
            done: Mutex::new(0),
            quiet,
        }
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

impl Observer for Progress {
    fn step(&self, vm: &VmRef, step: Step, note: &str) {
        tracing::info!(vm = %vm, step = step.label(), "{note}");
        let text = format!("{vm}: {} {note}", step.label());
        let Some(multi) = &self.multi else {
            self.line(&format!("  {text}"));
            return;
        };
        if let Ok(mut bars) = self.bars.lock() {
            let bar = bars.entry(vm.key()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            bar.set_message(text);
        }
    }

    fn finished(&self, report: &VmReport) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(&report.vm) {
                bar.finish_and_clear();
            }
        }
        let done = self.done.lock().map(|mut d| {
            *d += 1;
            *d
        });
        self.line(&format!(
            "[{}/{}] {}: {} ({:.0} s) {}",
            done.unwrap_or(0),
            self.total,
            report.vm,
            report.outcome.label(),
            report.seconds,
            report.detail
        ));
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// The finding id of a "Title (id)" diagnosis: short and exact for a table.
fn finding_id(diagnosis: &str) -> &str {
    diagnosis
        .rsplit_once(" (")
        .and_then(|(_, id)| id.strip_suffix(')'))
        .filter(|id| !id.contains(' '))
        .unwrap_or(diagnosis)
}

fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

/// The summary table, the commands for the VMs left to a person, and totals.
pub(crate) fn render_table(reports: &[VmReport]) -> String {
    let header = [
        "VM",
        "OUTCOME",
        "DIAGNOSIS",
        "RECIPE",
        "VERIFIED",
        "RESTORED",
        "BOOTS",
        "TIME",
        "NEXT",
    ];
    let rows: Vec<[String; 9]> = reports
        .iter()
        .map(|r| {
            [
                r.vm.clone(),
                r.outcome.label().to_string(),
                cut(r.diagnosis.as_deref().map(finding_id).unwrap_or("-"), 40),
                r.recipe.clone().unwrap_or_else(|| "-".into()),
                yes_no(Some(r.verified)).into(),
                yes_no(Some(r.restored)).into(),
                yes_no(r.boots).into(),
                format!("{:.1}s", r.seconds),
                cut(&r.next, 60),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    let attention: Vec<&VmReport> = reports
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Repaired | Outcome::Skipped))
        .collect();
    if !attention.is_empty() {
        out.push_str("\nLeft for a person:\n");
        for r in attention {
            out.push_str(&format!(
                "  {} ({}): {}\n",
                r.vm,
                r.outcome.label(),
                r.detail
            ));
            for command in &r.commands {
                out.push_str(&format!("    {command}\n"));
            }
        }
    }
    let t = summary::totals(reports);
    out.push_str(&format!(
        "\n{} selected: {} repaired, {} need attention; {} skipped; exit {}\n",
        t.selected, t.repaired, t.needs_attention, t.skipped, t.exit_code
    ));
    out
}
