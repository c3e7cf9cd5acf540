package transport

import (
	"syscall"
	"time"
)

// unixMilli returns the wall clock in Unix milliseconds, the value of
// time.Now().UnixMilli(). On linux/amd64, time.Now reads two clocks through
// the vDSO (CLOCK_REALTIME and CLOCK_MONOTONIC), while syscall.Gettimeofday
// reads the same CLOCK_REALTIME through one vDSO call and no system call: a
// signer needs only the wall clock, once per request. Truncating its
// microseconds gives the same millisecond as truncating nanoseconds.
func unixMilli() int64 {
	var tv syscall.Timeval
	if err := syscall.Gettimeofday(&tv); err != nil {
		return time.Now().UnixMilli()
	}
	return tv.Sec*1000 + tv.Usec/1000
}
