package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// metric names one figure of one benchmark of one suite. Name has no
// -GOMAXPROCS suffix; Unit is as `go test` prints it (ns/op, MB/s, B/op,
// allocs/op, or a custom unit such as ns/field).
type metric struct{ Suite, Name, Unit string }

// results are the figures of one `make bench` run.
type results struct {
	// median is benchstat's median of every figure.
	median map[metric]float64
	// rounds is every figure of the raw output in run order: the i-th value
	// of two benchmarks of a suite come from the same round.
	rounds map[metric][]float64
	// failed lists the suites whose raw output reports a failure, or no
	// benchmark at all, with the reason.
	failed []string
}

func newResults() *results {
	return &results{median: map[metric]float64{}, rounds: map[metric][]float64{}}
}

// procsSuffix is the -GOMAXPROCS suffix `go test` adds to benchmark names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

func benchName(s string) string { return procsSuffix.ReplaceAllString(s, "") }

// readRaw reads `go test -bench` output (several rounds appended) for suite.
func (r *results) readRaw(suite string, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	failed, ran := false, 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "panic:") {
			failed = true
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		ran++
		name := benchName(strings.TrimPrefix(f[0], "Benchmark"))
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("benchreport: %s: bad value %q in %q", suite, f[i], line)
			}
			k := metric{suite, name, f[i+1]}
			r.rounds[k] = append(r.rounds[k], v)
		}
	}
	switch {
	case failed:
		r.failed = append(r.failed, suite+" (a benchmark failed)")
	case ran == 0:
		r.failed = append(r.failed, suite+" (no benchmark ran)")
	}
	return sc.Err()
}

// readBenchstatCSV reads `benchstat -format csv` of one raw file: one table
// per unit, each a line ",FILE,", a line ",UNIT,CI", then NAME,MEDIAN,CI rows
// and a geomean row. benchstat prints seconds and bytes per second; they are
// turned back into go test's ns and MB/s. Lines outside tables (benchstat
// echoes the configuration) are skipped.
func (r *results) readBenchstatCSV(suite string, in io.Reader) error {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	unit := ""
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("benchreport: %s: benchstat CSV: %w", suite, err)
		}
		switch {
		case len(rec) < 2:
			unit = ""
		case rec[0] == "" && len(rec) >= 3 && rec[2] == "CI":
			unit = rec[1]
		case rec[0] == "" || rec[0] == "geomean" || unit == "":
		default:
			v, err := strconv.ParseFloat(rec[1], 64)
			if err != nil {
				continue // "" or "?" where a round lacks the figure
			}
			u, scale := goTestUnit(unit)
			r.median[metric{suite, benchName(rec[0]), u}] = v * scale
		}
	}
}

// goTestUnit maps a benchstat unit back to go test's, with the factor.
func goTestUnit(u string) (string, float64) {
	switch {
	case strings.HasPrefix(u, "sec/"):
		return "ns/" + strings.TrimPrefix(u, "sec/"), 1e9
	case u == "B/s":
		return "MB/s", 1e-6
	}
	return u, 1
}

// get returns the median of a figure.
func (r *results) get(suite, name, unit string) (float64, bool) {
	v, ok := r.median[metric{suite, name, unit}]
	return v, ok && !math.IsNaN(v)
}

// pairRange applies f to the figures of a and b round by round and returns
// the smallest and largest result; ok is false unless both have the same
// number of rounds, at least one.
func (r *results) pairRange(a, b metric, f func(a, b float64) float64) (lo, hi float64, ok bool) {
	ra, rb := r.rounds[a], r.rounds[b]
	if len(ra) == 0 || len(ra) != len(rb) {
		return 0, 0, false
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for i := range ra {
		v := f(ra[i], rb[i])
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi, true
}

// roundRange returns the smallest and largest value of one figure.
func (r *results) roundRange(m metric) (lo, hi float64, ok bool) {
	v := r.rounds[m]
	if len(v) == 0 {
		return 0, 0, false
	}
	return slices.Min(v), slices.Max(v), true
}
