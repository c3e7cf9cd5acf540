package fieldcrypt_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/internal/sealhook"
)

type Plain struct {
	ID   string  `json:"id" share:"*"`
	N    float64 `json:"n" share:"*"`
	Name string  `json:"name" share:"*" sensitive:"random"`
}

// Rich has a value of every shape the decoder reads, free-form JSON
// included, whose depth only the decoder's limit bounds.
type Rich struct {
	ID   string                     `json:"id" share:"*"`
	N    float64                    `json:"n" share:"*"`
	OK   bool                       `json:"ok" share:"*"`
	J    json.RawMessage            `json:"j" share:"*"`
	F    map[string]json.RawMessage `json:"f" share:"*"`
	M    map[string]int             `json:"m" share:"*"`
	L    []Plain                    `json:"l" share:"*"`
	B    []byte                     `json:"b" share:"*"`
	P    *Plain                     `json:"p" share:"*"`
	Name string                     `json:"name" share:"*" sensitive:"random"`
	Mail string                     `json:"mail" share:"*" sensitive:"deterministic"`
	At   time.Time                  `json:"at" share:"*"`
	ByK  map[textKey]int            `json:"by_k" share:"*"`
}

// textKey is a map key that decodes itself.
type textKey string

func (k textKey) MarshalText() ([]byte, error)  { return []byte(k), nil }
func (k *textKey) UnmarshalText(b []byte) error { *k = textKey(b); return nil }

// authenticWorld returns financial's codec (with maxDepth), a sealer from
// frontend to it that can finish envelopes without checking their data,
// financial's plain envelope opener, and the type name of sample.
func authenticWorld(tb testing.TB, sample any, maxDepth int) (*fieldcrypt.Codec, *envelope.Sealer, *envelope.Opener, string) {
	tb.Helper()
	front, fin := newParty(tb, frontend), newParty(tb, financial)
	sealer := front.sealerFor(tb, fin)
	opener, err := envelope.NewOpener(envelope.OpenerConfig{Self: financial, Identity: fin.identity(tb),
		Deterministic: fin.det})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := fieldcrypt.Config{MaxDepth: maxDepth}
	good, err := front.codecWith(tb, cfg, fin).Seal(sample, financial)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := envelope.Parse(good)
	if err != nil {
		tb.Fatal(err)
	}
	return fin.codecWith(tb, cfg, front), sealer, opener, e.Header.Type
}

// sameRefusal checks fieldcrypt's result (got) against a full parse's
// (want) for authentic data: what fieldcrypt opens, the full parse
// accepts; what the full parse calls malformed, fieldcrypt refuses with
// the same *ParseError.
func sameRefusal(tb testing.TB, data []byte, want, got error) {
	tb.Helper()
	var wpe, gpe *envelope.ParseError
	if got == nil && want != nil {
		tb.Fatalf("%.80q: fieldcrypt opened what envelope refuses: %v", data, want)
	}
	if errors.As(want, &wpe) && (!errors.As(got, &gpe) || got.Error() != want.Error()) {
		tb.Fatalf("%.80q: envelope.Open says %v; fieldcrypt.Open %v", data, want, got)
	}
}

// sealUnscanned seals data as typ without checking its structure.
func sealUnscanned(tb testing.TB, sealer *envelope.Sealer, typ string, data []byte) ([]byte, bool) {
	tb.Helper()
	m, err := sealer.Begin(typ)
	if err != nil {
		tb.Fatal(err)
	}
	env, err := sealhook.FinishEncoded(m, data)
	return env, err == nil // refused: not UTF-8, or not starting with '{'
}

// The deepest data a Codec reads at MaxMaxDepth is data a full parse
// takes; one level deeper, fieldcrypt refuses it (the full parse still
// takes it); deeper than the format allows, both refuse it, alike.
func TestOpenDepthWithinTheFormat(t *testing.T) {
	receiver, sealer, opener, typ := authenticWorld(t, &Rich{}, fieldcrypt.MaxMaxDepth)
	for _, levels := range []int{fieldcrypt.MaxMaxDepth, fieldcrypt.MaxMaxDepth + 1, 1001, 1002} {
		// data is level 1; the value of "j" nests levels-1 arrays.
		data := []byte(`{"j":` + strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}`)
		env, ok := sealUnscanned(t, sealer, typ, data)
		if !ok {
			t.Fatal("not sealed")
		}
		_, want := opener.Open(env)
		var dst Rich
		_, got := receiver.Open(env, &dst)
		sameRefusal(t, data, want, got)
		if (got == nil) != (levels <= fieldcrypt.MaxMaxDepth) {
			t.Errorf("%d levels: fieldcrypt says %v", levels, got)
		}
		if (want == nil) != (levels <= 1000) {
			t.Errorf("%d levels: envelope says %v", levels, want)
		}
	}
	if _, err := fieldcrypt.New(fieldcrypt.Config{Self: financial, Recipients: map[string]fieldcrypt.Recipient{},
		Identity: newParty(t, financial).identity(t), MaxDepth: fieldcrypt.MaxMaxDepth + 1}); err == nil {
		t.Fatal("New took a MaxDepth above MaxMaxDepth")
	}
}

// Open leaves the walk of an envelope's data to its decoder (see
// internal/sealhook.OpenInto). Envelopes whose data is authentic but not one
// JSON object (a sender that skipped the checks; here, written by
// FinishEncoded, which does not scan) must get from fieldcrypt exactly the
// *ParseError envelope.Opener.Open gives them, and well-formed data the
// decoder refuses must stay ErrCannotOpen.
func TestOpenRefusesMalformedAuthenticData(t *testing.T) {
	receiver, sealer, opener, typ := authenticWorld(t, &Plain{ID: "a"}, 0)
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
		env, ok := sealUnscanned(t, sealer, typ, []byte(data))
		if !ok {
			t.Fatalf("%s: not sealed", data)
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
		// A wrong sender or type is found before the data is read: the
		// data's ParseError still comes first, as with a full parse.
		var other Keeping
		for _, mis := range []error{
			second(receiver.OpenFrom(analytics, env, &dst)),
			second(receiver.Open(env, &other)),
		} {
			var me *fieldcrypt.MismatchError
			if wpe != nil && (!errors.As(mis, &gpe) || mis.Error() != want.Error()) {
				t.Errorf("%s: with a mismatch too, fieldcrypt says %v; envelope.Open %v", data, mis, want)
			}
			if wpe == nil && !errors.As(mis, &me) {
				t.Errorf("%s: want a MismatchError, got %v", data, mis)
			}
		}
	}
}

func second[T any](_ T, err error) error { return err }

// FuzzOpenAuthenticData: data of any shape, sealed with a valid tag without
// being scanned. Whatever fieldcrypt opens, envelope's full parse takes
// too; whatever envelope refuses as malformed, fieldcrypt refuses with the
// same *ParseError. (Well-formed data may still hold a malformed marker,
// which OpenField reports as a *ParseError of its own.)
func FuzzOpenAuthenticData(f *testing.F) {
	for _, s := range []string{`{"id":"a","n":1.5,"name":{"$enc":"random","ct":"AAAA"}}`, `{"id":"a",}`,
		`{"id":"\u00e9\ud83d\ude00","n":-0.0e+1}`, `{"id":"a"}}`, `{}`, `{"n":1e400}`, "{\"id\":\"\t\"}",
		`{"j":[1,{"x":[true,null,"s"]}],"f":{"k":[1.5e3]},"m":{"x":1},"l":[{"id":"b"}],"b":"AAE=","p":{"id":"c"},"ok":false}`,
		`{"j":[[[[]]]],"m":{"x":1,"x":2}}`} {
		f.Add([]byte(s))
	}
	receiver, sealer, opener, typ := authenticWorld(f, &Rich{}, fieldcrypt.MaxMaxDepth)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, ok := sealUnscanned(t, sealer, typ, data)
		if !ok {
			return
		}
		_, want := opener.Open(env)
		var dst Rich
		_, got := receiver.Open(env, &dst)
		sameRefusal(t, data, want, got)
		// A wrong sender or type is refused, after data's own ParseError.
		var other Plain
		for _, mis := range []error{second(receiver.OpenFrom(analytics, env, &dst)), second(receiver.Open(env, &other))} {
			if mis == nil {
				t.Fatalf("%.80q: opened with a wrong sender or type", data)
			}
			sameRefusal(t, data, want, mis)
		}
	})
}
