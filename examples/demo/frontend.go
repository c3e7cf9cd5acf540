package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
	"github.com/lifenavigator/crossservice/transport/devcert"
)

// The account the frontend holds. The orchestrator looks for these values in
// what each service printed.
const (
	demoOwner = "Ann Example"
	demoSSN   = "123456789"
	demoNotes = "VIP: call before noon"
)

// runFrontend plays the frontend gateway: it seals the account for each
// service and calls them with the signing client, then attacks
// financial-service four ways and checks that each attack is refused.
func runFrontend() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := os.Getenv("XSVC_DEMO_DIR")
	env, err := transport.EnvironmentFromEnv(nil)
	if err != nil {
		return err
	}
	kr, err := openKeyring(dir)
	if err != nil {
		return err
	}
	ident, err := kr.identity(frontend)
	if err != nil {
		return err
	}
	toFin, err := kr.recipient(financial)
	if err != nil {
		return err
	}
	toAn, err := kr.recipient(analytics)
	if err != nil {
		return err
	}
	finDet, err := kr.private(financial + ".det.json")
	if err != nil {
		return err
	}
	codec, err := fieldcrypt.New(fieldcrypt.Config{
		Self:     frontend,
		Identity: ident, // opens the sealed responses
		Recipients: map[string]fieldcrypt.Recipient{
			financial: {To: toFin, Deterministic: finDet},
			analytics: {To: toAn},
		},
	})
	if err != nil {
		return err
	}
	certs := filepath.Join(dir, "certs")
	base, err := tlsTransport(certs, frontend)
	if err != nil {
		return err
	}
	defer base.CloseIdleConnections()

	fin, finEnv, err := newClient(financial, codec, base)
	if err != nil {
		return err
	}
	an, _, err := newClient(analytics, codec, base)
	if err != nil {
		return err
	}

	acct := Account{ID: "acc-1001", Owner: demoOwner, SSN: demoSSN, Balance: 1520.75, Notes: demoNotes}
	held, _ := json.Marshal(acct)
	fmt.Printf("the account as the frontend holds it: %s\n", held)

	fmt.Printf("\n-- hop 1: frontend -> financial-service, POST /accounts, sealed for financial-service\n")
	var receipt Receipt
	if err := fin.Post(ctx, "/accounts", acct, &receipt); err != nil {
		return fmt.Errorf("hop 1: %w", err)
	}
	fmt.Printf("response, opened by the frontend: %s\n", nonZero(receipt))

	fmt.Printf("\n-- hop 2: frontend -> analytics-service, POST /events, sealed for analytics-service\n")
	var ack Ack
	if err := an.Post(ctx, "/events", acct, &ack); err != nil {
		return fmt.Errorf("hop 2: %w", err)
	}
	fmt.Printf("response, opened by the frontend: %s\n", nonZero(ack))

	fmt.Printf("\n-- protections: four attacks on financial-service, each must be refused\n")
	failed := 0
	check := func(what string, resp *http.Response, err error, wantStatus int, wantCode transport.Code) {
		got := "no response"
		ok := false
		if err == nil {
			p, perr := transport.ParseProblem(resp)
			resp.Body.Close()
			switch {
			case perr == nil:
				got = fmt.Sprintf("%d %s", resp.StatusCode, p.Code)
				ok = resp.StatusCode == wantStatus && p.Code == wantCode
			default:
				got = fmt.Sprintf("%d (not a problem document)", resp.StatusCode)
			}
		} else {
			got = err.Error()
		}
		mark := "refused as expected"
		if !ok {
			mark = fmt.Sprintf("UNEXPECTED (want %d %s)", wantStatus, wantCode)
			failed++
		}
		fmt.Printf("  %-44s -> %-32s %s\n", what, got, mark)
	}
	raw := &http.Client{Transport: base, Timeout: 10 * time.Second}
	signer, err := finEnv.Signer()
	if err != nil {
		return err
	}
	sealed, err := codec.Seal(acct, financial)
	if err != nil {
		return err
	}

	// 1. Replay: a request captured on the way (say, from a proxy log) and sent again.
	first, err := signedRequest(ctx, signer, finEnv.BaseURL+"/accounts", sealed)
	if err != nil {
		return err
	}
	again := first.Clone(ctx)
	again.Body = io.NopCloser(bytes.NewReader(sealed))
	resp, err := raw.Do(first)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the original of the replayed request was refused: %d", resp.StatusCode)
	}
	resp, err = raw.Do(again)
	check("replayed request (same id, same signature)", resp, err, http.StatusUnauthorized, transport.CodeReplayDetected)

	// 2. A stale timestamp: a request signed six minutes ago (or by a client
	//    whose clock is six minutes slow).
	key, err := transport.TargetKeyFromEnv(nil, financial)
	if err != nil {
		return err
	}
	stale, err := transport.NewSigner(transport.SignerConfig{
		Caller: frontend, Target: financial, Environment: env, Key: key,
		Clock: func() time.Time { return time.Now().Add(-6 * time.Minute) },
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, finEnv.BaseURL+"/health-check", nil)
	if err != nil {
		return err
	}
	if err := stale.Sign(req); err != nil {
		return err
	}
	resp, err = raw.Do(req)
	check("stale timestamp (signed 6 minutes ago)", resp, err, http.StatusUnauthorized, transport.CodeTimestampOutOfWindow)

	// 3. A tampered body: one byte of a clear field changed after signing.
	req, err = signedRequest(ctx, signer, finEnv.BaseURL+"/accounts", sealed)
	if err != nil {
		return err
	}
	tampered := bytes.Replace(sealed, []byte(`"balance":1520.75`), []byte(`"balance":9520.75`), 1)
	if bytes.Equal(tampered, sealed) {
		return errors.New("the sealed account has no clear balance to tamper with")
	}
	req.Body = io.NopCloser(bytes.NewReader(tampered))
	resp, err = raw.Do(req)
	check("tampered body (balance 1520.75 -> 9520.75)", resp, err, http.StatusUnauthorized, transport.CodeSignatureInvalid)

	// 4. An unauthorized caller: marketing-service, with its own valid key and
	//    certificate, on a route that admits only the frontend.
	mkKey, err := transport.NewKey("mk-1", []byte(os.Getenv("XSVC_DEMO_MARKETING_KEY")))
	if err != nil {
		return err
	}
	mkSigner, err := transport.NewSigner(transport.SignerConfig{Caller: marketing, Target: financial, Environment: env, Key: mkKey})
	if err != nil {
		return err
	}
	mkBase, err := tlsTransport(certs, marketing)
	if err != nil {
		return err
	}
	defer mkBase.CloseIdleConnections()
	req, err = signedRequest(ctx, mkSigner, finEnv.BaseURL+"/accounts", sealed)
	if err != nil {
		return err
	}
	resp, err = (&http.Client{Transport: mkBase, Timeout: 10 * time.Second}).Do(req)
	check("unauthorized caller (marketing-service)", resp, err, http.StatusForbidden, transport.CodeServiceNotAuthorized)

	if failed > 0 {
		return fmt.Errorf("%d attack(s) were not refused as expected", failed)
	}
	return nil
}

func newClient(target string, codec *fieldcrypt.Codec, base http.RoundTripper) (*client.Client, *client.Env, error) {
	e, err := client.LoadEnv(target, nil)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := e.Config()
	if err != nil {
		return nil, nil, err
	}
	cfg.Codec = codec
	cfg.Transport.Base = base
	c, err := client.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, e, nil
}

// tlsTransport is an HTTP transport that speaks TLS 1.3 only and presents the
// service's certificate (mutual TLS).
func tlsTransport(certs, service string) (*http.Transport, error) {
	pair, err := devcert.LoadPair(certs, service)
	if err != nil {
		return nil, err
	}
	pool, err := devcert.LoadPool(certs)
	if err != nil {
		return nil, err
	}
	cfg, err := transport.ClientTLSConfig(pool, &pair)
	if err != nil {
		return nil, err
	}
	return &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4,
		TLSHandshakeTimeout: 5 * time.Second}, nil
}

// signedRequest builds a sealed POST and signs it once, as the client would
// for one attempt.
func signedRequest(ctx context.Context, s *transport.Signer, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", transport.EnvelopeMediaType)
	if err := s.Sign(req); err != nil {
		return nil, err
	}
	return req, nil
}
