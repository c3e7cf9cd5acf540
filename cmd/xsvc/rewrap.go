package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lifenavigator/crossservice/envelope"
)

func init() {
	register("rewrap", "re-encrypt stored envelopes (JSON Lines) under the current primary keys", rewrapCmd)
}

// rewrapJob is one input file and its output.
type rewrapJob struct {
	in, out string
	skip    bool // the output exists and --resume was given
}

// rewrapStats are the counts of a run.
type rewrapStats struct {
	envelopes, blank int
	files, skipped   int
	from             map[string]int // "hpke key 123" → envelopes
	det              map[string]int // deterministic key id → fields
	to               map[string]bool
	detTo            string
}

func rewrapCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "rewrap", "--self SERVICE --keyset FILE --in PATH --out PATH [flags]", `
Re-encrypts stored envelopes addressed to --self under the current primary keys
of its keysets, for key rotation: run it after xsvc key add --promote (or key
promote) and before xsvc key retire, so that nothing stored still needs the old
key. Every envelope keeps its id, sender, recipient, type and time; its data key
is new and wrapped for --self's primary key, every random field is re-encrypted
under it, every deterministic field under the primary of --deterministic, and
the integrity tag is recomputed. No schema is needed.

--in is a JSON Lines file (one envelope per line; blank lines are kept) or a
directory, whose *.jsonl and *.ndjson files are rewrapped one by one into the
directory --out, under the same names. Lines are streamed in constant memory
(each at most --max-line bytes).

Each output file is written atomically: to a hidden temporary file in the
output directory, fsynced, then renamed into place. A failure or Ctrl-C removes
the temporary file, so an output file either is complete or does not exist, and
the input is never modified. (After a kill -9 a hidden .NAME.xsvc-tmp-* file may
remain; delete it.) A run is restartable: an existing output is complete, so
--resume skips inputs whose output exists and does the rest; --force redoes
them; without either, an existing output is an error. The unit of restart is a
file: split very large stores into several files.

Progress goes to standard error: a bar on a terminal, otherwise a line every
--progress-interval. At the end a summary says how many envelopes each key had
opened (so you know when an old key is no longer needed) and the new key ids.

--keyset is --self's private HPKE keyset (or its AEAD keyset) holding the old
keys (enabled) and the new primary; --deterministic its AES-SIV keyset likewise.
`)
	var kf keyFlags
	kf.register(fs)
	self := fs.String("self", "", "the service the envelopes are addressed to (default $SERVICE_NAME)")
	keys := fs.String("keyset", "", "its private HPKE keyset or AEAD keyset (required)")
	detKeys := fs.String("deterministic", "", "its deterministic (AES-SIV) keyset")
	in := fs.String("in", "", "a JSON Lines file or a directory of them (required)")
	out := fs.String("out", "", "the output file, or directory for a directory --in (required)")
	resume := fs.Bool("resume", false, "skip inputs whose output already exists (it is complete)")
	force := fs.Bool("force", false, "redo inputs whose output already exists, replacing it")
	maxLine := fs.Int("max-line", envelope.DefaultMaxSize, "longest line accepted, in bytes")
	interval := fs.Duration("progress-interval", 5*time.Second, "how often progress is printed when standard error is not a terminal")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *self == "" {
		*self, _ = e.lookup("SERVICE_NAME")
	}
	if *self == "" {
		return usage("--self is required", "or set SERVICE_NAME")
	}
	if err := required(fs, "keyset", "in", "out"); err != nil {
		return err
	}
	if *resume && *force {
		return usage("--resume and --force exclude each other", "--resume skips finished outputs, --force redoes them")
	}
	if *maxLine < 64 || *interval <= 0 {
		return usage("--max-line must be at least 64 and --progress-interval positive", "")
	}
	jobs, err := rewrapJobs(*in, *out, *resume, *force)
	if err != nil {
		return err
	}
	own, det, err := identity(e, &kf, *keys, *detKeys)
	if err != nil {
		return err
	}
	rw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: *self, Identity: own.identity, To: own.recipient, Deterministic: det})
	if err != nil {
		return usage(oneLine(err.Error()), "check --self and the keysets")
	}
	st := &rewrapStats{from: map[string]int{}, det: map[string]int{}, to: map[string]bool{}}
	if det != nil {
		st.detTo = fmt.Sprint(det.KeysetInfo().GetPrimaryKeyId())
	}
	start := time.Now()
	for _, j := range jobs {
		if j.skip {
			st.skipped++
			fmt.Fprintf(e.stderr, "rewrap: %s: output %s exists (complete), skipped\n", j.in, j.out)
			continue
		}
		if err := rewrapFile(ctx, e, rw, j, *force, *maxLine, *interval, st); err != nil {
			printSummary(e.stdout, st, time.Since(start))
			return err
		}
		st.files++
	}
	printSummary(e.stdout, st, time.Since(start))
	return nil
}

// rewrapJobs lists the files to do and checks their outputs up front, so
// that a run refused for an existing output has not written anything.
func rewrapJobs(in, out string, resume, force bool) ([]rewrapJob, error) {
	ist, err := os.Stat(in)
	if err != nil {
		return nil, fileError(err, "input", in)
	}
	var jobs []rewrapJob
	if ist.IsDir() {
		entries, err := os.ReadDir(in)
		if err != nil {
			return nil, fileError(err, "input directory", in)
		}
		if ost, err := os.Stat(out); err == nil && !ost.IsDir() {
			return nil, usage("--in is a directory but --out "+out+" is a file", "give an output directory")
		} else if err != nil {
			if err := os.MkdirAll(out, 0o700); err != nil {
				return nil, fileError(err, "output directory", out)
			}
		}
		for _, en := range entries {
			name := en.Name()
			if en.Type().IsRegular() && !strings.HasPrefix(name, ".") &&
				(strings.HasSuffix(name, ".jsonl") || strings.HasSuffix(name, ".ndjson")) {
				jobs = append(jobs, rewrapJob{in: filepath.Join(in, name), out: filepath.Join(out, name)})
			}
		}
		if len(jobs) == 0 {
			return nil, fail("no *.jsonl or *.ndjson file in "+in, "give a JSON Lines file or a directory of them")
		}
	} else {
		o := out
		if ost, err := os.Stat(out); err == nil && ost.IsDir() {
			o = filepath.Join(out, filepath.Base(in))
		}
		jobs = append(jobs, rewrapJob{in: in, out: o})
	}
	slices.SortFunc(jobs, func(a, b rewrapJob) int { return strings.Compare(a.in, b.in) })
	for i := range jobs {
		j := &jobs[i]
		ost, err := os.Stat(j.out)
		if err != nil {
			continue
		}
		if ist, err := os.Stat(j.in); err == nil && os.SameFile(ist, ost) {
			return nil, usage("output "+j.out+" is the input itself", "write to another file: the input is kept until you replace it")
		}
		switch {
		case resume:
			j.skip = true
		case !force:
			return nil, fail("output "+j.out+" already exists",
				"outputs are written atomically, so it is complete: use --resume to skip finished files, or --force to redo them")
		}
	}
	return jobs, nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line, '\n' included when present, in at most
// max+1 bytes. The result may alias r's buffer or buf.
func readLine(r *bufio.Reader, buf []byte, max int) ([]byte, []byte, error) {
	buf = buf[:0]
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > max+1 {
			return nil, buf, errLineTooLong
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if len(buf) == 0 {
			return chunk, buf, err
		}
		buf = append(buf, chunk...)
		return buf, buf, err
	}
}

// rewrapFile rewraps one file into a temporary file renamed to j.out.
func rewrapFile(ctx context.Context, e *env, rw *envelope.Rewrapper, j rewrapJob, force bool, maxLine int,
	interval time.Duration, st *rewrapStats) (err error) {
	f, err := os.Open(j.in)
	if err != nil {
		return fileError(err, "input", j.in)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	dir, base := filepath.Split(j.out)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".xsvc-tmp-*")
	if err != nil {
		return fileError(err, "output directory", dir)
	}
	tmpName := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fail("setting mode 0600 on "+tmpName+": "+err.Error(), "")
	}
	w := bufio.NewWriterSize(tmp, 256<<10)
	r := bufio.NewReaderSize(f, 64<<10)
	prog := newProgress(e, j.in, size, interval)
	defer prog.finish()
	var lineBuf []byte
	var read int64
	lineNo, count := 0, 0
	for {
		line, nb, rerr := readLine(r, lineBuf, maxLine)
		lineBuf = nb
		if rerr == errLineTooLong {
			return fail(fmt.Sprintf("%s line %d is longer than %d bytes", j.in, lineNo+1, maxLine),
				"raise --max-line if the envelopes are that large; the output was not written")
		}
		if rerr != nil && rerr != io.EOF {
			return fail(fmt.Sprintf("reading %s: %v", j.in, rerr), "check the file; the output was not written")
		}
		if len(line) > 0 {
			lineNo++
			read += int64(len(line))
			if ctx.Err() != nil {
				return fail(fmt.Sprintf("interrupted at %s line %d", j.in, lineNo),
					"the input is untouched and "+j.out+" was not written; run again with --resume to skip finished files")
			}
			trimmed := bytes.TrimRight(line, "\r\n")
			if len(bytes.TrimSpace(trimmed)) == 0 {
				st.blank++
				w.WriteString("\n")
			} else {
				outEnv, info, err := rw.Rewrap(trimmed)
				if err != nil {
					return rewrapLineError(err, j.in, lineNo)
				}
				w.Write(outEnv)
				w.WriteByte('\n')
				count++
				st.envelopes++
				st.from[info.From.Alg+" key "+info.From.KeyID]++
				st.to[info.To.Alg+" key "+info.To.KeyID] = true
				for _, k := range info.DeterministicKeys {
					st.det[k]++
				}
			}
			prog.update(count, read)
		}
		if rerr == io.EOF {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return fail("writing "+tmpName+": "+err.Error(), "check free space; the output was not written")
	}
	if err := tmp.Sync(); err != nil {
		return fail("syncing "+tmpName+": "+err.Error(), "check the file system; the output was not written")
	}
	if err := tmp.Close(); err != nil {
		return fail("writing "+tmpName+": "+err.Error(), "check free space; the output was not written")
	}
	if ctx.Err() != nil {
		return fail("interrupted before "+j.out+" was written", "the input is untouched; run again with --resume")
	}
	if force {
		err = os.Rename(tmpName, j.out)
	} else if err = os.Link(tmpName, j.out); err == nil {
		os.Remove(tmpName)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError(j.out, "output")
		}
		return fail("writing "+j.out+": "+err.Error(), "check the output directory")
	}
	done = true
	syncDir(dir)
	prog.finish()
	fmt.Fprintf(e.stderr, "rewrap: %s: %d envelopes -> %s\n", j.in, count, j.out)
	return nil
}

func rewrapLineError(err error, file string, line int) error {
	where := fmt.Sprintf("%s line %d", file, line)
	var kre *envelope.KeyRetiredError
	var pe *envelope.ParseError
	switch {
	case errors.As(err, &kre):
		return fail(where+": the envelope is under key "+kre.KeyID+", which is retired in the keyset",
			"re-enable it (the keyset must hold every key still used by stored data) and run again; the output was not written")
	case errors.As(err, &pe):
		return fail(where+": not an envelope ("+pe.Reason+")", "each line must be one envelope; the output was not written")
	case errors.Is(err, envelope.ErrCannotOpen):
		return fail(where+": the envelope does not open",
			"it was altered, is addressed to another service than --self, or its key is not in the keyset; the output was not written")
	}
	return fail(where+": "+oneLine(err.Error()), "the output was not written")
}

func printSummary(w io.Writer, st *rewrapStats, d time.Duration) {
	fmt.Fprintf(w, "rewrapped %d envelopes in %d files", st.envelopes, st.files)
	if st.skipped > 0 {
		fmt.Fprintf(w, " (%d skipped as complete)", st.skipped)
	}
	fmt.Fprintf(w, " in %s\n", d.Round(time.Millisecond))
	if len(st.from) > 0 {
		fmt.Fprintln(w, "envelopes by the key that opened them:")
		for _, k := range sortedKeys(st.from) {
			fmt.Fprintf(w, "  %s: %d\n", k, st.from[k])
		}
	}
	if len(st.det) > 0 {
		fmt.Fprintln(w, "envelopes by the deterministic keys that opened their fields:")
		for _, k := range sortedKeys(st.det) {
			fmt.Fprintf(w, "  deterministic key %s: %d\n", k, st.det[k])
		}
	}
	if len(st.to) > 0 {
		var to []string
		for k := range st.to {
			to = append(to, k)
		}
		slices.Sort(to)
		line := "now under: " + strings.Join(to, ", ")
		if st.detTo != "" && len(st.det) > 0 {
			line += "; deterministic key " + st.detTo
		}
		fmt.Fprintln(w, line)
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// progress reports on standard error: a bar redrawn at most ten times a
// second on a terminal, a line every interval otherwise.
type progress struct {
	e        *env
	name     string
	size     int64
	interval time.Duration
	last     time.Time
	drawn    bool
	count    int
	read     int64
}

func newProgress(e *env, name string, size int64, interval time.Duration) *progress {
	return &progress{e: e, name: name, size: size, interval: interval, last: time.Now()}
}

func (p *progress) update(count int, read int64) {
	p.count, p.read = count, read
	if count&255 != 0 {
		return // look at the clock every 256 envelopes only
	}
	every := p.interval
	if p.e.stderrIsTerminal {
		every = 100 * time.Millisecond
	}
	if now := time.Now(); now.Sub(p.last) >= every {
		p.last = now
		p.draw()
	}
}

func (p *progress) percent() float64 {
	if p.size <= 0 {
		return 0
	}
	return 100 * float64(p.read) / float64(p.size)
}

func (p *progress) draw() {
	if p.e.stderrIsTerminal {
		const width = 30
		filled := int(p.percent() / 100 * width)
		filled = min(max(filled, 0), width)
		fmt.Fprintf(p.e.stderr, "\rrewrap %s [%s%s] %5.1f%% %d envelopes", p.name,
			strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.percent(), p.count)
		p.drawn = true
		return
	}
	fmt.Fprintf(p.e.stderr, "rewrap: %s: %d envelopes, %.0f%% of %d bytes\n", p.name, p.count, p.percent(), p.size)
}

// finish ends the bar's line; it is safe to call twice.
func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.e.stderr)
		p.drawn = false
	}
}
