//! A fake `az` for the fleet tests: the test binary itself, run through a
//! symlink named `az` first on PATH. It answers the commands `vmrescue
//! az-fleet` runs with the shapes the real ones have, keeps a small world
//! (per-VM JSON files, changed under `flock`), and logs every call with its
//! start and end times to `calls.jsonl`.
//!
//! Where each shape comes from:
//! - `vm show/list --show-details`: azure-cli command_modules/vm (VM object
//!   with `powerState` added by --show-details, `storageProfile.osDisk.osType`,
//!   `osProfile.linuxConfiguration`, `provisioningState`).
//! - `vm boot-diagnostics get-boot-log`: azure-cli vm/custom.py `get_boot_log`
//!   writes the serial log as text; `Please enable boot diagnostics.` (exit 1)
//!   without it.
//! - `vm repair create|run|restore`: azure-cli-extensions src/vm-repair,
//!   azext_vm_repair/custom.py (`return_dict` keys) and
//!   command_helper_class.py (`init_return_dict`: status, message,
//!   error_message). The extension catches the failures of its inner `az`
//!   calls (`AzCommandError(stderr)`) and returns `status: ERROR`, so the
//!   process still exits 0.
//! - the run's `logs`: linux-run-driver.sh — `[Log-Start  date]`, the
//!   payload's lines, `[STATUS]::SUCCESS` only on exit 0 (else the catch
//!   block's `[Error date]…`), `[Log-End date]PATH`, all through
//!   `echo $(cat $logFile)`; Run Command keeps the last 4096 bytes.
//! - errors: ARM codes as az prints them, `ERROR: (Code) message` on stderr:
//!   `(TooManyRequests)` for 429, `(ResourceNotFound)`/`(ResourceGroupNotFound)`
//!   with exit 3, `(OperationNotAllowed) … quota` for a quota stop.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const SUB: &str = "00000000-1111-2222-3333-444444444444";

/// One VM of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct VmSpec {
    pub rg: String,
    pub name: String,
    pub os: String,
    pub power: String,
    pub tags: BTreeMap<String, String>,
    /// Calls to answer with 429 TooManyRequests first, per operation.
    pub throttle: BTreeMap<String, u32>,
    /// `ok` or `quota`.
    pub create: String,
    /// `ok`, `error`, `cutoff`, `nothing`.
    pub run: String,
    /// `ok` or `fail`.
    pub restore: String,
    /// Whether the VM boots once the repaired disk is its OS disk.
    pub boots_after: bool,
    pub boot_diagnostics: bool,
}

impl VmSpec {
    pub fn new(rg: &str, name: &str) -> Self {
        VmSpec {
            rg: rg.into(),
            name: name.into(),
            os: "Linux".into(),
            power: "VM running".into(),
            create: "ok".into(),
            run: "ok".into(),
            restore: "ok".into(),
            boots_after: true,
            boot_diagnostics: true,
            ..Default::default()
        }
    }
    pub fn key(&self) -> String {
        format!("{}/{}", self.rg, self.name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Scenario {
    /// Milliseconds per operation: create, run, restore, start, boot_log, show, list.
    pub latency_ms: BTreeMap<String, u64>,
    pub vms: Vec<VmSpec>,
}

/// What the fake knows about one VM now.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(default)]
pub struct World {
    pub calls: BTreeMap<String, u32>,
    pub os_disk: String,
    pub os_disk_repaired: bool,
    pub power: String,
    pub repair: Option<Repair>,
    pub restored: bool,
    pub started_after_restore: bool,
    /// `create` calls that were not throttled (each made or tried resources).
    pub effective_creates: u32,
    /// The last run's kind as reported: verified, error, cutoff, nothing.
    pub last_run: Option<String>,
    pub restored_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Repair {
    pub state: String,
    pub vm_name: String,
    pub group: String,
    pub disk: String,
    pub disk_repaired: bool,
    pub run_in_progress: bool,
}

pub fn world_path(dir: &Path, rg: &str, name: &str) -> PathBuf {
    dir.join("world").join(format!("{rg}__{name}.json"))
}

pub fn read_world(dir: &Path, rg: &str, name: &str) -> Option<World> {
    let text = std::fs::read_to_string(world_path(dir, rg, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the scenario and the initial world.
pub fn setup(dir: &Path, scenario: &Scenario) {
    std::fs::create_dir_all(dir.join("world")).unwrap();
    std::fs::create_dir_all(dir.join("repair-index")).unwrap();
    std::fs::create_dir_all(dir.join("specs")).unwrap();
    // One small file per VM: each call reads only its own (a 500-VM
    // scenario parsed on every call would measure the fake, not vmrescue).
    let latency = Scenario {
        latency_ms: scenario.latency_ms.clone(),
        vms: Vec::new(),
    };
    std::fs::write(
        dir.join("scenario.json"),
        serde_json::to_string(&latency).unwrap(),
    )
    .unwrap();
    for vm in &scenario.vms {
        std::fs::write(
            dir.join("specs")
                .join(format!("{}__{}.json", vm.rg, vm.name)),
            serde_json::to_string(vm).unwrap(),
        )
        .unwrap();
        let world = World {
            os_disk: format!("{}_OsDisk_1_0abc", vm.name),
            power: vm.power.clone(),
            ..Default::default()
        };
        std::fs::write(
            world_path(dir, &vm.rg, &vm.name),
            serde_json::to_string(&world).unwrap(),
        )
        .unwrap();
    }
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// An exclusive lock on a file for a read-modify-write of the world.
struct Locked {
    _file: File,
}

impl Locked {
    fn new(path: &Path) -> Locked {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        Locked { _file: file }
    }
}

struct Call {
    dir: PathBuf,
    words: Vec<String>,
    flags: BTreeMap<String, String>,
    started: u128,
    scenario: Scenario,
}

fn append_line(path: &Path, line: &Value) {
    let mut text = line.to_string();
    text.push('\n');
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

const BOOLEAN_FLAGS: &[&str] = &[
    "--yes",
    "--run-on-repair",
    "--show-details",
    "-d",
    "--verbose",
    "--debug",
];

fn parse_args(args: &[String]) -> (Vec<String>, BTreeMap<String, String>) {
    let mut words = Vec::new();
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with('-') {
            if BOOLEAN_FLAGS.contains(&a.as_str()) {
                flags.insert(a.clone(), String::new());
                i += 1;
            } else {
                flags.insert(a.clone(), args.get(i + 1).cloned().unwrap_or_default());
                i += 2;
            }
        } else {
            words.push(a.clone());
            i += 1;
        }
    }
    (words, flags)
}

/// A diagnosis ("title (id)") and the recipe it suggests.
type Found = (Option<String>, Option<String>);

/// The primary finding and its first recipe for the console log baked into
/// a payload (between its here-document markers), by the same classifier
/// `repair --log` runs on the repair VM.
/// Cached per log text in the fake's directory: the classifier is built per
/// process, and 500 fake runs building it would measure the fake, not vmrescue.
fn diagnose_baked_log_cached(dir: &Path, payload: &str) -> Found {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in payload.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let cache = dir
        .join("diagnosis-cache")
        .join(format!("{hash:016x}.json"));
    if let Some(found) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        return found;
    }
    let found = diagnose_baked_log(payload);
    let _ = std::fs::create_dir_all(cache.parent().unwrap());
    let tmp = cache.with_extension(format!("{}.tmp", std::process::id()));
    if std::fs::write(&tmp, serde_json::to_string(&found).unwrap()).is_ok() {
        let _ = std::fs::rename(&tmp, &cache);
    }
    found
}

fn diagnose_baked_log(payload: &str) -> Found {
    // CONSOLE_LOGS="B64 B64…": each log gzip-compressed, then base64.
    let Some(packed) = payload
        .lines()
        .find_map(|l| l.strip_prefix("CONSOLE_LOGS=\""))
        .map(|v| v.trim_end_matches('"').to_string())
        .filter(|v| !v.is_empty())
    else {
        return (None, None);
    };
    let mut log = String::new();
    for one in packed.split_whitespace() {
        let unpacked = std::process::Command::new("sh")
            .args(["-c", "base64 -d | gzip -dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(one.as_bytes())?;
                child.wait_with_output()
            });
        match unpacked {
            Ok(out) if out.status.success() => log.push_str(&String::from_utf8_lossy(&out.stdout)),
            _ => return (None, None),
        }
    }
    let Ok(diagnosis) = vmrescue::diagnose::classify_str(&log, "console") else {
        return (None, None);
    };
    let Some(finding) = diagnosis.primary() else {
        return (None, None);
    };
    (
        Some(format!("{} ({})", finding.title, finding.id)),
        finding.suggestions.first().map(|s| s.recipe.clone()),
    )
}

/// The entry point when the test binary runs as `az`.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(std::env::var("FAKE_AZ_DIR").expect("FAKE_AZ_DIR"));
    let scenario: Scenario =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scenario.json")).unwrap()).unwrap();
    let (words, flags) = parse_args(&args);
    let call = Call {
        dir: dir.clone(),
        words,
        flags,
        started: now_us(),
        scenario,
    };
    let mut logged: Vec<String> = args.clone();
    if let Some(i) = logged.iter().position(|a| a == "--repair-password") {
        if let Some(p) = logged.get(i + 1).cloned() {
            append_line(
                &dir.join("secrets.jsonl"),
                &json!({"vm": call.vm_key(), "password": p, "username": call.flag("--repair-username")}),
            );
            logged[i + 1] = format!("<{} chars>", p.len());
        }
    }
    if let Some(i) = logged.iter().position(|a| a == "--repair-username") {
        logged[i + 1] = "<username>".into();
    }
    let op = call.op();
    append_line(
        &dir.join("calls.jsonl"),
        &json!({"event": "start", "pid": std::process::id(), "op": op, "vm": call.vm_key(), "t": call.started}),
    );
    let (code, stdout, stderr, result) = call.answer(&op);
    // Logged before answering: when vmrescue was killed, the pipe is gone
    // and the write below fails, but the call did happen (as in Azure).
    append_line(
        &dir.join("calls.jsonl"),
        &json!({"event": "end", "pid": std::process::id(), "op": op, "vm": call.vm_key(), "argv": logged, "start": call.started, "t": now_us(), "exit": code, "result": result}),
    );
    let _ = std::io::stdout().write_all(stdout.as_bytes());
    let _ = std::io::stderr().write_all(stderr.as_bytes());
    let _ = std::io::stdout().flush();
    code
}

type Answer = (i32, String, String, String);

fn ok(stdout: String, result: &str) -> Answer {
    (0, stdout, String::new(), result.into())
}
fn fail(code: i32, stderr: &str, result: &str) -> Answer {
    (
        code,
        String::new(),
        format!("ERROR: {stderr}\n"),
        result.into(),
    )
}
fn ext_error(message: &str, error: &str, result: &str) -> Answer {
    let body = json!({"status": "ERROR", "message": message, "error_message": error});
    (
        0,
        serde_json::to_string_pretty(&body).unwrap(),
        String::new(),
        result.into(),
    )
}

const THROTTLED: &str = "(TooManyRequests) The request is being throttled as the limit has been reached for operation type - Write_1Min. For more information, see - https://aka.ms/throttling";

impl Call {
    fn flag(&self, name: &str) -> String {
        self.flags.get(name).cloned().unwrap_or_default()
    }
    fn vm_key(&self) -> String {
        format!("{}/{}", self.flag("-g"), self.flag("-n"))
    }
    fn op(&self) -> String {
        let w: Vec<&str> = self.words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["vm", "list"] => "list",
            ["vm", "show"] => "show",
            ["vm", "boot-diagnostics", "get-boot-log"] => "boot_log",
            ["vm", "repair", "create"] => "create",
            ["vm", "repair", "run"] => "run",
            ["vm", "repair", "restore"] => "restore",
            ["vm", "start"] => "start",
            _ => "unknown",
        }
        .to_string()
    }
    fn sleep(&self, op: &str) {
        let ms = self.scenario.latency_ms.get(op).copied().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(ms));
    }
    fn spec(&self) -> Option<VmSpec> {
        let (rg, name) = (self.flag("-g"), self.flag("-n"));
        let text =
            std::fs::read_to_string(self.dir.join("specs").join(format!("{rg}__{name}.json")))
                .ok()?;
        serde_json::from_str(&text).ok()
    }

    fn all_specs(&self) -> Vec<VmSpec> {
        let mut specs: Vec<VmSpec> = std::fs::read_dir(self.dir.join("specs"))
            .unwrap()
            .map(|e| {
                serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
            })
            .collect();
        specs.sort_by(|a, b| (&a.rg, &a.name).cmp(&(&b.rg, &b.name)));
        specs
    }

    /// Reads, changes and writes a VM's world under its lock.
    fn with_world<T>(&self, spec: &VmSpec, change: impl FnOnce(&mut World) -> T) -> T {
        let path = world_path(&self.dir, &spec.rg, &spec.name);
        let lock = Locked::new(&path.with_extension("lock"));
        let mut world: World =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let out = change(&mut world);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string(&world).unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        drop(lock);
        out
    }

    /// Counts the call; true when this one is to be throttled.
    fn throttled(&self, spec: &VmSpec, op: &str) -> bool {
        let limit = spec.throttle.get(op).copied().unwrap_or(0);
        self.with_world(spec, |w| {
            let n = w.calls.entry(op.to_string()).or_insert(0);
            *n += 1;
            *n <= limit
        })
    }

    fn answer(&self, op: &str) -> Answer {
        if op == "list" {
            self.sleep("list");
            let rg = self.flag("-g");
            let vms: Vec<Value> = self
                .all_specs()
                .iter()
                .filter(|v| v.rg == rg)
                .map(|v| self.vm_json(v))
                .collect();
            return ok(serde_json::to_string_pretty(&vms).unwrap(), "ok");
        }
        if op == "show" {
            return self.show();
        }
        let Some(spec) = self.spec() else {
            return fail(3, &format!("(ResourceNotFound) The Resource 'Microsoft.Compute/virtualMachines/{}' under resource group '{}' was not found.", self.flag("-n"), self.flag("-g")), "not-found");
        };
        if self.throttled(&spec, op) {
            self.sleep("throttle");
            return match op {
                "create" => ext_error(
                    "Repair create failed. Cleaning up created resources.",
                    &format!("ERROR: {THROTTLED}"),
                    "throttled",
                ),
                "run" | "restore" => ext_error(
                    "Repair run failed.",
                    &format!("ERROR: {THROTTLED}"),
                    "throttled",
                ),
                _ => fail(1, THROTTLED, "throttled"),
            };
        }
        match op {
            "boot_log" => self.boot_log(&spec),
            "create" => self.create(&spec),
            "run" => self.run(&spec),
            "restore" => self.restore(&spec),
            "start" => {
                self.sleep("start");
                self.with_world(&spec, |w| {
                    w.power = "VM running".into();
                    w.started_after_restore = w.restored;
                });
                ok(String::new(), "ok")
            }
            _ => fail(
                2,
                &format!(
                    "'{}' is misspelled or not recognized by the system.",
                    self.words.join(" ")
                ),
                "unknown",
            ),
        }
    }

    fn vm_json(&self, spec: &VmSpec) -> Value {
        let world = read_world(&self.dir, &spec.rg, &spec.name).unwrap_or_default();
        let linux = spec.os == "Linux";
        json!({
            "id": format!("/subscriptions/{SUB}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}", spec.rg, spec.name),
            "name": spec.name, "resourceGroup": spec.rg, "location": "westeurope", "type": "Microsoft.Compute/virtualMachines",
            "tags": spec.tags, "powerState": world.power, "provisioningState": "Succeeded",
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "osProfile": {"computerName": spec.name, "adminUsername": "azureuser",
                "linuxConfiguration": if linux { json!({"disablePasswordAuthentication": true, "provisionVMAgent": true}) } else { Value::Null },
                "windowsConfiguration": if linux { Value::Null } else { json!({"provisionVMAgent": true}) }},
            "storageProfile": {"osDisk": {"osType": spec.os, "name": world.os_disk, "createOption": "FromImage",
                "managedDisk": {"id": format!("/subscriptions/{SUB}/resourceGroups/{}/providers/Microsoft.Compute/disks/{}", spec.rg, world.os_disk), "storageAccountType": "Premium_LRS"}},
                "dataDisks": []},
            "privateIps": "10.0.0.4", "publicIps": "", "fqdns": "", "macAddresses": "00-0D-3A-00-00-01"
        })
    }

    fn show(&self) -> Answer {
        self.sleep("show");
        let (rg, name) = (self.flag("-g"), self.flag("-n"));
        if let Some(spec) = self.spec() {
            if self.throttled(&spec, "show") {
                return fail(1, THROTTLED, "throttled");
            }
            return ok(
                serde_json::to_string_pretty(&self.vm_json(&spec)).unwrap(),
                "ok",
            );
        }
        // A repair VM: found through the index its create wrote.
        let index = self.dir.join("repair-index").join(&rg);
        let Ok(source) = std::fs::read_to_string(&index) else {
            return fail(
                3,
                &format!("(ResourceGroupNotFound) Resource group '{rg}' could not be found."),
                "not-found",
            );
        };
        let (src_rg, src_name) = source.trim().split_once('/').unwrap();
        let world = read_world(&self.dir, src_rg, src_name).unwrap_or_default();
        match world.repair {
            Some(r) if r.vm_name == name && r.group == rg => ok(
                serde_json::to_string_pretty(&json!({
                    "id": format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"),
                    "name": name, "resourceGroup": rg, "provisioningState": r.state, "powerState": "VM running",
                    "storageProfile": {"osDisk": {"osType": "Linux", "name": format!("{name}_OsDisk")},
                        "dataDisks": if r.state == "Succeeded" { json!([{"lun": 0, "name": r.disk}]) } else { json!([]) }}
                }))
                .unwrap(),
                "ok",
            ),
            _ => fail(3, &format!("(ResourceNotFound) The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{rg}' was not found."), "not-found"),
        }
    }

    fn boot_log(&self, spec: &VmSpec) -> Answer {
        self.sleep("boot_log");
        if !spec.boot_diagnostics {
            return fail(1, "Please enable boot diagnostics.", "no-boot-diagnostics");
        }
        let world = read_world(&self.dir, &spec.rg, &spec.name).unwrap_or_default();
        let mut log = String::from(
            "[    0.000000] Linux version 6.8.0-1015-azure (buildd@lcy02-amd64-080) (x86_64-linux-gnu-gcc-12) #17-Ubuntu SMP\n\
             [    2.514312] VFS: Cannot open root device \"PARTUUID=5c6e1f3a-01\" or unknown-block(0,0): error -6\n\
             [    2.514890] Please append a correct \"root=\" boot option; here are the available partitions:\n\
             [    2.515321] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n\
             [    2.515800] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.8.0-1015-azure #17-Ubuntu\n\
             [    2.516820] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\n",
        );
        if world.started_after_restore {
            log.push_str("[    0.000000] Linux version 6.8.0-1015-azure (buildd@lcy02-amd64-080) #17-Ubuntu SMP\n");
            if world.os_disk_repaired && spec.boots_after {
                log.push_str(&format!("[    4.100000] systemd[1]: Reached target multi-user.target.\n\nUbuntu 24.04.1 LTS {} ttyS0\n\n{} login: ", spec.name, spec.name));
            } else {
                log.push_str("[    2.515321] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n");
            }
        }
        ok(log, "ok")
    }

    fn create(&self, spec: &VmSpec) -> Answer {
        let (group, vm_name, disk) = (
            self.flag("--repair-group-name"),
            self.flag("--repair-vm-name"),
            self.flag("--copy-disk-name"),
        );
        let password = self.flag("--repair-password");
        if password.len() < 12 || self.flag("--repair-username").is_empty() {
            return ext_error("Repair create failed. Cleaning up created resources.", "ERROR: (InvalidParameter) The supplied password must be between 12-123 characters long.", "bad-password");
        }
        if spec.os != "Linux" {
            return ext_error("A compatible Windows OS image is not available at this time, please check subscription.", "Compatible Windows OS image not available.", "windows");
        }
        // The resource group and VM appear at once (ARM), provisioning until done.
        std::fs::write(self.dir.join("repair-index").join(&group), spec.key()).unwrap();
        let duplicate = self.with_world(spec, |w| {
            let duplicate = w.repair.is_some();
            w.effective_creates += 1;
            w.repair = Some(Repair {
                state: "Creating".into(),
                vm_name: vm_name.clone(),
                group: group.clone(),
                disk: disk.clone(),
                ..Default::default()
            });
            duplicate
        });
        if duplicate {
            // A second repair VM for the same VM: what vmrescue must never cause.
            append_line(
                &self.dir.join("duplicates.jsonl"),
                &json!({"vm": spec.key()}),
            );
        }
        self.sleep("create");
        if spec.create == "quota" {
            // The extension's clean-up deletes the repair resource group.
            let _ = std::fs::remove_file(self.dir.join("repair-index").join(&group));
            self.with_world(spec, |w| w.repair = None);
            return ext_error(
                "Repair create failed. Cleaning up created resources.",
                "ERROR: (OperationNotAllowed) Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota. Additional details - Deployment Model: Resource Manager, Location: westeurope, Current Limit: 100, Current Usage: 100, Additional Required: 2, (Minimum) New Limit Required: 102.",
                "quota",
            );
        }
        self.with_world(spec, |w| {
            if let Some(r) = w.repair.as_mut() {
                r.state = "Succeeded".into();
            }
        });
        let rg_id = format!("/subscriptions/{SUB}/resourceGroups/{group}/providers");
        let disk_uri = format!(
            "/subscriptions/{SUB}/resourceGroups/{}/providers/Microsoft.Compute/disks/{disk}",
            spec.rg
        );
        let body = json!({
            "status": "SUCCESS",
            "message": format!("Your repair VM '{vm_name}' has been created in the resource group '{group}' with disk '{disk}' attached as data disk. Please use this VM to troubleshoot and repair. Once the repairs are complete use the command 'az vm repair restore -n {} -g {} --verbose' to restore disk to the source VM. Note that the copied disk is created within the original resource group '{}'.", spec.name, spec.rg, spec.rg),
            "repair_vm_name": vm_name, "copied_disk_name": disk, "copied_disk_uri": disk_uri,
            "repair_resource_group": group, "resource_tag": format!("repair_source={}/{}", spec.rg, spec.name),
            "created_resources": [
                format!("{rg_id}/Microsoft.Compute/disks/{vm_name}_OsDisk_1_d41d"),
                format!("{rg_id}/Microsoft.Compute/virtualMachines/{vm_name}"),
                format!("{rg_id}/Microsoft.Network/networkInterfaces/{vm_name}VMNic"),
                format!("{rg_id}/Microsoft.Network/networkSecurityGroups/{vm_name}NSG"),
                format!("{rg_id}/Microsoft.Network/virtualNetworks/{vm_name}VNET"),
                disk_uri
            ]
        });
        ok(serde_json::to_string_pretty(&body).unwrap(), "ok")
    }

    /// The driver's log for this run, as `echo $(cat log)` and Run Command leave it.
    fn run_logs(
        &self,
        spec: &VmSpec,
        recipe: &str,
        found: &Found,
        boot: bool,
        already: bool,
    ) -> (String, bool) {
        let stamp = "12/02/2026 06:00:00";
        let mut lines = vec![
            format!("[Log-Start  {stamp}]"),
            format!("[Info {stamp}]vmrescue Run Command payload: recipe {recipe}"),
            format!("[Info {stamp}]repair disk /dev/sdc (chosen by vmrescue scan --pick)"),
        ];
        let recipe = if recipe == "auto" {
            found.1.as_deref().unwrap_or("fix-root-fs")
        } else {
            recipe
        };
        let mut success = true;
        match spec.run.as_str() {
            "error" => {
                lines.push(format!("[Error {stamp}]vmrescue: error: fstab names UUID=5c6e1f3a which no filesystem on the disk has, and no root candidate was found"));
                lines.push(format!(
                    "[Error {stamp}]vmrescue exited 5 (see the exit codes in the vmrescue README)"
                ));
                success = false;
            }
            "nothing" => {
                lines.push(format!(
                    "[Info {stamp}]summary: nothing to repair: no recipe suggested"
                ));
                lines.push(format!(
                    "[Info {stamp}]full log on the repair VM: /var/log/vmrescue/runcommand.log"
                ));
                lines.push(format!(
                    "[Error {stamp}]result: nothing recognised: disk unchanged"
                ));
                success = false;
            }
            kind => {
                let diagnosis = found
                    .0
                    .as_deref()
                    .unwrap_or("Root filesystem not found (root-device-missing)");
                lines.push(format!("[Info {stamp}]diagnosis: {diagnosis}"));
                if kind == "cutoff" {
                    for i in 0..120 {
                        lines.push(format!("[Info {stamp}]fsck /dev/sdc1 pass {i}: checking inodes, blocks and sizes"));
                    }
                }
                lines.push(format!("[Info {stamp}]verify {recipe} root-resolves: root=UUID=9f1c2b7e resolves to /dev/sdc1"));
                if boot {
                    lines.push(format!("[Info {stamp}]boot OK: reached login prompt after 41 s (accelerator tcg, controller virtio, via kernel) console log: /var/log/vmrescue/boot.log"));
                }
                lines.push(format!("[Info {stamp}]vmrescue log on the repair VM: /var/log/vmrescue/runcommand.log.vmrescue"));
                let status = if already {
                    "nothing-to-do".to_string()
                } else {
                    "applied, 2 file(s) changed, journal 20261202-060000-1a2b, undo: vmrescue undo 20261202-060000-1a2b --yes".to_string()
                };
                lines.push(format!("[Info {stamp}]summary: {recipe} {status}"));
                // scripts/az-vm-repair.sh: exit 5 for a disk left unchanged.
                if already {
                    lines.push(format!(
                        "[Info {stamp}]full log on the repair VM: /var/log/vmrescue/runcommand.log"
                    ));
                    lines.push(format!(
                        "[Error {stamp}]result: nothing recognised: disk unchanged"
                    ));
                    success = false;
                } else {
                    lines.push(format!("[Info {stamp}]outcome=repaired"));
                    lines.push(format!(
                        "[Info {stamp}]full log on the repair VM: /var/log/vmrescue/runcommand.log"
                    ));
                    lines.push(format!("[Info {stamp}]result: repaired and verified"));
                }
            }
        }
        if success {
            lines.push("[STATUS]::SUCCESS".into());
        } else {
            lines.push(format!("[Error {stamp}]"));
        }
        lines.push(format!("[Log-End {stamp}]/var/lib/waagent/run-command/download/0/repair-files-20261202060000/logs-20261202060000.txt"));
        let collapsed = lines
            .join("\n")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let tail = if collapsed.len() > 4096 {
            collapsed[collapsed.len() - 4096..].to_string()
        } else {
            collapsed
        };
        (tail, success)
    }

    fn run(&self, spec: &VmSpec) -> Answer {
        let payload_path = self.flag("--custom-script-file");
        let Ok(payload) = std::fs::read_to_string(&payload_path) else {
            return ext_error(
                "Repair run failed.",
                &format!("[Errno 2] No such file or directory: '{payload_path}'"),
                "no-payload",
            );
        };
        if !payload.starts_with("#!/bin/sh")
            || payload.len() > 256 * 1024
            || !self.flags.contains_key("--run-on-repair")
        {
            return ext_error("Repair run failed.", "the payload is not a vmrescue payload under 256 KiB, or --run-on-repair is missing", "bad-payload");
        }
        let baked = |name: &str| {
            payload
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let (recipe, boot) = (baked("RECIPE"), baked("VERIFY") == "boot");
        let want_id = self.flag("--repair-vm-id");
        let started = self.with_world(spec, |w| match w.repair.as_mut() {
            Some(r)
                if r.state == "Succeeded"
                    && want_id.ends_with(&format!("/virtualMachines/{}", r.vm_name)) =>
            {
                if r.run_in_progress {
                    return Err("conflict");
                }
                r.run_in_progress = true;
                Ok(r.disk_repaired)
            }
            _ => Err("missing"),
        });
        let already = match started {
            Ok(already) => already,
            Err("conflict") => return ext_error("Repair run failed.", "ERROR: (Conflict) Run command extension execution is in progress. Please wait for completion before invoking a run command.", "conflict"),
            Err(_) => return ext_error("Repair run failed.", &format!("ERROR: (ResourceNotFound) The Resource '{want_id}' was not found."), "no-repair-vm"),
        };
        self.sleep("run");
        let found = diagnose_baked_log_cached(&self.dir, &payload);
        let (logs, success) = self.run_logs(spec, &recipe, &found, boot, already);
        let kind = match spec.run.as_str() {
            "ok" => "verified",
            other => other,
        };
        self.with_world(spec, |w| {
            if let Some(r) = w.repair.as_mut() {
                r.run_in_progress = false;
                if matches!(spec.run.as_str(), "ok" | "cutoff") {
                    r.disk_repaired = true;
                }
            }
            w.last_run = Some(kind.to_string());
        });
        let repair = read_world(&self.dir, &spec.rg, &spec.name)
            .and_then(|w| w.repair)
            .unwrap_or_default();
        let body = json!({
            "status": "SUCCESS",
            "message": if success { "Script completed succesfully." } else { "Script completed with errors." },
            "script_status": if success { "SUCCESS" } else { "ERROR" },
            "logs": logs, "err": "",
            "log_full_path": "/var/lib/waagent/run-command/download/0/repair-files-20261202060000/logs-20261202060000.txt",
            "output": "", "vm_name": repair.vm_name, "resource_group": repair.group
        });
        ok(serde_json::to_string_pretty(&body).unwrap(), kind)
    }

    fn restore(&self, spec: &VmSpec) -> Answer {
        let disk = self.flag("--disk-name");
        let present = read_world(&self.dir, &spec.rg, &spec.name)
            .and_then(|w| w.repair)
            .is_some_and(|r| r.disk == disk && r.state == "Succeeded");
        if !present {
            return ext_error("Repair restore failed. If the restore command fails at retry, please rerun the repair process from 'az vm repair create'.", &format!("ERROR: (ResourceNotFound) The Resource 'Microsoft.Compute/disks/{disk}' was not found."), "no-repair-vm");
        }
        self.sleep("restore");
        if spec.restore == "fail" {
            return ext_error(
                "Repair restore failed. If the restore command fails at retry, please rerun the repair process from 'az vm repair create'.",
                "ERROR: (PropertyChangeNotAllowed) Changing property 'osDisk.managedDisk.id' is not allowed.",
                "restore-failed",
            );
        }
        self.with_world(spec, |w| {
            let repaired = w.repair.as_ref().is_some_and(|r| r.disk_repaired);
            w.os_disk = disk.clone();
            w.os_disk_repaired = repaired;
            w.restored = true;
            w.restored_after = w.last_run.clone();
            w.repair = None;
        });
        let body = json!({"status": "SUCCESS", "message": format!("'{disk}' successfully attached to '{}' as an OS disk. Please test your repairs and once confirmed, you may choose to delete the source OS disk '{}_OsDisk_1_0abc' within resource group '{}' manually if you no longer need it, to avoid any undesired costs.", spec.name, spec.name, spec.rg)});
        ok(serde_json::to_string_pretty(&body).unwrap(), "ok")
    }
}
