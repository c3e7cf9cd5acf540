package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/internal/refdto"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

// BenchmarkExchange measures one request/response of the reference DTO over
// TLS 1.3 keep-alive loopback, in the same run:
//
//   - plain-json: JSON both ways, no signing, no verifier;
//   - signed-sealed: the request signed per attempt and verified by the real
//     middleware (replay store included), the DTO sealed for the target and
//     opened by transport.OpenRequest, the answer sealed back with
//     transport.WriteSealed and opened by the client;
//   - crypto-floor: plain-json plus the cryptography signed-sealed cannot
//     do without, made with the raw primitives (see cryptoFloor);
//   - ratio: plain, crypto-floor and signed-sealed alternated in one loop,
//     reporting plain/sealed time per exchange as "throughput-ratio" (the
//     goal is >= 0.85) and plain/crypto-floor as "floor-ratio" (the most
//     any implementation could reach), so that load from other processes
//     hits all three alike.
func BenchmarkExchange(b *testing.B) {
	v, signer := signedPairFor(b, refdto.Sender, refdto.Recipient)
	billing := newCodec(b, refdto.Recipient, refdto.Sender)
	floor := newCryptoFloor(b)
	in := refdto.Sample()
	body, err := json.Marshal(&in)
	if err != nil {
		b.Fatal(err)
	}
	var bodySig [32]byte
	floor.mac(body, &bodySig)
	mux := http.NewServeMux()
	// The floor's server: the plain handler, plus verifying the request's
	// signature (its bytes are known in advance: the client computes but
	// does not send it), opening the request and sealing the answer.
	mux.HandleFunc("POST /floor", func(w http.ResponseWriter, r *http.Request) {
		got, err := io.ReadAll(r.Body)
		if err != nil || !floor.verify(got, &bodySig) {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		var o refdto.Order
		if err := json.Unmarshal(got, &o); err != nil || floor.open() != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		o.Paid = true
		if floor.seal() != nil {
			http.Error(w, "internal", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&o)
	})
	mux.HandleFunc("POST /plain", func(w http.ResponseWriter, r *http.Request) {
		var o refdto.Order
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		o.Paid = true
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&o)
	})
	sealed := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var o refdto.Order
		if _, err := transport.OpenRequest(r, billing, &o); err != nil {
			var oe *transport.OpenError
			if errors.As(err, &oe) {
				oe.WriteProblem(w, r)
				return
			}
			http.Error(w, "internal", http.StatusInternalServerError)
			return
		}
		o.Paid = true
		if err := transport.WriteSealed(w, r, billing, http.StatusOK, &o); err != nil {
			http.Error(w, "internal", http.StatusInternalServerError)
		}
	}))
	mux.Handle("POST /sealed", sealed)
	mux.Handle("POST /signed-json", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var o refdto.Order
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		o.Paid = true
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&o)
	})))
	mux.HandleFunc("POST /sealed-unsigned", func(w http.ResponseWriter, r *http.Request) {
		var o refdto.Order
		b, _ := io.ReadAll(r.Body)
		if _, err := billing.OpenFrom(refdto.Sender, b, &o); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		o.Paid = true
		out, err := billing.Seal(&o, refdto.Sender)
		if err != nil {
			http.Error(w, "internal", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", client.EnvelopeMediaType)
		w.Write(out)
	})
	srv := tlsServer(b, 0, mux, nil)

	mk := func(codec client.Codec, s client.Signer) *client.Client {
		c, err := client.New(client.Config{
			BaseURL: srv.URL,
			Codec:   codec,
			Transport: client.TransportConfig{
				Target: refdto.Recipient,
				Base:   tlsBase(b, nil),
				Signer: s,
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	checkout := newCodec(b, refdto.Sender, refdto.Recipient)
	plain := mk(nil, nil)
	secure := mk(checkout, signer)
	// Each kind of exchange has its own client, so its own connection: in
	// the ratio loop every exchange follows one on another connection.
	plainFloor := mk(nil, nil)
	ctx := context.Background()
	exchange := func(c *client.Client, path string) error {
		var out refdto.Order
		if err := c.Post(ctx, path, &in, &out); err != nil {
			return err
		}
		if !out.Paid {
			return errors.New("answer not decoded")
		}
		return nil
	}
	// Sequential callers fail the benchmark at once; parallel ones report
	// and stop (FailNow belongs to the benchmark's goroutine).
	plainOnce := func() {
		if err := exchange(plain, "/plain"); err != nil {
			b.Fatal(err)
		}
	}
	sealedOnce := func() {
		if err := exchange(secure, "/sealed"); err != nil {
			b.Fatal(err)
		}
	}
	// The floor's client: the plain exchange, plus sealing and signing the
	// request and opening the answer.
	floorOnce := func() {
		var sig [32]byte
		if err := floor.seal(); err != nil {
			b.Fatal(err)
		}
		floor.mac(body, &sig)
		if err := exchange(plainFloor, "/floor"); err != nil {
			b.Fatal(err)
		}
		if err := floor.open(); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up: TLS handshakes, plans, wrapped and unwrapped data keys.
	plainOnce()
	floorOnce()
	sealedOnce()

	b.Run("plain-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plainOnce()
		}
	})
	b.Run("signed-sealed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sealedOnce()
		}
	})
	// Throughput with 8 concurrent callers per core (keep-alive pool).
	b.Run("parallel/plain-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := exchange(plain, "/plain"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("parallel/signed-sealed", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := exchange(secure, "/sealed"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	// The parts of the difference, for the record.
	b.Run("parts/crypto-floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			floorOnce()
		}
	})
	raw := &http.Client{Transport: tlsBase(b, nil)}
	b.Run("parts/net-http-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := raw.Post(srv.URL+"/plain", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var out refdto.Order
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
		}
	})
	signedPlain := mk(nil, signer)
	b.Run("parts/signed-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out refdto.Order
			if err := signedPlain.Post(ctx, "/signed-json", &in, &out); err != nil || !out.Paid {
				b.Fatal(err)
			}
		}
	})
	unsigned := mk(checkout, nil)
	b.Run("parts/sealed-unsigned", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out refdto.Order
			if err := unsigned.Post(ctx, "/sealed-unsigned", &in, &out); err != nil || !out.Paid {
				b.Fatal(err)
			}
		}
	})
	b.Run("ratio", func(b *testing.B) {
		b.ReportAllocs()
		var tp, tf, ts time.Duration
		for b.Loop() {
			t0 := time.Now()
			plainOnce()
			t1 := time.Now()
			floorOnce()
			t2 := time.Now()
			sealedOnce()
			tp += t1.Sub(t0)
			tf += t2.Sub(t1)
			ts += time.Since(t2)
		}
		b.ReportMetric(float64(tp)/float64(ts), "throughput-ratio")
		b.ReportMetric(float64(tp)/float64(tf), "floor-ratio")
	})
}
