package client_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

func TestLoadEnv(t *testing.T) {
	const key = "k3y-material-that-is-at-least-32-bytes-long"
	good := map[string]string{
		"SERVICE_NAME":      "frontend",
		"APP_ENV":           "production",
		"FINANCIAL_API_URL": "https://financial.internal:8443/api",
		"FINANCIAL_API_KEY": key,
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "<unset>" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		badVar  string // "" : success
		missing bool
		secret  string // a value that must not appear in the error
	}{
		{"complete", good, "", false, ""},
		{"fallback key", with("FINANCIAL_API_KEY", "<unset>", "INTERNAL_API_KEY", key), "", false, ""},
		{"loopback http in production", with("FINANCIAL_API_URL", "http://127.0.0.1:8080"), "", false, ""},
		{"localhost http in production", with("FINANCIAL_API_URL", "http://localhost:8080"), "", false, ""},
		{"http anywhere in development", with("APP_ENV", "development", "FINANCIAL_API_URL", "http://financial:8080"), "", false, ""},
		{"no SERVICE_NAME", with("SERVICE_NAME", "<unset>"), "SERVICE_NAME", true, ""},
		{"bad SERVICE_NAME", with("SERVICE_NAME", "Front_End"), "SERVICE_NAME", false, "Front_End"},
		{"no APP_ENV", with("APP_ENV", "<unset>"), "APP_ENV", true, ""},
		{"bad APP_ENV", with("APP_ENV", "prod-eu-7"), "APP_ENV", false, "prod-eu-7"},
		{"no URL", with("FINANCIAL_API_URL", "<unset>"), "FINANCIAL_API_URL", true, ""},
		{"empty URL", with("FINANCIAL_API_URL", ""), "FINANCIAL_API_URL", true, ""},
		{"relative URL", with("FINANCIAL_API_URL", "financial/api"), "FINANCIAL_API_URL", false, "financial/api"},
		{"ftp URL", with("FINANCIAL_API_URL", "ftp://financial"), "FINANCIAL_API_URL", false, "ftp://financial"},
		{"credentials in URL", with("FINANCIAL_API_URL", "https://u:hunter2@financial"), "FINANCIAL_API_URL", false, "hunter2"},
		{"http off loopback in production", with("FINANCIAL_API_URL", "http://financial.internal"), "FINANCIAL_API_URL", false, "financial.internal"},
		{"http off loopback in staging", with("APP_ENV", "staging", "FINANCIAL_API_URL", "http://10.0.0.7"), "FINANCIAL_API_URL", false, "10.0.0.7"},
		{"no key at all", with("FINANCIAL_API_KEY", "<unset>"), "FINANCIAL_API_KEY", true, ""},
		{"short key", with("FINANCIAL_API_KEY", "short-secret-value"), "FINANCIAL_API_KEY", false, "short-secret-value"},
		{"short fallback key", with("FINANCIAL_API_KEY", "<unset>", "INTERNAL_API_KEY", "tiny-secret"), "INTERNAL_API_KEY", false, "tiny-secret"},
		{"bad key id", with("FINANCIAL_API_KEY_ID", "bad id!"), "FINANCIAL_API_KEY_ID", false, "bad id!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			e, err := client.LoadEnv("financial-api", lookup)
			if tc.badVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				if e.Service != "frontend" || e.Target != "financial-api" || e.Key.IsZero() || e.BaseURL != tc.env["FINANCIAL_API_URL"] {
					t.Fatalf("%+v", e)
				}
				cfg, err := e.Config()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := client.New(cfg); err != nil {
					t.Fatalf("New(Env.Config()): %v", err)
				}
				return
			}
			var ee *client.EnvError
			if !errors.As(err, &ee) || ee.Var != tc.badVar || ee.Missing != tc.missing {
				t.Fatalf("got %v (%#v), want an EnvError for %s (missing %v)", err, ee, tc.badVar, tc.missing)
			}
			if tc.missing != errors.Is(err, transport.ErrEnvMissing) || !tc.missing != errors.Is(err, client.ErrEnvMalformed) {
				t.Fatalf("%v: wrong sentinel", err)
			}
			if !strings.Contains(err.Error(), tc.badVar) || (tc.secret != "" && strings.Contains(err.Error(), tc.secret)) {
				t.Fatalf("error text %q: must name %s and not quote the value", err, tc.badVar)
			}
			if tc.name == "no key at all" && (len(ee.Fallbacks) != 1 || ee.Fallbacks[0] != "INTERNAL_API_KEY") {
				t.Fatalf("fallbacks %v", ee.Fallbacks)
			}
		})
	}
	if _, err := client.LoadEnv("Not A Name", nil); !errors.Is(err, client.ErrConfig) {
		t.Fatalf("bad target: %v", err)
	}
}

func TestConfigRefusesInvalidValues(t *testing.T) {
	valid := func() client.TransportConfig { return client.TransportConfig{Target: "financial-service"} }
	for _, tc := range []struct {
		name string
		mod  func(*client.TransportConfig)
	}{
		{"no target", func(c *client.TransportConfig) { c.Target = "" }},
		{"bad target", func(c *client.TransportConfig) { c.Target = "Financial Service" }},
		{"negative per-try timeout", func(c *client.TransportConfig) { c.PerTryTimeout = -time.Second }},
		{"negative attempts", func(c *client.TransportConfig) { c.Retry.MaxAttempts = -1 }},
		{"negative backoff", func(c *client.TransportConfig) { c.Retry.InitialBackoff = -1 }},
		{"max below initial", func(c *client.TransportConfig) {
			c.Retry.InitialBackoff, c.Retry.MaxBackoff = time.Second, time.Millisecond
		}},
		{"multiplier below 1", func(c *client.TransportConfig) { c.Retry.Multiplier = 0.5 }},
		{"NaN multiplier", func(c *client.TransportConfig) { c.Retry.Multiplier = math.NaN() }},
		{"negative Retry-After cap", func(c *client.TransportConfig) { c.Retry.MaxRetryAfter = -1 }},
		{"2xx retry status", func(c *client.TransportConfig) { c.Retry.Statuses = []int{200} }},
		{"budget burst 0", func(c *client.TransportConfig) { c.Retry.Budget = &client.Budget{Ratio: 0.1} }},
		{"negative budget ratio", func(c *client.TransportConfig) { c.Retry.Budget = &client.Budget{Ratio: -1, Burst: 1} }},
		{"infinite budget", func(c *client.TransportConfig) { c.Retry.Budget = &client.Budget{MinPerSecond: math.Inf(1), Burst: 1} }},
		{"negative open timeout", func(c *client.TransportConfig) { c.Breaker.OpenTimeout = -1 }},
		{"negative interval", func(c *client.TransportConfig) { c.Breaker.Interval = -1 }},
		{"negative rate", func(c *client.TransportConfig) { c.RateLimit.PerSecond = -1 }},
		{"NaN rate", func(c *client.TransportConfig) { c.RateLimit.PerSecond = math.NaN() }},
		{"negative burst", func(c *client.TransportConfig) { c.RateLimit.Burst = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mod(&cfg)
			if _, err := client.NewTransport(cfg); !errors.Is(err, client.ErrConfig) {
				t.Fatalf("NewTransport: %v, want ErrConfig", err)
			}
		})
	}
	if _, err := client.NewTransport(valid()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, u := range []string{"", "financial", "ftp://x", "https://user:pw@x", "https://x/?q=1", "https://x/#f", "https:///p"} {
		_, err := client.New(client.Config{BaseURL: u, Transport: valid()})
		if !errors.Is(err, client.ErrConfig) || (strings.Contains(u, "pw") && strings.Contains(err.Error(), "pw")) {
			t.Errorf("BaseURL %q: %v", u, err)
		}
	}
	if _, err := client.New(client.Config{BaseURL: "https://x", MaxResponseBytes: -1, Transport: valid()}); !errors.Is(err, client.ErrConfig) {
		t.Errorf("negative MaxResponseBytes: %v", err)
	}
}

func TestPathsCannotLeaveTheBaseURL(t *testing.T) {
	c := newClient(t, "https://financial.internal/api", nil)
	for _, p := range []string{"accounts", "//evil.example/x", "/a#frag", `/a\b`, ""} {
		if _, err := c.NewRequest(t.Context(), "GET", p, nil); !errors.Is(err, client.ErrConfig) {
			t.Errorf("path %q: %v", p, err)
		}
	}
	req, err := c.NewRequest(t.Context(), "GET", "/accounts/7?x=1", nil)
	if err != nil || req.URL.String() != "https://financial.internal/api/accounts/7?x=1" {
		t.Fatalf("%v %v", req.URL, err)
	}
}
