package main

// The help of delete and retrieve.

const jobCommon = `
IDs come from the arguments, or from --file: one ID per line, or one column
of a CSV file (--csv-column NAME; the first row names the columns). IDs are
matched exactly: a blank line, an ID with spaces around it (unless
--trim-space), an ID holding an invisible or format character (zero-width
space, word joiner, bidirectional control, byte order mark, unassigned code
point: such an ID names no one) or a malformed CSV is an error naming the
line and the character, never the ID, and nothing is sent. CRLF line endings
are accepted; a UTF-8 byte order mark at the start of the file is removed,
with a note (--strip-bom=false refuses it). Repeated IDs are filed once. IDs
that begin with "-" go after "--".

--verbatim-ids lets through IDs that really hold a tab, another control
character or an invisible one in Mixpanel: every non-blank, valid UTF-8 ID
is then sent byte for byte (a note counts those that hold such a
character). The risk is what the checks guard against: a character put
there by accident (a stray CR, a zero-width space pasted with the ID) is
sent too, Mixpanel accepts the request, it names no one, and that person's
data stays. Use it only for a list known to be exact.

IDs are sent in requests of at most --chunk-size, at most --rate requests per
second, with the library's retries where they are safe. --dry-run reads and
checks the whole input as a real run does, prints the requests it would send
(IDs and bytes per request; the IDs themselves only with --show-ids) and
sends nothing: no request, no journal.

Journal: the job is recorded in a journal of JSON lines (mode 0600: it
holds the IDs; it never holds a token): each request right before it goes
out (after its turn at the rate limit) and its task id after, each synced to
disk before going on, then each task's final status and each export saved.
Run the same command again (same IDs, same options, same journal) to resume
after an interruption, a crash or SIGKILL: requests already filed are never
filed again, unsent IDs are sent, tasks are followed to the end. A journal of
another job is refused, and so is a --journal that is not a regular file or
is far larger than a journal of this job could be (exit 1). A job whose
journal says it is complete files nothing: to file the same IDs again, use
another --journal.
`

const deleteHead = `Erase everything Mixpanel holds about people, by distinct_id. A deletion can
take Mixpanel up to 30 days; it can be cancelled (mpgdpr cancel) while it is
PENDING or STAGING.
` + jobCommon + `
A request whose outcome is unknown (a 5xx answer other than a 503 with
Retry-After, a connection that failed after it was sent, or a previous run
that stopped during it) is filed again, at once within the retry policy and
by the next run: if Mixpanel had filed it, it answers 409 naming the task
already covering those IDs, and that task is followed instead. The same
holds for IDs that already have a deletion running from elsewhere.
`

const retrieveHead = `Ask Mixpanel for everything it holds about people, by distinct_id. Each
request yields its own export, a zip archive encrypted with the project's
API secret; --download DIR saves each one as it is ready.
` + jobCommon + `
A request whose outcome is unknown (a 5xx answer other than a 503 with
Retry-After, a connection that failed after it was sent, or a previous run
that stopped during it) cannot be checked: Mixpanel lists no tasks. Its IDs
are reported as unknown (exit 4) and not filed again unless
--resubmit-unknown is given, which may create a second export for them.
`
