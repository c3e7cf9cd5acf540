// Command demo runs crossservice's three-service demo: a frontend gateway,
// financial-service and analytics-service, as separate processes on loopback,
// over TLS 1.3 with mutual authentication, with certificates and keys it
// creates in a temporary directory and removes at the end.
//
// The frontend seals one annotated Account for each service and calls them with
// the signing client; each service verifies the request, opens the envelope
// into the same type and prints what it received. Then the frontend replays a
// request, sends a stale one, tampers with a body and calls as a service that
// is not allowed, and each is refused with its problem code. When node is
// installed, the plain Node.js client of examples/node-client signs a v1 and a
// legacy request from SPEC.md alone.
//
// It exits 0 when everything behaved as expected, 1 otherwise:
//
//	go run ./examples/demo        # or: make demo
//	go run ./examples/demo -keep  # keep the temporary directory to look at
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// roleEnv selects what a process of this program is: unset for the
// orchestrator, else the service it plays. The orchestrator starts its
// children from its own executable with this variable set.
const roleEnv = "XSVC_DEMO_ROLE"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	keep := flag.Bool("keep", false, "keep the temporary directory with keys, certificates and logs")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if err := orchestrate(ctx, os.Stdout, options{exe: exe, keep: *keep}); err != nil {
		fmt.Fprintln(os.Stdout, "\ndemo: FAILED:", err)
		os.Exit(1)
	}
}
