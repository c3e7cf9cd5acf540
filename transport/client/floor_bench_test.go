package client_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"hash"
	"sync"
	"testing"

	tinksubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/internal/refdto"
)

// cryptoFloor is the cryptography a signed, sealed exchange of the
// reference DTO cannot do without, made with the same primitives and
// nothing else: per message sealed, two AES-GCM field encryptions, one
// AES-SIV encryption and the AES-GCM tag over a 330-byte header plus the
// data (the Seal floor of package fieldcrypt); per message opened, the
// same decryptions (the Open floor); per request, SHA-256 of the body and
// HMAC-SHA256 of a 215-byte canonical string on each side, as v1 signing
// and verifying do. Added to the plain JSON exchange it gives the fastest
// any implementation of this design could go: the ceiling of the
// exchange's throughput ratio. It is generous to that ceiling: the body
// stays plain JSON, so the larger envelope, the signing headers, the
// replay check and the key cache cost it nothing.
type cryptoFloor struct {
	gcm     *tinksubtle.AESGCM
	siv     tink.DeterministicAEAD
	macs    sync.Pool
	fields  [2][]byte // plaintexts of the random fields
	det     []byte    // plaintext of the deterministic field
	fieldCT [2][]byte
	detCT   []byte
	tagAD   []byte // header and data, as the tag covers them
	tag     []byte
	canon   []byte
}

var (
	floorFieldAD = make([]byte, 4+13+4+36+4+8+4+7+4+12+4+9)
	floorDetAD   = make([]byte, 4+11+4+12+4+6)
)

func newCryptoFloor(tb testing.TB) *cryptoFloor {
	tb.Helper()
	keys, err := keysFor()
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	f := &cryptoFloor{canon: make([]byte, 215)}
	if f.gcm, err = tinksubtle.NewAESGCM(key); err != nil {
		tb.Fatal(err)
	}
	if f.siv, err = daead.New(keys[refdto.Recipient].det); err != nil {
		tb.Fatal(err)
	}
	macKey := []byte(testSecret)
	f.macs.New = func() any { return hmac.New(sha256.New, macKey) }
	o := refdto.Sample()
	data, err := json.Marshal(&o)
	if err != nil {
		tb.Fatal(err)
	}
	f.fields = [2][]byte{[]byte(`"` + o.Customer + `"`), []byte(`"` + o.Card + `"`)}
	f.det = []byte(`"` + o.Email + `"`)
	f.tagAD = append(make([]byte, 330), data...)
	for i, pt := range f.fields {
		if f.fieldCT[i], err = f.gcm.Encrypt(pt, floorFieldAD); err != nil {
			tb.Fatal(err)
		}
	}
	if f.detCT, err = f.siv.EncryptDeterministically(f.det, floorDetAD); err != nil {
		tb.Fatal(err)
	}
	if f.tag, err = f.gcm.Encrypt(nil, f.tagAD); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *cryptoFloor) seal() error {
	for _, pt := range f.fields {
		if _, err := f.gcm.Encrypt(pt, floorFieldAD); err != nil {
			return err
		}
	}
	if _, err := f.siv.EncryptDeterministically(f.det, floorDetAD); err != nil {
		return err
	}
	_, err := f.gcm.Encrypt(nil, f.tagAD)
	return err
}

func (f *cryptoFloor) open() error {
	if _, err := f.gcm.Decrypt(f.tag, f.tagAD); err != nil {
		return err
	}
	for _, ct := range f.fieldCT {
		if _, err := f.gcm.Decrypt(ct, floorFieldAD); err != nil {
			return err
		}
	}
	_, err := f.siv.DecryptDeterministically(f.detCT, floorDetAD)
	return err
}

// mac is the signature of body: SHA-256 of the body, then HMAC-SHA256 of
// a canonical string that ends with that hash.
func (f *cryptoFloor) mac(body []byte, out *[sha256.Size]byte) {
	sum := sha256.Sum256(body)
	m := f.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(f.canon[:len(f.canon)-len(sum)])
	m.Write(sum[:])
	m.Sum(out[:0])
	f.macs.Put(m)
}

// verify recomputes the signature and compares it in constant time.
func (f *cryptoFloor) verify(body []byte, sig *[sha256.Size]byte) bool {
	var got [sha256.Size]byte
	f.mac(body, &got)
	return subtle.ConstantTimeCompare(got[:], sig[:]) == 1
}
