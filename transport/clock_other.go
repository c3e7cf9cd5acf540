//go:build !(linux && amd64)

package transport

import "time"

// unixMilli returns the wall clock in Unix milliseconds.
func unixMilli() int64 { return time.Now().UnixMilli() }
