//! The resumable state file: JSON lines, appended as each step of each VM
//! starts and ends. A run that was killed and started again with the same
//! file skips what is done, and never runs `create` twice for a VM.
//!
//! The first line names the fleet run (`{"kind":"fleet","fleet_id":…}`): the
//! repair resource names derive from it, so a resumed run looks for the same
//! repair VM. Then one line per VM and step event: `started` before the `az`
//! call, `done` or `failed` after it. The last line of a VM's step is what
//! counts.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::verdict::Assessment;
use super::Step;

pub const STATE_VERSION: u32 = 1;

/// One line of the state file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Line {
    Fleet {
        v: u32,
        fleet_id: String,
        at: String,
    },
    Step(StepRecord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Started,
    Done,
    Failed,
}

/// One event of one step of one VM.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRecord {
    pub v: u32,
    pub vm: String,
    pub step: Step,
    pub event: Event,
    pub at: String,
    /// `at` as milliseconds since the epoch (for durations).
    #[serde(default)]
    pub t_ms: u64,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<StepData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A failure Azure may clear by itself (throttling): the step is tried again.
    #[serde(default)]
    pub transient: bool,
}

/// What a finished step left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepData {
    Evidence {
        serial_log: Option<PathBuf>,
        bytes: u64,
    },
    Created(Created),
    Ran(Assessment),
    Restored,
    Started,
    Boot {
        /// `None`: no serial log could be read.
        boots: Option<bool>,
        line: Option<String>,
    },
}

/// The repair resources `az vm repair create` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Created {
    pub repair_vm_id: String,
    pub repair_vm_name: String,
    pub repair_resource_group: String,
    pub copied_disk_name: String,
}

/// Where one step of one VM stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    /// Started and never answered: the process died during the `az` call.
    Started {
        attempt: u32,
    },
    Done(Option<StepData>),
    Failed {
        error: String,
        transient: bool,
        attempt: u32,
    },
}

/// Everything the state file knows about one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmProgress {
    pub steps: BTreeMap<Step, StepState>,
    /// How many times `run` was started on this VM's repair VM.
    pub run_starts: u32,
    /// The first and the last record's time (ms since the epoch).
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
}

impl VmProgress {
    fn apply(&mut self, record: &StepRecord) {
        if record.t_ms > 0 {
            self.first_ms.get_or_insert(record.t_ms);
            self.last_ms = Some(record.t_ms);
        }
        let state = match record.event {
            Event::Started => {
                if record.step == Step::Run {
                    self.run_starts += 1;
                }
                StepState::Started {
                    attempt: record.attempt,
                }
            }
            Event::Done => StepState::Done(record.data.clone()),
            Event::Failed => StepState::Failed {
                error: record.error.clone().unwrap_or_default(),
                transient: record.transient,
                attempt: record.attempt,
            },
        };
        self.steps.insert(record.step, state);
    }

    pub fn get(&self, step: Step) -> Option<&StepState> {
        self.steps.get(&step)
    }

    /// The data of a finished step.
    pub fn done(&self, step: Step) -> Option<&StepData> {
        match self.steps.get(&step) {
            Some(StepState::Done(data)) => data.as_ref(),
            _ => None,
        }
    }

    pub fn is_done(&self, step: Step) -> bool {
        matches!(self.steps.get(&step), Some(StepState::Done(_)))
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, as RFC 3339 with milliseconds.
pub fn now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// The open state file: what it held when opened, and the handle new lines
/// are appended to.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    file: Mutex<File>,
    pub fleet_id: String,
    loaded: BTreeMap<String, VmProgress>,
    /// Whether the file held a fleet run already (a resume).
    pub resumed: bool,
    /// A write failed: nothing more may be started (it could not be resumed safely).
    broken: AtomicBool,
}

impl StateFile {
    /// Opens (or creates) the state file. A line torn by a kill during the
    /// write is cut off, so the next line starts clean.
    pub fn open(path: &Path) -> Result<StateFile> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("opening the state file {}", path.display()))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let complete = match text.rfind('\n') {
            Some(end) => end + 1,
            None => 0,
        };
        if complete < text.len() {
            tracing::warn!(path = %path.display(), "dropping a torn last line of the state file");
            file.set_len(complete as u64)
                .with_context(|| format!("truncating the torn line of {}", path.display()))?;
            file.seek(SeekFrom::End(0))?;
        }
        let (fleet_id, loaded) =
            parse(&text[..complete]).with_context(|| format!("state file {}", path.display()))?;
        let mut state = StateFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            resumed: fleet_id.is_some(),
            fleet_id: fleet_id.unwrap_or_default(),
            loaded,
            broken: AtomicBool::new(false),
        };
        if !state.resumed {
            let id = super::secret::random_bytes(4)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            state.fleet_id = id.clone();
            state.append(
                &Line::Fleet {
                    v: STATE_VERSION,
                    fleet_id: id,
                    at: now(),
                },
                true,
            )?;
        }
        Ok(state)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a record could not be written.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// What the file said about a VM when it was opened.
    pub fn progress(&self, vm_key: &str) -> VmProgress {
        self.loaded.get(vm_key).cloned().unwrap_or_default()
    }

    /// Appends one record; `create` records are fsynced too: a machine crash
    /// must not lose the one record that keeps a second `create` from running
    /// (a lost `restore` record is found again by looking at the VM's disk).
    pub fn record(&self, record: StepRecord) -> Result<()> {
        let durable = record.step == Step::Create;
        let written = self.append(&Line::Step(record), durable);
        if written.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        }
        written
    }

    fn append(&self, line: &Line, durable: bool) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let synced = {
            let mut file = self
                .file
                .lock()
                .map_err(|_| anyhow::anyhow!("state file lock poisoned"))?;
            // One write per line: a kill leaves at most the last line torn.
            file.write_all(text.as_bytes())
                .with_context(|| format!("appending to {}", self.path.display()))?;
            if durable {
                Some(file.try_clone()?)
            } else {
                None
            }
        };
        // Outside the lock, so the workers' fsyncs overlap instead of queueing.
        if let Some(file) = synced {
            file.sync_data()
                .with_context(|| format!("syncing {}", self.path.display()))?;
        }
        Ok(())
    }
}

fn parse(text: &str) -> Result<(Option<String>, BTreeMap<String, VmProgress>)> {
    let mut fleet_id = None;
    let mut progress: BTreeMap<String, VmProgress> = BTreeMap::new();
    for (number, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw)
            .with_context(|| format!("line {}: not a state record", number + 1))?;
        match line {
            Line::Fleet {
                v, fleet_id: id, ..
            } => {
                if v != STATE_VERSION {
                    bail!(
                        "line {}: state version {v}, expected {STATE_VERSION}",
                        number + 1
                    );
                }
                if fleet_id.is_none() {
                    fleet_id = Some(id);
                }
            }
            Line::Step(record) => progress
                .entry(record.vm.clone())
                .or_default()
                .apply(&record),
        }
    }
    if fleet_id.is_none() && !progress.is_empty() {
        bail!("step records without a fleet line");
    }
    Ok((fleet_id, progress))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(vm: &str, step: Step, event: Event) -> StepRecord {
        StepRecord {
            v: STATE_VERSION,
            vm: vm.into(),
            step,
            event,
            at: now(),
            t_ms: now_ms(),
            attempt: 1,
            data: None,
            error: None,
            transient: false,
        }
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.jsonl");
        let first = StateFile::open(&path).unwrap();
        assert!(!first.resumed);
        first
            .record(record("rg/a", Step::Create, Event::Started))
            .unwrap();
        first
            .record(record("rg/a", Step::Run, Event::Started))
            .unwrap();
        first
            .record(record("rg/a", Step::Run, Event::Done))
            .unwrap();
        let id = first.fleet_id.clone();
        drop(first);
        // A kill in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"kind\":\"step\",\"v\":1,\"vm\":\"rg/a\",\"st")
            .unwrap();
        drop(f);
        let again = StateFile::open(&path).unwrap();
        assert!(again.resumed);
        assert_eq!(again.fleet_id, id);
        let p = again.progress("rg/a");
        assert_eq!(
            p.get(Step::Create),
            Some(&StepState::Started { attempt: 1 })
        );
        assert!(p.is_done(Step::Run));
        assert_eq!(p.run_starts, 1);
        again
            .record(record("rg/a", Step::Restore, Event::Started))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            serde_json::from_str::<Line>(line).unwrap();
        }
    }
}
