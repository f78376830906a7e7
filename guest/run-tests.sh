#!/usr/bin/env bash
# The Linux tier: runs the test machine with guest/run-machine.sh (directly or nested, as
# the host allows, saying which and why) and judges its console with `mmiolab test`.
set -euo pipefail

SCRIPT_NAME=run-tests.sh
GUEST=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$GUEST/lib/common.sh"

usage() {
	cat <<EOT
Usage: guest/run-tests.sh --vmm BIN [--config MACHINE_TOML] [--nested auto|always|never]
                          [--junit FILE] [--out DIR]
                          [--trace FILE] [--trace-filter DEVICE[.REGISTER]]... [--no-trace]
                          [--findings FILE] [--no-check]
                          [--fragment FILE]... [--initramfs-test SCRIPT]...
                          [--initramfs-file SRC:DST]...

Runs the machine (default guest/machines/default.toml) with guest/run-machine.sh, then
\`mmiolab test --from-log\`: one PASS/FAIL line per guest KTAP test, the host-side check
that the guest's /proc/iomem and /proc/ioports agree with \`mmiolab tree\`, and, for each
guest test that printed a "mmiolab-trace-order:" line, a check that the trace holds those
writes in that order, and, with the checker on (the default, docs/checker.md), a check
that every finding is allowed by the machine file ("register-check") and, for each guest
test that printed "mmiolab-agent-expect:" lines, that the findings about it are exactly
those ("host: findings of NAME").
  --junit FILE    JUnit XML report
  --trace FILE    where the trace goes (default: OUT/MACHINE-trace.jsonl)
  --trace-filter SPEC  trace only these (repeatable); default: apidev.ORDER_A and
                  apidev.ORDER_B, the registers the default machine's io_write_order test
                  writes, and those the checker's rule_* tests use, whose coverage
                  tests/linux.rs checks (a whole run makes ~44 000 VM exits, megabytes of
                  trace)
  --no-trace      no trace (a test that expects one then fails)
  --findings FILE where the checker's findings report goes (default:
                  OUT/MACHINE-findings.json)
  --no-check      run without the checker (the agent's tests then fail)
  (other options as guest/run-machine.sh --help)
Exit status: 0 only if every test passed.
EOT
}

VMM='' CONFIG=$GUEST/machines/default.toml JUNIT='' OUT=$(dirname "$GUEST")/target/guest
PASS_ON=() TRACE='' FILTERS=() NO_TRACE='' FINDINGS='' NO_CHECK=''
while [ $# -gt 0 ]; do
	case $1 in
	--vmm) VMM=$(realpath "$2"); shift 2 ;;
	--config) CONFIG=$(realpath "$2"); shift 2 ;;
	--junit) JUNIT=$(realpath -m "$2"); shift 2 ;;
	--out) OUT=$(realpath -m "$2"); shift 2 ;;
	--nested | --fragment | --initramfs-test | --initramfs-file) PASS_ON+=("$1" "$2"); shift 2 ;;
	--trace) TRACE=$(realpath -m "$2"); shift 2 ;;
	--trace-filter) FILTERS+=("$2"); shift 2 ;;
	--no-trace) NO_TRACE=1; shift ;;
	--findings) FINDINGS=$(realpath -m "$2"); shift 2 ;;
	--no-check) NO_CHECK=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
if [ -z "$VMM" ] || [ ! -x "$VMM" ]; then
	die "--vmm BIN is required and must be executable (see --help)"
fi

LOG=$OUT/$(basename "$CONFIG" .toml)-console.log
TRACE_ARGS=()
if [ -z "$NO_TRACE" ]; then
	TRACE=${TRACE:-$OUT/$(basename "$CONFIG" .toml)-trace.jsonl}
	[ "${#FILTERS[@]}" -gt 0 ] || FILTERS=(apidev.ORDER_A apidev.ORDER_B apidev.CFG32 apidev.SDATA
		apidev.ONCE apidev.GATE apidev.KICK apidev.IRQ apidev.IRQSET)
	TRACE_ARGS=(--trace "$TRACE")
	for f in "${FILTERS[@]}"; do
		TRACE_ARGS+=(--trace-filter "$f")
	done
	rm -f "$TRACE"
fi
if [ -z "$NO_CHECK" ]; then
	FINDINGS=${FINDINGS:-$OUT/$(basename "$CONFIG" .toml)-findings.json}
	TRACE_ARGS+=(--check-json "$FINDINGS")
else
	FINDINGS=''
fi
set +e
"$GUEST/run-machine.sh" --vmm "$VMM" --config "$CONFIG" --out "$OUT" --log "$LOG" "${PASS_ON[@]}" \
	"${TRACE_ARGS[@]}"
rc=$?
set -e
stage "the guest finished with status $rc; judging its console log"
JUNIT_ARGS=()
[ -z "$JUNIT" ] || JUNIT_ARGS=(--junit "$JUNIT")
[ -z "$TRACE" ] || JUNIT_ARGS+=(--trace "$TRACE")
if [ -n "$FINDINGS" ] && [ -f "$FINDINGS" ]; then
	JUNIT_ARGS+=(--check --findings "$FINDINGS")
elif [ -n "$FINDINGS" ]; then
	stage "no findings report from the run ($FINDINGS): the agent's checks will fail"
fi
exec "$VMM" test --config "$CONFIG" --from-log "$LOG" "${JUNIT_ARGS[@]}"
