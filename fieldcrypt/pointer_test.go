package fieldcrypt_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/lifenavigator/crossservice/envelope"
)

type Vault struct {
	Boxes map[string]Box `json:"boxes" share:"*"`
	Rows  [][]Box        `json:"rows" share:"*"`
}

type Box struct {
	Secret string `json:"se/cr~et" share:"*" sensitive:"random"`
	Tag    string `json:"tag" share:"*" sensitive:"deterministic"`
}

const vaultType = "fieldcrypt_test.Vault"

// Each sensitive value is bound to its concrete JSON Pointer (RFC 6901
// escaping, real indices and map keys) and each deterministic one to its
// schema path: a marker encrypted for another place does not open.
func TestPointerBinding(t *testing.T) {
	w := newWorld(t)
	v := Vault{
		Boxes: map[string]Box{"a/b": {Secret: "s1", Tag: "t"}, "c~d": {Secret: "s2", Tag: "t"}, "": {Secret: "s3", Tag: "t"}},
		Rows:  [][]Box{{{Secret: "r00", Tag: "t"}}, {{Secret: "r10", Tag: "t"}, {Secret: "r11", Tag: "t"}}},
	}
	env, err := w.sender.Seal(&v, financial)
	if err != nil {
		t.Fatal(err)
	}
	var out Vault
	if _, err := w.finC.Open(env, &out); err != nil || !reflect.DeepEqual(out, v) {
		t.Fatalf("round trip: %v\n%+v", err, out)
	}

	open := func(fill func(m *tmsg) string) error {
		env := forge(t, w.front, w.fin, vaultType, func(m *envelope.Message) string { return fill(&tmsg{t, m}) })
		var out Vault
		_, err := w.finC.Open(env, &out)
		if err != nil && !reflect.DeepEqual(out, Vault{}) {
			t.Errorf("dst changed")
		}
		return err
	}
	for _, tc := range []struct {
		name string
		fill func(m *tmsg) string
		ok   bool
	}{
		{"escaped map key and member", func(m *tmsg) string {
			return `{"boxes":{"a/b":{"se/cr~et":` + m.rnd("/boxes/a~1b/se~1cr~0et") + `,"tag":` + m.det("/boxes/*/tag") + `}}}`
		}, true},
		{"empty map key", func(m *tmsg) string {
			return `{"boxes":{"":{"se/cr~et":` + m.rnd("/boxes//se~1cr~0et") + `}}}`
		}, true},
		{"indices", func(m *tmsg) string {
			return `{"rows":[[],[{},{"se/cr~et":` + m.rnd("/rows/1/1/se~1cr~0et") + `,"tag":` + m.det("/rows/*/*/tag") + `}]]}`
		}, true},
		{"unescaped pointer", func(m *tmsg) string {
			return `{"boxes":{"a/b":{"se/cr~et":` + m.rnd("/boxes/a/b/se~1cr~0et") + `}}}`
		}, false},
		{"another map key", func(m *tmsg) string {
			return `{"boxes":{"c~d":{"se/cr~et":` + m.rnd("/boxes/a~1b/se~1cr~0et") + `}}}`
		}, false},
		{"another index", func(m *tmsg) string {
			return `{"rows":[[],[{},{"se/cr~et":` + m.rnd("/rows/1/0/se~1cr~0et") + `}]]}`
		}, false},
		{"concrete path for a deterministic field", func(m *tmsg) string {
			return `{"rows":[[{"tag":` + m.det("/rows/0/0/tag") + `}]]}`
		}, false},
		{"deterministic field from another schema path", func(m *tmsg) string {
			return `{"rows":[[{"tag":` + m.det("/boxes/*/tag") + `}]]}`
		}, false},
	} {
		err := open(tc.fill)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && !errors.Is(err, envelope.ErrCannotOpen):
			t.Errorf("%s: %v, want ErrCannotOpen", tc.name, err)
		}
	}
}

type tmsg struct {
	t *testing.T
	m *envelope.Message
}

func (m *tmsg) rnd(path string) string {
	return field(m.t, m.m, envelope.Random, path, path, `"x"`)
}

func (m *tmsg) det(spath string) string {
	return field(m.t, m.m, envelope.Deterministic, spath, spath, `"x"`)
}
