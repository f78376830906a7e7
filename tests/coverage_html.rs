//! The HTML coverage report (`mmiolab coverage --html`, docs/checker.md) rendered by a real
//! headless browser: Debian's `chromium --headless --dump-dom` loads the page from a
//! `file://` URL, runs its JavaScript, and the DOM it prints must show the register rows,
//! the field cells' coverage classes, the summary the page's script computes from them, the
//! behaviours and findings beside their registers and the timeline rows the script builds.
//!
//! The inputs are committed, so no KVM is needed: the trace of firmware/asm/checks_more.S
//! under `--check` (tests/expected/checks_more.trace.jsonl) on
//! tests/machines/checks_more.toml, and, for the per-test view, the trace of
//! firmware/asm/agent.S under `--check` (tests/expected/agent.trace.jsonl, tests t1 and t2)
//! on tests/machines/checks.toml, opened on test t2 through the page's URL fragment. Without a browser the test fails when `CI` is set (`.ci/run` installs
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
    let per_test_browser = browser.clone();
    let trials = vec![
        Trial::test("html_report_renders_in_a_headless_browser", move || {
            html_report_renders_in_a_headless_browser(browser.as_deref())
        })
        .with_ignored_flag(missing),
        Trial::test("html_report_shows_the_chosen_test", move || {
            html_report_shows_the_chosen_test(per_test_browser.as_deref())
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

/// The DOM chromium prints for `page` (opened with URL fragment `fragment`, if not empty)
/// after its scripts ran.
fn dump_dom(browser: &Path, page: &Path, fragment: &str, profile: &Path) -> Result<String, Failed> {
    let url = format!("file://{}{fragment}", page.canonicalize()?.display());
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

/// The DOM of the HTML report of committed trace `trace` on machine `machine` (both under
/// tests/), opened with URL fragment `fragment`, rendered in a scratch directory `name`
/// (returned for the caller to remove).
fn report_dom(
    browser: Option<&Path>,
    name: &str,
    trace: &str,
    machine: &str,
    fragment: &str,
) -> Result<(String, PathBuf), Failed> {
    let browser = browser.ok_or(
        "no chromium on this CI machine: .ci/run installs Debian's `chromium`; install it (apt-get install chromium) or set MMIOLAB_CHROMIUM",
    )?;
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args(["coverage", "--trace"])
        .arg(format!("{ROOT}/tests/{trace}"))
        .arg("--config")
        .arg(format!("{ROOT}/tests/{machine}"))
        .arg("--html")
        .arg(&page)
        .output()?;
    if !out.status.success() {
        return Err(format!("mmiolab coverage failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let dom = dump_dom(browser, &page, fragment, &dir.join("profile"))?;
    Ok((dom, dir))
}

fn html_report_renders_in_a_headless_browser(browser: Option<&Path>) -> Result<(), Failed> {
    let (dom, dir) = report_dom(
        browser,
        "html",
        "expected/checks_more.trace.jsonl",
        "machines/checks_more.toml",
        "",
    )?;

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
    expect(&dom, "The whole trace: it has no test boundaries", "the page")?;
    if dom.contains("id=\"test-choice\"") {
        return Err("a test chooser for a trace without tests".into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The `<td>` of field `field` in register row `row`.
fn cell<'d>(row: &'d str, field: &str) -> Result<&'d str, Failed> {
    let at = row
        .find(&format!("data-field=\"{field}\""))
        .ok_or_else(|| format!("no cell for field {field}"))?;
    let start = row[..at].rfind("<td").ok_or("a cell without its tag")?;
    let end = row[at..].find("</td>").ok_or("an unclosed cell")?;
    Ok(&row[start..at + end])
}

/// agent.S's trace has tests t1 and t2: the page lists both with their counts, and opened
/// on `#test=t2` its script colours the register map with t2's coverage (CFG's fields read
/// and written, ID never touched, though t1 read it) and shows t2's lines only.
fn html_report_shows_the_chosen_test(browser: Option<&Path>) -> Result<(), Failed> {
    let whole = |dom: &str| -> Result<(), Failed> {
        expect(
            cell(row(dom, "ID")?, "ID")?,
            "class=\"field cov-read\"",
            "ID in the whole trace",
        )
    };
    let (dom, dir) = report_dom(
        browser,
        "html-tests",
        "expected/agent.trace.jsonl",
        "machines/checks.toml",
        "",
    )?;
    whole(&dom)?;
    expect(
        &dom,
        "<p class=\"note\" id=\"timeline-scope\">The whole trace (choose a test above).</p>",
        "the page",
    )?;
    expect(
        &dom,
        "<span id=\"timeline-count\">40 line(s) shown</span>",
        "the whole trace (its 44 lines but the 4 test lines)",
    )?;
    std::fs::remove_dir_all(&dir)?;
    let (dom, dir) = report_dom(
        browser,
        "html-tests",
        "expected/agent.trace.jsonl",
        "machines/checks.toml",
        "#test=t2",
    )?;
    // The tests' table: registers, fields and behaviours of chk and chk2 together.
    expect(
        &dom,
        "<tr class=\"test\" data-test=\"t1\"><th class=\"reg\">t1</th><td>2/16 (12.5%)</td><td>0/4 (0.0%)</td><td>0/12 (0.0%)</td></tr>",
        "the tests' table",
    )?;
    expect(
        &dom,
        "<tr class=\"test\" data-test=\"t2\"><th class=\"reg\">t2</th><td>2/16 (12.5%)</td><td>2/4 (50.0%)</td><td>0/12 (0.0%)</td></tr>",
        "the tests' table",
    )?;
    // chk with t2's coverage: the first device section's counts and cells.
    let chk = &dom[dom.find("data-device=\"chk\"").ok_or("no section for chk")?..];
    expect(
        chk,
        "<span class=\"js-totals\">registers 2/8 touched, fields 2/2 touched, behaviours 0/6 fired.</span>",
        "chk",
    )?;
    // chk's nine cells: CFG.EN and CFG.MODE read and written, TXDATA written, six never.
    expect(
        chk,
        "<span class=\"js-summary\">fields: 2 read and written, 0 only read, 1 only written, 6 never touched</span>",
        "chk",
    )?;
    let cfg = row(chk, "CFG")?;
    expect(cell(cfg, "EN")?, "class=\"field cov-both\"", "CFG.EN")?;
    expect(cell(cfg, "MODE")?, "class=\"field cov-both\"", "CFG.MODE")?;
    expect(cfg, "<td class=\"reads\">1</td><td class=\"writes\">1</td>", "CFG")?;
    let id = row(chk, "ID")?;
    expect(cell(id, "ID")?, "class=\"field cov-never\"", "ID in t2")?;
    expect(id, "<td class=\"reads\">0</td><td class=\"writes\">0</td>", "ID in t2")?;
    expect(
        cell(row(chk, "TXDATA")?, "TXDATA")?,
        "class=\"field cov-written\"",
        "TXDATA",
    )?;
    // t2's lines: seq 23 to 39, the agent port's accesses, chk's and the two leaks.
    expect(
        &dom,
        "<span id=\"timeline-count\">17 line(s) shown</span>",
        "the timeline",
    )?;
    let seqs: Vec<u64> = dom
        .match_indices("<tr class=\"kind-")
        .filter_map(|(at, _)| {
            let rest = &dom[at..];
            let start = rest.find("<td>")? + 4;
            rest[start..start + rest[start..].find('<')?].parse().ok()
        })
        .collect();
    if seqs != (23..=39).collect::<Vec<u64>>() {
        return Err(format!("the timeline of t2 shows seq {seqs:?}").into());
    }
    expect(
        &dom,
        "<tr class=\"kind-finding\"><td>35</td><td>8463614</td><td>0</td><td>finding</td><td>leaked-claim</td><td>chk</td><td></td><td></td></tr>",
        "the timeline",
    )?;
    expect(
        &dom,
        "<p class=\"note\" id=\"timeline-scope\">The lines of test t2 (choose another above).</p>",
        "the page",
    )?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
