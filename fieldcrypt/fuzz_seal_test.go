package fieldcrypt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/envelope"
)

// sealFuzz holds every kind of value the encoder writes itself (strings,
// numbers, bytes, maps, times) and two it hands to encoding/json (a raw
// message and a number), with one member of each sensitive mode.
type sealFuzz struct {
	S   string            `json:"s" share:"financial-service"`
	Rnd string            `json:"rnd" share:"financial-service" sensitive:"random"`
	Det string            `json:"det" share:"financial-service" sensitive:"deterministic"`
	F   float64           `json:"f" share:"*"`
	F32 float32           `json:"f32" share:"*"`
	I   int64             `json:"i" share:"*"`
	U   uint16            `json:"u" share:"*"`
	B   []byte            `json:"b" share:"*"`
	M   map[string]string `json:"m" share:"*"`
	MI  map[int32]bool    `json:"mi" share:"*"`
	Raw json.RawMessage   `json:"raw,omitempty" share:"*"`
	Num json.Number       `json:"num,omitempty" share:"*"`
	At  time.Time         `json:"at" share:"*"`
	Opt *string           `json:"opt,omitempty" share:"*"`
}

// FuzzSealData: whatever the value, Seal writes well-formed JSON (which
// lets it skip envelope's own scan of the data, see internal/sealhook),
// byte for byte what encoding/json writes for the clear members, and the
// recipient opens it back to what an encoding/json round trip gives. Seal
// and encoding/json fail on the same values.
func FuzzSealData(f *testing.F) {
	w := newWorld(f)
	f.Add("plain", "secret", "det", 1.5, int64(-3), uint16(7), []byte("bytes"), "k", `{"a":[1,2]}`, "12.50", int64(1767225600123456789))
	f.Add("<a href=\"x\">&amp;</a>\u2028\u2029", "\xff\xfe", "é😀\x01\t\n", 1e21, int64(math.MinInt64), uint16(65535), []byte{0, 255}, "k<&>\xff", ` [ 1 , "x" ] `, "-0.0e+5", int64(-62135596800000000000/1e10))
	f.Add("", "", "", 5e-324, int64(0), uint16(0), []byte(nil), "", "", "", int64(0))
	f.Add("x", "y", "z", 1.0, int64(2), uint16(3), []byte("b"), "k", "\"\xff\"", "1", int64(0))
	f.Add("a\ufffdb", "x", "y", math.Copysign(0, -1), int64(1), uint16(1), []byte{}, "\ufffd", "null", "1e400", int64(253402300799999999))
	f.Fuzz(func(t *testing.T, s, rnd, det string, fl float64, i int64, u uint16, b []byte, key, raw, num string, ns int64) {
		in := sealFuzz{S: s, Rnd: rnd, Det: det, F: fl, F32: float32(fl), I: i, U: u, B: b,
			M: map[string]string{key: s, "fixed": rnd}, MI: map[int32]bool{int32(i): true, int32(u): false},
			Raw: json.RawMessage(raw), Num: json.Number(num), At: time.Unix(0, ns).In(time.FixedZone("", int(u)%1440*60-12*3600))}
		if i%2 == 0 {
			in.Opt = &key
		}
		want, wantErr := json.Marshal(in)
		if wantErr == nil && !utf8.Valid(want) {
			// A json.RawMessage with invalid UTF-8: encoding/json lets it
			// through, Seal refuses it.
			wantErr = errors.New("invalid UTF-8")
		}
		env, err := w.sender.Seal(&in, financial)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("Seal error %v, encoding/json error %v", err, wantErr)
		}
		if err != nil {
			return
		}
		e, err := envelope.Parse(env)
		if err != nil {
			t.Fatalf("Seal wrote an envelope that does not parse: %v", err)
		}
		if !utf8.Valid(e.Data) || !json.Valid(e.Data) {
			t.Fatalf("data is not well-formed JSON: %q", e.Data)
		}
		// The clear members are encoding/json's bytes (U+FFFD written as an
		// escape on every Go version); the sensitive ones are markers.
		var got, exp map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want, &exp); err != nil {
			t.Fatal(err)
		}
		fffd := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\uFFFD"), []byte(`\ufffd`)) }
		for k, v := range exp {
			if k == "rnd" || k == "det" {
				if !bytes.HasPrefix(got[k], []byte(`{"$enc":"`)) {
					t.Fatalf("%s is not a marker: %s", k, got[k])
				}
				continue
			}
			if !bytes.Equal(fffd(got[k]), fffd(v)) {
				t.Fatalf("member %s\nseal          %s\nencoding/json %s", k, got[k], v)
			}
		}
		if len(got) != len(exp) {
			t.Fatalf("members: seal %d, encoding/json %d", len(got), len(exp))
		}
		var out, viaJSON sealFuzz
		if _, err := w.finC.Open(env, &out); err != nil {
			t.Fatalf("the recipient cannot open it: %v", err)
		}
		if err := json.Unmarshal(want, &viaJSON); err != nil {
			t.Fatal(err)
		}
		out.At, viaJSON.At = out.At.UTC(), viaJSON.At.UTC()
		if !reflect.DeepEqual(out, viaJSON) {
			t.Fatalf("opened\n%+v\nencoding/json round trip\n%+v", out, viaJSON)
		}
	})
}
