//! The worker pool and the steps of one VM: evidence → create → run →
//! restore (only when verified) → start → boot check.
//!
//! Parallelism is a fixed pool of threads, each driving one VM at a time
//! through blocking `az` calls: Azure's own engine does the work, vmrescue
//! only bounds how much of it is asked for at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::az::{self, Az, AzError, RepairNames};
use super::retry::RetryPolicy;
use super::secret::{Credentials, Jitter};
use super::select::VmFacts;
use super::state::{now, Created, Event, StateFile, StepData, StepRecord, StepState, VmProgress};
use super::summary::{takeover_commands, Outcome, VmReport};
use super::verdict::{self, Assessment, Expect, Verdict};
use super::{Step, VmRef};

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// VMs in flight at once (and so `az` calls at once).
    pub parallel: usize,
    /// Stop starting new VMs after this many failed ones.
    pub max_failures: Option<usize>,
    /// `az vm start` after the restore, then check the serial log for a login prompt.
    pub start: bool,
    /// The payload boots the repaired disk (`--verify-boot`): require its proof.
    pub boot_proof: bool,
    pub retry: RetryPolicy,
    pub az: Az,
    /// Where the serial logs are kept as evidence.
    pub evidence_dir: PathBuf,
    /// How long to wait for a started VM to show a login prompt, polling.
    pub boot_wait: Duration,
    pub poll: Duration,
    /// How long to wait for the repair VM of an interrupted `create` to finish provisioning.
    pub probe_wait: Duration,
}

/// Makes a VM's Run Command payload (`vmrescue az-payload`), with its serial
/// log baked in when there is one; returns the payload file.
pub trait Payloads: Sync {
    fn make(&self, vm: &VmRef, serial_log: Option<&Path>) -> Result<PathBuf>;
}

/// Progress for the screen.
pub trait Observer: Sync {
    /// A step of a VM started, ended, or is retried (`note` says which).
    fn step(&self, vm: &VmRef, step: Step, note: &str);
    /// A VM reached its end state.
    fn finished(&self, report: &VmReport);
}

/// Why a VM stopped before the end.
struct Stop {
    outcome: Outcome,
    detail: String,
    created: Option<Box<Created>>,
}

impl Stop {
    fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Stop {
            outcome,
            detail: detail.into(),
            created: None,
        }
    }

    fn leaving(mut self, created: &Created) -> Self {
        self.created = Some(Box::new(created.clone()));
        self
    }
}

/// Repairs the given VMs, at most `parallel` at once; one report per VM, in
/// the order given.
pub fn run(
    config: &FleetConfig,
    vms: &[VmFacts],
    state: &StateFile,
    payloads: &dyn Payloads,
    observer: &dyn Observer,
) -> Vec<VmReport> {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<VmReport>>> = Mutex::new(vec![None; vms.len()]);
    std::thread::scope(|scope| {
        for _ in 0..config.parallel.max(1).min(vms.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(facts) = vms.get(index) else { break };
                let progress = state.progress(&facts.vm.key());
                let stopped = state.is_broken()
                    || config
                        .max_failures
                        .is_some_and(|max| failures.load(Ordering::SeqCst) >= max);
                // VMs already under way continue: leaving them half done helps nobody.
                let report = if stopped && progress.steps.is_empty() {
                    not_started(&facts.vm)
                } else {
                    let mut vm_run = VmRun::new(config, state, observer, payloads, facts, progress);
                    vm_run.process()
                };
                if report.outcome.is_failure() {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                observer.finished(&report);
                if let Ok(mut results) = results.lock() {
                    results[index] = Some(report);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .zip(vms)
        .map(|(report, facts)| report.unwrap_or_else(|| not_started(&facts.vm)))
        .collect()
}

fn not_started(vm: &VmRef) -> VmReport {
    VmReport::bare(
        vm.key(),
        Outcome::NotStarted,
        "not started: --max-failures reached, or the state file cannot be written".into(),
        "run again (same --state) once the failures are understood".into(),
    )
}

/// One VM's way through the steps.
struct VmRun<'a> {
    config: &'a FleetConfig,
    state: &'a StateFile,
    observer: &'a dyn Observer,
    payloads: &'a dyn Payloads,
    vm: &'a VmRef,
    progress: VmProgress,
    names: RepairNames,
    jitter: Jitter,
    started: Instant,
    serial_log: Option<PathBuf>,
    assessment: Option<Assessment>,
}

impl<'a> VmRun<'a> {
    fn new(
        config: &'a FleetConfig,
        state: &'a StateFile,
        observer: &'a dyn Observer,
        payloads: &'a dyn Payloads,
        facts: &'a VmFacts,
        progress: VmProgress,
    ) -> Self {
        VmRun {
            config,
            state,
            observer,
            payloads,
            vm: &facts.vm,
            progress,
            names: RepairNames::for_vm(&facts.vm, &state.fleet_id),
            jitter: Jitter::new(),
            started: Instant::now(),
            serial_log: None,
            assessment: None,
        }
    }

    fn process(&mut self) -> VmReport {
        self.serial_log = self.evidence();
        let result = self.steps();
        self.report(result)
    }

    fn steps(&mut self) -> Result<Option<bool>, Stop> {
        let created = self.create()?;
        let assessment = self.run(&created)?;
        self.assessment = Some(assessment.clone());
        match &assessment.verdict {
            Verdict::Verified => {}
            Verdict::NothingRecognised => {
                return Err(
                    Stop::new(Outcome::NothingRecognised, assessment.verdict.describe())
                        .leaving(&created),
                )
            }
            Verdict::Failed { .. } => {
                return Err(
                    Stop::new(Outcome::RunFailed, assessment.verdict.describe()).leaving(&created)
                )
            }
            _ => {
                return Err(
                    Stop::new(Outcome::Unverified, assessment.verdict.describe()).leaving(&created),
                )
            }
        }
        self.restore(&created)?;
        if !self.config.start {
            return Ok(None);
        }
        self.start()?;
        Ok(self.boot_check())
    }

    fn record(
        &self,
        step: Step,
        event: Event,
        attempt: u32,
        data: Option<StepData>,
        error: Option<&AzError>,
    ) {
        let record = StepRecord {
            v: super::state::STATE_VERSION,
            vm: self.vm.key(),
            step,
            event,
            at: now(),
            t_ms: super::state::now_ms(),
            attempt,
            data,
            error: error.map(|e| e.text().to_string()),
            transient: error.is_some_and(AzError::is_transient),
        };
        if let Err(err) = self.state.record(record) {
            // The state file marks itself broken: no further az call starts
            // (a resume without these records could create twice).
            tracing::error!("cannot write the state file: {err:#}");
        }
    }

    /// Runs one step's `az` call with retries on transient errors, recording
    /// each attempt.
    fn attempt<T>(
        &mut self,
        step: Step,
        mut call: impl FnMut() -> Result<(T, Option<StepData>), AzError>,
    ) -> Result<T, AzError> {
        let first = match self.progress.get(step) {
            Some(StepState::Started { attempt }) | Some(StepState::Failed { attempt, .. }) => {
                attempt + 1
            }
            _ => 1,
        };
        let policy = self.config.retry;
        let mut tries = 0;
        loop {
            let attempt = first + tries;
            tries += 1;
            self.record(step, Event::Started, attempt, None, None);
            if self.state.is_broken() {
                return Err(AzError::Permanent(format!(
                    "not running {}: the state file {} cannot be written",
                    step.label(),
                    self.state.path().display()
                )));
            }
            self.observer.step(self.vm, step, "started");
            match call() {
                Ok((value, data)) => {
                    self.record(step, Event::Done, attempt, data, None);
                    self.observer.step(self.vm, step, "done");
                    return Ok(value);
                }
                Err(err) => {
                    self.record(step, Event::Failed, attempt, None, Some(&err));
                    if !err.is_transient() || tries >= policy.attempts {
                        self.observer.step(self.vm, step, "failed");
                        return Err(err);
                    }
                    let pause = policy.delay(tries, &mut self.jitter);
                    let note = format!("throttled, retry {tries} in {} ms", pause.as_millis());
                    self.observer.step(self.vm, step, &note);
                    std::thread::sleep(pause);
                }
            }
        }
    }

    fn evidence(&mut self) -> Option<PathBuf> {
        if let Some(StepData::Evidence { serial_log, .. }) = self.progress.done(Step::Evidence) {
            return serial_log.clone();
        }
        let path = self.config.evidence_dir.join(format!(
            "{}__{}.serial.log",
            self.vm.resource_group, self.vm.name
        ));
        let cmd = self.config.az.boot_log(self.vm);
        let written = self.attempt(Step::Evidence, || {
            let text = az::invoke(&cmd)?;
            if text.trim().is_empty() {
                return Ok((
                    None,
                    Some(StepData::Evidence {
                        serial_log: None,
                        bytes: 0,
                    }),
                ));
            }
            std::fs::write(&path, &text)
                .map_err(|e| AzError::Permanent(format!("writing {}: {e}", path.display())))?;
            let data = StepData::Evidence {
                serial_log: Some(path.clone()),
                bytes: text.len() as u64,
            };
            Ok((Some(path.clone()), Some(data)))
        });
        // No serial log (boot diagnostics off) is not a reason to stop.
        written.unwrap_or_default()
    }

    fn create(&mut self) -> Result<Created, Stop> {
        match self.progress.get(Step::Create).cloned() {
            Some(StepState::Done(Some(StepData::Created(created)))) => return Ok(created),
            Some(StepState::Started { .. }) => {
                if let Some(created) = self.adopt_interrupted_create()? {
                    return Ok(created);
                }
            }
            Some(StepState::Failed {
                transient: false,
                error,
                ..
            }) => return Err(Stop::new(Outcome::CreateFailed, error)),
            _ => {}
        }
        let creds = Credentials::generate()
            .map_err(|e| Stop::new(Outcome::CreateFailed, format!("{e:#}")))?;
        let cmd = self.config.az.repair_create(self.vm, &self.names, &creds);
        let names = self.names.clone();
        let created = self.attempt(Step::Create, || {
            let value = az::extension_result(&az::invoke(&cmd)?)?;
            let created = created_from(&value, &names)?;
            Ok((created.clone(), Some(StepData::Created(created))))
        });
        created.map_err(|e| Stop::new(Outcome::CreateFailed, e.text()))
    }

    /// A `create` was started by a process that died before its answer: the
    /// repair VM is adopted if it is there and complete (waiting while it
    /// provisions). `None`: its resource group does not exist, so that
    /// create made nothing (it never reached Azure, or failed and the
    /// extension deleted the group) and a new one duplicates nothing. Anything
    /// in between is left to a person: `create` never runs while an earlier
    /// one may have made a repair VM.
    fn adopt_interrupted_create(&mut self) -> Result<Option<Created>, Stop> {
        let deadline = Instant::now() + self.config.probe_wait;
        let cmd = self.config.az.show_repair_vm(self.vm, &self.names);
        let note = "interrupted earlier: looking for its repair VM";
        self.observer.step(self.vm, Step::Create, note);
        let names = self.names.clone();
        let unknown = |why: &str| {
            Stop::new(
                Outcome::CreateUnknown,
                format!(
                    "an interrupted create {why}; not creating again: check and delete resource group {} and disk {} if present, then repair this VM in a new run (--vms, new --state)",
                    names.repair_resource_group, names.copied_disk_name
                ),
            )
        };
        loop {
            match probe(az::invoke(&cmd), &self.names.copied_disk_name) {
                Probe::Ready(repair_vm_id) => {
                    let created = Created {
                        repair_vm_id,
                        repair_vm_name: self.names.repair_vm_name.clone(),
                        repair_resource_group: self.names.repair_resource_group.clone(),
                        copied_disk_name: self.names.copied_disk_name.clone(),
                    };
                    let data = Some(StepData::Created(created.clone()));
                    self.record(Step::Create, Event::Done, 0, data, None);
                    let note = "adopted the repair VM of the interrupted create";
                    self.observer.step(self.vm, Step::Create, note);
                    return Ok(Some(created));
                }
                Probe::Gone => {
                    let note = "the interrupted create made nothing";
                    self.observer.step(self.vm, Step::Create, note);
                    return Ok(None);
                }
                Probe::Broken(why) => return Err(unknown(&why)),
                Probe::Pending(_) if Instant::now() >= deadline => {
                    return Err(unknown("did not finish in time"))
                }
                Probe::Pending(_) => std::thread::sleep(self.config.poll),
            }
        }
    }

    fn run(&mut self, created: &Created) -> Result<Assessment, Stop> {
        if let Some(StepData::Ran(assessment)) = self.progress.done(Step::Run) {
            return Ok(assessment.clone());
        }
        if let Some(StepState::Failed {
            transient: false,
            error,
            ..
        }) = self.progress.get(Step::Run)
        {
            return Err(Stop::new(Outcome::RunFailed, error.clone()).leaving(created));
        }
        let expect = Expect {
            boot_proof: self.config.boot_proof,
            // An earlier run may have applied the repair before it was cut short.
            resumed: self.progress.run_starts > 0,
        };
        let payload = self.payload()?;
        let cmd = self
            .config
            .az
            .repair_run(self.vm, &created.repair_vm_id, &payload);
        let ran = self.attempt(Step::Run, || {
            let value = az::extension_result(&az::invoke(&cmd)?)?;
            let logs = value
                .get("logs")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let mut assessment = verdict::assess(logs, expect);
            if assessment.log_full_path.is_none() {
                assessment.log_full_path = value
                    .get("log_full_path")
                    .and_then(|v| v.as_str())
                    .filter(|p| !p.is_empty())
                    .map(str::to_string);
            }
            Ok((assessment.clone(), Some(StepData::Ran(assessment))))
        });
        ran.map_err(|e| Stop::new(Outcome::RunFailed, e.text()).leaving(created))
    }

    fn payload(&self) -> Result<PathBuf, Stop> {
        self.payloads
            .make(self.vm, self.serial_log.as_deref())
            .map_err(|e| Stop::new(Outcome::RunFailed, format!("making the payload: {e:#}")))
    }

    fn restore(&mut self, created: &Created) -> Result<(), Stop> {
        match self.progress.get(Step::Restore) {
            Some(StepState::Done(_)) => return Ok(()),
            Some(StepState::Failed {
                transient: false,
                error,
                ..
            }) => return Err(Stop::new(Outcome::RestoreFailed, error.clone()).leaving(created)),
            Some(StepState::Started { .. }) if self.already_restored(created) => {
                self.record(
                    Step::Restore,
                    Event::Done,
                    0,
                    Some(StepData::Restored),
                    None,
                );
                return Ok(());
            }
            _ => {}
        }
        let cmd = self.config.az.repair_restore(
            self.vm,
            &created.repair_vm_id,
            &created.copied_disk_name,
        );
        let restored = self.attempt(Step::Restore, || {
            az::extension_result(&az::invoke(&cmd)?)?;
            Ok(((), Some(StepData::Restored)))
        });
        restored.map_err(|e| Stop::new(Outcome::RestoreFailed, e.text()).leaving(created))
    }

    /// Whether the source VM already boots from the repaired copy (an
    /// interrupted restore that went through).
    fn already_restored(&self, created: &Created) -> bool {
        az::invoke(&self.config.az.show(self.vm))
            .ok()
            .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
            .and_then(|vm| VmFacts::from_json(&vm, Some(self.vm)).ok())
            .and_then(|facts| facts.os_disk)
            .is_some_and(|disk| disk.eq_ignore_ascii_case(&created.copied_disk_name))
    }

    fn start(&mut self) -> Result<(), Stop> {
        if self.progress.is_done(Step::Start) {
            return Ok(());
        }
        if let Some(StepState::Failed {
            transient: false,
            error,
            ..
        }) = self.progress.get(Step::Start)
        {
            return Err(Stop::new(
                Outcome::NotBooting,
                format!("az vm start: {error}"),
            ));
        }
        let cmd = self.config.az.start(self.vm);
        self.attempt(Step::Start, || {
            az::invoke(&cmd)?;
            Ok(((), Some(StepData::Started)))
        })
        .map_err(|e| Stop::new(Outcome::NotBooting, format!("az vm start: {}", e.text())))
    }

    /// Reads the serial log until it shows a login prompt after the last
    /// panic, or the wait is over. `None`: there is no serial log to read
    /// (boot diagnostics off), so nobody can tell.
    fn boot_check(&mut self) -> Option<bool> {
        if let Some(StepData::Boot { boots, .. }) = self.progress.done(Step::BootCheck) {
            return *boots;
        }
        let deadline = Instant::now() + self.config.boot_wait;
        let cmd = self.config.az.boot_log(self.vm);
        let (mut boots, mut last_line) = (None, None);
        loop {
            match az::invoke(&cmd) {
                Ok(text) => {
                    let (login, line) = login_after_last_panic(&text);
                    (boots, last_line) = (Some(login), line);
                    if login {
                        break;
                    }
                }
                Err(err) if !err.is_transient() && boots.is_none() => {
                    last_line = Some(err.text().to_string());
                    break;
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(self.config.poll);
        }
        let data = StepData::Boot {
            boots,
            line: last_line,
        };
        self.record(Step::BootCheck, Event::Done, 1, Some(data), None);
        let note = match boots {
            Some(true) => "login prompt",
            Some(false) => "no login prompt",
            None => "no serial log to check",
        };
        self.observer.step(self.vm, Step::BootCheck, note);
        boots
    }
}

/// What `az vm show` of the repair VM says about an interrupted `create`.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Provisioned, with the copied disk attached: its resource ID.
    Ready(String),
    /// Still being made (or not visible yet): ask again.
    Pending(String),
    /// No repair resource group: that create made nothing.
    Gone,
    /// Failed, or unreadable: for a person.
    Broken(String),
}

/// Reads the repair VM's `az vm show` answer. The extension makes the VM
/// first and attaches the disk copy after it, so a VM without the disk is
/// still pending: the interrupted `az` process may still be attaching it.
fn probe(answer: Result<String, AzError>, copied_disk: &str) -> Probe {
    let out = match answer {
        Ok(out) => out,
        Err(err) if err.text().contains("ResourceGroupNotFound") => return Probe::Gone,
        Err(err) if err.is_transient() || err.text().contains("ResourceNotFound") => {
            return Probe::Pending(err.text().to_string())
        }
        Err(err) => return Probe::Broken(format!("cannot be checked ({})", err.text())),
    };
    let vm: serde_json::Value = match serde_json::from_str(&out) {
        Ok(vm) => vm,
        Err(e) => return Probe::Broken(format!("left an unreadable repair VM ({e})")),
    };
    let text = |ptr: &str| vm.pointer(ptr).and_then(|v| v.as_str()).unwrap_or_default();
    let state = text("/provisioningState").to_ascii_lowercase();
    let attached = vm
        .pointer("/storageProfile/dataDisks")
        .and_then(|d| d.as_array())
        .is_some_and(|d| {
            d.iter()
                .any(|disk| disk.get("name").and_then(|n| n.as_str()) == Some(copied_disk))
        });
    match (state.as_str(), attached) {
        ("succeeded", true) if !text("/id").is_empty() => Probe::Ready(text("/id").to_string()),
        ("failed", _) => Probe::Broken(format!("left repair VM {} in state Failed", text("/name"))),
        _ => Probe::Pending(format!("{state}, disk attached: {attached}")),
    }
}

/// The repair resources from a successful `create` answer. The repair VM's ID
/// is among `created_resources`; else it is built from `copied_disk_uri`'s
/// subscription and the names vmrescue chose.
fn created_from(value: &serde_json::Value, names: &RepairNames) -> Result<Created, AzError> {
    let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let id = az::repair_vm_id(value, names).or_else(|| {
        let uri = text("copied_disk_uri")?;
        let sub = uri
            .split('/')
            .skip_while(|p| !p.eq_ignore_ascii_case("subscriptions"))
            .nth(1)?;
        Some(format!(
            "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            names.repair_resource_group, names.repair_vm_name
        ))
    });
    let Some(repair_vm_id) = id else {
        return Err(AzError::Permanent(format!(
            "az vm repair create succeeded but named no repair VM ID: {value}"
        )));
    };
    Ok(Created {
        repair_vm_id,
        repair_vm_name: text("repair_vm_name").unwrap_or_else(|| names.repair_vm_name.clone()),
        repair_resource_group: text("repair_resource_group")
            .unwrap_or_else(|| names.repair_resource_group.clone()),
        copied_disk_name: text("copied_disk_name")
            .unwrap_or_else(|| names.copied_disk_name.clone()),
    })
}

/// Whether a serial log shows a login prompt after its last panic, and the
/// line that decided it.
pub fn login_after_last_panic(log: &str) -> (bool, Option<String>) {
    let mut decided: Option<(bool, String)> = None;
    for line in log.lines() {
        let line = line.trim_end();
        if line.contains("Kernel panic - not syncing") || line.contains("end Kernel panic") {
            decided = Some((false, line.trim().to_string()));
        } else if line.ends_with("login:") || line.ends_with("login: ") {
            decided = Some((true, line.trim().to_string()));
        }
    }
    match decided {
        Some((boots, line)) => (boots, Some(line)),
        None => (false, None),
    }
}

impl VmRun<'_> {
    fn report(&self, result: Result<Option<bool>, Stop>) -> VmReport {
        let assessment = self
            .assessment
            .clone()
            .or_else(|| match self.progress.done(Step::Run) {
                Some(StepData::Ran(a)) => Some(a.clone()),
                _ => None,
            });
        let diagnosis = assessment
            .as_ref()
            .and_then(|a| a.diagnosis.clone())
            .or_else(|| self.local_diagnosis());
        let verified = assessment.as_ref().is_some_and(|a| a.verdict.is_verified());
        let mut report = VmReport {
            vm: self.vm.key(),
            outcome: Outcome::Repaired,
            diagnosis,
            recipe: assessment.as_ref().and_then(|a| a.recipe.clone()),
            verified,
            restored: false,
            boots: None,
            seconds: self.seconds(),
            detail: String::new(),
            next: "none".into(),
            commands: Vec::new(),
            serial_log: self.serial_log.as_ref().map(|p| p.display().to_string()),
            repair_vm_id: None,
        };
        match result {
            Ok(boots) => {
                report.restored = true;
                report.boots = boots;
                if boots == Some(false) {
                    report.outcome = Outcome::NotBooting;
                    report.detail = "restored, but the serial log shows no login prompt".into();
                    report.next =
                        "read the serial log; a new run for it (--vms, new --state)".into();
                    report.commands = vec![format!(
                        "az vm boot-diagnostics get-boot-log -g {} -n {}",
                        self.vm.resource_group, self.vm.name
                    )];
                } else if self.config.start && boots.is_none() {
                    report.detail =
                        "repaired, verified and restored; started, no serial log to check the boot"
                            .into();
                } else {
                    report.detail = "repaired, verified and restored".into();
                }
            }
            Err(stop) => {
                report.outcome = stop.outcome;
                report.detail = stop.detail;
                report.restored = false;
                if let Some(created) = &stop.created {
                    report.repair_vm_id = Some(created.repair_vm_id.clone());
                    report.next = format!("repair VM {} left for a person", created.repair_vm_name);
                    report.commands = takeover_commands(self.vm, created);
                } else {
                    report.next = match stop.outcome {
                        Outcome::CreateFailed => {
                            "fix the cause (quota, SKU), then a new run for the VMs left (--vms, new --state)".into()
                        }
                        _ => "see detail".into(),
                    };
                }
            }
        }
        report
    }

    /// Since the VM's first step, over all runs of this state file (a
    /// resumed run counts the time before the kill too, but not the pause).
    fn seconds(&self) -> f64 {
        let here = self.started.elapsed().as_secs_f64();
        match (self.progress.first_ms, self.progress.last_ms) {
            (Some(first), Some(last)) => here + last.saturating_sub(first) as f64 / 1000.0,
            _ => here,
        }
    }

    /// The diagnosis of the kept serial log, when the run gave none.
    fn local_diagnosis(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.serial_log.as_ref()?).ok()?;
        let diagnosis = crate::diagnose::classify_str(&text, "serial log").ok()?;
        diagnosis
            .primary()
            .map(|f| format!("{} ({})", f.title, f.id))
    }
}

/// The `az` commands one VM's repair would run, credentials redacted, for
/// `--dry-run`. The repair VM ID is only known after `create`: a placeholder.
pub fn dry_run_plan(
    config: &FleetConfig,
    vm: &VmRef,
    fleet_id: &str,
    payload: &Path,
) -> Result<Vec<String>> {
    let az = &config.az;
    let names = RepairNames::for_vm(vm, fleet_id);
    let creds = Credentials::generate()?;
    let repair_vm_id = format!(
        "/subscriptions/<subscription>/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
        names.repair_resource_group, names.repair_vm_name
    );
    let mut lines = vec![
        az.boot_log(vm).display_argv(),
        format!(
            "# write {} (vmrescue az-payload, with the serial log baked in)",
            payload.display()
        ),
        az.repair_create(vm, &names, &creds).display_argv(),
        az.repair_run(vm, &repair_vm_id, payload).display_argv(),
        format!(
            "{}   # only after a verified run",
            az.repair_restore(vm, &repair_vm_id, &names.copied_disk_name)
                .display_argv()
        ),
    ];
    if config.start {
        lines.push(az.start(vm).display_argv());
        lines.push(format!(
            "{}   # until a login prompt",
            az.boot_log(vm).display_argv()
        ));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_create_is_adopted_waited_for_or_left() {
        let vm = |state: &str, disks: serde_json::Value| {
            Ok(serde_json::json!({"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/repair-a",
                "name": "repair-a", "provisioningState": state,
                "storageProfile": {"dataDisks": disks}})
            .to_string())
        };
        let disk = serde_json::json!([{"lun": 0, "name": "a-repair-1"}]);
        assert!(
            matches!(probe(vm("Succeeded", disk.clone()), "a-repair-1"), Probe::Ready(id) if id.ends_with("/repair-a"))
        );
        assert!(matches!(
            probe(vm("Succeeded", serde_json::json!([])), "a-repair-1"),
            Probe::Pending(_)
        ));
        assert!(matches!(
            probe(vm("Creating", disk.clone()), "a-repair-1"),
            Probe::Pending(_)
        ));
        assert!(matches!(
            probe(vm("Failed", disk), "a-repair-1"),
            Probe::Broken(_)
        ));
        let gone = Err(AzError::Permanent(
            "ERROR: (ResourceGroupNotFound) Resource group 'r' could not be found.".into(),
        ));
        assert_eq!(probe(gone, "a-repair-1"), Probe::Gone);
        let not_yet = Err(AzError::Permanent("ERROR: (ResourceNotFound) The Resource 'Microsoft.Compute/virtualMachines/repair-a' under resource group 'r' was not found.".into()));
        assert!(matches!(probe(not_yet, "a-repair-1"), Probe::Pending(_)));
        let denied = Err(AzError::Permanent("ERROR: (AuthorizationFailed) no".into()));
        assert!(matches!(probe(denied, "a-repair-1"), Probe::Broken(_)));
    }

    #[test]
    fn login_counts_only_after_the_last_panic() {
        let broken =
            "vm1 login: \n[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n";
        assert!(!login_after_last_panic(broken).0);
        let fixed = format!("{broken}[    0.000000] Linux version 6.1.0\nDebian GNU/Linux 12 vm1 ttyS0\n\nvm1 login: ");
        let (boots, line) = login_after_last_panic(&fixed);
        assert!(boots);
        assert_eq!(line.as_deref(), Some("vm1 login:"));
        assert_eq!(login_after_last_panic(""), (false, None));
    }
}
