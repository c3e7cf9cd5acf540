package fieldcrypt_test

import (
	"bytes"
	"testing"
)

// keeper breaks encoding/json's contract on purpose: its UnmarshalJSON and
// UnmarshalText keep the slice they are given instead of copying it.
type keeper struct{ kept []byte }

func (k keeper) MarshalJSON() ([]byte, error)  { return k.kept, nil }
func (k *keeper) UnmarshalJSON(b []byte) error { k.kept = b; return nil }

// keptKeys holds the slices keptKey.UnmarshalText was given (a map key
// cannot hold a slice itself).
var keptKeys [][]byte

type keptKey string

func (k keptKey) MarshalText() ([]byte, error) { return []byte(k), nil }
func (k *keptKey) UnmarshalText(b []byte) error {
	keptKeys = append(keptKeys, b)
	*k = keptKey(b)
	return nil
}

type Keeping struct {
	K    keeper             `json:"k" share:"financial-service"`
	ByK  map[keptKey]string `json:"by_k" share:"financial-service"`
	Name string             `json:"name" share:"financial-service" sensitive:"random"`
}

// Open reuses the buffer that holds an envelope's verified data for the
// next Open. No decoded value may alias it, even one whose own methods keep
// their input: what one Open returned must not change when another runs.
func TestOpenedValuesOutliveTheNextOpen(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	sender, receiver := front.codec(t, fin), fin.codec(t, front)
	seal := func(tag string) []byte {
		t.Helper()
		in := Keeping{K: keeper{[]byte(`"` + tag + `-value"`)}, ByK: map[keptKey]string{keptKey(tag + "-key"): "v"},
			Name: tag + "-name"}
		b, err := sender.Seal(&in, financial)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first, second := seal("first"), seal("other")
	keptKeys = nil
	var a Keeping
	if _, err := receiver.Open(first, &a); err != nil {
		t.Fatal(err)
	}
	firstKey := keptKeys[0]
	for range 50 { // the pool may hand the buffer to any of them
		var b Keeping
		if _, err := receiver.Open(second, &b); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.K.kept, []byte(`"first-value"`)) || a.Name != "first-name" {
		t.Fatalf("a value of the first Open changed: %q %q", a.K.kept, a.Name)
	}
	if string(firstKey) != "first-key" {
		t.Fatalf("a map key of the first Open changed: %q", firstKey)
	}
}
