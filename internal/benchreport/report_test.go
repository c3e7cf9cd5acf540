package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rawFieldcrypt is two rounds of `go test -bench` output, as bench/run
// appends them.
const rawFieldcrypt = `goos: linux
goarch: amd64
pkg: github.com/lifenavigator/crossservice/fieldcrypt
cpu: AMD EPYC
BenchmarkSeal-2        	   10000	      5600 ns/op	    3451 B/op	      23 allocs/op
BenchmarkSealFloor-2   	   16507	      4000 ns/op	    2802 B/op	      17 allocs/op
BenchmarkScaleFields/seal/fields=10-2         	   12021	     10739 ns/op	      1074 ns/field
PASS
goos: linux
goarch: amd64
pkg: github.com/lifenavigator/crossservice/fieldcrypt
cpu: AMD EPYC
BenchmarkSeal-2        	   10000	      5800 ns/op	    3452 B/op	      23 allocs/op
BenchmarkSealFloor-2   	   20622	      3600 ns/op	    2801 B/op	      17 allocs/op
BenchmarkScaleFields/seal/fields=10-2         	   12021	     10739 ns/op	      1074 ns/field
PASS
`

// csvFieldcrypt is what benchstat -format csv prints for it (the shape
// of golang.org/x/perf/cmd/benchstat at the Makefile's version: the
// configuration echoed first, one table per unit).
const csvFieldcrypt = `goos: linux
goarch: amd64
pkg: github.com/lifenavigator/crossservice/fieldcrypt
cpu: AMD EPYC
,bin/bench/fieldcrypt.txt,
,sec/op,CI
Seal-2,5.7e-06,∞
SealFloor-2,3.8e-06,∞
ScaleFields/seal/fields=10-2,1.0739e-05,∞
geomean,6.0e-06,

,bin/bench/fieldcrypt.txt,
,sec/field,CI
ScaleFields/seal/fields=10-2,1.074e-06,∞
geomean,1.074e-06,

,bin/bench/fieldcrypt.txt,
,B/s,CI
Seal-2,1.5e+08,∞
geomean,1.5e+08,

,bin/bench/fieldcrypt.txt,
,allocs/op,CI
Seal-2,23,∞
SealFloor-2,17,∞
geomean,19.8,
`

func parsed(t *testing.T) *results {
	t.Helper()
	r := newResults()
	if err := r.readRaw(sFieldcrypt, strings.NewReader(rawFieldcrypt)); err != nil {
		t.Fatal(err)
	}
	if err := r.readBenchstatCSV(sFieldcrypt, strings.NewReader(csvFieldcrypt)); err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func TestRead(t *testing.T) {
	r := parsed(t)
	for _, tc := range []struct {
		name, unit string
		want       float64
	}{
		{"Seal", "ns/op", 5700},
		{"SealFloor", "ns/op", 3800},
		{"ScaleFields/seal/fields=10", "ns/field", 1074},
		{"Seal", "MB/s", 150},
		{"Seal", "allocs/op", 23},
	} {
		got, ok := r.get(sFieldcrypt, tc.name, tc.unit)
		if !ok || !near(got, tc.want) {
			t.Errorf("median %s %s = %v, %v; want %v", tc.name, tc.unit, got, ok, tc.want)
		}
	}
	if _, ok := r.get(sFieldcrypt, "geomean", "ns/op"); ok {
		t.Error("geomean read as a benchmark")
	}
	if got := r.rounds[metric{sFieldcrypt, "Seal", "ns/op"}]; len(got) != 2 || got[0] != 5600 || got[1] != 5800 {
		t.Errorf("rounds of Seal = %v", got)
	}
	lo, hi, ok := r.pairRange(metric{sFieldcrypt, "Seal", "ns/op"}, metric{sFieldcrypt, "SealFloor", "ns/op"},
		func(a, b float64) float64 { return a / b })
	if !ok || !near(lo, 1.4) || !near(hi, 5800.0/3600) {
		t.Errorf("per-round Seal/SealFloor = %v–%v, %v", lo, hi, ok)
	}
	if len(r.failed) != 0 {
		t.Errorf("failed = %v", r.failed)
	}
}

func TestReadRawFailure(t *testing.T) {
	r := newResults()
	raw := "BenchmarkX-2 \t 10 \t 5 ns/op\n--- FAIL: BenchmarkY-2\nFAIL\n"
	if err := r.readRaw(sTransport, strings.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if len(r.failed) != 1 || !strings.HasPrefix(r.failed[0], sTransport+" (a benchmark failed") {
		t.Errorf("failed = %v", r.failed)
	}
	r = newResults()
	if err := r.readRaw(sClient, strings.NewReader("PASS\n")); err != nil || len(r.failed) != 1 {
		t.Errorf("a suite that ran no benchmark: failed = %v, %v", r.failed, err)
	}
	if err := r.readRaw(sTransport, strings.NewReader("BenchmarkX-2 \t 10 \t five ns/op\n")); err == nil {
		t.Error("a malformed value was accepted")
	}
}

func withMedians(m map[metric]float64) *results {
	r := newResults()
	for k, v := range m {
		r.median[k] = v
	}
	return r
}

func TestGoals(t *testing.T) {
	seal := ratioGoal("seal", ns(sFieldcrypt, "Seal"), ns(sFieldcrypt, "SealFloor"), false, 0, "<=", 1.5)
	tput := ratioGoal("tput", ns(sTransport, "Sign1MiB"), ns(sTransport, "FloorSHA256_1MiB"), true, 0, ">=", 0.9)
	half := ratioGoal("half", ns(sTransport, "SignVerify1MiB"), ns(sTransport, "FloorSHA256_1MiB"), true, 2, ">=", 0.9)
	mem := metricGoal("mem", metric{sTransport, "Verify8MiBMemory/content-length", "B/op"}, "<=", bodyMax, fmtBody)
	for _, tc := range []struct {
		g    goal
		m    map[metric]float64
		want status
	}{
		{seal, map[metric]float64{ns(sFieldcrypt, "Seal"): 140, ns(sFieldcrypt, "SealFloor"): 100}, met},
		{seal, map[metric]float64{ns(sFieldcrypt, "Seal"): 150, ns(sFieldcrypt, "SealFloor"): 100}, met},
		{seal, map[metric]float64{ns(sFieldcrypt, "Seal"): 151, ns(sFieldcrypt, "SealFloor"): 100}, notMet},
		{seal, map[metric]float64{ns(sFieldcrypt, "Seal"): 140}, unmeasured},
		{tput, map[metric]float64{ns(sTransport, "Sign1MiB"): 1000, ns(sTransport, "FloorSHA256_1MiB"): 950}, met},
		{tput, map[metric]float64{ns(sTransport, "Sign1MiB"): 1000, ns(sTransport, "FloorSHA256_1MiB"): 850}, notMet},
		{half, map[metric]float64{ns(sTransport, "SignVerify1MiB"): 2000, ns(sTransport, "FloorSHA256_1MiB"): 950}, met},
		{mem, map[metric]float64{{sTransport, "Verify8MiBMemory/content-length", "B/op"}: 8<<20 + 4000}, met},
		{mem, map[metric]float64{{sTransport, "Verify8MiBMemory/content-length", "B/op"}: 16 << 20}, notMet},
		{mem, nil, unmeasured},
	} {
		if got := tc.g.Eval(withMedians(tc.m)); got.Status != tc.want {
			t.Errorf("%s with %v: %v (%+v), want %v", tc.g.Title, tc.m, got.Status, got, tc.want)
		}
	}
}

func TestScaling(t *testing.T) {
	names := fieldsNames("seal")
	g := scalingGoal("fields", sFieldcrypt, names, fieldCounts)
	with := func(f func(n float64) float64) *results {
		m := map[metric]float64{}
		for i, n := range names {
			m[ns(sFieldcrypt, n)] = f(fieldCounts[i])
		}
		return withMedians(m)
	}
	for _, tc := range []struct {
		name string
		r    *results
		want status
	}{
		{"linear with a fixed cost", with(func(n float64) float64 { return 5000 + 300*n }), met},
		{"linear", with(func(n float64) float64 { return 300 * n }), met},
		{"quadratic", with(func(n float64) float64 { return n * n }), notMet},
		{"a quadratic term taking over after 100", with(func(n float64) float64 { return 300*n + 3*n*n }), notMet},
		{"a point missing", withMedians(map[metric]float64{ns(sFieldcrypt, names[0]): 1}), unmeasured},
	} {
		if got := g.Eval(tc.r); got.Status != tc.want {
			t.Errorf("%s: %v (%+v), want %v", tc.name, got.Status, got, tc.want)
		}
	}
	if e := exponent(point{N: 10, NsOp: 100}, point{N: 100, NsOp: 10000}); !near(e, 2) {
		t.Errorf("exponent of a quadratic step = %v", e)
	}
}

// TestGoalsNameRealBenchmarks: a renamed benchmark must fail here, not turn
// its goal into "not measured" unnoticed. Every goal's benchmark exists in
// its suite's sources and is selected by bench/run.
func TestGoalsNameRealBenchmarks(t *testing.T) {
	dirs := map[string]string{sEnvelope: "envelope", sFieldcrypt: "fieldcrypt", sTransport: "transport",
		sClient: "transport/client", sSigV4: "bench"}
	root := filepath.Join("..", "..")
	run, err := os.ReadFile(filepath.Join(root, "bench", "run"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range goals {
		for _, m := range g.Uses {
			n++
			top, _, _ := strings.Cut(m.Name, "/")
			files, _ := filepath.Glob(filepath.Join(root, dirs[m.Suite], "*_test.go"))
			found := false
			re := regexp.MustCompile(`func Benchmark` + regexp.QuoteMeta(top) + `\(`)
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				found = found || re.Match(src)
			}
			if !found {
				t.Errorf("goal %q: no func Benchmark%s in %s", g.Title, top, dirs[m.Suite])
			}
			if m.Suite != sSigV4 && !strings.Contains(string(run), top) {
				t.Errorf("goal %q: bench/run does not select %s", g.Title, top)
			}
		}
	}
	if n == 0 {
		t.Fatal("no goal names a benchmark")
	}
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"fieldcrypt.txt": rawFieldcrypt, "fieldcrypt.csv": csvFieldcrypt,
		"fieldcrypt.stat": "benchstat table", "cpuinfo": "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu aes sse sha_ni\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := generate(dir, out, "100ms", 2, filepath.Join(dir, "cpuinfo")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"Generated by `make bench`",
		"Pipeline check only",
		"| CPU | Test CPU 9000 (aes, sha_ni) |",
		// Seal 5.7 µs over SealFloor 3.8 µs: 1.5×, rounds 1.4–1.61×.
		"| Seal of the reference DTO vs encoding/json + the same raw Tink calls | Seal 5.70 µs vs SealFloor 3.80 µs | 1.50× | 1.40–1.61× | <= 1.50× | **met** |",
		fmt.Sprintf("1 of %d goals met, 0 not met, %d not measured", len(goals), len(goals)-1),
		"benchstat table",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if err := generate(t.TempDir(), out, "1s", 6, ""); err == nil {
		t.Error("a directory without raw output made a report")
	}
}
