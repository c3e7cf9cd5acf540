package transport

import (
	"fmt"
	"os"
	"strings"

	"github.com/lifenavigator/crossservice/internal/names"
)

// Environment is a deployment stage. It is part of the v1 canonical string,
// so a request signed for staging never verifies in production even when
// both share a key. The rules each allows are in [Environment.AllowsNonStrict]
// and [Environment.AllowsPlainHTTP]:
//
//	                          development  staging  production
//	non-strict (unsigned ok)  yes          yes      no (New fails)
//	plain HTTP off loopback   yes          no       no (403 insecure_transport)
//	legacy callers            yes          yes      yes (WARN per request)
type Environment string

const (
	Development Environment = "development"
	Staging     Environment = "staging"
	Production  Environment = "production"
)

// EnvAppEnv is the variable [EnvironmentFromEnv] reads.
const EnvAppEnv = "APP_ENV"

// EnvInternalAPIKey is the fallback key variable of the original system;
// EnvInternalAPIKey+"_ID" holds its key id.
const EnvInternalAPIKey = "INTERNAL_API_KEY"

// DefaultEnvKeyID is the key id of a key read from the environment when no
// <PREFIX>_API_KEY_ID (or INTERNAL_API_KEY_ID) variable is set. Both sides
// use the same default, so a pair configured only with keys agrees.
const DefaultEnvKeyID = "env"

// ParseEnvironment accepts exactly "development", "staging" or "production".
// There is no default: a missing or misspelled APP_ENV must not quietly
// select the most permissive rules.
func ParseEnvironment(s string) (Environment, error) {
	switch e := Environment(s); e {
	case Development, Staging, Production:
		return e, nil
	}
	return "", fmt.Errorf("transport: environment %q is not development, staging or production: %w", s, ErrInvalidConfig)
}

// EnvironmentFromEnv reads APP_ENV through lookup (nil: os.LookupEnv).
func EnvironmentFromEnv(lookup func(string) (string, bool)) (Environment, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(EnvAppEnv)
	if !ok || v == "" {
		return "", &MissingEnvError{Names: []string{EnvAppEnv}}
	}
	return ParseEnvironment(v)
}

// AllowsNonStrict reports whether a verifier may admit unsigned requests:
// development and staging (for migrations), never production.
func (e Environment) AllowsNonStrict() bool { return e == Development || e == Staging }

// AllowsPlainHTTP reports whether requests without TLS are accepted from
// non-loopback peers: development only. Loopback (and Unix sockets, for a
// TLS-terminating sidecar) is always accepted.
func (e Environment) AllowsPlainHTTP() bool { return e == Development }

// EnvPrefix returns the variable prefix of a service name: upper-cased, '-'
// replaced by '_', and a trailing "_API" dropped so that the original names
// come out unchanged ("financial-api" and "financial" both give "FINANCIAL",
// hence FINANCIAL_API_KEY and FINANCIAL_API_URL; "analytics-service" gives
// "ANALYTICS_SERVICE"). Returns "" for an invalid name.
func EnvPrefix(service string) string {
	if !names.Valid(service) {
		return ""
	}
	p := strings.ToUpper(strings.ReplaceAll(service, "-", "_"))
	if q, ok := strings.CutSuffix(p, "_API"); ok && q != "" {
		p = q
	}
	return p
}

// TargetKeyFromEnv returns the key a client signs with when calling target:
// <PREFIX>_API_KEY, else INTERNAL_API_KEY (the original fallback), with the
// key id from the matching _ID variable (<PREFIX>_API_KEY_ID or
// INTERNAL_API_KEY_ID), default [DefaultEnvKeyID]. The secret is the
// variable's UTF-8 bytes, not decoded. lookup nil: os.LookupEnv.
func TargetKeyFromEnv(lookup func(string) (string, bool), target string) (Key, error) {
	p := EnvPrefix(target)
	if p == "" {
		return Key{}, fmt.Errorf("transport: target %q is not a service name: %w", target, ErrInvalidConfig)
	}
	k, _, err := keyFromEnv(lookup, p)
	return k, err
}

// CallerKeysFromEnv returns one entry per caller for a verifier:
// <PREFIX>_API_KEY of each caller (named after the peer, as on the client
// side), else INTERNAL_API_KEY, key ids as in [TargetKeyFromEnv]. The entries
// are valid for any target. Rotation needs two keys at once: use a key file
// for that.
//
// INTERNAL_API_KEY serves one caller at most: a key shared by two callers
// cannot tell them apart (each could sign as the other), so when more than
// one caller lacks its own variable the result is a [*SharedKeyError]
// (errors.Is [ErrSharedKey]) naming the variables to set.
func CallerKeysFromEnv(lookup func(string) (string, bool), callers ...string) ([]KeyEntry, error) {
	seen := make(map[string]string)
	var out []KeyEntry
	var fallback SharedKeyError
	for _, c := range callers {
		p := EnvPrefix(c)
		if p == "" {
			return nil, fmt.Errorf("transport: caller %q is not a service name: %w", c, ErrInvalidConfig)
		}
		if other, dup := seen[p]; dup {
			return nil, fmt.Errorf("transport: callers %q and %q share the variable %s_API_KEY: %w", other, c, p, ErrInvalidConfig)
		}
		seen[p] = c
		k, name, err := keyFromEnv(lookup, p)
		if err != nil {
			return nil, err
		}
		if name == EnvInternalAPIKey {
			fallback.Callers = append(fallback.Callers, c)
			fallback.Variables = append(fallback.Variables, p+"_API_KEY")
		}
		out = append(out, KeyEntry{Caller: c, Key: k})
	}
	if len(fallback.Callers) > 1 {
		return nil, &fallback
	}
	return out, nil
}

// keyFromEnv returns the key of <prefix>_API_KEY, else INTERNAL_API_KEY,
// and the name of the variable it came from.
func keyFromEnv(lookup func(string) (string, bool), prefix string) (Key, string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	for _, name := range [...]string{prefix + "_API_KEY", EnvInternalAPIKey} {
		secret, ok := lookup(name)
		if !ok || secret == "" {
			continue
		}
		id := DefaultEnvKeyID
		if v, ok := lookup(name + "_ID"); ok && v != "" {
			id = v
		}
		k, err := NewKey(id, []byte(secret))
		if err != nil {
			return Key{}, "", fmt.Errorf("transport: %s: %w", name, err)
		}
		return k, name, nil
	}
	return Key{}, "", &MissingEnvError{Names: []string{prefix + "_API_KEY", EnvInternalAPIKey}}
}
