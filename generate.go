package mpgdpr

// The merge step writes api/openapi.yaml from api/sources and the recorded
// decisions in api/reconcile.yaml; oapi-codegen (pinned in tools/go.mod) then
// writes gen/ from it. `make generate` runs these; `make check-generate`
// fails if the committed files differ from what they produce.

//go:generate go run ./internal/tools/specmerge -q -skeleton api/reconcile.yaml -sources api/sources -out api/openapi.yaml
//go:generate go tool -modfile=tools/go.mod oapi-codegen -config oapi-codegen.yaml api/openapi.yaml
