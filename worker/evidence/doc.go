// Package evidence turns what the worker (and the mpgdpr command's job
// journals) recorded about data-subject requests into evidence an auditor
// accepts: one Record per request and project, its statutory deadline and
// whether it was met, reports in CSV, JSON Lines and a self-contained HTML
// page, and a check that the stored history was not edited.
//
// # Records
//
// A Record is one request (the caller's reference) in one project: when it
// was received, each Mixpanel task that covered it (filed by the worker, or
// named by a 409 as already covering some of its IDs) with when it was filed
// and every status seen with its time, when it was completed (every covering
// task confirmed SUCCESS), the export's size and SHA-256 for a retrieval,
// and the failures, unknown outcomes and resubmissions on the way. A Source
// yields records one at a time (DBSource reads the worker's database; the
// mpgdpr command implements one over its journals), so that reports stream.
//
// # Deadlines
//
// Policy.Evaluate sets a record's Deadline from its compliance type: GDPR
// one month from receipt, extendable by two further months; CCPA 45 days,
// extendable once by 45 (both configurable, see Regulation). Months are
// calendar months counted from the date of receipt: the deadline is the day
// with the same number in the month N months later, or that month's last day
// when it has no such day (31 January + 1 month = 28 February, or 29 in a
// leap year; 29 February + 12 months = 28 February). Days are calendar days
// added to the date of receipt (1 January + 45 days = 15 February). An
// extension counts the whole extended period from the date of receipt too
// (31 January + 3 months = 30 April), so that clipping at a short month does
// not shorten it twice. The deadline is met if the request is completed
// before the end of that day in the Policy's time zone (UTC by default).
// Weekends and public holidays do not move the deadline (some readings of
// the law do; this one is never later than theirs).
//
// # Tamper evidence
//
// Every entry of the worker's event log carries a hash chained to the
// previous entry of the same project (EventHash; the worker computes it when
// it inserts the entry, serialised per chain). DB.Verify recomputes every
// chain and names the first entry altered or removed. Each journal line of
// the mpgdpr command carries such a hash too. What this proves: that the
// history up to a chain head you hold (Verification.Heads saved in a
// HeadsFile kept apart, or signed with HeadsFile.Sign) was not edited,
// reordered or shortened since.
// What it does not prove: it is not a signature; someone who can write the
// database can rewrite a whole chain and its head consistently, and only a
// head kept elsewhere (or a signature with a key they do not hold) reveals
// that. It says nothing about events that were never recorded.
//
// # Personal data
//
// A report names people by distinct ID, or, with an IDHasher, by the
// HMAC-SHA-256 of each ID under a key of your own: the same key gives the
// same hash, so a given person's entry can still be found (IDHasher.Hash),
// while a reader without the key cannot reverse it. Nothing in a record or a
// report holds a token or an API secret: the sources never read them.
package evidence
