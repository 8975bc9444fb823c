// Package console is Cachet's web console: a static single-page app embedded in the binary, calling the
// public API with the browser's API key, and the committed reports it shows.
package console

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// contentSecurity keeps the console's pages to their own code: no inline scripts or styles, no other
// origins. Images are data: and blob: URLs (generated PNGs, references fetched with the key).
const contentSecurity = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Console serves the console's page (/), its assets (/console/…) and the reports (/reports/…).
type Console struct {
	index   []byte
	assets  http.Handler
	reports *reportSet
}

// New loads the embedded console and renders the reports.
func New() (*Console, error) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	reports, err := loadReports()
	if err != nil {
		return nil, err
	}
	return &Console{index: index, assets: http.StripPrefix("/console", http.FileServerFS(files)), reports: reports}, nil
}

// Paths are the URL paths the console answers: the page, and the prefixes of its assets and reports.
var Paths = struct{ Page, Assets, Reports string }{Page: "/", Assets: "/console/", Reports: "/reports/"}

// ServeHTTP answers GET and HEAD under Paths.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Assets are small and change with the binary: revalidating each load keeps a new release visible.
	h.Set("Cache-Control", "no-cache")
	switch p := r.URL.Path; {
	case p == Paths.Page:
		h.Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(c.index)
	case p == Paths.Reports+"index.json":
		h.Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(c.reports.index)
	case strings.HasPrefix(p, Paths.Reports):
		c.reports.serveFile(w, r, strings.TrimPrefix(p, Paths.Reports))
	case strings.HasPrefix(p, Paths.Assets) && p != Paths.Assets && !strings.HasSuffix(p, "/"):
		c.assets.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// AssetBytes is the size of the console's own files (the page, styles and scripts), without the reports.
func AssetBytes() (int64, error) {
	var total int64
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	return total, err
}
