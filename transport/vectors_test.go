package transport_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/testdata"
	"github.com/lifenavigator/crossservice/transport"
)

// vector is one entry of testdata/signing/vectors.json.
type vector struct {
	Name        string `json:"name"`
	Comment     string `json:"comment"`
	Scheme      string `json:"scheme"`
	Key         string `json:"key"`
	KeyBase64   string `json:"key_base64"`
	KeyID       string `json:"key_id"`
	Environment string `json:"environment"`
	Caller      string `json:"caller"`
	Target      string `json:"target"`
	Timestamp   string `json:"timestamp"`
	RequestID   string `json:"request_id"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query"`
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
	BodyBase64  string `json:"body_base64"`
	Result      string `json:"result"` // "ok" or "invalid_component"
	Component   string `json:"component"`
	BodySHA256  string `json:"body_sha256"`
	Canonical   string `json:"canonical"`
	Signature   string `json:"signature"`
}

func (v *vector) key(t testing.TB) (transport.Key, []byte) {
	t.Helper()
	secret := []byte(v.Key)
	if v.KeyBase64 != "" {
		var err error
		secret, err = base64.StdEncoding.DecodeString(v.KeyBase64)
		require.NoError(t, err)
	}
	k, err := transport.NewKey(v.KeyID, secret)
	require.NoError(t, err)
	return k, secret
}

func (v *vector) body(t testing.TB) []byte {
	t.Helper()
	if v.BodyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(v.BodyBase64)
		require.NoError(t, err)
		return b
	}
	return []byte(v.Body)
}

func (v *vector) components(t testing.TB) *transport.Components {
	return &transport.Components{
		Scheme: transport.Scheme(v.Scheme), Environment: transport.Environment(v.Environment),
		Caller: v.Caller, Target: v.Target, KeyID: v.KeyID, Timestamp: v.Timestamp, RequestID: v.RequestID,
		Method: v.Method, Path: v.Path, Query: v.Query, ContentType: v.ContentType, Body: v.body(t),
	}
}

// serverRequest is the request as net/http's server hands it to a handler.
func (v *vector) serverRequest(t testing.TB) *http.Request {
	target := v.Path
	if v.Query != "" {
		target += "?" + v.Query
	}
	r := httptest.NewRequest(v.Method, "https://financial.internal"+target, bytes.NewReader(v.body(t)))
	r.RemoteAddr = "127.0.0.1:40000"
	r.RequestURI = target
	if v.ContentType != "" {
		r.Header.Set("Content-Type", v.ContentType)
	}
	r.Header.Set(transport.HeaderRequestID, v.RequestID)
	r.Header.Set(transport.HeaderTimestamp, v.Timestamp)
	r.Header.Set(transport.HeaderServiceName, v.Caller)
	r.Header.Set(transport.HeaderSignature, v.Signature)
	if v.Scheme != string(transport.SchemeLegacy) {
		r.Header.Set(transport.HeaderKeyID, v.KeyID)
	}
	return r
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := fs.ReadFile(testdata.Signing, "signing/vectors.json")
	require.NoError(t, err, "signing vectors must be embedded")
	var f struct {
		Format  string   `json:"format"`
		Vectors []vector `json:"vectors"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&f))
	var ok, legacy, bad int
	for _, v := range f.Vectors {
		switch {
		case v.Result == "ok" && v.Scheme == string(transport.SchemeLegacy):
			legacy++
		case v.Result == "ok":
			ok++
		default:
			bad++
		}
	}
	if ok == 0 || legacy == 0 || bad == 0 {
		t.Fatalf("vectors: %d v1, %d legacy, %d refused: each kind must be present", ok, legacy, bad)
	}
	return f.Vectors
}

func TestVectorsCanonical(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			c := v.components(t)
			k, _ := v.key(t)
			canon, err := c.Canonical()
			if v.Result != "ok" {
				var ce *transport.ComponentError
				require.ErrorAs(t, err, &ce)
				require.ErrorIs(t, err, transport.ErrInvalidComponent)
				require.Equal(t, v.Component, ce.Component)
				_, err = c.Signature(k)
				require.ErrorIs(t, err, transport.ErrInvalidComponent)
				return
			}
			require.NoError(t, err)
			require.Equal(t, v.Canonical, string(canon))
			sig, err := c.Signature(k)
			require.NoError(t, err)
			require.Equal(t, v.Signature, sig)
			if v.Scheme != string(transport.SchemeLegacy) {
				lines := strings.Split(string(canon), "\n")
				require.Len(t, lines, 12)
				require.Equal(t, v.BodySHA256, lines[11])
			}
		})
	}
}

// TestVectorsSigner: the Signer produces the vector's headers.
func TestVectorsSigner(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Result != "ok" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			k, _ := v.key(t)
			ms, err := strconv.ParseInt(v.Timestamp, 10, 64)
			require.NoError(t, err)
			s, err := transport.NewSigner(transport.SignerConfig{
				Caller: v.Caller, Target: v.Target, Environment: transport.Environment(v.Environment), Key: k,
				Scheme: transport.Scheme(v.Scheme), Clock: fixedClock(time.UnixMilli(ms)),
				RequestID: func() (string, error) { return v.RequestID, nil },
			})
			require.NoError(t, err)
			u := &url.URL{Scheme: "https", Host: "financial.internal", RawQuery: v.Query}
			p, err := url.PathUnescape(v.Path)
			require.NoError(t, err)
			u.Path, u.RawPath = p, v.Path
			require.Equal(t, v.Path, u.EscapedPath())
			req := newRequest(t, v.Method, u.String(), v.ContentType, v.body(t))
			require.NoError(t, s.Sign(req))
			require.Equal(t, v.Signature, req.Header.Get(transport.HeaderSignature))
			require.Equal(t, v.Timestamp, req.Header.Get(transport.HeaderTimestamp))
			require.Equal(t, v.RequestID, req.Header.Get(transport.HeaderRequestID))
			require.Equal(t, v.Caller, req.Header.Get(transport.HeaderServiceName))
			if v.Scheme == string(transport.SchemeLegacy) {
				require.Empty(t, req.Header.Values(transport.HeaderKeyID))
			} else {
				require.Equal(t, v.KeyID, req.Header.Get(transport.HeaderKeyID))
			}
			// The body was hashed through GetBody, not consumed.
			b, err := io.ReadAll(req.Body)
			require.NoError(t, err)
			require.Equal(t, v.body(t), b)
		})
	}
}

// TestVectorsVerifier: the middleware renders the same bytes from the wire
// and accepts each vector; the handler sees the exact body and the caller.
func TestVectorsVerifier(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Result != "ok" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			k, _ := v.key(t)
			ms, _ := strconv.ParseInt(v.Timestamp, 10, 64)
			cfg := transport.Config{
				Service: v.Target, Environment: transport.Environment(v.Environment),
				Keys:  []transport.KeyEntry{{Caller: v.Caller, Key: k}},
				Clock: fixedClock(time.UnixMilli(ms)),
			}
			if v.Scheme == string(transport.SchemeLegacy) {
				cfg.LegacyCallers = []string{v.Caller}
			}
			ver, err := transport.New(cfg)
			require.NoError(t, err)
			var got []byte
			var who transport.Caller
			h := ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = io.ReadAll(r.Body)
				who, _ = transport.CallerFrom(r.Context())
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, v.serverRequest(t))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.Equal(t, v.body(t), got)
			require.Equal(t, v.Caller, who.Service)
			require.Equal(t, v.KeyID, who.KeyID)
		})
	}
}

// writeEmbedded copies the embedded signing directory to a temporary one, so
// the tools below check exactly the bytes the tests load.
func writeEmbedded(t *testing.T) string {
	dir := t.TempDir()
	sub, err := fs.Sub(testdata.Signing, "signing")
	require.NoError(t, err)
	require.NoError(t, os.CopyFS(dir, sub))
	return dir
}

// needTool skips when tool is missing, except on CI where it must exist.
func needTool(t *testing.T, tool string) string {
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required on CI (CI=true) to cross-check the signing vectors", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// TestCrosscheckNode runs testdata/signing/crosscheck.mjs: an independent
// implementation of the spec in Node's crypto, over every vector.
func TestCrosscheckNode(t *testing.T) {
	node := needTool(t, "node")
	dir := writeEmbedded(t)
	out, err := exec.Command(node, filepath.Join(dir, "crosscheck.mjs"), filepath.Join(dir, "vectors.json")).CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err)
	require.Contains(t, string(out), ", 0 failed")
}

// TestCrosscheckOpenSSL recomputes every accepted vector's body hash and
// HMAC with `openssl dgst` over the expected canonical string.
func TestCrosscheckOpenSSL(t *testing.T) {
	openssl := needTool(t, "openssl")
	dgst := func(stdin []byte, args ...string) string {
		cmd := exec.Command(openssl, append([]string{"dgst", "-sha256", "-r"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		require.NoError(t, err)
		return strings.Fields(string(out))[0]
	}
	var v1, legacy int
	for _, v := range loadVectors(t) {
		if v.Result != "ok" {
			continue
		}
		_, secret := v.key(t)
		canon := []byte(v.Canonical)
		if v.Scheme == string(transport.SchemeLegacy) {
			// The legacy string ends with the body; rebuild it from the parts.
			require.True(t, bytes.HasSuffix(canon, v.body(t)))
			legacy++
		} else {
			require.Equal(t, v.BodySHA256, dgst(v.body(t)), v.Name)
			v1++
		}
		var mac string
		if bytes.IndexByte(secret, 0) < 0 && v.KeyBase64 == "" {
			mac = dgst(canon, "-hmac", string(secret))
		} else {
			mac = dgst(canon, "-mac", "HMAC", "-macopt", "hexkey:"+hex.EncodeToString(secret))
		}
		require.Equal(t, v.Signature, mac, v.Name)
	}
	require.Positive(t, v1)
	require.Positive(t, legacy)
}
