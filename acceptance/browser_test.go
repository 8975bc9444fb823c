package acceptance_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// screenshots is where the console test writes its pictures; the README and docs use the ones committed
// under docs/images/console (refresh them with -args -screenshots ../docs/images/console).
var screenshots = flag.String("screenshots", "", "directory for the console test's screenshots (default: a temporary one)")

// chromiumPath is Debian's Chromium (provisioning installs it), or CACHET_TEST_CHROMIUM.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CACHET_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/lib/chromium/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("no Chromium: `make toolchain` installs Debian's chromium (or set CACHET_TEST_CHROMIUM)")
	return ""
}

// browserSession is a headless Chromium tab that records what a user would notice going wrong: errors in
// the console log, uncaught exceptions and server errors.
type browserSession struct {
	ctx       context.Context
	downloads string // where downloads land

	mu        sync.Mutex
	problems  []string
	expected  map[string]int // refusals a test provokes on purpose: Chromium logs every 4xx, by URL path
	responses int
	done      map[string]bool // finished downloads, by guid
}

func newBrowser(t *testing.T, width, height int64) *browserSession {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)),
		// The suite runs as root in a chroot: Chromium's sandbox needs namespaces it may not create there.
		chromedp.NoSandbox, chromedp.WindowSize(int(width), int(height)),
		chromedp.Flag("lang", "en-US"), chromedp.Flag("disable-features", "Translate"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browserSession{ctx: ctx, downloads: t.TempDir(), done: map[string]bool{}, expected: map[string]int{}}
	if err := chromedp.Listen(ctx, b.observe); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	if err := chromedp.ListenBrowser(ctx, b.observe); err != nil {
		t.Fatal(err)
	}
	events := true
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.downloads, EventsEnabled: &events}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browserSession) observe(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.problems = append(b.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		desc := d.Text
		if d.Exception != nil {
			desc += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("uncaught at %s:%d: %s", d.URL, d.LineNumber, desc))
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError && !b.provoked(ev.Entry) {
			b.problems = append(b.problems, fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventResponseReceived:
		b.responses++
		if ev.Response.Status >= 500 {
			b.problems = append(b.problems, fmt.Sprintf("%d from %s", ev.Response.Status, ev.Response.URL))
		}
	case *browser.EventDownloadProgress:
		if ev.State == browser.DownloadProgressStateCompleted {
			b.done[ev.GUID] = true
		}
	}
}

// do runs steps with a deadline, failing the test with what the page showed when they fail.
func (b *browserSession) do(t *testing.T, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
		t.Fatalf("%s: %v\nthe page shows:\n%s\nbrowser problems: %v", what, err, tail(text, 3000), b.problemList())
	}
}

// get runs one action that answers a value.
func get[T any](t *testing.T, b *browserSession, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// expectRefusal says that the next request to path answers 4xx on purpose (a user's mistake the page must
// show): Chromium's log line for it is not a problem.
func (b *browserSession) expectRefusal(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected[path]++
}

// provoked consumes an expected refusal matching a network log entry (b.mu held).
func (b *browserSession) provoked(e *cdplog.Entry) bool {
	if e.Source != cdplog.EntrySourceNetwork || !strings.Contains(e.Text, "status of 4") {
		return false
	}
	u, err := url.Parse(e.URL)
	if err != nil || b.expected[u.Path] == 0 {
		return false
	}
	b.expected[u.Path]--
	return true
}

func (b *browserSession) problemList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// waitDownloads waits until n downloads have finished and returns their files.
func (b *browserSession) waitDownloads(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b.mu.Lock()
		var files []string
		for guid := range b.done {
			files = append(files, filepath.Join(b.downloads, guid))
		}
		b.mu.Unlock()
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d downloads finished after %v", len(files), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// choose picks a <select>'s option by value as a user's choice does (the change event fires).
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	return jsTrue(fmt.Sprintf(`(() => { const el = document.querySelector(%s);
		if (!el || ![...el.options].some(o => o.value === %s)) return false;
		el.value = %s; el.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, jsString(sel), jsString(value), jsString(value)),
		fmt.Sprintf("%s has no option %q", sel, value))
}

// setValue sets an input's value as typing would end (input and change fire).
func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return jsTrue(fmt.Sprintf(`(() => { const el = document.querySelector(%s); if (!el) return false; el.value = %s;
		el.dispatchEvent(new Event("input", {bubbles: true})); el.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`,
		jsString(sel), jsString(value)), "no "+sel)
}

// jsTrue runs a script that answers whether it could act, failing with refusal when it could not.
func jsTrue(js, refusal string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		ok, err := chromedp.Evaluate[bool](js)(ctx, tg)
		if err == nil && !ok {
			err = errors.New(refusal)
		}
		return err
	})
}

// waitCount waits until sel matches at least n elements.
func waitCount(sel string, n int) chromedp.Action[chromedp.Void] {
	return waitFor(fmt.Sprintf(`document.querySelectorAll(%s).length >= %d`, jsString(sel), n))
}

// waitText waits until sel's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return waitFor(fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? "").includes(%s)`, jsString(sel), jsString(want)))
}

// waitLoaded waits until every image sel matches has loaded.
func waitLoaded(sel string) chromedp.Action[chromedp.Void] {
	return waitFor(fmt.Sprintf(`[...document.querySelectorAll(%s)].every(i => i.complete && i.naturalWidth > 0)`, jsString(sel)))
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(condition string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](condition, chromedp.WithPollingInterval(100*time.Millisecond))(ctx, tg)
		return err
	})
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// screenshot saves the whole page as name.png under the screenshot directory.
func (b *browserSession) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	if *screenshots != "" { // pictures for the docs: without a passing notice over them
		b.do(t, "the notice fades", 15*time.Second, waitFor(`!document.querySelector("#toast.show")`))
	}
	png := get(t, b, "screenshot "+name, chromedp.FullScreenshot(100)) // 100: PNG
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
