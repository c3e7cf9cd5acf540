package transport_test

import (
	"crypto/tls"
	"errors"
	"net/url"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/transport"
)

// redisSecret stands for a password; no error may contain it.
const redisSecret = "hunter2-S3CRET"

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(t *testing.T, o *redis.Options)
	}{
		{"redis://:" + redisSecret + "@127.0.0.1:6380/2", func(t *testing.T, o *redis.Options) {
			require.Equal(t, "tcp", o.Network)
			require.Equal(t, "127.0.0.1:6380", o.Addr)
			require.Equal(t, "", o.Username)
			require.Equal(t, redisSecret, o.Password)
			require.Equal(t, 2, o.DB)
			require.Nil(t, o.TLSConfig, "redis:// is plain TCP")
		}},
		{"redis://" + url.UserPassword("svc", "p@ss/w:rd").String() + "@cache.internal", func(t *testing.T, o *redis.Options) {
			require.Equal(t, "cache.internal:6379", o.Addr)
			require.Equal(t, "svc", o.Username)
			require.Equal(t, "p@ss/w:rd", o.Password, "percent-encoded password decoded")
			require.Equal(t, 0, o.DB)
		}},
		{"rediss://:" + redisSecret + "@cache.internal:6390/5", func(t *testing.T, o *redis.Options) {
			require.NotNil(t, o.TLSConfig)
			require.Equal(t, uint16(tls.VersionTLS13), o.TLSConfig.MinVersion)
			require.Equal(t, "cache.internal", o.TLSConfig.ServerName)
			require.False(t, o.TLSConfig.InsecureSkipVerify)
			require.Equal(t, 5, o.DB)
		}},
		{"redis://[::1]:6379/1?dial_timeout=2s&max_retries=2", func(t *testing.T, o *redis.Options) {
			require.Equal(t, "[::1]:6379", o.Addr)
			require.Equal(t, 2, o.MaxRetries, "an explicit max_retries is kept")
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := transport.ParseRedisURL(tc.url)
			require.NoError(t, err)
			require.True(t, o.ContextTimeoutEnabled, "the per-call timeout must bound socket I/O")
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
	o, err := transport.ParseRedisURL("redis://localhost/0")
	require.NoError(t, err)
	require.Equal(t, -1, o.MaxRetries, "no retries by default")
	require.Equal(t, 1, o.DialerRetries)
}

func TestParseRedisURLErrors(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":                 "",
		"unescaped / in secret": "redis://user:" + redisSecret + "/x@cache.internal:6379/0",
		"bad escape":            "redis://user:" + redisSecret + "%zz@cache.internal/0",
		"http scheme":           "http://:" + redisSecret + "@cache.internal/0",
		"unix scheme":           "unix:///run/redis.sock",
		"no scheme":             "cache.internal:6379",
		"no host":               "redis://:" + redisSecret + "@/0",
		"db not a number":       "redis://:" + redisSecret + "@cache.internal/" + redisSecret,
		"db negative":           "redis://cache.internal/-1",
		"two path segments":     "redis://cache.internal/1/2",
		"port not a number":     "redis://cache.internal:" + redisSecret + "/0",
		"unknown option":        "redis://:" + redisSecret + "@cache.internal/0?" + redisSecret + "=1",
		"invalid option value":  "redis://:" + redisSecret + "@cache.internal/0?dial_timeout=" + redisSecret,
		"skip_verify":           "rediss://:" + redisSecret + "@cache.internal/0?skip_verify=true",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := transport.ParseRedisURL(raw)
			require.ErrorIs(t, err, transport.ErrInvalidConfig)
			var ue *transport.RedisURLError
			require.ErrorAs(t, err, &ue)
			require.Empty(t, ue.Variable)
			require.True(t, redisURLReasons[ue.Reason], "unlisted reason %q", ue.Reason)
			require.NotContains(t, err.Error(), redisSecret)
			require.NotContains(t, err.Error(), "cache.internal")
			_, err = transport.NewRedisClient(raw)
			require.ErrorAs(t, err, &ue)
		})
	}
}

func TestRedisOptionsFromEnv(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	_, err := transport.RedisOptionsFromEnv(env(nil))
	var miss *transport.MissingEnvError
	require.ErrorAs(t, err, &miss)
	require.ErrorIs(t, err, transport.ErrEnvMissing)
	require.Equal(t, []string{"REDIS_URL"}, miss.Names)
	_, err = transport.RedisOptionsFromEnv(env(map[string]string{"REDIS_URL": ""}))
	require.ErrorAs(t, err, &miss, "empty counts as unset")

	_, err = transport.RedisOptionsFromEnv(env(map[string]string{"REDIS_URL": "redis://u:" + redisSecret + "/@h/0"}))
	var ue *transport.RedisURLError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "REDIS_URL", ue.Variable)
	require.Contains(t, err.Error(), "REDIS_URL", "the error names the variable")
	require.NotContains(t, err.Error(), redisSecret, "and never its value")

	o, err := transport.RedisOptionsFromEnv(env(map[string]string{"REDIS_URL": "rediss://:" + redisSecret + "@cache.internal:6390/3"}))
	require.NoError(t, err)
	require.Equal(t, redisSecret, o.Password)
	require.Equal(t, 3, o.DB)
	require.Equal(t, uint16(tls.VersionTLS13), o.TLSConfig.MinVersion)
}

func TestRedisConstructorsValidate(t *testing.T) {
	lax := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // ContextTimeoutEnabled off
	t.Cleanup(func() { lax.Close() })
	strict, err := transport.NewRedisClient("redis://127.0.0.1:1/0")
	require.NoError(t, err)
	t.Cleanup(func() { strict.Close() })
	var nilClient *redis.Client
	for name, cfg := range map[string]transport.RedisReplayConfig{
		"no client":          {},
		"typed nil client":   {Client: nilClient},
		"no context timeout": {Client: lax},
		"negative timeout":   {Client: strict, Timeout: -1},
	} {
		_, err := transport.NewRedisReplayStore(cfg)
		require.ErrorIs(t, err, transport.ErrInvalidConfig, name)
	}
	_, err = transport.NewRedisReplayStore(transport.RedisReplayConfig{Client: strict})
	require.NoError(t, err)

	good := func() transport.RedisLimiterConfig {
		return transport.RedisLimiterConfig{Client: strict, Service: "financial-api", Environment: transport.Production,
			Default: transport.Rate{Limit: 10, Burst: 5}}
	}
	_, err = transport.NewRedisLimiter(good())
	require.NoError(t, err)
	for name, mut := range map[string]func(*transport.RedisLimiterConfig){
		"no client":          func(c *transport.RedisLimiterConfig) { c.Client = nil },
		"no context timeout": func(c *transport.RedisLimiterConfig) { c.Client = lax },
		"no service":         func(c *transport.RedisLimiterConfig) { c.Service = "" },
		"bad environment":    func(c *transport.RedisLimiterConfig) { c.Environment = "prod" },
		"no default rate":    func(c *transport.RedisLimiterConfig) { c.Default = transport.Rate{} },
		"zero burst":         func(c *transport.RedisLimiterConfig) { c.Default.Burst = 0 },
		"rate too high":      func(c *transport.RedisLimiterConfig) { c.Default.Limit = 2e9 },
		"rate too low":       func(c *transport.RedisLimiterConfig) { c.Default.Limit = 1e-9 },
		"bad caller rate":    func(c *transport.RedisLimiterConfig) { c.Callers = map[string]transport.Rate{"frontend": {}} },
		"negative timeout":   func(c *transport.RedisLimiterConfig) { c.Timeout = -1 },
	} {
		c := good()
		mut(&c)
		_, err := transport.NewRedisLimiter(c)
		require.ErrorIs(t, err, transport.ErrInvalidConfig, name)
	}
	require.False(t, errors.Is(transport.ErrRedisUnavailable, transport.ErrInvalidConfig))
}

// redisURLReasons are all the reasons a RedisURLError gives: fixed texts,
// so none can carry a part of the URL.
var redisURLReasons = map[string]bool{
	"not a URL (percent-encode reserved characters in the password)":                       true,
	"the scheme is not redis or rediss":                                                    true,
	"no host (redis://host:port/db)":                                                       true,
	"the port is not a number from 1 to 65535":                                             true,
	"the path is not /<database number>":                                                   true,
	"skip_verify is not accepted: trust the server's CA through TLSConfig.RootCAs instead": true,
	"a query parameter is unknown or its value is invalid":                                 true,
	"the database number is negative":                                                      true,
}

// FuzzParseRedisURL: no input panics; an error is one of the fixed texts,
// repeating nothing of the URL; a URL that parses keeps the safety defaults.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://:" + redisSecret + "@127.0.0.1:6380/2",
		"rediss://user:" + redisSecret + "@cache.internal:6390/5?dial_timeout=3s",
		"redis://user:" + redisSecret + "/x@cache.internal:6379/0",
		"redis://cache.internal/0?skip_verify=true",
		"redis://[::1]/1?max_retries=2",
		"unix:///run/redis.sock",
		"redis://h/%zz",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := transport.ParseRedisURL(raw)
		if err != nil {
			var ue *transport.RedisURLError
			require.ErrorAs(t, err, &ue)
			require.ErrorIs(t, err, transport.ErrInvalidConfig)
			require.True(t, redisURLReasons[ue.Reason], "unlisted reason %q", ue.Reason)
			require.Equal(t, "transport: Redis URL: malformed Redis URL: "+ue.Reason, err.Error())
			return
		}
		require.True(t, o.ContextTimeoutEnabled)
		if o.TLSConfig != nil {
			require.Equal(t, uint16(tls.VersionTLS13), o.TLSConfig.MinVersion)
			require.False(t, o.TLSConfig.InsecureSkipVerify)
		}
	})
}
