package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the demo's services: the orchestrator
// starts its children from its own executable with roleEnv set.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// TestDemo runs the whole demo, as `make demo` does, and checks its verdict
// and that its output shows what the README promises.
func TestDemo(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = orchestrate(ctx, &out, options{exe: exe, requireNode: os.Getenv("CI") == "true"})
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"401 replay_detected", "401 timestamp_out_of_window", "401 signature_invalid", "403 service_not_authorized",
		`"$enc":"random"`, `"$enc":"deterministic"`, "every expectation held",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(text, "UNEXPECTED") {
		t.Error("demo output reports an unexpected result")
	}
	if t.Failed() {
		t.Log(text)
	}
}
