package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/transport"
)

// EnvelopeMediaType is the Content-Type of a sealed body, in both directions:
// the bytes are one envelope (SPEC.md part 1) as the [Codec] makes it.
// A plain JSON body is application/json.
const EnvelopeMediaType = transport.EnvelopeMediaType

// DefaultMaxResponseBytes bounds a response body the [Client] decodes unless
// [Config.MaxResponseBytes] says otherwise; it equals the envelope package's
// default size limit.
const DefaultMaxResponseBytes = envelope.DefaultMaxSize

// Codec seals a value for one recipient service and opens an envelope from a
// given sender into a value. [*fieldcrypt.Codec] is the implementation: its
// OpenFrom checks that the envelope is addressed to this service and sent by
// sender, and leaves dst unchanged on any error.
type Codec interface {
	Seal(v any, recipient string) ([]byte, error)
	OpenFrom(sender string, data []byte, dst any) (envelope.Header, error)
}

var _ Codec = (*fieldcrypt.Codec)(nil)

// Config configures a [Client].
type Config struct {
	// BaseURL is the target's base URL, "https://host[:port][/prefix]".
	// Paths given to the call methods are appended to it. Required; no
	// user info, query or fragment.
	BaseURL string
	// Codec seals request bodies for the target and opens response envelopes.
	// nil: the client speaks plain JSON only (and [Client.Plain] is itself).
	Codec Codec
	// MaxResponseBytes bounds a response body read by the call methods.
	// 0: [DefaultMaxResponseBytes]. Negative: invalid.
	MaxResponseBytes int64
	// Transport configures the [Transport] under the client; its Target is
	// the service the client calls.
	Transport TransportConfig
}

// Client is the typed client for one target service: one-line JSON calls
// over a [Transport], with sealed bodies when it has a [Codec]. It follows no
// redirects. Safe for concurrent use.
type Client struct {
	base    string // BaseURL without a trailing slash
	host    string
	rt      *Transport
	hc      *http.Client
	codec   Codec
	maxResp int64
}

// Errors of the typed calls, reachable with errors.Is through the [*Error]
// they come in (KindRemote, not retryable).
var (
	// ErrBadResponse: a success response whose body is not what the call
	// expects: wrong Content-Type (a plain body where an envelope is
	// expected, or the reverse), too large, or not decodable. An envelope
	// that does not open also wraps envelope.ErrCannotOpen.
	ErrBadResponse = errors.New("client: unexpected response body")
	// ErrWrongSender: the response envelope opened, but its sender is not the
	// target service; the value is discarded.
	ErrWrongSender = errors.New("client: response envelope not sent by the target")
)

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		// The URL itself is not echoed: it might carry credentials.
		return nil, configError("BaseURL is not an http(s) URL with a host and without user info, query or fragment")
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, configError("MaxResponseBytes %d is negative", cfg.MaxResponseBytes)
	}
	rt, err := NewTransport(cfg.Transport)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:    strings.TrimSuffix(u.String(), "/"),
		host:    u.Host,
		rt:      rt,
		codec:   cfg.Codec,
		maxResp: cfg.MaxResponseBytes,
	}
	if c.maxResp == 0 {
		c.maxResp = DefaultMaxResponseBytes
	}
	c.hc = &http.Client{
		Transport: rt,
		// A redirect would be signed for wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Transport returns the client's [Transport].
func (c *Client) Transport() *Transport { return c.rt }

// Plain returns a client sharing this one's Transport (breakers, budget,
// limits) that sends and expects plain JSON, for endpoints without DTOs.
func (c *Client) Plain() *Client {
	p := *c
	p.codec = nil
	return &p
}

// CallOption adds to one call's request.
type CallOption interface{ apply(*http.Request) }

type optionFunc func(*http.Request)

func (f optionFunc) apply(r *http.Request) { f(r) }

// IdempotencyKey sets the Idempotency-Key header, which lets the [Transport]
// retry a POST (or PATCH): the target must then apply the request at most once
// per key.
func IdempotencyKey(key string) CallOption {
	return optionFunc(func(r *http.Request) { r.Header.Set("Idempotency-Key", key) })
}

// Header sets one request header. The signing headers are overwritten by the
// Signer on every attempt.
func Header(name, value string) CallOption {
	return optionFunc(func(r *http.Request) { r.Header.Set(name, value) })
}

// Get sends GET path and decodes the response into out (a non-nil pointer, or
// nil to discard the body). With a Codec the response must be an envelope
// sent by the target (else [ErrWrongSender]); *out is replaced only when it
// opens and validates. A 204 No Content leaves *out untouched.
//
// Errors: a failed exchange or a non-2xx status is an [*Error]; a bad path, or
// an out that is not a pointer, is a plain error before anything is sent.
func (c *Client) Get(ctx context.Context, path string, out any, opts ...CallOption) error {
	return c.call(ctx, http.MethodGet, path, nil, out, opts)
}

// Post sends in (sealed for the target with a Codec, JSON otherwise; nil: no
// body) to path and decodes the response into out like [Client.Get]. A POST is
// retried only with an [IdempotencyKey].
func (c *Client) Post(ctx context.Context, path string, in, out any, opts ...CallOption) error {
	return c.call(ctx, http.MethodPost, path, in, out, opts)
}

// Put is [Client.Post] with PUT, which is idempotent and so may be retried.
func (c *Client) Put(ctx context.Context, path string, in, out any, opts ...CallOption) error {
	return c.call(ctx, http.MethodPut, path, in, out, opts)
}

// Delete sends DELETE path and decodes the response into out like [Client.Get].
func (c *Client) Delete(ctx context.Context, path string, out any, opts ...CallOption) error {
	return c.call(ctx, http.MethodDelete, path, nil, out, opts)
}

// Do sends req through the client's Transport, following no redirects, and
// returns what http.Client.Do returns: any response, whatever its status, or
// a *url.Error wrapping an [*Error]. Its URL may point anywhere; use
// [Client.NewRequest] for one relative to the base URL.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	return c.hc.Do(req)
}

// NewRequest returns a request for path under the base URL; body as for
// http.NewRequestWithContext (bytes and strings readers get GetBody, which
// signing and retries need).
func (c *Client) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	// One parse: NewRequestWithContext's, whose URL is then checked.
	s := c.base + path
	req, err := http.NewRequestWithContext(ctx, method, s, body)
	if err != nil {
		if _, perr := url.Parse(s); perr != nil {
			return nil, errBadPath
		}
		return nil, err
	}
	if req.URL.Host != strings.TrimSuffix(c.host, ":") { // as NewRequest removes an empty port
		return nil, errBadPath
	}
	return req, nil
}

var errBadPath = fmt.Errorf("client: path does not parse under the base URL: %w", ErrConfig)

func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.ContainsAny(path, "#\\") {
		return fmt.Errorf("client: path must start with a single '/' and hold no fragment or backslash: %w", ErrConfig)
	}
	return nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any, opts []CallOption) error {
	if out != nil {
		if v := reflect.ValueOf(out); v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("client: out must be a non-nil pointer, not %T", out)
		}
	}
	var body []byte
	ctype := "application/json"
	if in != nil {
		var err error
		if c.codec != nil {
			ctype = EnvelopeMediaType
			body, err = c.codec.Seal(in, c.rt.Target())
			if err != nil {
				return fmt.Errorf("client: sealing the request body for %s: %w", c.rt.Target(), err)
			}
		} else if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("client: encoding the request body: %w", err)
		}
	}
	var rd io.Reader
	if in != nil {
		rd = bytes.NewReader(body)
	}
	req, err := c.NewRequest(ctx, method, path, rd)
	if err != nil {
		return err
	}
	// Canonical keys assigned directly, both values in one allocation.
	hv := [2]string{ctype, "application/json, application/problem+json"}
	if c.codec != nil {
		hv[1] = EnvelopeMediaType + ", application/problem+json"
	}
	if in != nil {
		req.Header["Content-Type"] = hv[0:1:1]
	}
	req.Header["Accept"] = hv[1:2:2]
	for _, o := range opts {
		o.apply(req)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// Return the *Error itself: the *url.Error around it would print the
		// URL, whose path may hold ids.
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(req, resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil
	}
	bp := respPool.Get().(*[]byte)
	data, err := readBody(*bp, resp.Body, resp.ContentLength, c.maxResp+1)
	// ok returns data's buffer to the pool, cleared, once the body is
	// decoded: json.Unmarshal and the codec copy what they keep. Error
	// paths leave it to the garbage collector, in case an error holds it.
	ok := func() error {
		if cap(data) <= maxPooledResp {
			clear(data)
			*bp = data[:0]
			respPool.Put(bp)
		}
		return nil
	}
	if err != nil {
		return err // an *Error from the Transport's body
	}
	if int64(len(data)) > c.maxResp {
		return c.badResponse(req, resp, fmt.Errorf("%w: larger than %d bytes", ErrBadResponse, c.maxResp))
	}
	mt := resp.Header.Get("Content-Type")
	if mt != EnvelopeMediaType && mt != "application/json" { // the common exact values need no parsing
		mt, _, _ = mime.ParseMediaType(mt)
	}
	if c.codec == nil {
		if mt != "application/json" && !(strings.HasSuffix(mt, "+json") && mt != EnvelopeMediaType) {
			return c.badResponse(req, resp, fmt.Errorf("%w: Content-Type %q, want application/json", ErrBadResponse, mt))
		}
		if err := json.Unmarshal(data, out); err != nil {
			return c.badResponse(req, resp, fmt.Errorf("%w: %w", ErrBadResponse, err))
		}
		return ok()
	}
	if mt != EnvelopeMediaType {
		return c.badResponse(req, resp, fmt.Errorf("%w: Content-Type %q, want %s", ErrBadResponse, mt, EnvelopeMediaType))
	}
	if _, err := c.codec.OpenFrom(c.rt.Target(), data, out); err != nil {
		var me *fieldcrypt.MismatchError
		if errors.As(err, &me) && me.Member == "snd" {
			return c.badResponse(req, resp, fmt.Errorf("%w: %w", ErrWrongSender, err))
		}
		return c.badResponse(req, resp, fmt.Errorf("%w: %w", ErrBadResponse, err))
	}
	return ok()
}

// respPool recycles response body buffers up to maxPooledResp bytes.
var respPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledResp = 64 << 10

// readBody is io.ReadAll(io.LimitReader(r, limit)) into buf, or a buffer sized
// from the Content-Length (size; 0 or negative: unknown), so that a body
// of the announced length costs one allocation and no copy.
func readBody(buf []byte, r io.Reader, size, limit int64) ([]byte, error) {
	n := int64(512)
	if size > 0 {
		n = min(size, limit) + 1 // the byte after: to see EOF without growing
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, 0, n)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		m, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+m]
		if err == io.EOF || int64(len(buf)) >= limit {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// statusError turns a non-2xx response into an *Error.
func (c *Client) statusError(req *http.Request, resp *http.Response) *Error {
	cfg := c.rt.c
	e := &Error{Kind: statusKind(resp.StatusCode), Target: cfg.Target, Method: req.Method, Status: resp.StatusCode}
	if b, ok := resp.Body.(*body); ok {
		e.Attempts, e.requestID = b.c.attempts, b.c.lastID
	}
	e.Problem = readProblem(resp, e.requestID)
	e.retryable = cfg.statuses[resp.StatusCode] || resp.StatusCode == http.StatusTooManyRequests
	if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), cfg.Now()); ok {
		e.RetryAfter = ra
	}
	return e
}

// badResponse is the *Error for a 2xx response the call cannot use.
func (c *Client) badResponse(req *http.Request, resp *http.Response, cause error) *Error {
	e := &Error{Kind: KindRemote, Target: c.rt.Target(), Method: req.Method, Status: resp.StatusCode, Err: cause}
	if b, ok := resp.Body.(*body); ok {
		e.Attempts, e.requestID = b.c.attempts, b.c.lastID
	}
	return e
}
