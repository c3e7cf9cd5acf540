package transport_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

func ExampleComponents_Canonical() {
	c := transport.Components{
		Environment: transport.Production,
		Caller:      "frontend",
		Target:      "financial-api",
		KeyID:       "2026-03",
		Timestamp:   "1767225600001",
		RequestID:   "019b7a3e-8c01-7000-8000-000000000001",
		Method:      "GET",
		Path:        "/health-check",
	}
	canon, _ := c.Canonical()
	fmt.Println(strings.ReplaceAll(string(canon), "\n", "⏎\n"))
	k, _ := transport.NewKey("2026-03", []byte("frontend-financial-2026-03-7c1e9a0b5d3f4e21a8b6c0d9e2f1a3b4"))
	sig, _ := c.Signature(k)
	fmt.Println(sig)
	fmt.Println(k) // keys never print their secret
	// Output:
	// XSVC-HMAC-SHA256-V1⏎
	// production⏎
	// frontend⏎
	// financial-api⏎
	// 2026-03⏎
	// 1767225600001⏎
	// 019b7a3e-8c01-7000-8000-000000000001⏎
	// GET⏎
	// /health-check⏎
	// ⏎
	// ⏎
	// e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
	// 59cada551760e853b50448ab999d61899847866df0774a6d950d94b8d6d3d7ca
	// transport.Key{ID: "2026-03", Secret: REDACTED}
}

func ExampleSigner_Sign() {
	key, _ := transport.NewKey("2026-03", []byte("frontend-financial-2026-03-7c1e9a0b5d3f4e21a8b6c0d9e2f1a3b4"))
	signer, _ := transport.NewSigner(transport.SignerConfig{
		Caller: "frontend", Target: "financial-api", Environment: transport.Production, Key: key,
		// Fixed here for a reproducible output; leave nil in real code.
		Clock:     func() time.Time { return time.UnixMilli(1767225600000) },
		RequestID: func() (string, error) { return "019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01", nil },
	})
	req, _ := http.NewRequest("POST", "https://financial.internal/v1/accounts/42/transfers?dry_run=true&currency=EUR",
		strings.NewReader(`{"amount":100,"to":"acc-7"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	// In a RoundTripper: sign each attempt's clone, req.Clone(ctx).
	if err := signer.Sign(req); err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range []string{"X-Request-ID", "X-Timestamp", "X-Service-Name", "X-Key-ID", "X-Signature"} {
		fmt.Printf("%s: %s\n", h, req.Header.Get(h))
	}
	// Output:
	// X-Request-ID: 019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01
	// X-Timestamp: 1767225600000
	// X-Service-Name: frontend
	// X-Key-ID: 2026-03
	// X-Signature: 8ddc58c613a70785893302598553b1922b6c601ba52fb8248a6d7bf8ec83212d
}

func ExampleVerifier_Require() {
	key, _ := transport.NewKey("k1", []byte("frontend-financial-0123456789abcdef0123456789abcdef"))
	v, err := transport.New(transport.Config{
		Service:     "financial-api",
		Environment: transport.Development,
		Keys:        []transport.KeyEntry{{Caller: "frontend", Key: key}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	onlyFrontend, _ := v.Require("frontend") // the original requiredServices
	h := onlyFrontend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := transport.CallerFrom(r.Context())
		fmt.Fprintf(w, "hello %s", caller.Service)
	}))

	signer, _ := transport.NewSigner(transport.SignerConfig{
		Caller: "frontend", Target: "financial-api", Environment: transport.Development, Key: key})
	serve := func(req *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			p, _ := transport.ParseProblem(rec.Result())
			fmt.Println(rec.Code, p.Code)
			return
		}
		fmt.Println(rec.Code, rec.Body.String())
	}
	req := httptest.NewRequest("GET", "/balance?account=42", nil)
	signer.Sign(req)
	serve(req)

	replayed := httptest.NewRequest("GET", "/balance?account=42", nil)
	replayed.Header = req.Header
	serve(replayed)

	tampered := httptest.NewRequest("GET", "/balance?account=43", nil)
	signer.Sign(tampered)
	tampered.URL.RawQuery, tampered.RequestURI = "account=44", "/balance?account=44"
	serve(tampered)
	// Output:
	// 200 hello frontend
	// 401 replay_detected
	// 401 signature_invalid
}
