package testdata

import "embed"

// Envelope holds the envelope test vectors (envelope/vectors.json) and the
// cleartext test keysets they name (envelope/*.json). Regenerate with
// `go test ./envelope -run TestVectors -update`. The keysets are test keys,
// published on purpose: never use them for anything else.
//
//go:embed envelope
var Envelope embed.FS
