// Command benchreport writes BENCHMARKS.md from one `make bench` run: the
// machine, every figure beside its floor, the ratios, and each goal of
// issue 8 marked met or not. It computes nothing by hand-copied numbers:
// figures are benchstat's medians of the run (DIR/SUITE.csv, from
// `benchstat -format csv`), and the per-round ranges come from the raw
// `go test -bench` output (DIR/SUITE.txt, every round appended in order).
// DIR/SUITE.stat (benchstat's text) goes into the appendix.
//
//	go run ./internal/benchreport -dir bin/bench -benchtime 1s -count 6 -o BENCHMARKS.md
//
// bench/run (called by `make bench`) produces DIR.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	dir := flag.String("dir", "bin/bench", "directory holding SUITE.txt, SUITE.csv and SUITE.stat")
	out := flag.String("o", "BENCHMARKS.md", "file to write")
	benchtime := flag.String("benchtime", "", "the -benchtime of the run")
	count := flag.Int("count", 0, "the number of rounds of the run")
	cpuinfo := flag.String("cpuinfo", "/proc/cpuinfo", "where to read the CPU model")
	flag.Parse()
	if err := generate(*dir, *out, *benchtime, *count, *cpuinfo); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func generate(dir, out, benchtime string, count int, cpuinfo string) error {
	r := newResults()
	rn := run{BenchTime: benchtime, Count: count, Dir: dir, Cores: runtime.NumCPU(),
		GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Date:      time.Now().UTC().Format("2006-01-02 15:04 MST"), Stat: map[string]string{}}
	rn.CPU, rn.CPUFlags = readCPU(cpuinfo)
	found := 0
	for _, s := range suites {
		raw, err := os.ReadFile(filepath.Join(dir, s+".txt"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // reported as missing figures
		}
		if err != nil {
			return err
		}
		found++
		if err := r.readRaw(s, bytes.NewReader(raw)); err != nil {
			return err
		}
		csv, err := os.ReadFile(filepath.Join(dir, s+".csv"))
		if err != nil {
			return fmt.Errorf("benchreport: %s: %w (run benchstat -format csv first)", s, err)
		}
		if err := r.readBenchstatCSV(s, bytes.NewReader(csv)); err != nil {
			return err
		}
		if stat, err := os.ReadFile(filepath.Join(dir, s+".stat")); err == nil {
			rn.Stat[s] = string(stat)
		}
	}
	if found == 0 {
		return fmt.Errorf("benchreport: no raw output (SUITE.txt) in %s", dir)
	}
	var buf bytes.Buffer
	if err := write(&buf, r, rn); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// readCPU returns the model name and the crypto-relevant flags of the first
// processor in a /proc/cpuinfo file ("unknown" without one).
func readCPU(path string) (string, []string) {
	f, err := os.Open(path)
	if err != nil {
		return "unknown (" + runtime.GOARCH + ")", nil
	}
	defer f.Close()
	model := ""
	var flags []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		case "flags":
			if flags == nil { // the first processor's
				have := strings.Fields(v)
				for _, f := range []string{"aes", "pclmulqdq", "sha_ni", "avx2", "vaes", "avx512f"} {
					if slices.Contains(have, f) {
						flags = append(flags, f)
					}
				}
			}
		}
	}
	if model == "" {
		model = "unknown (" + runtime.GOARCH + ")"
	}
	return model, flags
}
