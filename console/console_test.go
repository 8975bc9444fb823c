package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/console"
)

func get(t *testing.T, c *console.Console, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

// Every file the page and its modules name is served, with the security policy; nothing else is.
func TestConsoleServesItsFiles(t *testing.T) {
	c, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	page := get(t, c, "/")
	if page.Code != http.StatusOK || !strings.Contains(page.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET / = %d, CSP %q", page.Code, page.Header().Get("Content-Security-Policy"))
	}
	named := regexp.MustCompile(`(?:src|href)="(/console/[^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1)
	imports := regexp.MustCompile(`from '\./([\w-]+\.js)'`)
	seen := map[string]bool{}
	for len(named) > 0 {
		path := named[0][1]
		named = named[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		w := get(t, c, path)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s = %d", path, w.Code)
			continue
		}
		if strings.HasSuffix(path, ".js") {
			if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
				t.Errorf("%s is served as %q: browsers refuse modules that are not JavaScript", path, ct)
			}
			for _, m := range imports.FindAllStringSubmatch(w.Body.String(), -1) {
				named = append(named, []string{"", "/console/js/" + m[1]})
			}
		}
	}
	if len(seen) < 3 {
		t.Errorf("the page names %d files; want its styles and modules", len(seen))
	}
	for _, path := range []string{"/console/", "/console/missing.js", "/console/../go.mod", "/reports/base/../../go.mod", "/reports/nothing/x.png", "/elsewhere"} {
		if w := get(t, c, path); w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404", path, w.Code)
		}
	}
}

// The reports index lists every shipped report with a title and its plots, rendered without inline styles
// (the policy would refuse them).
func TestReportsIndex(t *testing.T) {
	c, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	var idx console.ReportIndex
	if err := json.Unmarshal(get(t, c, "/reports/index.json").Body.Bytes(), &idx); err != nil {
		t.Fatal(err)
	}
	plots := 0
	for _, r := range idx.Reports {
		t.Run(r.ID, func(t *testing.T) {
			if r.Title == "" || r.Title == r.ID || !strings.Contains(r.HTML, "<table>") {
				t.Errorf("report %s: title %q, %d bytes of HTML without a table", r.ID, r.Title, len(r.HTML))
			}
			if strings.Contains(r.HTML, "style=") {
				t.Errorf("report %s has inline styles", r.ID)
			}
			for _, img := range r.Images {
				if w := get(t, c, img); w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/png" {
					t.Errorf("GET %s = %d %s", img, w.Code, w.Header().Get("Content-Type"))
				}
				plots++
			}
		})
	}
	if len(idx.Reports) < 9 || plots < 3 {
		t.Errorf("%d reports with %d plots; want the 9 shipped ones and the Pareto plots", len(idx.Reports), plots)
	}
}

// The console's own files stay small: the budget is 300 KiB.
func TestAssetBudget(t *testing.T) {
	size, err := console.AssetBytes()
	if err != nil {
		t.Fatal(err)
	}
	if size > 300<<10 {
		t.Errorf("console assets are %d bytes; the budget is %d", size, 300<<10)
	}
	t.Logf("console assets: %.1f KiB", float64(size)/1024)
}
