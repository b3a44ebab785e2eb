//! What an initramfs holds, and an extra archive that adds modules to it.
//!
//! An initramfs is one or more cpio archives in the `newc` format, each
//! either uncompressed (Debian and dracut put the CPU microcode in a
//! first, uncompressed one) or compressed. Compressed parts are expanded
//! with the host's own decompressor (gzip, zstd, xz…) through
//! [`crate::cmd`]; the archives are read here. The kernel unpacks
//! concatenated archives in order, so appending a second `newc` archive
//! adds files without touching the target's initramfs.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cmd::Cmd;

const NEWC_MAGIC: &[u8] = b"070701";
const CRC_MAGIC: &[u8] = b"070702";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// A compression the kernel can unpack an initramfs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
    Xz,
    Lzma,
    Bzip2,
    Lz4,
    Lzo,
}

impl Compression {
    fn detect(data: &[u8]) -> Option<Self> {
        let starts = |magic: &[u8]| data.starts_with(magic);
        if starts(&[0x1f, 0x8b]) || starts(&[0x1f, 0x9e]) {
            Some(Compression::Gzip)
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if starts(&[0x5d, 0x00, 0x00]) {
            Some(Compression::Lzma)
        } else if starts(b"BZh") {
            Some(Compression::Bzip2)
        } else if starts(&[0x02, 0x21, 0x4c, 0x18]) || starts(&[0x04, 0x22, 0x4d, 0x18]) {
            Some(Compression::Lz4)
        } else if starts(&[0x89, b'L', b'Z', b'O', 0x00]) {
            Some(Compression::Lzo)
        } else {
            None
        }
    }

    /// The host program (and arguments) that writes the expanded stream to stdout.
    fn decompressor(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Compression::Gzip => ("gzip", &["-dc"]),
            Compression::Zstd => ("zstd", &["-dcq"]),
            Compression::Xz => ("xz", &["-dc"]),
            Compression::Lzma => ("xz", &["--format=lzma", "-dc"]),
            Compression::Bzip2 => ("bzip2", &["-dc"]),
            Compression::Lz4 => ("lz4", &["-dc"]),
            Compression::Lzo => ("lzop", &["-dc"]),
        }
    }
}

/// One member of a `newc` archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    pub name: String,
    /// Type and permission bits (`0o100644` for a file, `0o40755` a directory).
    pub mode: u32,
    pub data: Vec<u8>,
}

fn hex_field(header: &[u8], index: usize) -> Result<u32> {
    let start = 6 + index * 8;
    let text =
        std::str::from_utf8(&header[start..start + 8]).context("cpio header field is not ASCII")?;
    u32::from_str_radix(text, 16).with_context(|| format!("cpio header field {text:?} is not hex"))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Reads uncompressed `newc` archives starting at `data[0]`, calling
/// `visit(name, mode, contents)` for each member; returns how many bytes
/// they used.
fn read_archives(data: &[u8], visit: &mut dyn FnMut(&str, u32, &[u8])) -> Result<usize> {
    let mut pos = 0;
    loop {
        // Padding between archives is zeros.
        while pos < data.len() && data[pos] == 0 {
            pos += 1;
        }
        if pos + HEADER_LEN > data.len() {
            return Ok(data.len());
        }
        let header = &data[pos..pos + HEADER_LEN];
        if !header.starts_with(NEWC_MAGIC) && !header.starts_with(CRC_MAGIC) {
            return Ok(pos);
        }
        let mode = hex_field(header, 1)?;
        let file_size = hex_field(header, 6)? as usize;
        let name_size = hex_field(header, 11)? as usize;
        let name_start = pos + HEADER_LEN;
        let name_end = name_start + name_size;
        if name_size == 0 || name_end > data.len() {
            bail!("cpio member at byte {pos} has a name running past the end");
        }
        let name = String::from_utf8_lossy(&data[name_start..name_end - 1]).into_owned();
        let data_start = align4(name_end);
        let data_end = data_start + file_size;
        if data_end > data.len() {
            bail!("cpio member {name:?} at byte {pos} runs past the end of the archive");
        }
        pos = align4(data_end);
        if name != TRAILER {
            visit(&name, mode, &data[data_start..data_end]);
        }
    }
}

/// Calls `visit(name, mode, contents)` for every member of an initramfs
/// image, in all its archives (uncompressed and compressed parts alike).
pub fn for_each_member(image: &[u8], visit: &mut dyn FnMut(&str, u32, &[u8])) -> Result<()> {
    let pos = read_archives(image, visit)?;
    if pos < image.len() {
        let rest = &image[pos..];
        let Some(compression) = Compression::detect(rest) else {
            bail!(
                "byte {pos} of the initramfs is neither a cpio archive nor a known compression (starts {:02x?})",
                &rest[..rest.len().min(6)]
            );
        };
        // The decompressor reads the rest of the file (concatenated streams
        // included), as the kernel would.
        let expanded = decompress(compression, rest)
            .with_context(|| format!("expanding the compressed part at byte {pos}"))?;
        let used = read_archives(&expanded, visit)?;
        if used < expanded.len() && expanded[used..].iter().any(|&b| b != 0) {
            tracing::debug!(
                "the expanded part at byte {pos} has {} unread bytes after its archives",
                expanded.len() - used
            );
        }
    }
    Ok(())
}

/// The names of every member of an initramfs image (all its archives).
pub fn list(image: &[u8]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for_each_member(image, &mut |name, _, _| names.push(name.to_string()))?;
    Ok(names)
}

fn decompress(compression: Compression, data: &[u8]) -> Result<Vec<u8>> {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let (program, args) = compression.decompressor();
    let output = Cmd::new(program)
        .args(args)
        .stdin_bytes(&data[..end])
        .run_unchecked()?;
    // gzip exits 2 for a mere warning (trailing garbage); what matters is
    // whether the archive inside can be read.
    if output.stdout.is_empty() || !output.stdout.starts_with(&NEWC_MAGIC[..4]) {
        let cmd = Cmd::new(program).args(args);
        return Err(cmd.failure(&output).into());
    }
    Ok(output.stdout)
}

/// Kernel module names an initramfs carries (`virtio_blk`, `nvme`…).
pub fn module_names(members: &[String]) -> BTreeSet<String> {
    members.iter().filter_map(|m| module_name(m)).collect()
}

/// `…/virtio_blk.ko.xz` → `virtio_blk` (dashes as underscores, like modprobe).
pub fn module_name(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))?;
    Some(stem.replace('-', "_"))
}

/// Where the modules live inside this initramfs (`usr/lib/modules` on
/// merged-/usr systems, else `lib/modules`).
pub fn modules_prefix(members: &[String]) -> &'static str {
    if members.iter().any(|m| m.starts_with("usr/lib/modules/")) {
        "usr/lib/modules"
    } else {
        "lib/modules"
    }
}

/// The storage controllers QEMU can give the VM, best first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Controller {
    VirtioBlk,
    VirtioScsi,
    Nvme,
    Ahci,
    Ide,
}

pub const CONTROLLERS: [Controller; 5] = [
    Controller::VirtioBlk,
    Controller::VirtioScsi,
    Controller::Nvme,
    Controller::Ahci,
    Controller::Ide,
];

/// Storage drivers QEMU cannot emulate (named when they are all there is).
pub const FOREIGN_STORAGE_DRIVERS: &[&str] = &[
    "hv_storvsc",
    "xen_blkfront",
    "vmw_pvscsi",
    "mptspi",
    "mptsas",
    "megaraid_sas",
    "mpt3sas",
];

impl Controller {
    pub fn id(self) -> &'static str {
        match self {
            Controller::VirtioBlk => "virtio-blk",
            Controller::VirtioScsi => "virtio-scsi",
            Controller::Nvme => "nvme",
            Controller::Ahci => "ahci",
            Controller::Ide => "ide",
        }
    }

    /// The guest drivers this controller needs.
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Controller::VirtioBlk => &["virtio_blk", "virtio_pci"],
            Controller::VirtioScsi => &["virtio_scsi", "virtio_pci", "sd_mod"],
            Controller::Nvme => &["nvme"],
            Controller::Ahci => &["ahci", "sd_mod"],
            Controller::Ide => &["ata_piix", "sd_mod"],
        }
    }

    /// Its main driver (what makes an initramfs "have" it).
    pub fn driver(self) -> &'static str {
        self.modules()[0]
    }
}

/// Which controllers an initramfs can boot from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DriverSupport {
    /// Controllers whose drivers are all in the initramfs or built in, best first.
    pub usable: Vec<Controller>,
    /// Storage drivers seen (in the initramfs or built in).
    pub storage_drivers: Vec<String>,
}

/// Storage support from the module names in the initramfs plus the
/// kernel's built-in modules (`modules.builtin`).
pub fn driver_support(
    in_initramfs: &BTreeSet<String>,
    builtin: &BTreeSet<String>,
) -> DriverSupport {
    let has = |m: &str| in_initramfs.contains(m) || builtin.contains(m);
    let usable = CONTROLLERS
        .iter()
        .copied()
        .filter(|c| c.modules().iter().all(|m| has(m)))
        .collect();
    let mut storage_drivers: Vec<String> = CONTROLLERS
        .iter()
        .map(|c| c.driver())
        .chain(FOREIGN_STORAGE_DRIVERS.iter().copied())
        .filter(|m| has(m))
        .map(str::to_string)
        .collect();
    storage_drivers.dedup();
    DriverSupport {
        usable,
        storage_drivers,
    }
}

/// Module names in a `modules.builtin` file.
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(module_name).collect()
}

/// `modules.dep`: each module's path (relative to `/lib/modules/<version>`)
/// and the paths of everything it needs.
#[derive(Debug, Clone, Default)]
pub struct ModulesDep {
    by_name: BTreeMap<String, (String, Vec<String>)>,
}

impl ModulesDep {
    pub fn parse(text: &str) -> Self {
        let mut by_name = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            let Some(name) = module_name(path) else {
                continue;
            };
            let deps = deps.split_whitespace().map(str::to_string).collect();
            by_name.insert(name, (path.to_string(), deps));
        }
        ModulesDep { by_name }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The module files for `names` and everything they depend on, each
    /// once, dependencies first. Names that are not modules (built in) are skipped.
    pub fn closure<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let Some((path, deps)) = self.by_name.get(&name.replace('-', "_")) else {
                continue;
            };
            // modules.dep lists the full dependency chain, deepest last.
            for dep in deps.iter().rev().chain(std::iter::once(path)) {
                if !out.contains(dep) {
                    out.push(dep.clone());
                }
            }
        }
        out
    }
}

/// A `newc` archive of the given members (parents must come first), with
/// its trailer, padded to a multiple of 512 bytes.
pub fn write_newc(entries: &[CpioEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, mode: u32, data: &[u8], ino: u32| {
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            0,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(align4(out.len()), 0);
        out.extend_from_slice(data);
        out.resize(align4(out.len()), 0);
    };
    for (index, entry) in entries.iter().enumerate() {
        push(&entry.name, entry.mode, &entry.data, index as u32 + 1);
    }
    push(TRAILER, 0, &[], 0);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Directory members for every parent of `paths` (in order, once each).
pub fn parent_dirs<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<CpioEntry> {
    let mut seen = BTreeSet::new();
    let mut dirs = Vec::new();
    for path in paths {
        let parts: Vec<&str> = path.split('/').collect();
        for end in 1..parts.len() {
            let dir = parts[..end].join("/");
            if seen.insert(dir.clone()) {
                dirs.push(CpioEntry {
                    name: dir,
                    mode: 0o040755,
                    data: Vec::new(),
                });
            }
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, data: &[u8]) -> CpioEntry {
        CpioEntry {
            name: name.into(),
            mode: 0o100644,
            data: data.to_vec(),
        }
    }

    #[test]
    fn written_archives_read_back() {
        let mut entries = parent_dirs(["usr/lib/modules/6.1.0/kernel/virtio_blk.ko"]);
        entries.push(file(
            "usr/lib/modules/6.1.0/kernel/virtio_blk.ko",
            b"\x7fELF...",
        ));
        entries.push(file("init", b"#!/bin/sh\n"));
        let archive = write_newc(&entries);
        assert_eq!(archive.len() % 512, 0);
        let names = list(&archive).unwrap();
        assert_eq!(
            names,
            [
                "usr",
                "usr/lib",
                "usr/lib/modules",
                "usr/lib/modules/6.1.0",
                "usr/lib/modules/6.1.0/kernel",
                "usr/lib/modules/6.1.0/kernel/virtio_blk.ko",
                "init"
            ]
        );
    }

    #[test]
    fn the_host_cpio_reads_what_we_write() {
        let archive = write_newc(&[
            file("etc", b""),
            CpioEntry {
                name: "dir".into(),
                mode: 0o040755,
                data: vec![],
            },
            file("dir/a.txt", b"hello"),
        ]);
        let out = Cmd::new("cpio")
            .args(["-t", "--quiet"])
            .stdin_bytes(archive)
            .run();
        match out {
            Ok(out) => assert_eq!(out.stdout_string(), "etc\ndir\ndir/a.txt\n"),
            Err(err) => eprintln!("SKIP: no usable cpio on this host: {err:#}"),
        }
    }

    #[test]
    fn an_early_uncompressed_archive_followed_by_a_compressed_one() {
        let early = write_newc(&[file("kernel/x86/microcode/GenuineIntel.bin", b"ucode")]);
        let main = write_newc(&[
            file("init", b"#!/bin/sh"),
            file(
                "usr/lib/modules/6.1.0-18-amd64/kernel/drivers/block/virtio_blk.ko.xz",
                b"x",
            ),
        ]);
        for (program, args) in [
            ("gzip", ["-c", "-n"]),
            ("zstd", ["-c", "-q"]),
            ("xz", ["-c", "-z"]),
        ] {
            let compressed = match Cmd::new(program).args(args).stdin_bytes(main.clone()).run() {
                Ok(out) => out.stdout,
                Err(err) => {
                    eprintln!("SKIP {program}: {err:#}");
                    continue;
                }
            };
            let mut image = early.clone();
            image.extend_from_slice(&compressed);
            let names = list(&image).unwrap();
            assert_eq!(names.len(), 3, "{program}: {names:?}");
            assert!(module_names(&names).contains("virtio_blk"), "{program}");
            assert_eq!(modules_prefix(&names), "usr/lib/modules");
        }
    }

    #[test]
    fn garbage_is_an_error_naming_the_offset() {
        let mut image = write_newc(&[file("a", b"1")]);
        image.extend_from_slice(&[b'N'; 200]);
        let err = list(&image).unwrap_err();
        assert!(format!("{err:#}").contains("byte 512"), "{err:#}");
    }

    #[test]
    fn module_names_from_paths() {
        assert_eq!(
            module_name("lib/modules/5.14/kernel/drivers/scsi/hv_storvsc.ko.xz").as_deref(),
            Some("hv_storvsc")
        );
        assert_eq!(
            module_name("kernel/drivers/ata/ata-piix.ko").as_deref(),
            Some("ata_piix")
        );
        assert_eq!(module_name("usr/lib/modules/5.14/modules.dep"), None);
    }

    #[test]
    fn controllers_follow_the_drivers_present() {
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let support = driver_support(
            &set(&["virtio_blk", "virtio_scsi", "sd_mod"]),
            &set(&["virtio_pci"]),
        );
        assert_eq!(
            support.usable,
            [Controller::VirtioBlk, Controller::VirtioScsi]
        );
        let hyperv = driver_support(&set(&["hv_storvsc", "hv_vmbus", "sd_mod"]), &set(&[]));
        assert!(hyperv.usable.is_empty());
        assert_eq!(hyperv.storage_drivers, ["hv_storvsc"]);
        let azure_gen1 = driver_support(&set(&["hv_storvsc", "ata_piix", "sd_mod"]), &set(&[]));
        assert_eq!(azure_gen1.usable, [Controller::Ide]);
    }

    #[test]
    fn modules_dep_closure_puts_dependencies_first() {
        let dep = ModulesDep::parse(
            "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\n\
             kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz\n\
             kernel/drivers/scsi/scsi_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko.xz\n\
             kernel/drivers/virtio/virtio_ring.ko.xz:\n",
        );
        assert_eq!(
            dep.closure(["virtio_blk", "virtio_pci", "sd_mod"]),
            [
                "kernel/drivers/virtio/virtio_ring.ko.xz",
                "kernel/drivers/block/virtio_blk.ko.xz",
                "kernel/drivers/scsi/scsi_mod.ko.xz",
                "kernel/drivers/scsi/scsi_common.ko.xz",
                "kernel/drivers/scsi/sd_mod.ko.xz",
            ]
        );
        assert!(!dep.contains("virtio_pci"));
    }

    #[test]
    fn builtin_list() {
        let builtin =
            parse_builtin("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n");
        assert!(builtin.contains("virtio_pci") && builtin.contains("ext4"));
    }
}
