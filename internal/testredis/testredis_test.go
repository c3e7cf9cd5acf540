package testredis_test

import (
	"net"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/internal/testredis"
)

func TestStartStopRestart(t *testing.T) {
	s := testredis.Start(t)
	dial := func() error {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("server not reachable: %v", err)
	}
	s.Stop()
	if err := dial(); err == nil {
		t.Fatal("server still reachable after Stop")
	}
	s.Restart(t)
	if err := dial(); err != nil {
		t.Fatalf("server not reachable after Restart: %v", err)
	}
}
