package main_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/schema"
)

// rewrapSetup is financial-service's keys and a sealer for it in the test
// process (frontend's side).
type rewrapSetup struct {
	keysDir
	file *schema.File
	doc  reflect.Value
}

func newRewrapSetup(t *testing.T) *rewrapSetup {
	t.Helper()
	k := sealSetup(t)
	f, err := schema.ParseFile([]byte(accountSchema))
	require.NoError(t, err)
	doc := reflect.New(f.Type)
	require.NoError(t, json.Unmarshal([]byte(accountDoc), doc.Interface()))
	return &rewrapSetup{keysDir: k, file: f, doc: doc}
}

// seal returns n distinct envelopes sealed for financial-service under the
// current primary keys of its keysets, one data key for all of them.
func (s *rewrapSetup) seal(t *testing.T, n int) [][]byte {
	t.Helper()
	priv := s.handle(t, "fin-hpke.json")
	pub, err := priv.Public()
	require.NoError(t, err)
	to, err := envelope.NewHPKERecipient(pub)
	require.NoError(t, err)
	codec, err := fieldcrypt.New(fieldcrypt.Config{Self: "frontend", Reuse: envelope.Reuse{MaxMessages: 1 << 20, MaxAge: time.Hour},
		Recipients: map[string]fieldcrypt.Recipient{"financial-service": {To: to, Deterministic: s.handle(t, "fin-det.json")}}})
	require.NoError(t, err)
	out := make([][]byte, n)
	for i := range out {
		out[i], err = codec.Seal(s.doc.Interface(), "financial-service")
		require.NoError(t, err)
	}
	return out
}

// writeStore writes lines envelopes, cycling through groups in order: the
// first share of lines from groups[0], and so on.
func writeStore(t *testing.T, path string, lines int, groups [][][]byte, shares []float64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	g, limit := 0, int(shares[0]*float64(lines))
	for i := 0; i < lines; i++ {
		for i >= limit && g+1 < len(groups) {
			g++
			limit += int(shares[g] * float64(lines))
		}
		w.Write(groups[g][i%len(groups[g])])
		w.WriteByte('\n')
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func primaryOf(t *testing.T, h *keyset.Handle) uint32 {
	t.Helper()
	return h.KeysetInfo().GetPrimaryKeyId()
}

func (s *rewrapSetup) addPromote(t *testing.T, file string) uint32 {
	t.Helper()
	s.ok(t, "key", "add", "--file", file, "--promote")
	return primaryOf(t, s.handle(t, file))
}

var rewrapArgs = args("rewrap --self financial-service --keyset fin-hpke.json --deterministic fin-det.json")

// TestRewrap rewraps a store of 100 000 envelopes (2 000 with -short)
// sealed under two HPKE keys, after a rotation of both keysets: memory stays
// flat, the summary counts each old key, every output opens with the new
// keys only (the old ones disabled), and the input is untouched.
func TestRewrap(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 2_000
	}
	s := newRewrapSetup(t)
	keyA := primaryOf(t, s.handle(t, "fin-hpke.json"))
	detOld := primaryOf(t, s.handle(t, "fin-det.json"))
	underA := s.seal(t, 50)
	keyB := s.addPromote(t, "fin-hpke.json")
	underB := s.seal(t, 50)
	keyC := s.addPromote(t, "fin-hpke.json")
	detNew := s.addPromote(t, "fin-det.json")

	writeStore(t, s.path("small.jsonl"), 2_000, [][][]byte{underA, underB}, []float64{0.6, 0.4})
	writeStore(t, s.path("store.jsonl"), n, [][][]byte{underA, underB}, []float64{0.6, 0.4})
	inSum := fileSum(t, s.path("store.jsonl"))

	small := s.ok(t, append(rewrapArgs, "--in", "small.jsonl", "--out", "small.out.jsonl")...)
	start := time.Now()
	big := s.ok(t, append(rewrapArgs, "--in", "store.jsonl", "--out", "store.out.jsonl")...)
	elapsed := time.Since(start)
	st, err := os.Stat(s.path("store.jsonl"))
	require.NoError(t, err)
	t.Logf("rewrap of %d envelopes (%.1f MiB in, as much out): %s, peak RSS %.1f MiB (2 000 envelopes: %.1f MiB)",
		n, float64(st.Size())/(1<<20), elapsed.Round(time.Millisecond), float64(big.maxRSSKiB)/1024, float64(small.maxRSSKiB)/1024)
	// Streaming: the peak does not grow with the store. The bound leaves
	// room for GC pacing on a loaded machine (typically 20 to 35 MiB, the
	// Go runtime and Tink being about 18 MiB of it).
	require.Less(t, big.maxRSSKiB, int64(96<<10), "peak RSS below 96 MiB")
	if !testing.Short() {
		require.Less(t, big.maxRSSKiB, st.Size()/1024, "peak RSS below the size of the input")
	}

	// The summary counts the envelopes each key had opened.
	require.Contains(t, big.stdout, fmt.Sprintf("rewrapped %d envelopes in 1 files", n))
	require.Contains(t, big.stdout, fmt.Sprintf("  hpke key %d: %d\n", keyA, n*6/10))
	require.Contains(t, big.stdout, fmt.Sprintf("  hpke key %d: %d\n", keyB, n*4/10))
	require.Contains(t, big.stdout, fmt.Sprintf("  deterministic key %d: %d\n", detOld, n))
	require.Contains(t, big.stdout, fmt.Sprintf("now under: hpke key %d; deterministic key %d", keyC, detNew))
	require.Equal(t, inSum, fileSum(t, s.path("store.jsonl")), "input untouched")
	require.Equal(t, os.FileMode(0o600), mode(t, s.path("store.out.jsonl")))

	// Retire every old key: the input no longer opens, every output does.
	s.ok(t, "key", "retire", "--file", "fin-hpke.json", "--id", fmt.Sprint(keyA))
	s.ok(t, "key", "retire", "--file", "fin-hpke.json", "--id", fmt.Sprint(keyB))
	s.ok(t, "key", "retire", "--file", "fin-det.json", "--id", fmt.Sprint(detOld))
	priv, det := s.handle(t, "fin-hpke.json"), s.handle(t, "fin-det.json")
	for _, ki := range priv.KeysetInfo().GetKeyInfo() {
		require.Equal(t, ki.GetKeyId() == keyC, ki.GetStatus().String() == "ENABLED")
	}
	id, err := envelope.NewHPKEIdentity(priv)
	require.NoError(t, err)
	codec, err := fieldcrypt.New(fieldcrypt.Config{Self: "financial-service", Identity: id, Deterministic: det})
	require.NoError(t, err)
	dst := reflect.New(s.file.Type)
	_, err = codec.Open(underA[0], dst.Interface())
	require.ErrorIs(t, err, envelope.ErrKeyRetired)

	want := reflect.New(s.file.Type)
	require.NoError(t, json.Unmarshal([]byte(accountDoc), want.Interface()))
	want.Elem().FieldByName("F6_notes").SetString("") // never sent
	in, err := os.Open(s.path("store.jsonl"))
	require.NoError(t, err)
	defer in.Close()
	out, err := os.Open(s.path("store.out.jsonl"))
	require.NoError(t, err)
	defer out.Close()
	ins, outs := bufio.NewScanner(in), bufio.NewScanner(out)
	ins.Buffer(nil, 1<<20)
	outs.Buffer(nil, 1<<20)
	lines := 0
	for outs.Scan() {
		require.True(t, ins.Scan())
		line := outs.Bytes()
		if lines%1000 == 0 { // ciphertexts changed, header kept
			before, err := envelope.Parse(ins.Bytes())
			require.NoError(t, err)
			after, err := envelope.Parse(line)
			require.NoError(t, err)
			require.Equal(t, before.Header.ID, after.Header.ID)
			require.Equal(t, fmt.Sprint(keyC), after.Header.Key.KeyID)
			require.NotEqual(t, markerCT(t, before.Data, "owner"), markerCT(t, after.Data, "owner"))
			require.NotEqual(t, markerCT(t, before.Data, "ssn"), markerCT(t, after.Data, "ssn"))
		}
		hdr, err := codec.OpenFrom("frontend", line, dst.Interface())
		require.NoError(t, err, "line %d", lines+1)
		require.Equal(t, fmt.Sprint(keyC), hdr.Key.KeyID)
		require.Equal(t, want.Elem().Interface(), dst.Elem().Interface(), "line %d", lines+1)
		lines++
	}
	require.NoError(t, outs.Err())
	require.False(t, ins.Scan())
	require.Equal(t, n, lines)
}

// markerCT returns the "ct" of the marker at a top-level member.
func markerCT(t *testing.T, data []byte, member string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &m))
	var mk struct {
		CT string `json:"ct"`
	}
	require.NoError(t, json.Unmarshal(m[member], &mk))
	require.NotEmpty(t, mk.CT)
	return mk.CT
}

// TestRewrapInterrupted stops a run of 100 000 envelopes mid-way, with
// SIGINT and with SIGKILL: the input is intact and the output is absent.
func TestRewrapInterrupted(t *testing.T) {
	s := newRewrapSetup(t)
	envs := s.seal(t, 10)
	s.addPromote(t, "fin-hpke.json")
	writeStore(t, s.path("store.jsonl"), 100_000, [][][]byte{envs}, []float64{1})
	inSum := fileSum(t, s.path("store.jsonl"))

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, append(rewrapArgs, "--in", "store.jsonl", "--out", "out.jsonl", "--progress-interval", "1ms")...)
			cmd.Dir = s.dir
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, s.env...)
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			require.NoError(t, cmd.Start())
			sc := bufio.NewScanner(stderr)
			var seen []string
			for sc.Scan() {
				seen = append(seen, sc.Text())
				if strings.Contains(sc.Text(), "envelopes,") { // a progress line: mid-run
					break
				}
			}
			require.NoError(t, cmd.Process.Signal(sig))
			rest, _ := io.ReadAll(stderr)
			err = cmd.Wait()
			require.Error(t, err, "the run must not complete: %v", seen)
			all := strings.Join(seen, "\n") + "\n" + string(rest)
			if sig == syscall.SIGINT {
				require.Equal(t, 1, cmd.ProcessState.ExitCode(), all)
				require.Contains(t, all, "xsvc: rewrap: interrupted at store.jsonl line ")
				require.Contains(t, all, "the input is untouched")
				leftovers, _ := filepath.Glob(filepath.Join(s.dir, ".out.jsonl.xsvc-tmp-*"))
				require.Empty(t, leftovers, "temporary file removed on SIGINT")
			}
			_, err = os.Stat(s.path("out.jsonl"))
			require.True(t, os.IsNotExist(err), "no output after %v", sig)
			require.Equal(t, inSum, fileSum(t, s.path("store.jsonl")), "input intact after %v", sig)
		})
	}
	// After a kill -9 the next run completes (the leftover temporary file
	// is hidden and ignored).
	res := s.ok(t, append(rewrapArgs, "--in", "store.jsonl", "--out", "out.jsonl")...)
	require.Contains(t, res.stdout, "rewrapped 100000 envelopes")
}

// TestRewrapDirectory: a directory of stores, a failure in the middle, and
// a restart with --resume that skips the complete outputs.
func TestRewrapDirectory(t *testing.T) {
	s := newRewrapSetup(t)
	envs := s.seal(t, 5)
	s.addPromote(t, "fin-hpke.json")
	require.NoError(t, os.Mkdir(s.path("in"), 0o700))
	writeStore(t, s.path("in/a.jsonl"), 20, [][][]byte{envs}, []float64{1})
	writeStore(t, s.path("in/c.ndjson"), 20, [][][]byte{envs}, []float64{1})
	writeStore(t, s.path("in/ignored.txt"), 1, [][][]byte{envs}, []float64{1})
	// b has a tampered envelope on line 5 and a blank line.
	tampered := bytes.Replace(envs[0], []byte(`"balance":12.5`), []byte(`"balance":13.5`), 1)
	good := bytes.Join(append(append([][]byte{}, envs[:4]...), tampered, nil, envs[1]), []byte("\n"))
	fixed := bytes.Join(append(append([][]byte{}, envs[:4]...), envs[4], nil, envs[1]), []byte("\n"))
	require.NoError(t, os.WriteFile(s.path("in/b.jsonl"), append(good, '\n'), 0o600))

	dirArgs := append(rewrapArgs, "--in", "in", "--out", "out")
	s.failsWith(t, 1, dirArgs, "in/b.jsonl line 5: the envelope does not open", "the output was not written")
	_, err := os.Stat(s.path("out/a.jsonl"))
	require.NoError(t, err, "a finished before b failed")
	for _, f := range []string{"out/b.jsonl", "out/c.ndjson", "out/ignored.txt"} {
		_, err := os.Stat(s.path(f))
		require.True(t, os.IsNotExist(err), f)
	}
	leftovers, _ := filepath.Glob(s.path("out/.*"))
	require.Empty(t, leftovers)

	require.NoError(t, os.WriteFile(s.path("in/b.jsonl"), append(fixed, '\n'), 0o600))
	s.failsWith(t, 1, dirArgs, "output out/a.jsonl already exists", "--resume", "--force")
	res := s.ok(t, append(dirArgs, "--resume")...)
	require.Contains(t, res.stderr, "in/a.jsonl: output out/a.jsonl exists (complete), skipped")
	require.Contains(t, res.stdout, "rewrapped 26 envelopes in 2 files (1 skipped as complete)")
	outB, err := os.ReadFile(s.path("out/b.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 7, bytes.Count(outB, []byte("\n")))
	require.Contains(t, string(outB), "\n\n", "blank line kept")
	res = s.ok(t, append(dirArgs, "--force")...)
	require.Contains(t, res.stdout, "rewrapped 46 envelopes in 3 files")
	s.failsWith(t, 2, append(dirArgs, "--force", "--resume"), "exclude each other")

	// Envelopes under a key the keyset has disabled, or for another
	// service, are refused with a hint.
	s.ok(t, "key", "add", "--file", "fin-hpke.json", "--promote")
	h := s.handle(t, "fin-hpke.json")
	for _, ki := range h.KeysetInfo().GetKeyInfo() {
		if ki.GetKeyId() != h.KeysetInfo().GetPrimaryKeyId() {
			s.ok(t, "key", "retire", "--file", "fin-hpke.json", "--id", fmt.Sprint(ki.GetKeyId()))
		}
	}
	s.failsWith(t, 1, append(rewrapArgs, "--in", "in/a.jsonl", "--out", "a2.jsonl"), "in/a.jsonl line 1", "is retired", "re-enable")
	s.failsWith(t, 1, args("rewrap --self analytics-service --keyset fin-hpke.json --in out/a.jsonl --out a3.jsonl"), "does not open", "--self")
	s.failsWith(t, 1, append(rewrapArgs, "--in", "in/a.jsonl", "--out", "a4.jsonl", "--max-line", "100"), "longer than 100 bytes", "--max-line")
	s.failsWith(t, 2, append(rewrapArgs, "--in", "in/a.jsonl", "--out", "in/a.jsonl", "--force"), "is the input itself")
	s.failsWith(t, 1, append(rewrapArgs, "--in", "nope.jsonl", "--out", "x.jsonl"), "nope.jsonl does not exist")
}
