package fieldcrypt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
)

const profileType = "fieldcrypt_test.Profile"

// forge seals data with a valid tag from frontend to to, bypassing the
// codec: fill gets the message to encrypt markers with and returns the data
// object. It is what a sender with the right keys but wrong intent (or a
// different schema) could produce.
func forge(t *testing.T, from, to *party, typ string, fill func(m *envelope.Message) string) []byte {
	t.Helper()
	m, err := from.sealerFor(t, to).Begin(typ)
	if err != nil {
		t.Fatal(err)
	}
	env, err := m.Finish([]byte(fill(m)))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func field(t *testing.T, m *envelope.Message, mode envelope.Mode, path, spath, plaintext string) string {
	t.Helper()
	b, err := m.AppendField(nil, mode, []byte(path), []byte(spath), []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ssn is a valid "ssn" member for forged envelopes (validation requires it).
func ssn(t *testing.T, m *envelope.Message) string {
	return `"ssn":` + field(t, m, envelope.Deterministic, "/ssn", "/ssn", `"123456789"`)
}

func replaceOnce(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%q not in envelope", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// mutateCT replaces the ct of the member's marker by f(ct).
func mutateCT(t *testing.T, env []byte, member string, f func(ct string) string) []byte {
	t.Helper()
	_, data := parts(t, env)
	ct := markerOf(t, data[member]).CT
	return replaceOnce(t, env, ct, f(ct))
}

func TestTamperMatrix(t *testing.T) {
	w := newWorld(t)
	p := sampleProfile()
	seal := func(r string) []byte {
		env, err := w.sender.Seal(&p, r)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	env, env2, envAna := seal(financial), seal(financial), seal(analytics)
	_, data1 := parts(t, env)
	_, dataAna := parts(t, envAna)

	// Another financial-service with other keys (unknown key id), and the
	// real one after rotating its HPKE key and retiring the old one.
	impostor := newParty(t, financial)
	envUnknownKey, err := w.front.codec(t, impostor).Seal(&p, financial)
	if err != nil {
		t.Fatal(err)
	}
	retired := rotate(t, w.fin.priv, hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template(), true)
	finRetired := &party{name: financial, priv: retired, det: w.fin.det}
	finRetiredC := finRetired.codec(t, w.front)

	flip := func(ct string) string {
		c := byte('A')
		if ct[10] == 'A' {
			c = 'B'
		}
		return ct[:10] + string(c) + ct[11:]
	}
	cases := []struct {
		name  string
		env   []byte
		codec *fieldcrypt.Codec
	}{
		// Changed in flight: the tag no longer verifies.
		{"clear field changed", replaceOnce(t, env, `"city":"Arlington"`, `"city":"Arlingtom"`), nil},
		{"clear field added", replaceOnce(t, env, `"id":"p-1",`, `"id":"p-1","region":"x",`), nil},
		{"clear field removed", replaceOnce(t, env, `"id":"p-1",`, ``), nil},
		{"clear number changed", replaceOnce(t, env, `"balance":1234.5`, `"balance":1234.6`), nil},
		{"header sender changed", replaceOnce(t, env, `"snd":"frontend"`, `"snd":"frontenc"`), nil},
		{"header type changed", replaceOnce(t, env, `"typ":"`+profileType+`"`, `"typ":"fieldcrypt_test.Profilf"`), nil},
		{"header id changed", replaceOnce(t, env, `"id":"0`, `"id":"1`), nil},
		{"header iat changed", replaceOnce(t, env, `Z","key"`, `9Z","key"`), nil},
		{"ciphertext bit-flipped", mutateCT(t, env, "name", flip), nil},
		{"ciphertext truncated", mutateCT(t, env, "name", func(ct string) string { return ct[:len(ct)-4] }), nil},
		{"deterministic ciphertext bit-flipped", mutateCT(t, env, "ssn", flip), nil},
		{"markers swapped in place", swapMarkers(t, env, data1["name"], data1["backup"]), nil},
		{"envelope truncated", env[:len(env)-10], nil},
		{"empty input", nil, nil},

		// A valid tag over content the plan does not allow.
		{"ciphertext moved to another field", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"name":` + field(t, m, envelope.Random, "/address/street", "/address/street", `"Grace Hopper"`) + `}`
		}), nil},
		{"ciphertext from another message", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"name":` + string(data1["name"]) + `}`
		}), nil},
		{"ciphertext from another recipient's envelope", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"name":` + string(dataAna["name"]) + `}`
		}), nil},
		{"deterministic ciphertext moved to another field", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"birthday":` + string(data1["ssn"]) + `}`
		}), nil},
		{"random marker where deterministic is due", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1","ssn":` + field(t, m, envelope.Random, "/ssn", "/ssn", `"123456789"`) + `}`
		}), nil},
		{"clear value where a marker is due", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"name":"Grace Hopper"}`
		}), nil},
		{"marker where a clear value is due", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":` + field(t, m, envelope.Random, "/id", "/id", `"p-1"`) + `,` + ssn(t, m) + `}`
		}), nil},
		{"marker-shaped clear map", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"limits":{"$enc":1}}`
		}), nil},
		{"field not shared with this recipient", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"region":"eu"}`
		}), nil},
		{"nested field not shared with this recipient", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"address":{"geo":"1,2"}}`
		}), nil},
		{"unknown field", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"Internal":"x"}`
		}), nil},
		{"duplicate member", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"id":"p-2"}`
		}), nil},
		{"duplicate map key", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"ledger":{"1":null,"01":null}}`
		}), nil},
		{"wrong JSON type", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":1,` + ssn(t, m) + `}`
		}), nil},
		{"integer overflow", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"ledger":{"99999999999999999999":null}}`
		}), nil},
		{"sensitive plaintext of the wrong type", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"name":` + field(t, m, envelope.Random, "/name", "/name", `{"a":1}`) + `}`
		}), nil},
		{"another type name", forge(t, w.front, w.fin, "fieldcrypt_test.Other", func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `}`
		}), nil},
		{"too deep", forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
			return `{"id":"p-1",` + ssn(t, m) + `,"limits":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`
		}), nil},

		// Keys and recipients.
		{"envelope for another recipient", envAna, nil},
		{"unknown key id", envUnknownKey, nil},
		{"retired key", env2, finRetiredC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			codec := w.finC
			if tc.codec != nil {
				codec = tc.codec
			}
			dst := sampleProfile()
			dst.Internal = "prefilled"
			before := dst
			h, err := codec.Open(tc.env, &dst)
			if !errors.Is(err, envelope.ErrCannotOpen) {
				t.Fatalf("Open = %v, want ErrCannotOpen", err)
			}
			if !reflect.DeepEqual(h, envelope.Header{}) {
				t.Errorf("a header was returned with the error")
			}
			if !reflect.DeepEqual(dst, before) {
				t.Errorf("dst changed")
			}
			for _, secret := range []string{p.SSN, p.Name, p.Address.Street} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error text %q quotes a value", err)
				}
			}
		})
	}
	// The untouched envelopes do open: the cases above fail for their
	// mutation, not for their setup.
	var ok Profile
	if _, err := w.finC.Open(env, &ok); err != nil {
		t.Fatalf("pristine envelope: %v", err)
	}
	if _, err := w.finC.Open(env2, &ok); err != nil {
		t.Fatalf("pristine envelope 2: %v", err)
	}
	var keyErr *envelope.KeyRetiredError
	if _, err := finRetiredC.Open(env2, &ok); !errors.As(err, &keyErr) {
		t.Errorf("retired key: %v, want a *KeyRetiredError", err)
	}
	// The forged envelopes are valid but for their one deviation.
	good := forge(t, w.front, w.fin, profileType, func(m *envelope.Message) string {
		return `{"id":"p-1",` + ssn(t, m) + `,"name":` + field(t, m, envelope.Random, "/name", "/name", `"Grace Hopper"`) +
			`,"limits":{"a":1},"ledger":{"1":null}}`
	})
	if _, err := w.finC.Open(good, &ok); err != nil || ok.Name != "Grace Hopper" {
		t.Fatalf("forged-but-valid envelope: %v", err)
	}
}

func swapMarkers(t *testing.T, env []byte, a, b json.RawMessage) []byte {
	t.Helper()
	out := replaceOnce(t, env, string(a), "\x00A\x00")
	out = replaceOnce(t, out, string(b), string(a))
	return replaceOnce(t, out, "\x00A\x00", string(b))
}

// rotate adds a new primary key made from template to h and, if retire,
// disables the old primary.
func rotate(t *testing.T, h *keyset.Handle, template *tinkpb.KeyTemplate, retire bool) *keyset.Handle {
	t.Helper()
	m := keyset.NewManagerFromHandle(h)
	old, err := h.Primary()
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Add(template)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPrimary(id); err != nil {
		t.Fatal(err)
	}
	if retire {
		if err := m.Disable(old.KeyID()); err != nil {
			t.Fatal(err)
		}
	}
	out, err := m.Handle()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterministicEqualRandomNever(t *testing.T) {
	w := newWorld(t)
	p := sampleProfile()
	p.Accounts[1].IBAN = p.Accounts[0].IBAN // the same value at two places of one schema path
	var cts []map[string]json.RawMessage
	for range 3 {
		env, err := w.sender.Seal(&p, financial)
		if err != nil {
			t.Fatal(err)
		}
		_, data := parts(t, env)
		cts = append(cts, data)
	}
	ssn0 := markerOf(t, cts[0]["ssn"])
	name0 := markerOf(t, cts[0]["name"])
	if ssn0.Enc != "deterministic" || name0.Enc != "random" {
		t.Fatalf("modes %q %q", ssn0.Enc, name0.Enc)
	}
	for i := 1; i < len(cts); i++ {
		if markerOf(t, cts[i]["ssn"]) != ssn0 {
			t.Errorf("deterministic field differs across messages")
		}
		if markerOf(t, cts[i]["name"]).CT == name0.CT {
			t.Errorf("random field equal across messages")
		}
		if markerOf(t, cts[i]["birthday"]) != markerOf(t, cts[0]["birthday"]) {
			t.Errorf("deterministic pointer field differs across messages")
		}
	}
	var accts []map[string]json.RawMessage
	if err := json.Unmarshal(cts[0]["accounts"], &accts); err != nil {
		t.Fatal(err)
	}
	if markerOf(t, accts[0]["iban"]) != markerOf(t, accts[1]["iban"]) {
		t.Errorf("equal values at the same schema path give different deterministic ciphertexts")
	}
	// Equal plaintexts at different places, or for another recipient, differ.
	q := p
	q.Name = p.SSN
	env, _ := w.sender.Seal(&q, financial)
	_, data := parts(t, env)
	if markerOf(t, data["name"]).CT == ssn0.CT {
		t.Errorf("ciphertext equal across fields")
	}
	fin2 := newParty(t, financial)
	env2, err := w.front.codec(t, fin2).Seal(&p, financial)
	if err != nil {
		t.Fatal(err)
	}
	_, data2 := parts(t, env2)
	if markerOf(t, data2["ssn"]) == ssn0 {
		t.Errorf("deterministic ciphertext equal under another recipient key")
	}
}

func TestKeyRotation(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	p := sampleProfile()
	before, err := front.codec(t, fin).Seal(&p, financial)
	if err != nil {
		t.Fatal(err)
	}

	// Rotate both keysets: new primaries, old keys still enabled.
	rotated := &party{name: financial,
		priv: rotate(t, fin.priv, hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template(), false),
		det:  rotate(t, fin.det, daead.AESSIVKeyTemplate(), false)}
	var err2 error
	if rotated.pub, err2 = rotated.priv.Public(); err2 != nil {
		t.Fatal(err2)
	}
	after, err := front.codec(t, rotated).Seal(&p, financial)
	if err != nil {
		t.Fatal(err)
	}
	_, d1 := parts(t, before)
	_, d2 := parts(t, after)
	if markerOf(t, d1["ssn"]) == markerOf(t, d2["ssn"]) {
		t.Errorf("the new deterministic primary was not used")
	}
	finC := rotated.codec(t, front)
	for name, env := range map[string][]byte{"before": before, "after": after} {
		var out Profile
		if _, err := finC.Open(env, &out); err != nil || out.SSN != p.SSN {
			t.Errorf("sealed %s the rotation: %v", name, err)
		}
	}

	// Retire the old keys: envelopes sealed before fail with the
	// distinguishable error; those sealed after still open.
	retired := &party{name: financial, priv: disableAllButPrimary(t, rotated.priv), det: disableAllButPrimary(t, rotated.det)}
	retiredC := retired.codec(t, front)
	var out Profile
	_, err = retiredC.Open(before, &out)
	var kre *envelope.KeyRetiredError
	if !errors.As(err, &kre) || !errors.Is(err, envelope.ErrKeyRetired) || !errors.Is(err, envelope.ErrCannotOpen) {
		t.Fatalf("old envelope after retirement = %v, want *KeyRetiredError", err)
	}
	if !reflect.DeepEqual(out, Profile{}) {
		t.Errorf("dst changed")
	}
	if _, err := retiredC.Open(after, &out); err != nil {
		t.Errorf("new envelope after retirement: %v", err)
	}

	// Only the deterministic key retired: the field's marker names it.
	detOnly := &party{name: financial, priv: rotated.priv, det: disableAllButPrimary(t, rotated.det)}
	out = Profile{}
	_, err = detOnly.codec(t, front).Open(before, &out)
	if !errors.As(err, &kre) {
		t.Fatalf("old deterministic field after retirement = %v, want *KeyRetiredError", err)
	}
	if !reflect.DeepEqual(out, Profile{}) {
		t.Errorf("dst changed")
	}
}

func disableAllButPrimary(t *testing.T, h *keyset.Handle) *keyset.Handle {
	t.Helper()
	m := keyset.NewManagerFromHandle(h)
	primary, err := h.Primary()
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if e.KeyID() != primary.KeyID() {
			if err := m.Disable(e.KeyID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err := m.Handle()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
