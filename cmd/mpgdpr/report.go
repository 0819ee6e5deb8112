package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/internal/redact"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

const reportLong = `Report, for every data-subject request, when it was received, which
Mixpanel tasks covered it, every status seen, when it was completed, and its
statutory deadline (GDPR one month from receipt, extendable by two; CCPA 45
days, extendable by 45) with its state: on_time, at_risk, overdue, met or
met_late.

The requests come from the worker's database (--config, or --database) or
from bulk jobs' journals (--journal, one request per journal; received is
the job's start unless --received says otherwise).

Formats: csv and json (JSON Lines), both streamed, and html, one
self-contained page (no external scripts, fonts or images). docs/REPORTS.md
documents the columns and the schema. --hash-ids names people by the
HMAC-SHA-256 of their distinct ID under a key of yours (a file, or env:NAME),
so that the report can be shared: 'mpgdpr report hash-id' finds a person's
hash. No report holds a token or an API secret.

'mpgdpr report verify' checks that the stored history was not edited.

Both say on stderr which database they read (a Postgres URL with its
password hidden) and exit 1, writing nothing, when it does not exist (it is
never created), is not a worker's, or holds no request and no event:
--allow-empty accepts an empty record on purpose.
`

type reportOpts struct {
	config, database    string
	journals            []string
	ref, project        string
	received            string
	since, until, state string
	format, hashIDs     string
	out, policy, now    string
	allowEmpty          bool
}

func newReportCmd(cl *cli) *cobra.Command {
	o := &reportOpts{}
	c := &cobra.Command{
		Use:   "report --format csv|json|html [flags]",
		Short: "Evidence for auditors: each request, its tasks and its deadline",
		Long:  reportLong,
		Args:  cobra.NoArgs,
	}
	fs := c.Flags()
	addSourceFlags(fs, o)
	fs.StringVar(&o.since, "since", "", "only requests received on or after this date (YYYY-MM-DD, UTC) or time (RFC 3339)")
	fs.StringVar(&o.until, "until", "", "only requests received before this date or time")
	fs.StringVar(&o.project, "project", "", "only this project (with --journal: the name to give the journals' project; default the API host)")
	fs.StringVar(&o.state, "state", "", "only overdue, open (not completed) or done (completed) requests")
	fs.StringVar(&o.format, "format", "", "csv, json (JSON Lines) or html")
	fs.StringVar(&o.hashIDs, "hash-ids", "", "name people by a keyed hash: the key's file, or env:NAME")
	fs.StringVar(&o.out, "out", "", "write the report to this file (default: standard output)")
	fs.StringVar(&o.policy, "policy", "", "deadline policy (TOML): time zone, regulations, recorded extensions")
	fs.StringVar(&o.now, "now", "", "evaluate deadlines as of this time (RFC 3339; default now)")
	fs.StringVar(&o.ref, "ref", "", "with --journal: the request's reference (default job-<key>)")
	fs.StringVar(&o.received, "received", "", "with --journal: when the request was received (default the job's start)")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int { return cl.cmdReport(ctx, o) })
	c.AddCommand(newReportVerifyCmd(cl), newReportHeadCmd(cl), newReportHashIDCmd(cl))
	return c
}

func addSourceFlags(fs *pflag.FlagSet, o *reportOpts) {
	fs.StringVar(&o.config, "config", "", "the worker's configuration file (its database)")
	fs.StringVar(&o.database, "database", "", "the worker's database: sqlite:PATH or a postgres:// URL (default: the configuration's; with --config a relative PATH is taken from its directory, as the worker does)")
	fs.StringArrayVar(&o.journals, "journal", nil, "a bulk job's journal (repeat for several)")
	fs.BoolVar(&o.allowEmpty, "allow-empty", false, "accept a worker's database that holds no request (by default an empty record is an error)")
}

// parseWhen reads a date (midnight UTC) or an RFC 3339 time.
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--%s: %q is neither a date (YYYY-MM-DD) nor an RFC 3339 time", flag, s)
	}
	return t, nil
}

// source opens the worker's database or the journals.
func (cl *cli) reportSource(ctx context.Context, o *reportOpts) (evidence.Source, *evidence.DB, func(), error) {
	if len(o.journals) > 0 {
		if o.config != "" || o.database != "" {
			return nil, nil, nil, usagef("give --journal, or --config/--database, not both")
		}
		received, err := parseWhen("received", o.received)
		if err != nil {
			return nil, nil, nil, err
		}
		return &journalSource{paths: o.journals, ref: o.ref, project: o.project, received: received}, nil, func() {}, nil
	}
	if o.ref != "" || o.received != "" {
		return nil, nil, nil, usagef("--ref and --received are for --journal")
	}
	var loc workerdb.Location
	var err error
	switch {
	case o.config != "":
		// The worker's own rule: a relative sqlite: path is the config
		// file's directory's, wherever the report is run from.
		cfg, err := worker.LoadConfig(o.config)
		if err != nil {
			return nil, nil, nil, usagef("%v", err)
		}
		loc, err = cfg.ResolveDatabase(o.database)
		if err != nil {
			return nil, nil, nil, usagef("%v", err)
		}
	case o.database != "":
		if loc, err = workerdb.Resolve(o.database, ""); err != nil {
			return nil, nil, nil, usagef("--database: %v", err)
		}
	default:
		return nil, nil, nil, usagef("say where the requests are: --config FILE, --database URL or --journal FILE")
	}
	db, err := cl.openRecord(ctx, loc, o.allowEmpty)
	if err != nil {
		return nil, nil, nil, err
	}
	return db, db, func() { _ = db.Close() }, nil
}

// openRecord says on stderr which database it reads (stdout is the
// report's), opens it read-only and refuses one that is missing, not a
// worker's or, unless allowEmpty, empty (evidence.DB.Check).
func (cl *cli) openRecord(ctx context.Context, loc workerdb.Location, allowEmpty bool) (*evidence.DB, error) {
	shown := redact.URL(loc.URL())
	if loc.Driver == workerdb.SQLite {
		if abs, err := filepath.Abs(loc.Path); err == nil {
			loc.Path = abs
		}
		shown = loc.String()
	}
	fmt.Fprintf(cl.stderr, "mpgdpr: reading the worker's database %s\n", shown)
	if loc.Driver == workerdb.SQLite {
		if _, err := os.Stat(loc.Path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("the worker's database %s does not exist (check --config or --database; nothing was created)", shown)
			}
			return nil, fmt.Errorf("the worker's database %s: %w", shown, err)
		}
	}
	db, err := evidence.OpenDB(ctx, loc.URL())
	if err != nil {
		return nil, err
	}
	if err := db.Check(ctx, allowEmpty); err != nil {
		_ = db.Close()
		switch {
		case errors.Is(err, evidence.ErrEmptyRecord):
			return nil, fmt.Errorf("the worker's database %s holds no request and no event: nothing to report or verify (is it the right database? --allow-empty accepts an empty record)", shown)
		}
		var se *evidence.SchemaError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("the database %s is %s: no table %s (is it the right database?)", shown, evidence.ErrNoWorkerSchema, strings.Join(se.Missing, ", "))
		}
		return nil, fmt.Errorf("the database %s: %w", shown, err)
	}
	return db, nil
}

func (cl *cli) cmdReport(ctx context.Context, o *reportOpts) int {
	const cmd = "report"
	f := evidence.Filter{Project: o.project, State: o.state}
	var err error
	if len(o.journals) > 0 {
		f.Project = "" // --project names the journals' project
	}
	if f.Since, err = parseWhen("since", o.since); err != nil {
		return cl.fail(cmd, exitUsage, err)
	}
	if f.Until, err = parseWhen("until", o.until); err != nil {
		return cl.fail(cmd, exitUsage, err)
	}
	if !evidence.ValidState(o.state) {
		return cl.fail(cmd, exitUsage, usagef("--state: %q is not overdue, open or done", o.state))
	}
	now := time.Now()
	if o.now != "" {
		if now, err = parseWhen("now", o.now); err != nil {
			return cl.fail(cmd, exitUsage, err)
		}
	}
	var hasher *evidence.IDHasher
	if o.hashIDs != "" {
		if hasher, err = evidence.LoadIDHasher(o.hashIDs); err != nil {
			return cl.fail(cmd, exitUsage, err)
		}
	}
	pol := evidence.NewPolicy()
	if o.policy != "" {
		if pol, err = evidence.LoadPolicy(o.policy); err != nil {
			return cl.fail(cmd, exitUsage, err)
		}
	}
	switch o.format {
	case "csv", "json", "html":
	case "":
		return cl.fail(cmd, exitUsage, usagef("--format: choose csv, json or html"))
	default:
		return cl.fail(cmd, exitUsage, usagef("--format: %q is not csv, json or html", o.format))
	}
	src, db, closeSrc, err := cl.reportSource(ctx, o)
	if err != nil {
		return cl.fail(cmd, codeOf(err), err)
	}
	defer closeSrc()
	out, finish, err := cl.reportOutput(o.out)
	if err != nil {
		return cl.fail(cmd, exitLocal, err)
	}
	var w evidence.Writer
	switch o.format {
	case "csv":
		w = evidence.NewCSVWriter(out, hasher)
	case "json":
		w = evidence.NewJSONLWriter(out, hasher)
	case "html":
		opt := evidence.HTMLOptions{Hasher: hasher, Now: now}
		if db != nil {
			// With the ID key, as report verify checks: without it the
			// rows naming people would show as unproven.
			ids, err := verifyIDKey(o)
			if err != nil {
				return cl.fail(cmd, codeOf(err), err)
			}
			if v, err := db.Verify(ctx, nil, evidence.WithIDKey(ids)); err == nil {
				opt.Verification = v
			}
		} else if v, err := verifyJournals(o.journals); err == nil {
			opt.Verification = v
		}
		w = evidence.NewHTMLWriter(out, opt)
	}
	n, err := evidence.Generate(ctx, src, pol, f, now, w)
	if ferr := finish(err == nil); err == nil {
		err = ferr
	}
	if err != nil {
		return cl.fail(cmd, exitLocal, err)
	}
	if o.out != "" {
		fmt.Fprintf(cl.stderr, "mpgdpr report: %s written to %s\n", words.Count(n, "request"), o.out)
	}
	return exitOK
}

func codeOf(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitLocal
}

// reportOutput is the report's destination: stdout, or a file written
// beside its final name and renamed into place once complete (mode 0600:
// a report can name people).
func (cl *cli) reportOutput(path string) (io.Writer, func(ok bool) error, error) {
	if path == "" {
		return cl.stdout, func(bool) error { return nil }, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return nil, nil, err
	}
	return &redactWriter{w: tmp, s: cl.secrets}, func(ok bool) error {
		err := tmp.Sync()
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if !ok || err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
		return os.Rename(tmp.Name(), path)
	}, nil
}

// ---- report verify

const reportVerifyLong = `Check that the stored history was not edited: recompute the hash chain of
the worker's event log (one chain per project) or of each journal, and name
the first entry altered, removed or reordered. For the worker's database,
also check every row a report reads (mpgdpr_request, mpgdpr_item with its
task links, mpgdpr_task) against the digest the worker sealed into the
chain when it wrote the row: a row changed, inserted or deleted is named
(TAMPERED table row). Rows naming people are checked with the worker's ID
key, read through --config (id_key_env, id_key_file, or the default
mpgdpr-worker.idkey beside it) or given with --hash-ids.

With --heads (a file 'mpgdpr report head' wrote earlier and kept
elsewhere), also check that the history still passes through those heads,
which catches a consistent rewrite of a whole chain; with --public-key, the
heads file's Ed25519 signature is checked first.

This detects edits by someone who does not hold a chain head kept apart; it
is not a signature of the history. Entries without a hash (a journal of an
older version) are reported unverifiable, not tampered; so are rows a
database written before schema version 4 holds, and rows naming people
when no ID key is given (UNVERIFIABLE table: why).

Exit 0 when every entry and row was proven, 4 when something was found
wrong or could not be proven, 1 when the history could not be read: a
database that does not exist, is not a worker's or, without --allow-empty,
holds nothing.
`

func newReportVerifyCmd(cl *cli) *cobra.Command {
	o := &reportOpts{}
	var heads, pub string
	c := &cobra.Command{Use: "verify [flags]", Short: "Check the history's hash chains", Long: reportVerifyLong, Args: cobra.NoArgs}
	addSourceFlags(c.Flags(), o)
	c.Flags().StringVar(&heads, "heads", "", "a chain heads file to check against ('mpgdpr report head')")
	c.Flags().StringVar(&pub, "public-key", "", "check the heads file's signature with this Ed25519 public key (PEM)")
	c.Flags().StringVar(&o.hashIDs, "hash-ids", "", "the worker's ID key (its file, or env:NAME), when --config does not say")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int {
		return cl.cmdReportVerify(ctx, o, heads, pub)
	})
	return c
}

func verifyJournals(paths []string) (*evidence.Verification, error) {
	v := &evidence.Verification{}
	for _, p := range paths {
		c, err := journal.VerifyFile(p)
		if err != nil {
			return nil, err
		}
		r := evidence.ChainResult{Chain: p, Entries: int64(c.Hashed), Head: c.Head}
		if c.Unverifiable() {
			r.Entries, r.Unverifiable = 0, int64(c.Lines)
		}
		if c.BadLine != 0 {
			r.Problem = &evidence.Problem{Kind: evidence.Altered, Entry: int64(c.BadLine), Seq: int64(c.BadLine), Detail: fmt.Sprintf("line %d: %s", c.BadLine, c.Problem)}
		}
		v.Chains = append(v.Chains, r)
	}
	return v, nil
}

func (cl *cli) cmdReportVerify(ctx context.Context, o *reportOpts, headsPath, pubPath string) int {
	const cmd = "report verify"
	var trusted []evidence.Head
	if headsPath != "" {
		hf, err := evidence.ReadHeadsFile(headsPath)
		if err != nil {
			return cl.fail(cmd, exitUsage, err)
		}
		if pubPath != "" {
			pub, err := evidence.LoadPublicKey(pubPath)
			if err != nil {
				return cl.fail(cmd, exitUsage, err)
			}
			if err := hf.VerifySignature(pub); err != nil {
				return cl.fail(cmd, exitIncomplete, err)
			}
			fmt.Fprintf(cl.stdout, "ok signature of %s\n", headsPath)
		}
		trusted = hf.Heads
	} else if pubPath != "" {
		return cl.fail(cmd, exitUsage, usagef("--public-key checks a --heads file"))
	}
	v, err := cl.verify(ctx, o, trusted)
	if err != nil {
		return cl.fail(cmd, codeOf(err), err)
	}
	fmt.Fprint(cl.stdout, v.String())
	if !v.OK() || !v.Complete() {
		return exitIncomplete
	}
	return exitOK
}

func (cl *cli) verify(ctx context.Context, o *reportOpts, trusted []evidence.Head) (*evidence.Verification, error) {
	if len(o.journals) > 0 {
		v, err := verifyJournals(o.journals)
		if err != nil {
			return nil, err
		}
		for _, h := range trusted {
			for i := range v.Chains {
				c := &v.Chains[i]
				if c.Chain == h.Chain && c.Problem == nil && (c.Entries < h.Seq || c.Entries == h.Seq && c.Head != h.Hash) {
					c.Problem = &evidence.Problem{Kind: evidence.Removed, Seq: h.Seq,
						Detail: fmt.Sprintf("the journal no longer ends at (or passes through) the trusted head at line %d", h.Seq)}
				}
			}
		}
		return v, nil
	}
	ids, err := verifyIDKey(o)
	if err != nil {
		return nil, err
	}
	_, db, closeSrc, err := cl.reportSource(ctx, o)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	return db.Verify(ctx, trusted, evidence.WithIDKey(ids))
}

// verifyIDKey is the worker's ID key, for checking the rows that name
// people: --hash-ids, or the one --config names (nil when --config names
// none and its default file is absent: those rows are then reported
// unverifiable).
func verifyIDKey(o *reportOpts) (*evidence.IDHasher, error) {
	switch {
	case o.hashIDs != "":
		h, err := evidence.LoadIDHasher(o.hashIDs)
		if err != nil {
			return nil, usagef("--hash-ids: %v", err)
		}
		return h, nil
	case o.config == "":
		return nil, nil
	}
	cfg, err := worker.LoadConfig(o.config)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if cfg.IDKeyEnv == "" && cfg.IDKeyFile == "" {
		if _, err := os.Stat(cfg.IDKeyPath()); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	h, err := cfg.IDHasher(false)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return h, nil
}

// ---- report head

const reportHeadLong = `Write the chain heads of the history (the worker's event log, or journals)
to a JSON file, signed with an Ed25519 private key (PEM, PKCS #8: openssl
genpkey -algorithm ed25519) when --sign-key is given. Keep the file where
whoever can write the database cannot; 'mpgdpr report verify --heads FILE'
then shows whether the history was rewritten since. The history is verified
first: no heads are written for a tampered one.
`

func newReportHeadCmd(cl *cli) *cobra.Command {
	o := &reportOpts{}
	var key string
	c := &cobra.Command{Use: "head [flags]", Short: "Save (and sign) the history's chain heads", Long: reportHeadLong, Args: cobra.NoArgs}
	addSourceFlags(c.Flags(), o)
	c.Flags().StringVar(&key, "sign-key", "", "sign the heads with this Ed25519 private key (PEM)")
	c.Flags().StringVar(&o.out, "out", "", "write the heads file here (default: standard output)")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int {
		const cmd = "report head"
		v, err := cl.verify(ctx, o, nil)
		if err != nil {
			return cl.fail(cmd, codeOf(err), err)
		}
		if !v.OK() {
			fmt.Fprint(cl.stderr, v.String())
			return cl.fail(cmd, exitIncomplete, errors.New("the history does not verify: no heads written"))
		}
		hf := &evidence.HeadsFile{V: 1, At: time.Now().UTC(), Heads: v.Heads()}
		if key != "" {
			k, err := evidence.LoadSigningKey(key)
			if err != nil {
				return cl.fail(cmd, exitUsage, err)
			}
			hf.Sign(k)
		}
		b, _ := json.MarshalIndent(hf, "", "  ")
		out, finish, err := cl.reportOutput(o.out)
		if err != nil {
			return cl.fail(cmd, exitLocal, err)
		}
		_, err = io.Copy(out, bytes.NewReader(append(b, '\n')))
		if ferr := finish(err == nil); err == nil {
			err = ferr
		}
		if err != nil {
			return cl.fail(cmd, exitLocal, err)
		}
		return exitOK
	})
	return c
}

// ---- report hash-id

func newReportHashIDCmd(cl *cli) *cobra.Command {
	var key string
	c := &cobra.Command{
		Use:   "hash-id --hash-ids KEYFILE|env:NAME ID...",
		Short: "Print the keyed hash a report names a person by",
		Long:  "Print, for each distinct ID, the HMAC-SHA-256 under the key that 'mpgdpr report --hash-ids' used, to find that person's entry in a shared report.\n",
		Args:  cobra.ArbitraryArgs,
	}
	c.Flags().StringVar(&key, "hash-ids", "", "the key's file, or env:NAME")
	c.RunE = cl.exits(func(_ context.Context, _ *cobra.Command, ids []string) int {
		const cmd = "report hash-id"
		if key == "" || len(ids) == 0 {
			return cl.fail(cmd, exitUsage, usagef("want --hash-ids and at least one ID"))
		}
		h, err := evidence.LoadIDHasher(key)
		if err != nil {
			return cl.fail(cmd, exitUsage, err)
		}
		for _, id := range ids {
			fmt.Fprintf(cl.stdout, "%s\t%s\n", h.Hash(id), id)
		}
		return exitOK
	})
	return c
}
