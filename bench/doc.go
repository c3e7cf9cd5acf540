// Package bench compares crossservice with other libraries doing the same
// job, in a module of its own so that the library does not depend on them:
// today, request signing against AWS Signature Version 4
// (github.com/aws/aws-sdk-go-v2/aws/signer/v4). It has benchmarks only;
// `make bench` at the repository root runs them beside the library's own.
package bench
