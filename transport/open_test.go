package transport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/transport"
)

type openAccount struct {
	ID      string  `json:"id"      share:"financial-service,analytics-service"`
	Owner   string  `json:"owner"   share:"financial-service" sensitive:"random"`
	SSN     string  `json:"ssn"     share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
	Balance float64 `json:"balance" share:"*"`
	Notes   string  `json:"notes"`
}

type openReceipt struct {
	AccountID string `json:"account_id" share:"frontend,analytics-service"`
	Approved  bool   `json:"approved"   share:"*"`
	Risk      int    `json:"risk"`
}

// openCodecs returns fieldcrypt codecs for three services, each able to seal
// for the two others.
func openCodecs(t *testing.T) map[string]*fieldcrypt.Codec {
	t.Helper()
	type keys struct{ priv, pub, det *keyset.Handle }
	svcs := []string{"frontend", "financial-service", "analytics-service"}
	ks := map[string]keys{}
	for _, s := range svcs {
		priv, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := priv.Public()
		det, _ := keyset.NewHandle(daead.AESSIVKeyTemplate())
		ks[s] = keys{priv, pub, det}
	}
	out := map[string]*fieldcrypt.Codec{}
	for _, s := range svcs {
		id, _ := envelope.NewHPKEIdentity(ks[s].priv)
		rs := map[string]fieldcrypt.Recipient{}
		for _, o := range svcs {
			if o != s {
				to, _ := envelope.NewHPKERecipient(ks[o].pub)
				rs[o] = fieldcrypt.Recipient{To: to, Deterministic: ks[o].det}
			}
		}
		c, err := fieldcrypt.New(fieldcrypt.Config{Self: s, Identity: id, Deterministic: ks[s].det, Recipients: rs})
		if err != nil {
			t.Fatal(err)
		}
		out[s] = c
	}
	return out
}

func TestOpenRequest(t *testing.T) {
	codecs := openCodecs(t)
	key := mustKey(t, "k1", secretFrontend1)
	v, err := transport.New(transport.Config{Service: "financial-service", Environment: transport.Development,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: key}}})
	if err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t, "frontend", "financial-service", transport.Development, key, transport.SchemeV1, nil)

	var seen []openAccount
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a openAccount
		if _, err := transport.OpenRequest(r, codecs["financial-service"], &a); err != nil {
			var oe *transport.OpenError
			if !errors.As(err, &oe) {
				t.Errorf("not an OpenError: %v", err)
				http.Error(w, "internal", 500)
				return
			}
			oe.WriteProblem(w, r)
			return
		}
		seen = append(seen, a)
		if err := transport.WriteSealed(w, r, codecs["financial-service"], http.StatusCreated,
			&openReceipt{AccountID: a.ID, Approved: true, Risk: 9}); err != nil {
			t.Error(err)
		}
	})))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()

	in := openAccount{ID: "acc-1", Owner: "Ada", SSN: "123456789", Balance: 1.5, Notes: "private"}
	send := func(body []byte, ctype string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/accounts", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if err := signer.Sign(req); err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	code := func(resp *http.Response) transport.Code {
		t.Helper()
		p, err := transport.ParseProblem(resp)
		if err != nil {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		return p.Code
	}

	// Sealed by the caller: opened, exactly the shared fields; answered sealed.
	sealed, err := codecs["frontend"].Seal(&in, "financial-service")
	if err != nil {
		t.Fatal(err)
	}
	resp := send(sealed, transport.EnvelopeMediaType)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != transport.EnvelopeMediaType {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := in
	want.Notes = ""
	if len(seen) != 1 || seen[0] != want {
		t.Fatalf("handler saw %+v", seen)
	}
	b, _ := io.ReadAll(resp.Body)
	var rc openReceipt
	if _, err := codecs["frontend"].OpenFrom("financial-service", b, &rc); err != nil || rc != (openReceipt{AccountID: "acc-1", Approved: true}) {
		t.Fatalf("receipt %+v, %v", rc, err)
	}

	// Sealed by analytics-service, signed by frontend: 403 sender_mismatch.
	forged, _ := codecs["analytics-service"].Seal(&in, "financial-service")
	if resp := send(forged, transport.EnvelopeMediaType); resp.StatusCode != 403 || code(resp) != transport.CodeSenderMismatch {
		t.Fatalf("forged sender: %d", resp.StatusCode)
	}
	// Plain JSON: 415.
	plain, _ := json.Marshal(&in)
	if resp := send(plain, "application/json"); resp.StatusCode != 415 || code(resp) != transport.CodeUnsupportedMediaType {
		t.Fatalf("plain body: %d", resp.StatusCode)
	}
	// One byte changed in the data: 400 envelope_refused.
	tampered := bytes.Replace(sealed, []byte(`"acc-1"`), []byte(`"acc-2"`), 1)
	if bytes.Equal(tampered, sealed) {
		t.Fatal("tamper found nothing to change")
	}
	if resp := send(tampered, transport.EnvelopeMediaType); resp.StatusCode != 400 || code(resp) != transport.CodeEnvelopeRefused {
		t.Fatalf("tampered: %d", resp.StatusCode)
	}
	if len(seen) != 1 {
		t.Fatalf("a refused envelope reached the handler: %+v", seen)
	}

	// Without a verifier there is no caller to check against.
	r := httptest.NewRequest(http.MethodPost, "/accounts", bytes.NewReader(sealed))
	r.Header.Set("Content-Type", transport.EnvelopeMediaType)
	var a openAccount
	_, err = transport.OpenRequest(r, codecs["financial-service"], &a)
	var oe *transport.OpenError
	if !errors.As(err, &oe) || !errors.Is(err, transport.ErrNoVerifiedCaller) || oe.Status != 401 || a != (openAccount{}) {
		t.Fatalf("no verifier: %v", err)
	}
	rec := httptest.NewRecorder()
	oe.WriteProblem(rec, r)
	if rec.Code != 401 || rec.Header().Get("Content-Type") != transport.ProblemContentType {
		t.Fatalf("problem written: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if err := transport.WriteSealed(httptest.NewRecorder(), r, codecs["financial-service"], 200, &openReceipt{}); !errors.Is(err, transport.ErrNoVerifiedCaller) {
		t.Fatalf("WriteSealed without caller: %v", err)
	}
}
