// Package testdata embeds the test vectors and golden files of crossservice so
// that tests load them through embed (a test fails when none load). It is not
// part of the public API: the go tool leaves it out of ./..., and nothing here
// is a key anyone should use outside tests.
package testdata
