// Package migrations embeds Cachet's SQL migrations. Every schema change is a new numbered file;
// applied files are never edited.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql in goose's format.
//
//go:embed *.sql
var FS embed.FS
