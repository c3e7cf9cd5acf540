package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"golang.org/x/time/rate"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
	"github.com/lifenavigator/crossservice/schema"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

// HygAccount is the message of the hygiene test: every sensitive and
// unshared value is a canary the scan looks for.
type HygAccount struct {
	ID      string            `json:"id" share:"*" validate:"required"`
	Owner   string            `json:"owner" share:"financial-service" sensitive:"random" validate:"required"`
	TaxID   string            `json:"tax_id" share:"financial-service" sensitive:"deterministic" validate:"required,startswith=TAX-"`
	Card    *HygCard          `json:"card" share:"financial-service" sensitive:"random"`
	Balance float64           `json:"balance" share:"*"`
	Tags    []string          `json:"tags" share:"financial-service"`
	Vault   map[string]string `json:"vault" share:"financial-service" sensitive:"random"`
	Notes   string            `json:"notes"`
}

type HygCard struct {
	Number string `json:"number" share:"financial-service" validate:"required"`
	Holder string `json:"holder" share:"financial-service"`
}

// HygReceipt is the sealed answer.
type HygReceipt struct {
	AccountID string `json:"account_id" share:"frontend"`
	Holder    string `json:"holder" share:"frontend" sensitive:"random"`
	Internal  string `json:"internal"`
}

// hygSink collects everything the scan reads: the debug log of every
// component that takes a logger, every error text and every formatted
// value.
type hygSink struct {
	mu     sync.Mutex
	log    bytes.Buffer
	texts  []string
	errors int
	values int
}

func (s *hygSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *hygSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (s *hygSink) textLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// err records an error as every caller would print it; nil is recorded as
// a missing error, which fails the test (each flow here must fail).
func (s *hygSink) err(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	if os.Getenv("HYG_DEBUG") != "" {
		t.Logf("%s: %v", what, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors++
	s.texts = append(s.texts, err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		s.texts = append(s.texts, u.Error())
	}
}

// value records every fmt rendering of v.
func (s *hygSink) value(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values++
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		s.texts = append(s.texts, fmt.Sprintf(verb, v))
	}
}

func (s *hygSink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String() + "\n" + strings.Join(s.texts, "\n")
}

// hygSecrets are the values that must never appear, each under the name
// the report gives it, in every form a log line or error could carry.
type hygSecrets map[string]string

func (h hygSecrets) add(name string, raw []byte) {
	h[name] = string(raw)
	h[name+" (hex)"] = hex.EncodeToString(raw)
	h[name+" (HEX)"] = strings.ToUpper(hex.EncodeToString(raw))
	h[name+" (base64)"] = base64.StdEncoding.EncodeToString(raw)
	h[name+" (base64url)"] = base64.RawURLEncoding.EncodeToString(raw)
	h[name+" (quoted)"] = strings.Trim(strconv.Quote(string(raw)), `"`)
}

// keyMaterial returns the secret bytes of a Tink keyset: each key's
// serialized key data and every byte string of 16 bytes or more inside
// it, less what its public keyset also holds.
func keyMaterial(t *testing.T, h *keyset.Handle) [][]byte {
	t.Helper()
	var public map[string]bool
	if pub, err := h.Public(); err == nil {
		public = map[string]bool{}
		for _, b := range keyBytes(t, pub) {
			public[string(b)] = true
		}
	}
	var out [][]byte
	for _, b := range keyBytes(t, h) {
		if !public[string(b)] {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatal("no key material found in a keyset")
	}
	return out
}

func keyBytes(t *testing.T, h *keyset.Handle) [][]byte {
	var buf bytes.Buffer
	if err := insecurekeyset.Write(&buf, h); err != nil {
		t.Fatal(err)
	}
	var ks struct {
		Key []struct {
			KeyData struct {
				Value string `json:"value"`
			} `json:"keyData"`
		} `json:"key"`
	}
	if err := json.Unmarshal(buf.Bytes(), &ks); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, k := range ks.Key {
		v, err := base64.StdEncoding.DecodeString(k.KeyData.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
		out = append(out, protoBytes(v, 0)...)
	}
	return out
}

// protoBytes returns the length-delimited fields of 16 bytes or more of a
// protobuf message, at every depth (best effort: parsing stops at the
// first thing that is not a well-formed field).
func protoBytes(b []byte, depth int) [][]byte {
	var out [][]byte
	varint := func() (uint64, bool) {
		var x uint64
		for s := 0; s < 64 && len(b) > 0; s += 7 {
			c := b[0]
			b = b[1:]
			x |= uint64(c&0x7f) << s
			if c < 0x80 {
				return x, true
			}
		}
		return 0, false
	}
	for len(b) > 0 && depth < 8 {
		tag, ok := varint()
		if !ok {
			return out
		}
		switch tag & 7 {
		case 0:
			if _, ok := varint(); !ok {
				return out
			}
		case 1:
			if len(b) < 8 {
				return out
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return out
			}
			b = b[4:]
		case 2:
			n, ok := varint()
			if !ok || n > uint64(len(b)) {
				return out
			}
			sub := b[:n]
			b = b[n:]
			if n >= 16 {
				out = append(out, sub)
			}
			out = append(out, protoBytes(sub, depth+1)...)
		default:
			return out
		}
	}
	return out
}

// recordingRT records the signature of every attempt before sending it.
type recordingRT struct {
	base http.RoundTripper
	mu   sync.Mutex
	sigs []string
}

func (r *recordingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	if s := req.Header.Get(transport.HeaderSignature); s != "" {
		r.sigs = append(r.sigs, s)
	}
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

// TestHygiene runs representative flows of every package with every
// logger at debug level, and scans every log line, every error text and
// every formatted value for the test's sensitive values (the plaintexts of
// sensitive and unshared fields), HMAC secrets (raw, hex, base64),
// signatures sent on the wire, Tink key material and passwords: zero hits.
func TestHygiene(t *testing.T) {
	sink := &hygSink{}
	log := sink.logger()
	secrets := hygSecrets{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// ---- keys ----
	frontSecret := make([]byte, 32)
	rand.Read(frontSecret)
	secrets.add("frontend HMAC secret", frontSecret)
	anaSecret := hex.EncodeToString(frontSecret[:16]) + "-analytics-hmac-key" // a string key, as in the environment
	secrets.add("analytics HMAC secret", []byte(anaSecret))
	wrongSecret := []byte("wrong-hmac-secret-0123456789abcdef0123456789")
	secrets.add("wrong HMAC secret", wrongSecret)
	retiredSecret := []byte("retired-hmac-secret-0123456789abcdef012345678")
	secrets.add("retired HMAC secret", retiredSecret)
	frontKey, err := transport.NewKey("fe-1", frontSecret)
	if err != nil {
		t.Fatal(err)
	}
	anaKey, _ := transport.NewKey("an-1", []byte(anaSecret))
	retiredKey, _ := transport.NewKey("fe-0", retiredSecret)
	wrongKey, _ := transport.NewKey("fe-1", wrongSecret)

	handles := map[string]*keyset.Handle{}
	for _, name := range []string{"frontend", "financial-service", "analytics-service"} {
		h, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		if err != nil {
			t.Fatal(err)
		}
		handles[name+" hpke"] = h
		d, err := keyset.NewHandle(daead.AESSIVKeyTemplate())
		if err != nil {
			t.Fatal(err)
		}
		handles[name+" det"] = d
	}
	kekHandle, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	handles["kek"] = kekHandle
	for name, h := range handles {
		for i, m := range keyMaterial(t, h) {
			secrets.add(fmt.Sprintf("%s key material %d", name, i), m)
		}
	}
	kek, err := aead.New(kekHandle)
	if err != nil {
		t.Fatal(err)
	}
	codecFor := func(self string, to ...string) *fieldcrypt.Codec {
		id, err := envelope.NewHPKEIdentity(handles[self+" hpke"])
		if err != nil {
			t.Fatal(err)
		}
		rs := map[string]fieldcrypt.Recipient{}
		for _, r := range to {
			pub, err := handles[r+" hpke"].Public()
			if err != nil {
				t.Fatal(err)
			}
			rcp, err := envelope.NewHPKERecipient(pub)
			if err != nil {
				t.Fatal(err)
			}
			rs[r] = fieldcrypt.Recipient{To: rcp, Deterministic: handles[r+" det"]}
		}
		c, err := fieldcrypt.New(fieldcrypt.Config{Self: self, Identity: id, Deterministic: handles[self+" det"], Recipients: rs})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	frontC := codecFor("frontend", "financial-service", "analytics-service")
	finC := codecFor("financial-service", "frontend")
	anaC := codecFor("analytics-service", "frontend")

	// ---- plaintexts ----
	acct := HygAccount{ID: "acc-hyg-1", Owner: "owner-canary-Lovelace", TaxID: "TAX-canary-7731",
		Card: &HygCard{Number: "card-canary-4111", Holder: "holder-canary-Ada"}, Balance: 12.5,
		Tags: []string{"vip"}, Vault: map[string]string{"vault-key-canary": "vault-value-canary"},
		Notes: "notes-canary-never-leaves"}
	for name, v := range map[string]string{"owner": acct.Owner, "tax id": acct.TaxID, "card number": acct.Card.Number,
		"card holder": acct.Card.Holder, "vault key": "vault-key-canary", "vault value": "vault-value-canary",
		"notes": acct.Notes, "receipt holder": "receipt-holder-canary", "receipt internal": "receipt-internal-canary",
		"invalid tax id": "tax-canary-invalid-9", "body canary": "body-canary-in-a-refused-request"} {
		secrets[name] = v
	}

	// ---- the financial service ----
	lim, err := transport.NewMemoryLimiter(transport.MemoryLimiterConfig{Default: transport.Rate{Limit: 1000, Burst: 1000},
		Callers: map[string]transport.Rate{"analytics-service": {Limit: rate.Every(time.Hour), Burst: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := transport.New(transport.Config{Service: "financial-service", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: frontKey}, {Caller: "frontend", Key: retiredKey, Retired: true},
			{Caller: "analytics-service", Key: anaKey}},
		MaxBodyBytes: 8 << 10, Limiter: lim, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	onlyFrontend, err := ver.Require("frontend")
	if err != nil {
		t.Fatal(err)
	}
	var flaky sync.Map
	mux := http.NewServeMux()
	mux.Handle("POST /accounts", onlyFrontend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a HygAccount
		if _, err := transport.OpenRequest(r, finC, &a); err != nil {
			sink.err(t, "OpenRequest", err)
			var oe *transport.OpenError
			if errors.As(err, &oe) {
				oe.WriteProblem(w, r)
			}
			return
		}
		log.DebugContext(r.Context(), "account received", "account", fieldcrypt.Redact(&a))
		sink.textLogger().Debug("account received", "account", fieldcrypt.Redact(a))
		if err := transport.WriteSealed(w, r, finC, http.StatusOK,
			&HygReceipt{AccountID: a.ID, Holder: "receipt-holder-canary", Internal: "receipt-internal-canary"}); err != nil {
			sink.err(t, "WriteSealed", err)
		}
	})))
	mux.Handle("GET /flaky", ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, again := flaky.LoadOrStore(r.URL.Query().Get("n"), true); !again {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})))
	mux.Handle("GET /hang", ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})))
	mux.Handle("GET /problem", ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", transport.ProblemContentType)
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"type":"about:blank","title":"Unprocessable","status":422,"code":"invalid_account"}`)
	})))
	mux.Handle("GET /wrong-sender", ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env, err := anaC.Seal(&HygReceipt{AccountID: "x", Holder: "receipt-holder-canary"}, "frontend")
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", transport.EnvelopeMediaType)
		w.Write(env)
	})))
	mux.Handle("GET /garbage", ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", transport.EnvelopeMediaType)
		io.WriteString(w, `{"hdr":"receipt-holder-canary"}`)
	})))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	srv.Start()
	defer srv.Close()

	// ---- the frontend's client ----
	rec := &recordingRT{base: &http.Transport{}}
	defer rec.base.(*http.Transport).CloseIdleConnections()
	newSigner := func(caller string, k transport.Key, clock func() time.Time) *transport.Signer {
		s, err := transport.NewSigner(transport.SignerConfig{Caller: caller, Target: "financial-service",
			Environment: transport.Production, Key: k, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	newClientWith := func(s client.Signer, base string, mod func(*client.TransportConfig)) *client.Client {
		cfg := client.Config{BaseURL: base, Codec: frontC, Transport: client.TransportConfig{
			Target: "financial-service", Base: rec, Signer: s, Logger: log, PerTryTimeout: 100 * time.Millisecond,
			Retry:   client.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, MaxRetryAfter: time.Second},
			Breaker: client.BreakerPolicy{Failures: 2, OpenTimeout: time.Minute}}}
		if mod != nil {
			mod(&cfg.Transport)
		}
		c, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fin := newClientWith(newSigner("frontend", frontKey, nil), srv.URL, nil)

	// Sealing, opening, and the exchange that works.
	var receipt HygReceipt
	if err := fin.Post(ctx, "/accounts", &acct, &receipt); err != nil {
		t.Fatalf("the valid exchange failed: %v", err)
	}
	if receipt.Holder != "receipt-holder-canary" {
		t.Fatalf("receipt %+v", fieldcrypt.Redact(receipt))
	}
	sink.value(fieldcrypt.Redact(receipt))
	sink.value(fieldcrypt.Redact(&acct))
	sink.value(fieldcrypt.Redact([]HygAccount{acct}))
	log.Debug("redacted", "acct", fieldcrypt.Redact(acct), "receipt", fieldcrypt.Redact(&receipt))
	sink.textLogger().Debug("redacted", "acct", fieldcrypt.Redact(acct), "receipt", fieldcrypt.Redact(&receipt))
	if err := fin.Plain().Get(ctx, "/flaky?n=1", &map[string]any{}); err != nil {
		t.Fatalf("the retried call failed: %v", err)
	}

	// Client failures: each error is recorded, and is the failure meant.
	kind := func(k client.Kind, status int) func(error) bool {
		return func(err error) bool {
			var e *client.Error
			return errors.As(err, &e) && e.Kind == k && e.Status == status
		}
	}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	expect := func(what string, err error, ok func(error) bool) {
		t.Helper()
		sink.err(t, what, err)
		if err != nil && !ok(err) {
			t.Errorf("%s: unexpected failure %v", what, err)
		}
	}
	expect("remote problem", fin.Get(ctx, "/problem", nil), kind(client.KindRemote, 422))
	expect("wrong sender", fin.Get(ctx, "/wrong-sender", &receipt), is(client.ErrWrongSender))
	expect("bad response", fin.Get(ctx, "/garbage", &receipt), is(client.ErrBadResponse))
	bad := acct
	bad.TaxID = "tax-canary-invalid-9"
	var ve *fieldcrypt.ValidationError
	expect("invalid value", fin.Post(ctx, "/accounts", &bad, &receipt), func(err error) bool { return errors.As(err, &ve) })
	expect("unknown route", fin.Post(ctx, "/nowhere", &acct, nil), kind(client.KindRemote, 404))
	expect("plain JSON to a sealed route", fin.Plain().Post(ctx, "/accounts", &acct, nil), kind(client.KindRemote, 415))
	expect("wrong key", newClientWith(newSigner("frontend", wrongKey, nil), srv.URL, nil).Post(ctx, "/accounts", &acct, &receipt),
		kind(client.KindRemote, 401))
	expect("retired key", newClientWith(newSigner("frontend", retiredKey, nil), srv.URL, nil).Post(ctx, "/accounts", &acct, &receipt),
		kind(client.KindRemote, 401))
	stale := func() time.Time { return time.Now().Add(-time.Hour) }
	expect("stale", newClientWith(newSigner("frontend", frontKey, stale), srv.URL, nil).Post(ctx, "/accounts", &acct, &receipt),
		kind(client.KindRemote, 401))
	ana := newClientWith(newSigner("analytics-service", anaKey, nil), srv.URL, nil)
	expect("not authorized", ana.Post(ctx, "/accounts", &acct, &receipt), kind(client.KindRemote, 403))
	expect("remote problem", ana.Get(ctx, "/problem", nil), kind(client.KindRemote, 422)) // spends analytics' only token
	expect("rate limited", ana.Get(ctx, "/problem", nil), kind(client.KindRateLimited, 429))
	// A body that cannot be rewound is not signed.
	req, _ := fin.NewRequest(ctx, http.MethodPost, "/accounts", io.NopCloser(strings.NewReader(`{"owner":"body-canary-in-a-refused-request"}`)))
	if resp, err := fin.Do(req); err == nil {
		resp.Body.Close()
		t.Error("a body without GetBody was signed")
	} else {
		expect("no GetBody", err, is(transport.ErrBodyNotRewindable))
	}
	// Per-try timeouts, retried, then the breaker.
	hang := newClientWith(newSigner("frontend", frontKey, nil), srv.URL, func(c *client.TransportConfig) {
		c.PerTryTimeout = 30 * time.Millisecond
		c.Breaker.Failures = 5
	})
	expect("per-try timeouts", hang.Get(ctx, "/hang", nil), is(client.ErrPerTryTimeout))
	// Connection failures until the breaker opens.
	dead := newClientWith(newSigner("frontend", frontKey, nil), "http://"+hygClosedAddr(t), func(c *client.TransportConfig) {
		c.Retry.MaxAttempts = 1
	})
	expect("connection refused", dead.Get(ctx, "/x", nil), kind(client.KindTransport, 0))
	expect("connection refused", dead.Get(ctx, "/x", nil), kind(client.KindTransport, 0))
	expect("breaker open", dead.Get(ctx, "/x", nil), is(client.ErrBreakerOpen))

	// ---- every refusal class of the verifier, in process ----
	body := []byte(`{"owner":"body-canary-in-a-refused-request","tax_id":"TAX-canary-7731"}`)
	signed := func(s *transport.Signer, method, target string) *http.Request {
		r, _ := http.NewRequest(method, "http://financial.internal"+target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := s.Sign(r); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		rec.sigs = append(rec.sigs, r.Header.Get(transport.HeaderSignature))
		rec.mu.Unlock()
		return r
	}
	serve := func(h http.Handler, r *http.Request, remote string, mod func(*http.Request)) {
		sr := httptest.NewRequest(r.Method, r.URL.RequestURI(), bytes.NewReader(body))
		sr.Header = r.Header.Clone()
		sr.RemoteAddr = remote
		if mod != nil {
			mod(sr)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, sr)
		sink.mu.Lock()
		sink.texts = append(sink.texts, w.Body.String())
		sink.mu.Unlock()
	}
	fs := newSigner("frontend", frontKey, nil)
	h := onlyFrontend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for name, mod := range map[string]func(*http.Request){
		"none":       nil,
		"unsigned":   func(r *http.Request) { r.Header.Del(transport.HeaderSignature) },
		"missing ts": func(r *http.Request) { r.Header.Del(transport.HeaderTimestamp) },
		"duplicate sig": func(r *http.Request) {
			r.Header.Add(transport.HeaderSignature, r.Header.Get(transport.HeaderSignature))
		},
		"malformed sig": func(r *http.Request) {
			r.Header.Set(transport.HeaderSignature, "zz"+r.Header.Get(transport.HeaderSignature))
		},
		"malformed caller": func(r *http.Request) { r.Header.Set(transport.HeaderServiceName, "Front End") },
		"malformed id":     func(r *http.Request) { r.Header.Set(transport.HeaderRequestID, "not a request id") },
		"legacy form":      func(r *http.Request) { r.Header.Del(transport.HeaderKeyID) },
		"unknown caller":   func(r *http.Request) { r.Header.Set(transport.HeaderServiceName, "nobody") },
		"unknown key":      func(r *http.Request) { r.Header.Set(transport.HeaderKeyID, "fe-9") },
		"retired key":      func(r *http.Request) { r.Header.Set(transport.HeaderKeyID, "fe-0") },
		"future":           func(r *http.Request) { r.Header.Set(transport.HeaderTimestamp, "9999999999999") },
		"tampered body": func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"x":"body-canary-in-a-refused-request"}`))
		},
		"too large": func(r *http.Request) { r.ContentLength = 1 << 20 },
		"too large stream": func(r *http.Request) {
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(make([]byte, 9<<10)))
		},
		"unreadable": func(r *http.Request) {
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:5]), hygErrReader{}))
		},
		"bad target": func(r *http.Request) { r.RequestURI = "*" },
	} {
		serve(h, signed(fs, "POST", "/accounts?q=body-canary-in-a-refused-request"), "127.0.0.1:1", mod)
		_ = name
	}
	replayed := signed(fs, "POST", "/accounts")
	serve(h, replayed, "127.0.0.1:1", nil)
	serve(h, replayed, "127.0.0.1:1", nil)
	serve(h, signed(fs, "POST", "/accounts"), "203.0.113.9:1", nil) // plain HTTP off loopback in production
	as := newSigner("analytics-service", anaKey, nil)
	serve(h, signed(as, "POST", "/accounts"), "127.0.0.1:1", nil) // not on this route
	// Legacy admission, non-strict admission and a replay store that fails.
	legacyVer, err := transport.New(transport.Config{Service: "financial-service", Environment: transport.Development,
		Keys: []transport.KeyEntry{{Caller: "legacy-gateway", Key: anaKey}}, LegacyCallers: []string{"legacy-gateway"},
		NonStrict: true, ReplayStore: hygFailingStore{}, FailOpen: false, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := transport.NewSigner(transport.SignerConfig{Caller: "legacy-gateway", Target: "financial-service",
		Environment: transport.Development, Key: anaKey, Scheme: transport.SchemeLegacy})
	if err != nil {
		t.Fatal(err)
	}
	lh := legacyVer.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serve(lh, signed(ls, "POST", "/accounts"), "127.0.0.1:1", nil)
	serve(lh, signed(ls, "POST", "/accounts"), "127.0.0.1:1", func(r *http.Request) { r.Header.Del(transport.HeaderSignature) })
	failOpen, err := transport.New(transport.Config{Service: "financial-service", Environment: transport.Development,
		Keys: []transport.KeyEntry{{Caller: "legacy-gateway", Key: anaKey}}, LegacyCallers: []string{"legacy-gateway"},
		ReplayStore: hygFailingStore{}, FailOpen: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	serve(failOpen.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})), signed(ls, "POST", "/x"), "127.0.0.1:1", nil)

	// ---- sealing and opening refusals ----
	env, err := frontC.Seal(&acct, "financial-service")
	if err != nil {
		t.Fatal(err)
	}
	var dst HygAccount
	for i := 0; i < len(env); i += 1 + len(env)/40 {
		b := bytes.Clone(env)
		b[i] ^= 0x20
		if _, err := finC.Open(b, &dst); err != nil {
			sink.err(t, "tampered envelope", err)
		}
	}
	_, err = finC.OpenFrom("analytics-service", env, &dst)
	sink.err(t, "wrong sender", err)
	_, err = finC.Open(env, &receipt)
	sink.err(t, "wrong type", err)
	_, err = anaC.Open(env, &dst)
	sink.err(t, "wrong recipient", err)
	_, err = frontC.Seal(&bad, "financial-service")
	sink.err(t, "validation", err)
	_, err = frontC.Seal(&acct, "billing")
	sink.err(t, "unknown recipient", err)
	_, err = frontC.Seal("owner-canary-Lovelace", "financial-service")
	sink.err(t, "not a struct", err)
	_, err = frontC.Seal(&hygBadTags{Secret: "owner-canary-Lovelace"}, "financial-service")
	sink.err(t, "tag error", err)
	_, err = envelope.Parse([]byte(`{"hdr":{"v":1,"snd":"owner-canary-Lovelace"},"data":{},"tag":"x"}`))
	sink.err(t, "parse", err)
	_, err = schema.ParseFile([]byte(`{"type":"x.Y","fields":[{"name":"a","type":"string","sensitve":"owner-canary-Lovelace"}]}`))
	sink.err(t, "schema file", err)

	// ---- key loading ----
	fileSecret := "keyfile-secret-canary-0123456789abcdef0123"
	secrets.add("key file secret", []byte(fileSecret))
	secrets.add("short secret", []byte("short-canary-9x"))
	for name, doc := range map[string]string{
		"short":       `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"short-canary-9x"}]}`,
		"base64":      `{"version":1,"keys":[{"caller":"frontend","id":"k","secret_base64":"` + fileSecret + `!"}]}`,
		"both":        `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"` + fileSecret + `","secret_base64":"AA=="}]}`,
		"duplicate":   `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"` + fileSecret + `","secret":"x"}]}`,
		"unknown":     `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"x","` + fileSecret + `":1}]}`,
		"case":        `{"version":1,"keys":[{"caller":"frontend","id":"k","Secret":"` + fileSecret + `"}]}`,
		"bad caller":  `{"version":1,"keys":[{"caller":"Front End","id":"k","secret":"` + fileSecret + `"}]}`,
		"not json":    `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"` + fileSecret + `"`,
		"trailing":    `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"` + fileSecret + `"}]} "` + fileSecret + `"`,
		"wrong types": `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":["` + fileSecret + `"]}]}`,
	} {
		_, err := transport.ParseKeyFile([]byte(doc))
		sink.err(t, "key file "+name, err)
	}
	dir := t.TempDir()
	good := `{"version":1,"keys":[{"caller":"frontend","id":"k","secret":"` + fileSecret + `"}]}`
	p := filepath.Join(dir, "keys.json")
	os.WriteFile(p, []byte(good), 0o644)
	_, err = transport.LoadKeyFile(p)
	sink.err(t, "key file mode", err)
	entries, err := transport.ParseKeyFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	sink.value(entries)
	sink.value(entries[0].Key)
	var encFile bytes.Buffer
	if err := transport.WriteEncryptedKeyFile(&encFile, entries, kek); err != nil {
		t.Fatal(err)
	}
	otherKEKHandle, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	otherKEK, _ := aead.New(otherKEKHandle)
	_, err = transport.ReadEncryptedKeyFile(bytes.NewReader(encFile.Bytes()), otherKEK)
	sink.err(t, "encrypted key file, wrong master key", err)
	env1 := map[string]string{"FRONTEND_API_KEY": "short-canary-9x", "ANALYTICS_SERVICE_API_KEY": anaSecret,
		"INTERNAL_API_KEY": fileSecret, "FINANCIAL_SERVICE_API_URL": "https://user:url-password-canary@fin.internal",
		"SERVICE_NAME": "frontend", "APP_ENV": "production", "REDIS_URL": "redis://:redis-password-canary@127.0.0.1:bad/0"}
	secrets["url password"] = "url-password-canary"
	secrets["redis password"] = "redis-password-canary"
	lookup := func(k string) (string, bool) { v, ok := env1[k]; return v, ok }
	_, err = transport.CallerKeysFromEnv(lookup, "frontend")
	sink.err(t, "short env key", err)
	_, err = transport.CallerKeysFromEnv(lookup, "billing", "checkout")
	sink.err(t, "shared fallback", err)
	_, err = client.LoadEnv("financial-service", lookup)
	sink.err(t, "env URL with a password", err)
	_, err = transport.RedisOptionsFromEnv(lookup)
	sink.err(t, "Redis URL", err)
	_, err = transport.ParseRedisURL("redis://user:redis-password-canary@[::1/0")
	sink.err(t, "Redis URL", err)
	var privJSON bytes.Buffer
	insecurekeyset.Write(&privJSON, handles["financial-service hpke"])
	_, err = fieldcrypt.ReadPublicKeyset(bytes.NewReader(privJSON.Bytes()))
	sink.err(t, "a private keyset read as public", err)
	var encKS bytes.Buffer
	if err := fieldcrypt.WriteKeyset(&encKS, handles["financial-service det"], kek); err != nil {
		t.Fatal(err)
	}
	_, err = fieldcrypt.ReadKeyset(bytes.NewReader(encKS.Bytes()), otherKEK)
	sink.err(t, "keyset, wrong master key", err)
	_, err = fieldcrypt.ReadKeyset(bytes.NewReader(privJSON.Bytes()), kek)
	sink.err(t, "cleartext keyset read as encrypted", err)
	_, err = insecurekeyset.Read(bytes.NewReader(privJSON.Bytes()[:len(privJSON.Bytes())/2]))
	sink.err(t, "truncated keyset", err)

	// ---- configuration errors ----
	_, err = transport.New(transport.Config{Service: "financial-service", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: frontKey}, {Caller: "analytics-service", Key: hygKey(t, "x", frontSecret)}}})
	sink.err(t, "shared key", err)
	_, err = transport.NewKey("k", []byte("short-canary-9x"))
	sink.err(t, "short key", err)
	_, err = transport.NewKey(fileSecret+"!", []byte(fileSecret))
	sink.err(t, "bad key id", err)
	_, err = transport.NewSigner(transport.SignerConfig{Caller: "frontend", Target: "x", Environment: "prod", Key: frontKey})
	sink.err(t, "signer config", err)
	_, err = client.New(client.Config{BaseURL: "https://user:url-password-canary@fin.internal", Transport: client.TransportConfig{Target: "fin"}})
	sink.err(t, "client base URL", err)
	_, err = client.New(client.Config{BaseURL: "https://fin.internal/?token=url-password-canary", Transport: client.TransportConfig{Target: "fin"}})
	sink.err(t, "client base URL", err)
	_, err = fin.NewRequest(ctx, "GET", "//url-password-canary@evil/x", nil)
	sink.err(t, "client path", err)
	_, err = fieldcrypt.New(fieldcrypt.Config{Self: "Not A Name"})
	sink.err(t, "codec config", err)

	// Values of the library's own types print no key material.
	pubFin, _ := handles["financial-service hpke"].Public()
	for _, v := range []any{frontKey, retiredKey, entries, frontC, finC, handles["financial-service hpke"],
		handles["financial-service det"], pubFin, ver, fs, fin} {
		sink.value(v)
	}

	// ---- the scan ----
	for _, s := range rec.sigs {
		secrets["signature "+s[:8]] = s
	}
	out := sink.all()
	hits := 0
	for name, s := range secrets {
		if len(s) < 6 {
			continue
		}
		if i := strings.Index(out, s); i >= 0 {
			hits++
			from, to := max(0, i-200), min(len(out), i+len(s)+100)
			t.Errorf("%s appears in the logs or errors: ...%s...", name, out[from:to])
		}
	}

	// The scan saw what it should have: every flow logged or failed.
	logText := sink.log.String()
	for _, want := range []string{`"code":"signature_invalid"`, `"check":"key_retired"`, `"check":"key_unknown"`,
		`"check":"caller_unknown"`, `"check":"timestamp_out_of_window"`, `"check":"replay"`, `"check":"unsigned"`,
		`"check":"plain_http"`, `"check":"service_not_allowed_on_route"`, `"check":"rate_limited"`,
		`"check":"body_over_limit"`, `"check":"content_length_over_limit"`, `"check":"body_read_error"`,
		`"check":"method or request target"`, `"check":"scheme_mismatch"`, `"check":"duplicate X-Signature"`,
		`"check":"malformed X-Signature"`, `"check":"missing X-Timestamp"`, `"check":"replay_store_error"`,
		`deprecated legacy signature accepted`, `unsigned request admitted`, `check failed open`,
		`"msg":"client: attempt"`, `"msg":"client: retrying"`, `account received`, `"owner":"[redacted]"`,
		`account.owner=[redacted]`} {
		if !strings.Contains(logText, want) {
			t.Errorf("the debug log lacks %s", want)
		}
	}
	if sink.errors < 40 || len(rec.sigs) < 20 || len(secrets) < 50 {
		t.Errorf("scanned %d errors, %d signatures, %d secret forms: too few", sink.errors, len(rec.sigs), len(secrets))
	}
	t.Logf("scanned %d bytes: %d log lines, %d errors, %d formatted values, for %d secret forms (%d signatures): %d hits",
		len(out), strings.Count(logText, "\n"), sink.errors, sink.values, len(secrets), len(rec.sigs), hits)
}

func hygKey(t *testing.T, id string, secret []byte) transport.Key {
	k, err := transport.NewKey(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type hygBadTags struct {
	Secret string `json:"secret" share:"*" sensitve:"random"`
}

type hygErrReader struct{}

func (hygErrReader) Read([]byte) (int, error) {
	return 0, errors.New("connection reset by body-canary")
}

// hygFailingStore is a replay store that cannot answer.
type hygFailingStore struct{}

func (hygFailingStore) Consume(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("replay store down")
}

// hygClosedAddr returns a loopback address nothing listens on.
func hygClosedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
