package mpgdpr

import (
	"context"
	"errors"
	"net/http"
	"slices"
)

// Kind is what a task does: a retrieval (export) or a deletion (erasure).
// The two differ in one rule that matters (Resubmittable); the calls that
// take a Kind (Create, CreateAll, Check, Wait) save callers from repeating
// the retrieval-or-deletion branch.
type Kind string

// The kinds of task. The values are what the CLI's journal and the worker's
// database store.
const (
	Retrieval Kind = "retrieval"
	Deletion  Kind = "deletion"
)

// ParseKind reads "retrieval" or "deletion".
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !k.Valid() {
		return "", &InputError{Field: "kind", Problem: "must be retrieval or deletion"}
	}
	return k, nil
}

// Valid reports whether k is Retrieval or Deletion.
func (k Kind) Valid() bool { return k == Retrieval || k == Deletion }

// Resubmittable reports whether a create of this kind whose outcome is
// unknown may be filed again: a deletion may (a filed one draws a 409
// naming its task, and erasing twice erases nothing more); a retrieval may
// not, since a second one creates a second export of a person's data
// (check Mixpanel first).
func (k Kind) Resubmittable() bool { return k == Deletion }

// DefaultMaxIDs is Mixpanel's documented per-request limit for this kind.
func (k Kind) DefaultMaxIDs() int {
	if k == Deletion {
		return DefaultMaxDeletionIDs
	}
	return DefaultMaxRetrievalIDs
}

// MaxUnknownInARow is how many creates in a row may end with an unknown
// outcome (ErrOutcomeUnknown) before a caller filing many stops, or pauses:
// the network or the service is failing, and going on would only pile up
// requests that may or may not have been filed. The CLI's bulk jobs and the
// worker use it.
const MaxUnknownInARow = 3

// Create files one task of kind k for ids: CreateRetrieval or
// CreateDeletion. dt is for CCPA retrievals only; it must be empty for a
// deletion.
func (c *Client) Create(ctx context.Context, k Kind, ids []string, ct ComplianceType, dt DisclosureType) (string, error) {
	if err := checkKind(k, dt); err != nil {
		return "", err
	}
	if k == Deletion {
		return c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: ids, ComplianceType: ct})
	}
	return c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: ids, ComplianceType: ct, DisclosureType: dt})
}

// CreateAll files tasks of kind k for any number of ids: DeleteAll or
// RetrieveAll (see them for the rules). dt must be empty for a deletion.
func (c *Client) CreateAll(ctx context.Context, k Kind, ids []string, ct ComplianceType, dt DisclosureType, opts ...BatchOption) (*BatchResult, error) {
	if err := checkKind(k, dt); err != nil {
		uniq, dups := dedupe(ids)
		return &BatchResult{Unsent: uniq, Duplicates: dups}, err
	}
	if k == Deletion {
		return c.DeleteAll(ctx, ids, ct, opts...)
	}
	return c.RetrieveAll(ctx, ids, ct, dt, opts...)
}

// Check returns the status of a task of kind k: CheckRetrieval or
// CheckDeletion.
func (c *Client) Check(ctx context.Context, k Kind, trackingID string) (*Task, error) {
	if err := checkKind(k, ""); err != nil {
		return nil, err
	}
	if k == Deletion {
		return c.CheckDeletion(ctx, trackingID)
	}
	return c.CheckRetrieval(ctx, trackingID)
}

// Wait polls a task of kind k until it ends: WaitRetrieval or WaitDeletion.
func (c *Client) Wait(ctx context.Context, k Kind, trackingID string, opts ...WaitOption) (*Task, error) {
	if err := checkKind(k, ""); err != nil {
		return nil, err
	}
	if k == Deletion {
		return c.WaitDeletion(ctx, trackingID, opts...)
	}
	return c.WaitRetrieval(ctx, trackingID, opts...)
}

func checkKind(k Kind, dt DisclosureType) error {
	if !k.Valid() {
		return &InputError{Field: "kind", Problem: "must be retrieval or deletion"}
	}
	if k == Deletion && dt != "" {
		return &InputError{Field: "disclosure type", Problem: "is for retrievals only"}
	}
	return nil
}

// CreateOutcome is what one create's answer says about the IDs it carried:
// each of them is in exactly one of Filed, Conflicting, Unknown and
// Unfiled. SplitCreate computes it; DeleteAll, RetrieveAll, the CLI's jobs
// and the worker follow it.
type CreateOutcome struct {
	// TaskID is the task Mixpanel created for Filed.
	TaskID string
	// Filed are the IDs of an accepted create (all of them, or none).
	Filed []string
	// Conflicting are the IDs a 409 named: a running deletion, one of
	// ConflictTasks (Mixpanel does not say which), already covers them, and
	// nothing was created for them.
	Conflicting   []string
	ConflictTasks []string
	// Unknown are the IDs of a create whose outcome is unknown
	// (ErrOutcomeUnknown): Mixpanel may have filed them. A deletion may be
	// sent again (Kind.Resubmittable); a retrieval must not.
	Unknown []string
	// Unfiled are IDs certainly not filed: the other IDs of a 409 (to send
	// again at once, Err nil), or every ID of a create that was refused
	// (Err says why).
	Unfiled []string
	// Err is nil when the answer was understood (Filed, or a 409 naming
	// some of the IDs and the tasks covering them); otherwise the create's
	// error: an unknown outcome or a refusal.
	Err error
}

// SplitCreate applies the create-outcome rule to the answer of a create
// that carried ids (taskID and err as Create returned them):
//
//   - no error: every ID is Filed under taskID;
//   - a 409 (*Error) naming some of ids and at least one task: those IDs
//     are Conflicting, the others Unfiled (Err nil: send them again); IDs
//     it names that were not sent are ignored. A 409 naming none of ids,
//     or no task, leaves nothing to follow: a refusal;
//   - ErrOutcomeUnknown: every ID is Unknown;
//   - any other error is a refusal: every ID is Unfiled, with Err.
//
// The slices are new, in ids' order.
func SplitCreate(ids []string, taskID string, err error) CreateOutcome {
	var apiErr *Error
	switch {
	case err == nil:
		return CreateOutcome{TaskID: taskID, Filed: slices.Clone(ids)}
	case errors.Is(err, ErrOutcomeUnknown):
		return CreateOutcome{Unknown: slices.Clone(ids), Err: err}
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict:
		named, rest := splitConflict(ids, apiErr.ConflictingDistinctIDs)
		if len(named) > 0 && len(apiErr.ConflictingTaskIDs) > 0 {
			return CreateOutcome{Conflicting: named, ConflictTasks: slices.Clone(apiErr.ConflictingTaskIDs), Unfiled: rest}
		}
	}
	return CreateOutcome{Unfiled: slices.Clone(ids), Err: err}
}
