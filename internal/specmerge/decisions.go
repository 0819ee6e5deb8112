package specmerge

// The decisions below are the ones RECONCILIATION.md records that are rules
// rather than OpenAPI text (that part is api/reconcile.yaml). A source that
// says something these tables do not cover stops the merge with a
// *ConflictError instead of silently picking a side.

// pathParamNames maps every path parameter name seen in a source to the
// merged name (D01).
var pathParamNames = map[string]string{
	"tracking_id": "tracking_id", // Mixpanel's docs
	"taskId":      "tracking_id", // third-party document
}

// securitySchemes lists the names the sources give the bearer scheme (D03).
// Any other scheme is left out with a warning when no operation uses it, and
// stops the merge when one does (D25).
var securitySchemes = map[string]bool{
	"OAuthToken": true, // Mixpanel's docs, kept
	"bearerAuth": true, // third-party document
}

// typeChanges records source types accepted where they differ from the
// skeleton's, keyed by where in the merged document they apply.
var typeChanges = map[string]bool{}

// droppedFormats lists formats not carried into response schemas (D06): a
// download link is an empty string until the task ends and has been seen
// wrapped in quotes, neither of which is a URI.
var droppedFormats = map[string]bool{"uri": true, "url": true}
