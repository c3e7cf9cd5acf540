package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/devcert"
)

// runRole runs one child process of the demo and returns its exit code.
func runRole(role string) int {
	var err error
	switch role {
	case financial, analytics:
		err = serve(role)
	case frontend:
		err = runFrontend()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

// serve runs financial-service or analytics-service: a TLS 1.3 server with
// mutual authentication, the verifying middleware configured from the
// environment with the original variable names, and one handler that opens
// the sealed Account.
func serve(self string) error {
	dir := os.Getenv("XSVC_DEMO_DIR")
	env, err := transport.EnvironmentFromEnv(nil)
	if err != nil {
		return err
	}
	kr, err := openKeyring(dir)
	if err != nil {
		return err
	}
	ident, err := kr.identity(self)
	if err != nil {
		return err
	}
	toFrontend, err := kr.recipient(frontend)
	if err != nil {
		return err
	}
	cfg := fieldcrypt.Config{
		Self:       self,
		Identity:   ident,
		Recipients: map[string]fieldcrypt.Recipient{frontend: {To: toFrontend}},
	}
	if self == financial {
		if cfg.Deterministic, err = kr.private(financial + ".det.json"); err != nil {
			return err
		}
	}
	codec, err := fieldcrypt.New(cfg)
	if err != nil {
		return err
	}

	callers := []string{frontend}
	var legacy []string
	if self == financial {
		callers = append(callers, marketing, nodeClient, legacyGW)
		legacy = []string{legacyGW}
	}
	keys, err := transport.CallerKeysFromEnv(nil, callers...)
	if err != nil {
		return err
	}
	// The verifier's log lines say which check refused a request, the
	// measured skew and a hash of the canonical string; never a key, a
	// signature or a body. The demo shows them.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	v, err := transport.New(transport.Config{
		Service: self, Environment: env, Keys: keys, LegacyCallers: legacy, Logger: logger,
	})
	if err != nil {
		return err
	}
	onlyFrontend, err := v.Require(frontend)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /health-check", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})))
	if self == financial {
		mux.Handle("POST /accounts", onlyFrontend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var acct Account
			if !receive(w, r, codec, &acct) {
				return
			}
			risk := "low"
			if acct.Balance > 10_000 {
				risk = "review"
			}
			if err := transport.WriteSealed(w, r, codec, http.StatusOK, Receipt{AccountID: acct.ID, Status: "accepted", RiskBand: risk}); err != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		})))
		admitNode, err := v.Require(nodeClient, legacyGW)
		if err != nil {
			return err
		}
		mux.Handle("POST /echo", admitNode(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := transport.CallerFrom(r.Context())
			body, _ := io.ReadAll(r.Body)
			fmt.Printf("%s called /echo with a %s signature (%d bytes)\n", c.Service, schemeName(c.Scheme), len(body))
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(Echo{Caller: c.Service, Scheme: schemeName(c.Scheme), Bytes: len(body)})
		})))
	} else {
		mux.Handle("POST /events", onlyFrontend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var acct Account
			if !receive(w, r, codec, &acct) {
				return
			}
			if err := transport.WriteSealed(w, r, codec, http.StatusOK, Ack{Accepted: true, Fields: 2}); err != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		})))
	}

	certs := filepath.Join(dir, "certs")
	pair, err := devcert.LoadPair(certs, self)
	if err != nil {
		return err
	}
	pool, err := devcert.LoadPool(certs)
	if err != nil {
		return err
	}
	tlsCfg, err := transport.ServerTLSConfig([]tls.Certificate{pair}, pool)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := transport.CheckListener(env, ln.Addr(), true); err != nil {
		return err
	}
	srv := &http.Server{
		Handler: mux, TLSConfig: tlsCfg,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Printf("%shttps://%s\n", readyPrefix, ln.Addr())
	fmt.Printf("listening on https://%s (TLS 1.3 only, client certificates required, APP_ENV=%s)\n", ln.Addr(), env)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// receive shows what crossed the wire, opens it with transport.OpenRequest
// (which also checks that the envelope's sender is the verified caller) and
// shows what the handler got. It answers the refusal itself and returns false
// when the body does not open.
func receive(w http.ResponseWriter, r *http.Request, codec *fieldcrypt.Codec, dst *Account) bool {
	caller, _ := transport.CallerFrom(r.Context())
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return false
	}
	fmt.Printf("%s %s from %s (verified: signature, timestamp, request id, mTLS identity)\n", r.Method, r.URL.Path, caller.Service)
	fmt.Printf("  on the wire:    %s\n", shorten(raw))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if _, err := transport.OpenRequest(r, codec, dst); err != nil {
		var oe *transport.OpenError
		if errors.As(err, &oe) {
			fmt.Printf("  refused: %s\n", oe.Code)
			oe.WriteProblem(w, r)
			return false
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return false
	}
	fmt.Printf("  after opening:  %s   (zero fields left out)\n", nonZero(dst))
	return true
}

// nonZero renders v as JSON without its zero-valued members, so that what a
// recipient did not receive does not appear at all.
func nonZero(v any) string {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for k, x := range m {
		if x == nil || x == "" || x == 0.0 || x == false {
			delete(m, k)
		}
	}
	b, _ = json.Marshal(m)
	return string(b)
}

var longB64 = regexp.MustCompile(`"(ct|wk|tag)":"([A-Za-z0-9_-]{10})[A-Za-z0-9_-]+"`)

// shorten cuts ciphertexts to their first characters so a line stays readable.
func shorten(b []byte) string {
	return longB64.ReplaceAllString(string(b), `"$1":"$2…"`)
}

func schemeName(s transport.Scheme) string {
	if s == transport.SchemeV1 {
		return "v1"
	}
	return "legacy"
}
