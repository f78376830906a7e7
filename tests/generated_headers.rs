// The committed generated headers and the `mmiolab header` arguments that make them (run in
// the workspace root). One list, included by crates/xtask (`cargo xtask headers` writes
// them; `cargo xtask test` checks them) and by tests/header.rs (plain `cargo test` checks
// them too).
&[
    (
        "guest/drivers/mmiolab-machine.h",
        &["--config", "guest/machines/default.toml"],
    ),
    (
        "firmware/asm/mmiolab-machine.h",
        &["--config", "tests/machines/baremetal.toml", "--asm"],
    ),
    (
        "firmware/asm/described-machine.h",
        &["--config", "tests/machines/described.toml", "--asm", "--prefix", "DESC"],
    ),
]
