package fieldcrypt_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/schema"
)

type world struct {
	front, fin, ana *party
	sender          *fieldcrypt.Codec
	finC, anaC      *fieldcrypt.Codec
}

func newWorld(t testing.TB) *world {
	w := &world{front: newParty(t, frontend), fin: newParty(t, financial), ana: newParty(t, analytics)}
	w.sender = w.front.codec(t, w.fin, w.ana)
	w.finC = w.fin.codec(t, w.front)
	w.anaC = w.ana.codec(t, w.front)
	return w
}

// normalize makes times comparable with DeepEqual (locations differ after
// a JSON round trip, as with encoding/json).
func normalize(p Profile) Profile {
	p.Joined = p.Joined.UTC()
	if p.Birthday != nil {
		b := p.Birthday.UTC()
		p.Birthday = &b
	}
	return p
}

func TestRoundTripPerRecipient(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name  string
		value func() Profile
	}{
		{"full", sampleProfile},
		{"nil pointers and empty containers", func() Profile {
			p := sampleProfile()
			p.Manager, p.Backup, p.Birthday, p.Limits, p.Secrets, p.Raw, p.Ledger = nil, nil, nil, nil, nil, nil, nil
			p.Accounts, p.Tags = []Acct{}, nil
			return p
		}},
		{"zero value but required fields", func() Profile { return Profile{ID: "x", SSN: "000000000"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				name  string
				codec *fieldcrypt.Codec
			}{{financial, w.finC}, {analytics, w.anaC}} {
				in := tc.value()
				env, err := w.sender.Seal(&in, r.name)
				if err != nil {
					t.Fatalf("Seal for %s: %v", r.name, err)
				}
				var out Profile
				h, err := r.codec.OpenFrom(frontend, env, &out)
				if err != nil {
					t.Fatalf("Open by %s: %v", r.name, err)
				}
				if h.Sender != frontend || h.Recipient != r.name || h.Type != "fieldcrypt_test.Profile" {
					t.Errorf("header %+v", h)
				}
				want := wantFor(tc.value(), r.name)
				if !reflect.DeepEqual(normalize(out), normalize(want)) {
					got, _ := json.MarshalIndent(out, "", " ")
					exp, _ := json.MarshalIndent(want, "", " ")
					t.Errorf("%s got\n%s\nwant\n%s", r.name, got, exp)
				}
			}
		})
	}
}

func TestOpenFromOtherSender(t *testing.T) {
	w := newWorld(t)
	in := sampleProfile()
	env, err := w.sender.Seal(in, financial) // by value: copied
	if err != nil {
		t.Fatal(err)
	}
	var out Profile
	_, err = w.finC.OpenFrom("billing", env, &out)
	var me *fieldcrypt.MismatchError
	if !errors.Is(err, envelope.ErrCannotOpen) || !errors.As(err, &me) || me.Member != "snd" {
		t.Fatalf("OpenFrom(billing) = %v", err)
	}
	if !reflect.DeepEqual(out, Profile{}) {
		t.Errorf("dst changed")
	}
}

type OtherType struct {
	ID string `json:"id" share:"*"`
}

type Renamed struct {
	ID string `json:"id" share:"*"`
}

func (Renamed) CrossServiceType() string { return "fieldcrypt_test.OtherType" }

func TestTypeMismatch(t *testing.T) {
	w := newWorld(t)
	env, err := w.sender.Seal(&OtherType{ID: "x"}, financial)
	if err != nil {
		t.Fatal(err)
	}
	out := sampleProfile()
	_, err = w.finC.Open(env, &out)
	var me *fieldcrypt.MismatchError
	if !errors.Is(err, envelope.ErrCannotOpen) || !errors.As(err, &me) || me.Member != "typ" ||
		me.Got != "fieldcrypt_test.OtherType" || me.Want != "fieldcrypt_test.Profile" {
		t.Fatalf("Open into another type = %v", err)
	}
	if !reflect.DeepEqual(out, sampleProfile()) {
		t.Errorf("dst changed")
	}
	// A type that names itself like another opens its envelopes.
	var r Renamed
	if _, err := w.finC.Open(env, &r); err != nil || r.ID != "x" {
		t.Errorf("CrossServiceType: %v %+v", err, r)
	}
}

func TestMisuse(t *testing.T) {
	w := newWorld(t)
	in := sampleProfile()
	var ive *fieldcrypt.InvalidValueError
	for _, v := range []any{nil, 3, (*Profile)(nil), []Profile{}} {
		if _, err := w.sender.Seal(v, financial); !errors.As(err, &ive) {
			t.Errorf("Seal(%T) = %v", v, err)
		}
	}
	if _, err := w.sender.Seal(&in, "billing"); !errors.Is(err, fieldcrypt.ErrUnknownRecipient) {
		t.Errorf("Seal for unknown = %v", err)
	}
	env, err := w.sender.Seal(&in, financial)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []any{nil, Profile{}, (*Profile)(nil), new(int), new(*Profile)} {
		if _, err := w.finC.Open(env, dst); !errors.As(err, &ive) {
			t.Errorf("Open into %T = %v", dst, err)
		}
	}
	type bad struct {
		A string `share:"financial-service" sensitve:"random"`
	}
	var te *schema.TagError
	if _, err := w.sender.Seal(&bad{}, financial); !errors.As(err, &te) || te.Tag != "sensitve" {
		t.Errorf("Seal of a mistyped type = %v", err)
	}
	if _, err := w.finC.Open(env, &bad{}); !errors.As(err, &te) {
		t.Errorf("Open into a mistyped type = %v", err)
	}
	sealOnly, err := fieldcrypt.New(fieldcrypt.Config{Self: frontend,
		Recipients: map[string]fieldcrypt.Recipient{financial: w.fin.recipient(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealOnly.Open(env, &in); !errors.Is(err, fieldcrypt.ErrNoIdentity) {
		t.Errorf("Open without identity = %v", err)
	}
	// A recipient without a deterministic keyset cannot get deterministic
	// fields.
	noDet := w.fin.recipient(t)
	noDet.Deterministic = nil
	c, err := fieldcrypt.New(fieldcrypt.Config{Self: frontend, Recipients: map[string]fieldcrypt.Recipient{financial: noDet}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Seal(&in, financial); err == nil {
		t.Errorf("Seal of a deterministic field without a keyset succeeded")
	} else if strings.Contains(err.Error(), in.SSN) {
		t.Errorf("error quotes the value: %v", err)
	}
	// A value nested deeper than MaxDepth is refused.
	type Node struct {
		Next *Node `json:"next" share:"*"`
	}
	type Chain struct {
		Head *Node `json:"head" share:"*"`
	}
	var head *Node
	for range fieldcrypt.DefaultMaxDepth + 1 {
		head = &Node{Next: head}
	}
	if _, err := w.sender.Seal(&Chain{Head: head}, financial); err == nil {
		t.Errorf("a chain deeper than MaxDepth was sealed")
	}
}

func TestNewErrors(t *testing.T) {
	p := newParty(t, financial)
	for name, cfg := range map[string]fieldcrypt.Config{
		"no self":           {Identity: p.identity(t)},
		"bad self":          {Self: "Bad", Identity: p.identity(t)},
		"nothing":           {Self: frontend},
		"negative depth":    {Self: frontend, Identity: p.identity(t), MaxDepth: -1},
		"det without id":    {Self: frontend, Deterministic: p.det, Recipients: map[string]fieldcrypt.Recipient{financial: p.recipient(t)}},
		"nil recipient":     {Self: frontend, Recipients: map[string]fieldcrypt.Recipient{financial: {}}},
		"bad recipient":     {Self: frontend, Recipients: map[string]fieldcrypt.Recipient{"*": p.recipient(t)}},
		"negative reuse":    {Self: frontend, Recipients: map[string]fieldcrypt.Recipient{financial: p.recipient(t)}, Reuse: envelope.Reuse{MaxMessages: -1}},
		"negative max size": {Self: frontend, Identity: p.identity(t), MaxSize: -1},
	} {
		if c, err := fieldcrypt.New(cfg); err == nil {
			t.Errorf("%s: New succeeded: %v", name, c)
		}
	}
}

// Everything the codec writes in the clear is exactly what encoding/json
// writes for the same value.
type AllClear struct {
	S      string            `json:"s" share:"*"`
	HTML   string            `json:"html" share:"*"`
	Uni    string            `json:"uni" share:"*"`
	Bad    string            `json:"bad" share:"*"`
	I8     int8              `json:"i8" share:"*"`
	U64    uint64            `json:"u64" share:"*"`
	F32    float32           `json:"f32" share:"*"`
	F64s   []float64         `json:"f64s" share:"*"`
	B      bool              `json:"b" share:"*"`
	Bytes  []byte            `json:"bytes" share:"*"`
	NilB   []byte            `json:"nilb" share:"*"`
	Arr    [3]int            `json:"arr" share:"*"`
	ByInt  map[int64]string  `json:"byint" share:"*"`
	ByText map[level]bool    `json:"bytext" share:"*"`
	When   time.Time         `json:"when" share:"*"`
	Raw    json.RawMessage   `json:"raw" share:"*"`
	Num    json.Number       `json:"num" share:"*"`
	Lvl    level             `json:"lvl" share:"*"`
	Ptr    **string          `json:"ptr" share:"*"`
	Omit   string            `json:"omit,omitempty" share:"*"`
	OmitZ  time.Time         `json:"omitz,omitzero" share:"*"`
	Nested map[string][]bool `json:"nested" share:"*"`
	Empty  struct{}          `json:"empty" share:"*"`
	Key    string            `json:"k<&>" share:"*"`
}

type level int

func (l level) MarshalText() ([]byte, error) { return []byte("L" + string(rune('0'+l))), nil }
func (l *level) UnmarshalText(b []byte) error {
	if len(b) != 2 || b[0] != 'L' {
		return errors.New("bad level")
	}
	*l = level(b[1] - '0')
	return nil
}

func TestClearOutputIsEncodingJSON(t *testing.T) {
	w := newWorld(t)
	s := "pointed"
	ps := &s
	v := AllClear{
		S: "plain", HTML: "<a href=\"x\">&amp;</a>", Uni: "é\u2028\u2029😀\x01\t\n", Bad: "a\xffb",
		I8: -128, U64: 1<<64 - 1, F32: 3.1415927, F64s: []float64{0, math.Copysign(0, -1), 1e-7, 1e21, 123456789.125, 1e20, 5e-324},
		B: true, Bytes: []byte("hello, world"), Arr: [3]int{1, 2, 3},
		ByInt: map[int64]string{10: "a", -2: "b", 3: "c"}, ByText: map[level]bool{2: true, 1: false},
		When: time.Date(2026, 11, 29, 16, 20, 46, 123456789, time.FixedZone("", -5*3600)),
		Raw:  json.RawMessage(`{ "z" : [1, 2] }`), Num: "12.50", Lvl: 4, Ptr: &ps,
		Nested: map[string][]bool{"b": {true}, "a": nil}, Key: "k",
	}
	env, err := w.sender.Seal(&v, financial)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := parts(t, env)
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// Go 1.27's encoding/json writes U+FFFD itself for invalid UTF-8 where
	// earlier versions (and the encoder, on every version) write \ufffd.
	want = bytes.ReplaceAll(want, []byte("\uFFFD"), []byte(`\ufffd`))
	if !bytes.Equal(e.Data, want) {
		t.Errorf("data\n%s\nencoding/json\n%s", e.Data, want)
	}
	var got, viaJSON AllClear
	if _, err := w.finC.Open(env, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &viaJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, viaJSON) {
		t.Errorf("decoded differently from encoding/json:\n%+v\n%+v", got, viaJSON)
	}
	for _, f := range []float64{1, -1} {
		bad := v
		bad.F64s = []float64{f / 0}
		if _, err := w.sender.Seal(&bad, financial); err == nil {
			t.Errorf("Inf sealed")
		}
	}
}

type EmbBase struct {
	ID string `json:"id" share:"*"`
}

type EmbMeta struct {
	Tag    string `json:"tag" share:"*"`
	Secret string `json:"secret" share:"*" sensitive:"random"`
}

type Embedded struct {
	EmbBase
	*EmbMeta
	Name string `json:"name" share:"*"`
}

func TestEmbedded(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	counted := &countingReader{}
	sender := front.codecWith(t, fieldcrypt.Config{Rand: counted, Clock: func() time.Time { return time.Unix(1e9, 0) }}, fin)
	finC := fin.codec(t, front)
	for _, v := range []Embedded{
		{EmbBase: EmbBase{ID: "1"}, Name: "nil embedded pointer"},
		{EmbBase: EmbBase{ID: "2"}, EmbMeta: &EmbMeta{Tag: "t", Secret: "s"}, Name: "set"},
	} {
		env, err := sender.Seal(&v, financial)
		if err != nil {
			t.Fatal(err)
		}
		var out Embedded
		h, err := finC.Open(env, &out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, v) {
			t.Errorf("got %+v, want %+v", out, v)
		}
		if !h.IssuedAt.Equal(time.Unix(1e9, 0)) {
			t.Errorf("Config.Clock not used: %v", h.IssuedAt)
		}
	}
	if counted.n == 0 {
		t.Errorf("Config.Rand not used")
	}
	if s := sender.String(); !strings.Contains(s, financial) || !strings.Contains(s, frontend) {
		t.Errorf("String() = %q", s)
	}
}

type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += len(p)
	return rand.Read(p)
}
