// Package worker files and follows Mixpanel GDPR/CCPA data-subject requests
// as a continuous, durable flow on River (github.com/riverqueue/river):
// SQLite (one file, nothing to install) for one process, Postgres for
// several processes or machines sharing the work.
//
// A Request (erase or export some distinct IDs, in one project, several or
// all) is stored with Enqueue, or EnqueueTx on the caller's own transaction,
// and becomes one item per project. Items of the same project, kind and
// compliance/disclosure type are coalesced into creates of up to the
// project's per-request limit, waiting at most the batching window; every
// create is journaled as "sending" before it goes on the wire, and an
// unknown outcome follows the client's rules (a deletion is filed again and
// the 409 names its task; a retrieval is reported unknown, never filed again
// silently). Each task is polled, at an interval that grows with its age,
// to its end; exports are downloaded, checked to decrypt with the project's
// API secret and recorded with their size and SHA-256. Every state change
// is appended to the mpgdpr_event table, which the database keeps
// append-only.
//
// See README.md in this directory for the configuration file, the states,
// the poll bound, the FAILURE/NOT_FOUND policy and how another language
// enqueues a request by inserting a River job.
package worker
