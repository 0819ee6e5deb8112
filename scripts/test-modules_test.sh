#!/usr/bin/env bash
# Tests scripts/test-modules with a stand-in for go that records how it was
# called: the VET switch, the compile-only pass (not for the last module of
# a lane), and the exit status when a module fails. Run by make test; takes
# well under a second.
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/a" "$tmp/b" "$tmp/c"
cat >"$tmp/go" <<'EOF'
#!/usr/bin/env bash
echo "$(basename "$PWD"): $*" >>"$LOG"
[ "$(basename "$PWD")" != "${FAIL_IN:-}" ]
EOF
chmod +x "$tmp/go"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run VET FAIL_IN lanes...: runs the script in $tmp, sets out, log and rc.
run() {
	local vet=$1 failin=$2
	shift 2
	: >"$tmp/log"
	out=$(cd "$tmp" && env LOG="$tmp/log" FAIL_IN="$failin" GO="$tmp/go" RACE=-race ${vet:+VET=$vet} "$here/test-modules" "$@" 2>&1)
	rc=$?
	log=$(LC_ALL=C sort "$tmp/log") # byte order: a UTF-8 locale may ignore the punctuation
}

run "" "" a "b c"
[ $rc = 0 ] || fail "default: exit $rc: $out"
want="a: test -race -vet=off -count=1 -parallel=4 ./...
b: test -race -vet=off -count=1 -exec true ./...
b: test -race -vet=off -count=1 -parallel=4 ./...
c: test -race -vet=off -count=1 -parallel=4 ./..."
[ "$log" = "$want" ] || fail "default: go was called as
$log
want
$want"

run on "" a
[ $rc = 0 ] || fail "VET=on: exit $rc: $out"
[ "$log" = "a: test -race -count=1 -parallel=4 ./..." ] || fail "VET=on: go was called as: $log"

run off "" a
[ "$log" = "a: test -race -vet=off -count=1 -parallel=4 ./..." ] || fail "VET=off: go was called as: $log"

# PARALLEL sets go test -parallel; anything but a whole number above 0 is refused.
: >"$tmp/log"
out=$(cd "$tmp" && env LOG="$tmp/log" GO="$tmp/go" RACE=-race PARALLEL=8 "$here/test-modules" a 2>&1)
[ "$(cat "$tmp/log")" = "a: test -race -vet=off -count=1 -parallel=8 ./..." ] || fail "PARALLEL=8: go was called as: $(cat "$tmp/log")"
: >"$tmp/log"
out=$(cd "$tmp" && env LOG="$tmp/log" GO="$tmp/go" RACE=-race PARALLEL=x "$here/test-modules" a 2>&1)
rc=$?
[ $rc = 2 ] && [ ! -s "$tmp/log" ] || fail "PARALLEL=x: exit $rc, go called: $(cat "$tmp/log")"

run bad "" a
[ $rc = 2 ] || fail "VET=bad: exit $rc, want 2"
[ -z "$log" ] || fail "VET=bad: go was called: $log"
case $out in *"VET=bad: want on or off"*) ;; *) fail "VET=bad: message: $out" ;; esac

run "" c a "b c"
[ $rc = 1 ] || fail "a failing module: exit $rc, want 1: $out"
case $out in *"== c: exit 1"*) ;; *) fail "a failing module is not named: $out" ;; esac
case $out in *"== a: exit 0"*) ;; *) fail "the other lane's result is missing: $out" ;; esac

if [ $failures -ne 0 ]; then
	echo "scripts/test-modules_test.sh: $failures failure(s)" >&2
	exit 1
fi
echo "scripts/test-modules_test.sh: ok"
