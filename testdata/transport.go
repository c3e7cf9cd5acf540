package testdata

import "embed"

// Transport holds the seeds of the transport fuzz targets: HTTP error
// responses as a client receives them (transport/problems.json, for
// transport.ParseProblem), key files (transport/keyfiles/*.json, for
// transport.ParseKeyFile; the secrets in them are published test values)
// and Retry-After values (transport/retry-after.txt, for the client).
//
//go:embed transport
var Transport embed.FS
