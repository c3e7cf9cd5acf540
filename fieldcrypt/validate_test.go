package fieldcrypt_test

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-playground/validator/v10"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
)

func TestSealValidation(t *testing.T) {
	w := newWorld(t)
	p := sampleProfile()
	p.ID = ""
	p.SSN = "12345678X"
	p.Accounts[1].IBAN = ""
	_, err := w.sender.Seal(&p, analytics) // analytics does not even receive ssn: the whole value is checked
	var ve *fieldcrypt.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Seal = %v, want a *ValidationError", err)
	}
	want := []fieldcrypt.Violation{
		{Path: "Profile.id", Tag: "required"},
		{Path: "Profile.ssn", Tag: "numeric"},
		{Path: "Profile.accounts[].iban", Tag: "required"},
	}
	if !reflect.DeepEqual(ve.Violations, want) {
		t.Errorf("violations %+v\nwant %+v", ve.Violations, want)
	}
	if strings.Contains(err.Error(), "12345678X") || strings.Contains(err.Error(), "[1]") {
		t.Errorf("error names a value or an index: %v", err)
	}
	if errors.Is(err, envelope.ErrCannotOpen) {
		t.Errorf("a sealing error matches ErrCannotOpen")
	}
}

// Flagged checks a validation that only the receiver enforces, shared and
// unshared required fields at two levels.
type Flagged struct {
	Code   string         `json:"code" share:"*" validate:"allowed"`
	Hidden string         `json:"hidden" validate:"required"`
	Items  []Sub          `json:"items" share:"*" validate:"dive"`
	ByKey  map[string]Sub `json:"by_key" share:"*" validate:"dive"`
	Nested Sub            `json:"nested" share:"*"`
	Base
}

type Base struct {
	Tenant  string `json:"tenant" share:"*" validate:"allowed"`
	Private string `json:"private" validate:"required"`
}

type Sub struct {
	V string `json:"v" share:"*" validate:"allowed"`
	H string `json:"h" validate:"required"`
}

func validatorWith(allowed func(string) bool) *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			return f.Name
		}
		return name
	})
	if err := v.RegisterValidation("allowed", func(fl validator.FieldLevel) bool {
		return allowed(fl.Field().String())
	}); err != nil {
		panic(err)
	}
	return v
}

func TestOpenValidation(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	lax := front.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(string) bool { return true })}, fin)
	strict := fin.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(s string) bool { return s != "blocked" })})
	ok := Sub{V: "ok", H: "h"}
	valid := Flagged{Code: "ok", Hidden: "h", Items: []Sub{ok, ok}, ByKey: map[string]Sub{"a.b]": ok},
		Nested: ok, Base: Base{Tenant: "t", Private: "p"}}
	for _, tc := range []struct {
		name   string
		mutate func(*Flagged)
		path   string
	}{
		{"valid (unshared required fields are absent, not invalid)", func(*Flagged) {}, ""},
		{"top level", func(f *Flagged) { f.Code = "blocked" }, "Flagged.code"},
		{"in a slice", func(f *Flagged) { f.Items = []Sub{ok, {V: "blocked", H: "h"}} }, "Flagged.items[].v"},
		{"in a map", func(f *Flagged) { f.ByKey = map[string]Sub{"secret-key": {V: "blocked", H: "h"}} }, "Flagged.by_key[].v"},
		{"nested", func(f *Flagged) { f.Nested.V = "blocked" }, "Flagged.nested.v"},
		{"promoted", func(f *Flagged) { f.Tenant = "blocked" }, "Flagged.Base.tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := valid
			v.Items = slices.Clone(valid.Items)
			tc.mutate(&v)
			env, err := lax.Seal(&v, financial)
			if err != nil {
				t.Fatal(err)
			}
			dst := Flagged{Code: "before"}
			_, err = strict.Open(env, &dst)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("Open = %v", err)
				}
				return
			}
			var ve *fieldcrypt.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, envelope.ErrCannotOpen) {
				t.Fatalf("Open = %v, want a *ValidationError matching ErrCannotOpen", err)
			}
			if len(ve.Violations) != 1 || ve.Violations[0] != (fieldcrypt.Violation{Path: tc.path, Tag: "allowed"}) {
				t.Errorf("violations %+v, want %s", ve.Violations, tc.path)
			}
			if strings.Contains(err.Error(), "blocked\"") || strings.Contains(err.Error(), "secret-key") {
				t.Errorf("error names a value: %v", err)
			}
			if !reflect.DeepEqual(dst, Flagged{Code: "before"}) {
				t.Errorf("dst changed")
			}
		})
	}
}

func TestBadValidateTag(t *testing.T) {
	type BadTag struct {
		A string `json:"a" share:"*" validate:"nosuchvalidation"`
	}
	w := newWorld(t)
	if _, err := w.sender.Seal(&BadTag{A: "x"}, financial); err == nil {
		t.Fatal("a malformed validate tag was accepted")
	}
}

func TestKeysetIO(t *testing.T) {
	kekHandle, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	kek, err := aead.New(kekHandle)
	if err != nil {
		t.Fatal(err)
	}
	otherHandle, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	otherKEK, _ := aead.New(otherHandle)

	fin := newParty(t, financial)
	var enc bytes.Buffer
	if err := fieldcrypt.WriteKeyset(&enc, fin.priv, kek); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(enc.Bytes(), []byte("encryptedKeyset")) {
		t.Errorf("not Tink's encrypted JSON form: %s", enc.Bytes())
	}
	if _, err := fieldcrypt.ReadKeyset(bytes.NewReader(enc.Bytes()), otherKEK); err == nil {
		t.Errorf("read under the wrong KEK")
	}
	priv, err := fieldcrypt.ReadKeyset(bytes.NewReader(enc.Bytes()), kek)
	if err != nil {
		t.Fatal(err)
	}
	if err := fieldcrypt.WriteKeyset(&enc, fin.priv, nil); err == nil {
		t.Errorf("WriteKeyset without a KEK")
	}
	if _, err := fieldcrypt.ReadKeyset(&enc, nil); err == nil {
		t.Errorf("ReadKeyset without a KEK")
	}

	var pub bytes.Buffer
	if err := fieldcrypt.WritePublicKeyset(&pub, fin.priv); err == nil {
		t.Errorf("a private keyset was written as public")
	}
	pub.Reset()
	if err := fieldcrypt.WritePublicKeyset(&pub, fin.pub); err != nil {
		t.Fatal(err)
	}
	pubH, err := fieldcrypt.ReadPublicKeyset(&pub)
	if err != nil {
		t.Fatal(err)
	}
	var clear bytes.Buffer
	if err := insecurekeyset.Write(&clear, fin.priv); err != nil {
		t.Fatal(err)
	}
	if _, err := fieldcrypt.ReadPublicKeyset(bytes.NewReader(clear.Bytes())); err == nil {
		t.Errorf("ReadPublicKeyset accepted secret keys")
	}
	clearPriv, err := insecurekeyset.Read(&clear)
	if err != nil {
		t.Fatal(err)
	}

	// The keysets read back seal and open.
	front := newParty(t, frontend)
	to, err := envelope.NewHPKERecipient(pubH)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := fieldcrypt.New(fieldcrypt.Config{Self: frontend,
		Recipients: map[string]fieldcrypt.Recipient{financial: {To: to, Deterministic: fin.det}}})
	if err != nil {
		t.Fatal(err)
	}
	p := sampleProfile()
	env, err := sender.Seal(&p, financial)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*keyset.Handle{"encrypted": priv, "cleartext": clearPriv} {
		r := &party{name: financial, priv: h, det: fin.det}
		var out Profile
		if _, err := r.codec(t, front).Open(env, &out); err != nil || out.SSN != p.SSN {
			t.Errorf("%s keyset: %v", name, err)
		}
	}
}

type Deep struct {
	V    string `json:"v" share:"*" validate:"allowed"`
	H    string `json:"h" validate:"required"`
	Next *Deep  `json:"next" share:"*"`
}

// Validation after opening follows the projection at any depth, past the
// namespaces the filter enumerates ahead of time.
func TestOpenValidationDeep(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	lax := front.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(string) bool { return true })}, fin)
	strict := fin.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(s string) bool { return s != "blocked" })})
	chain := func(bad int) *Deep {
		var d *Deep
		for i := 7; i >= 0; i-- {
			v := "ok"
			if i == bad {
				v = "blocked"
			}
			d = &Deep{V: v, H: "h", Next: d}
		}
		return d
	}
	for bad := -1; bad < 8; bad++ {
		env, err := lax.Seal(chain(bad), financial)
		if err != nil {
			t.Fatal(err)
		}
		var out Deep
		_, err = strict.Open(env, &out)
		var ve *fieldcrypt.ValidationError
		switch {
		case bad < 0 && err != nil:
			t.Errorf("valid chain: %v", err)
		case bad >= 0 && !errors.As(err, &ve):
			t.Errorf("blocked at depth %d: %v, want a *ValidationError", bad, err)
		case bad >= 0 && ve.Violations[0].Path != "Deep"+strings.Repeat(".next", bad)+".v":
			t.Errorf("blocked at depth %d: path %s", bad, ve.Violations[0].Path)
		}
	}
}
