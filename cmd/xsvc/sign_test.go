package main_test

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/devcert"
)

const (
	frontendSecret = "frontend-to-financial-0123456789abcdef"
	otherSecret    = "another-secret-that-is-long-enough-000"
)

var canonHash = regexp.MustCompile(`canonical_sha256: ([0-9a-f]{16})`)

func TestSignVerify(t *testing.T) {
	k := newKeysDir(t)
	k = keysDir{run: k.with("XSVC_MASTER_KEY="+readString(t, k.path(k.master)), "APP_ENV=development"), master: k.master}
	k.ok(t, args("key generate --type hmac --caller frontend --target financial-api --id k1 --out sign.json")...)
	require.NoError(t, os.WriteFile(k.path("body.json"), []byte(`{"amount":12}`), 0o600))

	req := args("--method POST --url https://localhost:8443/v1/transfers?dry_run=true --content-type application/json " +
		"--body body.json --caller frontend --target financial-api --key-file sign.json")
	res := k.ok(t, append(append([]string{"sign"}, req...), "--explain")...)
	require.NoError(t, os.WriteFile(k.path("signed.txt"), []byte(res.stdout), 0o600))
	for _, w := range []string{"X-Request-ID: ", "X-Timestamp: ", "X-Service-Name: frontend", "X-Key-ID: k1", "X-Signature: ",
		"Content-Type: application/json",
		"  1  scheme        XSVC-HMAC-SHA256-V1", "  2  environment   development", "  3  caller        frontend",
		"  4  target        financial-api", "  5  key id        k1", "  8  method        POST", "  9  path          /v1/transfers",
		" 10  query         dry_run=true", " 11  content type  application/json",
		" 12  body sha256   "} {
		require.Contains(t, res.stdout, w)
	}
	signerHash := canonHash.FindStringSubmatch(res.stdout)[1]

	verify := append([]string{"verify"}, req...)
	verify = append(verify, "--headers", "signed.txt")
	// Accepted as is.
	require.Contains(t, k.ok(t, verify...).stdout, "verdict: accepted (caller frontend, key k1")
	// Another query: signature invalid, and the verifier's canonical hash
	// differs from the signer's.
	otherURL := strings.Replace(strings.Join(verify, " "), "dry_run=true", "dry_run=false", 1)
	bad := k.failsWith(t, 1, args(otherURL), "xsvc: verify: the verifier refuses the request: signature_invalid", "canonical_sha256")
	require.Contains(t, bad.stdout, "check: signature_mismatch")
	require.NotEqual(t, signerHash, canonHash.FindStringSubmatch(bad.stdout)[1])
	// Another body: the canonical hash (which leaves the body out, see
	// transport.CanonicalHash) is the signer's, so the difference is in the
	// body or the key.
	require.NoError(t, os.WriteFile(k.path("body2.json"), []byte(`{"amount":13}`), 0o600))
	bad = k.failsWith(t, 1, append(verify[:len(verify):len(verify)], "--body", "body2.json"), "signature_invalid")
	require.Equal(t, signerHash, canonHash.FindStringSubmatch(bad.stdout)[1])
	// Wrong signing key: same caller and id, another secret.
	k.ok(t, args("key generate --type hmac --caller frontend --target financial-api --id k1 --out other.json")...)
	k.failsWith(t, 1, append(append([]string{"verify"}, args(strings.Replace(strings.Join(req, " "), "sign.json", "other.json", 1))...),
		"--headers", "signed.txt"), "signature_invalid", `key "k1" of caller frontend in key file other.json`)
	// Skewed clock.
	skew := k.failsWith(t, 1, append(verify[:len(verify):len(verify)], "--clock-offset", "10m"), "timestamp_out_of_window", "NTP")
	require.Regexp(t, `skew_ms: 600\d{3}`, skew.stdout)
	// --explain on the verifier's side prints the same lines.
	ex := k.ok(t, append(verify[:len(verify):len(verify)], "--explain")...)
	require.Contains(t, ex.stdout, "canonical_sha256: "+signerHash)

	// curl, fixed timestamp and request id: reproducible.
	fixed := append(append([]string{"sign"}, req...), "--timestamp", "1767225600000", "--request-id",
		"019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01", "--curl")
	c1 := k.ok(t, fixed...).stdout
	require.Equal(t, c1, k.ok(t, fixed...).stdout)
	require.True(t, strings.HasPrefix(c1, "curl -sS -X POST -H 'X-Request-ID: 019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01'"))
	require.Contains(t, c1, "--data-binary @body.json")

	// Keys from the environment, as the library reads them.
	envRun := run{dir: k.dir, env: []string{"APP_ENV=staging", "FINANCIAL_API_KEY=" + frontendSecret, "FINANCIAL_API_KEY_ID=2026-04"}}
	res = envRun.ok(t, args("sign --url /health-check --caller frontend --target financial-api --explain")...)
	require.Contains(t, res.stdout, "X-Key-ID: 2026-04")
	require.Contains(t, res.stdout, "  2  environment   staging")
	run{dir: k.dir, env: []string{"APP_ENV=development", "INTERNAL_API_KEY=" + frontendSecret}}.
		ok(t, args("sign --url /x --caller frontend --target financial-api")...)
	// Missing environment variables are named.
	run{dir: k.dir, env: []string{"FINANCIAL_API_KEY=" + frontendSecret}}.failsWith(t, 1,
		args("sign --url /x --caller frontend --target financial-api"), "missing environment variable APP_ENV")
	run{dir: k.dir, env: []string{"APP_ENV=development"}}.failsWith(t, 1,
		args("sign --url /x --caller frontend --target financial-api"), "missing environment variable FINANCIAL_API_KEY or INTERNAL_API_KEY")
	run{dir: k.dir, env: []string{"APP_ENV=prod"}}.failsWith(t, 2,
		args("sign --url /x --caller frontend --target financial-api"), "not development, staging or production")
	// The verifier's keys from the environment too.
	envSigned := envRun.ok(t, args("sign --url /health-check --caller frontend --target financial-api")...).stdout
	require.NoError(t, os.WriteFile(k.path("env-signed.txt"), []byte(envSigned), 0o600))
	run{dir: k.dir, env: []string{"APP_ENV=staging", "FRONTEND_API_KEY=" + frontendSecret, "FRONTEND_API_KEY_ID=2026-04"}}.
		ok(t, args("verify --url /health-check --target financial-api --headers env-signed.txt")...)
	run{dir: k.dir, env: []string{"APP_ENV=staging"}}.failsWith(t, 1,
		args("verify --url /health-check --target financial-api --headers env-signed.txt"), "missing environment variable FRONTEND_API_KEY")

	// Legacy: four components.
	res = envRun.ok(t, args("sign --scheme legacy --url /api/accounts/42?include=balance --caller frontend --target financial-api --explain")...)
	require.Contains(t, res.stdout, "  1  method        GET")
	require.Contains(t, res.stdout, "  2  request path  /api/accounts/42?include=balance")
	require.NotContains(t, res.stdout, "X-Key-ID")
	envRun.failsWith(t, 2, args("sign --url /x --caller frontend"), "--target is required")
	envRun.failsWith(t, 1, args("sign --method get --url /x --caller frontend --target financial-api"), "cannot sign")
}

// probeServer is financial-api over TLS 1.3 with the library's verifier:
// /health-check admits every known caller, /admin only analytics-service.
func probeServer(t *testing.T, r run) (*httptest.Server, string) {
	t.Helper()
	r.ok(t, args("certs dev --out certs --services financial-api,frontend")...)
	certDir := filepath.Join(r.dir, "certs")
	pair, err := devcert.LoadPair(certDir, "financial-api")
	require.NoError(t, err)
	fk, err := transport.NewKey("env", []byte(frontendSecret))
	require.NoError(t, err)
	ak, err := transport.NewKey("env", []byte(otherSecret))
	require.NoError(t, err)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Development,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: fk}, {Caller: "analytics-service", Key: ak}}})
	require.NoError(t, err)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	admin, err := v.Require("analytics-service")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/health-check", v.Middleware(ok))
	mux.Handle("/admin", admin(ok))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the unknown-CA case logs a handshake error
	srv.TLS, err = transport.ServerTLSConfig([]tls.Certificate{pair}, nil)
	require.NoError(t, err)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, filepath.Join(certDir, "ca.pem")
}

func TestProbe(t *testing.T) {
	r := run{dir: t.TempDir()}
	srv, ca := probeServer(t, r)
	base := run{dir: r.dir, env: []string{"APP_ENV=development", "FINANCIAL_API_URL=" + srv.URL,
		"FINANCIAL_API_KEY=" + frontendSecret, "XSVC_CA_FILE=" + ca}}
	probe := args("probe --from frontend --to financial-api --endpoint /health-check")

	// Accepted, over TLS 1.3.
	res := base.ok(t, probe...)
	t.Logf("probe, accepted:\n%s", res.stdout)
	for _, w := range []string{"address:   127.0.0.1:", "connect:", "tls:       TLS 1.3, TLS_", "latency:", "status:    200 OK",
		"skew:", "the clocks agree", "verdict:   accepted (200 OK)"} {
		require.Contains(t, res.stdout, w)
	}

	// Wrong signing key: the signature hint names the key, the variable and
	// the canonical hash to compare with the server log.
	res = base.with("FINANCIAL_API_KEY="+otherSecret).failsWith(t, 1, probe,
		"signature verification failed at financial-api", "FINANCIAL_API_KEY", "canonical_sha256")
	require.Contains(t, res.stdout, "problem code signature_invalid")
	require.Regexp(t, `request:   X-Request-ID [0-9a-f-]{36}, canonical_sha256 [0-9a-f]{16}`, res.stdout)

	// Skewed clock: this machine 10 minutes behind.
	res = base.with("XSVC_CLOCK_OFFSET=-10m").failsWith(t, 1, probe, "timestamp too old", "measured skew +10m", "NTP")
	require.Contains(t, res.stdout, "problem code timestamp_out_of_window")
	t.Logf("probe, skewed clock:\n%s%s", res.stdout, res.stderr)
	require.Regexp(t, `skew:      \+(9m59s|10m0s|10m1s)`, res.stdout)
	base.failsWith(t, 1, append(probe, "--clock-offset", "7m"), "timestamp", "behind this machine's")

	// Caller not on the route's allow-list.
	res = base.failsWith(t, 1, args("probe --from frontend --to financial-api --endpoint /admin"),
		"service frontend is not authorized on /admin", "allow-list", `add "frontend"`)
	require.Contains(t, res.stdout, "problem code service_not_authorized")

	// Missing environment variables are named.
	run{dir: r.dir, env: []string{"APP_ENV=development", "FINANCIAL_API_KEY=" + frontendSecret}}.
		failsWith(t, 1, probe, "missing environment variable FINANCIAL_API_URL")
	run{dir: r.dir, env: []string{"FINANCIAL_API_URL=" + srv.URL, "FINANCIAL_API_KEY=" + frontendSecret}}.
		failsWith(t, 1, probe, "missing environment variable APP_ENV")
	run{dir: r.dir, env: []string{"APP_ENV=development", "FINANCIAL_API_URL=" + srv.URL}}.
		failsWith(t, 1, probe, "missing environment variable FINANCIAL_API_KEY or INTERNAL_API_KEY")

	// An unknown CA: the hint says how to trust it.
	run{dir: r.dir, env: []string{"APP_ENV=development", "FINANCIAL_API_URL=" + srv.URL, "FINANCIAL_API_KEY=" + frontendSecret}}.
		failsWith(t, 1, probe, "unknown authority", "--ca-file")

	// A stopped server: the network hint names the address and the variable.
	addr := strings.TrimPrefix(srv.URL, "https://")
	srv.Close()
	res = base.failsWith(t, 1, probe, "connection refused by "+addr, "nothing listens on "+addr, "FINANCIAL_API_URL")
	require.Contains(t, res.stdout, "verdict:   unreachable")
	// A host that does not resolve.
	base.with("FINANCIAL_API_URL=https://no-such-host.invalid:8443").failsWith(t, 1, append(probe, "--timeout", "3s"),
		"no-such-host.invalid")
	// A timeout: a listener that never answers the handshake.
	ln := silentListener(t)
	start := time.Now()
	base.with("FINANCIAL_API_URL=https://"+ln).failsWith(t, 1, append(probe, "--timeout", "300ms"),
		"timeout after 300ms while the TLS handshake with "+ln, "firewalls")
	require.Less(t, time.Since(start), 5*time.Second)
}

// silentListener accepts TCP connections and never answers: a probe
// against it times out in the TLS handshake.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
