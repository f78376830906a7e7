//! The exit status check of the tests that run mmiolab (tests/baremetal.rs, tests/snapshot.rs).

use std::process::Output;

use libtest_mimic::Failed;

/// Passes when `out` ended with `status`; else fails showing the status and both outputs.
pub fn expect_status(out: &Output, status: i32) -> Result<(), Failed> {
    if out.status.code() == Some(status) {
        return Ok(());
    }
    Err(format!(
        "expected exit status {status}, got {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}
