#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short time each:
#   scripts/fuzz-all.sh [FUZZTIME] [PACKAGE-PATTERN...]
# FUZZTIME defaults to 10s, the packages to ./... . FUZZ_PARALLEL sets the
# number of fuzzing workers per target (go test -parallel; default: one
# per CPU).
#
# Only a finding (a failing input, or a seed that fails) or a package that
# does not build fails the run; every target still runs, and the end lists
# each failed target with the command that reproduces it. An engine hiccup
# without a failing input is retried, twice at most: Go's coordinator
# before 1.27 can end a -fuzztime run with a bare "context deadline
# exceeded" when its workers are starved at the deadline (golang/go#75804);
# three in a row are reported, as they could also be an input that hangs.
set -uo pipefail
cd "$(dirname "$0")/.."

t=${1:-10s}
shift || true
patterns=("$@")
[ ${#patterns[@]} -gt 0 ] || patterns=(./...)
parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-parallel "$FUZZ_PARALLEL")
# FUZZ_MINIMIZE bounds how long the engine shrinks an input (go test
# -fuzzminimizetime; default 100 calls). Go's own default, 60 s, is spent
# on every input that finds new coverage, before any more fuzzing: a
# target whose calls take milliseconds (a temporary directory or a server
# round trip per input) then spent a whole short run minimizing (a 75 s
# run of devnode's FuzzParseRules made 4,848 calls; without minimizing,
# 268,000 in 30 s). A finding is still written, less shrunk; rerun its
# target with FUZZ_MINIMIZE=60s to shrink it.
minimize=${FUZZ_MINIMIZE:-100x}

logs=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-all.XXXXXX")
trap 'rm -rf "$logs"' EXIT
failed=()
ran=0

# targets prints the fuzz targets (functions taking *testing.F) declared in
# the test files of directory $1, one per line.
targets() {
	local files=("$1"/*_test.go)
	[ -e "${files[0]}" ] || return 0
	grep -ho '^func Fuzz[A-Za-z0-9_]*([A-Za-z_][A-Za-z0-9_]* \*testing\.F)' "${files[@]}" |
		sed 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/' | sort
}

# classify names what a failed run's log shows: a finding (a failing input
# was written, or a seed fails), a build failure, an engine hiccup (a
# known flake of Go's fuzzing engine under load) or a broken target.
classify() {
	if grep -qE 'Failing input written to|failure while testing seed corpus entry|^\s*--- FAIL: Fuzz[A-Za-z0-9_]*/' "$1"; then
		echo finding
	elif grep -qE '\[(build|setup) failed\]|^vet: ' "$1"; then
		echo build
	elif grep -qE 'context deadline exceeded|fuzzing process hung or terminated unexpectedly|worker (exited|terminated)|signal: killed' "$1"; then
		echo engine
	else
		echo broken
	fi
}

pkgs=$(go list -f '{{.ImportPath}} {{.Dir}}' "${patterns[@]}") || { echo "fuzz: go list failed"; exit 1; }
while read -r pkg dir; do
	all=$(targets "$dir")
	[ -n "$all" ] || continue
	# Two declarations of one name (package x and x_test) make -fuzz refuse
	# to choose: say so instead of failing obscurely.
	if dups=$(uniq -d <<<"$all") && [ -n "$dups" ]; then
		for f in $dups; do
			echo "fuzz: FAIL $pkg $f: declared twice in the package's tests; -fuzz cannot pick one"
			failed+=("$pkg $f (declared twice)")
		done
	fi
	for f in $(uniq -u <<<"$all"); do
		ran=$((ran + 1))
		log="$logs/$(tr / _ <<<"$pkg").$f.log"
		echo "fuzz: $pkg $f ($t)"
		kind=ok
		for attempt in 1 2 3; do
			# The name is anchored: -fuzz takes a regexp, and FuzzParse
			# would otherwise also match FuzzParseRecords.
			if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg" >"$log" 2>&1; then
				kind=ok
				break
			fi
			kind=$(classify "$log")
			[ "$kind" = engine ] && [ $attempt -lt 3 ] || break
			echo "fuzz: $pkg $f: the engine stopped without a failing input ($(grep -m1 -iE 'error|hung|terminated|deadline' "$log" || tail -n1 "$log")); retrying"
		done
		case $kind in
		ok) continue ;;
		finding)
			input=$(grep -o 'testdata/fuzz/[^ ]*' "$log" | head -n1)
			echo "fuzz: FAIL $pkg $f: a finding"
			cat "$log"
			if [ -n "$input" ]; then
				echo "fuzz: failing input: $dir/$input"
				failed+=("$pkg $f: go test -run '^$f/${input##*/}\$' $pkg")
			else
				failed+=("$pkg $f: go test -run '^$f\$' $pkg (a seed fails: $(grep -o -m1 "seed corpus entry: .*" "$log" | cut -d" " -f4))")
			fi
			;;
		build)
			echo "fuzz: FAIL $pkg $f: the package's tests do not build"
			cat "$log"
			failed+=("$pkg $f: does not build")
			;;
		engine)
			echo "fuzz: FAIL $pkg $f: the engine failed three times without a failing input"
			cat "$log"
			failed+=("$pkg $f: engine failure, not a finding: go test -run '^\$' -fuzz '^$f\$' -fuzztime $t $pkg")
			;;
		broken)
			echo "fuzz: FAIL $pkg $f: the target itself is broken (no failing input, no build error)"
			cat "$log"
			failed+=("$pkg $f: broken target: go test -run '^\$' -fuzz '^$f\$' -fuzztime $t $pkg")
			;;
		esac
	done
done <<<"$pkgs"

if [ ${#failed[@]} -gt 0 ]; then
	echo
	echo "fuzz: ${#failed[@]} of $ran targets failed:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: all $ran targets ran clean"
