package transport_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/lifenavigator/crossservice/transport"
)

// Every replica of financial-api runs this: replay protection and the rate
// limit are shared through the Redis named by REDIS_URL. (Not run: it needs
// a server.)
func ExampleNewRedisReplayStore() {
	env, err := transport.EnvironmentFromEnv(nil)
	if err != nil {
		log.Fatal(err)
	}
	opt, err := transport.RedisOptionsFromEnv(nil) // e.g. rediss://:password@cache.internal:6380/0
	if err != nil {
		log.Fatal(err) // names REDIS_URL, never its value
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	store, err := transport.NewRedisReplayStore(transport.RedisReplayConfig{Client: rdb})
	if err != nil {
		log.Fatal(err)
	}
	limiter, err := transport.NewRedisLimiter(transport.RedisLimiterConfig{Client: rdb,
		Service: "financial-api", Environment: env, Default: transport.Rate{Limit: 50, Burst: 100}})
	if err != nil {
		log.Fatal(err)
	}
	keys, err := transport.CallerKeysFromEnv(nil, "frontend", "analytics-service")
	if err != nil {
		log.Fatal(err)
	}
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: env, Keys: keys,
		ReplayStore: store, Limiter: limiter, LimitPerRoute: true})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	// Per route: wrap each route, so the verifier sees its pattern.
	mux.Handle("POST /v1/transfers", v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	_ = mux // served over TLS 1.3: see ServerTLSConfig
}

func ExampleRedisOptionsFromEnv() {
	env := map[string]string{"REDIS_URL": "redis://svc:pa/ss@cache.internal:6379/0"} // '/' not escaped
	_, err := transport.RedisOptionsFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	fmt.Println(err)
	// Output: transport: REDIS_URL: malformed Redis URL: not a URL (percent-encode reserved characters in the password)
}
