#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for FUZZTIME each: a count of inputs ("20000x", the
# default, what `make test` runs) or a duration ("5m", what `make fuzz` runs). New inputs that fail are
# written under the package's testdata/fuzz/ and replayed by go test.
#
# Go 1.26's fuzz coordinator can report "context deadline exceeded" when a duration runs out while a
# worker is mid-input (go.dev/issue/75804, fixed in Go 1.27). Such a run wrote no failing input, so
# it is reported as stopped at the limit, not as a failure; any run that writes an input fails.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
fuzztime=${FUZZTIME:-20000x}
fail=0
inputs() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	corpus=$pkg/testdata/fuzz/$name
	before=$(inputs "$corpus")
	say "fuzz $name ($pkg, $fuzztime)"
	out=$(mktemp)
	if in_env go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" = 0 ]; then
		:
	elif [ "$(inputs "$corpus")" = "$before" ] && grep -qx '    context deadline exceeded' "$out"; then
		echo "fuzz: $name stopped at its time limit with no failing input (go.dev/issue/75804)"
	else
		fail=1
	fi
	rm -f "$out"
done < <(grep -rhoE --include='*_test.go' -H '^func (Fuzz[A-Za-z0-9_]+)\(' . | sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]+)\($#:\1#' | sort -u)
exit $fail
