//! Where Azure puts the repair disk (LUN 0) on a rescue VM, SCSI or NVMe.
//!
//! `az vm repair create` attaches the copy of the broken OS disk at LUN 0.
//! On SCSI sizes WALinuxAgent's udev rules link it as
//! `/dev/disk/azure/scsi1/lun0`. The NVMe-only sizes (v6, Azure Boost)
//! present remote disks as namespaces of one controller, model
//! `MSFT NVMe Accelerator v1.0`: namespace 1 is the OS disk and namespace
//! N ≥ 2 is LUN N − 2. azure-vm-utils' udev rules then link data disks as
//! `/dev/disk/azure/data/by-lun/N` (udev/80-azure-disk.rules, label
//! `azure_disk_nvme_remote_v1`; doc/disk-identification.md, "Disk
//! Controller Identification For NVMe Disks without VS-based
//! Identification"). Local (temp) NVMe disks have controllers of their own,
//! models `Microsoft NVMe Direct Disk` and `Microsoft NVMe Direct Disk v2`
//! (same sources; `identify_namespace_without_vs` in src/identify_disks.c).
//! A repair VM image without azure-vm-utils has no such links: then the
//! namespace itself is the evidence.
//!
//! [`read_layout`] reads what the machine shows into an [`AzureDiskLayout`]
//! (a root path parameter lets tests lay out a fake sysfs and /dev);
//! [`find_repair_disk`] decides, touching nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// WALinuxAgent's link for the SCSI data disk at LUN 0 (relative to `/`).
pub const SCSI_LUN0: &str = "dev/disk/azure/scsi1/lun0";
/// azure-vm-utils' link for the data disk at LUN 0, SCSI or NVMe.
pub const DATA_LUN0: &str = "dev/disk/azure/data/by-lun/0";
/// The folder of azure-vm-utils' data disk links by LUN.
pub const DATA_BY_LUN_DIR: &str = "dev/disk/azure/data/by-lun";

/// The controller model of Azure's remote (OS and data) NVMe disks.
pub const MODEL_REMOTE: &str = "MSFT NVMe Accelerator v1.0";
/// Controller models of Azure's local NVMe disks: never a repair disk.
pub const MODELS_LOCAL: &[&str] = &[
    "Microsoft NVMe Direct Disk",
    "Microsoft NVMe Direct Disk v2",
];

/// The environment variable that points the reader at a directory laid
/// out like `/` (its `sys/block`, `sys/dev/block`, `dev/disk/azure`,
/// `dev/nvme*`): a read-only test hook, nothing is written there.
pub const DEVICE_ROOT_ENV: &str = "VMRESCUE_DEVICE_ROOT";

/// One NVMe namespace, as `/sys/block/nvme*n*` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeNamespace {
    /// Kernel name, `nvme0n2`.
    pub name: String,
    /// What holds it: the controller (`nvme0`) or, under native NVMe
    /// multipath, the subsystem (`nvme-subsys0`); from the `device` link.
    pub controller: String,
    /// Namespace id (`nsid`), 1 for Azure's OS disk.
    pub nsid: u32,
    /// The controller's model, trimmed (`MSFT NVMe Accelerator v1.0`).
    pub model: Option<String>,
    /// Its device node, canonical (`/dev/nvme0n2`).
    pub dev_path: String,
}

/// What the reader saw: the Azure links, the NVMe namespaces and the
/// disks holding the running root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureDiskLayout {
    /// The device `/dev/disk/azure/scsi1/lun0` resolves to.
    pub scsi_lun0: Option<String>,
    /// The device `/dev/disk/azure/data/by-lun/0` resolves to.
    pub data_lun0: Option<String>,
    pub namespaces: Vec<NvmeNamespace>,
    /// Kernel names of the whole disks under `/` (through partitions,
    /// LVM or RAID): the rescue VM's OS disk.
    pub root_disks: Vec<String>,
}

/// How the repair disk was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ScsiLink,
    DataLink,
    /// The namespace after the OS disk's on the OS disk's controller.
    Namespace {
        controller: String,
        nsid: u32,
        os_disk: String,
    },
}

/// The repair disk: Azure's LUN 0, or the first data disk after the OS disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairDisk {
    pub device: String,
    pub route: Route,
}

impl RepairDisk {
    /// For the operator: "Azure LUN 0 by /dev/disk/azure/data/by-lun/0".
    pub fn describe(&self) -> String {
        match &self.route {
            Route::ScsiLink => format!("Azure LUN 0 by /{SCSI_LUN0}"),
            Route::DataLink => format!("Azure LUN 0 by /{DATA_LUN0}"),
            Route::Namespace {
                controller,
                nsid,
                os_disk,
            } => format!(
                "NVMe namespace {nsid} on {controller}, the first after the OS disk {os_disk} (Azure LUN {})",
                nsid.saturating_sub(2)
            ),
        }
    }
}

/// No LUN 0: what was looked at, each with why it did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("looked at {}", .looked_at.join("; "))]
pub struct NotFound {
    pub looked_at: Vec<String>,
}

/// Finds the repair disk: `scsi1/lun0`, else `data/by-lun/0`, else the
/// lowest namespace after the OS disk's on the controller holding the OS
/// disk. A device holding the running root is never the answer
/// (invariant 1), whatever link points at it.
pub fn find_repair_disk(layout: &AzureDiskLayout) -> Result<RepairDisk, NotFound> {
    let mut looked_at = Vec::new();
    let links = [
        (&layout.scsi_lun0, SCSI_LUN0, Route::ScsiLink),
        (&layout.data_lun0, DATA_LUN0, Route::DataLink),
    ];
    for (target, link, route) in links {
        match target {
            None => looked_at.push(format!("/{link}: absent")),
            Some(device) if holds_root(layout, device) => looked_at.push(format!(
                "/{link}: points at {device}, the rescue VM's own OS disk"
            )),
            Some(device) => {
                return Ok(RepairDisk {
                    device: device.clone(),
                    route,
                })
            }
        }
    }
    match next_namespace(layout) {
        Ok(found) => Ok(found),
        Err(why) => {
            looked_at.push(why);
            Err(NotFound { looked_at })
        }
    }
}

fn holds_root(layout: &AzureDiskLayout, device: &str) -> bool {
    let name = device.rsplit('/').next().unwrap_or(device);
    layout.root_disks.iter().any(|root| root == name)
}

/// The namespace rule, or why it found nothing.
fn next_namespace(layout: &AzureDiskLayout) -> Result<RepairDisk, String> {
    if layout.namespaces.is_empty() {
        return Err("NVMe namespaces: none".into());
    }
    let os: Vec<&NvmeNamespace> = layout
        .namespaces
        .iter()
        .filter(|ns| layout.root_disks.contains(&ns.name))
        .collect();
    let os_disk = match os.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
            "NVMe namespaces {}: none holds the running root, so no OS disk controller to search",
            names(layout.namespaces.iter())
        ))
        }
        // Root mirrored over two namespaces: which one is "the" OS disk is
        // a guess this rule does not make.
        many => {
            return Err(format!(
                "NVMe namespaces {} all hold the running root: no single OS disk controller",
                names(many.iter().copied())
            ))
        }
    };
    if os_disk
        .model
        .as_deref()
        .is_some_and(|m| MODELS_LOCAL.contains(&m))
    {
        return Err(format!(
            "the OS disk {} is on a local-disk controller ({}): no data disks there",
            os_disk.name,
            os_disk.model.as_deref().unwrap_or_default()
        ));
    }
    let next = layout
        .namespaces
        .iter()
        .filter(|ns| ns.controller == os_disk.controller && ns.nsid > os_disk.nsid)
        .filter(|ns| !layout.root_disks.contains(&ns.name))
        .min_by_key(|ns| ns.nsid);
    match next {
        Some(ns) => Ok(RepairDisk {
            device: ns.dev_path.clone(),
            route: Route::Namespace {
                controller: ns.controller.clone(),
                nsid: ns.nsid,
                os_disk: os_disk.name.clone(),
            },
        }),
        None => Err(format!(
            "NVMe controller {}: only the OS disk {} (namespace {}), no namespace after it",
            os_disk.controller, os_disk.name, os_disk.nsid
        )),
    }
}

fn names<'a>(namespaces: impl Iterator<Item = &'a NvmeNamespace>) -> String {
    namespaces
        .map(|ns| ns.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The directory standing in for `/`: [`DEVICE_ROOT_ENV`] or `/`.
pub fn device_root() -> PathBuf {
    std::env::var_os(DEVICE_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Reads the layout under `root` (`/` on a real machine).
pub fn read_layout(root: &Path) -> Result<AzureDiskLayout> {
    Ok(AzureDiskLayout {
        scsi_lun0: resolve(root, Path::new(SCSI_LUN0))?,
        data_lun0: resolve(root, Path::new(DATA_LUN0))?,
        namespaces: read_namespaces(root)?,
        root_disks: root_disks_in_sysfs(root)?,
    })
}

/// The canonical device a path under `root` names, as a path on the
/// machine: a link resolving inside a test root loses that prefix
/// (udev's links are relative, `../../../sdc`). `None` when absent.
pub fn resolve(root: &Path, relative: &Path) -> Result<Option<String>> {
    let path = root.join(relative);
    match std::fs::canonicalize(&path) {
        Ok(found) => Ok(Some(on_machine(root, &found))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("resolving {}", path.display())),
    }
}

fn on_machine(root: &Path, found: &Path) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    match found.strip_prefix(&root) {
        Ok(inside) if root != Path::new("/") => Path::new("/").join(inside).display().to_string(),
        _ => found.display().to_string(),
    }
}

/// `nvme0n2` → (0, 2); `None` for partitions (`nvme0n1p1`) and the
/// hidden per-path disks of NVMe multipath (`nvme0c0n1`), as
/// azure-vm-utils' `is_nvme_namespace` filters them.
pub fn parse_namespace_name(name: &str) -> Option<(u32, u32)> {
    let (ctrl, nsid) = name.strip_prefix("nvme")?.split_once('n')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ctrl) || !digits(nsid) {
        return None;
    }
    Some((ctrl.parse().ok()?, nsid.parse().ok()?))
}

/// Every `sys/block/nvme*n*` under `root`.
fn read_namespaces(root: &Path) -> Result<Vec<NvmeNamespace>> {
    let dir = root.join("sys/block");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    let mut namespaces = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((ctrl, parsed_nsid)) = parse_namespace_name(&name) else {
            continue;
        };
        let sys = entry.path();
        // The `device` link names the controller (or the multipath
        // subsystem, whose namespaces are named after its instance).
        let controller = std::fs::read_link(sys.join("device"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| format!("nvme{ctrl}"));
        let nsid = read_trimmed(&sys.join("nsid"))?
            .and_then(|n| n.parse().ok())
            .unwrap_or(parsed_nsid);
        let model = read_trimmed(&sys.join("device/model"))?;
        let dev_path =
            resolve(root, &Path::new("dev").join(&name))?.unwrap_or_else(|| format!("/dev/{name}"));
        namespaces.push(NvmeNamespace {
            name,
            controller,
            nsid,
            model,
            dev_path,
        });
    }
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(namespaces)
}

/// A sysfs attribute without its padding (NVMe models are space-padded
/// to 40 bytes); `None` when absent or empty.
fn read_trimmed(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// The whole disks under the running root, from sysfs: `/`'s device
/// number → `sys/dev/block/MAJ:MIN` → its disk (the parent of a
/// partition; through `slaves/` for LVM, dm-crypt and RAID). Empty when
/// `/` has no block device of its own (btrfs subvolumes, overlay): the
/// caller adds what lsblk says.
fn root_disks_in_sysfs(root: &Path) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/").context("reading the device of /")?;
    let number = format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev()));
    let Ok(start) = std::fs::canonicalize(root.join("sys/dev/block").join(&number)) else {
        return Ok(Vec::new());
    };
    let mut disks = Vec::new();
    disks_below(&start, 0, &mut disks);
    disks.sort();
    disks.dedup();
    Ok(disks)
}

fn disks_below(sys: &Path, depth: u32, disks: &mut Vec<String>) {
    // A stack deeper than this is a loop in a fake tree, not a machine.
    if depth > 8 {
        return;
    }
    let slaves: Vec<PathBuf> = std::fs::read_dir(sys.join("slaves"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if !slaves.is_empty() {
        for slave in slaves {
            disks_below(&slave, depth + 1, disks);
        }
        return;
    }
    let disk = if sys.join("partition").exists() {
        sys.parent()
    } else {
        Some(sys)
    };
    if let Some(name) = disk.and_then(Path::file_name) {
        disks.push(name.to_string_lossy().into_owned());
    }
}

/// The fixture layout helper the integration tests use too.
#[cfg(test)]
#[path = "../../tests/common/devtree.rs"]
mod devtree;

#[cfg(test)]
mod tests {
    use super::*;

    use super::devtree;

    fn ns(name: &str, controller: &str, nsid: u32, model: &str) -> NvmeNamespace {
        NvmeNamespace {
            name: name.into(),
            controller: controller.into(),
            nsid,
            model: Some(model.into()),
            dev_path: format!("/dev/{name}"),
        }
    }

    /// An NVMe repair VM (v6 size): remote nvme0 with the OS disk and the
    /// given data namespaces, a local disk on nvme1.
    fn nvme_vm(data: &[(&str, u32)]) -> AzureDiskLayout {
        let mut namespaces = vec![
            ns("nvme0n1", "nvme0", 1, MODEL_REMOTE),
            ns("nvme1n1", "nvme1", 1, MODELS_LOCAL[1]),
        ];
        namespaces.extend(data.iter().map(|(n, id)| ns(n, "nvme0", *id, MODEL_REMOTE)));
        AzureDiskLayout {
            namespaces,
            root_disks: vec!["nvme0n1".into()],
            ..AzureDiskLayout::default()
        }
    }

    #[test]
    fn links_come_first_scsi_before_data() {
        let mut layout = nvme_vm(&[("nvme0n2", 2)]);
        layout.data_lun0 = Some("/dev/nvme0n3".into());
        let found = find_repair_disk(&layout).unwrap();
        assert_eq!(found.device, "/dev/nvme0n3");
        assert_eq!(found.route, Route::DataLink);
        layout.scsi_lun0 = Some("/dev/sdc".into());
        let found = find_repair_disk(&layout).unwrap();
        assert_eq!(
            (found.device.as_str(), found.route),
            ("/dev/sdc", Route::ScsiLink)
        );
    }

    #[test]
    fn without_links_the_lowest_namespace_after_the_os_disk_on_its_controller() {
        // Namespaces listed out of order, LUN 0 detached (no nsid 2).
        let layout = nvme_vm(&[("nvme0n5", 5), ("nvme0n3", 3), ("nvme0n4", 4)]);
        let found = find_repair_disk(&layout).unwrap();
        assert_eq!(found.device, "/dev/nvme0n3");
        assert_eq!(
            found.route,
            Route::Namespace {
                controller: "nvme0".into(),
                nsid: 3,
                os_disk: "nvme0n1".into()
            }
        );
        assert!(
            found.describe().contains("(Azure LUN 1)"),
            "{}",
            found.describe()
        );
    }

    #[test]
    fn the_os_disk_and_other_controllers_are_never_taken() {
        let layout = nvme_vm(&[]);
        let err = find_repair_disk(&layout).unwrap_err().to_string();
        assert!(err.contains("/dev/disk/azure/scsi1/lun0: absent"), "{err}");
        assert!(
            err.contains("/dev/disk/azure/data/by-lun/0: absent"),
            "{err}"
        );
        assert!(
            err.contains("NVMe controller nvme0: only the OS disk nvme0n1 (namespace 1)"),
            "{err}"
        );
        // No glob characters: Run Command echoes the log unquoted.
        assert!(!err.contains(['*', '?', '[', ']']), "{err}");
        // A link that points at the running root is refused too.
        let mut layout = nvme_vm(&[("nvme0n2", 2)]);
        layout.data_lun0 = Some("/dev/nvme0n1".into());
        let found = find_repair_disk(&layout).unwrap();
        assert_eq!(found.device, "/dev/nvme0n2");
        layout.namespaces.retain(|n| n.name != "nvme0n2");
        let err = find_repair_disk(&layout).unwrap_err().to_string();
        assert!(
            err.contains("points at /dev/nvme0n1, the rescue VM's own OS disk"),
            "{err}"
        );
    }

    #[test]
    fn no_namespace_rule_without_a_known_os_disk_or_on_a_local_controller() {
        let mut layout = nvme_vm(&[("nvme0n2", 2)]);
        layout.root_disks.clear();
        let err = find_repair_disk(&layout).unwrap_err().to_string();
        assert!(err.contains("none holds the running root"), "{err}");
        // Root on a local disk (an odd image): its controller has no LUNs.
        layout.root_disks = vec!["nvme1n1".into()];
        layout
            .namespaces
            .push(ns("nvme1n2", "nvme1", 2, MODELS_LOCAL[1]));
        let err = find_repair_disk(&layout).unwrap_err().to_string();
        assert!(err.contains("local-disk controller"), "{err}");
        // A SCSI VM without links: no namespaces at all.
        let err = find_repair_disk(&AzureDiskLayout::default())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("NVMe namespaces: none"), "{err}");
    }

    #[test]
    fn namespace_names() {
        assert_eq!(parse_namespace_name("nvme0n2"), Some((0, 2)));
        assert_eq!(parse_namespace_name("nvme12n10"), Some((12, 10)));
        for not in ["nvme0n1p1", "nvme0c0n1", "nvme0", "sda", "nvmen1", "nvme0n"] {
            assert_eq!(parse_namespace_name(not), None, "{not}");
        }
    }

    /// A recorded layout laid out in a temp dir, read and decided.
    fn read_fixture(name: &str) -> (AzureDiskLayout, Result<RepairDisk, NotFound>) {
        let dir = tempfile::tempdir().unwrap();
        devtree::lay_out(&devtree::fixture(name), dir.path(), "");
        let layout = read_layout(dir.path()).unwrap();
        let found = find_repair_disk(&layout);
        (layout, found)
    }

    #[test]
    fn fixture_scsi_layout_takes_scsi1_lun0() {
        let (layout, found) = read_fixture("scsi");
        assert_eq!(layout.root_disks, vec!["sda"]);
        assert!(layout.namespaces.is_empty());
        let found = found.unwrap();
        assert_eq!(
            (found.device.as_str(), found.route),
            ("/dev/sdc", Route::ScsiLink)
        );
    }

    #[test]
    fn fixture_nvme_by_lun_layout_takes_data_by_lun_0() {
        let (layout, found) = read_fixture("nvme-by-lun");
        assert_eq!(layout.scsi_lun0, None);
        assert_eq!(layout.data_lun0.as_deref(), Some("/dev/nvme0n2"));
        let os = &layout.namespaces[0];
        assert_eq!(
            (os.name.as_str(), os.controller.as_str(), os.nsid),
            ("nvme0n1", "nvme0", 1)
        );
        assert_eq!(os.model.as_deref(), Some(MODEL_REMOTE));
        let local = layout
            .namespaces
            .iter()
            .find(|n| n.name == "nvme1n1")
            .unwrap();
        assert_eq!(
            local.model.as_deref(),
            Some("Microsoft NVMe Direct Disk v2")
        );
        let found = found.unwrap();
        assert_eq!(
            (found.device.as_str(), found.route),
            ("/dev/nvme0n2", Route::DataLink)
        );
    }

    #[test]
    fn fixture_bare_namespaces_take_the_one_after_the_os_disk() {
        let (layout, found) = read_fixture("nvme-bare");
        assert_eq!(
            (layout.scsi_lun0.clone(), layout.data_lun0.clone()),
            (None, None)
        );
        assert_eq!(layout.root_disks, vec!["nvme0n1"]);
        assert_eq!(layout.namespaces.len(), 4);
        let found = found.unwrap();
        assert_eq!(found.device, "/dev/nvme0n2");
        assert!(matches!(found.route, Route::Namespace { nsid: 2, .. }));
    }

    #[test]
    fn fixture_os_namespace_only_finds_nothing_and_says_where_it_looked() {
        let (layout, found) = read_fixture("nvme-os-only");
        assert_eq!(layout.root_disks, vec!["nvme0n1"]);
        let err = found.unwrap_err().to_string();
        assert!(
            err.contains("/dev/disk/azure/data/by-lun/0: absent"),
            "{err}"
        );
        assert!(
            err.contains("NVMe controller nvme0: only the OS disk nvme0n1"),
            "{err}"
        );
    }
}
