package testdata

import "embed"

// Schema holds the golden files of the exposure report (report.md,
// report.dot) and the seed tags of the schema fuzz test (tags.txt).
//
//go:embed schema
var Schema embed.FS
