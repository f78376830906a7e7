//! C headers from a compiled [`Model`]: `#define`s for every register's offset, width and
//! reset, every field's shift, mask and width, every named value, the FIFOs' depths, the
//! memory windows and the interrupt lines.
//!
//! The output is deterministic (no timestamps, file order), so a build can compare a
//! committed header with a fresh one byte for byte. With [`Style::Asm`] every value is a
//! plain integer constant (no `U`/`ULL` suffixes, no casts), so `.S` files can include it;
//! [`Style::C`] suffixes masks and resets with `U` (`ULL` for 64-bit registers), so that
//! `x & ~MASK` does not lose the upper half of a 64-bit value.
//!
//! [`Header`] is the builder both the device header ([`device_header`]) and the machine
//! header (in the `mmiolab` command line) are made with: it refuses a macro name defined
//! twice (two names that read the same once upper-cased) instead of emitting a header that
//! does not compile.

use std::collections::BTreeMap;
use std::fmt;

use crate::compile::{Model, Register};
use crate::schema::{Backing, Endianness};

/// How values are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    /// For C: masks, resets and value names carry `U` (`ULL` when 64-bit), MMIO addresses
    /// `UL`, strings (a device's `compatible`) are emitted.
    #[default]
    C,
    /// For the assembler as well as C: plain integer constants only, no strings.
    Asm,
}

/// What a header says about itself and how its macros are named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOptions {
    /// Prefix of every macro (upper-cased; empty: none).
    pub prefix: String,
    /// C or assembler-safe values.
    pub style: Style,
    /// The file it is generated from, for the header comment.
    pub source: Option<String>,
    /// The command that regenerates it, for the header comment.
    pub command: Option<String>,
}

impl HeaderOptions {
    /// C style, `prefix`, no source or command.
    pub fn new(prefix: &str) -> HeaderOptions {
        HeaderOptions {
            prefix: prefix.to_owned(),
            ..HeaderOptions::default()
        }
    }
}

/// A header that cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Two things would get the same macro name.
    #[error(
        "macro `{name}` would be defined twice: for {first} and for {second} (rename one, or choose another prefix)"
    )]
    Duplicate {
        /// The macro.
        name: String,
        /// What defined it first.
        first: String,
        /// What defined it again.
        second: String,
    },
}

/// A C identifier from `parts` joined with `_`: upper-cased, every character that cannot
/// be in an identifier replaced by `_`, a leading `_` added before a digit; empty parts
/// are left out.
pub fn c_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Text made safe for a `/* */` comment on one line: whitespace runs (newlines included)
/// become one space, `*/` and `/*` are broken up.
pub fn comment_text(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace("*/", "* /").replace("/*", "/ *")
}

/// A C string literal of `s` (`"` and `\` escaped, control characters as octal).
pub fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // `??x` would be a trigraph in older C dialects.
            '?' => out.push_str("\\?"),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Clone)]
enum Line {
    Blank,
    Comment(String),
    Define { name: String, value: String },
}

/// Builds a header: a comment saying what it is, an include guard, `#define`s.
#[derive(Debug, Clone)]
pub struct Header {
    style: Style,
    guard: String,
    intro: Vec<String>,
    lines: Vec<Line>,
    /// Macro identifier -> what defined it.
    defined: BTreeMap<String, String>,
    error: Option<HeaderError>,
}

/// Value names are aligned to this column at most; longer names get one space.
const ALIGN_MAX: usize = 40;

impl Header {
    /// An empty header with include guard `guard` (made a C identifier).
    pub fn new(guard: &str, style: Style) -> Header {
        let guard = c_name(&[guard]);
        let mut defined = BTreeMap::new();
        defined.insert(guard.clone(), "the include guard".to_owned());
        Header {
            style,
            guard,
            intro: Vec::new(),
            lines: Vec::new(),
            defined,
            error: None,
        }
    }

    /// The value style.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Adds a line to the comment at the top (empty: a blank comment line).
    pub fn intro(&mut self, text: &str) {
        self.intro.push(comment_text(text));
    }

    /// The standard top comment: generated, from `source`, by `command`, do not edit.
    pub fn generated_by(&mut self, options: &HeaderOptions) {
        match &options.source {
            Some(source) => self.intro(&format!("Generated by mmiolab from {source}: do not edit.")),
            None => self.intro("Generated by mmiolab: do not edit."),
        }
        if let Some(command) = &options.command {
            self.intro(&format!("Regenerate with: {command}"));
        }
    }

    /// A blank line (none at the start, never two in a row).
    pub fn blank(&mut self) {
        if !matches!(self.lines.last(), None | Some(Line::Blank)) {
            self.lines.push(Line::Blank);
        }
    }

    /// A comment line.
    pub fn comment(&mut self, text: &str) {
        self.lines.push(Line::Comment(comment_text(text)));
    }

    /// `#define name value`; `name` may be function-like (`X_OFFSET(i)`). `what` names the
    /// thing it describes, for the error when the name is taken.
    pub fn define(&mut self, name: &str, value: String, what: &str) {
        let ident = name.split('(').next().unwrap_or(name).to_owned();
        if let Some(first) = self.defined.get(&ident) {
            if self.error.is_none() {
                self.error = Some(HeaderError::Duplicate {
                    name: ident,
                    first: first.clone(),
                    second: what.to_owned(),
                });
            }
            return;
        }
        self.defined.insert(ident, what.to_owned());
        self.lines.push(Line::Define {
            name: name.to_owned(),
            value,
        });
    }

    /// A hexadecimal value without suffix (offsets, sizes, strides).
    pub fn hex(&self, v: u64) -> String {
        format!("{v:#x}")
    }

    /// A decimal value (widths in bits, shifts, counts, depths, lines).
    pub fn dec(&self, v: u64) -> String {
        v.to_string()
    }

    /// Register bits (masks, resets, field values): `U`, or `ULL` when `wide` (a 64-bit
    /// register) or above 32 bits, in C style; plain for the assembler.
    pub fn bits(&self, v: u64, wide: bool) -> String {
        match self.style {
            Style::Asm => format!("{v:#x}"),
            Style::C if wide || v > u64::from(u32::MAX) => format!("{v:#x}ULL"),
            Style::C => format!("{v:#x}U"),
        }
    }

    /// A guest-physical MMIO address or size: `UL` (`ULL` above 32 bits) in C style.
    pub fn address(&self, v: u64) -> String {
        match self.style {
            Style::Asm => format!("{v:#x}"),
            Style::C if v > u64::from(u32::MAX) => format!("{v:#x}ULL"),
            Style::C => format!("{v:#x}UL"),
        }
    }

    /// The register map of `model`, every macro starting with `prefix` (upper-cased).
    pub fn device(&mut self, model: &Model, prefix: &str) {
        let name = |parts: &[&str]| {
            let mut all = vec![prefix];
            all.extend_from_slice(parts);
            c_name(&all)
        };
        match &model.description {
            Some(d) => self.comment(&format!("Device `{}`: {d}", model.name)),
            None => self.comment(&format!("Device `{}`", model.name)),
        }
        self.define(
            &name(&["MAP_SIZE"]),
            self.hex(model.size),
            &format!("the size of device `{}`", model.name),
        );
        if model.endianness == Endianness::Big {
            self.define(&name(&["BIG_ENDIAN"]), "1".to_owned(), "the byte order");
        }
        for reg in &model.registers {
            let array = match reg.array {
                Some((_, k)) if k > 0 => continue,
                Some((a, _)) => model.arrays.get(a as usize),
                None => None,
            };
            self.blank();
            let base = array.map_or(reg.name.as_str(), |a| a.name.as_str());
            let what = format!("register `{base}`");
            let mut title = match array {
                Some(a) => format!("{base}[0..{}] ({})", a.count, access(reg)),
                None => format!("{base} ({})", access(reg)),
            };
            if let Some(d) = &reg.description {
                title.push_str(": ");
                title.push_str(d);
            }
            self.comment(&title);
            match array {
                Some(a) => {
                    self.define(
                        &format!("{}(i)", name(&[base, "OFFSET"])),
                        format!("({} + (i) * {})", self.hex(reg.offset), self.hex(a.stride)),
                        &what,
                    );
                    self.define(&name(&[base, "COUNT"]), self.dec(a.count.into()), &what);
                    self.define(&name(&[base, "STRIDE"]), self.hex(a.stride), &what);
                }
                None => self.define(&name(&[base, "OFFSET"]), self.hex(reg.offset), &what),
            }
            let wide = reg.width == 8;
            self.define(&name(&[base, "WIDTH"]), self.dec(u64::from(reg.width) * 8), &what);
            self.define(&name(&[base, "RESET"]), self.bits(reg.reset, wide), &what);
            for f in &reg.fields {
                let field_parts: Vec<&str> = if reg.declared_fields {
                    vec![base, f.name.as_str()]
                } else {
                    vec![base]
                };
                let fwhat = if reg.declared_fields {
                    format!("field `{base}.{}`", f.name)
                } else {
                    what.clone()
                };
                if reg.declared_fields {
                    if let Some(d) = &f.description {
                        self.comment(&format!("{base}.{}: {d}", f.name));
                    }
                    let p = |suffix: &str| {
                        let mut v = field_parts.clone();
                        v.push(suffix);
                        name(&v)
                    };
                    self.define(&p("SHIFT"), self.dec(f.shift.into()), &fwhat);
                    self.define(&p("MASK"), self.bits(f.mask, wide), &fwhat);
                    self.define(&p("WIDTH"), self.dec(f.mask.count_ones().into()), &fwhat);
                }
                for (value_name, v) in &f.values {
                    let mut parts = field_parts.clone();
                    parts.push(value_name);
                    self.define(
                        &name(&parts),
                        self.bits(*v, wide),
                        &format!("value `{value_name}` of {fwhat}"),
                    );
                }
            }
        }
        if !model.fifos.is_empty() {
            self.blank();
            self.comment("FIFOs: depth in elements");
            for f in &model.fifos {
                if let Some(d) = &f.description {
                    self.comment(&format!("{}: {d}", f.name));
                }
                self.define(
                    &name(&[&f.name, "DEPTH"]),
                    self.dec(f.depth.into()),
                    &format!("FIFO `{}`", f.name),
                );
            }
        }
        for m in &model.memories {
            self.blank();
            let backing = match m.backing {
                Backing::Trapped => "trapped",
                Backing::Memslot => "memslot",
            };
            let ro = if m.readonly { ", read-only" } else { "" };
            let mut title = format!("Memory window {} ({backing}{ro})", m.name);
            if let Some(d) = &m.description {
                title.push_str(": ");
                title.push_str(d);
            }
            self.comment(&title);
            let what = format!("memory window `{}`", m.name);
            self.define(&name(&[&m.name, "OFFSET"]), self.hex(m.offset), &what);
            self.define(&name(&[&m.name, "SIZE"]), self.hex(m.size), &what);
        }
        if !model.interrupts.is_empty() {
            self.blank();
            self.comment("Interrupt outputs: the device's line index");
            for irq in &model.interrupts {
                if let Some(d) = &irq.description {
                    self.comment(&format!("{}: {d}", irq.name));
                }
                self.define(
                    &name(&[&irq.name, "LINE"]),
                    self.dec(irq.line.into()),
                    &format!("interrupt `{}`", irq.name),
                );
            }
        }
    }

    /// The header's text, or why it cannot be made.
    pub fn finish(self) -> Result<String, HeaderError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let width = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Define { name, .. } => Some(name.len()),
                _ => None,
            })
            .filter(|&n| n <= ALIGN_MAX)
            .max()
            .unwrap_or(0);
        let mut out = String::from("/*\n");
        for line in &self.intro {
            if line.is_empty() {
                out.push_str(" *\n");
            } else {
                out.push_str(&format!(" * {line}\n"));
            }
        }
        out.push_str(" */\n");
        out.push_str(&format!("#ifndef {g}\n#define {g}\n\n", g = self.guard));
        for line in &self.lines {
            match line {
                Line::Blank => out.push('\n'),
                Line::Comment(c) => out.push_str(&format!("/* {c} */\n")),
                Line::Define { name, value } => out.push_str(&format!("#define {name:<width$} {value}\n")),
            }
        }
        if !self.lines.is_empty() && !matches!(self.lines.last(), Some(Line::Blank)) {
            out.push('\n');
        }
        out.push_str(&format!("#endif /* {} */\n", self.guard));
        Ok(out)
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Style::C => "C",
            Style::Asm => "assembler",
        })
    }
}

fn access(reg: &Register) -> String {
    let mut s = match (reg.readable, reg.writable) {
        (true, true) => "read-write",
        (true, false) => "read-only",
        (false, true) => "write-only",
        (false, false) => "no access",
    }
    .to_owned();
    if reg.when.is_some() {
        s.push_str(", banked view");
    }
    s
}

/// The C header of a device: `options.prefix` (upper-cased) starts every macro.
pub fn device_header_with(model: &Model, options: &HeaderOptions) -> Result<String, HeaderError> {
    let prefix = c_name(&[&options.prefix]);
    let mut h = Header::new(&c_name(&[&prefix, "REGS_H"]), options.style);
    h.generated_by(options);
    h.intro("");
    h.intro(&format!("Device `{}`.", model.name));
    intro_conventions(&mut h);
    h.device(model, &prefix);
    h.finish()
}

/// The lines that say how to read the register macros.
pub fn intro_conventions(h: &mut Header) {
    h.intro("Offsets are in bytes from the device's base; register and field widths are in bits;");
    h.intro("masks are in register position; value names are field values, not shifted.");
    h.intro("FOO_OFFSET(i) is element i of a register array FOO of FOO_COUNT elements.");
}

/// The C header of a device, every macro starting with `prefix` (upper-cased), in C style.
/// Where two things would get one macro name, the header is one `#error` line saying so
/// (use [`device_header_with`] to get the error).
pub fn device_header(model: &Model, prefix: &str) -> String {
    device_header_with(model, &HeaderOptions::new(prefix))
        .unwrap_or_else(|e| format!("#error {}\n", c_string(&format!("mmiolab header: {e}"))))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::compile_text;

    const UART: &str = r#"
[device]
name = "uart"
description = "A small UART"

[[register]]
name = "DATA"
offset = 0x0
width = 8
sw = "ro"
pop = "rx"
description = "Receive */ buffer"

[[register]]
name = "TXDATA"
offset = 0x0
width = 8
sw = "wo"
push = "tx"

[[register]]
name = "CTRL"
offset = 0x4
reset = 0x5
[[register.field]]
name = "EN"
bits = 0
description = "Enable"
[[register.field]]
name = "MODE"
bits = "3:2"
values = { IDLE = 0, LOOP = 2, RUN = 1 }

[[register]]
name = "WIDE"
offset = 0x8
width = 64
reset = 0x100000000
values = { ALL = 0xffffffffffffffff }

[[register]]
name = "CH"
offset = 0x10
count = 4
stride = 8
[[register.field]]
name = "LEN"
bits = "15:0"

[[fifo]]
name = "rx"
depth = 16

[[fifo]]
name = "tx"
depth = 8

[[memory]]
name = "buf"
offset = 0x1000
size = 0x1000
backing = "memslot"
readonly = true

[[interrupt]]
name = "rxirq"
when = "rx.level"
line = 1
"#;

    const UART_H: &str = "/*
 * Generated by mmiolab from uart.toml: do not edit.
 * Regenerate with: mmiolab header --description uart.toml
 *
 * Device `uart`.
 * Offsets are in bytes from the device's base; register and field widths are in bits;
 * masks are in register position; value names are field values, not shifted.
 * FOO_OFFSET(i) is element i of a register array FOO of FOO_COUNT elements.
 */
#ifndef UART_REGS_H
#define UART_REGS_H

/* Device `uart`: A small UART */
#define UART_MAP_SIZE        0x2000

/* DATA (read-only): Receive * / buffer */
#define UART_DATA_OFFSET     0x0
#define UART_DATA_WIDTH      8
#define UART_DATA_RESET      0x0U

/* TXDATA (write-only) */
#define UART_TXDATA_OFFSET   0x0
#define UART_TXDATA_WIDTH    8
#define UART_TXDATA_RESET    0x0U

/* CTRL (read-write) */
#define UART_CTRL_OFFSET     0x4
#define UART_CTRL_WIDTH      32
#define UART_CTRL_RESET      0x5U
/* CTRL.EN: Enable */
#define UART_CTRL_EN_SHIFT   0
#define UART_CTRL_EN_MASK    0x1U
#define UART_CTRL_EN_WIDTH   1
#define UART_CTRL_MODE_SHIFT 2
#define UART_CTRL_MODE_MASK  0xcU
#define UART_CTRL_MODE_WIDTH 2
#define UART_CTRL_MODE_IDLE  0x0U
#define UART_CTRL_MODE_RUN   0x1U
#define UART_CTRL_MODE_LOOP  0x2U

/* WIDE (read-write) */
#define UART_WIDE_OFFSET     0x8
#define UART_WIDE_WIDTH      64
#define UART_WIDE_RESET      0x100000000ULL
#define UART_WIDE_ALL        0xffffffffffffffffULL

/* CH[0..4] (read-write) */
#define UART_CH_OFFSET(i)    (0x10 + (i) * 0x8)
#define UART_CH_COUNT        4
#define UART_CH_STRIDE       0x8
#define UART_CH_WIDTH        32
#define UART_CH_RESET        0x0U
#define UART_CH_LEN_SHIFT    0
#define UART_CH_LEN_MASK     0xffffU
#define UART_CH_LEN_WIDTH    16

/* FIFOs: depth in elements */
#define UART_RX_DEPTH        16
#define UART_TX_DEPTH        8

/* Memory window buf (memslot, read-only) */
#define UART_BUF_OFFSET      0x1000
#define UART_BUF_SIZE        0x1000

/* Interrupt outputs: the device's line index */
#define UART_RXIRQ_LINE      1

#endif /* UART_REGS_H */
";

    fn uart() -> Model {
        compile_text(UART, Path::new("uart.toml")).unwrap()
    }

    #[test]
    fn whole_device_header() {
        let options = HeaderOptions {
            prefix: "uart".to_owned(),
            style: Style::C,
            source: Some("uart.toml".to_owned()),
            command: Some("mmiolab header --description uart.toml".to_owned()),
        };
        let text = device_header_with(&uart(), &options).unwrap();
        assert_eq!(text, UART_H, "{text}");
    }

    #[test]
    fn assembler_style_has_plain_integers_only() {
        let options = HeaderOptions {
            prefix: "U".to_owned(),
            style: Style::Asm,
            ..HeaderOptions::default()
        };
        let text = device_header_with(&uart(), &options).unwrap();
        for line in text.lines().filter(|l| l.starts_with("#define ")) {
            let value = line.split_whitespace().skip(2).collect::<Vec<_>>().join(" ");
            assert!(
                !value.contains('U') && !value.contains('"') && !value.contains("(u"),
                "{line}"
            );
        }
        assert!(text.contains("#define U_WIDE_RESET      0x100000000\n"), "{text}");
        assert!(
            text.starts_with("/*\n * Generated by mmiolab: do not edit.\n"),
            "{text}"
        );
    }

    #[test]
    fn short_form_is_c_style_and_deterministic() {
        let a = device_header(&uart(), "uart");
        assert_eq!(a, device_header(&uart(), "uart"));
        assert!(a.contains("#define UART_CTRL_MODE_MASK  0xcU\n"), "{a}");
        assert!(a.starts_with("/*\n * Generated by mmiolab: do not edit.\n *\n"), "{a}");
    }

    #[test]
    fn empty_prefix_and_odd_names() {
        assert_eq!(c_name(&["", "ctrl", "en"]), "CTRL_EN");
        assert_eq!(c_name(&["mmio-regs.0", "base"]), "MMIO_REGS_0_BASE");
        assert_eq!(c_name(&["9lives"]), "_9LIVES");
        let text = device_header(&uart(), "");
        assert!(text.contains("#ifndef REGS_H\n"), "{text}");
        assert!(text.contains("#define CTRL_EN_SHIFT "), "{text}");
    }

    #[test]
    fn colliding_names_are_refused() {
        let m = compile_text(
            "[[register]]\nname = \"A\"\noffset = 0\n[[register.field]]\nname = \"B\"\nbits = \"3:0\"\n\n\
             [[register]]\nname = \"A_B\"\noffset = 4\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let e = device_header_with(&m, &HeaderOptions::new("X")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "macro `X_A_B_WIDTH` would be defined twice: for field `A.B` and for register `A_B` \
             (rename one, or choose another prefix)"
        );
        let text = device_header(&m, "X");
        assert!(
            text.starts_with("#error \"mmiolab header: macro `X_A_B_WIDTH`"),
            "{text}"
        );
        let m = compile_text(
            "[[register]]\nname = \"buf\"\noffset = 0\n\n[[memory]]\nname = \"BUF\"\noffset = 0x100\nsize = 4\nbacking = \"trapped\"\n",
            Path::new("y.toml"),
        )
        .unwrap();
        let e = device_header_with(&m, &HeaderOptions::new("Y")).unwrap_err();
        assert!(e.to_string().contains("`Y_BUF_OFFSET`"), "{e}");
    }

    #[test]
    fn comments_cannot_end_early() {
        assert_eq!(comment_text("a */ b\n  /* c"), "a * / b / * c");
        assert_eq!(c_string("a\"b\\c\n??="), "\"a\\\"b\\\\c\\012\\?\\?=\"");
    }
}
