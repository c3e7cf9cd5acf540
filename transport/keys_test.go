package transport_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/transport"
)

func TestNewKey(t *testing.T) {
	_, err := transport.NewKey("k", []byte(strings.Repeat("x", 31)))
	require.ErrorIs(t, err, transport.ErrKeyTooShort)
	require.ErrorIs(t, err, transport.ErrInvalidKey)
	require.NotContains(t, err.Error(), strings.Repeat("x", 31))
	for _, id := range []string{"", "a b", "é", strings.Repeat("a", 65), "k\n"} {
		_, err := transport.NewKey(id, []byte(secretFrontend1))
		require.ErrorIs(t, err, transport.ErrInvalidKey, "%q", id)
	}
	k, err := transport.NewKey("A-z_0.9:x", []byte(strings.Repeat("x", 32)))
	require.NoError(t, err)
	require.Equal(t, "A-z_0.9:x", k.ID())
	require.True(t, transport.Key{}.IsZero())
}

// TestKeyRedaction: no formatting path prints the secret.
func TestKeyRedaction(t *testing.T) {
	k := mustKey(t, "f1", secretFrontend1)
	secretHex := fmt.Sprintf("%x", secretFrontend1)
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%p"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, &k), fmt.Sprintf(verb, []transport.Key{k}),
			fmt.Sprintf(verb, transport.KeyEntry{Caller: "frontend", Key: k}))
	}
	j, err := json.Marshal(map[string]any{"k": k, "e": transport.KeyEntry{Caller: "frontend", Key: k}})
	require.NoError(t, err)
	outs = append(outs, string(j), k.String(), k.GoString())
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k, "entry", transport.KeyEntry{Key: k})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", k)
	outs = append(outs, buf.String())
	for _, o := range outs {
		require.NotContains(t, o, secretFrontend1)
		require.NotContains(t, strings.ToLower(o), secretHex)
		require.NotContains(t, o, "102 114 111") // %d of "fro..."
	}
	require.Contains(t, k.String(), "REDACTED")
	require.Contains(t, buf.String(), "REDACTED")
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"financial-api":     "FINANCIAL",
		"financial":         "FINANCIAL",
		"analytics-service": "ANALYTICS_SERVICE",
		"frontend":          "FRONTEND",
		"api":               "API",
		"my-api-gateway":    "MY_API_GATEWAY",
		"Bad":               "",
	} {
		require.Equal(t, want, transport.EnvPrefix(in), in)
	}
}

func TestKeysFromEnv(t *testing.T) {
	env := envMap(map[string]string{
		"FINANCIAL_API_KEY":    secretFrontend1,
		"FINANCIAL_API_KEY_ID": "fin-2",
		"INTERNAL_API_KEY":     secretAnalytics,
		"SHORT_API_KEY":        "tooshort",
	})
	k, err := transport.TargetKeyFromEnv(env, "financial-api")
	require.NoError(t, err)
	require.Equal(t, "fin-2", k.ID())
	k, err = transport.TargetKeyFromEnv(env, "analytics-service") // fallback
	require.NoError(t, err)
	require.Equal(t, transport.DefaultEnvKeyID, k.ID())
	_, err = transport.TargetKeyFromEnv(env, "short")
	require.ErrorIs(t, err, transport.ErrKeyTooShort)
	require.NotContains(t, err.Error(), "tooshort")

	_, err = transport.TargetKeyFromEnv(envMap(nil), "financial-api")
	var me *transport.MissingEnvError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, err, transport.ErrEnvMissing)
	require.Equal(t, []string{"FINANCIAL_API_KEY", "INTERNAL_API_KEY"}, me.Names)

	entries, err := transport.CallerKeysFromEnv(env, "financial-api", "frontend")
	require.NoError(t, err)
	require.Len(t, entries, 2)
	require.Equal(t, "financial-api", entries[0].Caller)
	require.Equal(t, "fin-2", entries[0].Key.ID())
	require.Equal(t, "frontend", entries[1].Caller) // FRONTEND_API_KEY unset: INTERNAL_API_KEY
	_, err = transport.CallerKeysFromEnv(env, "financial", "financial-api")
	require.ErrorIs(t, err, transport.ErrInvalidConfig, "both map to FINANCIAL_API_KEY")

	// Both sides of a pair agree without any _ID variable.
	client, err := transport.TargetKeyFromEnv(envMap(map[string]string{"INTERNAL_API_KEY": secretAnalytics}), "financial-api")
	require.NoError(t, err)
	server, err := transport.CallerKeysFromEnv(envMap(map[string]string{"INTERNAL_API_KEY": secretAnalytics}), "frontend")
	require.NoError(t, err)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Production, Keys: server})
	require.NoError(t, err)
	s := newSigner(t, "frontend", "financial-api", transport.Production, client, "", time.Now)
	rec, _ := inProcess(t, v.Middleware(&counter{}), s, "GET", "/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)

	e, err := transport.EnvironmentFromEnv(envMap(map[string]string{"APP_ENV": "staging"}))
	require.NoError(t, err)
	require.Equal(t, transport.Staging, e)
	_, err = transport.EnvironmentFromEnv(envMap(nil))
	require.ErrorIs(t, err, transport.ErrEnvMissing)
	_, err = transport.EnvironmentFromEnv(envMap(map[string]string{"APP_ENV": "Production"}))
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
}

const keyFileJSON = `{
  "version": 1,
  "keys": [
    {"caller": "frontend", "target": "financial-api", "id": "2026-04", "secret": "frontend-key-two-0123456789abcdef0123456789abcdef"},
    {"caller": "frontend", "id": "2026-01", "secret": "frontend-key-one-0123456789abcdef0123456789abcdef", "retired": true},
    {"caller": "analytics-service", "id": "a1", "secret_base64": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
  ]
}`

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	require.NoError(t, os.WriteFile(path, []byte(keyFileJSON), 0o600))
	entries, err := transport.LoadKeyFile(path)
	require.NoError(t, err)
	require.Len(t, entries, 3)
	require.True(t, entries[1].Retired)
	require.Equal(t, "financial-api", entries[0].Target)

	k, err := transport.SigningKey(entries, "frontend", "financial-api")
	require.NoError(t, err)
	require.Equal(t, "2026-04", k.ID())
	k, err = transport.SigningKey(entries, "analytics-service", "financial-api")
	require.NoError(t, err)
	require.Equal(t, "a1", k.ID())
	_, err = transport.SigningKey(entries, "frontend", "document-store") // only a retired key left
	require.ErrorIs(t, err, transport.ErrInvalidConfig)

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := transport.LoadKeyFile(path)
		require.ErrorIs(t, err, transport.ErrKeyFileInsecure, "%04o", mode)
	}
	require.NoError(t, os.Chmod(path, 0o400))
	_, err = transport.LoadKeyFile(path)
	require.NoError(t, err)

	for name, doc := range map[string]string{
		"no version":     `{"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `"}]}`,
		"version 2":      `{"version":2,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `"}]}`,
		"unknown member": `{"version":1,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `","primary":true}]}`,
		"both secrets":   `{"version":1,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `","secret_base64":"AA=="}]}`,
		"no secret":      `{"version":1,"keys":[{"caller":"a","id":"k"}]}`,
		"short secret":   `{"version":1,"keys":[{"caller":"a","id":"k","secret":"short-secret-value"}]}`,
		"bad base64":     `{"version":1,"keys":[{"caller":"a","id":"k","secret_base64":"not base64!"}]}`,
		"bad caller":     `{"version":1,"keys":[{"caller":"A","id":"k","secret":"` + secretFrontend1 + `"}]}`,
		"duplicate":      `{"version":1,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `"},{"caller":"a","id":"k","secret":"` + secretFrontend2 + `"}]}`,
		"no keys":        `{"version":1,"keys":[]}`,
		"trailing data":  `{"version":1,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `"}]} {}`,
		"not json":       `version: 1`,
	} {
		_, err := transport.ParseKeyFile([]byte(doc))
		require.Error(t, err, name)
		require.True(t, errorsIsAny(err, transport.ErrInvalidConfig, transport.ErrInvalidKey), name)
		require.NotContains(t, err.Error(), secretFrontend1, name)
		require.NotContains(t, err.Error(), "short-secret-value", name)
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errorsIs(err, t) {
			return true
		}
	}
	return false
}

func TestSigner(t *testing.T) {
	d := newDeployment(t)
	clk := newClock(t0)
	s := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", clk.Now)

	// Fresh request id and timestamp on every attempt.
	req := newRequest(t, "POST", "https://x/a", "application/json", []byte("{}"))
	require.NoError(t, s.Sign(req))
	id1, sig1 := req.Header.Get(transport.HeaderRequestID), req.Header.Get(transport.HeaderSignature)
	require.Equal(t, "1767225600000", req.Header.Get(transport.HeaderTimestamp))
	clk.Add(1500 * time.Millisecond)
	retry := req.Clone(req.Context())
	retry.Body, _ = req.GetBody()
	require.NoError(t, s.Sign(retry))
	require.NotEqual(t, id1, retry.Header.Get(transport.HeaderRequestID))
	require.NotEqual(t, sig1, retry.Header.Get(transport.HeaderSignature))
	require.Equal(t, "1767225601500", retry.Header.Get(transport.HeaderTimestamp))
	require.Len(t, retry.Header.Values(transport.HeaderSignature), 1, "replaced, not added")
	require.Equal(t, id1, req.Header.Get(transport.HeaderRequestID), "the clone is signed, not the original")

	// A body that cannot be rewound.
	nr := newRequest(t, "POST", "https://x/a", "", nil)
	nr.Body = io.NopCloser(strings.NewReader("once"))
	nr.ContentLength = 4
	require.ErrorIs(t, s.Sign(nr), transport.ErrBodyNotRewindable)

	// Legacy signer sends no X-Key-ID, even when the request had one.
	ls := newSigner(t, "legacy-gateway", "financial-api", transport.Production, d.legacy, transport.SchemeLegacy, clk.Now)
	lr := newRequest(t, "GET", "https://x/a", "", nil)
	lr.Header.Set(transport.HeaderKeyID, "stale")
	require.NoError(t, ls.Sign(lr))
	require.Empty(t, lr.Header.Values(transport.HeaderKeyID))

	// Headers on a request with a nil Header map.
	bare := &http.Request{Method: "GET", URL: req.URL}
	require.NoError(t, s.Sign(bare))
	require.NotEmpty(t, bare.Header.Get(transport.HeaderSignature))

	require.ErrorIs(t, s.SetKey(transport.Key{}), transport.ErrInvalidConfig)
	for name, cfg := range map[string]transport.SignerConfig{
		"no caller":  {Target: "b", Environment: transport.Production, Key: d.frontend1},
		"no target":  {Caller: "a", Environment: transport.Production, Key: d.frontend1},
		"no env":     {Caller: "a", Target: "b", Key: d.frontend1},
		"no key":     {Caller: "a", Target: "b", Environment: transport.Production},
		"bad scheme": {Caller: "a", Target: "b", Environment: transport.Production, Key: d.frontend1, Scheme: "v2"},
	} {
		_, err := transport.NewSigner(cfg)
		require.ErrorIs(t, err, transport.ErrInvalidConfig, name)
	}
	bad := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", clk.Now)
	_ = bad
	badID, err := transport.NewSigner(transport.SignerConfig{Caller: "a", Target: "b", Environment: transport.Production,
		Key: d.frontend1, RequestID: func() (string, error) { return "not-a-uuid", nil }})
	require.NoError(t, err)
	require.ErrorIs(t, badID.Sign(newRequest(t, "GET", "https://x/", "", nil)), transport.ErrInvalidComponent)
}
