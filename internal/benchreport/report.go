package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The suites `make bench` runs (bench/run), by the name of their raw files.
const (
	sEnvelope   = "envelope"
	sFieldcrypt = "fieldcrypt"
	sTransport  = "transport"
	sClient     = "client"
	sSigV4      = "sigv4"
)

// suites is the order of the appendix.
var suites = []string{sEnvelope, sFieldcrypt, sTransport, sClient, sSigV4}

type status int

const (
	unmeasured status = iota
	met
	notMet
)

func (s status) String() string {
	switch s {
	case met:
		return "**met**"
	case notMet:
		return "**NOT MET**"
	}
	return "not measured"
}

// outcome is one goal evaluated on a run.
type outcome struct {
	Figures string // what was measured, in words and numbers
	Value   string // the figure compared with the target
	Range   string // the same figure's range over the rounds
	Status  status
}

// goal is one target of issue 8.
type goal struct {
	Title  string
	Target string
	Eval   func(*results) outcome
	Uses   []metric // the figures Eval reads
}

// compare says whether v meets "op limit".
func compare(v float64, op string, limit float64) status {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return unmeasured
	}
	if (op == "<=" && v <= limit) || (op == ">=" && v >= limit) {
		return met
	}
	return notMet
}

// ratioGoal compares ours with base (a floor or a peer) on one unit:
// ours/base, or base/ours with invert (a throughput or a speed-up from times
// per operation of the same work). baseScale multiplies base first.
func ratioGoal(title string, ours, base metric, invert bool, baseScale float64, op string, limit float64) goal {
	if baseScale == 0 {
		baseScale = 1
	}
	f := func(o, b float64) float64 {
		if invert {
			return b * baseScale / o
		}
		return o / (b * baseScale)
	}
	return goal{Title: title, Target: fmt.Sprintf("%s %s×", op, fmtNum(limit)), Uses: []metric{ours, base}, Eval: func(r *results) outcome {
		o, ok1 := r.get(ours.Suite, ours.Name, ours.Unit)
		b, ok2 := r.get(base.Suite, base.Name, base.Unit)
		if !ok1 || !ok2 {
			return outcome{Figures: missing(r, ours, base), Value: "—", Range: "—"}
		}
		v := f(o, b)
		out := outcome{
			Figures: fmt.Sprintf("%s %s vs %s %s", ours.Name, fmtUnit(o, ours.Unit), base.Name, fmtUnit(b, base.Unit)),
			Value:   fmtNum(v) + "×", Range: "—", Status: compare(v, op, limit),
		}
		if lo, hi, ok := r.pairRange(ours, base, f); ok {
			out.Range = fmtNum(lo) + "–" + fmtNum(hi) + "×"
		}
		return out
	}}
}

// metricGoal compares one figure with a limit.
func metricGoal(title string, m metric, op string, limit float64, show func(float64) string) goal {
	return goal{Title: title, Target: op + " " + show(limit), Uses: []metric{m}, Eval: func(r *results) outcome {
		v, ok := r.get(m.Suite, m.Name, m.Unit)
		if !ok {
			return outcome{Figures: missing(r, m), Value: "—", Range: "—"}
		}
		out := outcome{Figures: m.Name + " " + m.Unit, Value: show(v), Range: "—", Status: compare(v, op, limit)}
		if lo, hi, ok := r.roundRange(m); ok {
			out.Range = show(lo) + " – " + show(hi)
		}
		return out
	}}
}

// missing says which benchmark of a goal has no figure.
func missing(r *results, ms ...metric) string {
	var names []string
	for _, m := range ms {
		if _, ok := r.get(m.Suite, m.Name, m.Unit); !ok {
			names = append(names, m.Suite+": "+m.Name+" ("+m.Unit+")")
		}
	}
	return "no figure for " + strings.Join(names, ", ")
}

// superlinear is the largest growth exponent a scaling step may show:
// log(t2/t1)/log(n2/n1) is 1 for a linear step and 2 for a quadratic one;
// a step above 1.5 is flagged.
const superlinear = 1.5

// point is one measured size of a scaling series.
type point struct {
	N    float64 // fields or bytes
	Name string  // the benchmark
	NsOp float64
	OK   bool
}

// series reads a scaling series: names[i] measured at sizes[i].
func series(r *results, suite string, names []string, sizes []float64) []point {
	ps := make([]point, len(names))
	for i, n := range names {
		v, ok := r.get(suite, n, "ns/op")
		ps[i] = point{N: sizes[i], Name: n, NsOp: v, OK: ok}
	}
	return ps
}

// exponent is the growth exponent of the step from a to b.
func exponent(a, b point) float64 {
	return math.Log(b.NsOp/a.NsOp) / math.Log(b.N/a.N)
}

// worstStep returns the largest step exponent of a series and whether
// every point was measured.
func worstStep(ps []point) (float64, bool) {
	worst := math.Inf(-1)
	for i := range ps {
		if !ps[i].OK {
			return 0, false
		}
		if i > 0 {
			worst = max(worst, exponent(ps[i-1], ps[i]))
		}
	}
	return worst, len(ps) > 1
}

func scalingGoal(title, suite string, names []string, sizes []float64) goal {
	var uses []metric
	for _, n := range names {
		uses = append(uses, metric{suite, n, "ns/op"})
	}
	return goal{Title: title, Target: fmt.Sprintf("every step ≤ n^%s", fmtNum(superlinear)), Uses: uses, Eval: func(r *results) outcome {
		ps := series(r, suite, names, sizes)
		w, ok := worstStep(ps)
		if !ok {
			return outcome{Figures: missing(r, uses...), Value: "—", Range: "—"}
		}
		return outcome{Figures: fmt.Sprintf("%s … %s (see the scaling tables)", ps[0].Name, ps[len(ps)-1].Name),
			Value: "worst step n^" + fmtNum(w), Range: "—", Status: compare(w, "<=", superlinear)}
	}}
}

// Scaling series (fieldcrypt/scale_bench_test.go).
var (
	fieldCounts  = []float64{10, 100, 1000}
	payloadSizes = []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}
)

func fieldsNames(op string) []string {
	var s []string
	for _, n := range fieldCounts {
		s = append(s, fmt.Sprintf("ScaleFields/%s/fields=%d", op, int(n)))
	}
	return s
}

func payloadNames(op string) []string {
	var s []string
	for _, n := range payloadSizes {
		s = append(s, fmt.Sprintf("ScalePayload/%s/size=%dKiB", op, int(n)>>10))
	}
	return s
}

const (
	mib     = 1 << 20
	kib     = 1 << 10
	bodyMax = 8*mib + 64*kib // issue 8: an 8 MiB body plus 64 KiB
)

func ns(s, n string) metric { return metric{s, n, "ns/op"} }

// goals are issue 8's targets, in its order.
var goals = []goal{
	ratioGoal("Seal of the reference DTO vs encoding/json + the same raw Tink calls",
		ns(sFieldcrypt, "Seal"), ns(sFieldcrypt, "SealFloor"), false, 0, "<=", 1.5),
	ratioGoal("Open of the reference DTO vs encoding/json + the same raw Tink calls",
		ns(sFieldcrypt, "Open"), ns(sFieldcrypt, "OpenFloor"), false, 0, "<=", 1.5),
	ratioGoal("Seal with a fresh HPKE-wrapped data key vs HPKE alone",
		ns(sFieldcrypt, "SealFreshKey"), ns(sFieldcrypt, "HPKE"), false, 0, "<=", 1.1),
	ratioGoal("Sign + verify 1 KiB vs two raw HMAC-SHA256",
		ns(sTransport, "SignVerify1KiB"), ns(sTransport, "FloorTwoHMAC1KiB"), false, 0, "<=", 2),
	// Like for like: Sign hashes the body of every request it signs, and so
	// must whoever calls SignHTTP (its payloadHash argument). The speed-up
	// over SignHTTP handed a hash computed once is shown beside it.
	ratioGoal("Sign 1 KiB: speed-up over AWS SigV4 SignHTTP, each hashing the body per request",
		ns(sSigV4, "Sign1KiB/crossservice"), ns(sSigV4, "Sign1KiB/sigv4+sha256"), true, 0, ">=", 3),
	ratioGoal("Sign 1 MiB: throughput vs SHA-256",
		ns(sTransport, "Sign1MiB"), ns(sTransport, "FloorSHA256_1MiB"), true, 0, ">=", 0.9),
	ratioGoal("Verify 1 MiB: throughput vs SHA-256",
		ns(sTransport, "Verify1MiB"), ns(sTransport, "FloorSHA256_1MiB"), true, 0, ">=", 0.9),
	metricGoal("Signed, sealed request over TLS 1.3 keep-alive loopback vs plain: throughput, one caller, interleaved per request",
		metric{sClient, "Exchange/ratio", "throughput-ratio"}, ">=", 0.85, func(v float64) string { return fmtNum(v) + "×" }),
	ratioGoal("Signed, sealed request vs plain: throughput, 8 callers per core",
		ns(sClient, "Exchange/parallel/signed-sealed"), ns(sClient, "Exchange/parallel/plain-json"), true, 0, ">=", 0.85),
	scalingGoal("Seal vs number of fields (10, 100, 1000): linear", sFieldcrypt, fieldsNames("seal"), fieldCounts),
	scalingGoal("Open vs number of fields (10, 100, 1000): linear", sFieldcrypt, fieldsNames("open"), fieldCounts),
	scalingGoal("Seal vs payload size (1 KiB … 1 MiB): linear", sFieldcrypt, payloadNames("seal"), payloadSizes),
	scalingGoal("Open vs payload size (1 KiB … 1 MiB): linear", sFieldcrypt, payloadNames("open"), payloadSizes),
	metricGoal("Verifying an 8 MiB body (Content-Length given): bytes allocated, cold pools",
		metric{sTransport, "Verify8MiBMemory/content-length", "B/op"}, "<=", bodyMax, fmtBody),
	metricGoal("Verifying an 8 MiB body (chunked, no Content-Length): bytes allocated, cold pools",
		metric{sTransport, "Verify8MiBMemory/chunked", "B/op"}, "<=", bodyMax, fmtBody),
}

// ---- number formatting ----

// fmtNum prints 3 significant digits, without exponent for usual sizes.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.001 || a == 0:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// fmtNs prints a duration given in ns.
func fmtNs(v float64) string {
	switch {
	case v >= 1e9:
		return fmtNum(v/1e9) + " s"
	case v >= 1e6:
		return fmtNum(v/1e6) + " ms"
	case v >= 1e3:
		return fmtNum(v/1e3) + " µs"
	}
	return fmtNum(v) + " ns"
}

// fmtBytes prints a byte count.
func fmtBytes(v float64) string {
	switch {
	case v >= mib:
		return fmtNum(v/mib) + " MiB"
	case v >= 10*kib:
		return fmtNum(v/kib) + " KiB"
	}
	return fmtCount(v) + " B"
}

// fmtCount prints a count: whole numbers without decimals (medians of an
// even number of rounds can end in .5).
func fmtCount(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return fmtNum(v)
}

// fmtBody prints bytes as the 8 MiB body plus the rest.
func fmtBody(v float64) string {
	d := v - 8*mib
	if d < 0 {
		return fmtBytes(v)
	}
	return "body + " + fmtBytes(d)
}

// fmtUnit prints a figure with its unit.
func fmtUnit(v float64, unit string) string {
	switch unit {
	case "ns/op":
		return fmtNs(v)
	case "B/op":
		return fmtBytes(v)
	case "allocs/op":
		return fmtCount(v) + " allocs"
	}
	return fmtNum(v) + " " + unit
}
