package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The cast. Callers that are not one of the three services exist so that the
// demo can show an unauthorized caller and the Node client's two schemes.
const (
	frontend   = "frontend"
	financial  = "financial-service"
	analytics  = "analytics-service"
	marketing  = "marketing-service" // a known caller that financial-service's /accounts does not admit
	nodeClient = "node-client"       // examples/node-client, v1
	legacyGW   = "legacy-gateway"    // examples/node-client, the original algorithm
)

type options struct {
	exe  string // this program: every child is a copy of it with roleEnv set
	keep bool   // keep the temporary directory
	// requireNode fails the run when node is missing (CI), instead of skipping
	// the Node client.
	requireNode bool
}

// orchestrate runs the whole demo and reports the first expectation that did
// not hold.
func orchestrate(ctx context.Context, out io.Writer, opt options) (err error) {
	w := &syncWriter{w: out}
	dir, err := os.MkdirTemp("", "xsvc-demo-*")
	if err != nil {
		return err
	}
	if opt.keep {
		defer w.printf("\nkept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	w.printf("== crossservice demo: %s, %s and %s over TLS 1.3 on 127.0.0.1 ==\n", frontend, financial, analytics)
	secrets, err := setup(dir)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	w.printf("setup: a development CA, one certificate per service (mutual TLS), HPKE and AES-SIV keysets\n")
	w.printf("       encrypted under a master key, HMAC signing keys; all in a temporary directory\n\n")

	common := []string{"APP_ENV=production", "XSVC_DEMO_DIR=" + dir}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
		for _, p := range procs {
			if p.name == financial || p.name == analytics {
				err = errors.Join(err, p.check())
			}
		}
	}()

	fin, err := start(ctx, w, opt.exe, financial, append(common,
		"SERVICE_NAME="+financial,
		"FRONTEND_API_KEY="+secrets.frontendToFinancial, "FRONTEND_API_KEY_ID=fe-2026-11",
		"MARKETING_SERVICE_API_KEY="+secrets.marketing, "MARKETING_SERVICE_API_KEY_ID=mk-1",
		"NODE_CLIENT_API_KEY="+secrets.node, "NODE_CLIENT_API_KEY_ID=node-1",
		"LEGACY_GATEWAY_API_KEY="+secrets.legacy,
	))
	if err != nil {
		return err
	}
	procs = append(procs, fin)
	an, err := start(ctx, w, opt.exe, analytics, append(common,
		"SERVICE_NAME="+analytics,
		"FRONTEND_API_KEY="+secrets.frontendToAnalytics, "FRONTEND_API_KEY_ID=fe-an-1",
	))
	if err != nil {
		return err
	}
	procs = append(procs, an)

	fe, err := start(ctx, w, opt.exe, frontend, append(common,
		"SERVICE_NAME="+frontend,
		"FINANCIAL_SERVICE_API_URL="+fin.url, "FINANCIAL_SERVICE_API_KEY="+secrets.frontendToFinancial,
		"FINANCIAL_SERVICE_API_KEY_ID=fe-2026-11",
		"ANALYTICS_SERVICE_API_URL="+an.url, "ANALYTICS_SERVICE_API_KEY="+secrets.frontendToAnalytics,
		"ANALYTICS_SERVICE_API_KEY_ID=fe-an-1",
		"XSVC_DEMO_MARKETING_KEY="+secrets.marketing,
	))
	if err != nil {
		return err
	}
	procs = append(procs, fe)
	if err := fe.wait(ctx); err != nil {
		return fmt.Errorf("%s: %w", frontend, err)
	}

	if err := runNode(ctx, w, opt, dir, fin.url, secrets); err != nil {
		return err
	}

	// What each handler received, from the services' own output: financial
	// must have the owner and SSN in clear after opening; analytics must never
	// have seen them, neither in clear nor as ciphertext.
	for _, p := range []*proc{fin, an} {
		p.stop()
	}
	finOut, anOut := fin.output(), an.output()
	switch {
	case !strings.Contains(finOut, `"owner":"`+demoOwner+`"`) || !strings.Contains(finOut, `"ssn":"`+demoSSN+`"`):
		return errors.New("financial-service did not receive the owner and SSN decrypted")
	case strings.Contains(anOut, demoOwner) || strings.Contains(anOut, demoSSN):
		return errors.New("analytics-service saw the owner or the SSN")
	case strings.Contains(anOut, `"owner"`) || strings.Contains(anOut, `"ssn"`) || strings.Contains(anOut, `"notes"`):
		return errors.New("an unshared field crossed the wire to analytics-service")
	case strings.Contains(finOut+anOut, demoNotes):
		return errors.New("the unshared notes field left the frontend")
	}
	w.printf("\ndemo: every expectation held: each service received exactly its fields, the four attacks were refused\n")
	return nil
}

type demoSecrets struct {
	frontendToFinancial, frontendToAnalytics, marketing, node, legacy string
}

// randomKey returns 32 random bytes as 64 hex characters: the shape of
// `openssl rand -hex 32`, used as its 64 bytes (SPEC.md, keys).
func randomKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// proc is one child process of the demo.
type proc struct {
	name string
	cmd  *exec.Cmd
	url  string // announced by a service on its first line

	mu   sync.Mutex
	buf  strings.Builder // everything it printed
	done chan struct{}   // closed when its output has been read to the end
	once sync.Once
	err  error
}

const readyPrefix = "READY "

// start runs this program as role, copies its output to w with a prefix and,
// for a service, waits until it announces its URL.
func start(ctx context.Context, w *syncWriter, exe, role string, env []string) (*proc, error) {
	p := &proc{name: role, done: make(chan struct{})}
	p.cmd = exec.Command(exe)
	p.cmd.Env = append(os.Environ(), append([]string{roleEnv + "=" + role}, env...)...)
	p.cmd.Stdin = nil
	pr, pw := io.Pipe()
	p.cmd.Stdout = pw
	p.cmd.Stderr = pw
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	ready := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, readyPrefix); ok && p.url == "" {
				ready <- u
				continue
			}
			p.mu.Lock()
			p.buf.WriteString(line + "\n")
			p.mu.Unlock()
			if line == "" {
				w.printf("\n")
				continue
			}
			w.printf("[%s] %s\n", role, line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
	}()
	if role == frontend {
		return p, nil
	}
	select {
	case u := <-ready:
		p.url = u
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready", role)
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start within 30s", role)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// wait waits for the process to exit and returns its failure.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
	if p.err != nil {
		return p.err
	}
	return nil
}

// stop asks a service to shut down, then kills it after five seconds.
func (p *proc) stop() {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// check reports a service that ended with an error other than its shutdown.
func (p *proc) check() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

func (p *proc) output() string {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// runNode runs examples/node-client against financial-service when node is
// installed (and fails under requireNode when it is not).
func runNode(ctx context.Context, w *syncWriter, opt options, dir, finURL string, s demoSecrets) error {
	node, err := exec.LookPath("node")
	if err != nil {
		if opt.requireNode {
			return errors.New("node is not installed (CI requires the Node client to run)")
		}
		w.printf("\n-- node client: skipped (node is not installed; apt-get install nodejs)\n")
		return nil
	}
	script, err := findScript()
	if err != nil {
		return err
	}
	w.printf("\n-- node client: a plain Node.js script, written from SPEC.md, signs v1 and legacy requests\n")
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append(os.Environ(),
		"FINANCIAL_SERVICE_API_URL="+finURL,
		"NODE_CLIENT_API_KEY="+s.node, "NODE_CLIENT_API_KEY_ID=node-1",
		"LEGACY_GATEWAY_API_KEY="+s.legacy,
		"APP_ENV=production",
		"XSVC_CERT_DIR="+filepath.Join(dir, "certs"),
	)
	cmd.Stdout = prefixWriter(w, "node-client")
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("node client: %w", err)
	}
	return nil
}

// findScript locates examples/node-client/client.mjs from the working
// directory (the module root under make, examples/demo under go test).
func findScript() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(d, "examples", "node-client", "client.mjs")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("examples/node-client/client.mjs not found above the working directory")
		}
		d = parent
	}
}

// syncWriter serialises lines from several processes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format, args...)
}

type linePrefixer struct {
	w      *syncWriter
	prefix string
	rest   []byte
}

func prefixWriter(w *syncWriter, name string) io.Writer {
	return &linePrefixer{w: w, prefix: "[" + name + "] "}
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.rest = append(l.rest, b...)
	for {
		i := strings.IndexByte(string(l.rest), '\n')
		if i < 0 {
			return len(b), nil
		}
		l.w.printf("%s%s\n", l.prefix, l.rest[:i])
		l.rest = l.rest[i+1:]
	}
}
