//! `mmiolab header`: a C header from a device description (its register map) or from a
//! machine file (every device's addresses, ports and interrupt pin, and the register map of
//! each described device).
//!
//! The text is deterministic: it depends on the inputs and on the command's arguments
//! only, so a committed header can be compared byte for byte with a fresh one
//! (`cargo xtask test` does, for guest/drivers/mmiolab-machine.h and
//! firmware/asm/mmiolab-machine.h).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mmiolab_regmodel::Model;
use mmiolab_regmodel::header::{Header, HeaderError, HeaderOptions, Style, c_name, c_string, intro_conventions};
use mmiolab_vmm::MachineConfig;
use mmiolab_vmm::config::{DeviceConfig, DeviceModel};

/// Default macro prefix of a machine header.
pub const MACHINE_PREFIX: &str = "MMIOLAB";

/// The C header of a machine: for each device, `PREFIX_DEV_BASE` and `_SIZE` (its MMIO
/// region), `_PIO_BASE` and `_PIO_SIZE` (its I/O-port region; `_MMIO<n>_`, `_PIO<n>_` for
/// further regions, should a device have several), `_IRQ` (its IOAPIC pin), `_COMPAT` (its most specific
/// `compatible`, C style only), then, for a device with an entry in `models` (same index
/// as `config.devices`), its register map with prefix `PREFIX_DEV`.
pub fn machine_header(
    config: &MachineConfig,
    models: &[Option<Model>],
    options: &HeaderOptions,
) -> Result<String, HeaderError> {
    let prefix = c_name(&[&options.prefix]);
    let mut h = Header::new(&c_name(&[&prefix, "MACHINE_H"]), options.style);
    h.generated_by(options);
    h.intro("");
    let p = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}_")
    };
    h.intro(&format!(
        "For each device DEV: {p}DEV_BASE and _SIZE (its MMIO region), _PIO_BASE and _PIO_SIZE"
    ));
    h.intro(match options.style {
        Style::C => "(its I/O ports), _IRQ (its IOAPIC pin, a GSI), _COMPAT (its first compatible string).",
        Style::Asm => "(its I/O ports), _IRQ (its IOAPIC pin, a GSI).",
    });
    if models.iter().any(Option::is_some) {
        h.intro(&format!(
            "A described device's register map follows its addresses, as {p}DEV_REG_OFFSET and so on."
        ));
        intro_conventions(&mut h);
    }
    for (i, dev) in config.devices.iter().enumerate() {
        h.blank();
        let dp = c_name(&[&prefix, &dev.name]);
        let what = format!("device `{}`", dev.name);
        let bus = dev.bus.as_deref().map(|b| format!(" on bus {b}")).unwrap_or_default();
        h.comment(&format!("Device {} ({}){bus}", dev.name, model_text(dev)));
        for (k, r) in dev.mmio.iter().enumerate() {
            let n = if k == 0 { String::new() } else { format!("MMIO{k}") };
            h.define(&c_name(&[&dp, &n, "BASE"]), h.address(r.base), &what);
            h.define(&c_name(&[&dp, &n, "SIZE"]), h.address(r.size), &what);
        }
        for (k, r) in dev.pio.iter().enumerate() {
            let n = if k == 0 { "PIO".to_owned() } else { format!("PIO{k}") };
            h.define(&c_name(&[&dp, &n, "BASE"]), h.hex(r.base), &what);
            h.define(&c_name(&[&dp, &n, "SIZE"]), h.hex(r.size), &what);
        }
        for (line, &irq) in dev.irqs().iter().enumerate() {
            let n = if line == 0 { String::new() } else { line.to_string() };
            h.define(&c_name(&[&dp, "IRQ", &n]), h.dec(irq.into()), &what);
        }
        if h.style() == Style::C
            && let Some(first) = dev.compatible.as_ref().and_then(|c| c.0.first())
        {
            h.define(&c_name(&[&dp, "COMPAT"]), c_string(first), &what);
        }
        if let Some(Some(model)) = models.get(i) {
            h.blank();
            h.device(model, &dp);
        }
    }
    h.finish()
}

fn model_text(dev: &DeviceConfig) -> String {
    match dev.kind() {
        DeviceModel::Regfile => "regfile".to_owned(),
        DeviceModel::Counter => "counter".to_owned(),
        DeviceModel::Bundled(name) => format!("bundled model {name}"),
        DeviceModel::File(path) => format!("description {}", path.display()),
        DeviceModel::Svd { file, peripheral, .. } => format!("SVD {} peripheral {peripheral}", file.display()),
    }
}

/// The compiled model of a described device (a `description` file, a bundled model or an
/// SVD peripheral), with the files it was read from (an SVD and its overlay are two);
/// `None` for a built-in Rust model.
pub fn described_model(
    config: &MachineConfig,
    index: usize,
    dev: &DeviceConfig,
) -> Result<Option<(Model, Vec<PathBuf>)>> {
    let key = format!("device[{index}]");
    let Some((desc, inputs)) = mmiolab_vmm::platform::device_description(config, &key, dev)? else {
        return Ok(None);
    };
    let model = mmiolab_regmodel::compile_shifted(&desc, dev.reg_shift.unwrap_or(0))
        .map_err(|e| anyhow::anyhow!("{}: {key}: {e}", config.source.display()))?;
    Ok(Some((model, inputs)))
}

/// What `mmiolab header` reads.
pub enum Input<'a> {
    /// A device description.
    Description(&'a Path),
    /// A machine file.
    Machine(&'a Path),
}

/// `mmiolab header`: the header's text and the files it was made from.
pub fn generate(input: &Input<'_>, prefix: Option<&str>, style: Style) -> Result<(String, Vec<PathBuf>)> {
    let (flag, path) = match input {
        Input::Description(p) => ("--description", *p),
        Input::Machine(p) => ("--config", *p),
    };
    let mut command = format!("mmiolab header {flag} {}", shell_word(&path.to_string_lossy()));
    if let Some(p) = prefix {
        command.push_str(&format!(" --prefix {}", shell_word(p)));
    }
    if style == Style::Asm {
        command.push_str(" --asm");
    }
    let mut options = HeaderOptions {
        prefix: String::new(),
        style,
        source: Some(path.to_string_lossy().into_owned()),
        command: Some(command),
    };
    match input {
        Input::Description(path) => {
            let model = mmiolab_regmodel::load(path)?;
            options.prefix = prefix.map_or_else(|| model.name.clone(), str::to_owned);
            let text = mmiolab_regmodel::header::device_header_with(&model, &options)
                .with_context(|| format!("{}", path.display()))?;
            Ok((text, vec![path.to_path_buf()]))
        }
        Input::Machine(path) => {
            let config = MachineConfig::load(path)?;
            options.prefix = prefix.unwrap_or(MACHINE_PREFIX).to_owned();
            let mut inputs = vec![path.to_path_buf()];
            let mut models = Vec::new();
            for (i, dev) in config.devices.iter().enumerate() {
                let described = described_model(&config, i, dev)?;
                models.push(described.map(|(model, file)| {
                    inputs.extend(file);
                    model
                }));
            }
            let text = machine_header(&config, &models, &options).with_context(|| format!("{}", path.display()))?;
            Ok((text, inputs))
        }
    }
}

/// `s` as one shell word (quoted when it needs to be), for the command in the header.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./,+=:@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes `text` to `out` whole or not at all (a temporary file next to it, then a
/// rename), unless `out` already holds exactly `text` (it is then left alone, mtime
/// included). Refuses to write over any of `inputs`. A symbolic link is written through.
pub fn write_atomically(out: &Path, text: &str, inputs: &[PathBuf]) -> Result<()> {
    let inputs: Vec<(String, PathBuf)> = inputs
        .iter()
        .map(|p| ("an input of the header".to_owned(), p.clone()))
        .collect();
    Ok(mmiolab_vmm::files::write_atomically(
        out,
        text.as_bytes(),
        "the header",
        &inputs,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MachineConfig {
        MachineConfig::parse(text, Path::new("m.toml")).unwrap()
    }

    const MACHINE: &str = "\
[[bus]]
name = \"platform\"
mmio = { base = 0xd0000000, size = 0x100000 }

[[device]]
name = \"test-dev\"
model = \"regfile\"
bus = \"platform\"
compatible = [\"acme,test\", \"acme,generic\"]
irq = 5
mmio = [{ base = 0xd0001000, size = 0x1000 }]

[[device]]
name = \"seq\"
model = \"counter\"
pio = [{ base = 0x310, size = 2 }]
";

    const MACHINE_H: &str = "/*
 * Generated by mmiolab from m.toml: do not edit.
 * Regenerate with: mmiolab header --config m.toml
 *
 * For each device DEV: MMIOLAB_DEV_BASE and _SIZE (its MMIO region), _PIO_BASE and _PIO_SIZE
 * (its I/O ports), _IRQ (its IOAPIC pin, a GSI), _COMPAT (its first compatible string).
 */
#ifndef MMIOLAB_MACHINE_H
#define MMIOLAB_MACHINE_H

/* Device test-dev (regfile) on bus platform */
#define MMIOLAB_TEST_DEV_BASE   0xd0001000UL
#define MMIOLAB_TEST_DEV_SIZE   0x1000UL
#define MMIOLAB_TEST_DEV_IRQ    5
#define MMIOLAB_TEST_DEV_COMPAT \"acme,test\"

/* Device seq (counter) */
#define MMIOLAB_SEQ_PIO_BASE    0x310
#define MMIOLAB_SEQ_PIO_SIZE    0x2

#endif /* MMIOLAB_MACHINE_H */
";

    fn options(style: Style) -> HeaderOptions {
        HeaderOptions {
            prefix: MACHINE_PREFIX.to_owned(),
            style,
            source: Some("m.toml".to_owned()),
            command: Some("mmiolab header --config m.toml".to_owned()),
        }
    }

    #[test]
    fn whole_machine_header() {
        let text = machine_header(&config(MACHINE), &[], &options(Style::C)).unwrap();
        assert_eq!(text, MACHINE_H, "{text}");
    }

    #[test]
    fn assembler_machine_header_has_no_suffixes_or_strings() {
        let text = machine_header(&config(MACHINE), &[], &options(Style::Asm)).unwrap();
        assert!(text.contains("#define MMIOLAB_TEST_DEV_BASE 0xd0001000\n"), "{text}");
        assert!(!text.contains("COMPAT"), "{text}");
        assert!(!text.contains("UL\n"), "{text}");
    }

    #[test]
    fn described_devices_get_their_register_map() {
        let model = mmiolab_regmodel::compile_text(
            "[device]\nname = \"tiny\"\n[[register]]\nname = \"CTRL\"\noffset = 4\n[[register.field]]\nname = \"GO\"\nbits = 0\n",
            Path::new("tiny.toml"),
        )
        .unwrap();
        let c = config(MACHINE);
        let text = machine_header(&c, &[None, Some(model)], &options(Style::C)).unwrap();
        assert!(text.contains("#define MMIOLAB_SEQ_CTRL_OFFSET   0x4\n"), "{text}");
        assert!(text.contains("#define MMIOLAB_SEQ_CTRL_GO_MASK  0x1U\n"), "{text}");
        assert!(
            text.contains("follows its addresses, as MMIOLAB_DEV_REG_OFFSET"),
            "{text}"
        );
    }

    #[test]
    fn device_names_that_read_the_same_are_refused() {
        let text = MACHINE.replace("name = \"seq\"", "name = \"TEST_DEV\"").replace(
            "pio = [{ base = 0x310, size = 2 }]",
            "mmio = [{ base = 0xd0003000, size = 0x100 }]",
        );
        let e = machine_header(&config(&text), &[], &options(Style::C)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "macro `MMIOLAB_TEST_DEV_BASE` would be defined twice: for device `test-dev` and for device `TEST_DEV` \
             (rename one, or choose another prefix)"
        );
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("guest/machines/default.toml"), "guest/machines/default.toml");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn output_is_atomic_unchanged_is_untouched_and_inputs_are_refused() {
        let dir = std::env::temp_dir().join(format!("mmiolab-header-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.toml");
        std::fs::write(&input, "x").unwrap();
        let out = dir.join("out.h");
        write_atomically(&out, "one\n", std::slice::from_ref(&input)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\n");
        let before = std::fs::metadata(&out).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_atomically(&out, "one\n", std::slice::from_ref(&input)).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), before);
        write_atomically(&out, "two\n", std::slice::from_ref(&input)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "two\n");
        // The input, also by another spelling of its path.
        let other = dir.join(".").join("in.toml");
        let e = write_atomically(&other, "three\n", std::slice::from_ref(&input)).unwrap_err();
        assert!(e.to_string().contains("is an input of the header"), "{e}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "x");
        assert!(
            write_atomically(&dir, "x", &[])
                .unwrap_err()
                .to_string()
                .contains("is a directory")
        );
        // No temporary file is left behind.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["in.toml", "out.h"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
