package transport_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/transport"
)

func newKEK(t testing.TB) tink.AEAD {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	a, err := aead.New(h)
	require.NoError(t, err)
	return a
}

func encEntries(t testing.TB) []transport.KeyEntry {
	t.Helper()
	bin := bytes.Repeat([]byte{0, 0xff, '\n', 7}, 8)
	k1, err := transport.NewKey("2026-04", bin)
	require.NoError(t, err)
	k2, err := transport.NewKey("2026-01", []byte(strings.Repeat("s", 40)))
	require.NoError(t, err)
	return []transport.KeyEntry{
		{Caller: "frontend", Target: "financial-api", Key: k1},
		{Caller: "frontend", Key: k2, Retired: true},
	}
}

func TestEncryptedKeyFileRoundTrip(t *testing.T) {
	kek := newKEK(t)
	entries := encEntries(t)
	var buf bytes.Buffer
	require.NoError(t, transport.WriteEncryptedKeyFile(&buf, entries, kek))
	require.True(t, transport.IsEncryptedKeyFile(buf.Bytes()))
	require.NotContains(t, buf.String(), base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 40))))
	require.NotContains(t, buf.String(), "frontend", "nothing in the clear, not even names")

	got, err := transport.ReadEncryptedKeyFile(bytes.NewReader(buf.Bytes()), kek)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for i := range entries {
		require.Equal(t, entries[i].Caller, got[i].Caller)
		require.Equal(t, entries[i].Target, got[i].Target)
		require.Equal(t, entries[i].Retired, got[i].Retired)
		require.Equal(t, entries[i].Key.ID(), got[i].Key.ID())
		// Same secret: the same components sign alike.
		c := transport.Components{Environment: transport.Development, Caller: "frontend", Target: "financial-api",
			KeyID: entries[i].Key.ID(), Timestamp: "1", RequestID: "019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01",
			Method: "GET", Path: "/"}
		s1, err := c.Signature(entries[i].Key)
		require.NoError(t, err)
		s2, err := c.Signature(got[i].Key)
		require.NoError(t, err)
		require.Equal(t, s1, s2)
	}

	// The plain form is the key file of section 11.3.
	plain, err := transport.MarshalKeyFile(entries)
	require.NoError(t, err)
	require.False(t, transport.IsEncryptedKeyFile(plain))
	back, err := transport.ParseKeyFile(plain)
	require.NoError(t, err)
	require.Len(t, back, 2)
}

func TestEncryptedKeyFileRefusals(t *testing.T) {
	kek := newKEK(t)
	var buf bytes.Buffer
	require.NoError(t, transport.WriteEncryptedKeyFile(&buf, encEntries(t), kek))
	good := buf.Bytes()

	_, err := transport.ReadEncryptedKeyFile(bytes.NewReader(good), newKEK(t))
	require.ErrorIs(t, err, transport.ErrKeyFileDecrypt, "wrong master key")

	// A ciphertext of the same master key made for another purpose (other
	// associated data) is not a key file.
	plain, err := transport.MarshalKeyFile(encEntries(t))
	require.NoError(t, err)
	ct, err := kek.Encrypt(plain, nil)
	require.NoError(t, err)
	other, _ := json.Marshal(map[string]any{"version": 1, "encrypted_keys": base64.StdEncoding.EncodeToString(ct)})
	_, err = transport.ReadEncryptedKeyFile(bytes.NewReader(other), kek)
	require.ErrorIs(t, err, transport.ErrKeyFileDecrypt)

	var ef map[string]any
	require.NoError(t, json.Unmarshal(good, &ef))
	raw, _ := base64.StdEncoding.DecodeString(ef["encrypted_keys"].(string))
	raw[len(raw)-1] ^= 1
	tampered, _ := json.Marshal(map[string]any{"version": 1, "encrypted_keys": base64.StdEncoding.EncodeToString(raw)})
	_, err = transport.ReadEncryptedKeyFile(bytes.NewReader(tampered), kek)
	require.ErrorIs(t, err, transport.ErrKeyFileDecrypt)

	for _, bad := range []string{
		``, `[]`, `{"version":2,"encrypted_keys":"AAAA"}`, `{"encrypted_keys":"AAAA"}`, `{"version":1}`,
		`{"version":1,"encrypted_keys":"not base64!"}`, `{"version":1,"encrypted_keys":""}`,
		`{"version":1,"encrypted_keys":"AAAA","x":1}`, `{"version":1,"encrypted_keys":"AAAA"} {}`,
	} {
		_, err := transport.ReadEncryptedKeyFile(strings.NewReader(bad), kek)
		require.ErrorIs(t, err, transport.ErrInvalidConfig, "%q", bad)
	}
	_, err = transport.ReadEncryptedKeyFile(bytes.NewReader(good), nil)
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	require.ErrorIs(t, transport.WriteEncryptedKeyFile(&buf, nil, kek), transport.ErrInvalidConfig)

	dir := t.TempDir()
	p := filepath.Join(dir, "keys.enc.json")
	require.NoError(t, os.WriteFile(p, good, 0o600))
	got, err := transport.LoadEncryptedKeyFile(p, kek)
	require.NoError(t, err)
	require.Len(t, got, 2)
	if runtime.GOOS != "windows" {
		require.NoError(t, os.Chmod(p, 0o644))
		_, err = transport.LoadEncryptedKeyFile(p, kek)
		require.ErrorIs(t, err, transport.ErrKeyFileInsecure)
	}
}

func FuzzReadEncryptedKeyFile(f *testing.F) {
	kek := newKEK(f)
	var buf bytes.Buffer
	require.NoError(f, transport.WriteEncryptedKeyFile(&buf, encEntries(f), kek))
	f.Add(buf.Bytes())
	f.Add([]byte(`{"version":1,"encrypted_keys":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := transport.ReadEncryptedKeyFile(bytes.NewReader(data), kek)
		if err == nil && len(entries) == 0 {
			t.Fatal("no error and no keys")
		}
	})
}
