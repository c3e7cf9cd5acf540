package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

// Account is the DTO of DESIGN.md, sent by the frontend to the financial
// service.
type Account struct {
	ID      string  `json:"id"      share:"financial-service,analytics-service"`
	Owner   string  `json:"owner"   share:"financial-service" sensitive:"random"`
	SSN     string  `json:"ssn"     share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
	Balance float64 `json:"balance" share:"*"`
	Notes   string  `json:"notes"` // never leaves the frontend
}

// Receipt is the financial service's answer, sealed for the frontend.
type Receipt struct {
	AccountID string `json:"account_id" share:"frontend"`
	Holder    string `json:"holder"     share:"frontend" sensitive:"random"`
	Approved  bool   `json:"approved"   share:"*"`
	RiskScore int    `json:"risk_score"` // never leaves the financial service
}

// svcKeys are one service's keysets: HPKE private and public, deterministic.
type svcKeys struct{ priv, pub, det *keyset.Handle }

var keysFor = sync.OnceValues(func() (map[string]svcKeys, error) {
	out := map[string]svcKeys{}
	for _, name := range []string{"frontend", "financial-service", "analytics-service", "checkout", "billing"} {
		priv, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		if err != nil {
			return nil, err
		}
		pub, err := priv.Public()
		if err != nil {
			return nil, err
		}
		det, err := keyset.NewHandle(daead.AESSIVKeyTemplate())
		if err != nil {
			return nil, err
		}
		out[name] = svcKeys{priv, pub, det}
	}
	return out, nil
})

// newCodec is self's fieldcrypt codec, sealing for the listed services.
func newCodec(t testing.TB, self string, to ...string) *fieldcrypt.Codec {
	t.Helper()
	keys, err := keysFor()
	if err != nil {
		t.Fatal(err)
	}
	id, err := envelope.NewHPKEIdentity(keys[self].priv)
	if err != nil {
		t.Fatal(err)
	}
	rs := map[string]fieldcrypt.Recipient{}
	for _, name := range to {
		r, err := envelope.NewHPKERecipient(keys[name].pub)
		if err != nil {
			t.Fatal(err)
		}
		rs[name] = fieldcrypt.Recipient{To: r, Deterministic: keys[name].det}
	}
	c, err := fieldcrypt.New(fieldcrypt.Config{Self: self, Identity: id, Deterministic: keys[self].det, Recipients: rs})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTwoServicesExchangeSealedDTOs: the frontend and the financial service
// over TLS 1.3, signed requests verified by the real middleware, sealed
// bodies both ways through the Client and transport.OpenRequest/WriteSealed.
func TestTwoServicesExchangeSealedDTOs(t *testing.T) {
	v, signer := signedPair(t)
	financial := newCodec(t, "financial-service", "frontend")
	analytics := newCodec(t, "analytics-service", "financial-service", "frontend")

	var mu sync.Mutex
	var got []Account
	mux := http.NewServeMux()
	mux.HandleFunc("POST /accounts", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.Version != tls.VersionTLS13 {
			http.Error(w, "not TLS 1.3", http.StatusInternalServerError)
			return
		}
		var a Account
		if _, err := transport.OpenRequest(r, financial, &a); err != nil {
			var oe *transport.OpenError
			if errors.As(err, &oe) {
				oe.WriteProblem(w, r)
				return
			}
			http.Error(w, "internal", http.StatusInternalServerError)
			return
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		rc := Receipt{AccountID: a.ID, Holder: a.Owner, Approved: a.Balance > 0, RiskScore: 7}
		if err := transport.WriteSealed(w, r, financial, http.StatusCreated, &rc); err != nil {
			http.Error(w, "internal", http.StatusInternalServerError)
		}
	})
	// A response sealed by another service than the one called.
	mux.HandleFunc("GET /forged", func(w http.ResponseWriter, r *http.Request) {
		b, _ := analytics.Seal(&Receipt{AccountID: "x", Approved: true}, "frontend")
		w.Header().Set("Content-Type", client.EnvelopeMediaType)
		w.Write(b)
	})
	// A plain JSON endpoint beside the sealed ones.
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { ok(w) })
	srv := tlsServer(t, 0, v.Middleware(mux), nil)

	newFrontend := func(codec client.Codec) *client.Client {
		return newClient(t, srv.URL, func(c *client.Config) {
			c.Codec = codec
			c.Transport.Signer = signer
			c.Transport.Base = tlsBase(t, nil)
		})
	}
	frontend := newFrontend(newCodec(t, "frontend", "financial-service"))

	in := Account{ID: "acc-1", Owner: "Ada Lovelace", SSN: "123456789", Balance: 42.5, Notes: "call back"}
	var rc Receipt
	if err := frontend.Post(context.Background(), "/accounts", &in, &rc); err != nil {
		t.Fatal(err)
	}
	// The handler sees exactly the fields shared with it; Notes never left.
	want := in
	want.Notes = ""
	mu.Lock()
	if len(got) != 1 || got[0] != want {
		t.Fatalf("handler saw %+v, want %+v", got, want)
	}
	mu.Unlock()
	// The frontend sees exactly the fields shared with it; RiskScore stayed.
	if rc != (Receipt{AccountID: "acc-1", Holder: "Ada Lovelace", Approved: true}) {
		t.Fatalf("frontend got %+v", rc)
	}

	// Plain JSON through the same transport.
	var h struct{ OK bool }
	if err := frontend.Plain().Get(context.Background(), "/health", &h); err != nil || !h.OK {
		t.Fatalf("plain: %v %+v", err, h)
	}

	// Request envelope sealed by analytics-service but sent (signed) by the
	// frontend: the server refuses it, the handler never sees it.
	forger := newFrontend(analytics)
	e := asError(t, forger.Post(context.Background(), "/accounts", &in, &rc))
	if e.Status != http.StatusForbidden || e.Problem == nil || e.Problem.Code != transport.CodeSenderMismatch || e.Retryable() {
		t.Fatalf("forged request: %v", e)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("the handler saw a forged envelope: %+v", got)
	}
	mu.Unlock()

	// Response envelope sealed by another service than the target: refused,
	// and the caller's value is left alone.
	before := Receipt{AccountID: "unchanged"}
	rc = before
	err := frontend.Get(context.Background(), "/forged", &rc)
	e = asError(t, err)
	if !errors.Is(err, client.ErrWrongSender) || !errors.Is(err, envelope.ErrCannotOpen) || e.Kind != client.KindRemote || rc != before {
		t.Fatalf("forged response: %v, value %+v", err, rc)
	}

	// A plain JSON body sent where an envelope is required: 415.
	e = asError(t, frontend.Plain().Post(context.Background(), "/accounts", &in, nil))
	if e.Status != http.StatusUnsupportedMediaType || e.Problem.Code != transport.CodeUnsupportedMediaType {
		t.Fatalf("plain body to a sealed endpoint: %v", e)
	}
	// And a sealed client refuses a plain answer.
	if err := frontend.Get(context.Background(), "/health", &h); !errors.Is(err, client.ErrBadResponse) {
		t.Fatalf("sealed client, plain answer: %v", err)
	}
}
