//! Confinement (docs/reliability.md, "Seccomp filters"): every thread of a run is under its
//! seccomp filter once the guest runs, a blocked call ends the run naming the call and the
//! thread with status 159, `--no-seccomp` runs unfiltered, and the end-of-run work of
//! `mmiolab test` (JUnit, trace read back, golden trace) is done under the main filter.
//!
//! Every other test that boots a guest runs filtered too (filters are on by default), so the
//! normal paths (trace on and off, signals, timeouts, closed and full outputs, a full disk,
//! `--check-json`, `--expect-trace`, Unix-socket FIFOs) are held under the filters by them.

use super::*;

/// `PF_USER_WORKER` in a task's flags: a kernel worker that belongs to the process (KVM's
/// `kvm-nx-lpage-recovery` on recent kernels) and never runs user code.
const PF_USER_WORKER: u64 = 0x4000;

/// The seccomp mode and number of filters of each thread of process `pid`, by thread name
/// (`comm`): `(name, mode, filters)`; filters is None on kernels before 5.9. Kernel
/// workers are left out: they run no mmiolab code.
fn thread_modes(pid: u32) -> Result<Vec<(String, u32, Option<u32>)>, Failed> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = task?.path();
        // A thread may end between the listing and the reads: skip it.
        let (Ok(comm), Ok(status), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // Field 9 (flags), the 7th after the parenthesised name.
        let flags = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(6))
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("cannot read a thread's flags")?;
        if flags & PF_USER_WORKER != 0 {
            continue;
        }
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let mode = field("Seccomp:").ok_or("no Seccomp: line in a thread's status")?;
        out.push((comm.trim().to_owned(), mode, field("Seccomp_filters:")));
    }
    out.sort();
    Ok(out)
}

/// A running two-vCPU guest (the KTAP stand-in that prints its results, then loops): once
/// its console shows the guest ran, the main thread, the VMM thread and both vCPU threads
/// (vCPU 1 never started by the guest) are in seccomp mode 2 with exactly one filter each,
/// and no other thread runs mmiolab code; SIGTERM then still ends the run cleanly (status 143, summary).
/// With `--no-seccomp` the same threads are in mode 0.
pub fn every_thread_of_a_run_is_filtered() -> Result<(), Failed> {
    let dir = Scratch::new("seccomp-threads");
    let fw = firmware("ktap_hang");
    for filtered in [true, false] {
        let (console, err) = (dir.path("console"), dir.path("stderr"));
        let mut args = vec!["run", "-c", MACHINE, "--firmware", s(&fw), "--vcpus", "2"];
        if !filtered {
            args.push("--no-seccomp");
        }
        let mut child = mmiolab(&args)
            .stdin(Stdio::null())
            .stdout(File::create(&console)?)
            .stderr(File::create(&err)?)
            .spawn()?;
        // The guest starts only when every thread is filtered: once it has printed, the
        // modes are final (no polling on the modes themselves).
        let printed = wait_until("the guest to print", || {
            std::fs::read_to_string(&console).is_ok_and(|c| c.contains("ok 2"))
        });
        let modes = printed.and_then(|()| thread_modes(child.id()));
        // SAFETY: kill(2) on the child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait_guarded(&mut child)?;
        let stderr = std::fs::read_to_string(&err)?;
        let modes = modes?;
        let names: Vec<&str> = modes.iter().map(|(n, ..)| n.as_str()).collect();
        if names != ["mmiolab", "vcpu0", "vcpu1", "vmm"] {
            return Err(format!("threads {names:?}, expected the main thread, vcpu0, vcpu1 and vmm").into());
        }
        for (name, mode, filters) in &modes {
            let (want_mode, want_filters) = if filtered { (2, 1) } else { (0, 0) };
            if *mode != want_mode || filters.is_some_and(|f| f != want_filters) {
                return Err(format!(
                    "thread {name}: seccomp mode {mode}, {filters:?} filters; expected mode {want_mode} \
                     (filtered: {filtered})\nall: {modes:?}"
                )
                .into());
            }
        }
        expect_code(status, 143, &stderr)?;
        expect_in(&stderr, "mmiolab: stopped by SIGTERM; exit status 143; ")?;
        if stderr.contains("seccomp:") {
            return Err(format!("a filter blocked a call:\n{stderr}").into());
        }
    }
    Ok(())
}

/// `MMIOLAB_SECCOMP_SELFTEST=THREAD` makes that thread call getppid once every thread is
/// filtered: the run ends at once with status 159 and one line naming the call and the
/// thread, for each kind of thread and for `run` and `test`. With `--no-seccomp` the call
/// is harmless and the run ends as the guest says.
pub fn a_blocked_call_ends_the_run_naming_it() -> Result<(), Failed> {
    let dir = Scratch::new("seccomp-selftest");
    let fw = firmware("poweroff");
    let run = ["run", "-c", MACHINE, "--firmware", s(&fw), "--vcpus", "2"];
    for (thread, named) in [
        ("vcpu0", "vcpu 0"),
        ("vcpu1", "vcpu 1"),
        ("vmm", "vmm"),
        ("main", "main"),
    ] {
        let out = output(mmiolab(&run).env("MMIOLAB_SECCOMP_SELFTEST", thread))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 159, &stderr).map_err(|e| ctx(e, thread))?;
        let line = format!("seccomp: blocked syscall getppid (110) on thread {named}\n");
        if stderr != line {
            return Err(format!("{thread}: stderr is {stderr:?}, expected {line:?}").into());
        }
    }
    // Unfiltered, the same hook changes nothing.
    let mut unfiltered = run.to_vec();
    unfiltered.push("--no-seccomp");
    for thread in ["vcpu0", "vmm", "main"] {
        let out = output(mmiolab(&unfiltered).env("MMIOLAB_SECCOMP_SELFTEST", thread))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 0, &stderr).map_err(|e| ctx(e, thread))?;
        expect_in(&stderr, "guest powered the machine off; exit status 0")?;
        if stderr.contains("seccomp:") {
            return Err(format!("--no-seccomp still filtered:\n{stderr}").into());
        }
    }
    // `mmiolab test` runs filtered too, and takes --no-seccomp.
    let machine = ktap_machine(&dir, "ktap_exit0")?;
    let test = ["test", "-c", s(&machine), "--timeout", "60"];
    let out = output(mmiolab(&test).env("MMIOLAB_SECCOMP_SELFTEST", "main"))?;
    expect_code(out.status, 159, &text(&out.stderr))?;
    expect_in(
        &text(&out.stderr),
        "seccomp: blocked syscall getppid (110) on thread main\n",
    )?;
    let mut unfiltered = test.to_vec();
    unfiltered.push("--no-seccomp");
    let out = output(mmiolab(&unfiltered).env("MMIOLAB_SECCOMP_SELFTEST", "main"))?;
    expect_code(out.status, 0, &text(&out.stderr))?;
    // A hook that names no thread is refused before anything runs.
    let out = output(mmiolab(&run).env("MMIOLAB_SECCOMP_SELFTEST", "vcpu"))?;
    expect_code(out.status, 70, &text(&out.stderr))?;
    expect_in(
        &text(&out.stderr),
        "MMIOLAB_SECCOMP_SELFTEST=vcpu: expected vcpuN, vmm or main",
    )?;
    Ok(())
}

/// The work `mmiolab test` does after the run, on its filtered main thread: the trace read
/// back, a golden trace compared, a JUnit report written atomically (a new file, then over
/// an existing one).
pub fn mmiolab_test_reports_are_written_under_the_filter() -> Result<(), Failed> {
    let dir = Scratch::new("seccomp-test-reports");
    let machine = ktap_machine(&dir, "ktap_exit0")?;
    let (junit, trace, again) = (dir.path("junit.xml"), dir.path("trace.jsonl"), dir.path("again.jsonl"));
    let first = [
        "test",
        "-c",
        s(&machine),
        "--timeout",
        "60",
        "--junit",
        s(&junit),
        "--trace",
        s(&trace),
    ];
    let out = output(&mut mmiolab(&first))?;
    let stdout = text(&out.stdout);
    expect_code(out.status, 0, &format!("{}\n{stdout}", text(&out.stderr)))?;
    expect_in(&stdout, "mmiolab test: 4 passed, 0 failed")?;
    // where it booted and why (a bare-metal program: directly, whatever the host's KVM)
    expect_in(
        &text(&out.stderr),
        "mmiolab test: booting directly: a bare-metal program runs on any KVM",
    )?;
    expect_in(&std::fs::read_to_string(&junit)?, "<testsuite")?;
    if std::fs::metadata(&trace)?.len() == 0 {
        return Err("the trace is empty".into());
    }
    let second = [
        "test",
        "-c",
        s(&machine),
        "--timeout",
        "60",
        "--junit",
        s(&junit),
        "--trace",
        s(&again),
        "--expect-trace",
        s(&trace),
        "--quiet",
    ];
    let out = output(&mut mmiolab(&second))?;
    let stdout = text(&out.stdout);
    expect_code(out.status, 0, &format!("{}\n{stdout}", text(&out.stderr)))?;
    expect_in(&stdout, "PASS golden-trace")?;
    if !out.stderr.is_empty() {
        return Err(format!("--quiet printed on stderr:\n{}", text(&out.stderr)).into());
    }
    expect_in(&std::fs::read_to_string(&junit)?, "golden-trace")?;
    let names: Vec<_> = std::fs::read_dir(&dir.0)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    if !names.is_empty() {
        return Err(format!("temporary files left: {names:?}").into());
    }
    Ok(())
}

/// A machine file in `dir` that runs the bare-metal KTAP stand-in `program` with the test
/// device `mmiolab test` expects.
fn ktap_machine(dir: &Scratch, program: &str) -> Result<PathBuf, Failed> {
    let machine = dir.path(&format!("{program}.toml"));
    std::fs::write(
        &machine,
        format!(
            "[machine]\nmemory_mib = 64\nfirmware = \"{}\"\n\n[[device]]\nname = \"testdev\"\nmodel = \"regfile\"\n\
             compatible = \"mmiolab,testdev\"\nmmio = [{{ base = 0xd0001000, size = 0x1000 }}]\n",
            s(&firmware(program))
        ),
    )?;
    Ok(machine)
}
