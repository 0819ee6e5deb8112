// Package mpgdpr is a client for Mixpanel's GDPR/CCPA API: the calls that
// export (retrieve) or erase (delete) everything Mixpanel holds about people,
// by distinct_id, to answer data-subject requests.
//
// A Client sends the five calls (create/check retrieval, create/check/cancel
// deletion) to the region the project lives in, with the OAuth token as a
// bearer token and the project token as the `token` query parameter. Input is
// checked before anything is sent; calls are paced by a shared token-bucket
// rate limiter and retried with jittered exponential backoff where that is
// safe; a create that may have reached Mixpanel is never re-sent by a call
// (see ErrOutcomeUnknown and CreateRefused; DeleteAll resubmits such a
// deletion itself, which is harmless). Errors from Mixpanel are *Error values that work with
// errors.Is (ErrNotFound, ErrRateLimited, ErrConflict, …) and errors.As.
// No error, log line or foreign request carries a token.
//
// The code generated from the merged OpenAPI document lives in package gen
// and is reachable through Client.Raw for calls the wrapper does not cover.
package mpgdpr
