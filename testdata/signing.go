package testdata

import "embed"

// Signing holds the request-signing vectors (signing/vectors.json, format
// described in docs/spec/signing.md) and the cross-check script that
// recomputes them with Node's crypto.
//
//go:embed signing
var Signing embed.FS
