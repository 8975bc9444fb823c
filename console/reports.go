package console

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"

	benchreports "github.com/cachetlab/cachet/bench/reports"
	evalreports "github.com/cachetlab/cachet/eval/reports"
)

// Report is one committed report as the console shows it: its Markdown rendered to HTML and its plots.
type Report struct {
	ID     string   `json:"id"`
	Group  string   `json:"group"`
	Title  string   `json:"title"`
	HTML   string   `json:"html"`
	Images []string `json:"images"` // URL paths
}

// ReportIndex is GET /reports/index.json.
type ReportIndex struct {
	Reports []Report `json:"reports"`
}

// shownReports are the reports in the order the page shows them (the step-cache Pareto plots first).
var shownReports = []struct{ id, group string }{
	{"stepcache-service", "Step caching"},
	{"stepcache", "Step caching"},
	{"stepcache-dit-s2", "Step caching"},
	{"base", "Evaluation"},
	{"personalization", "Evaluation"},
	{"classify", "Evaluation"},
	{"classify-robustness", "Evaluation"},
	{"batch", "Service"},
	{"scale", "Service"},
	{"soak", "Service"},
}

type reportSet struct {
	index []byte           // ReportIndex as JSON, encoded once: the reports are in the binary
	files map[string]fs.FS // report id → its directory
}

func loadReports() (*reportSet, error) {
	// Tables align with the align attribute: the page's security policy refuses inline styles.
	md := goldmark.New(goldmark.WithExtensions(extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute))),
		goldmark.WithRendererOptions(html.WithXHTML()))
	set := &reportSet{files: map[string]fs.FS{}}
	index := ReportIndex{Reports: []Report{}}
	for _, r := range shownReports {
		dir, err := reportDir(r.id)
		if err != nil {
			return nil, err
		}
		rep := Report{ID: r.id, Group: r.group, Images: []string{}}
		entries, err := fs.ReadDir(dir, ".")
		if err != nil {
			return nil, fmt.Errorf("console: report %s: %w", r.id, err)
		}
		// The report's own summary (report.md, or named after its directory) comes first.
		slices.SortStableFunc(entries, func(a, b fs.DirEntry) int { return cmp.Compare(mainRank(r.id, a.Name()), mainRank(r.id, b.Name())) })
		var out bytes.Buffer
		for _, e := range entries {
			switch path.Ext(e.Name()) {
			case ".png":
				rep.Images = append(rep.Images, Paths.Reports+r.id+"/"+e.Name())
			case ".md":
				src, err := fs.ReadFile(dir, e.Name())
				if err != nil {
					return nil, fmt.Errorf("console: report %s: %w", r.id, err)
				}
				if rep.Title == "" {
					rep.Title = firstHeading(src)
				}
				if err := md.Convert(src, &out); err != nil {
					return nil, fmt.Errorf("console: report %s/%s: %w", r.id, e.Name(), err)
				}
			}
		}
		if rep.Title == "" {
			rep.Title = r.id
		}
		rep.HTML = out.String()
		index.Reports = append(index.Reports, rep)
		set.files[r.id] = dir
	}
	var err error
	if set.index, err = json.Marshal(index); err != nil {
		return nil, fmt.Errorf("console: the reports index: %w", err)
	}
	return set, nil
}

// reportDir finds a report's directory among the embedded ones.
func reportDir(id string) (fs.FS, error) {
	for _, root := range []fs.FS{benchreports.Files, evalreports.Files} {
		if _, err := fs.Stat(root, id); err == nil {
			return fs.Sub(root, id)
		}
	}
	return nil, fmt.Errorf("console: no report %q is embedded", id)
}

func mainRank(id, name string) int {
	if name == "report.md" || name == id+".md" {
		return 0
	}
	return 1
}

func firstHeading(md []byte) string {
	for _, line := range strings.Split(string(md), "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "#"); ok {
			return strings.TrimSpace(strings.TrimLeft(t, "#"))
		}
	}
	return ""
}

// serveFile answers a report's plot (rel is "id/file.png").
func (s *reportSet) serveFile(w http.ResponseWriter, r *http.Request, rel string) {
	id, name, ok := strings.Cut(rel, "/")
	dir := s.files[id]
	if !ok || dir == nil || path.Ext(name) != ".png" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	data, err := fs.ReadFile(dir, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(".png"))
	_, _ = w.Write(data)
}
