package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvRedisURL is the variable [RedisOptionsFromEnv] reads.
const EnvRedisURL = "REDIS_URL"

// DefaultRedisTimeout bounds each Redis call of [RedisReplayStore] and
// [RedisLimiter] when their Timeout is zero. A call that takes longer fails,
// and the verifier answers 503: a slow Redis must not hold requests.
const DefaultRedisTimeout = 100 * time.Millisecond

// ErrRedisUnavailable: Redis did not answer a replay or rate-limit call in
// time (connection refused or lost, timeout, error reply). The verifier
// answers 503 replay_store_unavailable or rate_limiter_unavailable. The
// go-redis cause is wrapped too.
var ErrRedisUnavailable = errors.New("transport: redis unavailable")

// RedisURLError reports a Redis URL that cannot be used. It never holds the
// URL or any part of it: the URL may carry a password.
type RedisURLError struct {
	Variable string // the environment variable that held it, "" from code
	Reason   string
}

func (e *RedisURLError) Error() string {
	where := "Redis URL"
	if e.Variable != "" {
		where = e.Variable
	}
	return "transport: " + where + ": malformed Redis URL: " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *RedisURLError) Unwrap() error { return ErrInvalidConfig }

// ParseRedisURL turns redis://[user:password@]host[:port][/db][?option=value]
// or rediss://... (TLS) into go-redis options, through [redis.ParseURL], with
// these differences, all for a client whose calls sit on a request's path:
//
//   - Only the redis and rediss schemes, and a host is required.
//   - rediss uses TLS 1.3 at least, verifying the server's certificate
//     against the system roots for the URL's host name. skip_verify is
//     refused; to trust a private CA set TLSConfig.RootCAs on the result.
//   - ContextTimeoutEnabled is on, so a call's deadline (the Timeout of
//     [RedisReplayStore] and [RedisLimiter]) bounds socket reads and writes.
//   - MaxRetries is -1 (no retry) unless max_retries is given: a retried
//     SET NX whose first reply was lost would report a genuine request as a
//     replay, and a retry rarely fits in a 100 ms budget anyway.
//   - DialerRetries is 1: a dial retried with back-off outlives every
//     caller's budget and only keeps goroutines busy while Redis is down.
//   - An error is a [*RedisURLError] that never repeats the URL or part of it.
//
// Reserved characters of the password ('@', '/', ':', '?', '%'...) must be
// percent-encoded: build the userinfo with url.UserPassword. The result can
// be adjusted before redis.NewClient (RootCAs, pool size...).
func ParseRedisURL(rawURL string) (*redis.Options, error) {
	return parseRedisURL(rawURL, "")
}

// NewRedisClient is redis.NewClient on [ParseRedisURL]'s options. Close the
// client when done; stores and limiters built on it do not.
func NewRedisClient(rawURL string) (*redis.Client, error) {
	opt, err := ParseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// RedisOptionsFromEnv parses REDIS_URL ([EnvRedisURL]) like [ParseRedisURL]
// through lookup (nil: os.LookupEnv). Unset or empty: [*MissingEnvError];
// malformed: [*RedisURLError] naming the variable, never its value.
func RedisOptionsFromEnv(lookup func(string) (string, bool)) (*redis.Options, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(EnvRedisURL)
	if !ok || v == "" {
		return nil, &MissingEnvError{Names: []string{EnvRedisURL}}
	}
	return parseRedisURL(v, EnvRedisURL)
}

func parseRedisURL(rawURL, variable string) (*redis.Options, error) {
	bad := func(reason string) error { return &RedisURLError{Variable: variable, Reason: reason} }
	// Checked here first because redis.ParseURL's errors quote the URL, or
	// parts of it that may be the password (a '/' or '@' left unescaped in
	// it moves the host boundary).
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, bad("not a URL (percent-encode reserved characters in the password)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, bad("the scheme is not redis or rediss")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, bad("no host (redis://host:port/db)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad("the port is not a number from 1 to 65535")
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return nil, bad("the path is not /<database number>")
		}
	}
	q := u.Query()
	if q.Has("skip_verify") {
		return nil, bad("skip_verify is not accepted: trust the server's CA through TLSConfig.RootCAs instead")
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// Not even the parameter names: a password pasted into the query
		// would be one.
		return nil, bad("a query parameter is unknown or its value is invalid")
	}
	if opt.DB < 0 {
		return nil, bad("the database number is negative")
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS13
	}
	opt.ContextTimeoutEnabled = true
	if !q.Has("max_retries") {
		opt.MaxRetries = -1
	}
	opt.DialerRetries = 1
	return opt, nil
}

// checkRedisClient refuses a missing client and one that would ignore the
// per-call deadline.
func checkRedisClient(what string, c redis.UniversalClient) error {
	var ctxTimeout bool
	switch c := c.(type) {
	case nil:
		return fmt.Errorf("transport: %s.Client is nil: %w", what, ErrInvalidConfig)
	case *redis.Client:
		if c == nil {
			return fmt.Errorf("transport: %s.Client is nil: %w", what, ErrInvalidConfig)
		}
		ctxTimeout = c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		if c == nil {
			return fmt.Errorf("transport: %s.Client is nil: %w", what, ErrInvalidConfig)
		}
		ctxTimeout = c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		if c == nil {
			return fmt.Errorf("transport: %s.Client is nil: %w", what, ErrInvalidConfig)
		}
		ctxTimeout = c.Options().ContextTimeoutEnabled
	default:
		return nil // a wrapper: its author answers for deadlines
	}
	if !ctxTimeout {
		return fmt.Errorf("transport: %s.Client: ContextTimeoutEnabled is off, so Timeout would not bound socket reads (use ParseRedisURL, or set it): %w", what, ErrInvalidConfig)
	}
	return nil
}

func checkRedisTimeout(what string, d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("transport: %s.Timeout %v < 0: %w", what, d, ErrInvalidConfig)
	case d == 0:
		return DefaultRedisTimeout, nil
	}
	return d, nil
}

// redisErr wraps a go-redis failure in [ErrRedisUnavailable].
func redisErr(what string, err error) error {
	return fmt.Errorf("transport: %s: %w: %w", what, ErrRedisUnavailable, err)
}
