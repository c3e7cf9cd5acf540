package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

func init() {
	register("probe", "call a service's endpoint signed, and explain the verdict (reachability, TLS, skew)", probeCmd)
}

// envClockOffset shifts probe's clock, for tests (like --clock-offset).
const envClockOffset = "XSVC_CLOCK_OFFSET"

// probeReport is what probe measured.
type probeReport struct {
	url                  *url.URL
	addr                 string
	dns, connect, tlsDur time.Duration
	tlsState             *tls.ConnectionState
	latency              time.Duration
	status               int
	problem              *transport.Problem
	skew                 time.Duration // server Date minus this machine's clock
	haveSkew             bool
	canonicalHash        string
	requestID            string
}

func probeCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "probe", "--from SERVICE --to SERVICE --endpoint PATH [flags]", `
The original test utility (--from=frontend --to=financial-api
--endpoint=/health-check): sends one signed request from --from to --to, over
TLS 1.3, configured by the same environment variables as the library, and
reports the address, DNS, connect and TLS handshake times, the TLS version and
cipher suite, the latency, the HTTP status, the verifier's verdict and problem
code, the clock skew measured from the server's Date header, and for each of
the four troubleshooting cases (signature verification failed, timestamp too
old, service not authorized, network timeout or refusal) a concrete hint.

Configuration:
  APP_ENV                    the environment (signed by v1; must be the server's)
  <TO>_API_URL               the base URL of --to (FINANCIAL_API_URL for
                             financial-api), unless --url is given
  <TO>_API_KEY, INTERNAL_API_KEY and their _ID variables
                             the signing key, unless --key-file is given
  XSVC_CA_FILE               the CA bundle that signed the server's certificate
                             (xsvc certs dev writes ca.pem), unless --ca-file
  XSVC_CLOCK_OFFSET          shift this machine's clock (a Go duration such as
                             -10m), to rehearse a skewed clock

Exit code 0 when the endpoint answers 2xx, 1 otherwise.
`)
	var r requestFlags
	r.keyFlags.register(fs)
	from := fs.String("from", "", "calling service (default $SERVICE_NAME)")
	to := fs.String("to", "", "called service (required)")
	endpoint := fs.String("endpoint", "/health-check", "path (and query) to call")
	method := fs.String("method", "GET", "HTTP method")
	rawURL := fs.String("url", "", "base URL of --to (default $<TO>_API_URL)")
	caFile := fs.String("ca-file", "", "PEM CA bundle for the server certificate (default $XSVC_CA_FILE, else the system roots)")
	certFile := fs.String("cert", "", "client certificate (PEM) for mutual TLS")
	keyFile := fs.String("key", "", "client certificate key (PEM) for mutual TLS")
	fs.StringVar(&r.keyFile, "key-file", "", "signing-key file (default: keys from the environment)")
	fs.StringVar(&r.keyID, "key-id", "", "key id to use from --key-file")
	fs.StringVar(&r.envName, "env", "", "environment (default $APP_ENV)")
	timeout := fs.Duration("timeout", 5*time.Second, "time allowed for the whole probe")
	offset := fs.Duration("clock-offset", 0, "(hidden) shift this machine's clock, for tests")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" {
		*from, _ = e.lookup("SERVICE_NAME")
	}
	if *from == "" {
		return usage("--from is required", "the calling service, or set SERVICE_NAME")
	}
	if err := required(fs, "to"); err != nil {
		return err
	}
	if *offset == 0 {
		if v, ok := e.lookup(envClockOffset); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return usage(envClockOffset+" is not a duration", "such as -10m or 30s")
			}
			*offset = d
		}
	}
	prefix := transport.EnvPrefix(*to)
	if prefix == "" {
		return usage(fmt.Sprintf("--to %q is not a service name", *to), "lowercase letters, digits and single hyphens")
	}
	env, err := r.environment(e)
	if err != nil {
		return err
	}
	base := *rawURL
	if base == "" {
		v, ok := e.lookup(prefix + "_API_URL")
		if !ok || v == "" {
			return fail("missing environment variable "+prefix+"_API_URL", "set it to the base URL of "+*to+", such as https://localhost:8443, or pass --url")
		}
		base = v
	}
	bu, err := url.Parse(base)
	if err != nil || bu.Host == "" || (bu.Scheme != "https" && bu.Scheme != "http") {
		return fail(fmt.Sprintf("base URL %q of %s is not an http(s) URL with a host", base, *to), "fix "+prefix+"_API_URL or --url")
	}
	ep, err := url.Parse(*endpoint)
	if err != nil || ep.Scheme != "" || ep.Host != "" {
		return usage(fmt.Sprintf("--endpoint %q is not a path", *endpoint), "such as /health-check")
	}
	target := bu.ResolveReference(&url.URL{Path: strings.TrimSuffix(bu.Path, "/") + "/" + strings.TrimPrefix(ep.Path, "/"), RawQuery: ep.RawQuery})
	ks, err := r.signingKey(e, *from, *to)
	if err != nil {
		return err
	}
	if ks.variable != "" {
		id := "env (default)"
		if v, ok := e.lookup(ks.variable + "_ID"); ok && v != "" {
			id = v
		}
		ks.variable += " (key id " + id + ", from " + ks.variable + "_ID)"
	}

	// TLS: CA pool and optional client certificate.
	var pool *x509.CertPool
	if *caFile == "" {
		*caFile, _ = e.lookup("XSVC_CA_FILE")
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fileError(err, "CA file", *caFile)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fail("CA file "+*caFile+" holds no PEM certificate", "give the ca.pem that xsvc certs dev wrote")
		}
	}
	var clientCert *tls.Certificate
	if *certFile != "" || *keyFile != "" {
		c, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fail("client certificate: "+oneLine(err.Error()), "give --cert and --key, PEM files that belong together")
		}
		clientCert = &c
	}
	tlsCfg, err := transport.ClientTLSConfig(pool, clientCert)
	if err != nil {
		return fail(oneLine(err.Error()), "")
	}
	clock := func() time.Time { return time.Now().Add(*offset) }
	signer, err := transport.NewSigner(transport.SignerConfig{Caller: *from, Target: *to, Environment: env, Key: ks.key, Clock: clock})
	if err != nil {
		return usage(oneLine(err.Error()), "check --from and --to")
	}

	rep := &probeReport{url: target, addr: bu.Host}
	if bu.Port() == "" {
		if bu.Scheme == "https" {
			rep.addr = net.JoinHostPort(bu.Hostname(), "443")
		} else {
			rep.addr = net.JoinHostPort(bu.Hostname(), "80")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var dnsStart, connStart, tlsStart time.Time
	var firstByte time.Time
	var phase = "dns"
	trace := &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { dnsStart = time.Now() },
		DNSDone:           func(httptrace.DNSDoneInfo) { rep.dns = time.Since(dnsStart) },
		ConnectStart:      func(_, _ string) { connStart, phase = time.Now(), "connect" },
		ConnectDone:       func(_, _ string, err error) { rep.connect = time.Since(connStart) },
		TLSHandshakeStart: func() { tlsStart, phase = time.Now(), "tls" },
		TLSHandshakeDone: func(st tls.ConnectionState, err error) {
			rep.tlsDur = time.Since(tlsStart)
			if err == nil {
				rep.tlsState = &st
			}
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { phase = "response" },
		GotFirstResponseByte: func() { firstByte = time.Now() },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), *method, target.String(), http.NoBody)
	if err != nil {
		return usage("cannot build the request: "+oneLine(err.Error()), "check --method and --endpoint")
	}
	if err := signer.Sign(req); err != nil {
		return fail("cannot sign: "+oneLine(err.Error()), "check --endpoint and --method")
	}
	rep.requestID = req.Header.Get(transport.HeaderRequestID)
	comps := components(req, env, *to, transport.SchemeV1, nil)
	if canon, err := comps.Canonical(); err == nil {
		rep.canonicalHash = transport.CanonicalHash(canon)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   tlsCfg,
		DialContext:       (&net.Dialer{Timeout: *timeout}).DialContext,
		DisableKeepAlives: true,
		Proxy:             nil,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		printReport(e.stdout, rep, *from, *to)
		what, hint := networkHint(err, phase, rep, prefix, *timeout)
		fmt.Fprintf(e.stdout, "verdict:   unreachable\nhint:      %s\n", hint)
		return fail(what, hint)
	}
	defer resp.Body.Close()
	if firstByte.IsZero() {
		firstByte = time.Now()
	}
	rep.latency = firstByte.Sub(start)
	rep.status = resp.StatusCode
	if d := resp.Header.Get("Date"); d != "" {
		if t, err := http.ParseTime(d); err == nil {
			// Date has one-second resolution: round this machine's time the same way.
			local := firstByte.Add(*offset).Truncate(time.Second)
			rep.skew, rep.haveSkew = t.Sub(local), true
		}
	}
	if resp.StatusCode >= 400 {
		if p, err := transport.ParseProblem(resp); err == nil {
			rep.problem = p
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	printReport(e.stdout, rep, *from, *to)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		fmt.Fprintf(e.stdout, "verdict:   accepted (%d %s)\n", resp.StatusCode, http.StatusText(resp.StatusCode))
		return nil
	}
	code := "none (not a problem document)"
	if rep.problem != nil {
		code = string(rep.problem.Code)
	}
	fmt.Fprintf(e.stdout, "verdict:   refused (%d %s), problem code %s\n", resp.StatusCode, http.StatusText(resp.StatusCode), code)
	what, hint := problemHint(rep, ks, *from, *to, env)
	fmt.Fprintf(e.stdout, "hint:      %s\n", hint)
	return fail(what, hint)
}

func printReport(w io.Writer, rep *probeReport, from, to string) {
	fmt.Fprintf(w, "probe:     %s -> %s  %s\n", from, to, rep.url)
	fmt.Fprintf(w, "address:   %s\n", rep.addr)
	if rep.dns > 0 {
		fmt.Fprintf(w, "dns:       %s\n", round(rep.dns))
	}
	if rep.connect > 0 {
		fmt.Fprintf(w, "connect:   %s\n", round(rep.connect))
	}
	if rep.tlsState != nil {
		fmt.Fprintf(w, "tls:       %s, %s, handshake %s\n", tls.VersionName(rep.tlsState.Version),
			tls.CipherSuiteName(rep.tlsState.CipherSuite), round(rep.tlsDur))
	} else if rep.url.Scheme == "http" {
		fmt.Fprintf(w, "tls:       none (plain HTTP: refused off loopback in staging and production)\n")
	}
	if rep.status != 0 {
		fmt.Fprintf(w, "latency:   %s (request to first response byte)\n", round(rep.latency))
		fmt.Fprintf(w, "status:    %d %s\n", rep.status, http.StatusText(rep.status))
	}
	if rep.haveSkew {
		fmt.Fprintf(w, "skew:      %s (server Date minus this machine's clock, ±1s)\n", describeSkew(rep.skew))
	}
	if rep.requestID != "" {
		fmt.Fprintf(w, "request:   X-Request-ID %s, canonical_sha256 %s\n", rep.requestID, rep.canonicalHash)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func describeSkew(d time.Duration) string {
	switch {
	case d > time.Second:
		return fmt.Sprintf("+%s: the server's clock is ahead of this machine's", d)
	case d < -time.Second:
		return fmt.Sprintf("%s: the server's clock is behind this machine's", d)
	}
	return fmt.Sprintf("%s: the clocks agree", d)
}

// networkHint explains a request that got no HTTP answer.
func networkHint(err error, phase string, rep *probeReport, prefix string, timeout time.Duration) (string, string) {
	urlVar := prefix + "_API_URL"
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &dnsErr):
		return "cannot resolve " + dnsErr.Name,
			fmt.Sprintf("DNS has no address for %s: check the host in %s and this machine's resolver (%s)", dnsErr.Name, urlVar, oneLine(dnsErr.Err))
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused by " + rep.addr,
			fmt.Sprintf("nothing listens on %s: is the service running, and is the port in %s right?", rep.addr, urlVar)
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by " + rep.addr,
			fmt.Sprintf("%s closed the connection during %s: a TLS 1.3-only client meets a server or proxy that does not speak TLS 1.3, or the server crashed", rep.addr, phase)
	case errors.As(err, &unknownCA) || (errors.As(err, &certErr) && errors.As(certErr.Err, &unknownCA)):
		return "the server certificate of " + rep.addr + " is signed by an unknown authority",
			"give its CA with --ca-file or XSVC_CA_FILE (xsvc certs dev writes ca.pem)"
	case errors.As(err, &hostErr):
		return "the server certificate does not name " + rep.url.Hostname(),
			"use a host name the certificate names in " + urlVar + ", or reissue the certificate (xsvc certs dev names localhost, 127.0.0.1 and the service)"
	case errors.As(err, &certErr):
		return "the server certificate of " + rep.addr + " is not valid: " + oneLine(certErr.Err.Error()), "check its dates and chain"
	case errors.As(err, &recordErr):
		return rep.addr + " does not speak TLS", "use http:// in " + urlVar + " if the server is plain HTTP (development only), or the TLS port"
	case strings.Contains(err.Error(), "protocol version") || strings.Contains(err.Error(), "tls:"):
		return "TLS handshake with " + rep.addr + " failed: " + oneLine(err.Error()),
			"the client speaks TLS 1.3 only: make the server accept TLS 1.3 (transport.ServerTLSConfig does)"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		where := map[string]string{
			"dns": "resolving the host", "connect": "connecting to " + rep.addr, "tls": "the TLS handshake with " + rep.addr,
			"response": "waiting for the response of " + rep.addr,
		}[phase]
		return fmt.Sprintf("timeout after %s while %s", timeout, where),
			fmt.Sprintf("no answer from %s: check the address and port in %s, firewalls and security groups on the way; raise --timeout if the service is just slow", rep.addr, urlVar)
	}
	return "request to " + rep.addr + " failed: " + oneLine(err.Error()), "check " + urlVar + " and the network"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// problemHint explains a refusal by the verifier.
func problemHint(rep *probeReport, ks keySource, from, to string, env transport.Environment) (string, string) {
	if rep.problem == nil {
		return fmt.Sprintf("%s answered %d %s", to, rep.status, http.StatusText(rep.status)),
			"not a verifier refusal (no problem document): check the endpoint path and the service's own logs"
	}
	code := rep.problem.Code
	rid := "request_id " + rep.requestID
	switch code {
	case transport.CodeSignatureInvalid:
		return "signature verification failed at " + to,
			fmt.Sprintf("the verifier of %s did not accept key %q of caller %s from %s: check that the verifier holds the same secret "+
				"for caller %s under that id (its %s_API_KEY, INTERNAL_API_KEY or key file) and that it is not retired, and that APP_ENV (%s) is the server's; "+
				"then find %s in the server log and compare its canonical_sha256 with this request's %s (xsvc sign --explain shows each line)",
				to, ks.key.ID(), from, ks, from, transport.EnvPrefix(from), env, rid, rep.canonicalHash)
	case transport.CodeTimestampOutOfWindow:
		skew := "unknown (no Date header)"
		if rep.haveSkew {
			skew = describeSkew(rep.skew)
		}
		return "timestamp too old (or too far ahead) for " + to,
			fmt.Sprintf("measured skew %s; the verifier accepts ±5 minutes by default: fix NTP on whichever machine is wrong "+
				"(this one if its time differs from a reference clock), and check that X-Timestamp is Unix milliseconds, not seconds", skew)
	case transport.CodeServiceNotAuthorized:
		return "service " + from + " is not authorized on " + rep.url.Path + " of " + to,
			fmt.Sprintf("the signature verified, but caller %q is not on the allow-list of route %s: add %q to that route's "+
				"Require(...) list (the original requiredServices) in %s's configuration, or probe with a caller the route admits", from, rep.url.Path, from, to)
	case transport.CodeReplayDetected:
		return "replay detected by " + to, "the request id was already used: every request must be signed afresh (a retry signs again)"
	case transport.CodeSchemeNotAllowed:
		return "scheme not allowed by " + to, "the verifier registers " + from + " for the other scheme (v1 or legacy): align both sides"
	case transport.CodeInsecureTransport:
		return to + " refuses plain HTTP", "use https:// in " + transport.EnvPrefix(to) + "_API_URL; staging and production require TLS off loopback"
	case transport.CodeIdentityMismatch:
		return "client certificate does not name " + from, "present the certificate of " + from + " (--cert, --key)"
	case transport.CodeRateLimited:
		return "rate limited by " + to, fmt.Sprintf("retry after %s", rep.problem.RetryAfter)
	case transport.CodeHeaderMissing, transport.CodeHeaderMalformed, transport.CodeUnsignedRequest, transport.CodeRequestMalformed:
		return "request refused by " + to + ": " + string(code), "a proxy may strip or duplicate the X- headers; see SPEC.md part 2 section 13"
	}
	return "request refused by " + to + ": " + string(code), "see SPEC.md part 2 section 13, " + string(code)
}
