package fieldcrypt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/internal/sealhook"
)

type Leafy struct {
	ID string          `json:"id" share:"*"`
	J  json.RawMessage `json:"j" share:"*"`
	D  nested          `json:"d" share:"*"`
}

// nested marshals itself as n nested arrays.
type nested struct{ n int }

func (d nested) MarshalJSON() ([]byte, error) {
	if d.n == 0 {
		return []byte("null"), nil
	}
	return []byte(strings.Repeat("[", d.n) + strings.Repeat("]", d.n)), nil
}
func (d *nested) UnmarshalJSON(b []byte) error { return nil }

func nest(n int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", n) + strings.Repeat("]", n))
}

// Values that marshal themselves (json.RawMessage, a MarshalJSON) are not
// walked by the encoder, and encoding/json lets thousands of levels
// through: Seal must still refuse what is nested deeper than MaxDepth, as
// Open counts it, rather than write an envelope beyond the format's 1000
// levels or one its own recipient refuses.
func TestSealCountsSelfMarshalledNesting(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	for _, md := range []int{fieldcrypt.DefaultMaxDepth, fieldcrypt.MaxMaxDepth} {
		cfg := fieldcrypt.Config{MaxDepth: md}
		sender, receiver := front.codecWith(t, cfg, fin), fin.codecWith(t, cfg, front)
		// data is level 1: a top-level field's value may nest md-1 levels.
		for _, v := range []*Leafy{{J: nest(md - 1)}, {J: json.RawMessage("1"), D: nested{md - 1}}} {
			env, err := sender.Seal(v, financial)
			if err != nil {
				t.Fatalf("MaxDepth %d: %v", md, err)
			}
			var got Leafy
			if _, err := receiver.Open(env, &got); err != nil {
				t.Fatalf("MaxDepth %d: sealed at the limit, not opened: %v", md, err)
			}
		}
		for _, v := range []*Leafy{{J: nest(md)}, {J: nest(9000)}, {J: json.RawMessage("1"), D: nested{md}}} {
			if _, err := sender.Seal(v, financial); err == nil || !strings.Contains(err.Error(), "deeper than Config.MaxDepth") {
				t.Fatalf("MaxDepth %d: sealed a value nested past it: %v", md, err)
			}
		}
	}
}

type RNode struct {
	ID     string `json:"id" share:"*"`
	Next   *RNode `json:"next,omitempty" share:"*"`
	Secret string `json:"secret,omitempty" share:"*" sensitive:"random"`
}

// A marker at the deepest level the format allows opens whether it is in
// the sealer's exact form or not: the marker is not a level of the value's
// nesting on either path of the decoder.
func TestMarkerAtTheDeepestLevel(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	cfg := fieldcrypt.Config{MaxDepth: fieldcrypt.MaxMaxDepth}
	receiver := fin.codecWith(t, cfg, front)
	opener, err := envelope.NewOpener(envelope.OpenerConfig{Self: financial, Identity: fin.identity(t)})
	if err != nil {
		t.Fatal(err)
	}
	sample, err := front.codecWith(t, cfg, fin).Seal(&RNode{ID: "a"}, financial)
	if err != nil {
		t.Fatal(err)
	}
	e, err := envelope.Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	typ, raw := e.Header.Type, front.sealerFor(t, fin)
	for _, spaced := range []bool{false, true} {
		n := fieldcrypt.MaxMaxDepth // objects 1..999, the marker at 1000
		m, err := raw.Begin(typ)
		if err != nil {
			t.Fatal(err)
		}
		path := strings.Repeat("/next", n-1) + "/secret"
		mk, err := m.AppendField(nil, envelope.Random, []byte(path), []byte(path), []byte(`"s"`))
		if err != nil {
			t.Fatal(err)
		}
		if spaced {
			mk = bytes.Replace(mk, []byte(`{"$enc"`), []byte(`{ "$enc"`), 1)
		}
		data := strings.Repeat(`{"id":"x","next":`, n-1) + `{"id":"x","secret":` + string(mk) + strings.Repeat("}", n)
		env, err := sealhook.FinishEncoded(m, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := opener.Open(env); err != nil {
			t.Fatalf("spaced %v: envelope refuses it: %v", spaced, err)
		}
		var dst RNode
		if _, err := receiver.Open(env, &dst); err != nil {
			var pe *envelope.ParseError
			t.Fatalf("spaced %v: fieldcrypt refuses it: %v (ParseError %v)", spaced, err, errors.As(err, &pe))
		}
	}
}
