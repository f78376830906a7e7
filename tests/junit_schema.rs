//! `mmiolab test --junit`'s report validated against the schema of the format quick-junit
//! targets (the Jenkins JUnit format): the Jenkins xUnit plugin's `junit-10.xsd`, as PyPI's
//! pytest source distribution ships it (testing/example_scripts/junit-10.xsd, pytest 9.2.0),
//! checked with xmllint (Debian's libxml2-utils). `.ci/run` installs both, the schema under
//! $MMIOLAB_TOOLS (default ~/.cache/mmiolab/tools). Without them the test is reported as
//! ignored, with the reason, and fails when `CI` is set; never passed.
//!
//! The report is that of the real KUnit console in tests/data/kunit (passing, failing and
//! skipped cases, parameterised ones, diagnostics) judged with `--from-log`, with a trace
//! so that a failed case carries its trace tail.

use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

#[path = "support/jenkins_schema.rs"]
mod jenkins_schema;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn main() {
    let args = Arguments::from_args();
    let missing = jenkins_schema::missing();
    let ignored = missing.is_some() && std::env::var_os("CI").is_none();
    if let (Some(reason), true) = (&missing, ignored) {
        eprintln!("the JUnit schema test is ignored: {reason}");
    }
    let trials = vec![
        Trial::test(
            "the_junit_report_is_valid_against_the_jenkins_schema",
            move || match &missing {
                Some(reason) => Err(format!("on CI: {reason}").into()),
                None => the_junit_report_is_valid_against_the_jenkins_schema(),
            },
        )
        .with_ignored_flag(ignored),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn the_junit_report_is_valid_against_the_jenkins_schema() -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("mmiolab-junit-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let trace = dir.join("trace.jsonl");
    let junit = dir.join("junit.xml");
    // The failing KUnit suite's part of the trace, with characters XML must escape.
    std::fs::write(
        &trace,
        concat!(
            r#"{"v":2,"seq":0,"t_ns":1,"kind":"test","test":"mmiolab_failing","phase":"begin"}"#,
            "\n",
            r#"{"v":2,"seq":1,"t_ns":2,"kind":"access","device":"a<&>\"b","op":"read","value":"0x1"}"#,
            "\n",
            r#"{"v":2,"seq":2,"t_ns":3,"kind":"test","test":"mmiolab_failing","phase":"end"}"#,
            "\n"
        ),
    )?;
    let out = Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args(["test", "-c", &format!("{ROOT}/guest/machines/default.toml")])
        .args(["--from-log", &format!("{ROOT}/tests/data/kunit/console.log")])
        .arg("--trace")
        .arg(&trace)
        .arg("--junit")
        .arg(&junit)
        .output()?;
    // the console has a failing suite
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let xml = std::fs::read_to_string(&junit)?;
    // the document holds every kind of element the report writes
    for element in [
        "<testsuite ",
        "<testcase ",
        "<failure ",
        "<skipped ",
        "<system-out>",
        "<system-err>",
    ] {
        assert!(xml.contains(element), "no {element} in\n{xml}");
    }
    assert!(xml.contains("a&lt;&amp;&gt;"), "the trace tail, escaped:\n{xml}");
    let (valid, said) = jenkins_schema::validate(&junit)?;
    assert!(valid, "xmllint:\n{said}");
    // The validator does validate: quick-junit's own root tag (with the `skipped` total the
    // schema does not allow) is refused, and so is a case without its name.
    for (what, broken) in [
        (
            "skipped on <testsuites>",
            xml.replacen("<testsuites ", "<testsuites skipped=\"7\" ", 1),
        ),
        (
            "a case without a name",
            xml.replacen("<testcase name=", "<testcase label=", 1),
        ),
    ] {
        let file = dir.join("broken.xml");
        std::fs::write(&file, broken)?;
        let (valid, said) = jenkins_schema::validate(&file)?;
        assert!(!valid, "{what} passed xmllint: {said}");
        assert!(said.contains("fails to validate"), "{what}: {said}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
