//! The HTML coverage report (`mmiolab coverage --html`, docs/checker.md) rendered by a real
//! headless browser: Debian's `chromium --headless --dump-dom` loads the page from a
//! `file://` URL, runs its JavaScript, and the DOM it prints must show the register rows,
//! the field cells' coverage classes, the summary the page's script computes from them, the
//! behaviours and findings beside their registers and the timeline rows the script builds.
//!
//! The input is committed: the trace of firmware/asm/checks_more.S under `--check`
//! (tests/expected/checks_more.trace.jsonl) on tests/machines/checks_more.toml, so no KVM
//! is needed. Without a browser the test fails when `CI` is set (`.ci/run` installs
//! chromium), and is reported as ignored, with the reason, elsewhere; never passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// A browser still running after this long is hung: killed, and the test fails.
const GUARD: Duration = Duration::from_secs(120);

fn main() {
    let args = Arguments::from_args();
    let browser = find_browser();
    let missing = browser.is_none() && std::env::var_os("CI").is_none();
    if missing {
        eprintln!("coverage_html: ignored: no chromium found (install Debian's `chromium`, or set MMIOLAB_CHROMIUM)");
    }
    let trials = vec![
        Trial::test("html_report_renders_in_a_headless_browser", move || {
            html_report_renders_in_a_headless_browser(browser.as_deref())
        })
        .with_ignored_flag(missing),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// `MMIOLAB_CHROMIUM`, else the first of `chromium`, `chromium-browser` that runs.
fn find_browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MMIOLAB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The DOM chromium prints for `page` after its scripts ran.
fn dump_dom(browser: &Path, page: &Path, profile: &Path) -> Result<String, Failed> {
    let url = format!("file://{}", page.canonicalize()?.display());
    let out_path = profile.with_extension("dom");
    let out = std::fs::File::create(&out_path)?;
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", browser.display()))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} still running after {GUARD:?}: killed", browser.display()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        return Err(format!("{} --dump-dom {url} failed: {status}", browser.display()).into());
    }
    Ok(std::fs::read_to_string(&out_path)?)
}

/// The `<tr>` of register `name` in the DOM.
fn row<'d>(dom: &'d str, name: &str) -> Result<&'d str, Failed> {
    let start = dom
        .find(&format!("data-register=\"{name}\""))
        .ok_or_else(|| format!("no row for register {name}"))?;
    let end = dom[start..].find("</tr>").ok_or("an unclosed row")?;
    Ok(&dom[start..start + end])
}

fn expect(haystack: &str, needle: &str, what: &str) -> Result<(), Failed> {
    if haystack.contains(needle) {
        Ok(())
    } else {
        Err(format!("{what} lacks `{needle}`:\n{haystack}").into())
    }
}

fn html_report_renders_in_a_headless_browser(browser: Option<&Path>) -> Result<(), Failed> {
    let browser = browser.ok_or(
        "no chromium on this CI machine: .ci/run installs Debian's `chromium`; install it (apt-get install chromium) or set MMIOLAB_CHROMIUM",
    )?;
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-html", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args(["coverage", "--trace"])
        .arg(format!("{ROOT}/tests/expected/checks_more.trace.jsonl"))
        .arg("--config")
        .arg(format!("{ROOT}/tests/machines/checks_more.toml"))
        .arg("--html")
        .arg(&page)
        .output()?;
    if !out.status.success() {
        return Err(format!("mmiolab coverage failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let dom = dump_dom(browser, &page, &dir.join("profile"))?;

    // Register rows, fields as cells sized by their bits, coloured by coverage.
    for reg in ["CTRL", "DATA", "STATUS", "KICK", "WIN"] {
        row(&dom, reg)?;
    }
    let ctrl = row(&dom, "CTRL")?;
    expect(
        ctrl,
        "class=\"field cov-written\" data-cov=\"written\" data-field=\"EN\" colspan=\"1\"",
        "CTRL",
    )?;
    expect(ctrl, "data-field=\"IE\" colspan=\"1\"", "CTRL")?;
    expect(ctrl, "class=\"reserved\" colspan=\"30\"", "CTRL")?;
    let status = row(&dom, "STATUS")?;
    expect(
        status,
        "class=\"field cov-both\" data-cov=\"both\" data-field=\"DONE\"",
        "STATUS",
    )?;
    expect(status, "w1c STATUS.DONE ×1", "STATUS")?;
    let win = row(&dom, "WIN")?;
    expect(
        win,
        "class=\"field cov-read\" data-cov=\"read\" data-field=\"WIN\" colspan=\"64\"",
        "WIN",
    )?;
    expect(win, "finding unaligned at 0xd0000012 ×1", "WIN")?;
    expect(row(&dom, "KICK")?, "effect kick ×1", "KICK")?;
    expect(
        row(&dom, "DATA")?,
        "finding order (enable_before_data) at 0xd0000004 ×1",
        "DATA",
    )?;
    // Device-wide: the interrupt and the finding that concerns no register.
    expect(&dom, "irq done raised ×1", "the page")?;
    expect(&dom, "finding irq-stuck (done) at 0xd0000000 ×1", "the page")?;
    // Computed by the page's script from the cells' classes.
    expect(
        &dom,
        "<span class=\"js-summary\">fields: 1 read and written, 1 only read, 4 only written, 0 never touched</span>",
        "the page",
    )?;
    // The timeline, built by the script: every access, event and finding line of the trace.
    expect(&dom, "<span id=\"timeline-count\">17 line(s) shown</span>", "the page")?;
    let rows = dom.matches("<tr class=\"kind-").count();
    if rows != 17 {
        return Err(format!("{rows} timeline rows, expected 17").into());
    }
    expect(
        &dom,
        "<tr class=\"kind-finding\"><td>1</td><td>28840326</td><td>0</td><td>finding</td><td>order (enable_before_data)</td><td>chk3</td><td>DATA</td><td></td></tr>",
        "the timeline",
    )?;
    expect(
        &dom,
        "<tr class=\"kind-access\"><td>5</td><td>28923860</td><td>0</td><td>access</td><td>read 0xd0000012 w4</td><td>chk3</td><td>WIN</td><td>0x0</td></tr>",
        "the timeline",
    )?;
    expect(&dom, "The whole trace: it has no per-test markers", "the page")?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
