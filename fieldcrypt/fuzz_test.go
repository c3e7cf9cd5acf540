package fieldcrypt_test

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"testing"

	"github.com/lifenavigator/crossservice/envelope"
)

var randomMember = regexp.MustCompile(`"[a-z_]+":\{"\$enc":"random","ct":"[A-Za-z0-9_-]+"\},?`)

// FuzzOpen feeds the opener two ways: the input as a whole envelope, and
// the input as the data object of an envelope with a valid tag (so that the
// plan-driven reader sees it). It must never panic; a refusal must be
// ErrCannotOpen and leave the destination unchanged; and anything it
// accepts must seal and open again to the same value.
func FuzzOpen(f *testing.F) {
	w := newWorld(f)
	sealer := w.front.sealerFor(f, w.fin)
	sparse := sampleProfile()
	sparse.Manager, sparse.Backup, sparse.Limits, sparse.Accounts = nil, nil, map[string]float64{}, []Acct{}
	for _, p := range []Profile{sampleProfile(), {ID: "x", SSN: "000000000"}, sparse} {
		env, err := w.sender.Seal(&p, financial)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(env)
		e, err := envelope.Parse(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Data)
		// Random markers are bound to their message; without them (and with
		// the deterministic ones, which are not) the data object opens in
		// any message, so mutations explore the reader past the first
		// marker.
		data := randomMember.ReplaceAll(e.Data, nil)
		data = bytes.ReplaceAll(data, []byte("{,"), []byte("{"))
		data = bytes.ReplaceAll(data, []byte(",}"), []byte("}"))
		m, err := sealer.Begin(profileType)
		if err != nil {
			f.Fatal(err)
		}
		env2, err := m.Finish(data)
		if err != nil {
			f.Fatalf("seed %s: %v", data, err)
		}
		var check Profile
		if _, err := w.finC.Open(env2, &check); err != nil {
			f.Fatalf("seed %s does not open: %v", data, err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"id":"p-1","limits":{"a":1e308,"b":-0},"ledger":{"-5":{"balance":0}},"tags":null}`))
	f.Add([]byte(`{"id":"\u00e9\ud83d\ude00","joined":"2026-01-01T00:00:00Z","accounts":[]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		try := func(env []byte) {
			dst := Profile{Internal: "prefilled"}
			_, err := w.finC.Open(env, &dst)
			if err != nil {
				if !errors.Is(err, envelope.ErrCannotOpen) {
					t.Fatalf("refusal %v is not ErrCannotOpen", err)
				}
				if !reflect.DeepEqual(dst, Profile{Internal: "prefilled"}) {
					t.Fatalf("dst changed on error")
				}
				return
			}
			if dst.Internal != "" {
				t.Fatalf("an unshared field survived Open")
			}
			again, err := w.sender.Seal(&dst, financial)
			if err != nil {
				// The opened value may be invalid for sealing only through
				// float values encoding/json refuses; nothing else.
				return
			}
			var back Profile
			if _, err := w.finC.Open(again, &back); err != nil {
				t.Fatalf("re-sealed value does not open: %v", err)
			}
			if !reflect.DeepEqual(normalize(back), normalize(dst)) {
				t.Fatalf("round trip changed the value:\n%+v\n%+v", dst, back)
			}
		}
		try(in)
		m, err := sealer.Begin(profileType)
		if err != nil {
			t.Fatal(err)
		}
		if env, err := m.Finish(in); err == nil {
			try(env)
		}
	})
}
