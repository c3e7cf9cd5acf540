package envelope_test

// These tests re-implement the wire format from SPEC.md with standard
// primitives only (crypto/hpke, crypto/aes, RFC 5297 AES-SIV), taking from
// Tink nothing but the raw key bytes of the test keysets. They check that the
// specification, not just this package, describes the bytes: what another
// language would have to do.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/daead/aessiv"
	dsubtle "github.com/tink-crypto/tink-go/v2/daead/subtle"
	tinkhpke "github.com/tink-crypto/tink-go/v2/hybrid/hpke"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
)

func lp(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func gcm(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	blk, err := aes.NewCipher(key)
	require.NoError(t, err)
	g, err := cipher.NewGCM(blk)
	require.NoError(t, err)
	return g
}

// gcmOpen opens nonce(12) || ciphertext || tag(16).
func gcmOpen(t testing.TB, key, ct, ad []byte) ([]byte, error) {
	return gcm(t, key).Open(nil, ct[:12], ct[12:], ad)
}

func gcmSeal(t testing.TB, key, pt, ad []byte) []byte {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	return gcm(t, key).Seal(nonce, nonce, pt, ad)
}

// rawKey returns the key bytes of key id in h.
func rawKey(t testing.TB, h *keyset.Handle, id uint32) any {
	t.Helper()
	for i := range h.Len() {
		e, err := h.Entry(i)
		require.NoError(t, err)
		if e.KeyID() != id {
			continue
		}
		tok := insecuresecretdataaccess.Token{}
		switch k := e.Key().(type) {
		case *tinkhpke.PrivateKey:
			return k.PrivateKeyBytes().Data(tok)
		case *tinkhpke.PublicKey:
			return k.PublicKeyBytes()
		case *aesgcm.Key:
			return k.KeyBytes().Data(tok)
		case *aessiv.Key:
			return k.KeyBytes().Data(tok)
		}
		t.Fatalf("unexpected key type %T", e.Key())
	}
	t.Fatalf("key %d not found", id)
	return nil
}

func tinkPrefix(id uint32) []byte { return binary.BigEndian.AppendUint32([]byte{0x01}, id) }

type specHeader struct {
	V   int    `json:"v"`
	ID  string `json:"id"`
	Snd string `json:"snd"`
	Rcp string `json:"rcp"`
	Typ string `json:"typ"`
	Iat string `json:"iat"`
	Key struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Wk  string `json:"wk"`
	} `json:"key"`
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestSpecOpen opens every valid vector as SPEC.md describes.
func TestSpecOpen(t *testing.T) {
	vs, handles := loadVectors(t)
	n := 0
	for _, v := range vs {
		if v.Expected != "ok" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			var top struct {
				Hdr  json.RawMessage `json:"hdr"` // exact bytes
				Data json.RawMessage `json:"data"`
				Tag  string          `json:"tag"`
			}
			require.NoError(t, json.Unmarshal([]byte(v.Envelope), &top))
			var h specHeader
			require.NoError(t, json.Unmarshal(top.Hdr, &h))
			kid, err := strconv.ParseUint(h.Key.Kid, 10, 32)
			require.NoError(t, err)
			wk := b64(t, h.Key.Wk)
			w := lp("xsvc/v1/wrap", h.Snd, h.Rcp)

			// Unwrap.
			require.Equal(t, tinkPrefix(uint32(kid)), wk[:5], "Tink prefix names the kid")
			var k []byte
			switch h.Key.Alg {
			case "hpke":
				x, err := ecdh.X25519().NewPrivateKey(rawKey(t, handles[v.Identity], uint32(kid)).([]byte))
				require.NoError(t, err)
				priv, err := hpke.NewDHKEMPrivateKey(x)
				require.NoError(t, err)
				require.Len(t, wk, 5+32+32+16, "prefix || enc || GCM(K)")
				k, err = hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), w, wk[5:])
				require.NoError(t, err)
			case "aead":
				k, err = gcmOpen(t, rawKey(t, handles[v.Identity], uint32(kid)).([]byte), wk[5:], w)
				require.NoError(t, err)
			}
			require.Len(t, k, 32)

			// Tag.
			tag := b64(t, top.Tag)
			require.Len(t, tag, 28)
			pt, err := gcmOpen(t, k, tag, lp("xsvc/v1/envelope", string(top.Hdr), string(top.Data)))
			require.NoError(t, err)
			require.Empty(t, pt)

			// Fields.
			for _, f := range v.Fields {
				var m struct {
					Enc string `json:"$enc"`
					CT  string `json:"ct"`
				}
				require.NoError(t, json.Unmarshal(rawAt(t, top.Data, f.Path), &m))
				ct := b64(t, m.CT)
				var pt []byte
				var err error
				switch {
				case m.Enc != f.Mode:
					err = envelope.ErrCannotOpen
				case f.Mode == "random":
					pt, err = gcmOpen(t, k, ct, append(lp("xsvc/v1/field", h.ID, h.Snd, h.Rcp, h.Typ), lp(f.Path)...))
				case f.Mode == "deterministic":
					id := binary.BigEndian.Uint32(ct[1:5])
					require.Equal(t, byte(1), ct[0])
					det := handles[v.Deterministic]
					if keyStatus(det, id) != keyset.Enabled {
						err = envelope.ErrKeyRetired
						break
					}
					siv, err2 := dsubtle.NewAESSIV(rawKey(t, det, id).([]byte))
					require.NoError(t, err2)
					pt, err = siv.DecryptDeterministically(ct[5:], lp("xsvc/v1/det", h.Typ, f.SchemaPath))
				}
				if f.Expected == "ok" {
					require.NoError(t, err, f.Path)
					require.Equal(t, f.Plaintext, string(pt))
				} else {
					require.Error(t, err, f.Path)
				}
			}
			n++
		})
	}
	require.Positive(t, n)
}

func keyStatus(h *keyset.Handle, id uint32) keyset.KeyStatus {
	for i := range h.Len() {
		e, _ := h.Entry(i)
		if e.KeyID() == id {
			return e.KeyStatus()
		}
	}
	return keyset.Unknown
}

// TestSpecSeal seals an envelope as SPEC.md describes, for the public
// keyset of the vectors, and opens it with this package.
func TestSpecSeal(t *testing.T) {
	_, handles := loadVectors(t)
	priv := handles["hpke_private.json"]
	p, err := priv.Primary()
	require.NoError(t, err)
	pubBytes := rawKey(t, public(t, priv), p.KeyID()).([]byte)
	det := handles["daead.json"]
	dp, err := det.Primary()
	require.NoError(t, err)

	k := make([]byte, 32)
	_, _ = rand.Read(k)
	const snd, rcp, typ = "frontend", "financial-service", "accounts.Account"
	id := "019ad0b0-5d2b-7c3e-9f00-0123456789ab"
	x, err := ecdh.X25519().NewPublicKey(pubBytes)
	require.NoError(t, err)
	pk, err := hpke.NewDHKEMPublicKey(x)
	require.NoError(t, err)
	enc, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), lp("xsvc/v1/wrap", snd, rcp), k)
	require.NoError(t, err)
	wk := append(tinkPrefix(p.KeyID()), enc...)

	hdr := `{"v":1,"id":"` + id + `","snd":"` + snd + `","rcp":"` + rcp + `","typ":"` + typ +
		`","iat":"2026-11-29T16:20:46.123Z","key":{"alg":"hpke","kid":"` + strconv.FormatUint(uint64(p.KeyID()), 10) +
		`","wk":"` + base64.RawURLEncoding.EncodeToString(wk) + `"}}`
	owner := gcmSeal(t, k, []byte(`"Jane Doe"`), append(lp("xsvc/v1/field", id, snd, rcp, typ), lp("/owners/0/name")...))
	siv, err := dsubtle.NewAESSIV(rawKey(t, det, dp.KeyID()).([]byte))
	require.NoError(t, err)
	ssnCT, err := siv.EncryptDeterministically([]byte(`"123456789"`), lp("xsvc/v1/det", typ, "/owners/*/ssn"))
	require.NoError(t, err)
	ssn := append(tinkPrefix(dp.KeyID()), ssnCT...)
	data := `{"owners":[{"name":{"$enc":"random","ct":"` + base64.RawURLEncoding.EncodeToString(owner) +
		`"},"ssn":{"$enc":"deterministic","ct":"` + base64.RawURLEncoding.EncodeToString(ssn) + `"}}]}`
	tag := gcmSeal(t, k, nil, lp("xsvc/v1/envelope", hdr, data))
	env := `{"hdr":` + hdr + `,"data":` + data + `,"tag":"` + base64.RawURLEncoding.EncodeToString(tag) + `"}`

	id2, err := envelope.NewHPKEIdentity(priv)
	require.NoError(t, err)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: rcp, Identity: id2, Deterministic: det})
	require.NoError(t, err)
	op, err := o.Open([]byte(env))
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 29, 16, 20, 46, 123e6, time.UTC), op.Header.IssuedAt)
	pt, err := op.OpenField(rawAt(t, op.Data, "/owners/0/name"), envelope.Random, []byte("/owners/0/name"), []byte("/owners/*/name"))
	require.NoError(t, err)
	require.Equal(t, `"Jane Doe"`, string(pt))
	pt, err = op.OpenField(rawAt(t, op.Data, "/owners/0/ssn"), envelope.Deterministic, []byte("/owners/0/ssn"), []byte("/owners/*/ssn"))
	require.NoError(t, err)
	require.Equal(t, `"123456789"`, string(pt))

	// And this package's deterministic ciphertext is the same bytes.
	s := hpkeSealer(t, &keys{hpkePub: public(t, priv), daead: det}, nil)
	m, err := s.Begin(typ)
	require.NoError(t, err)
	marker, err := m.AppendField(nil, envelope.Deterministic, []byte("/owners/5/ssn"), []byte("/owners/*/ssn"), []byte(`"123456789"`))
	require.NoError(t, err)
	require.Equal(t, `{"$enc":"deterministic","ct":"`+base64.RawURLEncoding.EncodeToString(ssn)+`"}`, string(marker))

	// A field whose plaintext is not one JSON value (a sender splicing
	// structure) is refused by OpenField.
	evil := gcmSeal(t, k, []byte(`1,"admin":true`), append(lp("xsvc/v1/field", id, snd, rcp, typ), lp("/x")...))
	_, err = op.OpenField([]byte(`{"$enc":"random","ct":"`+base64.RawURLEncoding.EncodeToString(evil)+`"}`), envelope.Random, []byte("/x"), []byte("/x"))
	requireCannotOpen(t, err)
}

// fixedIdentity returns a fixed data key, whatever it is asked.
type fixedIdentity struct{ k []byte }

func (f fixedIdentity) Unwrap(envelope.KeyInfo, []byte) ([]byte, error) { return f.k, nil }

// TestDataKeyMustBe32Bytes builds an envelope whose tag is valid under a
// 16-byte AES key: the format fixes K at 32 bytes, so it is refused.
func TestDataKeyMustBe32Bytes(t *testing.T) {
	hdr := `{"v":1,"id":"019ad0b0-5d2b-7c3e-9f00-0123456789ab","snd":"frontend","rcp":"financial-service","typ":"T",` +
		`"iat":"2026-11-29T16:20:46.123Z","key":{"alg":"aead","kid":"k1","wk":"AA"}}`
	data := `{}`
	for _, size := range []int{16, 32} {
		k := make([]byte, size)
		tag := gcmSeal(t, k, nil, lp("xsvc/v1/envelope", hdr, data))
		env := `{"hdr":` + hdr + `,"data":` + data + `,"tag":"` + base64.RawURLEncoding.EncodeToString(tag) + `"}`
		o, err := envelope.NewOpener(envelope.OpenerConfig{Self: "financial-service", Identity: fixedIdentity{k}})
		require.NoError(t, err)
		_, err = o.Open([]byte(env))
		if size == 32 {
			require.NoError(t, err)
		} else {
			requireCannotOpen(t, err)
		}
	}
}

var explain = flag.Bool("explain", false, "print the intermediate values of SPEC.md's worked example (vector hpke_random_field)")

// TestWorkedExample recomputes, from the vector hpke_random_field, every
// intermediate value SPEC.md's worked example shows; -explain prints them.
func TestWorkedExample(t *testing.T) {
	vs, handles := loadVectors(t)
	var v *vector
	for i := range vs {
		if vs[i].Name == "hpke_random_field" {
			v = &vs[i]
		}
	}
	require.NotNil(t, v, "vector hpke_random_field missing")
	var top struct {
		Hdr  json.RawMessage `json:"hdr"`
		Data json.RawMessage `json:"data"`
		Tag  string          `json:"tag"`
	}
	require.NoError(t, json.Unmarshal([]byte(v.Envelope), &top))
	var h specHeader
	require.NoError(t, json.Unmarshal(top.Hdr, &h))
	kid, err := strconv.ParseUint(h.Key.Kid, 10, 32)
	require.NoError(t, err)
	wk := b64(t, h.Key.Wk)
	w := lp("xsvc/v1/wrap", h.Snd, h.Rcp)
	sk := rawKey(t, handles[v.Identity], uint32(kid)).([]byte)
	x, err := ecdh.X25519().NewPrivateKey(sk)
	require.NoError(t, err)
	priv, err := hpke.NewDHKEMPrivateKey(x)
	require.NoError(t, err)
	k, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), w, wk[5:])
	require.NoError(t, err)
	tag := b64(t, top.Tag)
	tagAD := lp("xsvc/v1/envelope", string(top.Hdr), string(top.Data))
	_, err = gcmOpen(t, k, tag, tagAD)
	require.NoError(t, err)
	var m struct {
		CT string `json:"ct"`
	}
	require.NoError(t, json.Unmarshal(rawAt(t, top.Data, "/owner"), &m))
	ct := b64(t, m.CT)
	fieldAD := append(lp("xsvc/v1/field", h.ID, h.Snd, h.Rcp, h.Typ), lp("/owner")...)
	pt, err := gcmOpen(t, k, ct, fieldAD)
	require.NoError(t, err)
	require.Equal(t, `"Jane Doe"`, string(pt))
	if *explain {
		t.Logf("kid             %d (prefix %x)", kid, wk[:5])
		t.Logf("recipient X25519 private key %x", sk)
		t.Logf("recipient X25519 public key  %x", x.PublicKey().Bytes())
		t.Logf("W (%d bytes)    %x", len(w), w)
		t.Logf("wk (%d bytes)   prefix %x | enc %x | ct %x", len(wk), wk[:5], wk[5:37], wk[37:])
		t.Logf("K               %x", k)
		t.Logf("field AD (%d)   %x", len(fieldAD), fieldAD)
		t.Logf("field ct (%d)   nonce %x | ct %x | tag %x", len(ct), ct[:12], ct[12:len(ct)-16], ct[len(ct)-16:])
		t.Logf("hdr bytes %d, data bytes %d, tag AD %d bytes, starts %x", len(top.Hdr), len(top.Data), len(tagAD), tagAD[:40])
		t.Logf("tag (28)        nonce %x | GCM tag %x", tag[:12], tag[12:])
	}
}
