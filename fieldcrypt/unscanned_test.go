package fieldcrypt_test

import (
	"errors"
	"testing"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/internal/sealhook"
)

type Plain struct {
	ID   string  `json:"id" share:"*"`
	N    float64 `json:"n" share:"*"`
	Name string  `json:"name" share:"*" sensitive:"random"`
}

// authenticWorld returns financial's codec, a sealer from frontend to it
// that can finish envelopes without checking their data, financial's plain
// envelope opener, and the type name of Plain.
func authenticWorld(tb testing.TB) (*fieldcrypt.Codec, *envelope.Sealer, *envelope.Opener, string) {
	tb.Helper()
	front, fin := newParty(tb, frontend), newParty(tb, financial)
	sealer, err := envelope.NewSealer(envelope.SealerConfig{Sender: frontend, Recipient: financial,
		To: fin.recipient(tb).To, Deterministic: fin.det})
	if err != nil {
		tb.Fatal(err)
	}
	opener, err := envelope.NewOpener(envelope.OpenerConfig{Self: financial, Identity: fin.identity(tb),
		Deterministic: fin.det})
	if err != nil {
		tb.Fatal(err)
	}
	good, err := front.codec(tb, fin).Seal(&Plain{ID: "a"}, financial)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := envelope.Parse(good)
	if err != nil {
		tb.Fatal(err)
	}
	return fin.codec(tb, front), sealer, opener, e.Header.Type
}

// Open leaves the walk of an envelope's data to its decoder (see
// internal/sealhook.OpenInto). Envelopes whose data is authentic but not one
// JSON object (a sender that skipped the checks; here, written by
// FinishEncoded, which does not scan) must get from fieldcrypt exactly the
// *ParseError envelope.Opener.Open gives them, and well-formed data the
// decoder refuses must stay ErrCannotOpen.
func TestOpenRefusesMalformedAuthenticData(t *testing.T) {
	receiver, sealer, opener, typ := authenticWorld(t)
	malformed := []string{
		`{"id":"a",}`, `{"id":"a""n":1}`, `{"id":"\x"}`, `{"id":"a","n":01}`, `{"id":"a","n":1.}`,
		`{"id":"a"}}`, `{"id":"a"} {}`, `{"id":"a` + "\x01" + `"}`, `{"id":tru}`, `{"id":"a","n":-}`,
		`{"id":"a","n":1e}`, `{"id" "a"}`, `{"id":["a"}`, `{,}`, `{"id":"\u12"}`,
	}
	wellFormed := []string{
		`{"id":"a","zz":1}`, `{"id":"a","id":"b"}`, `{"id":1}`, `{"id":"a","n":"1"}`,
		`{"id":"a","name":"clear where a marker is due"}`, `{ "id" : "a" , "zz" : 1 }`, `{"id":"\ud800","zz":1}`,
	}
	for _, data := range append(malformed, wellFormed...) {
		m, err := sealer.Begin(typ)
		if err != nil {
			t.Fatal(err)
		}
		env, err := sealhook.FinishEncoded(m, []byte(data))
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		_, want := opener.Open(env)
		var dst Plain
		_, got := receiver.Open(env, &dst)
		if got == nil {
			t.Fatalf("%s: opened", data)
		}
		var wpe, gpe *envelope.ParseError
		switch {
		case errors.As(want, &wpe):
			if !errors.As(got, &gpe) || got.Error() != want.Error() {
				t.Errorf("%s: envelope.Open says %v; fieldcrypt.Open %v", data, want, got)
			}
		case want != nil:
			t.Errorf("%s: envelope.Open refused it without a ParseError: %v", data, want)
		default: // well-formed: the decoder refuses it for what it says
			if errors.As(got, &gpe) || !errors.Is(got, envelope.ErrCannotOpen) {
				t.Errorf("%s: fieldcrypt.Open says %v, want ErrCannotOpen", data, got)
			}
		}
		if dst != (Plain{}) {
			t.Errorf("%s: dst changed: %+v", data, dst)
		}
	}
}

// FuzzOpenAuthenticData: data of any shape, sealed with a valid tag without
// being scanned. Whatever fieldcrypt opens, envelope's full parse takes
// too; whatever envelope refuses as malformed, fieldcrypt refuses with the
// same *ParseError. (Well-formed data may still hold a malformed marker,
// which OpenField reports as a *ParseError of its own.)
func FuzzOpenAuthenticData(f *testing.F) {
	for _, s := range []string{`{"id":"a","n":1.5,"name":{"$enc":"random","ct":"AAAA"}}`, `{"id":"a",}`,
		`{"id":"\u00e9\ud83d\ude00","n":-0.0e+1}`, `{"id":"a"}}`, `{}`, `{"n":1e400}`, "{\"id\":\"\t\"}"} {
		f.Add([]byte(s))
	}
	receiver, sealer, opener, typ := authenticWorld(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := sealer.Begin(typ)
		if err != nil {
			t.Fatal(err)
		}
		env, err := sealhook.FinishEncoded(m, data)
		if err != nil {
			return // not UTF-8, or not starting with '{'
		}
		_, want := opener.Open(env)
		var dst Plain
		_, got := receiver.Open(env, &dst)
		var wpe, gpe *envelope.ParseError
		if got == nil && want != nil {
			t.Fatalf("%q: fieldcrypt opened what envelope refuses: %v", data, want)
		}
		if errors.As(want, &wpe) && (!errors.As(got, &gpe) || got.Error() != want.Error()) {
			t.Fatalf("%q: envelope.Open says %v; fieldcrypt.Open %v", data, want, got)
		}
	})
}
