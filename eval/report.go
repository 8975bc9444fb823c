package eval

import (
	"encoding/json"
	"fmt"
	"image"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/cachetlab/cachet/internal/atomicfile"
)

// Table is one report table. Rows may be shorter than Columns (missing
// cells render empty); Notes follow the table as a bullet list, for the
// caveats a number needs (hardware, seeds, what "speed-up" is relative to).
type Table struct {
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
	Notes   []string   `json:"notes,omitempty"`
}

// Markdown renders the table as GitHub-flavoured markdown: a "### Title"
// heading when Title is set, the table with cells padded to column width so
// the raw file reads well too, then the notes. Pipes and newlines inside
// cells are escaped so that a stray prompt cannot break the layout.
func (t Table) Markdown() string {
	var sb strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&sb, "### %s\n\n", t.Title)
	}
	ncol := len(t.Columns)
	for _, r := range t.Rows {
		ncol = max(ncol, len(r))
	}
	if ncol > 0 {
		cells := make([][]string, 0, len(t.Rows)+1)
		cells = append(cells, padRow(t.Columns, ncol))
		for _, r := range t.Rows {
			cells = append(cells, padRow(r, ncol))
		}
		width := make([]int, ncol)
		for _, r := range cells {
			for j, c := range r {
				width[j] = max(width[j], utf8.RuneCountInString(c), 3)
			}
		}
		writeRow(&sb, cells[0], width)
		sep := make([]string, ncol)
		for j := range sep {
			sep[j] = strings.Repeat("-", width[j])
		}
		writeRow(&sb, sep, width)
		for _, r := range cells[1:] {
			writeRow(&sb, r, width)
		}
	}
	if len(t.Notes) > 0 {
		if ncol > 0 {
			sb.WriteString("\n")
		}
		for _, n := range t.Notes {
			fmt.Fprintf(&sb, "- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
	}
	return sb.String()
}

func padRow(r []string, n int) []string {
	out := make([]string, n)
	for j := range out {
		if j < len(r) {
			c := strings.ReplaceAll(r[j], "|", `\|`)
			out[j] = strings.ReplaceAll(c, "\n", " ")
		}
	}
	return out
}

func writeRow(sb *strings.Builder, r []string, width []int) {
	sb.WriteString("|")
	for j, c := range r {
		sb.WriteString(" ")
		sb.WriteString(c)
		sb.WriteString(strings.Repeat(" ", width[j]-utf8.RuneCountInString(c)))
		sb.WriteString(" |")
	}
	sb.WriteString("\n")
}

// WriteJSON writes v as indented JSON with a trailing newline, atomically.
// NaN and Inf cannot be encoded; callers must map them (MeanPSNR already
// caps infinite PSNR).
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeAtomic(path, append(data, '\n'))
}

// WriteMarkdown writes the tables' markdown, separated by blank lines,
// atomically.
func WriteMarkdown(path string, tables ...Table) error {
	return writeAtomic(path, []byte(Markdown(tables...)))
}

// Markdown is the tables' markdown, separated by blank lines (what
// report.md holds).
func Markdown(tables ...Table) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = t.Markdown()
	}
	return strings.Join(parts, "\n")
}

// File names of an evaluation report inside its directory.
const (
	JSONFile     = "report.json"
	MarkdownFile = "report.md"
)

// WriteReport writes an evaluation's report into dir (created when
// missing): v as JSONFile, tables as MarkdownFile and, when img is not nil,
// img as the PNG pngName.
func WriteReport(dir string, v any, tables []Table, pngName string, img image.Image) error {
	if err := WriteJSON(filepath.Join(dir, JSONFile), v); err != nil {
		return err
	}
	if err := WriteMarkdown(filepath.Join(dir, MarkdownFile), tables...); err != nil {
		return err
	}
	if img != nil {
		return WritePNG(filepath.Join(dir, pngName), img)
	}
	return nil
}

// writeAtomic writes a report so that readers (a dashboard, a concurrent bench run) never see half of it.
func writeAtomic(path string, data []byte) error { return atomicfile.WriteBytes(path, data) }
