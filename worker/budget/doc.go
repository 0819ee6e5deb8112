// Package budget keeps every project's requests to Mixpanel within the
// project's rate, across every worker process on every machine sharing one
// Postgres database (Postgres), or within one process (Memory).
//
// # How to use it
//
// For each HTTP request to a project (a create, a cancel or a poll):
//
//	g, err := b.Take(ctx, project, budget.Create) // or budget.Poll
//	if err != nil { return err }                  // ctx ended, bad arguments
//	rctx, cancel := context.WithDeadline(ctx, g.Deadline())
//	resp, err := send(rctx)                       // right away: one request
//	g.Release(budget.Answer{At: time.Now()})      // as soon as it answered
//	cancel()
//
// One grant is one request on the wire: a client that retries inside the
// call (mpgdpr's default retry policy) or paces on its own limiter must be
// told not to (mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()),
// mpgdpr.WithRateLimiter(nil)); each retry takes a grant of its own.
// Release exactly once per grant, also when the attempt failed or was
// never sent; a zero Answer.At means "now".
//
// # Why a grant lasts until the answer
//
// Mixpanel (and mpgdprtest.WithRateLimit) enforce the rate by arrival: two
// requests of a project arriving less than 1/rate apart draw a 429. A
// budget that only hands out send times cannot guarantee that: a process
// granted a slot can be descheduled, or its request delayed on the way, for
// 80 ms; the next process sends on time and the two arrive 20 ms apart. No
// fixed margin covers that, because the delay has no bound on a loaded
// machine.
//
// So a grant holds the project's slot until Release, and the next grant
// goes one interval (1/rate plus a small margin) after the answer arrived.
// The server stamped the previous request before it answered; the next
// request is sent after the answer plus one interval and arrives later
// still. Whatever the delays, on the way in, in the server, back, or in a
// descheduled process, two arrivals are at least one interval apart: the
// rule is causality, which no network or scheduler can break. A late send
// only delays the next one by as much. The price is one round trip per
// interval: at Mixpanel's 1/s with a 200 ms round trip, about 0.83
// requests/s (BENCHMARKS.md has measurements). Requests of one project are
// thus sent one at a time, which Mixpanel's limit allows anyway.
//
// The mpgdpr client's own pacer gives back half the fastest round trip it
// has seen (a "credit"). The budget does not: across machines the credit
// would have to rest on the fastest round trip any of them measured, and a
// loaded machine measures its scheduling delays as round-trip time, which
// overstates how long the network legs take; a credit built on that can
// bring two arrivals closer than 1/rate. Answer may gain the fields a
// credit needs (status, round trip) later without breaking callers.
//
// The margin (WithMargin, default DefaultMargin) is not for network jitter,
// which the rule above absorbs. It covers a server whose rate check is
// spread over machines whose clocks differ slightly, and timer rounding.
//
// # Clocks
//
// The Postgres budget keeps its times in the database's clock
// (clock_timestamp()), read under the project's row lock; a process only
// ever sleeps for durations the database computed, and reports how long
// ago an answer came by its own monotonic clock. Machines whose wall clocks
// disagree therefore agree on the budget. A database clock stepped forward
// (not slewed) could shorten one interval by the step; stepped backward, it
// only makes one wait longer.
//
// # Creates before polls
//
// While a create waits for a project, polls get at most Limits.PollShare of
// the grants: each create grant earns polls PollShare/(1-PollShare) tokens
// (at most max(1, that) banked), and a poll granted while creates wait
// spends one. With 0.5, creates and polls alternate; with 0, polls wait
// until no create does. With no create waiting, polls take every slot. A
// process registers that it has creates waiting (a row in
// mpgdpr_budget_waiter, renewed at every try, removed when its last create
// is granted or gives up, expiring on its own if the process dies), so the
// rule holds across processes. Among requests of one kind, a process
// serves its own in arrival order; between processes, whichever asks first
// once the slot is free.
//
// # Failures
//
// A holder that neither releases nor ends within its lease (WithLease,
// default DefaultLease; it must exceed the longest attempt) is taken as
// dead: the next grant goes one interval after the lease's end, since the
// holder had to have sent by then (hence the request deadline above). A
// database that cannot be reached makes Take try again, with backoff,
// until ctx ends; a failed Release leaves the slot held until the lease
// ends, which delays the project but sends nothing early.
//
// # Implementations
//
// Postgres keeps the state in two tables that Migrate creates
// (idempotently; call it from the worker's migration step, on a
// *pgxpool.Pool, *pgx.Conn or pgx.Tx); every process must be configured
// with the same limits. A try takes a few round trips in one short
// transaction, and at most two goroutines per process and project try at
// once (one per kind; the others wait in the process). Memory keeps the
// same state in memory with the same rules, for a single process: the
// embedded SQLite worker, which allows one worker per database, needs no
// tables.
package budget
