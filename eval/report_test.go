package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTableMarkdown(t *testing.T) {
	tests := []struct {
		name  string
		table Table
		want  string
	}{
		{
			name: "padded, escaped, short row, notes",
			table: Table{
				Title:   "Step caching",
				Columns: []string{"policy", "speed-up", "PSNR"},
				Rows: [][]string{
					{"fora N=3", "2.71×", "31.2"},
					{"a|b", "1.00×"},
				},
				Notes: []string{"median of 5 runs", "H100"},
			},
			want: "### Step caching\n\n" +
				"| policy   | speed-up | PSNR |\n" +
				"| -------- | -------- | ---- |\n" +
				"| fora N=3 | 2.71×    | 31.2 |\n" +
				"| a\\|b     | 1.00×    |      |\n" +
				"\n- median of 5 runs\n- H100\n",
		},
		{
			name:  "no title, minimum separator width",
			table: Table{Columns: []string{"a"}, Rows: [][]string{{"1"}}},
			want:  "| a   |\n| --- |\n| 1   |\n",
		},
		{
			name:  "notes only",
			table: Table{Title: "T", Notes: []string{"line\nbreak"}},
			want:  "### T\n\n- line break\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.table.Markdown(); got != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestCounter(t *testing.T) {
	var c Counter
	for _, ok := range []bool{true, true, false, true} {
		c.Add("size", ok)
	}
	c.Add("class", false)
	c.AddN("class", 3, 4)
	if got := c.Accuracy("size"); got != 0.75 {
		t.Fatalf("size accuracy %v", got)
	}
	if got := c.Accuracy("missing"); !math.IsNaN(got) {
		t.Fatalf("missing accuracy %v, want NaN", got)
	}
	e := c.Entries()
	if len(e) != 2 || e[0].Name != "class" || e[0].Correct != 3 || e[0].Total != 5 || e[0].Accuracy != 0.6 {
		t.Fatalf("entries %+v", e)
	}
	want := "### Attributes\n\n" +
		"| attribute | correct | total | accuracy |\n" +
		"| --------- | ------- | ----- | -------- |\n" +
		"| class     | 3       | 5     | 60.00 %  |\n" +
		"| size      | 3       | 4     | 75.00 %  |\n"
	if got := c.Table("Attributes").Markdown(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// noTempFiles fails if an atomic write left its temporary file behind.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

func TestWriteJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "report.json")
	in := map[string]any{"psnr": 31.5, "policy": "fora"}
	if err := WriteJSON(path, in); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"policy\": \"fora\",\n  \"psnr\": 31.5\n}\n"
	if string(data) != want {
		t.Fatalf("got %q, want %q", data, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	noTempFiles(t, filepath.Dir(path))

	t.Run("overwrites", func(t *testing.T) {
		if err := WriteJSON(path, []int{1}); err != nil {
			t.Fatal(err)
		}
		var got []int
		data, _ := os.ReadFile(path)
		if err := json.Unmarshal(data, &got); err != nil || len(got) != 1 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("unencodable value leaves the old file", func(t *testing.T) {
		if err := WriteJSON(path, math.NaN()); err == nil {
			t.Fatal("want error for NaN")
		}
		data, _ := os.ReadFile(path)
		if string(data) != "[\n  1\n]\n" {
			t.Fatalf("file changed to %q", data)
		}
		noTempFiles(t, filepath.Dir(path))
	})
}

func TestWriteMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.md")
	a := Table{Title: "A", Columns: []string{"x"}, Rows: [][]string{{"1"}}}
	b := Table{Title: "B", Notes: []string{"n"}}
	if err := WriteMarkdown(path, a, b); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := a.Markdown() + "\n" + b.Markdown(); string(data) != want {
		t.Fatalf("got %q, want %q", data, want)
	}
}
