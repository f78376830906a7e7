//! The descriptions that ship with mmiolab (the top-level `models/` folder), embedded in the
//! binary so that an installed `mmiolab` carries them without the source tree.
//!
//! A machine file can name one of them instead of a path; [`bundled`] returns its text,
//! which [`crate::compile_text`] turns into a [`crate::Model`]. models/README.md says what
//! each one models.

/// Lists the bundled descriptions once: their names, and their texts in the same order.
macro_rules! bundle {
    ($($name:literal),* $(,)?) => {
        /// Names, in the order [`names`] lists them.
        const NAMES: &[&str] = &[$($name),*];
        /// Texts, in the order of [`NAMES`].
        const TEXTS: &[&str] = &[$(include_str!(concat!("../../../models/", $name, ".toml"))),*];
    };
}

bundle![
    "demo",
    "uart16550",
    "gpio-mmio",
    "parport",
    "isa-hole",
    "regfile",
    "counter"
];

/// The text of the bundled description `name` (the file name in `models/` without
/// `.toml`, e.g. `uart16550`), or `None` if there is no such description.
pub fn bundled(name: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| TEXTS.get(i))
        .copied()
}

/// The names of every bundled description.
pub fn names() -> &'static [&'static str] {
    NAMES
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_bundled_description_compiles() {
        for name in names() {
            let text = bundled(name).unwrap();
            let path = format!("models/{name}.toml");
            if let Err(e) = crate::compile_text(text, Path::new(&path)) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn names_and_lookup_agree() {
        assert_eq!(names().len(), TEXTS.len());
        for name in names() {
            assert!(bundled(name).is_some(), "{name}");
        }
        assert_eq!(
            bundled("uart16550"),
            Some(include_str!("../../../models/uart16550.toml"))
        );
        assert_eq!(bundled("no-such-model"), None);
        assert_eq!(bundled("uart16550.toml"), None);
    }

    #[test]
    fn the_folder_and_the_list_agree() {
        // Every file in models/ is bundled (the README aside), and nothing else is.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|f| f.strip_suffix(".toml").map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = names().iter().map(|n| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
