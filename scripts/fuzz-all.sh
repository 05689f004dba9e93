#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short time each.
set -euo pipefail
t=${1:-10s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $f ($t)"
    if ! go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >/tmp/fuzz.log 2>&1; then
      # Go's fuzzing engine sometimes ends a run with "context deadline
      # exceeded" on a busy machine without any failing input: retry once.
      if grep -q "context deadline exceeded" /tmp/fuzz.log && ! grep -q "Failing input" /tmp/fuzz.log; then
        echo "fuzz: $f: engine time-out without a failing input; retrying once"
        go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >/tmp/fuzz.log 2>&1 || { cat /tmp/fuzz.log; exit 1; }
      else
        cat /tmp/fuzz.log; exit 1
      fi
    fi
  done
done
echo "fuzz: all targets ran clean"
