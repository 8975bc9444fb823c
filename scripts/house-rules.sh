#!/usr/bin/env bash
# House rules no linter checks: outside cmd/ and tests, no gotch Must*, log.Fatal or panic (a shape bug
# must not kill the server); model/ is the only importer of gotch.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
fail=0
bad=$(grep -rnE '\.Must[A-Z][A-Za-z0-9]*\(|log\.Fatal|[^.a-zA-Z_]panic\(' --include='*.go' . | grep -v '_test\.go:' | grep -v '^\./cmd/' || true)
if [ -n "$bad" ]; then echo "house rule: no Must*/log.Fatal/panic outside cmd/ and tests:"; echo "$bad"; fail=1; fi
bad=$(grep -rln '"github.com/sugarme/gotch' --include='*.go' . | grep -v '^\./model/' || true)
if [ -n "$bad" ]; then echo "house rule: only model/ imports gotch:"; echo "$bad"; fail=1; fi
bad=$(gofmt -l $(git ls-files '*.go' | grep -v '^toolchain/') 2>&1 || true)
if [ -n "$bad" ]; then echo "house rule: gofmt -w these files:"; echo "$bad"; fail=1; fi
exit $fail
