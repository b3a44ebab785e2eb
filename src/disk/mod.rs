//! Discovering block devices and telling the rescue host's own disks apart
//! from the broken OS disk attached to it (invariant 1).

pub mod azure;
pub mod blkid;
pub mod loopdev;
pub mod lsblk;
pub mod partitions;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::Failure;
pub use lsblk::BlockDevice;

/// Version of the JSON printed by `vmrescue scan --json`.
pub const SCAN_SCHEMA_VERSION: u32 = 1;

/// Where Azure publishes stable names for SCSI data disks by LUN.
pub const AZURE_LUN_DIR: &str = "/dev/disk/azure/scsi1";
/// Relative to the device root (`/`, or the test hook's directory).
const BY_PATH_DIR: &str = "dev/disk/by-path";

/// Filesystems and containers that make a disk look like an OS disk.
const OS_FSTYPES: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "LVM2_member",
    "crypto_LUKS",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskClass {
    /// The rescue host's own disk: never touched.
    Host,
    /// Looks like an attached OS disk.
    Candidate,
    /// Neither (empty, optical, zram…).
    Other,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScannedDisk {
    pub name: String,
    pub path: String,
    pub kind: String,
    pub size: Option<u64>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub read_only: bool,
    pub class: DiskClass,
    /// Why it got its class, for the operator.
    pub reason: String,
    pub encrypted: bool,
    pub azure_lun: Option<String>,
    pub by_path: Vec<String>,
    pub partitions: Vec<ScannedVolume>,
}

/// A partition, LV or filesystem below a disk.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScannedVolume {
    pub path: String,
    pub kind: String,
    pub size: Option<u64>,
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub partuuid: Option<String>,
    pub mountpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Scan {
    pub version: u32,
    pub disks: Vec<ScannedDisk>,
    /// Azure's repair disk (LUN 0) by its links or NVMe namespace, or what
    /// was looked at; [`Scan::pick_target`] prefers it. Not in `--json`:
    /// the chosen disk's `reason` and `azure_lun` say it.
    #[serde(skip)]
    pub repair_disk: Result<azure::RepairDisk, azure::NotFound>,
}

/// Facts about the running host that lsblk alone does not show.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Device paths in use as swap (from /proc/swaps).
    pub swaps: Vec<String>,
    /// Canonical device path → stable names pointing at it (Azure LUN, by-path).
    pub azure_luns: BTreeMap<String, String>,
    pub by_path: BTreeMap<String, Vec<String>>,
    /// Open count of each device-mapper device by `/dev/mapper/NAME`;
    /// `None` when unknown (then every active volume counts as in use).
    pub dm_open: Option<BTreeMap<String, u32>>,
    /// Azure's LUN links and the NVMe namespaces, for the repair disk.
    pub azure: azure::AzureDiskLayout,
}

impl HostFacts {
    pub fn gather() -> Result<Self> {
        let swaps = match std::fs::read_to_string("/proc/swaps") {
            Ok(text) => parse_proc_swaps(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err).context("reading /proc/swaps"),
        };
        // `/`, or the test hook's fake sysfs and /dev (disk::azure).
        let root = azure::device_root();
        let lun_dir = std::env::var_os("VMRESCUE_AZURE_LUN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(AZURE_LUN_DIR.trim_start_matches('/')));
        let mut azure_luns = BTreeMap::new();
        // SCSI names first: on a SCSI VM both name a data disk, and the
        // scsi1 one is what Azure's documentation shows.
        for dir in [lun_dir, root.join(azure::DATA_BY_LUN_DIR)] {
            for (link, dev) in links_in(&dir, &root)? {
                let name = link
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // lun0-part1 and 0-part1 name partitions; only whole disks matter here.
                if !name.contains("-part") {
                    azure_luns
                        .entry(dev)
                        .or_insert_with(|| link.display().to_string());
                }
            }
        }
        let mut by_path: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (link, dev) in links_in(&root.join(BY_PATH_DIR), &root)? {
            by_path
                .entry(dev)
                .or_default()
                .push(link.display().to_string());
        }
        Ok(HostFacts {
            swaps,
            azure_luns,
            by_path,
            dm_open: device_mapper_open_counts(),
            azure: azure::read_layout(&root)
                .context("reading the Azure disk links and NVMe namespaces")?,
        })
    }
}

/// `dmsetup info` open counts; `None` without device-mapper or dmsetup.
fn device_mapper_open_counts() -> Option<BTreeMap<String, u32>> {
    if !Path::new("/dev/mapper/control").exists() {
        return Some(BTreeMap::new());
    }
    let output = crate::cmd::Cmd::new("dmsetup")
        .args([
            "info",
            "-c",
            "--noheadings",
            "--separator",
            ":",
            "-o",
            "name,open",
        ])
        .read()
        .ok()?;
    Some(parse_dm_open(&output))
}

fn parse_dm_open(text: &str) -> BTreeMap<String, u32> {
    text.lines()
        .filter_map(|line| line.trim().rsplit_once(':'))
        .filter_map(|(name, open)| Some((format!("/dev/mapper/{name}"), open.trim().parse().ok()?)))
        .collect()
}

/// Symlinks in `dir` and the canonical device each points at (as a path
/// on the machine, see [`azure::resolve`]); a missing dir is empty.
fn links_in(dir: &Path, root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    let mut links = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let link = entry.path();
        if let Ok(Some(dev)) = azure::resolve(root, &link) {
            links.push((link, dev));
        }
    }
    links.sort();
    Ok(links)
}

fn parse_proc_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Lists the machine's disks and classifies them.
pub fn scan() -> Result<Scan> {
    let mut devices = lsblk::list(&[])?;
    blkid::enrich(&mut devices, &mut blkid::probe)?;
    let facts = HostFacts::gather()?;
    Ok(classify(&devices, &facts))
}

/// Classifies lsblk's top-level devices (pure; used by `scan` and tests).
pub fn classify(devices: &[BlockDevice], facts: &HostFacts) -> Scan {
    let repair_disk = azure::find_repair_disk(&with_lsblk_root(&facts.azure, devices));
    let mut disks: Vec<ScannedDisk> = devices.iter().map(|dev| classify_one(dev, facts)).collect();
    if let Ok(found) = &repair_disk {
        let candidate =
            |d: &&mut ScannedDisk| d.path == found.device && d.class == DiskClass::Candidate;
        if let Some(disk) = disks.iter_mut().find(candidate) {
            disk.reason = format!("{}; {}", disk.reason, found.describe());
        }
    }
    Scan {
        version: SCAN_SCHEMA_VERSION,
        disks,
        repair_disk,
    }
}

/// The Azure layout with lsblk's word on which disks hold `/` added: sysfs
/// cannot follow a root without a block device of its own (btrfs
/// subvolumes), lsblk's tree always shows where `/` is mounted.
fn with_lsblk_root(
    layout: &azure::AzureDiskLayout,
    devices: &[BlockDevice],
) -> azure::AzureDiskLayout {
    let mut layout = layout.clone();
    for dev in devices {
        let holds_root = dev
            .walk()
            .iter()
            .any(|n| n.mountpoints.iter().any(|m| m == "/"));
        if holds_root && !layout.root_disks.contains(&dev.name) {
            layout.root_disks.push(dev.name.clone());
        }
    }
    layout
}

fn classify_one(dev: &BlockDevice, facts: &HostFacts) -> ScannedDisk {
    let path = dev.dev_path();
    let nodes = dev.walk();
    let partitions = nodes
        .iter()
        .skip(1)
        .map(|node| ScannedVolume {
            path: node.dev_path(),
            kind: node.kind.clone(),
            size: node.size,
            fstype: node.fstype.clone(),
            uuid: node.uuid.clone(),
            label: node.label.clone(),
            partuuid: node.partuuid.clone(),
            mountpoints: node.mountpoints.clone(),
        })
        .collect();
    let encrypted = nodes
        .iter()
        .any(|n| n.fstype.as_deref() == Some("crypto_LUKS"));
    let (class, reason) = decide_class(dev, &nodes, facts);
    ScannedDisk {
        name: dev.name.clone(),
        kind: dev.kind.clone(),
        size: dev.size,
        model: dev.model.clone(),
        serial: dev.serial.clone(),
        read_only: dev.ro,
        class,
        reason,
        encrypted,
        azure_lun: facts.azure_luns.get(&path).cloned(),
        by_path: facts.by_path.get(&path).cloned().unwrap_or_default(),
        partitions,
        path,
    }
}

fn decide_class(
    dev: &BlockDevice,
    nodes: &[&BlockDevice],
    facts: &HostFacts,
) -> (DiskClass, String) {
    if let Some(node) = nodes.iter().find(|n| n.is_mounted()) {
        let what = if node.mountpoints.iter().any(|m| m == "/") {
            "holds the running root filesystem".to_string()
        } else {
            format!(
                "{} is mounted on {}",
                node.dev_path(),
                node.mountpoints.join(", ")
            )
        };
        return (DiskClass::Host, what);
    }
    if let Some(node) = nodes.iter().find(|n| facts.swaps.contains(&n.dev_path())) {
        return (
            DiskClass::Host,
            format!("{} is in use as swap", node.dev_path()),
        );
    }
    // An active volume that nothing holds open is the attached disk's own,
    // activated by the rescue VM's udev when the disk appeared; one that is
    // open (or whose state is unknown) belongs to the host.
    let in_use = |node: &BlockDevice| match &facts.dm_open {
        Some(open) => open.get(&node.dev_path()).is_none_or(|count| *count > 0),
        None => true,
    };
    let volumes = |n: &&&BlockDevice| n.kind == "lvm" || n.kind == "crypt";
    if let Some(node) = nodes.iter().filter(volumes).find(|n| in_use(n)) {
        return (
            DiskClass::Host,
            format!(
                "{} is active and in use on the host ({})",
                node.dev_path(),
                node.kind
            ),
        );
    }
    let idle_volumes = nodes.iter().filter(volumes).count();
    if dev.kind == "rom" || dev.name.starts_with("zram") || dev.size == Some(0) {
        return (
            DiskClass::Other,
            format!(
                "{} device",
                if dev.kind == "rom" {
                    "optical"
                } else {
                    "empty or memory"
                }
            ),
        );
    }
    let os_like: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.fstype.as_deref().filter(|fs| OS_FSTYPES.contains(fs)))
        .map(str::to_string)
        .collect();
    if os_like.is_empty() {
        return (
            DiskClass::Other,
            "no Linux filesystem or LVM/LUKS volume".to_string(),
        );
    }
    let partitions = nodes.iter().filter(|n| n.kind == "part").count();
    let idle = if idle_volumes > 0 {
        format!(
            "; {idle_volumes} volume(s) active but unused (activated when the disk was attached)"
        )
    } else {
        String::new()
    };
    (
        DiskClass::Candidate,
        format!(
            "unmounted; {partitions} partition(s), holds {}{idle}",
            dedup(os_like).join(", ")
        ),
    )
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = Vec::new();
    items.retain(|item| {
        let new = !seen.contains(item);
        if new {
            seen.push(item.clone());
        }
        new
    });
    items
}

impl Scan {
    pub fn candidates(&self) -> Vec<&ScannedDisk> {
        self.disks
            .iter()
            .filter(|d| d.class == DiskClass::Candidate)
            .collect()
    }

    /// The one disk to work on when the operator did not name one: Azure's
    /// repair disk (`scsi1/lun0`, `data/by-lun/0`, the NVMe namespace after
    /// the OS disk's: [`azure::find_repair_disk`]) when it is a candidate,
    /// else the only candidate. A host disk is never picked (invariant 1).
    pub fn pick_target(&self) -> Result<&ScannedDisk> {
        let candidates = self.candidates();
        if let Ok(found) = &self.repair_disk {
            if let Some(disk) = candidates.iter().find(|d| d.path == found.device) {
                return Ok(disk);
            }
        }
        match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(Failure::NoTarget(format!(
                "no candidate disk found ({}): attach the broken VM's OS disk to this rescue VM, or name it with --disk/--image/--root",
                self.repair_disk_search()
            ))
            .into()),
            many => {
                let names: Vec<String> = many.iter().map(|d| d.path.clone()).collect();
                Err(Failure::NoTarget(format!(
                    "{} candidate disks ({}), and {}: choose one with --disk",
                    many.len(),
                    names.join(", "),
                    self.repair_disk_search()
                ))
                .into())
            }
        }
    }

    /// What the Azure repair disk search said, for a refusal.
    fn repair_disk_search(&self) -> String {
        match &self.repair_disk {
            Ok(found) => match self.disks.iter().find(|d| d.path == found.device) {
                Some(disk) => format!(
                    "{} is {}, which is not a candidate ({:?}: {})",
                    found.describe(),
                    found.device,
                    disk.class,
                    disk.reason
                ),
                None => format!(
                    "{} is {}, which lsblk does not list",
                    found.describe(),
                    found.device
                ),
            },
            Err(not_found) => not_found.to_string(),
        }
    }

    /// Human-readable table.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for disk in &self.disks {
            let size = disk.size.map(human_size).unwrap_or_else(|| "?".into());
            let _ = write!(
                out,
                "{:<10} {:<14} {:>9}  {}",
                format!("{:?}", disk.class).to_lowercase(),
                disk.path,
                size,
                disk.reason
            );
            if let Some(model) = &disk.model {
                let _ = write!(out, "  [{model}]");
            }
            if let Some(lun) = &disk.azure_lun {
                let _ = write!(out, "  {lun}");
            }
            if disk.encrypted {
                out.push_str("  (encrypted)");
            }
            out.push('\n');
            for part in &disk.partitions {
                let _ = writeln!(
                    out,
                    "             {:<16} {:>9}  {} {}{}",
                    part.path,
                    part.size.map(human_size).unwrap_or_default(),
                    part.fstype.as_deref().unwrap_or("-"),
                    part.label
                        .as_deref()
                        .map(|l| format!("label={l} "))
                        .unwrap_or_default(),
                    if part.mountpoints.is_empty() {
                        String::new()
                    } else {
                        format!("on {}", part.mountpoints.join(","))
                    }
                );
            }
        }
        if self.disks.is_empty() {
            out.push_str("no block devices found\n");
        }
        out
    }
}

/// 1536 → "1.5K", binary units like lsblk.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured `lsblk -J` output, with its captured `blkid -p` output
    /// (NAME.blkid) applied when there is one, as `scan` does.
    fn fixture(name: &str) -> Vec<BlockDevice> {
        let dir = format!("{}/tests/fixtures/lsblk", env!("CARGO_MANIFEST_DIR"));
        let path = format!("{dir}/{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut devices = lsblk::parse(&text).unwrap();
        let blkid_path = format!("{dir}/{}.blkid", name.trim_end_matches(".json"));
        if let Ok(export) = std::fs::read_to_string(blkid_path) {
            let probes = blkid::parse_export(&export);
            blkid::enrich(&mut devices, &mut |dev| Ok(probes.get(dev).cloned())).unwrap();
        }
        devices
    }

    #[test]
    fn swaps_are_parsed() {
        let text = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2 partition 1 0 -2\n";
        assert_eq!(parse_proc_swaps(text), vec!["/dev/sdb2"]);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1536), "1.5K");
        assert_eq!(human_size(30 * 1024 * 1024 * 1024), "30.0G");
    }

    #[test]
    fn this_machine_has_only_host_disks() {
        let scan = classify(&fixture("dev-machine.json"), &HostFacts::default());
        let vda = scan.disks.iter().find(|d| d.name == "vda").unwrap();
        assert_eq!(vda.class, DiskClass::Host);
        assert!(scan.candidates().is_empty());
        let err = scan.pick_target().unwrap_err();
        assert_eq!(crate::exit_code_for(&err), crate::ExitCode::NoTarget);
    }

    #[test]
    fn partitioned_loop_image_is_a_candidate() {
        let scan = classify(&fixture("loop-image.json"), &HostFacts::default());
        let candidates = scan.candidates();
        assert_eq!(candidates.len(), 1, "{}", scan.render_text());
        assert!(candidates[0].path.starts_with("/dev/loop"));
        assert_eq!(scan.pick_target().unwrap().path, candidates[0].path);
    }

    #[test]
    fn azure_layout_prefers_lun0_and_never_picks_os_or_resource_disk() {
        let mut facts = HostFacts::default();
        facts.swaps.push("/dev/sdb2".into());
        facts
            .azure_luns
            .insert("/dev/sdc".into(), "/dev/disk/azure/scsi1/lun0".into());
        facts.azure.scsi_lun0 = Some("/dev/sdc".into());
        let scan = classify(&fixture("azure-rescue.json"), &facts);
        let class_of = |name: &str| scan.disks.iter().find(|d| d.name == name).unwrap().class;
        assert_eq!(class_of("sda"), DiskClass::Host);
        assert_eq!(class_of("sdb"), DiskClass::Host);
        assert_eq!(class_of("sdc"), DiskClass::Candidate);
        assert_eq!(scan.pick_target().unwrap().name, "sdc");
    }

    /// An NVMe repair VM (azure-rescue-nvme.json: OS disk nvme0n1, local
    /// temp disk nvme1n1 on /mnt, the broken disk as nvme0n2) as the
    /// reader sees it without azure-vm-utils: namespaces only.
    fn nvme_facts(with_repair_disk: bool) -> (Vec<BlockDevice>, HostFacts) {
        use azure::{NvmeNamespace, MODELS_LOCAL, MODEL_REMOTE};
        let mut devices = fixture("azure-rescue-nvme.json");
        let ns = |name: &str, controller: &str, nsid, model: &str| NvmeNamespace {
            name: name.into(),
            controller: controller.into(),
            nsid,
            model: Some(model.into()),
            dev_path: format!("/dev/{name}"),
        };
        let mut namespaces = vec![
            ns("nvme0n1", "nvme0", 1, MODEL_REMOTE),
            ns("nvme1n1", "nvme1", 1, MODELS_LOCAL[1]),
        ];
        if with_repair_disk {
            namespaces.push(ns("nvme0n2", "nvme0", 2, MODEL_REMOTE));
        } else {
            devices.retain(|d| d.name != "nvme0n2");
        }
        let facts = HostFacts {
            swaps: vec!["/dev/nvme1n1p2".into()],
            azure: azure::AzureDiskLayout {
                namespaces,
                // Only what lsblk shows: classify adds the disk holding `/`.
                root_disks: Vec::new(),
                ..Default::default()
            },
            ..HostFacts::default()
        };
        (devices, facts)
    }

    #[test]
    fn nvme_repair_vm_picks_the_namespace_after_the_os_disk() {
        let (devices, facts) = nvme_facts(true);
        let scan = classify(&devices, &facts);
        let class_of = |name: &str| scan.disks.iter().find(|d| d.name == name).unwrap().class;
        assert_eq!(class_of("nvme0n1"), DiskClass::Host);
        assert_eq!(class_of("nvme1n1"), DiskClass::Host);
        let picked = scan.pick_target().unwrap();
        assert_eq!(picked.path, "/dev/nvme0n2");
        assert!(
            picked.reason.contains("NVMe namespace 2 on nvme0"),
            "{}",
            picked.reason
        );
        // by-lun/0 at the OS disk (never seen, but never obeyed): still nvme0n2.
        let (devices, mut facts) = nvme_facts(true);
        facts.azure.data_lun0 = Some("/dev/nvme0n1".into());
        assert_eq!(
            classify(&devices, &facts).pick_target().unwrap().path,
            "/dev/nvme0n2"
        );
    }

    #[test]
    fn nvme_repair_vm_with_only_its_os_disk_exits_3_naming_what_it_looked_at() {
        let (devices, facts) = nvme_facts(false);
        let scan = classify(&devices, &facts);
        let err = scan.pick_target().unwrap_err();
        assert_eq!(crate::exit_code_for(&err), crate::ExitCode::NoTarget);
        let message = format!("{err}");
        for looked in [
            "/dev/disk/azure/scsi1/lun0: absent",
            "/dev/disk/azure/data/by-lun/0: absent",
            "NVMe controller nvme0: only the OS disk nvme0n1 (namespace 1)",
        ] {
            assert!(message.contains(looked), "{message}");
        }
    }

    #[test]
    fn a_repair_disk_link_to_a_host_disk_is_not_obeyed() {
        // scsi1/lun0 at the resource disk (mounted on /mnt): not a candidate,
        // so the only candidate is taken, as before the Azure rule.
        let mut facts = HostFacts::default();
        facts.swaps.push("/dev/sdb2".into());
        facts.azure.scsi_lun0 = Some("/dev/sdb".into());
        let scan = classify(&fixture("azure-rescue.json"), &facts);
        assert_eq!(scan.pick_target().unwrap().name, "sdc");
    }

    #[test]
    fn host_lvm_disk_is_host_even_when_partition_is_not_mounted() {
        let scan = classify(&fixture("lvm-host.json"), &HostFacts::default());
        for disk in &scan.disks {
            if disk.partitions.iter().any(|p| p.kind == "lvm") {
                assert_eq!(disk.class, DiskClass::Host, "{}", disk.path);
            }
        }
    }

    /// lvm-host.json plus /dev/sdc: a copy of the OS disk whose VG `tgtvg`
    /// the rescue VM's udev activated (nothing mounted).
    fn with_autoactivated_target() -> Vec<BlockDevice> {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/lsblk/lvm-host.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let devices = json["blockdevices"].as_array_mut().unwrap();
        let copy = serde_json::to_string(&devices[0])
            .unwrap()
            .replace("sda", "sdc")
            .replace("rootvg", "tgtvg");
        let mut copy: serde_json::Value = serde_json::from_str(&copy).unwrap();
        fn unmount(node: &mut serde_json::Value) {
            node["mountpoints"] = serde_json::json!([null]);
            if let Some(children) = node.get_mut("children").and_then(|c| c.as_array_mut()) {
                children.iter_mut().for_each(unmount);
            }
        }
        unmount(&mut copy);
        devices.push(copy);
        lsblk::parse(&json.to_string()).unwrap()
    }

    fn open_counts(count: u32) -> HostFacts {
        let open = ["rootlv", "usrlv", "varlv"]
            .iter()
            .flat_map(|lv| {
                [
                    (format!("/dev/mapper/rootvg-{lv}"), 1),
                    (format!("/dev/mapper/tgtvg-{lv}"), count),
                ]
            })
            .collect();
        HostFacts {
            dm_open: Some(open),
            ..HostFacts::default()
        }
    }

    #[test]
    fn a_disk_whose_vg_udev_activated_but_nothing_uses_is_a_candidate() {
        let scan = classify(&with_autoactivated_target(), &open_counts(0));
        let sdc = scan.disks.iter().find(|d| d.path == "/dev/sdc").unwrap();
        assert_eq!(sdc.class, DiskClass::Candidate, "{}", sdc.reason);
        assert!(sdc.reason.contains("active but unused"), "{}", sdc.reason);
        let sda = scan.disks.iter().find(|d| d.path == "/dev/sda").unwrap();
        assert_eq!(sda.class, DiskClass::Host);
    }

    #[test]
    fn an_open_or_unknown_volume_keeps_its_disk_a_host_disk() {
        let scan = classify(&with_autoactivated_target(), &open_counts(1));
        let sdc = scan.disks.iter().find(|d| d.path == "/dev/sdc").unwrap();
        assert_eq!(sdc.class, DiskClass::Host, "{}", sdc.reason);
        let scan = classify(&with_autoactivated_target(), &HostFacts::default());
        let sdc = scan.disks.iter().find(|d| d.path == "/dev/sdc").unwrap();
        assert_eq!(sdc.class, DiskClass::Host, "{}", sdc.reason);
    }

    #[test]
    fn dmsetup_open_counts_are_parsed() {
        let open = parse_dm_open("rootvg-rootlv:1\ntgtvg-swap:0\nbroken\n");
        assert_eq!(open.get("/dev/mapper/rootvg-rootlv"), Some(&1));
        assert_eq!(open.get("/dev/mapper/tgtvg-swap"), Some(&0));
        assert_eq!(open.len(), 2);
    }

    #[test]
    fn two_candidates_are_ambiguous() {
        let mut devs = fixture("loop-image.json");
        let mut twin = devs
            .iter()
            .find(|d| d.name.starts_with("loop") && !d.children.is_empty())
            .unwrap()
            .clone();
        twin.name = "loop99".into();
        twin.path = Some("/dev/loop99".into());
        devs.push(twin);
        let scan = classify(&devs, &HostFacts::default());
        let err = scan.pick_target().unwrap_err();
        assert!(format!("{err}").contains("/dev/loop99"), "{err}");
        assert_eq!(crate::exit_code_for(&err), crate::ExitCode::NoTarget);
    }
}
