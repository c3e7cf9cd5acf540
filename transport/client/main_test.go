package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// server, listener, keep-alive connection and timer must be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
