package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/lifenavigator/crossservice/transport/client"
)

// A typed call, and a failure read through the one error type. A real
// caller adds a Signer (from LoadEnv), a Codec and a TLS 1.3 Base.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/accounts" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"title":"Not Found","status":404,"code":"no_such_account","request_id":"r-1"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"id":"acc-1","balance":42.5}]`)
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()

	financial, err := client.New(client.Config{
		BaseURL:   srv.URL,
		Transport: client.TransportConfig{Target: "financial-service", Base: base},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	var accounts []struct {
		ID      string  `json:"id"`
		Balance float64 `json:"balance"`
	}
	if err := financial.Get(context.Background(), "/accounts", &accounts); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", accounts)

	err = financial.Get(context.Background(), "/accounts-typo", nil)
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, e.Status, e.Problem.Code, e.RequestID(), "retryable:", e.Retryable())
	}
	// Output:
	// [{ID:acc-1 Balance:42.5}]
	// remote 404 no_such_account r-1 retryable: false
}

// The Transport under a plain http.Client: errors.As finds the *Error
// inside the *url.Error that http.Client.Do returns.
func ExampleTransport() {
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	rt, err := client.NewTransport(client.TransportConfig{
		Target: "analytics-service",
		Base:   base,
		Retry:  client.RetryPolicy{MaxAttempts: 1},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	hc := &http.Client{Transport: rt} // no Timeout: use context deadlines

	// Nothing listens on port 1 of the loopback address.
	_, err = hc.Get("http://127.0.0.1:1/events")
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, "retryable:", e.Retryable(), "attempts:", e.Attempts)
	}
	// Output:
	// transport retryable: true attempts: 1
}
