package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
)

// The HMAC secrets of the demo are 64 hex digits (randomKey), and so are
// signatures: no run of 64 hex digits may appear anywhere.
var hex64 = regexp.MustCompile(`(?i)[0-9a-f]{64}`)

// TestDemoHygiene runs the demo and scans everything it and its services
// print (their verifier logs included): no HMAC secret or signature, no
// key material of any keyset the demo made, and the account's owner, SSN
// and notes only on the two lines that show them on purpose (the account
// the frontend holds, and what financial-service opened).
func TestDemoHygiene(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = orchestrate(ctx, &out, options{exe: exe, keep: true})
	text := out.String()
	m := regexp.MustCompile(`(?m)^kept (.+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the demo did not keep its directory: %v\n%s", err, text)
	}
	dir := m[1]
	defer os.RemoveAll(dir)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, text)
	}

	if s := hex64.FindString(text); s != "" {
		t.Errorf("64 hex digits (an HMAC secret or a signature) in the demo output: %s", s)
	}
	for _, secret := range demoKeyMaterial(t, dir) {
		for _, form := range []string{hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
			base64.RawURLEncoding.EncodeToString(secret), base64.RawStdEncoding.EncodeToString(secret)} {
			if strings.Contains(text, form) {
				t.Errorf("key material in the demo output: %s", form)
			}
		}
	}
	for _, bad := range []string{`"keyMaterialType"`, `"encryptedKeyset"`, `PRIVATE KEY`} {
		if strings.Contains(text, bad) {
			t.Errorf("the demo output holds %s", bad)
		}
	}
	shown := 0
	for _, line := range strings.Split(text, "\n") {
		deliberate := strings.HasPrefix(line, "[frontend] the account as the frontend holds it:") ||
			strings.HasPrefix(line, "[financial-service]   after opening:")
		for _, v := range []string{demoOwner, demoSSN, demoNotes} {
			if strings.Contains(line, v) {
				if !deliberate {
					t.Errorf("%q on a line that should not show it: %s", v, line)
				}
				shown++
			}
		}
	}
	if shown == 0 || !strings.Contains(text, "level=WARN") {
		t.Fatalf("the scan saw neither the deliberate lines nor the verifier's log lines:\n%s", text)
	}
}

// demoKeyMaterial decrypts every keyset the demo wrote and returns their
// secret key bytes.
func demoKeyMaterial(t *testing.T, dir string) [][]byte {
	f, err := os.Open(filepath.Join(dir, "master-key.json"))
	if err != nil {
		t.Fatal(err)
	}
	master, err := insecurekeyset.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	kek, err := aead.New(master)
	if err != nil {
		t.Fatal(err)
	}
	out := secretBytes(t, master)
	files, _ := filepath.Glob(filepath.Join(dir, "keys", "*.json"))
	for _, name := range files {
		if strings.HasSuffix(name, ".pub.json") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := fieldcrypt.ReadKeyset(bytes.NewReader(b), kek)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, secretBytes(t, h)...)
	}
	if len(out) < 5 {
		t.Fatalf("only %d keys found in %s", len(out), dir)
	}
	return out
}

// secretBytes returns each key's serialized key data, and its last 32
// bytes: the raw key of the demo's HPKE and AES-GCM keys, the second half
// of its AES-SIV key.
func secretBytes(t *testing.T, h *keyset.Handle) [][]byte {
	var buf bytes.Buffer
	if err := insecurekeyset.Write(&buf, h); err != nil {
		t.Fatal(err)
	}
	var ks struct {
		Key []struct {
			KeyData struct {
				Value string `json:"value"`
			} `json:"keyData"`
		} `json:"key"`
	}
	if err := json.Unmarshal(buf.Bytes(), &ks); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, k := range ks.Key {
		v, err := base64.StdEncoding.DecodeString(k.KeyData.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
		if len(v) > 32 {
			out = append(out, v[len(v)-32:])
		}
	}
	return out
}
