// Package reports holds the committed reports of this directory, embedded for the console's Reports page.
package reports

import "embed"

// Files are the reports, one directory each: Markdown summaries and their plots.
//
//go:embed */*.md */*.png
var Files embed.FS
