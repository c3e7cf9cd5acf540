package envelope_test

// Each benchmark sits beside its floor: the raw primitive work it cannot
// avoid. The difference is this package's own cost (JSON, base64, header,
// associated data).

import (
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/hybrid"

	"github.com/lifenavigator/crossservice/envelope"
)

var (
	benchPlain  = []byte(`"Jane Doe"`)
	benchPrefix = []byte(`{"id":"acc-1","balance":12.5,"owner":`)
)

func benchSeal(b *testing.B, s *envelope.Sealer, dst []byte) []byte {
	m, err := s.Begin(typeName)
	if err != nil {
		b.Fatal(err)
	}
	dst = append(dst[:0], benchPrefix...)
	dst, err = m.AppendField(dst, envelope.Random, []byte("/owner"), []byte("/owner"), benchPlain)
	if err != nil {
		b.Fatal(err)
	}
	dst = append(dst, '}')
	env, err := m.Finish(dst)
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkSealReused: Begin + AppendField(random) + Finish with a reused
// data key.
func BenchmarkSealReused(b *testing.B) {
	s := hpkeSealer(b, sharedKeys(), nil)
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		benchSeal(b, s, dst)
	}
}

// BenchmarkSealReusedFloor: the two AES-256-GCM encryptions sealing needs.
func BenchmarkSealReusedFloor(b *testing.B) {
	a, err := subtle.NewAESGCM(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	ad := make([]byte, 300)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Encrypt(benchPlain, ad[:100]); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Encrypt(nil, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenReused: Open (cache hit) + OpenField(random).
func BenchmarkOpenReused(b *testing.B) {
	k := sharedKeys()
	env := benchSeal(b, hpkeSealer(b, k, nil), nil)
	o := hpkeOpener(b, k, nil)
	op, err := o.Open(env)
	if err != nil {
		b.Fatal(err)
	}
	marker := rawAt(b, op.Data, "/owner")
	b.ReportAllocs()
	for b.Loop() {
		op, err := o.Open(env)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := op.OpenField(marker, envelope.Random, []byte("/owner"), []byte("/owner")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenReusedFloor: the two AES-256-GCM decryptions opening needs.
func BenchmarkOpenReusedFloor(b *testing.B) {
	a, err := subtle.NewAESGCM(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	ad := make([]byte, 300)
	field, _ := a.Encrypt(benchPlain, ad[:100])
	tag, _ := a.Encrypt(nil, ad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Decrypt(field, ad[:100]); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Decrypt(tag, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealFreshHPKE: a fresh data key per message (Reuse.Disabled).
func BenchmarkSealFreshHPKE(b *testing.B) {
	s := hpkeSealer(b, sharedKeys(), func(c *envelope.SealerConfig) { c.Reuse.Disabled = true })
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		benchSeal(b, s, dst)
	}
}

// BenchmarkSealFreshHPKEFloor: one Tink HybridEncrypt of a 32-byte key.
func BenchmarkSealFreshHPKEFloor(b *testing.B) {
	enc, err := hybrid.NewHybridEncrypt(sharedKeys().hpkePub)
	if err != nil {
		b.Fatal(err)
	}
	k, info := make([]byte, 32), make([]byte, 50)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encrypt(k, info); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenFreshHPKE: Open + OpenField with the cache disabled.
func BenchmarkOpenFreshHPKE(b *testing.B) {
	k := sharedKeys()
	env := benchSeal(b, hpkeSealer(b, k, nil), nil)
	o := hpkeOpener(b, k, func(c *envelope.OpenerConfig) { c.Cache.Disabled = true })
	op, err := o.Open(env)
	if err != nil {
		b.Fatal(err)
	}
	marker := rawAt(b, op.Data, "/owner")
	b.ReportAllocs()
	for b.Loop() {
		op, err := o.Open(env)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := op.OpenField(marker, envelope.Random, []byte("/owner"), []byte("/owner")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenFreshHPKEFloor: one Tink HybridDecrypt of a wrapped key.
func BenchmarkOpenFreshHPKEFloor(b *testing.B) {
	k := sharedKeys()
	enc, err := hybrid.NewHybridEncrypt(k.hpkePub)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := hybrid.NewHybridDecrypt(k.hpkePriv)
	if err != nil {
		b.Fatal(err)
	}
	info := make([]byte, 50)
	ct, err := enc.Encrypt(make([]byte, 32), info)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decrypt(ct, info); err != nil {
			b.Fatal(err)
		}
	}
}
