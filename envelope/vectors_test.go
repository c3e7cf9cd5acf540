package envelope_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/testdata"
)

var update = flag.Bool("update", false, "regenerate testdata/envelope (keysets and vectors)")

const vectorDir = "../testdata/envelope"

// vector is one entry of vectors.json. Field meanings are documented in
// SPEC.md (envelope, test vectors).
type vector struct {
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	Self          string          `json:"self"`
	IdentityKind  string          `json:"identity_kind"` // "hpke" or "aead_keyset"
	Identity      string          `json:"identity"`      // keyset file
	Deterministic string          `json:"deterministic"` // keyset file
	Envelope      string          `json:"envelope"`
	Expected      string          `json:"expected"` // ok, cannot_open, key_retired, parse_error
	Fields        []vectorField   `json:"fields,omitempty"`
	DataPlain     json.RawMessage `json:"data_plain,omitempty"`
}

type vectorField struct {
	Path       string `json:"path"`
	SchemaPath string `json:"schema_path"`
	Mode       string `json:"mode"`
	Expected   string `json:"expected"`
	Plaintext  string `json:"plaintext,omitempty"` // exact JSON bytes, for expected ok
}

func modeOf(t testing.TB, s string) envelope.Mode {
	switch s {
	case "random":
		return envelope.Random
	case "deterministic":
		return envelope.Deterministic
	}
	t.Fatalf("unknown mode %q", s)
	return 0
}

// vectorFS is the embedded testdata, or the files on disk right after
// -update regenerated them (the embedded copy is the one compiled in).
func vectorFS() fs.FS {
	if *update {
		return os.DirFS(filepath.Dir(vectorDir))
	}
	return testdata.Envelope
}

// loadVectors reads the vectors and keysets. It fails the test if there are
// none, so a broken embed cannot pass silently.
func loadVectors(t testing.TB) ([]vector, map[string]*keyset.Handle) {
	t.Helper()
	b, err := fs.ReadFile(vectorFS(), "envelope/vectors.json")
	require.NoError(t, err)
	var vs []vector
	require.NoError(t, json.Unmarshal(b, &vs))
	require.NotEmpty(t, vs, "no envelope vectors loaded")
	handles := map[string]*keyset.Handle{}
	for _, v := range vs {
		for _, name := range []string{v.Identity, v.Deterministic} {
			if _, ok := handles[name]; ok || name == "" {
				continue
			}
			kb, err := fs.ReadFile(vectorFS(), "envelope/"+name)
			require.NoError(t, err)
			h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(kb)))
			require.NoError(t, err, name)
			handles[name] = h
		}
	}
	return vs, handles
}

func vectorOpener(t testing.TB, v vector, handles map[string]*keyset.Handle) *envelope.Opener {
	t.Helper()
	var id envelope.Identity
	var err error
	switch v.IdentityKind {
	case "hpke":
		id, err = envelope.NewHPKEIdentity(handles[v.Identity])
	case "aead_keyset":
		id, err = envelope.NewAEADKeysetIdentity(handles[v.Identity])
	default:
		t.Fatalf("%s: unknown identity kind %q", v.Name, v.IdentityKind)
	}
	require.NoError(t, err)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: v.Self, Identity: id, Deterministic: handles[v.Deterministic]})
	require.NoError(t, err)
	return o
}

func checkOutcome(t *testing.T, expected string, err error, msg string) {
	t.Helper()
	switch expected {
	case "ok":
		require.NoError(t, err, msg)
	case "cannot_open":
		requireCannotOpen(t, err, msg)
	case "key_retired":
		requireKeyRetired(t, err, "", msg)
	case "parse_error":
		requireParseError(t, err, msg)
	default:
		t.Fatalf("%s: unknown expectation %q", msg, expected)
	}
}

func TestVectors(t *testing.T) {
	if *update {
		generateVectors(t)
	}
	vs, handles := loadVectors(t)
	kinds := map[string]int{}
	fieldKinds := map[string]int{}
	for _, v := range vs {
		kinds[v.Expected]++
		t.Run(v.Name, func(t *testing.T) {
			o := vectorOpener(t, v, handles)
			op, err := o.Open([]byte(v.Envelope))
			checkOutcome(t, v.Expected, err, v.Name)
			if v.Expected != "ok" {
				require.Nil(t, op)
				require.Empty(t, v.Fields)
				return
			}
			// Parse/Marshal round trip on canonical envelopes.
			e, err := envelope.Parse([]byte(v.Envelope))
			require.NoError(t, err)
			if bytes.HasPrefix([]byte(v.Envelope), []byte(`{"hdr":{"v":1,`)) {
				require.Equal(t, v.Envelope, string(e.Marshal()))
			}

			var doc any
			require.NoError(t, json.Unmarshal(op.Data, &doc))
			for _, f := range v.Fields {
				fieldKinds[f.Expected]++
				pt, err := op.OpenField(rawAt(t, op.Data, f.Path), modeOf(t, f.Mode), []byte(f.Path), []byte(f.SchemaPath))
				checkOutcome(t, f.Expected, err, f.Path)
				if f.Expected == "ok" {
					require.Equal(t, f.Plaintext, string(pt))
					var val any
					require.NoError(t, json.Unmarshal(pt, &val))
					doc = setAt(t, doc, f.Path, val)
				}
			}
			var want any
			require.NoError(t, json.Unmarshal(v.DataPlain, &want))
			require.True(t, reflect.DeepEqual(want, doc), "data_plain differs:\nwant %v\ngot  %v", want, doc)
		})
	}
	for _, k := range []string{"ok", "cannot_open", "key_retired", "parse_error"} {
		require.Positive(t, kinds[k], "no %s vector", k)
	}
	for _, k := range []string{"ok", "cannot_open", "key_retired"} {
		require.Positive(t, fieldKinds[k], "no %s field", k)
	}
}

// setAt replaces the value at ptr in a decoded JSON document.
func setAt(t testing.TB, doc any, ptr string, val any) any {
	t.Helper()
	toks := strings.Split(ptr, "/")[1:]
	if len(toks) == 0 {
		return val
	}
	tok := strings.ReplaceAll(strings.ReplaceAll(toks[0], "~1", "/"), "~0", "~")
	rest := ptr[len(toks[0])+1:]
	switch d := doc.(type) {
	case map[string]any:
		d[tok] = setAt(t, d[tok], rest, val)
	case []any:
		i, err := strconv.Atoi(tok)
		require.NoError(t, err)
		d[i] = setAt(t, d[i], rest, val)
	default:
		t.Fatalf("no container at %s", ptr)
	}
	return doc
}

// ---- generator ----

type genKeys struct {
	hpkeOld, hpkeAll    *keyset.Handle // private: old key only; final (old disabled, new primary)
	aeadOld, aeadAll    *keyset.Handle
	daeadOld, daeadBoth *keyset.Handle // old only; both enabled, new primary
	daeadAll            *keyset.Handle // old disabled
}

func genKeyset(t *testing.T, add func() (uint32, error), m *keyset.Manager) (old, both, final *keyset.Handle) {
	t.Helper()
	oldID, err := add()
	require.NoError(t, err)
	require.NoError(t, m.SetPrimary(oldID))
	old, err = m.Handle()
	require.NoError(t, err)
	newID, err := add()
	require.NoError(t, err)
	require.NoError(t, m.SetPrimary(newID))
	both, err = m.Handle()
	require.NoError(t, err)
	require.NoError(t, m.Disable(oldID))
	final, err = m.Handle()
	require.NoError(t, err)
	return old, both, final
}

func writeKeyset(t *testing.T, name string, h *keyset.Handle) {
	t.Helper()
	var b bytes.Buffer
	if strings.Contains(name, "public") {
		require.NoError(t, h.WriteWithNoSecrets(keyset.NewJSONWriter(&b)))
	} else {
		require.NoError(t, insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&b)))
	}
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, b.Bytes(), "", "  "))
	pretty.WriteByte('\n')
	require.NoError(t, os.WriteFile(filepath.Join(vectorDir, name), pretty.Bytes(), 0o644))
}

func generateVectors(t *testing.T) {
	var g genKeys
	hm := keyset.NewManager()
	var hpkeBoth *keyset.Handle
	g.hpkeOld, hpkeBoth, g.hpkeAll = genKeyset(t, func() (uint32, error) {
		return hm.Add(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	}, hm)
	_ = hpkeBoth
	am := keyset.NewManager()
	g.aeadOld, _, g.aeadAll = genKeyset(t, func() (uint32, error) { return am.Add(aead.AES256GCMKeyTemplate()) }, am)
	dm := keyset.NewManager()
	g.daeadOld, g.daeadBoth, g.daeadAll = genKeyset(t, func() (uint32, error) { return dm.Add(daead.AESSIVKeyTemplate()) }, dm)

	require.NoError(t, os.MkdirAll(vectorDir, 0o755))
	writeKeyset(t, "hpke_private.json", g.hpkeAll)
	writeKeyset(t, "hpke_public.json", public(t, g.hpkeAll))
	writeKeyset(t, "aead.json", g.aeadAll)
	writeKeyset(t, "daead.json", g.daeadAll)

	clock := newFakeClock()
	hpkeSealerFor := func(priv, det *keyset.Handle, rcp string) *envelope.Sealer {
		r, err := envelope.NewHPKERecipient(public(t, priv))
		require.NoError(t, err)
		s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: rcp, To: r, Deterministic: det, Clock: clock.Now})
		require.NoError(t, err)
		return s
	}
	aeadSealerFor := func(h, det *keyset.Handle) *envelope.Sealer {
		r, err := envelope.NewAEADKeysetRecipient(h)
		require.NoError(t, err)
		s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r, Deterministic: det, Clock: clock.Now})
		require.NoError(t, err)
		return s
	}
	hs := hpkeSealerFor(g.hpkeAll, g.daeadBoth, recipient)
	as := aeadSealerFor(g.aeadAll, g.daeadBoth)

	// doc builds an envelope from a template: {{N}} is replaced by the
	// marker of fields[N] (sealed at sealPath[N] if given, else its path).
	type gf struct {
		vectorField
		sealPath, sealSchema, sealMode string // what the sender really did, if it differs
	}
	build := func(s *envelope.Sealer, tmpl string, fs []gf) (string, []vectorField) {
		m, err := s.Begin(typeName)
		require.NoError(t, err)
		data := tmpl
		var out []vectorField
		for i, f := range fs {
			p, sp, mode := f.Path, f.SchemaPath, f.Mode
			if f.sealPath != "" {
				p, sp = f.sealPath, f.sealSchema
			}
			if f.sealMode != "" {
				mode = f.sealMode
			}
			mk, err := m.AppendField(nil, modeOf(t, mode), []byte(p), []byte(sp), []byte(f.Plaintext))
			require.NoError(t, err)
			data = strings.Replace(data, "{{"+strconv.Itoa(i)+"}}", string(mk), 1)
			vf := f.vectorField
			if vf.Expected != "ok" {
				vf.Plaintext = ""
			}
			out = append(out, vf)
		}
		env, err := m.Finish([]byte(data))
		require.NoError(t, err)
		clock.Advance(1001 * time.Millisecond) // the next message a second later
		return string(env), out
	}
	ok := func(path, schema, mode, plain string) gf {
		return gf{vectorField: vectorField{Path: path, SchemaPath: schema, Mode: mode, Expected: "ok", Plaintext: plain}}
	}
	plainOf := func(tmpl string, fs []gf) json.RawMessage {
		for i, f := range fs {
			tmpl = strings.Replace(tmpl, "{{"+strconv.Itoa(i)+"}}", f.Plaintext, 1)
		}
		var v any
		require.NoError(t, json.Unmarshal([]byte(tmpl), &v), tmpl)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}

	var vs []vector
	add := func(v vector) {
		if v.Self == "" {
			v.Self = recipient
		}
		if v.IdentityKind == "" {
			v.IdentityKind, v.Identity = "hpke", "hpke_private.json"
		}
		v.Deterministic = "daead.json"
		vs = append(vs, v)
	}
	okVector := func(name, desc string, s *envelope.Sealer, kind, tmpl string, fs []gf) string {
		env, vfs := build(s, tmpl, fs)
		v := vector{Name: name, Description: desc, Envelope: env, Expected: "ok", Fields: vfs, DataPlain: plainOf(tmpl, fs)}
		if kind == "aead_keyset" {
			v.IdentityKind, v.Identity = kind, "aead.json"
		}
		add(v)
		return env
	}

	randomTmpl := `{"id":"acc-1","owner":{{0}},"balance":12.5}`
	randomEnv := okVector("hpke_random_field", "HPKE recipient, one random field among clear fields.", hs, "hpke",
		randomTmpl, []gf{ok("/owner", "/owner", "random", `"Jane Doe"`)})
	okVector("hpke_deterministic_field", "HPKE recipient, one deterministic field.", hs, "hpke",
		`{"id":"acc-1","ssn":{{0}}}`, []gf{ok("/ssn", "/ssn", "deterministic", `"123456789"`)})
	fullTmpl := `{"id":"acc-1","owner":{{0}},"ssn":{{1}},"balance":12.5,"owners":[{"name":{{2}}},{"name":{{3}}}],"tags":{"a/b":{{4}}},"notes":null}`
	fullFields := []gf{
		ok("/owner", "/owner", "random", `"Jane Doe"`),
		ok("/ssn", "/ssn", "deterministic", `"123456789"`),
		ok("/owners/0/name", "/owners/*/name", "random", `"John Roe"`),
		ok("/owners/1/name", "/owners/*/name", "random", `"Zoë Poe"`),
		ok("/tags/a~1b", "/tags/*", "deterministic", `{"x":[1,2],"y":"\u00e9"}`),
	}
	okVector("hpke_nested", "HPKE recipient: nested objects, array indices and a map key containing '/' (escaped ~1 in the path).", hs, "hpke",
		fullTmpl, fullFields)
	okVector("aead_keyset_fields", "AEAD keyset recipient (kid = decimal Tink key id of the primary), random and deterministic fields.", as, "aead_keyset",
		`{"id":"acc-2","owner":{{0}},"ssn":{{1}}}`,
		[]gf{ok("/owner", "/owner", "random", `"Jane Doe"`), ok("/ssn", "/ssn", "deterministic", `"123456789"`)})
	okVector("hpke_empty_data", "An empty data object: the tag still covers the header.", hs, "hpke", `{}`, nil)
	okVector("hpke_data_whitespace", "The data object is authenticated byte for byte, whitespace included.", hs, "hpke",
		"{\n  \"id\": \"acc-3\",\n  \"owner\": {{0}}\n}", []gf{ok("/owner", "/owner", "random", `"Jane Doe"`)})

	// The top level outside hdr and data is not authenticated: reordered
	// members and whitespace still open (Marshal gives the canonical form).
	{
		e := mustParse(t, []byte(randomEnv))
		reord := " {\"tag\": \"" + base64.RawURLEncoding.EncodeToString(e.Tag) + "\",\n \"data\": " + string(e.Data) + ",\n \"hdr\": " + string(e.RawHeader) + "}\n"
		v := vs[0]
		v.Name, v.Description, v.Envelope = "hpke_top_level_reordered", "hpke_random_field with the top-level members reordered and whitespace added: still valid, canonical form unchanged.", reord
		vs = append(vs, v)
	}

	// Field-level refusals inside envelopes that open.
	{
		env, vfs := build(hs, `{"owner":{{0}},"alias":{{1}}}`, []gf{
			ok("/owner", "/owner", "random", `"Jane Doe"`),
			{vectorField: vectorField{Path: "/alias", SchemaPath: "/alias", Mode: "random", Expected: "cannot_open", Plaintext: `"Jane Doe"`}, sealPath: "/owner", sealSchema: "/owner"},
		})
		add(vector{Name: "hpke_random_field_moved", Description: "The sender put a marker sealed for /owner at /alias: the envelope opens, that field does not.",
			Envelope: env, Expected: "ok", Fields: vfs, DataPlain: json.RawMessage(`{"owner":"Jane Doe","alias":{"$enc":"random","ct":"see envelope"}}`)})
	}
	{
		env, vfs := build(hs, `{"ssn":{{0}},"other":{{1}}}`, []gf{
			{vectorField: vectorField{Path: "/ssn", SchemaPath: "/ssn", Mode: "deterministic", Expected: "cannot_open", Plaintext: `"123456789"`}, sealMode: "random"},
			{vectorField: vectorField{Path: "/other", SchemaPath: "/other", Mode: "deterministic", Expected: "cannot_open", Plaintext: `"123456789"`}, sealPath: "/ssn", sealSchema: "/ssn"},
		})
		add(vector{Name: "hpke_field_mode_and_schema_mismatch", Description: "A random marker where the plan says deterministic, and a deterministic marker sealed for schema path /ssn at /other: both refused.",
			Envelope: env, Expected: "ok", Fields: vfs})
	}
	{
		env, vfs := build(hpkeSealerFor(g.hpkeAll, g.daeadOld, recipient), `{"ssn":{{0}}}`, []gf{
			{vectorField: vectorField{Path: "/ssn", SchemaPath: "/ssn", Mode: "deterministic", Expected: "key_retired", Plaintext: `"123456789"`}},
		})
		add(vector{Name: "hpke_deterministic_key_retired", Description: "The deterministic field's Tink prefix names the recipient's disabled AES-SIV key.",
			Envelope: env, Expected: "ok", Fields: vfs})
	}
	// Fix data_plain of the vectors whose fields do not all open: the
	// refused markers stay as they are.
	for i := range vs {
		if vs[i].Expected == "ok" && vs[i].DataPlain == nil || strings.Contains(string(vs[i].DataPlain), "see envelope") {
			op, err := vectorOpener(t, vs[i], map[string]*keyset.Handle{"hpke_private.json": g.hpkeAll, "aead.json": g.aeadAll, "daead.json": g.daeadAll}).Open([]byte(vs[i].Envelope))
			require.NoError(t, err)
			var doc any
			require.NoError(t, json.Unmarshal(op.Data, &doc))
			for _, f := range vs[i].Fields {
				if f.Expected == "ok" {
					var val any
					require.NoError(t, json.Unmarshal([]byte(f.Plaintext), &val))
					doc = setAt(t, doc, f.Path, val)
				}
			}
			vs[i].DataPlain, err = json.Marshal(doc)
			require.NoError(t, err)
		}
	}

	// Envelope-level refusals.
	bad := func(name, desc, expected, env string) {
		add(vector{Name: name, Description: desc, Envelope: env, Expected: expected})
	}
	re := func(mod func(h *envelope.Header)) string { return string(reheader(t, []byte(randomEnv), mod)) }
	e := mustParse(t, []byte(randomEnv))
	withTag := func(tag []byte) string {
		return string((&envelope.Envelope{RawHeader: e.RawHeader, Data: e.Data, Tag: tag}).Marshal())
	}
	rep := func(old, new string) string {
		require.Contains(t, randomEnv, old)
		return strings.Replace(randomEnv, old, new, 1)
	}
	tagB64 := base64.RawURLEncoding.EncodeToString(e.Tag)
	wkB64 := base64.RawURLEncoding.EncodeToString(e.Header.Key.Wrapped)

	bad("tag_flipped", "Last bit of the tag flipped.", "cannot_open", withTag(flip(e.Tag, 27)))
	bad("data_changed", "A clear field changed (12.5 -> 13.5).", "cannot_open", rep(`"balance":12.5`, `"balance":13.5`))
	bad("data_member_added", "A clear member added to data.", "cannot_open", rep(`"balance":12.5`, `"balance":12.5,"admin":true`))
	bad("data_member_removed", "A clear member removed from data.", "cannot_open", rep(`,"balance":12.5`, ``))
	bad("data_whitespace_added", "One space added inside data.", "cannot_open", rep(`"balance":12.5`, `"balance": 12.5`))
	bad("hdr_id_changed", "Another (valid) message id.", "cannot_open", re(func(h *envelope.Header) { h.ID = "019ad0b0-5d2b-7c3e-9f00-0123456789ab" }))
	bad("hdr_snd_changed", "Another sender: the wrap context no longer matches.", "cannot_open", re(func(h *envelope.Header) { h.Sender = "analytics-service" }))
	bad("hdr_typ_changed", "Another type name.", "cannot_open", re(func(h *envelope.Header) { h.Type = "accounts.Other" }))
	bad("hdr_iat_changed", "Issued-at one millisecond later.", "cannot_open", re(func(h *envelope.Header) { h.IssuedAt = h.IssuedAt.Add(1e6) }))
	bad("wk_flipped", "Last bit of the wrapped key flipped.", "cannot_open", re(func(h *envelope.Header) { h.Key.Wrapped = flip(h.Key.Wrapped, len(h.Key.Wrapped)-1) }))
	bad("alg_mismatch", "alg says aead for an HPKE-wrapped key.", "cannot_open", re(func(h *envelope.Header) { h.Key.Alg = "aead" }))
	bad("wrong_recipient", "Sealed for analytics-service with the same keys; opened by financial-service.", "cannot_open",
		func() string {
			env, _ := build(hpkeSealerFor(g.hpkeAll, g.daeadBoth, "analytics-service"), `{"a":1}`, nil)
			return env
		}())
	{
		stranger, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		require.NoError(t, err)
		env, _ := build(hpkeSealerFor(stranger, g.daeadBoth, recipient), `{"a":1}`, nil)
		bad("kid_unknown", "Wrapped for an HPKE key that is not in the recipient's keyset.", "cannot_open", env)
	}
	{
		env, _ := build(hpkeSealerFor(g.hpkeOld, g.daeadBoth, recipient), `{"a":1}`, nil)
		bad("hpke_key_retired", "Wrapped for the recipient's disabled HPKE key.", "key_retired", env)
	}
	{
		env, _ := build(aeadSealerFor(g.aeadOld, g.daeadBoth), `{"a":1}`, nil)
		v := vector{Name: "aead_key_retired", Description: "Wrapped with the recipient's disabled AEAD key.", Envelope: env, Expected: "key_retired",
			IdentityKind: "aead_keyset", Identity: "aead.json"}
		add(v)
	}
	bad("version_2", `"v":2`, "parse_error", rep(`"v":1`, `"v":2`))
	bad("duplicate_top_member", "tag appears twice.", "parse_error", strings.TrimSuffix(randomEnv, "}")+`,"tag":"`+tagB64+`"}`)
	bad("duplicate_hdr_member", "snd appears twice in hdr.", "parse_error", rep(`"snd":"frontend"`, `"snd":"frontend","snd":"frontend"`))
	bad("duplicate_escaped_member", `"\u0074ag" is "tag": a duplicate after unescaping.`, "parse_error", strings.TrimSuffix(randomEnv, "}")+`,"\u0074ag":"`+tagB64+`"}`)
	bad("unknown_top_member", "An extra top-level member.", "parse_error", strings.TrimSuffix(randomEnv, "}")+`,"sig":"AA"}`)
	bad("unknown_hdr_member", "An extra header member.", "parse_error", rep(`"v":1,`, `"v":1,"exp":0,`))
	bad("trailing_garbage", "Bytes after the envelope object.", "parse_error", randomEnv+"\n{}")
	bad("tag_padded", "The tag with base64 padding.", "parse_error", rep(tagB64, tagB64+"=="))
	bad("tag_truncated", "A 27-byte tag.", "parse_error", withTag(e.Tag[:27]))
	bad("wk_padded", "The wrapped key with base64 padding.", "parse_error", rep(wkB64, wkB64+strings.Repeat("=", (4-len(wkB64)%4)%4)))
	bad("wk_standard_alphabet", "base64 with '+' instead of '-'.", "parse_error", rep(`"wk":"`+wkB64[:2], `"wk":"+`+wkB64[1:2]))
	bad("id_not_v7", "A version 4 UUID.", "parse_error", rep(e.Header.ID, e.Header.ID[:14]+"4"+e.Header.ID[15:]))
	bad("iat_without_millis", "iat without the milliseconds.", "parse_error", rep(e.Header.IssuedAt.Format(".000Z"), "Z"))
	bad("missing_tag", "No tag member.", "parse_error", strings.TrimSuffix(string(withTag(e.Tag)), `,"tag":"`+tagB64+`"}`)+"}")

	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(vs))
	require.NoError(t, os.WriteFile(filepath.Join(vectorDir, "vectors.json"), out.Bytes(), 0o644))
	t.Logf("wrote %d vectors to %s", len(vs), vectorDir)
}
