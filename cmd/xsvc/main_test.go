package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
)

// bin is the xsvc binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xsvc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "xsvc")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building xsvc: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
	maxRSSKiB      int64
}

// run is one invocation of the binary in dir, with only PATH and env in its
// environment, and stdin as its standard input.
type run struct {
	dir   string
	env   []string
	stdin []byte
}

func (r run) xsvc(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = r.dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, r.env...)
	cmd.Stdin = bytes.NewReader(r.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running xsvc: %v", err)
		res.code = ee.ExitCode()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSSKiB = int64(ru.Maxrss)
	}
	return res
}

// ok runs xsvc and requires exit code 0.
func (r run) ok(t *testing.T, args ...string) result {
	t.Helper()
	res := r.xsvc(t, args...)
	require.Equal(t, 0, res.code, "xsvc %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.stdout, res.stderr)
	return res
}

// failsWith runs xsvc and requires the exit code and one error line on
// stderr, "xsvc: <command>: ...", containing every want.
func (r run) failsWith(t *testing.T, code int, args []string, want ...string) result {
	t.Helper()
	res := r.xsvc(t, args...)
	require.Equal(t, code, res.code, "xsvc %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "xsvc: "), "error line %q", last)
	for _, w := range want {
		require.Contains(t, last, w)
	}
	return res
}

func (r run) with(env ...string) run {
	r.env = append(append([]string(nil), r.env...), env...)
	return r
}

func (r run) input(b []byte) run {
	r.stdin = b
	return r
}

// keys is a directory with a master key, as a test sets it up.
type keysDir struct {
	run
	master string // master key file name, relative to dir
}

func newKeysDir(t *testing.T) keysDir {
	t.Helper()
	k := keysDir{run: run{dir: t.TempDir()}, master: "master.json"}
	k.ok(t, "key", "generate", "--type", "aead", "--insecure-cleartext", "--out", k.master)
	return k
}

func (k keysDir) path(name string) string { return filepath.Join(k.dir, name) }

// kek returns the master key as the test process reads it.
func (k keysDir) kek(t *testing.T) tink.AEAD {
	t.Helper()
	f, err := os.Open(k.path(k.master))
	require.NoError(t, err)
	defer f.Close()
	h, err := insecurekeyset.Read(f)
	require.NoError(t, err)
	a, err := aead.New(h)
	require.NoError(t, err)
	return a
}

// handle reads an encrypted keyset file under the master key.
func (k keysDir) handle(t *testing.T, name string) *keyset.Handle {
	t.Helper()
	f, err := os.Open(k.path(name))
	require.NoError(t, err)
	defer f.Close()
	h, err := fieldcrypt.ReadKeyset(f, k.kek(t))
	require.NoError(t, err)
	return h
}

// args splits a command line on spaces.
func args(s string) []string { return strings.Fields(s) }

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Mode().Perm()
}

func TestHelpAndUsage(t *testing.T) {
	r := run{dir: t.TempDir()}
	res := r.ok(t, "--help")
	for _, w := range []string{"key generate", "seal", "open", "sign", "verify", "probe", "report", "rewrap", "certs dev",
		"Exit codes:", "0  success", "1  failure", "2  usage", "XSVC_MASTER_KEY"} {
		require.Contains(t, res.stdout, w)
	}
	for _, c := range []string{"key generate", "key add", "key promote", "key retire", "key list", "key public",
		"seal", "open", "sign", "verify", "probe", "report", "rewrap", "certs dev"} {
		res := r.ok(t, append(strings.Fields(c), "--help")...)
		require.Contains(t, res.stdout, "Usage: xsvc "+c, c)
		require.Contains(t, res.stdout, "Exit codes: 0 success, 1 failure, 2 usage.", c)
		require.NotContains(t, res.stdout, "clock-offset", "hidden flag shown by %s", c)
	}
	require.Contains(t, r.ok(t, "help", "seal").stdout, "Usage: xsvc seal")
	require.Contains(t, r.ok(t, "key", "--help").stdout, "promote")
	require.Contains(t, r.ok(t, "report", "--help").stdout, "schema.Report")

	require.Equal(t, 2, r.xsvc(t).code)
	r.failsWith(t, 2, []string{"frobnicate"}, "unknown command")
	r.failsWith(t, 2, []string{"key", "frob"}, "unknown command")
	r.failsWith(t, 2, []string{"key", "list", "--bogus"}, "xsvc: key list: unknown flag --bogus", "--help")
	r.failsWith(t, 2, []string{"key", "list"}, "--file is required")
	r.failsWith(t, 2, []string{"seal", "stray"}, "unexpected argument")
	r.failsWith(t, 2, []string{"key", "generate", "--type", "rsa", "--out", "x.json", "--insecure-cleartext"}, "unknown --type")
}

// tinkJSON is enough of Tink's JSON keyset format to find key material.
type tinkJSON struct {
	PrimaryKeyID uint32 `json:"primaryKeyId"`
	Key          []struct {
		KeyData struct {
			Value string `json:"value"`
		} `json:"keyData"`
		KeyID  uint32 `json:"keyId"`
		Status string `json:"status"`
	} `json:"key"`
}

func TestKeys(t *testing.T) {
	k := newKeysDir(t)
	mk := []string{"--master-key-file", k.master}
	require.Equal(t, os.FileMode(0o600), mode(t, k.path(k.master)))

	// Every type, encrypted under the master key, mode 0600.
	for _, typ := range []string{"aead", "deterministic", "hpke"} {
		res := k.ok(t, append([]string{"key", "generate", "--type", typ, "--out", typ + ".json"}, mk...)...)
		require.Contains(t, res.stdout, "encrypted under the master key")
		require.Equal(t, os.FileMode(0o600), mode(t, k.path(typ+".json")))
		data, err := os.ReadFile(k.path(typ + ".json"))
		require.NoError(t, err)
		require.Contains(t, string(data), "encryptedKeyset")
		k.handle(t, typ+".json") // decrypts with the master key
	}

	// Never overwritten without --force, and the file is unchanged.
	before, err := os.ReadFile(k.path("hpke.json"))
	require.NoError(t, err)
	k.failsWith(t, 1, append([]string{"key", "generate", "--type", "hpke", "--out", "hpke.json"}, mk...),
		"xsvc: key generate: key file hpke.json already exists", "--force")
	after, err := os.ReadFile(k.path("hpke.json"))
	require.NoError(t, err)
	require.Equal(t, before, after)
	k.ok(t, append([]string{"key", "generate", "--type", "hpke", "--out", "hpke2.json"}, mk...)...)
	k.ok(t, append([]string{"key", "generate", "--type", "hpke", "--out", "hpke2.json", "--force"}, mk...)...)
	entries, _ := os.ReadDir(k.dir)
	for _, e := range entries {
		require.False(t, strings.Contains(e.Name(), "xsvc-tmp"), "temporary file left: %s", e.Name())
	}

	// Master key from the environment, as JSON or base64.
	masterJSON, err := os.ReadFile(k.path(k.master))
	require.NoError(t, err)
	envJSON := k.with("XSVC_MASTER_KEY=" + string(masterJSON))
	envJSON.ok(t, "key", "list", "--file", "hpke.json")
	k.with("XSVC_MASTER_KEY="+b64(masterJSON)).ok(t, "key", "list", "--file", "hpke.json")

	// Wrong, missing and malformed master keys.
	k.ok(t, "key", "generate", "--type", "aead", "--insecure-cleartext", "--out", "other-master.json")
	k.failsWith(t, 1, []string{"key", "list", "--file", "hpke.json", "--master-key-file", "other-master.json"},
		"cannot decrypt key file hpke.json with the master key", "wrong --master-key-file")
	k.failsWith(t, 1, []string{"key", "list", "--file", "hpke.json"}, "no master key", "XSVC_MASTER_KEY")
	k.with("XSVC_MASTER_KEY=not a key").failsWith(t, 1, []string{"key", "list", "--file", "hpke.json"}, "XSVC_MASTER_KEY")
	if runtime.GOOS != "windows" {
		require.NoError(t, os.Chmod(k.path("other-master.json"), 0o644))
		k.failsWith(t, 1, []string{"key", "list", "--file", "hpke.json", "--master-key-file", "other-master.json"},
			"mode 0644", "chmod 600")
	}
	// Cleartext secrets only with the explicit flag.
	k.ok(t, "key", "generate", "--type", "deterministic", "--insecure-cleartext", "--out", "clear.json")
	k.failsWith(t, 1, []string{"key", "list", "--file", "clear.json"}, "cleartext", "--insecure-cleartext")

	// list: ids, status, primary, type; never key material.
	var clear tinkJSON
	data, err := os.ReadFile(k.path("clear.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &clear))
	list := k.ok(t, "key", "list", "--file", "clear.json", "--insecure-cleartext").stdout
	require.Contains(t, list, fmt.Sprint(clear.PrimaryKeyID))
	require.Contains(t, list, "deterministic (tink prefix)")
	require.Contains(t, list, "CLEARTEXT")
	require.NotContains(t, list, clear.Key[0].KeyData.Value)

	// Rotation: add (not primary), promote, retire; the primary cannot be
	// retired.
	h0 := k.handle(t, "hpke.json")
	oldID := h0.KeysetInfo().GetPrimaryKeyId()
	res := k.ok(t, append([]string{"key", "add", "--file", "hpke.json"}, mk...)...)
	var newID uint32
	_, err = fmt.Sscanf(res.stdout, "added key %d", &newID)
	require.NoError(t, err)
	require.Equal(t, oldID, k.handle(t, "hpke.json").KeysetInfo().GetPrimaryKeyId(), "add does not promote")
	require.Equal(t, os.FileMode(0o600), mode(t, k.path("hpke.json")))
	k.ok(t, append([]string{"key", "promote", "--file", "hpke.json", "--id", fmt.Sprint(newID)}, mk...)...)
	require.Equal(t, newID, k.handle(t, "hpke.json").KeysetInfo().GetPrimaryKeyId())
	k.failsWith(t, 1, append([]string{"key", "retire", "--file", "hpke.json", "--id", fmt.Sprint(newID)}, mk...), "is the primary")
	k.failsWith(t, 1, append([]string{"key", "promote", "--file", "hpke.json", "--id", "12345"}, mk...), "cannot promote key 12345")
	k.failsWith(t, 2, append([]string{"key", "promote", "--file", "hpke.json", "--id", "abc"}, mk...), "decimal")
	k.ok(t, append([]string{"key", "retire", "--file", "hpke.json", "--id", fmt.Sprint(oldID)}, mk...)...)
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(k.ok(t, append([]string{"key", "list", "--file", "hpke.json", "--json"}, mk...)...).stdout), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		rows = append(rows, m)
	}
	require.Len(t, rows, 2)
	for _, m := range rows {
		switch m["id"] {
		case fmt.Sprint(oldID):
			require.Equal(t, "disabled", m["status"])
			require.Equal(t, false, m["primary"])
		case fmt.Sprint(newID):
			require.Equal(t, "enabled", m["status"])
			require.Equal(t, true, m["primary"])
		default:
			t.Fatalf("unexpected row %v", m)
		}
		require.Contains(t, m["type"], "hpke")
	}
	// add --promote, and --out to another file (no overwrite without --force).
	k.ok(t, append([]string{"key", "add", "--file", "deterministic.json", "--promote", "--out", "det2.json"}, mk...)...)
	require.Len(t, k.handle(t, "det2.json").KeysetInfo().GetKeyInfo(), 2)
	require.Len(t, k.handle(t, "deterministic.json").KeysetInfo().GetKeyInfo(), 1)
	k.failsWith(t, 1, append([]string{"key", "add", "--file", "deterministic.json", "--out", "det2.json"}, mk...), "already exists")

	// public: the public half only.
	k.ok(t, append([]string{"key", "public", "--in", "hpke.json", "--out", "hpke.pub.json"}, mk...)...)
	require.Equal(t, os.FileMode(0o600), mode(t, k.path("hpke.pub.json")))
	pf, err := os.Open(k.path("hpke.pub.json"))
	require.NoError(t, err)
	pub, err := fieldcrypt.ReadPublicKeyset(pf)
	pf.Close()
	require.NoError(t, err)
	require.Equal(t, newID, pub.KeysetInfo().GetPrimaryKeyId())
	k.failsWith(t, 1, append([]string{"key", "public", "--in", "hpke.json", "--out", "hpke.pub.json"}, mk...), "already exists")
	k.failsWith(t, 1, append([]string{"key", "public", "--in", "aead.json", "--out", "x.json"}, mk...), "not a private hpke keyset")
	require.Contains(t, k.ok(t, "key", "list", "--file", "hpke.pub.json").stdout, "public (no secrets)")
}

func TestKeysHMAC(t *testing.T) {
	k := newKeysDir(t)
	mk := []string{"--master-key-file", k.master}
	k.ok(t, append(args("key generate --type hmac --caller frontend --target financial-api --id k1 --out sign.json"), mk...)...)
	require.Equal(t, os.FileMode(0o600), mode(t, k.path("sign.json")))
	data, err := os.ReadFile(k.path("sign.json"))
	require.NoError(t, err)
	require.Contains(t, string(data), "encrypted_keys")
	require.NotContains(t, string(data), "frontend", "encrypted: not even the caller is in the clear")

	k.ok(t, append(args("key add --file sign.json --caller frontend --target financial-api --id k2 --secret-format hex"), mk...)...)
	k.failsWith(t, 1, append(args("key add --file sign.json --caller frontend --target financial-api --id k2"), mk...), "already exists")
	k.failsWith(t, 2, append(args("key add --file sign.json"), mk...), "--caller is required")
	k.failsWith(t, 2, append(args("key promote --file sign.json --id k2"), mk...), "no primary", "retire")
	list := k.ok(t, append(args("key list --file sign.json"), mk...)...).stdout
	require.Contains(t, list, "k1")
	require.Contains(t, list, "k2")
	require.Contains(t, list, "hmac-sha256")
	require.Contains(t, list, "financial-api")
	k.ok(t, append(args("key retire --file sign.json --id k1"), mk...)...)
	list = k.ok(t, append(args("key list --file sign.json --json"), mk...)...).stdout
	require.Contains(t, list, `{"id":"k1","status":"retired","primary":false,"type":"hmac-sha256","caller":"frontend","target":"financial-api"}`)
	require.Contains(t, list, `{"id":"k2","status":"active","primary":true,"type":"hmac-sha256","caller":"frontend","target":"financial-api"}`)
	k.failsWith(t, 1, append(args("key retire --file sign.json --id nope"), mk...), "no signing key")

	// Wrong master key on a signing-key file.
	k.ok(t, args("key generate --type aead --insecure-cleartext --out m2.json")...)
	k.failsWith(t, 1, args("key list --file sign.json --master-key-file m2.json"), "cannot decrypt key file sign.json")

	// Cleartext signing keys: the library's key file format, with the flag.
	k.ok(t, args("key generate --type hmac --caller analytics-service --insecure-cleartext --out plain.json")...)
	require.Equal(t, os.FileMode(0o600), mode(t, k.path("plain.json")))
	k.failsWith(t, 1, args("key list --file plain.json"), "cleartext", "--insecure-cleartext")
	require.Contains(t, k.ok(t, args("key list --file plain.json --insecure-cleartext")...).stdout, "analytics-service")
}

func TestCertsDev(t *testing.T) {
	r := run{dir: t.TempDir()}
	res := r.ok(t, "certs", "dev", "--out", "certs", "--services", "frontend,financial-api")
	require.Contains(t, res.stdout, "spiffe://crossservice.dev/frontend")
	for _, f := range []string{"ca.pem", "ca-key.pem", "frontend.pem", "frontend-key.pem", "financial-api.pem", "financial-api-key.pem"} {
		_, err := os.Stat(filepath.Join(r.dir, "certs", f))
		require.NoError(t, err, f)
	}
	require.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(r.dir, "certs", "frontend-key.pem")))
	r.failsWith(t, 1, []string{"certs", "dev", "--out", "certs", "--services", "frontend"}, "already exist", "--force")
	r.ok(t, "certs", "dev", "--out", "certs", "--services", "frontend", "--force")
	r.failsWith(t, 1, []string{"certs", "dev", "--out", "c2", "--services", "Bad_Name"}, "service names")
	r.failsWith(t, 2, []string{"certs", "dev", "--out", "c2"}, "--services is required")
}

const accountSchema = `{
  "type": "accounts.Account",
  "fields": [
    {"name": "id",      "type": "string", "share": ["financial-service", "analytics-service"]},
    {"name": "owner",   "type": "string", "share": ["financial-service"], "sensitive": "random"},
    {"name": "ssn",     "type": "string", "share": ["financial-service"], "sensitive": "deterministic",
     "validate": "required,len=9,numeric"},
    {"name": "balance", "type": "number", "share": ["*"]},
    {"name": "owners",  "type": "array", "share": ["financial-service"], "items": {"type": "Owner"}},
    {"name": "tags",    "type": "map", "share": ["financial-service"], "sensitive": "random", "values": {"type": "string"}},
    {"name": "notes",   "type": "string"}
  ],
  "types": {"Owner": {"fields": [
    {"name": "name", "type": "string", "share": ["financial-service"]},
    {"name": "tax_id", "type": "string", "share": ["financial-service"], "sensitive": "deterministic"}]}}
}`

func TestReport(t *testing.T) {
	r := run{dir: t.TempDir()}
	require.NoError(t, os.WriteFile(filepath.Join(r.dir, "account.json"), []byte(accountSchema), 0o600))
	md := r.ok(t, "report", "--schema", "account.json").stdout
	require.Contains(t, md, "| Field | Go type | analytics-service | financial-service |")
	require.Contains(t, md, "| accounts.Account.ssn | string | stripped | deterministic |")
	require.Contains(t, md, "| accounts.Account.owners[].tax_id | string | stripped | deterministic |")
	require.Contains(t, md, "| accounts.Account.notes | string | stripped | stripped |")
	dot := r.ok(t, "report", "--schema", "account.json", "--format", "dot", "--services", "financial-service,billing").stdout
	require.True(t, strings.HasPrefix(dot, "digraph exposure {"))
	require.Contains(t, dot, `label="billing"`)
	r.ok(t, "report", "--schema", "account.json", "--out", "r.md")
	r.failsWith(t, 1, []string{"report", "--schema", "account.json", "--out", "r.md"}, "already exists")
	r.failsWith(t, 2, []string{"report", "--schema", "account.json", "--format", "pdf"}, "markdown or dot")
	require.NoError(t, os.WriteFile(filepath.Join(r.dir, "typo.json"),
		[]byte(`{"type":"x.Y","fields":[{"name":"card","type":"string","share":["billing"],"sensitve":"random"}]}`), 0o600))
	r.failsWith(t, 1, []string{"report", "--schema", "typo.json"}, `field "card"`, "sensitve", "fix the schema file")
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
