package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

func init() {
	register("sign", "sign a request and print its headers (or a curl command)", signCmd)
	register("verify", "check a signed request against a key, as the verifier would", verifyCmd)
}

const signHelp = `
The key comes from --key-file (a signing-key file, encrypted under the master
key or plain with mode 0600; --key-id picks the key, else the one active key for
the caller and target), or else from the environment as the library reads it:
<TARGET>_API_KEY, then INTERNAL_API_KEY, with the id from the matching _ID
variable (default "env"). The environment (development, staging, production)
comes from --env or APP_ENV.

--explain prints the canonical string line by line, numbered and named, and its
canonical_sha256: the value a verifier logs on a signature mismatch. Run it on
both sides with the same --timestamp and --request-id to see where they differ.`

// requestFlags are the flags that describe a request.
type requestFlags struct {
	method, rawURL, body, contentType string
	caller, target, envName           string
	keyFile, keyID                    string
	scheme                            string
	explain                           bool
	keyFlags
}

func (r *requestFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	r.keyFlags.register(fs)
	fs.StringVar(&r.method, "method", "GET", "HTTP method, uppercase as on the wire")
	fs.StringVar(&r.rawURL, "url", "", "request URL, or only its path and query (required)")
	fs.StringVar(&r.body, "body", "", "file holding the exact body bytes (- for standard input; default: empty body)")
	fs.StringVar(&r.contentType, "content-type", "", "Content-Type header value")
	fs.StringVar(&r.caller, "caller", "", "calling service, X-Service-Name (default $SERVICE_NAME)")
	fs.StringVar(&r.target, "target", "", "called service (required for v1: it is signed)")
	fs.StringVar(&r.envName, "env", "", "environment: development, staging or production (default $APP_ENV)")
	fs.StringVar(&r.keyFile, "key-file", "", "signing-key file (default: keys from the environment)")
	fs.StringVar(&r.keyID, "key-id", "", "key id to use from --key-file")
	fs.StringVar(&r.scheme, "scheme", "v1", "v1 or legacy (the original algorithm)")
	fs.BoolVar(&r.explain, "explain", false, "print the canonical string line by line and its canonical_sha256")
}

func (r *requestFlags) environment(e *env) (transport.Environment, error) {
	v := r.envName
	if v == "" {
		var ok bool
		if v, ok = e.lookup(transport.EnvAppEnv); !ok || v == "" {
			return "", fail("missing environment variable "+transport.EnvAppEnv,
				"set APP_ENV=development|staging|production as the verifier has it, or pass --env")
		}
	}
	env, err := transport.ParseEnvironment(v)
	if err != nil {
		return "", usage(fmt.Sprintf("environment %q is not development, staging or production", v), "fix --env or APP_ENV")
	}
	return env, nil
}

func (r *requestFlags) schemeValue() (transport.Scheme, error) {
	switch r.scheme {
	case "", "v1", string(transport.SchemeV1):
		return transport.SchemeV1, nil
	case "legacy":
		return transport.SchemeLegacy, nil
	}
	return "", usage("--scheme must be v1 or legacy", "")
}

func (r *requestFlags) callerName(e *env) (string, error) {
	if r.caller == "" {
		r.caller, _ = e.lookup("SERVICE_NAME")
	}
	if r.caller == "" {
		return "", usage("--caller is required", "or set SERVICE_NAME")
	}
	return r.caller, nil
}

// readBody returns the body bytes.
func (r *requestFlags) readBody(e *env) ([]byte, error) {
	if r.body == "" {
		return nil, nil
	}
	return readInput(e, r.body, "body")
}

// parseURL accepts an absolute URL or an origin-form path and query.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme == "" && !strings.HasPrefix(raw, "/")) || u.Opaque != "" {
		return nil, usage(fmt.Sprintf("--url %q is neither an absolute URL nor a path", raw), "such as https://host:8443/v1/accounts?x=1 or /v1/accounts")
	}
	if u.Scheme == "" {
		u.Scheme, u.Host = "http", "target.invalid"
	}
	return u, nil
}

// keySource says where a signing key came from, for hints.
type keySource struct {
	key      transport.Key
	variable string // the environment variable, or ""
	file     string
}

func (s keySource) String() string {
	if s.file != "" {
		return "key file " + s.file
	}
	return s.variable
}

// signingKey finds the key to sign with from --key-file or the environment.
func (r *requestFlags) signingKey(e *env, caller, target string) (keySource, error) {
	if r.keyFile != "" {
		kf, err := r.readKeyFile(e, r.keyFile, "key file", true)
		if err != nil {
			return keySource{}, err
		}
		if kf.kind != kindHMAC {
			return keySource{}, fail(r.keyFile+" is a "+kf.kind+" keyset, not a signing-key file", "xsvc key generate --type hmac")
		}
		if r.keyID != "" {
			var found []transport.KeyEntry
			for _, en := range kf.entries {
				if en.Caller == caller && en.Key.ID() == r.keyID && (en.Target == "" || en.Target == target) {
					found = append(found, en)
				}
			}
			if len(found) == 0 {
				return keySource{}, fail(fmt.Sprintf("no key %q for caller %s in %s", r.keyID, caller, r.keyFile), "see xsvc key list --file "+r.keyFile)
			}
			return keySource{key: found[0].Key, file: r.keyFile}, nil
		}
		k, err := transport.SigningKey(kf.entries, caller, target)
		if err != nil {
			return keySource{}, fail(fmt.Sprintf("no single active key for %s -> %s in %s", caller, target, r.keyFile),
				"pick one with --key-id (see xsvc key list)")
		}
		return keySource{key: k, file: r.keyFile}, nil
	}
	if target == "" {
		return keySource{}, usage("--target is required", "the called service")
	}
	k, err := transport.TargetKeyFromEnv(e.lookup, target)
	var me *transport.MissingEnvError
	switch {
	case errors.As(err, &me):
		return keySource{}, fail("missing environment variable "+strings.Join(me.Names, " or "),
			"set it to the key shared with the verifier, or pass --key-file")
	case err != nil:
		return keySource{}, fail(oneLine(err.Error()), "keys are at least 32 bytes")
	}
	variable := transport.EnvPrefix(target) + "_API_KEY"
	if v, ok := e.lookup(variable); !ok || v == "" {
		variable = transport.EnvInternalAPIKey
	}
	return keySource{key: k, variable: variable}, nil
}

// components rebuilds what a signature covers from a signed request.
func components(req *http.Request, env transport.Environment, target string, scheme transport.Scheme, body []byte) transport.Components {
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	return transport.Components{
		Scheme: scheme, Environment: env,
		Caller: req.Header.Get(transport.HeaderServiceName), Target: target, KeyID: req.Header.Get(transport.HeaderKeyID),
		Timestamp: req.Header.Get(transport.HeaderTimestamp), RequestID: req.Header.Get(transport.HeaderRequestID),
		Method: req.Method, Path: path, Query: req.URL.RawQuery,
		ContentType: strings.TrimSpace(req.Header.Get("Content-Type")), Body: body,
	}
}

var v1Names = []string{"scheme", "environment", "caller", "target", "key id", "timestamp", "request id",
	"method", "path", "query", "content type", "body sha256"}

// explain prints the canonical string of c, one numbered and named line per
// component, and its canonical_sha256.
func explain(w io.Writer, c transport.Components) error {
	canon, err := c.Canonical()
	if err != nil {
		return fail("the request cannot be signed: "+oneLine(err.Error()), "remove control characters; the method must be uppercase")
	}
	fmt.Fprintf(w, "canonical string (%s), one line per component:\n", c.Scheme)
	lines := strings.Split(string(canon), "\n")
	for i, l := range lines {
		name := "body"
		switch {
		case c.Scheme != transport.SchemeLegacy && i < len(v1Names):
			name = v1Names[i]
		case c.Scheme == transport.SchemeLegacy && i < 3:
			name = []string{"method", "request path", "timestamp"}[i]
		}
		fmt.Fprintf(w, "%3d  %-13s %s\n", i+1, name, strconv.Quote(l)[1:len(strconv.Quote(l))-1])
	}
	fmt.Fprintf(w, "canonical_sha256: %s  (a verifier logs this on a signature mismatch)\n", transport.CanonicalHash(canon))
	return nil
}

func signCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "sign", "--url URL --caller SERVICE --target SERVICE [flags]", `
Signs a request as the library's signer does and prints its headers, one
"Name: value" per line (or, with --curl, a curl command line that sends it).
The output holds the signature: that is its purpose. --timestamp and
--request-id fix those values, to reproduce a request seen elsewhere.
`+signHelp)
	var r requestFlags
	r.register(fs)
	curl := fs.Bool("curl", false, "print a curl command line instead of the headers")
	ts := fs.Int64("timestamp", 0, "X-Timestamp in Unix milliseconds (default: now)")
	rid := fs.String("request-id", "", "X-Request-ID (default: a fresh UUIDv7)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "url"); err != nil {
		return err
	}
	scheme, err := r.schemeValue()
	if err != nil {
		return err
	}
	caller, err := r.callerName(e)
	if err != nil {
		return err
	}
	if r.target == "" {
		return usage("--target is required", "the called service (v1 signs its name)")
	}
	env, err := r.environment(e)
	if err != nil {
		return err
	}
	u, err := parseURL(r.rawURL)
	if err != nil {
		return err
	}
	body, err := r.readBody(e)
	if err != nil {
		return err
	}
	ks, err := r.signingKey(e, caller, r.target)
	if err != nil {
		return err
	}
	cfg := transport.SignerConfig{Caller: caller, Target: r.target, Environment: env, Key: ks.key, Scheme: scheme}
	if *ts != 0 {
		at := time.UnixMilli(*ts)
		cfg.Clock = func() time.Time { return at }
	}
	if *rid != "" {
		id := *rid
		cfg.RequestID = func() (string, error) { return id, nil }
	}
	signer, err := transport.NewSigner(cfg)
	if err != nil {
		return usage(oneLine(err.Error()), "check --caller, --target and the key")
	}
	req, err := http.NewRequest(r.method, u.String(), bytes.NewReader(body))
	if err != nil {
		return usage("cannot build the request: "+oneLine(err.Error()), "check --method and --url")
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if err := signer.Sign(req); err != nil {
		return fail("cannot sign: "+oneLine(err.Error()), "remove control characters; the method must be an uppercase token; a v1 request id is a lowercase UUID")
	}
	names := []string{transport.HeaderRequestID, transport.HeaderTimestamp, transport.HeaderServiceName, transport.HeaderKeyID, transport.HeaderSignature}
	if r.contentType != "" {
		names = append(names, "Content-Type")
	}
	if *curl {
		var b strings.Builder
		b.WriteString("curl -sS -X " + shellQuote(r.method))
		for _, n := range names {
			if v := req.Header.Get(n); v != "" {
				b.WriteString(" -H " + shellQuote(n+": "+v))
			}
		}
		switch {
		case r.body == "-":
			b.WriteString(" --data-binary @-")
		case r.body != "":
			b.WriteString(" --data-binary " + shellQuote("@"+r.body))
		}
		b.WriteString(" " + shellQuote(u.String()))
		fmt.Fprintln(e.stdout, b.String())
	} else {
		for _, n := range names {
			if v := req.Header.Get(n); v != "" {
				fmt.Fprintf(e.stdout, "%s: %s\n", n, v)
			}
		}
	}
	if r.explain {
		fmt.Fprintln(e.stdout)
		return explain(e.stdout, components(req, env, r.target, scheme, body))
	}
	return nil
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=@,+", c))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func verifyCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify", "--url URL --target SERVICE (--headers FILE | --header 'Name: value'...) [flags]", `
Checks a signed request against a key by running it through the library's
verifier (as --target, in --env), and says what the verifier answers: the
problem code, the check that failed, the measured clock skew and, on a signature
mismatch, the canonical_sha256 it logs, to compare with the caller's (xsvc sign
--explain). The headers come from --headers (a file of "Name: value" lines,
such as the output of xsvc sign) and/or --header; the body from --body.

The verifier's key for the caller comes from --key-file (a signing-key file),
or else from the environment as the verifier reads it: <CALLER>_API_KEY, then
INTERNAL_API_KEY (ids from the _ID variables). Exit code 0 when the request
would be accepted, 1 when it would be refused.
`+signHelp)
	var r requestFlags
	r.register(fs)
	var headerLines listFlag
	fs.Var(&headerLines, "header", "a request header \"Name: value\" (repeatable)")
	headersFile := fs.String("headers", "", "file of \"Name: value\" lines (- for standard input)")
	legacyCaller := fs.Bool("legacy-caller", false, "register the caller for the legacy scheme, as the verifier would")
	offset := fs.Duration("clock-offset", 0, "(hidden) shift this machine's clock, for tests")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "url", "target"); err != nil {
		return err
	}
	env, err := r.environment(e)
	if err != nil {
		return err
	}
	u, err := parseURL(r.rawURL)
	if err != nil {
		return err
	}
	if *headersFile == "-" && r.body == "-" {
		return usage("--headers and --body cannot both be standard input", "put one of them in a file")
	}
	hdr := http.Header{}
	if *headersFile != "" {
		data, err := readInput(e, *headersFile, "headers file")
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				break // the end of a header block (xsvc sign --explain output follows)
			}
			headerLines = append(headerLines, line)
		}
	}
	for _, l := range headerLines {
		name, value, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return usage(fmt.Sprintf("header %q is not \"Name: value\"", l), "")
		}
		hdr.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	caller := hdr.Get(transport.HeaderServiceName)
	if caller == "" {
		return usage("the request has no "+transport.HeaderServiceName+" header", "give the headers the caller sent (--headers or --header)")
	}
	if r.contentType != "" {
		hdr.Set("Content-Type", r.contentType)
	}
	body, err := r.readBody(e)
	if err != nil {
		return err
	}
	var entries []transport.KeyEntry
	var keyWhere string
	if r.keyFile != "" {
		kf, err := r.readKeyFile(e, r.keyFile, "key file", true)
		if err != nil {
			return err
		}
		if kf.kind != kindHMAC {
			return fail(r.keyFile+" is a "+kf.kind+" keyset, not a signing-key file", "")
		}
		entries, keyWhere = kf.entries, "key file "+r.keyFile
	} else {
		entries, err = transport.CallerKeysFromEnv(e.lookup, caller)
		var me *transport.MissingEnvError
		switch {
		case errors.As(err, &me):
			return fail("missing environment variable "+strings.Join(me.Names, " or "),
				"set it to the caller's key as the verifier has it, or pass --key-file")
		case err != nil:
			return fail(oneLine(err.Error()), "")
		}
		keyWhere = transport.EnvPrefix(caller) + "_API_KEY or " + transport.EnvInternalAPIKey
	}
	var logBuf bytes.Buffer
	cfg := transport.Config{
		Service: r.target, Environment: env, Keys: entries,
		Logger: slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:  func() time.Time { return time.Now().Add(*offset) },
	}
	if *legacyCaller {
		cfg.LegacyCallers = []string{caller}
	}
	v, err := transport.New(cfg)
	if err != nil {
		return fail("cannot build a verifier: "+oneLine(err.Error()), "the caller "+caller+" needs a key in "+keyWhere)
	}
	req := httptest.NewRequest(r.method, u.String(), bytes.NewReader(body))
	req.RemoteAddr = "127.0.0.1:1" // loopback: the transport rule is not what is checked here
	req.Header = hdr
	rec := httptest.NewRecorder()
	v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })).ServeHTTP(rec, req)

	logged := lastLog(logBuf.Bytes())
	scheme := transport.SchemeV1
	if hdr.Get(transport.HeaderKeyID) == "" {
		scheme = transport.SchemeLegacy
	}
	if r.explain {
		c := components(req, env, r.target, scheme, body)
		c.Caller, c.KeyID = caller, hdr.Get(transport.HeaderKeyID)
		if err := explain(e.stdout, c); err != nil {
			fmt.Fprintln(e.stdout, "(the canonical string cannot be built: "+err.Error()+")")
		}
		fmt.Fprintln(e.stdout)
	}
	if rec.Code == http.StatusNoContent {
		fmt.Fprintf(e.stdout, "verdict: accepted (caller %s, key %s, %s)\n", caller, hdr.Get(transport.HeaderKeyID), scheme)
		return nil
	}
	p, perr := transport.ParseProblem(rec.Result())
	code := "unknown"
	if perr == nil {
		code = string(p.Code)
	}
	fmt.Fprintf(e.stdout, "verdict: refused, %d %s\n", rec.Code, code)
	if c := logged["check"]; c != "" {
		fmt.Fprintf(e.stdout, "check: %s\n", c)
	}
	if s := logged["skew_ms"]; s != "" {
		fmt.Fprintf(e.stdout, "skew_ms: %s  (positive: the request is older than this machine's clock)\n", s)
	}
	if h := logged["canonical_sha256"]; h != "" {
		fmt.Fprintf(e.stdout, "canonical_sha256: %s  (the verifier's; compare with xsvc sign --explain on the caller's side)\n", h)
	}
	if b := logged["body_bytes"]; b != "" {
		fmt.Fprintf(e.stdout, "body_bytes: %s  (the body the verifier hashed)\n", b)
	}
	hint := "see SPEC.md part 2 section 13, " + code
	switch transport.Code(code) {
	case transport.CodeSignatureInvalid:
		hint = fmt.Sprintf("either the request differs from what was signed, or key %q of caller %s in %s is not the caller's: "+
			"compare canonical_sha256 %s with the caller's xsvc sign --explain (different: the numbered lines show where; equal: the body or the key differs)",
			hdr.Get(transport.HeaderKeyID), caller, keyWhere, logged["canonical_sha256"])
		if c := logged["check"]; c == "key_unknown" || c == "key_retired" || c == "caller_unknown" {
			hint = fmt.Sprintf("%s: key %q of caller %s in %s (see xsvc key list)", strings.ReplaceAll(c, "_", " "),
				hdr.Get(transport.HeaderKeyID), caller, keyWhere)
		}
	case transport.CodeTimestampOutOfWindow:
		hint = "the clocks differ by " + logged["skew_ms"] + " ms, more than the window (5 minutes by default): fix NTP; X-Timestamp is Unix milliseconds"
	}
	return fail("the verifier refuses the request: "+code, hint)
}

// lastLog returns the string attributes of the last JSON log line.
func lastLog(b []byte) map[string]string {
	out := map[string]string{}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) == 0 {
		return out
	}
	var m map[string]any
	if json.Unmarshal(lines[len(lines)-1], &m) != nil {
		return out
	}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return out
}
