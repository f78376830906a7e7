//! The bundled bare-metal guest programs, built from `firmware/asm/*.S` when this crate
//! builds. See docs/firmware.md for the entry contract they rely on.

use std::path::PathBuf;

/// Names of every bundled program (file stems of `asm/*.S`).
pub const NAMES: &[&str] = include!(concat!(env!("OUT_DIR"), "/names.rs"));

/// Path of the ELF built for program `name`, or `None` if there is no such program.
pub fn elf(name: &str) -> Option<PathBuf> {
    NAMES
        .contains(&name)
        .then(|| PathBuf::from(concat!(env!("OUT_DIR"))).join(format!("{name}.elf")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_program_was_built() {
        assert!(super::NAMES.contains(&"demo"));
        for name in super::NAMES {
            let path = super::elf(name).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..4], b"\x7fELF", "{}", path.display());
        }
        assert_eq!(super::elf("nope"), None);
    }
}
