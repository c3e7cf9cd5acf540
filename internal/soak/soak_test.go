package soak_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

// config is one run's size; see the package documentation for the knobs.
type config struct {
	duration    time.Duration
	maxRequests int
	rate        float64 // requests started per second, whatever their latency
	inFlight    int     // requests in flight at most: beyond, starts wait
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{duration: 10 * time.Second, maxRequests: 200_000, rate: 250, inFlight: 64}
	if raceEnabled {
		c.rate, c.inFlight = 60, 32
	}
	if testing.Short() {
		c.duration = 4 * time.Second
	}
	if v, ok := os.LookupEnv("SOAK_DURATION"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 24*time.Hour {
			t.Fatalf("SOAK_DURATION=%q: want a duration from 1s to 24h", v)
		}
		c.duration = d
	}
	intVar := func(name string, p *int, lo, hi int) {
		if v, ok := os.LookupEnv(name); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				t.Fatalf("%s=%q: want an integer from %d to %d", name, v, lo, hi)
			}
			*p = n
		}
	}
	intVar("SOAK_MAX_REQUESTS", &c.maxRequests, 100, 10_000_000)
	intVar("SOAK_IN_FLIGHT", &c.inFlight, 1, 1024)
	if v, ok := os.LookupEnv("SOAK_RATE"); ok {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || !(r >= 1 && r <= 100_000) {
			t.Fatalf("SOAK_RATE=%q: want requests per second from 1 to 100000", v)
		}
		c.rate = r
	}
	return c
}

// snapshot is the process at rest: no request in flight, idle connections
// closed, two garbage collections done.
type snapshot struct {
	heapInuse  uint64
	heapAlloc  uint64 // live bytes: HeapInuse less the free room in its spans
	goroutines int
	totalAlloc uint64
	numGC      uint32
	redisConns uint32 // in the replicas' go-redis pools (32 KiB read + 32 KiB write buffer each)
}

// rest closes the callers' idle connections, drops the captures, lets the
// goroutine count settle and collects garbage.
func (h *harness) rest() snapshot {
	h.ring.clear()
	for _, c := range h.callers {
		c.base.CloseIdleConnections()
	}
	n := settle()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var conns uint32
	for _, r := range h.replicas {
		conns += r.rdb.PoolStats().TotalConns
	}
	return snapshot{heapInuse: ms.HeapInuse, heapAlloc: ms.HeapAlloc, goroutines: n, totalAlloc: ms.TotalAlloc, numGC: ms.NumGC, redisConns: conns}
}

// settle waits until the goroutine count holds for 100 ms (connections
// closing at both ends), at most 3 s, and returns it.
func settle() int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// timeline is when the faults happened, as offsets from the start of the
// load; -1: did not happen (the run ended first).
type timeline struct {
	rotated, stopped, back, retired time.Duration
	drained                         time.Duration // the wait for calls still signing with the old keys
}

// schedule runs the faults, in the test goroutine: the key switch at 20 % of
// the run, Redis down from 30 % for one second, the old keys retired at 70 %.
func (h *harness) schedule(t *testing.T, ctx context.Context) timeline {
	tl := timeline{rotated: -1, stopped: -1, back: -1, retired: -1}
	d := h.cfg.duration
	at := func(frac float64) bool {
		timer := time.NewTimer(time.Until(h.t0.Add(time.Duration(frac * float64(d)))))
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	since := func() time.Duration { return time.Since(h.t0) }

	if !at(0.20) {
		return tl
	}
	h.rot.rotate(func() {
		for _, c := range h.callers {
			if err := c.signer.SetKey(c.new); err != nil {
				t.Error(err)
			}
		}
	})
	tl.rotated = since()

	if !at(0.30) {
		return tl
	}
	h.faults.mu.Lock()
	h.faults.gen.Add(1)
	h.faults.stopAt.Store(time.Now().UnixNano())
	h.faults.mu.Unlock()
	h.rs.Stop()
	tl.stopped = since()
	time.Sleep(time.Second)
	h.faults.mu.Lock()
	h.faults.gen.Add(1) // before the new instance can take a request id
	h.faults.mu.Unlock()
	h.rs.Restart(t)
	h.faults.backAt.Store(time.Now().UnixNano())
	tl.back = since()

	if !at(0.70) {
		return tl
	}
	drain := time.Now()
	h.rot.drain()
	tl.drained = time.Since(drain)
	var muxes [2]*http.ServeMux
	for i, r := range h.replicas {
		m, err := h.newMux(r, true)
		if err != nil {
			t.Fatal(err)
		}
		muxes[i] = m
	}
	h.faults.mu.Lock()
	for i, r := range h.replicas {
		r.mux.Store(muxes[i])
	}
	h.faults.retired.Store(true)
	h.faults.mu.Unlock()
	tl.retired = since()
	return tl
}

// TestSoak is the soak with faults; the package documentation says what it
// runs and asserts.
func TestSoak(t *testing.T) {
	cfg := loadConfig(t)
	goroutinesBefore := runtime.NumGoroutine()
	leaks := goleak.IgnoreCurrent()
	h := newHarness(t, cfg)

	// Warm-up, one request at a time: pools, caches, breakers and
	// connections exist before the first measurement.
	for range 40 {
		if seq := h.next(); seq >= 0 {
			h.step(seq, rand.Uint64())
		}
	}
	start := h.rest()

	// Open loop: requests start at the rate whatever their latency (a
	// client stuck in retries does not slow the others), up to inFlight at
	// once.
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	t.Cleanup(func() { stop(); load.Wait() }) // before the servers close
	var hitMax atomic.Bool
	pacer := rate.NewLimiter(rate.Limit(cfg.rate), max(1, int(cfg.rate/20)))
	slots := make(chan struct{}, cfg.inFlight)
	h.t0 = time.Now()
	load.Go(func() {
		for pacer.Wait(ctx) == nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			seq := h.next()
			if seq < 0 {
				hitMax.Store(true)
				stop()
				return
			}
			load.Go(func() {
				defer func() { <-slots }()
				h.step(seq, rand.Uint64())
			})
		}
	})
	var peakHeap atomic.Uint64
	var peakGoroutines atomic.Int64
	load.Go(func() {
		tick := time.NewTicker(max(cfg.duration/40, 100*time.Millisecond))
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			if n := int64(runtime.NumGoroutine()); n > peakGoroutines.Load() {
				peakGoroutines.Store(n)
			}
		}
	})

	tl := h.schedule(t, ctx)
	endTimer := time.NewTimer(time.Until(h.t0.Add(cfg.duration)))
	select {
	case <-ctx.Done():
	case <-endTimer.C:
	}
	endTimer.Stop()
	stop()
	load.Wait()
	elapsed := time.Since(h.t0)
	end := h.rest()

	// Shutdown, then nothing may be left running.
	for _, r := range h.replicas {
		r.srv.Close()
	}
	for _, c := range h.callers {
		c.base.CloseIdleConnections()
	}
	for _, r := range h.replicas {
		r.rdb.Close()
	}
	h.rs.Stop()
	goroutinesAfter := settle()
	goleak.VerifyNone(t, leaks)

	h.report(t, reportInput{cfg: cfg, tl: tl, elapsed: elapsed, hitMax: hitMax.Load(), start: start, end: end,
		peakHeap: peakHeap.Load(), peakGoroutines: int(peakGoroutines.Load()),
		goroutinesBefore: goroutinesBefore, goroutinesAfter: goroutinesAfter})
}

type reportInput struct {
	cfg                               config
	tl                                timeline
	elapsed                           time.Duration
	hitMax                            bool
	start, end                        snapshot
	peakHeap                          uint64
	peakGoroutines                    int
	goroutinesBefore, goroutinesAfter int
}

// Flatness: at rest after the run, within 1.5× of at rest before it, plus
// these (the captures and sync.Pools refill, a few connections linger).
const (
	heapSlack      = 4 << 20
	goroutineSlack = 10
)

// report logs the summary and makes the assertions.
func (h *harness) report(t *testing.T, in reportInput) {
	s := &h.st
	led := h.led
	n := min(h.seq.Load(), int64(len(led.kinds)))
	mib := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	off := func(d time.Duration) string {
		if d < 0 {
			return "not reached"
		}
		return "+" + d.Round(10*time.Millisecond).String()
	}

	// The handlers' view, per request.
	var sent, accepted [numKinds]int
	var handlerFalse, okWithoutRun, extraRuns, lostResponses, unsent int
	var postsAccepted, postRuns int64
	for seq := range n {
		k := led.kinds[seq]
		if k == numKinds {
			unsent++
			continue
		}
		sent[k]++
		runs := int64(led.admitted[seq].Load())
		switch {
		case !k.valid():
			handlerFalse += int(runs)
		case led.clientOK[seq]:
			accepted[k]++
			if runs == 0 {
				okWithoutRun++
			}
			extraRuns += int(max(runs-1, 0))
		case runs > 0:
			lostResponses++
			extraRuns += int(runs - 1)
		}
		if led.posted[seq] {
			postRuns += runs
			if k.valid() && led.clientOK[seq] {
				postsAccepted++
			}
		}
	}
	total := 0
	for _, c := range sent {
		total += c
	}

	t.Logf("soak: %v of load (asked %v), %.0f requests started per second, at most %d in flight, max %d requests, race=%v",
		in.elapsed.Round(10*time.Millisecond), in.cfg.duration, in.cfg.rate, in.cfg.inFlight, in.cfg.maxRequests, raceEnabled)
	t.Logf("soak: key switch %s; Redis stopped %s, answering again %s (first valid 2xx begun after it: %s); old keys retired %s (after waiting %v for calls signed with them)",
		off(in.tl.rotated), off(in.tl.stopped), off(in.tl.back), h.recovery(), off(in.tl.retired), in.tl.drained.Round(time.Millisecond))
	parts := make([]string, 0, numKinds)
	for k := range numKinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, sent[k]))
	}
	t.Logf("soak: %d requests: %s (%d replays sent as POSTs: no capture from the running Redis yet)",
		total, strings.Join(parts, ", "), s.fallbacks)
	for k := range numKinds {
		t.Logf("soak:   %-8s %s", k.String()+":", counts(s.outcomes[k]))
	}
	t.Logf("soak: valid requests lost to the Redis outage: %d (%s), last one ended %s (allowed until %v after); other requests refused for Redis in it: %d; go-redis log lines (failed dials): %d",
		sum(s.outageLost), counts(s.outageLost), h.lastLoss(), h.faults.grace, s.outageOther, h.redisLog.n.Load())
	t.Logf("soak: false accepts: %d seen by clients, %d handler runs for replayed/tampered/unauthorized/stale requests; unexpected outcomes: %d",
		s.falseAccept, handlerFalse, s.unexpected)
	t.Logf("soak: handlers: %d runs (%s); sealed bodies opened %d (failed %d) for %d POST runs; client-accepted POSTs %d; extra runs (retry after a lost response) %d, runs whose response was lost %d",
		sumAtomic(&led.admittedBy), kindCounts(&led.admittedBy), led.opened.Load(), led.openFailed.Load(), postRuns, postsAccepted, extraRuns, lostResponses)
	t.Logf("soak: client retries: %s; client breakers opened %d times, %d of them outside the Redis outage", counts(s.retries), s.breakerOpen, s.breakerOdd)
	h.refusals.mu.Lock()
	t.Logf("soak: verifier refusals logged (code/check): %s", counts(h.refusals.n))
	h.refusals.mu.Unlock()
	perReq := uint64(0)
	if total > 0 {
		perReq = (in.end.totalAlloc - in.start.totalAlloc) / uint64(total)
	}
	t.Logf("soak: heap in use at rest: start %s, end %s (live objects %s, then %s; peak in use %s while running; go-redis pools %d then %d connections, 64 KiB of buffers each); %s allocated, %d KiB per request, %d GCs",
		mib(in.start.heapInuse), mib(in.end.heapInuse), mib(in.start.heapAlloc), mib(in.end.heapAlloc), mib(in.peakHeap), in.start.redisConns, in.end.redisConns,
		mib(in.end.totalAlloc-in.start.totalAlloc), perReq>>10, in.end.numGC-in.start.numGC)
	t.Logf("soak: goroutines at rest: start %d, end %d (peak %d while running); %d before the test, %d after shutdown",
		in.start.goroutines, in.end.goroutines, in.peakGoroutines, in.goroutinesBefore, in.goroutinesAfter)

	// Assertions.
	for _, line := range s.samples {
		t.Error(line)
	}
	if s.falseAccept != 0 || handlerFalse != 0 {
		t.Errorf("false accepts: %d 2xx answers and %d handler runs for requests that must be refused", s.falseAccept, handlerFalse)
	}
	if s.unexpected != 0 {
		t.Errorf("%d requests did not get their expected outcome (first ones above)", s.unexpected)
	}
	if okWithoutRun != 0 || led.noSeq.Load() != 0 || unsent != 0 {
		t.Errorf("ledger inconsistent: %d accepted without a handler run, %d runs without a sequence number, %d numbers never sent",
			okWithoutRun, led.noSeq.Load(), unsent)
	}
	if led.openFailed.Load() != 0 || led.opened.Load() != postRuns {
		t.Errorf("sealed bodies: %d opened and %d failed to open, for %d admitted POSTs", led.opened.Load(), led.openFailed.Load(), postRuns)
	}
	if s.breakerOdd != 0 {
		t.Errorf("client breakers opened %d times outside the Redis outage", s.breakerOdd)
	}
	if lim := in.start.heapInuse*3/2 + heapSlack; in.end.heapInuse > lim {
		t.Errorf("heap in use grew: %s at rest after the run, limit %s", mib(in.end.heapInuse), mib(lim))
	}
	if lim := in.start.goroutines*3/2 + goroutineSlack; in.end.goroutines > lim {
		t.Errorf("goroutines grew: %d at rest after the run, limit %d", in.end.goroutines, lim)
	}
	if in.hitMax {
		t.Logf("soak: stopped at SOAK_MAX_REQUESTS=%d: coverage is not checked", in.cfg.maxRequests)
		return
	}
	// A soak whose adversarial traffic or faults did not happen proves nothing.
	if in.tl.retired < 0 {
		t.Errorf("the fault schedule did not complete: %+v", in.tl)
	}
	for _, k := range []kind{kindPost, kindGet, kindGenuine, kindReplay, kindTamper, kindUnauth, kindStale} {
		if sent[k] == 0 {
			t.Errorf("no %s request was sent", k)
		}
	}
	if h.faults.firstOK.Load() == 0 {
		t.Errorf("no valid request begun after Redis's restart was accepted")
	}
}

func (h *harness) recovery() string {
	ok, back := h.faults.firstOK.Load(), h.faults.backAt.Load()
	if ok == 0 || back == 0 {
		return "none"
	}
	return "+" + time.Duration(ok-back).Round(time.Millisecond).String() + " after"
}

func (h *harness) lastLoss() string {
	if h.st.lastLoss.IsZero() {
		return "none"
	}
	back := h.faults.backAt.Load()
	if back == 0 {
		return "before Redis answered again"
	}
	return h.st.lastLoss.Sub(time.Unix(0, back)).Round(time.Millisecond).String() + " after Redis answered again"
}

// counts renders m sorted by count, then label.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sumAtomic(a *[numKinds]atomic.Int64) int64 {
	var n int64
	for i := range a {
		n += a[i].Load()
	}
	return n
}

func kindCounts(a *[numKinds]atomic.Int64) string {
	parts := make([]string, 0, numKinds)
	for k := range numKinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, a[k].Load()))
	}
	return strings.Join(parts, ", ")
}
