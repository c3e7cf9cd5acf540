package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

// alwaysFresh lets the same input be verified many times.
type alwaysFresh struct{}

func (alwaysFresh) Consume(context.Context, string, time.Duration) (bool, error) { return true, nil }

type authTuple struct{ sig, caller, ts, method, body string }

// FuzzVerifyHeaders feeds mutated signing headers, method, target, content
// type and body of the accepted vectors to the middleware. It must never
// panic, must answer every refusal with a problem whose code matches the
// status, and may admit a request only if it carries an accepted vector's
// signature with that vector's caller, timestamp, method and body.
func FuzzVerifyHeaders(f *testing.F) {
	var vs []vector
	for _, v := range loadVectors(f) {
		if v.Result == "ok" {
			vs = append(vs, v)
		}
	}
	type fixture struct {
		v vector
		h http.Handler
	}
	var fx []fixture
	for i, v := range vs {
		k, _ := v.key(f)
		ms, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		cfg := transport.Config{Service: v.Target, Environment: transport.Environment(v.Environment),
			Keys: []transport.KeyEntry{{Caller: v.Caller, Key: k}}, Clock: fixedClock(time.UnixMilli(ms)),
			ReplayStore: alwaysFresh{}}
		if v.Scheme == string(transport.SchemeLegacy) {
			cfg.LegacyCallers = []string{v.Caller}
		}
		ver, err := transport.New(cfg)
		if err != nil {
			f.Fatal(err)
		}
		fx = append(fx, fixture{v, ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(w, r.Body)
		}))})
		target := v.Path
		if v.Query != "" {
			target += "?" + v.Query
		}
		keyID := v.KeyID
		if v.Scheme == string(transport.SchemeLegacy) {
			keyID = "" // legacy form: no X-Key-ID
		}
		f.Add(uint8(i), v.Signature, v.Caller, v.Timestamp, v.RequestID, keyID, v.ContentType, v.Method, target, v.body(f))
	}
	if len(fx) == 0 {
		f.Fatal("no seeds")
	}
	authentic := make(map[authTuple]bool)
	for _, v := range vs {
		authentic[authTuple{v.Signature, v.Caller, v.Timestamp, v.Method, string(v.body(f))}] = true
	}
	f.Fuzz(func(t *testing.T, idx uint8, sig, caller, ts, reqID, keyID, ctype, method, target string, body []byte) {
		x := fx[int(idx)%len(fx)]
		if target == "" || target[0] != '/' || strings.ContainsAny(method, " \t\r\n") || method == "" {
			return // not something net/http's server would hand over
		}
		r := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		r.Method, r.RequestURI, r.RemoteAddr = method, target, "127.0.0.1:1"
		r.Header = http.Header{}
		for k, v := range map[string]string{"X-Signature": sig, "X-Service-Name": caller, "X-Timestamp": ts,
			"X-Request-Id": reqID, "X-Key-Id": keyID, "Content-Type": ctype} {
			if v != "" {
				r.Header[k] = strings.Split(v, "\x00") // a NUL splits into duplicate values
			}
		}
		rec := httptest.NewRecorder()
		x.h.ServeHTTP(rec, r)
		if rec.Code == 200 {
			// Several vectors share a key, caller, target and environment, so
			// a verifier may rightly admit another vector's request; anything
			// else admitted would be a forgery.
			if !authentic[authTuple{sig, caller, ts, method, string(body)}] || !bytes.Equal(rec.Body.Bytes(), body) {
				t.Fatalf("admitted a request that is no vector's (verifier of %s)", x.v.Name)
			}
			return
		}
		p, err := transport.ParseProblem(rec.Result())
		if err != nil {
			t.Fatalf("status %d without a problem document: %v", rec.Code, err)
		}
		if p.Code.Status() != rec.Code || p.Status != rec.Code {
			t.Fatalf("code %s with status %d", p.Code, rec.Code)
		}
	})
}

// FuzzCanonical: any components the canonicaliser accepts render to the
// documented lines, and a request built from them verifies.
func FuzzCanonical(f *testing.F) {
	n := 0
	for _, v := range loadVectors(f) {
		f.Add(v.Scheme == string(transport.SchemeLegacy), v.Environment, v.Caller, v.Target, v.KeyID, v.Timestamp,
			v.RequestID, v.Method, v.Path, v.Query, v.ContentType, v.body(f))
		n++
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
	secret := []byte("fuzz-key-0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, legacy bool, env, caller, target, keyID, ts, reqID, method, path, query, ctype string, body []byte) {
		c := transport.Components{Environment: transport.Environment(env), Caller: caller, Target: target, KeyID: keyID,
			Timestamp: ts, RequestID: reqID, Method: method, Path: path, Query: query, ContentType: ctype, Body: body}
		if legacy {
			c.Scheme = transport.SchemeLegacy
		}
		canon, err := c.Canonical()
		if err != nil {
			var ce *transport.ComponentError
			if !errors.As(err, &ce) || !errors.Is(err, transport.ErrInvalidComponent) {
				t.Fatalf("error not a ComponentError: %v", err)
			}
			return
		}
		if legacy {
			rp := path
			if query != "" {
				rp += "?" + query
			}
			if want := method + "\n" + rp + "\n" + ts + "\n" + string(body); string(canon) != want {
				t.Fatalf("legacy canonical %q, want %q", canon, want)
			}
			caller, keyID, reqID, target, env = "legacy-caller", "env", "legacy-request", "fuzz-target", "production"
		} else {
			sum := sha256.Sum256(body)
			want := []string{string(transport.SchemeV1), env, caller, target, keyID, ts, reqID, method, path, query, ctype,
				hex.EncodeToString(sum[:])}
			if got := strings.Split(string(canon), "\n"); strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != 12 {
				t.Fatalf("v1 canonical lines %q, want %q", got, want)
			}
		}
		// Round trip through the verifier.
		k, err := transport.NewKey(keyID, secret)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := c.Signature(k)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := strconv.ParseInt(ts, 10, 64)
		cfg := transport.Config{Service: target, Environment: transport.Environment(env),
			Keys: []transport.KeyEntry{{Caller: caller, Key: k}}, Clock: fixedClock(time.UnixMilli(ms))}
		if legacy {
			cfg.LegacyCallers = []string{caller}
		}
		ver, err := transport.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		uri := path
		if query != "" {
			uri += "?" + query
		}
		r := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		r.Method, r.RequestURI, r.RemoteAddr = method, uri, "127.0.0.1:1"
		r.Header = http.Header{"X-Signature": {sig}, "X-Service-Name": {caller}, "X-Timestamp": {ts}, "X-Request-Id": {reqID}}
		if !legacy {
			r.Header["X-Key-Id"] = []string{keyID}
		}
		if ctype != "" && !legacy { // legacy does not sign (so does not check) Content-Type
			r.Header["Content-Type"] = []string{ctype}
		}
		var got []byte
		rec := httptest.NewRecorder()
		ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = io.ReadAll(r.Body) })).ServeHTTP(rec, r)
		if rec.Code != 200 || !bytes.Equal(got, body) {
			t.Fatalf("signed components refused by the verifier: %d %s", rec.Code, rec.Body)
		}
	})
}
