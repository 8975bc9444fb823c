package acceptance_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeAddr is the address the README's examples talk to; the suite points them at its own server.
const readmeAddr = "127.0.0.1:8080"

// apiBlocks are README.md's shell code blocks that talk to the API, in order: every ```sh block that runs
// curl against readmeAddr. They are the README's contract with its readers, so the suite runs each of them verbatim.
func apiBlocks(readme string) []string {
	var blocks []string
	fence := regexp.MustCompile("(?ms)^```sh\n(.*?)^```")
	for _, m := range fence.FindAllStringSubmatch(readme, -1) {
		if strings.Contains(m[1], "curl ") && strings.Contains(m[1], readmeAddr) {
			blocks = append(blocks, m[1])
		}
	}
	return blocks
}

// call is one curl the README ran: its arguments, and what the server answered.
type call struct {
	n      int
	args   []string
	status int
	body   []byte
}

// recorder wraps curl in a shell function: the command runs unchanged (its output still goes where the
// README sends it), and each call's arguments, status and body are kept for the checks.
const recorder = `
curl() {
	local n; n=$(( $(cat "$CALLS/count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$CALLS/count"
	printf '%s\0' "$@" > "$CALLS/$n.args"
	local rc=0
	command curl -sS -o "$CALLS/$n.body" -w '%{http_code}' "$@" > "$CALLS/$n.status" || rc=$?
	cat "$CALLS/$n.body" 2>/dev/null || true
	[ "$rc" = 0 ] || { echo "curl #$n failed ($rc): curl $*" >&2; return "$rc"; }
	local code; code=$(cat "$CALLS/$n.status")
	[ "$code" -lt 400 ] || { echo "curl #$n answered $code: curl $*" >&2; return 1; }
}
`

// documentedBlocks are the API blocks of README.md, then of each docs/*.md page in name order: the pages
// continue the README quickstart's shell.
func documentedBlocks(t *testing.T, root string) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for i, p := range append([]string{filepath.Join(root, "README.md")}, pages...) {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		found := apiBlocks(string(text))
		if i == 0 && len(found) == 0 {
			t.Fatal("README.md has no shell block that talks to " + readmeAddr)
		}
		blocks = append(blocks, found...)
	}
	return blocks
}

// runREADME runs the documented API blocks in one shell, in a scratch directory where docs/ is the
// checkout's (the examples' paths are relative to the repository root), against addr; ./cachet there is bin
// on databaseURL.
func runREADME(t *testing.T, addr, bin, databaseURL string) []call {
	t.Helper()
	root := repoRoot(t)
	blocks := documentedBlocks(t, root)
	work, calls := t.TempDir(), t.TempDir()
	if err := os.Symlink(filepath.Join(root, "docs"), filepath.Join(work, "docs")); err != nil {
		t.Fatal(err)
	}
	// ./cachet (keys create) is the suite's binary on the server's database.
	shim := fmt.Sprintf("#!/bin/sh\nCACHET_DATABASE_URL=%q exec %q \"$@\"\n", databaseURL, bin)
	if err := os.WriteFile(filepath.Join(work, "cachet"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n" + recorder)
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '### README API block %d' >&2\n", i+1)
		script.WriteString(strings.ReplaceAll(b, readmeAddr, addr))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CALLS="+calls)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's API examples failed: %v\n%s", err, tail(out.String(), 4000))
	}
	recorded := readCalls(t, calls)
	t.Logf("%d documented blocks ran %d API calls", len(blocks), len(recorded))
	return recorded
}

func readCalls(t *testing.T, dir string) []call {
	t.Helper()
	count, err := os.ReadFile(filepath.Join(dir, "count"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(count)))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]call, n)
	for i := range out {
		c := call{n: i + 1}
		base := filepath.Join(dir, strconv.Itoa(i+1))
		args, err := os.ReadFile(base + ".args")
		if err != nil {
			t.Fatal(err)
		}
		c.args = strings.Split(strings.TrimSuffix(string(args), "\x00"), "\x00")
		status, err := os.ReadFile(base + ".status")
		if err != nil {
			t.Fatal(err)
		}
		if c.status, err = strconv.Atoi(strings.TrimSpace(string(status))); err != nil {
			t.Fatalf("call %d: status %q", c.n, status)
		}
		if c.body, err = os.ReadFile(base + ".body"); err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// method is the call's HTTP method as curl sends it.
func (c call) method() string {
	method := "GET"
	for i, a := range c.args {
		switch {
		case a == "-X" && i+1 < len(c.args):
			return c.args[i+1]
		case a == "--json" || a == "-d" || a == "--data" || a == "-F" || a == "--form":
			method = "POST"
		}
	}
	return method
}

// path is the URL path the call asked for, without the query.
func (c call) path() string {
	for _, a := range c.args {
		if i := strings.Index(a, "127.0.0.1:"); i >= 0 {
			rest := a[i:]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				p := rest[j:]
				if k := strings.IndexByte(p, '?'); k >= 0 {
					p = p[:k]
				}
				return p
			}
			return "/"
		}
	}
	return ""
}

// flag returns the values given to a curl option (--json, -F …).
func (c call) flag(name string) []string {
	var out []string
	for i, a := range c.args {
		if a == name && i+1 < len(c.args) {
			out = append(out, c.args[i+1])
		}
	}
	return out
}

func (c call) String() string {
	return fmt.Sprintf("#%d %s %s → %d", c.n, c.method(), c.path(), c.status)
}
