package envelope

// This one test lives inside the package: it checks an ordering that no
// identity of this package can show from outside (their key statuses never
// change), namely that the key check runs before the cache is consulted.

import (
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
)

// flippingIdentity retires its key after the first successful unwrap, like
// an identity whose keyset was reloaded.
type flippingIdentity struct {
	a       *subtle.AESGCM
	retired bool
}

func (f *flippingIdentity) checkKey(k *KeyInfo) error {
	if f.retired {
		return &KeyRetiredError{KeyID: k.KeyID}
	}
	return nil
}

func (f *flippingIdentity) Unwrap(k KeyInfo, w []byte) ([]byte, error) {
	if err := f.checkKey(&k); err != nil {
		return nil, err
	}
	f.retired = true
	return f.a.Decrypt(k.Wrapped, w)
}

func TestKeyCheckPrecedesCache(t *testing.T) {
	a, err := subtle.NewAESGCM(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewAEADRecipient("k1", a)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(SealerConfig{Sender: "frontend", Recipient: "financial-service", To: r})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Begin("T")
	if err != nil {
		t.Fatal(err)
	}
	env, err := m.Finish([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	id := &flippingIdentity{a: a}
	o, err := NewOpener(OpenerConfig{Self: "financial-service", Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(env); err != nil {
		t.Fatal(err)
	}
	// The data key is cached now, but the key has been retired since.
	_, err = o.Open(env)
	if _, ok := err.(*KeyRetiredError); !ok {
		t.Fatalf("cached key used after retirement: %v", err)
	}
}
