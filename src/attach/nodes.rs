//! What blkid says about every block device of the target disk, recorded in
//! the [`Layout`](super::Layout) so recipes and checks can hold each fstab
//! line against the disk without probing it again.

use serde::{Deserialize, Serialize};

use crate::disk::BlockDevice;

/// One node of the target disk (the disk, its partitions, LVs) with the
/// identifiers an fstab source can name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskNode {
    /// `/dev/loop0p2`, `/dev/mapper/rootvg-rootlv`.
    pub device: String,
    /// lsblk's name (the device-mapper name for an LV).
    pub name: String,
    /// `disk`, `part`, `lvm`, `loop`, `crypt`…
    pub kind: String,
    /// The filesystem (or other content) type blkid found: `ext4`, `xfs`,
    /// `vfat`, `swap`, `LVM2_member`.
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub partuuid: Option<String>,
    pub partlabel: Option<String>,
    /// GPT type GUID (lower case) or MBR type (`0xef`).
    pub parttype: Option<String>,
}

impl DiskNode {
    pub fn from_block_device(dev: &BlockDevice) -> Self {
        DiskNode {
            device: dev.dev_path(),
            name: dev.name.clone(),
            kind: dev.kind.clone(),
            fstype: dev.fstype.clone(),
            uuid: dev.uuid.clone(),
            label: dev.label.clone(),
            partuuid: dev.partuuid.clone(),
            partlabel: dev.partlabel.clone(),
            parttype: dev.parttype.as_deref().map(str::to_ascii_lowercase),
        }
    }

    /// Back into lsblk's shape, for the resolver the mount uses.
    pub fn to_block_device(&self) -> BlockDevice {
        BlockDevice {
            name: self.name.clone(),
            path: Some(self.device.clone()),
            kind: self.kind.clone(),
            fstype: self.fstype.clone(),
            uuid: self.uuid.clone(),
            label: self.label.clone(),
            partuuid: self.partuuid.clone(),
            partlabel: self.partlabel.clone(),
            parttype: self.parttype.clone(),
            ..BlockDevice::default()
        }
    }

    /// A GPT "BIOS boot partition", where GRUB embeds core.img on GPT.
    pub fn is_bios_boot(&self) -> bool {
        self.kind == "part"
            && self.parttype.as_deref() == Some("21686148-6449-6e6f-744e-656564454649")
    }

    /// An EFI system partition by its type (GPT GUID or MBR `ef`).
    pub fn is_esp(&self) -> bool {
        matches!(
            self.parttype.as_deref(),
            Some("c12a7328-f81f-11d2-ba4b-00a0c93ec93b" | "0xef" | "ef")
        )
    }
}

/// Every node of the disk's tree, the disk first.
pub fn record(tree: &BlockDevice) -> Vec<DiskNode> {
    tree.walk()
        .into_iter()
        .map(DiskNode::from_block_device)
        .collect()
}
