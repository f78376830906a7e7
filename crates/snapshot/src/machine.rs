//! The machine a snapshot belongs to, and how two machines differ.

use serde::{Deserialize, Serialize};

/// What of a machine a snapshot depends on: restoring into a machine that differs in any
/// of it is refused, naming the difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSummary {
    /// vCPUs.
    pub vcpus: u32,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// The machine file's devices, in its order.
    pub devices: Vec<DeviceSummary>,
}

/// One device of the machine file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSummary {
    /// Its name.
    pub name: String,
    /// Its model: `regfile`, `counter`, or `described` for a described device.
    pub model: String,
    /// For a described device, a CRC-32 of its compiled register map (registers, fields,
    /// FIFOs, memories, interrupts and effects), so an edited description is noticed.
    pub layout: Option<u32>,
    /// Its regions, as `mmio 0xd0000000+0x1000` or `pio 0x300+0x40`.
    pub regions: Vec<String>,
    /// Its interrupt pins (GSIs), line 0 first.
    pub irqs: Vec<u32>,
}

impl MachineSummary {
    /// How `machine` (the one to restore into) differs from this one (the snapshot's), one
    /// sentence per difference; empty when they match.
    pub fn differences(&self, machine: &MachineSummary) -> Vec<String> {
        let mut out = Vec::new();
        if self.vcpus != machine.vcpus {
            out.push(format!(
                "the snapshot has {} vCPU(s), the machine file {}",
                self.vcpus, machine.vcpus
            ));
        }
        if self.memory_bytes != machine.memory_bytes {
            out.push(format!(
                "the snapshot has {} MiB of RAM, the machine file {} MiB",
                self.memory_bytes >> 20,
                machine.memory_bytes >> 20
            ));
        }
        for d in &self.devices {
            match machine.devices.iter().find(|m| m.name == d.name) {
                None => out.push(format!(
                    "device `{}` is in the snapshot but not in the machine file",
                    d.name
                )),
                Some(m) => out.extend(d.differences(m)),
            }
        }
        for m in &machine.devices {
            if !self.devices.iter().any(|d| d.name == m.name) {
                out.push(format!(
                    "device `{}` is in the machine file but not in the snapshot",
                    m.name
                ));
            }
        }
        let order = |devs: &[DeviceSummary]| devs.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        if out.is_empty() && order(&self.devices) != order(&machine.devices) {
            out.push("the devices are listed in another order".to_owned());
        }
        out
    }
}

impl DeviceSummary {
    fn differences(&self, m: &DeviceSummary) -> Vec<String> {
        let mut out = Vec::new();
        let name = &self.name;
        if self.model != m.model {
            out.push(format!(
                "device `{name}` is a {} in the snapshot, a {} in the machine file",
                self.model, m.model
            ));
        } else if self.layout != m.layout {
            out.push(format!(
                "device `{name}`: its description changed since the snapshot (another register map)"
            ));
        }
        if self.regions != m.regions {
            out.push(format!(
                "device `{name}` has regions [{}] in the snapshot, [{}] in the machine file",
                self.regions.join(", "),
                m.regions.join(", ")
            ));
        }
        if self.irqs != m.irqs {
            out.push(format!(
                "device `{name}` has interrupt pins {:?} in the snapshot, {:?} in the machine file",
                self.irqs, m.irqs
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, model: &str, base: u64) -> DeviceSummary {
        DeviceSummary {
            name: name.to_owned(),
            model: model.to_owned(),
            layout: (model == "described").then_some(7),
            regions: vec![format!("mmio {base:#x}+0x1000")],
            irqs: vec![5],
        }
    }

    #[test]
    fn each_difference_is_named() {
        let a = MachineSummary {
            vcpus: 1,
            memory_bytes: 64 << 20,
            devices: vec![dev("a", "regfile", 0xd000_0000), dev("b", "described", 0xd000_1000)],
        };
        assert!(a.differences(&a).is_empty());
        let mut b = a.clone();
        b.vcpus = 2;
        b.memory_bytes = 128 << 20;
        b.devices[0].model = "counter".into();
        b.devices[1].layout = Some(8);
        b.devices[1].regions = vec!["mmio 0xd0002000+0x1000".into()];
        b.devices[1].irqs = vec![6];
        b.devices.push(dev("c", "regfile", 0xd000_3000));
        assert_eq!(
            a.differences(&b),
            vec![
                "the snapshot has 1 vCPU(s), the machine file 2",
                "the snapshot has 64 MiB of RAM, the machine file 128 MiB",
                "device `a` is a regfile in the snapshot, a counter in the machine file",
                "device `b`: its description changed since the snapshot (another register map)",
                "device `b` has regions [mmio 0xd0001000+0x1000] in the snapshot, [mmio 0xd0002000+0x1000] in the machine file",
                "device `b` has interrupt pins [5] in the snapshot, [6] in the machine file",
                "device `c` is in the machine file but not in the snapshot",
            ]
        );
        assert_eq!(
            b.differences(&a).last().unwrap(),
            "device `c` is in the snapshot but not in the machine file"
        );
        let mut swapped = a.clone();
        swapped.devices.reverse();
        assert_eq!(a.differences(&swapped), vec!["the devices are listed in another order"]);
    }
}
