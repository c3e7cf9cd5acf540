package fieldcrypt_test

import (
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/go-playground/validator/v10"
	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/internal/refdto"
)

// The benchmarks measure Seal and Open of the reference DTO
// (internal/refdto) beside their floors: encoding/json on the same value
// plus the same number of raw Tink calls the envelope makes (two AES-GCM
// fields, one AES-SIV field and the AES-GCM tag over the whole data, with
// associated data of the same sizes).

type benchWorld struct {
	sender, sealFresh, receiver *fieldcrypt.Codec
	env                         []byte
	value                       refdto.Order
	gcm                         *subtle.AESGCM
	siv                         tink.DeterministicAEAD
	hpke                        tink.HybridEncrypt
}

func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	front, bill := newParty(b, refdto.Sender), newParty(b, refdto.Recipient)
	bw := &benchWorld{value: refdto.Sample()}
	bw.sender = front.codec(b, bill)
	bw.sealFresh = front.codecWith(b, fieldcrypt.Config{Reuse: envelope.Reuse{Disabled: true}}, bill)
	bw.receiver = bill.codec(b, front)
	var err error
	if bw.env, err = bw.sender.Seal(&bw.value, refdto.Recipient); err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if bw.gcm, err = subtle.NewAESGCM(key); err != nil {
		b.Fatal(err)
	}
	if bw.siv, err = daead.New(bill.det); err != nil {
		b.Fatal(err)
	}
	if bw.hpke, err = hybrid.NewHybridEncrypt(bill.pub); err != nil {
		b.Fatal(err)
	}
	return bw
}

// Associated data of the envelope's sizes: field AD is a label, the
// message id, both names, the type and the path; the tag's covers the
// header and data.
var (
	fieldAD = make([]byte, 4+13+4+36+4+8+4+7+4+12+4+9)
	detAD   = make([]byte, 4+11+4+12+4+6)
)

func BenchmarkSeal(b *testing.B) {
	bw := newBenchWorld(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bw.sender.Seal(&bw.value, refdto.Recipient); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealFloor(b *testing.B) {
	bw := newBenchWorld(b)
	hdr := make([]byte, 330)
	b.ReportAllocs()
	for b.Loop() {
		data, err := json.Marshal(&bw.value)
		if err != nil {
			b.Fatal(err)
		}
		for _, pt := range []string{`"` + bw.value.Customer + `"`, `"` + bw.value.Card + `"`} {
			if _, err := bw.gcm.Encrypt([]byte(pt), fieldAD); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := bw.siv.EncryptDeterministically([]byte(`"`+bw.value.Email+`"`), detAD); err != nil {
			b.Fatal(err)
		}
		if _, err := bw.gcm.Encrypt(nil, append(hdr, data...)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	bw := newBenchWorld(b)
	b.ReportAllocs()
	for b.Loop() {
		var dst refdto.Order
		if _, err := bw.receiver.Open(bw.env, &dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenFloor(b *testing.B) {
	bw := newBenchWorld(b)
	data, _ := json.Marshal(&bw.value)
	hdr := make([]byte, 330)
	tagAD := append(hdr, data...)
	tag, _ := bw.gcm.Encrypt(nil, tagAD)
	var cts [][]byte
	for _, pt := range []string{`"` + bw.value.Customer + `"`, `"` + bw.value.Card + `"`} {
		ct, _ := bw.gcm.Encrypt([]byte(pt), fieldAD)
		cts = append(cts, ct)
	}
	det, _ := bw.siv.EncryptDeterministically([]byte(`"`+bw.value.Email+`"`), detAD)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bw.gcm.Decrypt(tag, tagAD); err != nil {
			b.Fatal(err)
		}
		var dst refdto.Order
		if err := json.Unmarshal(data, &dst); err != nil {
			b.Fatal(err)
		}
		for _, ct := range cts {
			if _, err := bw.gcm.Decrypt(ct, fieldAD); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := bw.siv.DecryptDeterministically(det, detAD); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealFreshKey seals with a new data key per message (one HPKE
// encapsulation each); compare with BenchmarkSeal + BenchmarkHPKE.
func BenchmarkSealFreshKey(b *testing.B) {
	bw := newBenchWorld(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bw.sealFresh.Seal(&bw.value, refdto.Recipient); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHPKE is one HPKE encapsulation of a 32-byte data key, alone.
func BenchmarkHPKE(b *testing.B) {
	bw := newBenchWorld(b)
	key := make([]byte, 32)
	info := make([]byte, 4+12+4+8+4+7)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bw.hpke.Encrypt(key, info); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate is the validation Seal runs before writing (the whole
// value, with the codec's default validator settings): part of Seal's cost
// that the floor does not include.
func BenchmarkValidate(b *testing.B) {
	v := refdto.Sample()
	val := validator.New(validator.WithRequiredStructEnabled())
	b.ReportAllocs()
	for b.Loop() {
		if err := val.Struct(&v); err != nil {
			b.Fatal(err)
		}
	}
}
