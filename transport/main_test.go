package transport_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind (servers,
// connections, stores).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
