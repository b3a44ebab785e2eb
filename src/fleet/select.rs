//! Which VMs to repair: parse `--vms FILE` lines, read what `az vm show -d` /
//! `az vm list -d` say about each VM, and skip the ones that cannot be
//! repaired this way (deallocated, not Linux).

use anyhow::{bail, Result};
use serde::Serialize;

use super::VmRef;

/// Parses one line of a `--vms` file: a VM resource ID
/// (`/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME`)
/// or `RG/NAME`. Blank lines and `#` comments give `None`.
pub fn parse_vm_line(line: &str) -> Result<Option<VmRef>> {
    let line = line.split('#').next().unwrap_or_default().trim();
    if line.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = line.trim_matches('/').split('/').collect();
    if parts.len() == 2 && parts.iter().all(|p| valid_name(p)) {
        return Ok(Some(VmRef::new(parts[0], parts[1])));
    }
    // Resource IDs are case-insensitive in their fixed segments.
    let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
    if parts.len() == 8
        && lower[0] == "subscriptions"
        && lower[2] == "resourcegroups"
        && lower[4] == "providers"
        && lower[5] == "microsoft.compute"
        && lower[6] == "virtualmachines"
        && [parts[1], parts[3], parts[7]].iter().all(|p| valid_name(p))
    {
        return Ok(Some(VmRef {
            subscription: Some(parts[1].to_string()),
            resource_group: parts[3].to_string(),
            name: parts[7].to_string(),
        }));
    }
    bail!("expected a VM resource ID or RG/NAME, got {line:?}")
}

fn valid_name(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

/// Parses a whole `--vms` file; duplicates are dropped (first one kept).
pub fn parse_vm_list(text: &str) -> Result<Vec<VmRef>> {
    let mut vms: Vec<VmRef> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        match parse_vm_line(line) {
            Ok(Some(vm)) if !vms.iter().any(|v| v.key() == vm.key()) => vms.push(vm),
            Ok(_) => {}
            Err(err) => bail!("line {}: {err}", number + 1),
        }
    }
    Ok(vms)
}

/// What `az vm show --show-details` / `az vm list --show-details` report
/// about a VM: `powerState` (e.g. `VM running`, `VM deallocated`) comes from
/// `--show-details`; `storageProfile.osDisk.osType` is `Linux` or `Windows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VmFacts {
    pub vm: VmRef,
    pub id: Option<String>,
    pub power_state: Option<String>,
    pub os_type: Option<String>,
    pub os_disk: Option<String>,
}

impl VmFacts {
    /// Reads the fields vmrescue needs from one VM object of `az` JSON.
    pub fn from_json(value: &serde_json::Value, fallback: Option<&VmRef>) -> Result<Self> {
        let text = |ptr: &str| {
            value
                .pointer(ptr)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let vm = match (text("/resourceGroup"), text("/name")) {
            (Some(rg), Some(name)) => VmRef {
                subscription: fallback.and_then(|f| f.subscription.clone()),
                resource_group: rg,
                name,
            },
            _ => match fallback {
                Some(vm) => vm.clone(),
                None => bail!("a VM object without resourceGroup and name"),
            },
        };
        let linux_profile = value
            .pointer("/osProfile/linuxConfiguration")
            .is_some_and(|v| !v.is_null());
        Ok(VmFacts {
            vm,
            id: text("/id"),
            power_state: text("/powerState"),
            os_type: text("/storageProfile/osDisk/osType")
                .or_else(|| linux_profile.then(|| "Linux".to_string())),
            os_disk: text("/storageProfile/osDisk/name"),
        })
    }

    /// Why this VM is skipped, if it is.
    pub fn skip_reason(&self) -> Option<String> {
        let power = self
            .power_state
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if power.contains("deallocat") {
            return Some(format!(
                "{}: a deallocated VM is not repaired (start it, or repair its disk by hand)",
                self.power_state.as_deref().unwrap_or_default()
            ));
        }
        match self.os_type.as_deref() {
            Some(os) if os.eq_ignore_ascii_case("linux") => None,
            Some(os) => Some(format!("{os} VM: vmrescue repairs Linux VMs only")),
            None => Some("OS type unknown (no storageProfile.osDisk.osType)".into()),
        }
    }
}

/// Whether a VM's tags hold `key=value` (`--tag`).
pub fn has_tag(value: &serde_json::Value, key: &str, wanted: &str) -> bool {
    value
        .get("tags")
        .and_then(|t| t.as_object())
        .and_then(|t| t.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .and_then(|(_, v)| v.as_str())
        .is_some_and(|v| v == wanted)
}

/// The VMs to repair and the ones skipped, with why.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Selection {
    pub selected: Vec<VmFacts>,
    pub skipped: Vec<(VmRef, String)>,
}

impl Selection {
    pub fn from_facts(facts: Vec<VmFacts>) -> Self {
        let mut selection = Selection::default();
        for f in facts {
            match f.skip_reason() {
                Some(why) => selection.skipped.push((f.vm.clone(), why)),
                None => selection.selected.push(f),
            }
        }
        selection
    }
}

/// Where the VMs come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--vms FILE`, parsed.
    List(Vec<VmRef>),
    /// `--resource-group RG [--tag K=V]`.
    ResourceGroup {
        name: String,
        tag: Option<(String, String)>,
    },
}

/// Asks `az` about the VMs (`vm list -d` for a resource group, `vm show -d`
/// for each listed VM, `parallel` at a time) and splits them into selected
/// and skipped. A listed VM that does not exist is skipped, with the error.
pub fn resolve(
    az: &super::az::Az,
    source: &Source,
    retry: &super::retry::RetryPolicy,
    parallel: usize,
) -> Result<Selection> {
    use super::az::{invoke, with_retry};
    match source {
        Source::ResourceGroup { name, tag } => {
            let out = with_retry(retry, || invoke(&az.list(name)))
                .map_err(|e| anyhow::anyhow!("listing the VMs of {name}: {e}"))?;
            let list: Vec<serde_json::Value> = serde_json::from_str(&out)
                .map_err(|e| anyhow::anyhow!("az vm list answered no JSON array: {e}"))?;
            let facts = list
                .iter()
                .filter(|v| tag.as_ref().is_none_or(|(k, val)| has_tag(v, k, val)))
                .map(|v| VmFacts::from_json(v, None))
                .collect::<Result<Vec<_>>>()?;
            Ok(Selection::from_facts(facts))
        }
        Source::List(vms) => {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let found = std::sync::Mutex::new(vec![None; vms.len()]);
            std::thread::scope(|scope| {
                for _ in 0..parallel.clamp(1, vms.len().max(1)) {
                    scope.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(vm) = vms.get(i) else { break };
                        let answer = with_retry(retry, || invoke(&az.show(vm))).and_then(|out| {
                            serde_json::from_str::<serde_json::Value>(&out)
                                .map_err(|e| super::az::AzError::Permanent(e.to_string()))
                        });
                        if let Ok(mut found) = found.lock() {
                            found[i] = Some(answer);
                        }
                    });
                }
            });
            let mut selection = Selection::default();
            let answers = found.into_inner().unwrap_or_default();
            for (vm, answer) in vms.iter().zip(answers) {
                match answer {
                    Some(Ok(value)) => {
                        let facts = VmFacts::from_json(&value, Some(vm))?;
                        match facts.skip_reason() {
                            Some(why) => selection.skipped.push((facts.vm, why)),
                            None => selection.selected.push(facts),
                        }
                    }
                    Some(Err(e)) => selection
                        .skipped
                        .push((vm.clone(), format!("az vm show: {e}"))),
                    None => selection.skipped.push((vm.clone(), "not looked up".into())),
                }
            }
            Ok(selection)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_lines_are_ids_or_rg_slash_name() {
        let vms = parse_vm_list(
            "# broken after the 6.8 kernel\n\
             prod-rg/web-01\n\
             /subscriptions/0000-1111/resourceGroups/Prod-RG/providers/Microsoft.Compute/virtualMachines/db-02\n\
             \n\
             prod-rg/web-01  # again\n",
        )
        .unwrap();
        assert_eq!(vms.len(), 2);
        assert_eq!(vms[0], VmRef::new("prod-rg", "web-01"));
        assert_eq!(vms[1].subscription.as_deref(), Some("0000-1111"));
        assert_eq!(vms[1].key(), "Prod-RG/db-02");
        let err = parse_vm_list("ok/vm\nnot a vm line\n").unwrap_err();
        assert!(format!("{err}").contains("line 2"), "{err}");
    }

    #[test]
    fn deallocated_and_windows_vms_are_skipped() {
        let list: serde_json::Value = serde_json::json!([
            {"name": "a", "resourceGroup": "rg", "powerState": "VM running",
             "storageProfile": {"osDisk": {"osType": "Linux", "name": "a_OsDisk"}}},
            {"name": "b", "resourceGroup": "rg", "powerState": "VM deallocated",
             "storageProfile": {"osDisk": {"osType": "Linux"}}},
            {"name": "c", "resourceGroup": "rg", "powerState": "VM running",
             "storageProfile": {"osDisk": {"osType": "Windows"}}},
            {"name": "d", "resourceGroup": "rg", "powerState": "VM stopped",
             "osProfile": {"linuxConfiguration": {"disablePasswordAuthentication": true}},
             "storageProfile": {"osDisk": {}}}
        ]);
        let facts = list
            .as_array()
            .unwrap()
            .iter()
            .map(|v| VmFacts::from_json(v, None).unwrap())
            .collect();
        let selection = Selection::from_facts(facts);
        let names: Vec<_> = selection
            .selected
            .iter()
            .map(|f| f.vm.name.as_str())
            .collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(selection.skipped.len(), 2);
        assert!(selection.skipped[0].1.contains("deallocated"));
        assert!(selection.skipped[1].1.contains("Windows"));
    }
}
