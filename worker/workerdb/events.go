package workerdb

// Event names in the worker's log (mpgdpr_event.event). Item events carry
// item_id; task events (status seen, export) carry the task id and are
// linked to items through mpgdpr_item_task. The worker writes them; the
// evidence report reads them.
const (
	EventEnqueued    = "enqueued"     // request stored (Go intake)
	EventRejected    = "rejected"     // request refused at intake (job inserted by another system)
	EventReceived    = "received"     // item created; at = the request's received time
	EventQueued      = "queued"       // item waiting to be batched
	EventBatched     = "batched"      // item put in a batch
	EventSending     = "sending"      // a create for the batch is about to go on the wire
	EventFiled       = "filed"        // a create was accepted; task_id set
	EventConflict    = "conflict"     // a 409 named task_id as covering some IDs
	EventUnknown     = "unknown"      // a create's outcome is unknown
	EventRefused     = "refused"      // a create was certainly refused (will be filed again)
	EventStatus      = "status"       // a task status seen for the first time
	EventOpen        = "open"         // item: a covering task is in progress
	EventExported    = "exported"     // an export was downloaded and checked
	EventExportError = "export_error" // an export could not be downloaded or checked
	EventDone        = "done"         // item done
	EventFailed      = "failed"       // item failed
	EventResubmitted = "resubmitted"  // item queued again by the FAILURE/NOT_FOUND policy
	EventSealed      = "sealed"       // a row a report reads was created or changed: detail "<table> <digest>" (evidence.SealDetail)
	// Retention (worker/purge.go, worker/exports.go): counts and digests, never an ID.
	EventIDsPurged     = "ids_purged"     // request: its plain distinct IDs replaced by their keyed hash in every row
	EventExportDeleted = "export_deleted" // task: its export file deleted after export_retention; detail has its SHA-256
	// HTTP service (issue 25): counts, times and digests, never an ID or a path.
	EventExtended        = "extended"         // request: its deadline extended; detail "notice <time>: <reason>" (evidence.ExtensionDetail)
	EventCancelRequested = "cancel_requested" // item: a cancellation asked for while filed; a worker asks Mixpanel
	EventCancelled       = "cancelled"        // item cancelled (before filing, or Mixpanel revoked its task)
	EventCancelRefused   = "cancel_refused"   // item: the cancellation could not be done (task started, or shared); the item goes on
	EventExportServed    = "export_served"    // task: its export was served to a caller; detail has its size and SHA-256
	// Callbacks (worker/callback.go): one event per delivery attempt; detail
	// "<delivery id> <type> attempt N: status C" or the error's class, never
	// the URL or a key.
	EventCallbackSent    = "callback_sent"     // a notice was delivered (2xx)
	EventCallbackFailed  = "callback_failed"   // an attempt failed (non-2xx, 3xx not followed, timeout, refused address)
	EventCallbackGivenUp = "callback_given_up" // a notice still failing give_up_after after it was due
)
