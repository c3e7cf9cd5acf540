// Package internal pins the module's chosen dependencies in go.mod until the
// packages that use them import them directly.
package internal

import (
	_ "github.com/cenkalti/backoff/v5"
	_ "github.com/go-playground/validator/v10"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/google/uuid"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/sony/gobreaker/v2"
	_ "github.com/stretchr/testify/require"
	_ "github.com/tink-crypto/tink-go/v2/aead"
	_ "github.com/tink-crypto/tink-go/v2/daead"
	_ "github.com/tink-crypto/tink-go/v2/hybrid"
	_ "go.uber.org/goleak"
	_ "golang.org/x/time/rate"
)
