package envelope_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lifenavigator/crossservice/envelope"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives Marshal and Parse again unchanged.
func FuzzParse(f *testing.F) {
	vs, _ := loadVectors(f)
	for _, v := range vs {
		f.Add([]byte(v.Envelope))
	}
	f.Add([]byte(canonicalEnvelope(canonicalHeader, `{"a":[1,{"b":"\u00e9"}]}`, canonicalTag)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := envelope.Parse(b)
		if err != nil {
			return
		}
		m := e.Marshal()
		e2, err := envelope.Parse(m)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v", err)
		}
		if !bytes.Equal(e2.Marshal(), m) {
			t.Fatal("Marshal(Parse(Marshal(e))) != Marshal(e)")
		}
		if !bytes.Equal(e.RawHeader, e2.RawHeader) || !bytes.Equal(e.Data, e2.Data) || !bytes.Equal(e.Tag, e2.Tag) {
			t.Fatal("round trip changed the authenticated bytes")
		}
		if !json.Valid(e.Data) || !json.Valid(e.RawHeader) {
			t.Fatal("accepted invalid JSON")
		}
		// The header re-marshalled from its fields parses to the same fields.
		e.RawHeader = nil
		e3, err := envelope.Parse(e.Marshal())
		if err != nil {
			t.Fatalf("canonical header does not parse: %v", err)
		}
		if !reflect.DeepEqual(e3.Header, e2.Header) {
			t.Fatalf("header fields changed: %+v != %+v", e3.Header, e2.Header)
		}
	})
}

// FuzzOpen checks that Open and OpenField never panic and never accept
// anything but a valid envelope or marker: a success must be, up to the
// unauthenticated top-level layout, one of the seed envelopes.
func FuzzOpen(f *testing.F) {
	vs, handles := loadVectors(f)
	var valid []*envelope.Envelope
	var o *envelope.Opener
	var marker []byte
	var opened *envelope.Opened
	for _, v := range vs {
		f.Add([]byte(v.Envelope))
		if v.Expected != "ok" || v.IdentityKind != "hpke" {
			continue
		}
		e, err := envelope.Parse([]byte(v.Envelope))
		if err != nil {
			f.Fatal(err)
		}
		valid = append(valid, e)
		if opened == nil && v.Name == "hpke_random_field" {
			o = vectorOpener(f, v, handles)
			if opened, err = o.Open([]byte(v.Envelope)); err != nil {
				f.Fatal(err)
			}
			marker = rawAt(f, opened.Data, "/owner")
			f.Add(marker)
		}
	}
	if opened == nil || len(valid) == 0 {
		f.Fatal("no seed vectors")
	}
	var wantMarker map[string]string
	if err := json.Unmarshal(marker, &wantMarker); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := o.Open(b); err == nil {
			e, err := envelope.Parse(b)
			if err != nil {
				t.Fatalf("Open accepted what Parse refuses: %v", err)
			}
			found := false
			for _, v := range valid {
				if bytes.Equal(e.Marshal(), v.Marshal()) {
					found = true
				}
			}
			if !found {
				t.Fatal("Open accepted a modified envelope")
			}
		}
		for _, mode := range []envelope.Mode{envelope.Random, envelope.Deterministic} {
			pt, err := opened.OpenField(b, mode, []byte("/owner"), []byte("/owner"))
			if err != nil {
				continue
			}
			var got map[string]string
			if json.Unmarshal(b, &got) != nil || !reflect.DeepEqual(got, wantMarker) || mode != envelope.Random {
				t.Fatalf("OpenField accepted a modified marker")
			}
			if string(pt) != `"Jane Doe"` {
				t.Fatal("wrong plaintext")
			}
		}
	})
}
