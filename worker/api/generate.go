package api

// oapi-codegen (pinned in tools/go.mod) writes api.gen.go from openapi.yaml;
// `make generate` runs this, `make check-generate` fails if the committed
// file differs from what it produces.

//go:generate go tool -modfile=../../tools/go.mod oapi-codegen -config oapi-codegen.yaml openapi.yaml
