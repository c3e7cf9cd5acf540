package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/envelope"
)

const accountDoc = `{"id":"acc-1","owner":"Jane Doe","ssn":"123456789","balance":12.5,
  "owners":[{"name":"A","tax_id":"T1"},{"name":"B","tax_id":"T2"}],"tags":{"tier":"gold"},"notes":"internal only"}`

// sealSetup is a recipient (financial-service) with HPKE and deterministic
// keysets, its public keyset, and the Account schema file.
func sealSetup(t *testing.T) keysDir {
	t.Helper()
	k := newKeysDir(t)
	k = keysDir{run: k.with("XSVC_MASTER_KEY=" + readString(t, k.path(k.master))), master: k.master}
	k.ok(t, args("key generate --type hpke --out fin-hpke.json")...)
	k.ok(t, args("key generate --type deterministic --out fin-det.json")...)
	k.ok(t, args("key public --in fin-hpke.json --out fin-hpke.pub.json")...)
	require.NoError(t, os.WriteFile(k.path("account.schema.json"), []byte(accountSchema), 0o600))
	require.NoError(t, os.WriteFile(k.path("doc.json"), []byte(accountDoc), 0o600))
	return k
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

var (
	sealArgs = args("seal --schema account.schema.json --from frontend --to financial-service " +
		"--recipient-keyset fin-hpke.pub.json --deterministic fin-det.json")
	openArgs = args("open --schema account.schema.json --self financial-service --keyset fin-hpke.json --deterministic fin-det.json")
)

func TestSealOpen(t *testing.T) {
	k := sealSetup(t)
	// stdin to stdout.
	env := k.input([]byte(accountDoc)).ok(t, sealArgs...).stdout
	require.True(t, strings.HasSuffix(env, "}\n"))
	e, err := envelope.Parse([]byte(strings.TrimSpace(env)))
	require.NoError(t, err)
	require.Equal(t, "accounts.Account", e.Header.Type)
	require.Equal(t, "frontend", e.Header.Sender)
	require.NotContains(t, string(e.Data), "Jane Doe")
	require.NotContains(t, string(e.Data), "123456789")
	require.NotContains(t, string(e.Data), "internal only", "a field without share is stripped")
	require.Contains(t, string(e.Data), `"balance":12.5`)

	res := k.input([]byte(env)).ok(t, append(openArgs, "--from", "frontend", "--header")...)
	require.JSONEq(t, `{"id":"acc-1","owner":"Jane Doe","ssn":"123456789","balance":12.5,
	  "owners":[{"name":"A","tax_id":"T1"},{"name":"B","tax_id":"T2"}],"tags":{"tier":"gold"}}`, res.stdout)
	require.Contains(t, res.stderr, "from frontend to financial-service, type accounts.Account")

	// Files in and out; never an existing file without --force.
	k.ok(t, append(sealArgs, "--in", "doc.json", "--out", "env.json")...)
	require.Equal(t, os.FileMode(0o600), mode(t, k.path("env.json")))
	before := readString(t, k.path("env.json"))
	k.failsWith(t, 1, append(sealArgs, "--in", "doc.json", "--out", "env.json"), "envelope file env.json already exists", "--force")
	require.Equal(t, before, readString(t, k.path("env.json")))
	k.ok(t, append(sealArgs, "--in", "doc.json", "--out", "env.json", "--force")...)
	k.ok(t, append(openArgs, "--in", "env.json", "--out", "out.json")...)
	k.failsWith(t, 1, append(openArgs, "--in", "env.json", "--out", "out.json"), "already exists")
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(readString(t, k.path("out.json"))), &got))
	require.Equal(t, "Jane Doe", got["owner"])
	require.NotContains(t, got, "notes")

	// A recipient sees only what is shared with it.
	k.ok(t, args("key generate --type hpke --out an-hpke.json")...)
	k.ok(t, args("key public --in an-hpke.json --out an-hpke.pub.json")...)
	anEnv := k.input([]byte(accountDoc)).ok(t, args("seal --schema account.schema.json --from frontend --to analytics-service --recipient-keyset an-hpke.pub.json")...).stdout
	anDoc := k.input([]byte(anEnv)).ok(t, args("open --schema account.schema.json --self analytics-service --keyset an-hpke.json")...).stdout
	require.JSONEq(t, `{"id":"acc-1","balance":12.5}`, anDoc)
}

func TestSealOpenRefusals(t *testing.T) {
	k := sealSetup(t)
	env := k.input([]byte(accountDoc)).ok(t, sealArgs...).stdout

	// Tampered envelope: a clear field changed.
	tampered := strings.Replace(env, `"balance":12.5`, `"balance":99.5`, 1)
	require.NotEqual(t, env, tampered)
	k.input([]byte(tampered)).failsWith(t, 1, openArgs, "xsvc: open: the envelope does not open", "altered")
	// Tampered ciphertext.
	i := strings.Index(env, `"ct":"`) + 10
	flipped := env[:i] + string(rune(env[i]^1)) + env[i+1:]
	k.input([]byte(flipped)).failsWith(t, 1, openArgs, "does not open")
	// Another sender than required; another type.
	k.input([]byte(env)).failsWith(t, 1, append(openArgs, "--from", "billing"), `sealed by "frontend", not "billing"`)
	other := `{"type":"accounts.Other","fields":[{"name":"id","type":"string","share":["financial-service"]}]}`
	require.NoError(t, os.WriteFile(k.path("other.schema.json"), []byte(other), 0o600))
	k.input([]byte(env)).failsWith(t, 1, args("open --schema other.schema.json --self financial-service --keyset fin-hpke.json"),
		`of type "accounts.Account"`)
	// Addressed to another service.
	k.input([]byte(env)).failsWith(t, 1, args("open --schema account.schema.json --self analytics-service --keyset fin-hpke.json"), "does not open")
	// A public keyset cannot open.
	k.input([]byte(env)).failsWith(t, 1, args("open --schema account.schema.json --self financial-service --keyset fin-hpke.pub.json"),
		"public keyset", "private")
	// Wrong master key.
	k.ok(t, args("key generate --type aead --insecure-cleartext --out m2.json")...)
	k.input([]byte(env)).failsWith(t, 1, append(openArgs, "--master-key-file", "m2.json"), "cannot decrypt keyset fin-hpke.json with the master key")
	// A retired key.
	k.ok(t, args("key add --file fin-hpke.json --promote")...)
	h := k.handle(t, "fin-hpke.json")
	var oldID uint32
	for _, ki := range h.KeysetInfo().GetKeyInfo() {
		if ki.GetKeyId() != h.KeysetInfo().GetPrimaryKeyId() {
			oldID = ki.GetKeyId()
		}
	}
	k.ok(t, "key", "retire", "--file", "fin-hpke.json", "--id", u32(oldID))
	k.input([]byte(env)).failsWith(t, 1, openArgs, "is retired", "rewrap")

	// Documents the schema does not describe, or that fail validation.
	k.input([]byte(`{"id":"a","ssn":"123456789","sssn":"x"}`)).failsWith(t, 1, sealArgs, `"sssn"`, "does not describe")
	k.input([]byte(`{"id":"a","ssn":"12"}`)).failsWith(t, 1, sealArgs, "fails validation", "ssn (len)")
	k.input([]byte(`{"id":5,"ssn":"123456789"}`)).failsWith(t, 1, sealArgs, `member "id" is a JSON number, the schema says a string`)
	k.input([]byte(`{"id":`)).failsWith(t, 1, sealArgs, "not valid JSON")
	// Deterministic fields need the recipient's deterministic keyset.
	k.input([]byte(accountDoc)).failsWith(t, 1, args("seal --schema account.schema.json --from frontend --to financial-service "+
		"--recipient-keyset fin-hpke.pub.json"), "--deterministic")
	// Schema file mistakes name the field.
	require.NoError(t, os.WriteFile(k.path("bad.schema.json"),
		[]byte(`{"type":"x.Y","fields":[{"name":"o","type":"object","share":["a"],"fields":[{"name":"s","type":"string","share":["a"],"sensitive":"randm"}]}]}`), 0o600))
	k.input([]byte(`{}`)).failsWith(t, 1, args("seal --schema bad.schema.json --from frontend --to a --recipient-keyset fin-hpke.pub.json"),
		`bad.schema.json: schema file: field "o.s" (at /fields/0/fields/0): sensitive`)
	require.NoError(t, os.WriteFile(k.path("rec.schema.json"),
		[]byte(`{"type":"x.R","fields":[{"name":"n","type":"Node"}],"types":{"Node":{"fields":[{"name":"k","type":"array","items":{"type":"Node"}}]}}}`), 0o600))
	k.input([]byte(`{}`)).failsWith(t, 1, args("seal --schema rec.schema.json --from frontend --to a --recipient-keyset fin-hpke.pub.json"),
		"recursive type (Node -> Node)")
	k.failsWith(t, 2, args("seal --schema account.schema.json --to financial-service --recipient-keyset fin-hpke.pub.json"), "--from is required")
	require.False(t, bytes.Contains([]byte(k.input([]byte(accountDoc)).xsvc(t, sealArgs...).stderr), []byte("Jane")))
}

func u32(v uint32) string {
	b, _ := json.Marshal(v)
	return string(b)
}
