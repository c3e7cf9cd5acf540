package transport_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/testdata"
	"github.com/lifenavigator/crossservice/transport"
)

// problemSeed is one HTTP error response of testdata/transport/problems.json.
type problemSeed struct {
	Name        string `json:"name"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	RetryAfter  string `json:"retry_after"`
	Body        string `json:"body"`
}

func loadProblemSeeds(tb testing.TB) []problemSeed {
	tb.Helper()
	b, err := testdata.Transport.ReadFile("transport/problems.json")
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		Comment   string        `json:"comment"`
		Responses []problemSeed `json:"responses"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		tb.Fatal(err)
	}
	if len(f.Responses) < 10 {
		tb.Fatalf("only %d problem seeds loaded from testdata/transport/problems.json", len(f.Responses))
	}
	return f.Responses
}

// The seeds of every code a verifier sends parse back to that code and its
// status.
func TestProblemSeeds(t *testing.T) {
	codes := 0
	for _, s := range loadProblemSeeds(t) {
		p, err := transport.ParseProblem(problemResponse(s.Status, s.ContentType, s.RetryAfter, []byte(s.Body)))
		if c := transport.Code(s.Name); c.Status() != 0 {
			codes++
			if err != nil || p.Code != c || p.Status != c.Status() || p.Status != s.Status {
				t.Errorf("%s: %+v, %v", s.Name, p, err)
			}
		}
	}
	if codes < 17 {
		t.Fatalf("only %d of the verifier's codes among the seeds", codes)
	}
}

// problemCountingReader counts what was read from it.
type problemCountingReader struct {
	r io.Reader
	n int64
}

func (c *problemCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func problemResponse(status int, ctype, retryAfter string, body []byte) *http.Response {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
}

// FuzzParseProblem feeds HTTP error responses to ParseProblem. It must
// never panic nor read more than MaxProblemSize bytes; a refusal is
// ErrNotProblem and never quotes the body; an accepted response has the
// problem media type and a body that encoding/json reads as a Problem, and
// the problem's status, code and Retry-After are the response's.
func FuzzParseProblem(f *testing.F) {
	for _, s := range loadProblemSeeds(f) {
		f.Add(s.Status, s.ContentType, s.RetryAfter, []byte(s.Body))
	}
	f.Fuzz(func(t *testing.T, status int, ctype, retryAfter string, body []byte) {
		resp := problemResponse(status, ctype, retryAfter, body)
		cr := &problemCountingReader{r: resp.Body.(io.Reader)}
		resp.Body = io.NopCloser(cr)
		ctype, retryAfter = resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After")
		p, err := transport.ParseProblem(resp)
		if cr.n > transport.MaxProblemSize {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			if !errors.Is(err, transport.ErrNotProblem) {
				t.Fatalf("refusal %v is not ErrNotProblem", err)
			}
			// The error may quote the Content-Type (as %q does): what is
			// left must not hold the body.
			shown := ctype
			if len(shown) > 64 {
				shown = shown[:64] + "..."
			}
			msg := strings.ReplaceAll(err.Error(), strconv.Quote(shown), "")
			if len(body) >= 8 && strings.Contains(msg, string(body)) {
				t.Fatalf("the error quotes the body: %v", err)
			}
			return
		}
		if mt, _, err := mime.ParseMediaType(ctype); err != nil || mt != transport.ProblemContentType {
			t.Fatalf("accepted Content-Type %q", ctype)
		}
		var want transport.Problem
		if err := json.Unmarshal(body[:min(len(body), transport.MaxProblemSize)], &want); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		if want.Status == 0 {
			want.Status = status
		}
		if p.Status != want.Status || p.Code != want.Code || p.Detail != want.Detail || p.RequestID != want.RequestID ||
			p.Type != want.Type || p.Title != want.Title {
			t.Fatalf("problem %+v, body says %+v", p, want)
		}
		if p.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %v", p.RetryAfter)
		}
		ra := strings.TrimSpace(retryAfter)
		if n, err := strconv.ParseUint(ra, 10, 31); err == nil && p.RetryAfter != time.Duration(n)*time.Second {
			t.Fatalf("Retry-After %q gave %v", retryAfter, p.RetryAfter)
		}
		if _, err := http.ParseTime(ra); err != nil && strings.Trim(ra, "+-0123456789") != "" && p.RetryAfter != 0 {
			t.Fatalf("Retry-After %q is neither seconds nor a date, gave %v", retryAfter, p.RetryAfter)
		}
		_ = p.Error()
	})
}

// seedKeyFiles returns the key files of testdata/transport/keyfiles, and
// fails when there are none.
func seedKeyFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	names, err := fs.Glob(testdata.Transport, "transport/keyfiles/*.json")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := testdata.Transport.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out[strings.TrimPrefix(n, "transport/keyfiles/")] = b
	}
	if len(out) < 5 {
		tb.Fatalf("only %d key files loaded from testdata/transport/keyfiles", len(out))
	}
	return out
}

// The seeds say what they are: refused-*.json are refused, the others parse.
func TestSeedKeyFiles(t *testing.T) {
	for name, b := range seedKeyFiles(t) {
		_, err := transport.ParseKeyFile(b)
		if strings.HasPrefix(name, "refused-") == (err == nil) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// keyFileStrings walks a JSON document leniently and returns the string
// values of members named secret or secret_base64 (at any depth), and every
// other string it holds (member names and values).
func keyFileStrings(data []byte) (secrets, others []string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var member string
	var inObject []bool // per open delimiter: is it an object
	expectName := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return secrets, others
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				inObject = append(inObject, true)
				expectName = true
			case '[':
				inObject = append(inObject, false)
				expectName = false
			default:
				if len(inObject) > 0 {
					inObject = inObject[:len(inObject)-1]
				}
				expectName = len(inObject) > 0 && inObject[len(inObject)-1]
			}
			continue
		case string:
			if expectName {
				member = v
				others = append(others, v)
				expectName = false
				continue
			}
			if member == "secret" || member == "secret_base64" {
				secrets = append(secrets, v)
			} else {
				others = append(others, v)
			}
		}
		expectName = len(inObject) > 0 && inObject[len(inObject)-1]
	}
}

// FuzzParseKeyFile parses mutated key files. It must never panic; a
// refusal is ErrInvalidConfig or ErrInvalidKey and never repeats a secret
// of the file; an accepted file gives one entry per entry of the file, in
// order, with its caller, target, id and retired flag, and a key that signs
// exactly as the file's secret does.
func FuzzParseKeyFile(f *testing.F) {
	for _, b := range seedKeyFiles(f) {
		f.Add(b)
	}
	c := transport.Components{Environment: transport.Production, Caller: "frontend", Target: "financial-api",
		Timestamp: "1767225600000", RequestID: "01a2281b-e3ab-7dcf-8db9-060c5fb4c713", Method: "POST",
		Path: "/v1/x", ContentType: "application/json", Body: []byte(`{}`)}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := transport.ParseKeyFile(data)
		if err != nil {
			if !errors.Is(err, transport.ErrInvalidConfig) && !errors.Is(err, transport.ErrInvalidKey) {
				t.Fatalf("refusal %v is neither ErrInvalidConfig nor ErrInvalidKey", err)
			}
			secrets, others := keyFileStrings(data)
			for _, s := range secrets {
				// Long, without spaces (so no phrase of an error
				// template), and not also a caller, id or member name,
				// which errors may name.
				if len(s) < 16 || strings.ContainsAny(s, " \t\n") || containsIn(others, s) {
					continue
				}
				if strings.Contains(err.Error(), s) || strings.Contains(err.Error(), strconv.Quote(s)) {
					t.Fatalf("the error repeats a secret: %v", err)
				}
			}
			return
		}
		var kf struct {
			Keys []struct {
				Caller, Target, ID string
				Secret             *string
				SecretBase64       *string `json:"secret_base64"`
				Retired            bool
			}
		}
		if err := json.Unmarshal(data, &kf); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if len(entries) != len(kf.Keys) || len(entries) == 0 {
			t.Fatalf("%d entries from %d", len(entries), len(kf.Keys))
		}
		for i, e := range entries {
			k := kf.Keys[i]
			if e.Caller != k.Caller || e.Target != k.Target || e.Key.ID() != k.ID || e.Retired != k.Retired {
				t.Fatalf("entry %d: %s/%s/%s/%v, the file says %s/%s/%s/%v", i, e.Caller, e.Target, e.Key.ID(), e.Retired,
					k.Caller, k.Target, k.ID, k.Retired)
			}
			var secret []byte
			switch {
			case k.Secret != nil && k.SecretBase64 == nil:
				secret = []byte(*k.Secret)
			case k.Secret == nil && k.SecretBase64 != nil:
				if secret, err = base64.StdEncoding.DecodeString(*k.SecretBase64); err != nil {
					t.Fatalf("entry %d: accepted secret_base64 that does not decode", i)
				}
			default:
				t.Fatalf("entry %d: accepted without exactly one secret", i)
			}
			want, err := transport.NewKey(k.ID, secret)
			if err != nil {
				t.Fatalf("entry %d: accepted a key NewKey refuses: %v", i, err)
			}
			c.KeyID = k.ID
			s1, err1 := c.Signature(e.Key)
			s2, err2 := c.Signature(want)
			if err1 != nil || err2 != nil || s1 != s2 {
				t.Fatalf("entry %d signs differently from its secret", i)
			}
		}
	})
}

func containsIn(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}
