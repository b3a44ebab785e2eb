//! Mounting the target OS exactly as it boots, without touching the rescue
//! host's own disks (invariants 1, 2, 7, 8).
//!
//! Everything vmrescue does here is recorded in a state file before it is
//! done; [`Target`] undoes it on drop unless told to keep the mounts, and
//! `vmrescue umount` undoes it after a crash.

pub mod fsck;
pub mod fstab_mounts;
pub mod lvm;
pub mod mountinfo;
pub mod nodes;
pub mod refuse;
pub mod state;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::Serialize;

use crate::cmd::{ChrootMount, ChrootSpec};
use crate::disk::{self, BlockDevice, DiskClass};
use crate::error::Failure;
use crate::failpoint;
use crate::rootfs::RootDir;
use fstab_mounts::FstabMount;
use state::{StateFile, Step};

/// Where targets are mounted unless `--mount-base` says otherwise.
pub const DEFAULT_MOUNT_BASE: &str = "/mnt/vmrescue";
pub const LAYOUT_SCHEMA_VERSION: u32 = 1;

/// Which target the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// The single candidate disk (Azure LUN 0 first).
    Auto,
    /// A disk or partition.
    Disk(PathBuf),
    /// A disk image file, attached as a loop device.
    Image(PathBuf),
    /// An already mounted root directory: nothing is mounted.
    Root(PathBuf),
}

/// How the target ended up mounted (printed by `vmrescue mount --json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Layout {
    pub version: u32,
    pub key: String,
    pub root: PathBuf,
    pub disk: Option<String>,
    pub image: Option<PathBuf>,
    pub root_device: Option<String>,
    pub read_only_device: bool,
    pub mounts: Vec<MountedFs>,
    /// fstab entries that are not local filesystems (swap, network, tmpfs, bind).
    pub skipped: Vec<FstabNote>,
    /// fstab entries whose source is not on the target disk.
    pub unresolved: Vec<FstabNote>,
    pub volume_groups: Vec<VolumeGroupUse>,
    /// Every block device of the disk with its blkid identifiers (empty
    /// for a `--root` directory, and in layouts saved by older versions).
    #[serde(default)]
    pub nodes: Vec<nodes::DiskNode>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MountedFs {
    pub device: String,
    pub mount_point: String,
    pub fstype: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct FstabNote {
    pub line: usize,
    pub spec: String,
    pub mount_point: String,
    pub fstype: String,
    pub nofail: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct VolumeGroupUse {
    pub name: String,
    /// Set when the host has a VG of the same name (same-image rescue).
    pub temporary_name: Option<String>,
    /// The VG's PVs with the UUIDs the disk holds at rest: before the mount
    /// and again after umount, even while a same-image clone runs under new
    /// ones.
    #[serde(default)]
    pub pvs: Vec<lvm::PvIdentity>,
}

/// A mounted target. Dropping it unmounts everything it mounted, unless
/// [`Target::keep`] was called.
#[derive(Debug)]
pub struct Target {
    layout: Layout,
    state: Option<StateFile>,
    keep: bool,
}

impl Target {
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// The target disk's device, when a disk (not a directory) is mounted.
    pub fn disk(&self) -> Option<&Path> {
        self.layout.disk.as_deref().map(Path::new)
    }

    pub fn rootdir(&self) -> Result<RootDir> {
        RootDir::open(&self.layout.root)
    }

    /// Leaves everything mounted (for `vmrescue mount`); the state file stays.
    pub fn keep(mut self) -> Result<Layout> {
        if let Some(state) = self.state.as_mut() {
            state.state.kept = true;
            state.save()?;
        }
        self.keep = true;
        Ok(self.layout.clone())
    }

    /// Remounts every filesystem vmrescue mounted read-write, after the
    /// operator confirmed a change (invariant 8).
    pub fn make_writable(&self) -> Result<()> {
        if self.layout.read_only_device {
            return Err(Failure::Refused(format!(
                "{} is a read-only device: no change can be written to it",
                self.layout.disk.as_deref().unwrap_or("the target")
            ))
            .into());
        }
        for mount in &self.layout.mounts {
            nix::mount::mount(
                None::<&str>,
                &mount.path,
                None::<&str>,
                nix::mount::MsFlags::MS_REMOUNT | TARGET_MOUNT_FLAGS,
                None::<&str>,
            )
            .with_context(|| {
                format!(
                    "remounting {} ({}) read-write",
                    mount.path.display(),
                    mount.device
                )
            })?;
        }
        Ok(())
    }

    /// The chroot for running the target's own generators (dracut,
    /// grub2-mkconfig…), with the target's block devices: the disk's whole
    /// tree, or what is mounted under a `--root` directory.
    pub fn chroot_spec(&self) -> Result<ChrootSpec> {
        let devices = match &self.layout.disk {
            Some(disk) => crate::sandbox::block_device_tree(Path::new(disk))?,
            None => crate::sandbox::devices_mounted_under(&self.layout.root),
        };
        let mut spec = chroot_spec(&self.layout.root, &devices)?;
        let identities: Vec<_> = self
            .layout
            .nodes
            .iter()
            .map(|n| (PathBuf::from(&n.device), n.uuid.clone(), n.partuuid.clone()))
            .collect();
        for mount in &mut spec.mounts {
            if let ChrootMount::PrivateDev { entries, .. } = mount {
                *entries =
                    crate::sandbox::with_identity_links(std::mem::take(entries), &identities);
            }
        }
        Ok(spec)
    }

    /// Unmounts now what this run mounted, reporting errors (drop does the
    /// same silently); a target kept by `vmrescue mount` stays mounted.
    pub fn release(mut self) -> Result<()> {
        if self.keep {
            return Ok(());
        }
        self.keep = true;
        match self.state.take() {
            Some(state) => teardown(state),
            None => Ok(()),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Some(state) = self.state.take() {
            if let Err(err) = teardown(state) {
                tracing::error!("cleaning up the target mounts: {err:#} (run `vmrescue umount`)");
            }
        }
    }
}

/// The mounts the target's own tools get in their chroot: a private `/dev`
/// with only the target's block devices (and their udev links), their own
/// proc, ptys and /run, the host's /sys read-only (and efivars on UEFI), the
/// udev database read-only. Nothing else of the host. `CAP_SYS_ADMIN` stays
/// only for a target on device-mapper (LVM), whose queries need it.
pub fn chroot_spec(root: &Path, block_devices: &[String]) -> Result<ChrootSpec> {
    let bind = |path: &str, read_only: bool, create_dir: bool| ChrootMount::Bind {
        source: PathBuf::from(path),
        dest: PathBuf::from(path),
        read_only,
        create_dir,
    };
    let on_dm = block_devices.iter().any(|name| name.starts_with("dm-"));
    let mut mounts = vec![
        ChrootMount::PrivateDev {
            dest: PathBuf::from("/dev"),
            entries: crate::sandbox::private_dev(block_devices, on_dm)?,
        },
        ChrootMount::Devpts {
            dest: PathBuf::from("/dev/pts"),
        },
        ChrootMount::Tmpfs {
            dest: PathBuf::from("/dev/shm"),
            mode: 0o1777,
        },
        ChrootMount::Proc {
            dest: PathBuf::from("/proc"),
        },
        bind("/sys", true, false),
    ];
    let efivars = "/sys/firmware/efi/efivars";
    if Path::new(efivars).is_dir() {
        mounts.push(bind(efivars, true, false));
    }
    mounts.push(ChrootMount::Tmpfs {
        dest: PathBuf::from("/run"),
        mode: 0o755,
    });
    let udev = "/run/udev";
    if Path::new(udev).is_dir() {
        mounts.push(bind(udev, true, true));
    }
    Ok(ChrootSpec {
        root: root.to_path_buf(),
        mounts,
        sandbox: crate::sandbox::Sandbox {
            keep_sys_admin: on_dm,
        },
    })
}

/// Finds, assembles and mounts the target read-only.
pub fn open(spec: &TargetSpec, mount_base: &Path) -> Result<Target> {
    if let TargetSpec::Root(dir) = spec {
        return open_root_dir(dir);
    }
    let mut assembly = assemble(spec, mount_base)?;
    match mount_assembly(&mut assembly) {
        Ok(layout) => {
            let mut state = assembly.state;
            state.state.layout = Some(layout.clone());
            state.save()?;
            Ok(Target {
                layout,
                state: Some(state),
                keep: false,
            })
        }
        Err(err) => {
            if let Err(cleanup) = assembly.teardown() {
                tracing::error!("cleaning up after a failed mount: {cleanup:#}");
            }
            Err(err)
        }
    }
}

/// The target disk made ready to mount: loop device attached, VGs active.
/// Nothing is mounted yet; [`Assembly::teardown`] undoes it.
#[derive(Debug)]
pub struct Assembly {
    pub state: StateFile,
    pub disk_path: String,
    pub image: Option<PathBuf>,
    /// The disk's lsblk tree after LVM activation.
    pub tree: BlockDevice,
    pub volume_groups: Vec<VolumeGroupUse>,
}

impl Assembly {
    /// Every device below the disk, the disk first.
    pub fn nodes(&self) -> Vec<BlockDevice> {
        self.tree.walk().into_iter().cloned().collect()
    }

    pub fn teardown(self) -> Result<()> {
        teardown(self.state)
    }
}

/// Attaches and activates the target disk (a disk, an image or the single candidate).
pub fn assemble(spec: &TargetSpec, mount_base: &Path) -> Result<Assembly> {
    let (disk_path, image, mut state) = match spec {
        TargetSpec::Root(dir) => anyhow::bail!(
            "{} is a mounted directory, not a disk: name the disk with --disk or --image",
            dir.display()
        ),
        TargetSpec::Image(image) => {
            let image = refuse::check_image(image)?;
            let stem = image
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            let key = sanitize_key(&format!("img-{stem}"));
            let mut state = StateFile::create(&key, &mount_base.join(&key))?;
            match attach_loop(&image, &mut state) {
                Ok(device) => (device.display().to_string(), Some(image), state),
                Err(err) => {
                    let _ = teardown(state);
                    return Err(err);
                }
            }
        }
        TargetSpec::Disk(device) => {
            let disk_path = host_safe_disk(&disk::scan()?, device)?;
            let state = state_for_disk(&disk_path, mount_base)?;
            (disk_path, None, state)
        }
        TargetSpec::Auto => {
            let disk_path = disk::scan()?.pick_target()?.path.clone();
            let state = state_for_disk(&disk_path, mount_base)?;
            (disk_path, None, state)
        }
    };
    let activated = list_disk(&disk_path).and_then(|tree| {
        let volume_groups = assemble_lvm(&tree, &mut state)?;
        let tree = if volume_groups.is_empty() {
            tree
        } else {
            list_disk(&disk_path)?
        };
        Ok((tree, volume_groups))
    });
    match activated {
        Ok((tree, volume_groups)) => Ok(Assembly {
            state,
            disk_path,
            image,
            tree,
            volume_groups,
        }),
        Err(err) => {
            if let Err(cleanup) = teardown(state) {
                tracing::error!("cleaning up after a failed assembly: {cleanup:#}");
            }
            Err(err)
        }
    }
}

fn state_for_disk(disk_path: &str, mount_base: &Path) -> Result<StateFile> {
    let name = Path::new(disk_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into());
    let key = sanitize_key(&name);
    StateFile::create(&key, &mount_base.join(&key))
}

fn open_root_dir(dir: &Path) -> Result<Target> {
    refuse::check_root_dir(dir)?;
    let root = RootDir::open(dir)?;
    if !has_os(&root) {
        return Err(Failure::Unsupported(format!(
            "{} has no /etc/os-release or /etc/fstab: not the root of an installed Linux system",
            dir.display()
        ))
        .into());
    }
    let layout = Layout {
        version: LAYOUT_SCHEMA_VERSION,
        key: sanitize_key(&dir.display().to_string()),
        root: dir.to_path_buf(),
        disk: None,
        image: None,
        root_device: None,
        read_only_device: false,
        mounts: Vec::new(),
        skipped: Vec::new(),
        unresolved: Vec::new(),
        volume_groups: Vec::new(),
        nodes: Vec::new(),
    };
    Ok(Target {
        layout,
        state: None,
        keep: false,
    })
}

/// Refuses the host's own disks; returns the whole disk for a partition.
pub fn host_safe_disk(scan: &disk::Scan, device: &Path) -> Result<String> {
    let wanted =
        std::fs::canonicalize(device).with_context(|| format!("resolving {}", device.display()))?;
    let wanted = wanted.display().to_string();
    for disk in &scan.disks {
        let on_disk = disk.path == wanted || disk.partitions.iter().any(|p| p.path == wanted);
        if !on_disk {
            continue;
        }
        if disk.class == DiskClass::Host {
            return Err(Failure::NoTarget(format!(
                "{wanted} is on the rescue host's own disk {} ({}): refusing to touch it",
                disk.path, disk.reason
            ))
            .into());
        }
        return Ok(disk.path.clone());
    }
    Err(Failure::NoTarget(format!("{wanted} is not a block device listed by lsblk")).into())
}

fn attach_loop(image: &Path, state: &mut StateFile) -> Result<PathBuf> {
    use crate::disk::loopdev::{self, AttachError, AttachOptions};
    let options = AttachOptions {
        part_scan: true,
        autoclear: true,
        ..AttachOptions::default()
    };
    // Another program may take the free device between the lookup and the
    // attach (EBUSY): take the next one then.
    let mut attempts = 0;
    let device = loop {
        let device = loopdev::next_free()?;
        match device.attach(image, options) {
            Ok(()) => break device,
            Err(AttachError::Busy(_)) if attempts < 8 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(err) => {
                return Err(anyhow::Error::new(err)).with_context(|| {
                    format!(
                        "attaching {} to {}",
                        image.display(),
                        device.path().display()
                    )
                })
            }
        }
    };
    let path = device.path().to_path_buf();
    // Recorded only once it is ours. Autoclear detaches the device once
    // nothing holds it (our mounts do), so a crash before this line or before
    // anything is mounted leaves no loop device behind.
    state.push(Step::LoopAttached {
        device: path.clone(),
        image: image.to_path_buf(),
    })?;
    device.hold_until_exit();
    failpoint::hit("mount-after-loop");
    crate::disk::partitions::rescan(&path)?;
    Ok(path)
}

fn list_disk(disk_path: &str) -> Result<BlockDevice> {
    let mut devices = disk::lsblk::list(&[disk_path.to_string()])?;
    disk::blkid::enrich(&mut devices, &mut disk::blkid::probe)?;
    devices
        .into_iter()
        .next()
        .with_context(|| format!("lsblk printed nothing for {disk_path}"))
}

fn mount_assembly(assembly: &mut Assembly) -> Result<Layout> {
    let nodes = assembly.nodes();
    let state = &mut assembly.state;
    let mount_root = state.state.mount_root.clone();
    make_dir(&mount_root, state)?;
    let root_device = mount_root_fs(&nodes, &mount_root, state)?;
    let root = RootDir::open(&mount_root)?;
    let fstab_text = root.read_string_optional("/etc/fstab")?.unwrap_or_default();
    let mut plan = fstab_mounts::plan(&fstab_text, &nodes, &assembly.volume_groups);

    let mut mounts = vec![MountedFs {
        device: root_device.dev_path(),
        mount_point: "/".into(),
        fstype: root_device.fstype.clone().unwrap_or_default(),
        path: mount_root.clone(),
    }];
    for entry in &plan.mounts {
        match mount_fstab_entry(&root, entry, state) {
            Ok(mounted) => mounts.push(mounted),
            Err(err) if is_unsupported_fstype(&err) => {
                tracing::warn!("{}: {:#}", entry.mount_point, err);
                plan.skipped.push(FstabNote {
                    line: entry.line,
                    spec: entry.spec.clone(),
                    mount_point: entry.mount_point.clone(),
                    fstype: entry.fstype.clone(),
                    nofail: false,
                    reason: format!("this kernel cannot mount {} filesystems", entry.fstype),
                });
            }
            Err(err) => {
                return Err(err.context(format!(
                    "mounting {} ({}) on {}",
                    entry.device,
                    entry.spec,
                    root.display_path(&entry.mount_point).display()
                )))
            }
        }
    }
    Ok(Layout {
        version: LAYOUT_SCHEMA_VERSION,
        key: state.state.key.clone(),
        root: mount_root,
        disk: Some(assembly.disk_path.clone()),
        image: assembly.image.clone(),
        root_device: Some(root_device.dev_path()),
        read_only_device: assembly.tree.ro,
        mounts,
        skipped: plan.skipped,
        unresolved: plan.unresolved,
        volume_groups: assembly.volume_groups.clone(),
        nodes: nodes::record(&assembly.tree),
    })
}

/// ENODEV from mount(2): the running kernel lacks the filesystem (vfat on
/// some minimal kernels). Such an entry is reported, not fatal.
fn is_unsupported_fstype(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|e| e.raw_os_error() == Some(libc::ENODEV))
}

fn assemble_lvm(tree: &BlockDevice, state: &mut StateFile) -> Result<Vec<VolumeGroupUse>> {
    let pv_paths: Vec<String> = tree
        .walk()
        .into_iter()
        .filter(|n| n.fstype.as_deref() == Some("LVM2_member"))
        .map(BlockDevice::dev_path)
        .collect();
    if pv_paths.is_empty() {
        return Ok(Vec::new());
    }
    let pvs = lvm::target_pvs(&pv_paths)?;
    let host_vgs = lvm::host_vg_pvs()?;
    let mut groups: Vec<VolumeGroupUse> = Vec::new();
    for pv in &pvs {
        if pv.vg_name.is_empty() || groups.iter().any(|g| g.name == pv.vg_name) {
            continue;
        }
        let members: Vec<String> = pvs
            .iter()
            .filter(|p| p.vg_name == pv.vg_name)
            .map(|p| p.pv_name.clone())
            .collect();
        let mut active_name = pv.vg_name.clone();
        let mut temporary_name = None;
        let clash = lvm::clashes_with_host(&host_vgs, &pv.vg_name, &pv_paths);
        if clash {
            let temporary = import_same_image_clone(&members, &pv.vg_name, state)?;
            active_name = temporary.clone();
            temporary_name = Some(temporary);
        }
        if !clash && lvm::all_active(&members, &active_name)? {
            // Activated by the rescue VM's udev when the disk appeared: use
            // it as it is, and leave it active at umount as it was found.
            tracing::info!("volume group {active_name} is already active: not activating it again");
        } else {
            state.push(Step::VgActivated {
                vg: active_name.clone(),
                pvs: members.clone(),
            })?;
            lvm::activate(&members, &active_name)?;
        }
        failpoint::hit("mount-after-vg");
        groups.push(VolumeGroupUse {
            name: pv.vg_name.clone(),
            temporary_name,
            pvs: pvs
                .iter()
                .filter(|p| p.vg_name == pv.vg_name)
                .map(|p| lvm::PvIdentity {
                    device: p.pv_name.clone(),
                    uuid: p.pv_uuid.clone(),
                })
                .collect(),
        });
    }
    Ok(groups)
}

/// Gives a target VG that has the name (and UUIDs) of a host VG new UUIDs
/// and a temporary name; returns that name. The VG's identity is saved in
/// the state file first, so umount, or the cleanup of a killed run, puts it
/// back whatever step the import reached.
fn import_same_image_clone(members: &[String], vg: &str, state: &mut StateFile) -> Result<String> {
    let temporary = format!("{vg}_vmrescue");
    let identity = lvm::read_identity(members, vg)?;
    state.push(Step::VgCloned {
        temporary: temporary.clone(),
        identity,
    })?;
    failpoint::hit("mount-before-import-clone");
    lvm::import_clone(members, &temporary)?;
    Ok(temporary)
}

fn has_os(root: &RootDir) -> bool {
    (root.is_file("/etc/os-release") || root.is_file("/usr/lib/os-release"))
        && root.exists("/etc/fstab")
}

const ROOT_FSTYPES: &[&str] = &["ext4", "ext3", "ext2", "xfs", "btrfs"];

/// Tries the filesystems most likely to be `/` first and keeps the one that
/// holds an installed OS.
fn mount_root_fs(
    nodes: &[BlockDevice],
    mount_root: &Path,
    state: &mut StateFile,
) -> Result<BlockDevice> {
    let mut candidates: Vec<&BlockDevice> = nodes
        .iter()
        .filter(|n| {
            n.fstype
                .as_deref()
                .is_some_and(|f| ROOT_FSTYPES.contains(&f))
        })
        .collect();
    candidates.sort_by_key(|n| {
        let named_root =
            n.name.contains("root") || n.label.as_deref().is_some_and(|l| l.contains("root"));
        (!named_root, std::cmp::Reverse(n.size.unwrap_or(0)))
    });
    let encrypted = nodes
        .iter()
        .any(|n| n.fstype.as_deref() == Some("crypto_LUKS"));
    for candidate in candidates {
        let fstype = candidate.fstype.clone().unwrap_or_default();
        let device = candidate.dev_path();
        state.push(Step::Mounted {
            source: device.clone(),
            path: mount_root.to_path_buf(),
        })?;
        if let Err(err) = mount_read_only(&device, mount_root, &fstype, "") {
            tracing::info!("{device} cannot be mounted ({err:#}); trying the next filesystem");
            state.pop()?;
            continue;
        }
        failpoint::hit("mount-after-root");
        let is_root = RootDir::open(mount_root)
            .map(|r| has_os(&r))
            .unwrap_or(false);
        if is_root {
            return Ok(candidate.clone());
        }
        unmount(mount_root)?;
        state.pop()?;
    }
    if encrypted {
        return Err(Failure::Unsupported(
            "the target is encrypted (LUKS / Azure Disk Encryption) and no unlocked root filesystem was found: \
             unlock it first (e.g. `az vm repair create --unlock-encrypted-vm`) and run vmrescue with --root /investigateroot"
                .into(),
        )
        .into());
    }
    Err(Failure::Unsupported(
        "no root filesystem found on the target (no ext4/XFS/btrfs filesystem or LV holding /etc/os-release and /etc/fstab)".into(),
    )
    .into())
}

fn mount_fstab_entry(
    root: &RootDir,
    entry: &FstabMount,
    state: &mut StateFile,
) -> Result<MountedFs> {
    // Resolve the mount point inside the target: a hostile symlink such as
    // /boot -> /etc must not make us mount over the host's own directories.
    let dir_fd = root
        .open_fd(
            &entry.mount_point,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .with_context(|| format!("mount point {} is missing in the target", entry.mount_point))?;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", dir_fd.as_raw_fd()));
    let real_path =
        std::fs::read_link(&fd_path).with_context(|| format!("resolving {}", fd_path.display()))?;
    if !real_path.starts_with(root.path()) {
        anyhow::bail!(
            "mount point {} resolves outside the target root",
            entry.mount_point
        );
    }
    state.push(Step::Mounted {
        source: entry.device.clone(),
        path: real_path.clone(),
    })?;
    if let Err(err) = mount_read_only(&entry.device, &fd_path, &entry.fstype, &entry.data) {
        state.pop()?;
        return Err(err);
    }
    failpoint::hit("mount-after-fstab-entry");
    Ok(MountedFs {
        device: entry.device.clone(),
        mount_point: entry.mount_point.clone(),
        fstype: entry.fstype.clone(),
        path: real_path,
    })
}

/// The untrusted disk's device nodes and setuid bits stay inert on the
/// rescue host (the chroot gets the host's /dev bound in); a remount must
/// repeat them or the kernel drops them.
const TARGET_MOUNT_FLAGS: nix::mount::MsFlags =
    nix::mount::MsFlags::MS_NOSUID.union(nix::mount::MsFlags::MS_NODEV);

fn mount_read_only(device: &str, at: &Path, fstype: &str, data: &str) -> Result<()> {
    let mut options: Vec<&str> = data.split(',').filter(|o| !o.is_empty()).collect();
    // Same-image rescue: the host may have an XFS with the same UUID mounted.
    if fstype == "xfs" && !options.contains(&"nouuid") {
        options.push("nouuid");
    }
    let data = options.join(",");
    sys_mount::Mount::builder()
        .fstype(fstype)
        .flags(
            sys_mount::MountFlags::RDONLY
                | sys_mount::MountFlags::NOSUID
                | sys_mount::MountFlags::NODEV,
        )
        .data(&data)
        .mount(device, at)
        .map_err(|err| explain_mount_error(err, device, fstype))
        .with_context(|| format!("mounting {device} ({fstype}) read-only on {}", at.display()))?;
    Ok(())
}

fn explain_mount_error(err: std::io::Error, device: &str, fstype: &str) -> anyhow::Error {
    if fstype == "xfs" && err.raw_os_error() == Some(libc::EUCLEAN) {
        return anyhow::anyhow!(
            "{err}: the XFS log on {device} is dirty or corrupt; run `vmrescue fsck` to check it, \
             then `vmrescue fsck --repair` (xfs_repair; -L zeroes the log as a last resort)"
        );
    }
    anyhow::Error::new(err)
}

fn unmount(path: &Path) -> Result<()> {
    sys_mount::unmount(path, sys_mount::UnmountFlags::empty())
        .with_context(|| format!("unmounting {}", path.display()))
}

fn make_dir(path: &Path, state: &mut StateFile) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    state.push(Step::CreatedDir {
        path: path.to_path_buf(),
    })?;
    std::fs::create_dir_all(path)
        .with_context(|| format!("creating mount point {}", path.display()))
}

fn sanitize_key(raw: &str) -> String {
    let key: String = raw
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if key.is_empty() {
        "target".into()
    } else {
        key
    }
}

/// Undoes every recorded step in reverse order, forgetting each once done,
/// so an interrupted teardown can be resumed.
pub fn teardown(mut state: StateFile) -> Result<()> {
    while let Some(step) = state.state.steps.last().cloned() {
        undo_step(&step).with_context(|| {
            format!(
                "undoing {step:?} (state kept in {})",
                state.path().display()
            )
        })?;
        state.pop()?;
    }
    state.remove()
}

fn undo_step(step: &Step) -> Result<()> {
    match step {
        Step::Mounted { path, .. } => {
            if mountinfo::is_mount_point(path)? {
                unmount(path)?;
            }
        }
        Step::CreatedDir { path } => {
            if let Err(err) = std::fs::remove_dir(path) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("leaving {}: {err}", path.display());
                }
            }
        }
        Step::VgActivated { vg, pvs } => {
            if lvm::target_pvs(pvs)?.iter().any(|p| &p.vg_name == vg) {
                lvm::deactivate(pvs, vg)?;
            }
        }
        Step::VgCloned {
            temporary,
            identity,
        } => {
            if lvm::identity_differences(identity)?.is_empty() {
                return Ok(());
            }
            let devices = identity.devices();
            // Active again if udev or an operator activated it meanwhile.
            if lvm::target_pvs(&devices)?
                .iter()
                .any(|p| &p.vg_name == temporary)
            {
                lvm::deactivate(&devices, temporary)?;
            }
            lvm::restore_identity(identity)?;
        }
        Step::LoopAttached { device, image } => detach_loop_if_ours(device, image)?,
    }
    Ok(())
}

fn detach_loop_if_ours(device: &Path, image: &Path) -> Result<()> {
    let name = device
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let backing =
        std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).unwrap_or_default();
    if Path::new(backing.trim()) != image {
        return Ok(()); // already detached (autoclear) or reused by someone else
    }
    crate::disk::loopdev::LoopDevice::open(device)?
        .detach()
        .with_context(|| format!("detaching {}", device.display()))
}

/// Tears down every target this process mounted (signal handler).
pub fn teardown_own() -> Result<()> {
    let me = std::process::id();
    for path in StateFile::list()? {
        let file = StateFile::load(&path)?;
        if file.state.pid == me && !file.state.kept {
            teardown(file)?;
        }
    }
    Ok(())
}

/// A target mounted earlier by `vmrescue mount` (named by key, or the only one).
pub fn from_state(key: Option<&str>) -> Result<Option<Target>> {
    let mut found = Vec::new();
    for path in StateFile::list()? {
        let file = StateFile::load(&path)?;
        if key.is_none_or(|k| k == file.state.key) && file.state.layout.is_some() {
            found.push(file);
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => {
            let file = found.remove(0);
            let layout = file
                .state
                .layout
                .clone()
                .context("state file has no layout")?;
            // Kept: whoever mounted it with `vmrescue mount` unmounts it with `vmrescue umount`.
            Ok(Some(Target {
                layout,
                state: Some(file),
                keep: true,
            }))
        }
        _ => {
            let keys: Vec<String> = found.iter().map(|f| f.state.key.clone()).collect();
            Err(Failure::NoTarget(format!(
                "several targets are mounted ({}): name one with --target",
                keys.join(", ")
            ))
            .into())
        }
    }
}

/// What a command means by "the target", decided in one place: the one
/// named on the command line, else the one `vmrescue mount` left mounted,
/// else the single candidate disk. (The wizard asks instead of taking the
/// single candidate; it uses [`kept`] and its own picker.)
pub enum Chosen {
    /// Mounted by an earlier `vmrescue mount`: used where it is, never
    /// unmounted by this run.
    Kept(Box<Target>),
    /// To be assembled and mounted by this run; never [`TargetSpec::Auto`].
    Named(TargetSpec),
}

/// Applies the target rule to `spec` (see [`Chosen`]).
pub fn choose(spec: &TargetSpec) -> Result<Chosen> {
    if *spec != TargetSpec::Auto {
        return Ok(Chosen::Named(spec.clone()));
    }
    if let Some(target) = kept()? {
        return Ok(Chosen::Kept(Box::new(target)));
    }
    let scan = disk::scan()?;
    let whole = scan.pick_target()?.path.clone();
    Ok(Chosen::Named(TargetSpec::Disk(PathBuf::from(whole))))
}

/// The target `vmrescue mount` left mounted, when there is one (an error
/// when there are several: the caller must name one).
pub fn kept() -> Result<Option<Target>> {
    from_state(None)
}

/// Opens the target [`choose`] picks for `spec`.
pub fn open_chosen(spec: &TargetSpec, mount_base: &Path) -> Result<Target> {
    match choose(spec)? {
        Chosen::Kept(target) => Ok(*target),
        Chosen::Named(spec) => open(&spec, mount_base),
    }
}

/// The key of the target vmrescue mounted from `source` (a disk or an image
/// file, as given to `mount`); exit 3 when none was.
pub fn key_for_source(source: &Path) -> Result<String> {
    let wanted = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    for path in StateFile::list()? {
        let Ok(file) = StateFile::load(&path) else {
            continue;
        };
        let Some(layout) = &file.state.layout else {
            continue;
        };
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let from_disk = layout
            .disk
            .as_deref()
            .is_some_and(|d| canonical(Path::new(d)) == wanted);
        let from_image = layout
            .image
            .as_deref()
            .is_some_and(|i| canonical(i) == wanted);
        if from_disk || from_image {
            return Ok(file.state.key.clone());
        }
    }
    Err(Failure::NoTarget(format!(
        "vmrescue has nothing mounted from {}",
        source.display()
    ))
    .into())
}

/// `vmrescue umount`: tears down the named target, or every target vmrescue
/// left mounted. Returns the keys cleaned up.
pub fn umount(key: Option<&str>) -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    for path in StateFile::list()? {
        if key.is_some_and(|k| path.file_stem().is_some_and(|stem| stem != k)) {
            continue;
        }
        let file = match StateFile::load(&path) {
            Ok(file) => file,
            // Not one of ours (another tool's file in the directory): leave it.
            Err(err) if key.is_none() => {
                tracing::warn!("skipping {}: {err:#}", path.display());
                continue;
            }
            Err(err) => return Err(err),
        };
        if key.is_some_and(|k| k != file.state.key) {
            continue;
        }
        let name = file.state.key.clone();
        teardown(file)?;
        cleaned.push(name);
    }
    if let Some(key) = key {
        if cleaned.is_empty() {
            tracing::info!("nothing mounted by vmrescue for {key}");
        }
    }
    Ok(cleaned)
}
