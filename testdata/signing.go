package testdata

import "embed"

// Signing holds the request-signing vectors (signing/vectors.json, format
// described in SPEC.md part 2) and the cross-check script that
// recomputes them with Node's crypto.
//
//go:embed signing
var Signing embed.FS
