package transport_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/lifenavigator/crossservice/transport"
)

// wireRequest is a request exactly as it goes on the wire: the test writes
// these bytes itself, so that a mutation reaches the verifier untouched by
// net/http's client.
type wireRequest struct {
	method, target string
	headers        [][2]string // in order; a name may repeat
	body           []byte
}

func (w *wireRequest) clone() *wireRequest {
	c := *w
	c.headers = append([][2]string(nil), w.headers...)
	c.body = bytes.Clone(w.body)
	return &c
}

func (w *wireRequest) get(name string) string {
	for _, h := range w.headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// set replaces the first header of that name ("" removes it), or adds it.
func (w *wireRequest) set(name, value string) {
	for i, h := range w.headers {
		if strings.EqualFold(h[0], name) {
			if value == "" {
				w.headers = append(w.headers[:i], w.headers[i+1:]...)
			} else {
				w.headers[i][1] = value
			}
			return
		}
	}
	if value != "" {
		w.headers = append(w.headers, [2]string{name, value})
	}
}

// send writes w to addr on a new connection and returns the status.
func (w *wireRequest) send(t testing.TB, addr string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: financial.internal\r\nConnection: close\r\n", w.method, w.target)
	for _, h := range w.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(w.body))
	b.Write(w.body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// signedWire signs a request with s and returns it as it goes on the wire.
func signedWire(t testing.TB, s *transport.Signer, method, target, ctype string, body []byte) *wireRequest {
	t.Helper()
	req, err := http.NewRequest(method, "http://financial.internal"+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if err := s.Sign(req); err != nil {
		t.Fatal(err)
	}
	w := &wireRequest{method: method, target: req.URL.EscapedPath(), body: body}
	if req.URL.RawQuery != "" {
		w.target += "?" + req.URL.RawQuery
	}
	for _, k := range []string{"Content-Type", transport.HeaderRequestID, transport.HeaderTimestamp,
		transport.HeaderServiceName, transport.HeaderKeyID, transport.HeaderSignature} {
		if v := req.Header.Get(k); v != "" {
			w.headers = append(w.headers, [2]string{k, v})
		}
	}
	return w
}

// reqGen makes random requests and mutations of them.
type reqGen struct{ r *rand.Rand }

func (g *reqGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *reqGen) word(alphabet string, min, max int) string {
	n := min + g.r.IntN(max-min+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func (g *reqGen) request() (method, target, ctype string, body []byte) {
	method = g.pick("GET", "POST", "PUT", "PATCH", "DELETE")
	target = "/v1"
	for range 1 + g.r.IntN(3) {
		target += "/" + g.word(alnum+"-._~", 1, 8)
		if g.r.IntN(3) == 0 {
			target += g.pick("%20", "%2F", "%C3%A9", "%25")
		}
	}
	if g.r.IntN(2) == 0 {
		var q []string
		for range 1 + g.r.IntN(3) {
			q = append(q, g.word(alnum, 1, 5)+"="+g.word(alnum+"%20", 0, 6))
		}
		target += "?" + strings.Join(q, "&")
	}
	ctype = g.pick("application/json", "application/vnd.xsvc.envelope+json", "text/plain; charset=utf-8", "")
	if g.r.IntN(4) != 0 {
		body = []byte(g.word(alnum+`{}":, `, 1, 200))
	}
	return method, target, ctype, body
}

// uuid returns a random version 4 UUID in canonical form.
func (g *reqGen) uuid() (string, error) {
	h := fmt.Sprintf("%016x%016x", g.r.Uint64(), g.r.Uint64())
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:], nil
}

// otherChar returns a different character of alnum.
func (g *reqGen) otherChar(c byte) byte {
	for {
		if d := alnum[g.r.IntN(len(alnum))]; d != c {
			return d
		}
	}
}

// changeAlnum changes one letter or digit of s, or appends one.
func (g *reqGen) changeAlnum(s string) string {
	var idx []int
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alnum, s[i]) >= 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return s + "x"
	}
	i := idx[g.r.IntN(len(idx))]
	return s[:i] + string(g.otherChar(s[i])) + s[i+1:]
}

// changeHex changes one hex digit of s (not the UUID version or variant).
func (g *reqGen) changeHex(s string) string {
	for {
		i := g.r.IntN(len(s))
		if s[i] == '-' || i == 14 || i == 19 {
			continue
		}
		d := "0123456789abcdef"[g.r.IntN(16)]
		if d != s[i] {
			return s[:i] + string(d) + s[i+1:]
		}
	}
}

// mutate changes exactly one signed component of w and names it.
func (g *reqGen) mutate(w *wireRequest) string {
	path, query, hasQuery := strings.Cut(w.target, "?")
	switch g.r.IntN(13) {
	case 0:
		orig := w.method
		for w.method == orig {
			w.method = g.pick("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get")
		}
		return "method"
	case 1:
		switch g.r.IntN(4) {
		case 0:
			path = g.changeAlnum(path)
		case 1:
			path += "/"
		case 2: // the same decoded path, escaped otherwise
			if i := strings.IndexAny(path[1:], "abcdefghijklmnopqrstuvwxyz"); i >= 0 {
				path = path[:i+1] + fmt.Sprintf("%%%02X", path[i+1]) + path[i+2:]
			} else {
				path += "a"
			}
		default: // the case of a percent escape, or an extra segment
			if i := strings.Index(path, "%2F"); i >= 0 {
				path = path[:i] + "%2f" + path[i+3:]
			} else {
				path += "/x"
			}
		}
		w.target = path
		if hasQuery {
			w.target += "?" + query
		}
		return "path"
	case 2:
		switch {
		case !hasQuery:
			w.target = path + "?" + g.word(alnum, 1, 4) + "=1"
		case g.r.IntN(3) == 0:
			w.target = path // query removed
		case g.r.IntN(2) == 0 && strings.Contains(query, "&") && !strings.HasPrefix(query, query[strings.Index(query, "&")+1:]):
			i := strings.Index(query, "&")
			w.target = path + "?" + query[i+1:] + "&" + query[:i] // reordered
		default:
			w.target = path + "?" + g.changeAlnum(query)
		}
		return "query"
	case 3:
		ct := w.get("Content-Type")
		switch {
		case ct == "":
			ct = "application/json"
		case g.r.IntN(3) == 0:
			ct = "" // removed
		case g.r.IntN(2) == 0:
			ct = strings.ToUpper(ct[:1]) + ct[1:]
		default:
			ct = g.changeAlnum(ct)
		}
		w.set("Content-Type", ct)
		return "content type"
	case 4:
		switch {
		case len(w.body) == 0:
			w.body = []byte("x")
		case g.r.IntN(3) == 0:
			w.body = w.body[:g.r.IntN(len(w.body))]
		case g.r.IntN(2) == 0:
			w.body = append(w.body, w.body[len(w.body)-1])
		default:
			w.body[g.r.IntN(len(w.body))] ^= byte(1 << g.r.IntN(8))
		}
		return "body"
	case 5:
		ts, _ := strconv.ParseInt(w.get(transport.HeaderTimestamp), 10, 64)
		d := 1 + g.r.Int64N(20_000)
		if g.r.IntN(2) == 0 {
			d = -d
		}
		w.set(transport.HeaderTimestamp, strconv.FormatInt(ts+d, 10))
		return "timestamp"
	case 6:
		w.set(transport.HeaderRequestID, g.changeHex(w.get(transport.HeaderRequestID)))
		return "request id"
	case 7:
		w.set(transport.HeaderKeyID, g.pick("f2", "f0", "a1", "f1x", "F1"))
		return "key id"
	case 8:
		w.set(transport.HeaderServiceName, g.pick("analytics-service", "legacy-gateway", "frontendx", "intruder"))
		return "caller"
	case 9:
		w.set(transport.HeaderSignature, g.changeHex(w.get(transport.HeaderSignature)))
		return "signature"
	case 10: // a signing header given twice, the second one different
		h := g.pick(transport.HeaderSignature, transport.HeaderTimestamp, transport.HeaderRequestID,
			transport.HeaderServiceName, transport.HeaderKeyID)
		w.headers = append(w.headers, [2]string{h, g.changeAlnum(w.get(h))})
		return "duplicate " + h
	case 11: // a signing header removed
		h := g.pick(transport.HeaderSignature, transport.HeaderTimestamp, transport.HeaderRequestID,
			transport.HeaderServiceName, transport.HeaderKeyID)
		w.set(h, "")
		return "missing " + h
	default: // the body replaced by one of another length
		w.body = append(w.body, []byte(g.word(alnum, 1, 10))...)
		return "body length"
	}
}

// verifierServer serves a verifier's Middleware over plain HTTP on
// loopback; swap replaces the verifier (and its limiter and store).
type verifierServer struct {
	srv  *httptest.Server
	h    atomic.Pointer[http.Handler]
	addr string
}

func newVerifierServer(t testing.TB) *verifierServer {
	vs := &verifierServer{}
	vs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*vs.h.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(vs.srv.Close)
	vs.addr = vs.srv.Listener.Addr().String()
	return vs
}

func (vs *verifierServer) swap(t testing.TB, cfg transport.Config) {
	t.Helper()
	v, err := transport.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	vs.h.Store(&h)
}

// Invariant: the verifier never admits a request in which any signed
// component differs from what was signed. Random requests, signed by a
// transport.Signer, each get one random component mutated on the wire
// (method, path, query, content type, body, timestamp, request id, key id,
// caller, signature, a header repeated or removed) and are sent to a real
// server: never 2xx. The unmutated request, sent afterwards with the same
// request id, is admitted.
func TestPropertyVerifierAdmitsOnlyWhatWasSigned(t *testing.T) {
	d := newDeployment(t)
	vs := newVerifierServer(t)
	vs.swap(t, d.config(fixedClock(t0)))
	g := &reqGen{r: rand.New(rand.NewPCG(2026, 11))}
	n := 300
	if testing.Short() {
		n = 60
	}
	mutated := map[string]int{}
	for i := range n {
		skew := time.Duration(g.r.IntN(20_000)-10_000) * time.Millisecond
		s, err := transport.NewSigner(transport.SignerConfig{Caller: "frontend", Target: "financial-api",
			Environment: transport.Production, Key: d.frontend1, Clock: fixedClock(t0.Add(skew)), RequestID: g.uuid})
		if err != nil {
			t.Fatal(err)
		}
		method, target, ctype, body := g.request()
		orig := signedWire(t, s, method, target, ctype, body)
		bad := orig.clone()
		what := g.mutate(bad)
		mutated[what]++
		if code := bad.send(t, vs.addr); code < 300 {
			t.Fatalf("request %d: the verifier admitted (%d) a request whose %s was changed after signing:\n%+v\nsigned:\n%+v",
				i, code, what, bad, orig)
		}
		if code := orig.send(t, vs.addr); code != 200 {
			t.Fatalf("request %d: the signed request was refused (%d) after a refused copy with its %s changed:\n%+v", i, code, what, orig)
		}
	}
	t.Logf("%d requests, mutations: %v", n, mutated)
	for _, c := range []string{"method", "path", "query", "content type", "body", "timestamp", "request id", "key id",
		"caller", "signature"} {
		if mutated[c] == 0 {
			t.Errorf("no mutation of the %s was tried", c)
		}
	}
}

// refusal makes a request the verifier refuses before (or at) its
// signature check, from the valid request w.
type refusal struct {
	name string
	code int
	make func(w *wireRequest)
}

var earlyRefusals = []refusal{
	{"bad signature", 401, func(w *wireRequest) {
		s := []byte(w.get(transport.HeaderSignature))
		if s[0] == '0' {
			s[0] = '1'
		} else {
			s[0] = '0'
		}
		w.set(transport.HeaderSignature, string(s))
	}},
	{"tampered body", 401, func(w *wireRequest) { w.body = append(w.body, '!') }},
	{"stale", 401, func(w *wireRequest) {
		ts, _ := strconv.ParseInt(w.get(transport.HeaderTimestamp), 10, 64)
		w.set(transport.HeaderTimestamp, strconv.FormatInt(ts-6*60*1000, 10))
	}},
	{"unknown key id", 401, func(w *wireRequest) { w.set(transport.HeaderKeyID, "zz") }},
	{"retired key id", 401, func(w *wireRequest) { w.set(transport.HeaderKeyID, "f0") }},
	{"other caller", 401, func(w *wireRequest) { w.set(transport.HeaderServiceName, "analytics-service") }},
	{"unknown caller", 401, func(w *wireRequest) { w.set(transport.HeaderServiceName, "nobody") }},
	{"body too large", 413, func(w *wireRequest) { w.body = bytes.Repeat([]byte("x"), 5<<10) }},
	{"malformed timestamp", 400, func(w *wireRequest) { w.set(transport.HeaderTimestamp, "soon") }},
}

// Invariant: a refused request changes no state of the replay store. For
// every refusal that happens at or before the signature check, the store
// holds no more entries than before, and the same request id with a
// correct signature is then admitted (and only once).
func TestPropertyRefusedRequestDoesNotConsumeItsID(t *testing.T) {
	d := newDeployment(t)
	vs := newVerifierServer(t)
	store, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{Clock: fixedClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.config(fixedClock(t0))
	cfg.ReplayStore = store
	vs.swap(t, cfg)
	g := &reqGen{r: rand.New(rand.NewPCG(7, 7))}
	s := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", fixedClock(t0))
	for i := range 120 {
		method, target, ctype, body := g.request()
		w := signedWire(t, s, method, target, ctype, body)
		before := store.Len()
		for range 1 + g.r.IntN(3) {
			rf := earlyRefusals[g.r.IntN(len(earlyRefusals))]
			bad := w.clone()
			rf.make(bad)
			if code := bad.send(t, vs.addr); code != rf.code {
				t.Fatalf("request %d, %s: status %d, want %d", i, rf.name, code, rf.code)
			}
			if store.Len() != before {
				t.Fatalf("request %d: a refused request (%s) was recorded in the replay store", i, rf.name)
			}
		}
		if code := w.send(t, vs.addr); code != 200 {
			t.Fatalf("request %d: refused (%d) after refused copies of it", i, code)
		}
		if store.Len() != before+1 {
			t.Fatalf("request %d: the admitted request was not recorded", i)
		}
		if code := w.send(t, vs.addr); code != 401 {
			t.Fatalf("request %d: the replay was not refused: %d", i, code)
		}
	}
}

// Invariant: refused requests do not spend the caller's tokens. A caller
// with a burst of N (and no refill during the test) gets exactly N
// requests admitted and the next one 429, however many of its requests are
// refused in between for a bad signature, a stale timestamp or a replay.
func TestPropertyRefusedRequestsSpendNoTokens(t *testing.T) {
	d := newDeployment(t)
	vs := newVerifierServer(t)
	r := rand.New(rand.NewPCG(3, 5))
	g := &reqGen{r: r}
	s := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", fixedClock(t0))
	stale := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", fixedClock(t0.Add(-10*time.Minute)))
	for c := range 40 {
		burst := 1 + r.IntN(5)
		lim, err := transport.NewMemoryLimiter(transport.MemoryLimiterConfig{
			Default: transport.Rate{Limit: rate.Every(time.Hour), Burst: burst}, Clock: fixedClock(t0)})
		if err != nil {
			t.Fatal(err)
		}
		cfg := d.config(fixedClock(t0))
		cfg.Limiter = lim
		vs.swap(t, cfg)
		var admitted []*wireRequest
		refusals := r.IntN(10)
		valid := 0
		for valid <= burst {
			if refusals > 0 && r.IntN(2) == 0 {
				refusals--
				method, target, ctype, body := g.request()
				var bad *wireRequest
				want := 401
				switch k := r.IntN(3); {
				case k == 0:
					bad = signedWire(t, s, method, target, ctype, body)
					earlyRefusals[0].make(bad)
				case k == 1 || len(admitted) == 0:
					bad = signedWire(t, stale, method, target, ctype, body)
				default:
					bad = admitted[r.IntN(len(admitted))] // a replay
				}
				if code := bad.send(t, vs.addr); code != want {
					t.Fatalf("case %d: a refusal got %d, want %d", c, code, want)
				}
				continue
			}
			valid++
			method, target, ctype, body := g.request()
			w := signedWire(t, s, method, target, ctype, body)
			code := w.send(t, vs.addr)
			switch {
			case valid <= burst && code != 200:
				t.Fatalf("case %d (burst %d): valid request %d got %d after refusals", c, burst, valid, code)
			case valid > burst && code != 429:
				t.Fatalf("case %d (burst %d): request %d got %d, want 429", c, burst, valid, code)
			}
			if code == 200 {
				admitted = append(admitted, w)
			}
		}
	}
}
