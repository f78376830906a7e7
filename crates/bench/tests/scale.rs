//! Scale guard (issue 11): machine build and device lookup grow no worse than n log n in
//! the number of devices and regions, checked with instruction counts (callgrind: exact and
//! repeatable, unlike wall time on a shared machine).
//!
//! Each trial counts the instructions of `mmiolab-bench scale-one` at three sizes n, 4n
//! (or 10n) and 16n (100n) and compares the cost per added item between the two steps: for
//! n log n growth the second step's cost per item is barely larger than the first's (the
//! log grows by a constant), for quadratic growth it is 4-10 times as large. The trials fail
//! when it more than doubles, and when the whole count grows more than 3x faster than the
//! size. Before the bus kept its own dispatch table (vm-device's `IoManager` checked each
//! new range against every other), the bus trial's 20,000-device count did not finish
//! within its 10-minute limit.
//!
//! Without valgrind every trial is reported as ignored, with the reason.

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use mmiolab_bench::callgrind;

/// One guarded growth.
struct Growth {
    name: &'static str,
    axis: &'static str,
    sizes: [u64; 3],
    /// `--lookups` (devices looked up past the cache, once each).
    lookups: bool,
}

const GROWTHS: [Growth; 3] = [
    Growth {
        name: "bus_build_and_lookups_grow_n_log_n_in_devices",
        axis: "bus",
        sizes: [200, 2_000, 20_000],
        lookups: true,
    },
    Growth {
        name: "machine_build_grows_n_log_n_in_devices",
        axis: "devices",
        sizes: [100, 400, 1_600],
        lookups: true,
    },
    Growth {
        name: "machine_build_grows_n_log_n_in_regions",
        axis: "regions",
        sizes: [200, 2_000, 20_000],
        lookups: false,
    },
];

fn main() {
    let args = Arguments::from_args();
    let missing = callgrind::valgrind().is_none().then(|| {
        "valgrind is not installed (not on PATH): the scale guard counts instructions with callgrind".to_owned()
    });
    if let Some(reason) = &missing {
        eprintln!("the scale guard is ignored: {reason}");
    }
    let trials = GROWTHS
        .iter()
        .map(|g| Trial::test(g.name, move || growth(g)).with_ignored_flag(missing.is_some()))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn growth(g: &Growth) -> Result<(), Failed> {
    let valgrind = callgrind::valgrind().ok_or("valgrind disappeared")?;
    let program = PathBuf::from(env!("CARGO_BIN_EXE_mmiolab-bench"));
    let work = std::env::temp_dir().join(format!("mmiolab-bench-scale-{}-{}", std::process::id(), g.name));
    std::fs::create_dir_all(&work)?;
    let mut counts = Vec::new();
    for n in g.sizes {
        let mut args: Vec<std::ffi::OsString> = vec!["scale-one".into(), "--axis".into(), g.axis.into()];
        args.extend(["--n".into(), n.to_string().into()]);
        if g.lookups {
            args.extend(["--lookups".into(), "1".into()]);
        }
        let out = work.join(format!("callgrind.{n}"));
        let c = callgrind::count(&valgrind, &program, &args, &out, Duration::from_secs(600))
            .map_err(|e| format!("{e:#}"))?;
        if c.code != Some(0) {
            return Err(format!(
                "scale-one --axis {} --n {n} failed ({:?}):\n{}",
                g.axis, c.code, c.output
            )
            .into());
        }
        counts.push(c.total);
    }
    std::fs::remove_dir_all(&work)?;
    let [n0, n1, n2] = g.sizes.map(|n| n as f64);
    let [c0, c1, c2] = [counts[0], counts[1], counts[2]].map(|c| c as f64);
    let first = (c1 - c0) / (n1 - n0);
    let second = (c2 - c1) / (n2 - n1);
    let ratio = second / first;
    let whole = (c2 / c1) / (n2 / n1);
    eprintln!(
        "{}: {counts:?} instructions at {:?} {}; per added item {first:.0} then {second:.0} ({ratio:.2}x); \
         {:.1}x the size costs {:.1}x the instructions",
        g.name,
        g.sizes,
        g.axis,
        n2 / n1,
        c2 / c1
    );
    if ratio > 2.0 || whole > 3.0 {
        return Err(format!(
            "{} grows faster than n log n: the cost per added item went from {first:.0} to {second:.0} instructions \
             ({ratio:.2}x, at most 2x allowed) between {:?}; run `cargo run --release -p mmiolab-bench -- scale` \
             and profile `mmiolab-bench scale-one --axis {} --n N` to see where",
            g.axis, g.sizes, g.axis
        )
        .into());
    }
    Ok(())
}
