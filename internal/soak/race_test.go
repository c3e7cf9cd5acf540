//go:build race

package soak_test

// raceEnabled lowers the default rate: the race detector makes every
// request several times more expensive.
const raceEnabled = true
