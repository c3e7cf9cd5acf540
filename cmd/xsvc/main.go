// Command xsvc is the terminal side of crossservice: keys, sealing and
// opening JSON documents against a schema file, signing and verifying
// requests with an explanation of the canonical string, probing a service
// the way the original test utility did, the exposure report, re-wrapping
// stored envelopes after a key rotation, and development certificates.
//
// It is built on the public packages of the module only. Run `xsvc --help`
// for the commands and `xsvc <command> --help` for each one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes, documented in `xsvc --help`.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is the process environment as the commands see it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	// stderrIsTerminal: progress is drawn as a bar, not printed as lines.
	stderrIsTerminal bool
}

// command is one leaf command such as "key generate".
type command struct {
	name    string // "key generate"
	summary string // one line for xsvc --help
	run     func(ctx context.Context, e *env, args []string) error
}

var commands []command

func register(name, summary string, run func(ctx context.Context, e *env, args []string) error) {
	commands = append(commands, command{name: name, summary: summary, run: run})
}

// cliError is a failure the user can act on: printed as one line
// "xsvc: <command>: <what> (<hint>)" with its exit code.
type cliError struct {
	code int
	what string
	hint string
}

func (e *cliError) Error() string {
	if e.hint == "" {
		return e.what
	}
	return e.what + " (" + e.hint + ")"
}

// fail is a failure (exit 1); usage a mistake on the command line (exit 2).
func fail(what, hint string) error  { return &cliError{code: exitFailure, what: what, hint: hint} }
func usage(what, hint string) error { return &cliError{code: exitUsage, what: what, hint: hint} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv}
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		e.stderrIsTerminal = true
	}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		mainUsage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return run(ctx, e, append(args[1:], "--help"))
		}
		mainUsage(e.stdout)
		return exitOK
	}
	// The longest registered name that prefixes the arguments.
	var cmd *command
	var rest []string
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(args) >= len(words) && slicesEqual(args[:len(words)], words) &&
			(cmd == nil || len(words) > len(strings.Fields(cmd.name))) {
			cmd, rest = &commands[i], args[len(words):]
		}
	}
	if cmd == nil {
		// A group name alone ("xsvc key") or with --help lists its commands.
		var group []command
		for _, c := range commands {
			if strings.HasPrefix(c.name, args[0]+" ") {
				group = append(group, c)
			}
		}
		if len(group) > 0 {
			out, code := e.stderr, exitUsage
			if len(args) > 1 && isHelp(args[1]) {
				out, code = e.stdout, exitOK
			} else if len(args) > 1 {
				fmt.Fprintf(e.stderr, "xsvc: %s: unknown command %q (see xsvc %s --help)\n", args[0], args[1], args[0])
				return exitUsage
			}
			fmt.Fprintf(out, "Usage: xsvc %s <command> [flags]\n\nCommands:\n", args[0])
			for _, c := range group {
				fmt.Fprintf(out, "  %-16s %s\n", strings.TrimPrefix(c.name, args[0]+" "), c.summary)
			}
			fmt.Fprintf(out, "\nRun xsvc %s <command> --help for its flags.\n", args[0])
			return code
		}
		fmt.Fprintf(e.stderr, "xsvc: unknown command %q (see xsvc --help)\n", args[0])
		return exitUsage
	}
	err := cmd.run(ctx, e, rest)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ce *cliError
	if !errors.As(err, &ce) {
		ce = &cliError{code: exitFailure, what: err.Error()}
	}
	fmt.Fprintf(e.stderr, "xsvc: %s: %s\n", cmd.name, oneLine(ce.Error()))
	return ce.code
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// oneLine keeps an error on one line whatever a library put in it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `xsvc: crossservice from the terminal.

Usage: xsvc <command> [flags]      xsvc <command> --help

Commands:
`)
	sorted := append([]command(nil), commands...)
	sort.SliceStable(sorted, func(i, j int) bool { return order(sorted[i].name) < order(sorted[j].name) })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Keys and secrets:
  Keysets and signing-key files are stored encrypted under a master key: a Tink
  AEAD keyset in Tink's JSON format, made once with
      xsvc key generate --type aead --insecure-cleartext --out master.json
  and kept out of the repository (or in a secret manager). Give it with
  --master-key-file master.json or the environment variable XSVC_MASTER_KEY
  (the file's JSON text, or its standard base64). --insecure-cleartext reads and
  writes cleartext keys instead, for tests and development only. No command
  prints secret material; sign prints a signature, which is its purpose.

Exit codes:
  0  success
  1  failure: the operation was refused or failed (one line on stderr says what
     and what to do)
  2  usage: unknown command or flag, missing or invalid argument

Environment:
  XSVC_MASTER_KEY    master key (see above)
  APP_ENV            development | staging | production (sign, verify, probe)
  <TARGET>_API_URL, <TARGET>_API_KEY, <TARGET>_API_KEY_ID, INTERNAL_API_KEY,
  INTERNAL_API_KEY_ID, SERVICE_NAME
                     as the library reads them (probe, sign, verify)
  XSVC_CA_FILE       PEM CA bundle for probe (xsvc certs dev writes ca.pem)
`)
}

func order(name string) int {
	for i, n := range []string{"key", "seal", "open", "sign", "verify", "probe", "report", "rewrap", "certs"} {
		if strings.HasPrefix(name, n) {
			return i
		}
	}
	return 99
}

// newFlags returns a flag set that reports errors as usage errors and
// prints its help (synopsis, description, flags) on -h / --help.
func newFlags(e *env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("xsvc "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := e.stdout
		fmt.Fprintf(w, "Usage: xsvc %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(description))
		var n int
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Usage, "(hidden)") {
				return
			}
			if n == 0 {
				fmt.Fprint(w, "\nFlags:\n")
			}
			n++
			typ, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if typ != "" {
				line += " " + typ
			}
			fmt.Fprintln(w, line)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
				usage += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "      %s\n", usage)
		})
		fmt.Fprint(w, "\nExit codes: 0 success, 1 failure, 2 usage.\n")
	}
	return fs
}

// parse parses args with fs; --help prints the help and returns
// flag.ErrHelp; stray positional arguments are usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return flag.ErrHelp
		}
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			msg = "unknown flag --" + strings.TrimPrefix(name, "-")
		}
		return usage(msg, "see "+fs.Name()+" --help")
	}
	if fs.NArg() > 0 {
		return usage(fmt.Sprintf("unexpected argument %q", fs.Arg(0)), "flags come as --name value; see "+fs.Name()+" --help")
	}
	return nil
}

// required returns a usage error naming the first empty flag.
func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return usage("--"+n+" is required", "see "+fs.Name()+" --help")
		}
	}
	return nil
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
