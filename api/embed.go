// Package api holds the merged OpenAPI document of Mixpanel's GDPR/CCPA API
// (api/openapi.yaml, generated from api/sources and api/reconcile.yaml).
//
// It carries the bytes only, so that importing it costs nothing: the packages
// that parse and validate against it (mpgdprtest, contract) bring kin-openapi
// in, while the root client package stays free of it.
package api

import _ "embed"

// OpenAPI is the merged OpenAPI 3.0.3 document, byte for byte as committed in
// api/openapi.yaml. Treat it as read-only: every importer shares the slice.
//
//go:embed openapi.yaml
var OpenAPI []byte
