package bulk

import (
	"encoding/json"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/gen"
)

// Request is one request a job would send, as a dry run shows it.
type Request struct {
	N     int      // its number, from 1
	IDs   []string // the chunk of IDs it carries
	Bytes int      // the length of its JSON body
}

// Plan is the requests the job would send if none had been filed yet, in
// order, and nothing is sent.
func (j *Job) Plan() ([]Request, error) {
	var plan []Request
	for start, n := 0, 1; start < len(j.IDs); start, n = start+j.ChunkSize, n+1 {
		chunk := j.IDs[start:min(start+j.ChunkSize, len(j.IDs))]
		size, err := j.bodySize(chunk)
		if err != nil {
			return nil, err
		}
		plan = append(plan, Request{N: n, IDs: chunk, Bytes: size})
	}
	return plan, nil
}

// LeastTime is the least time sending n requests takes at the job's rate:
// the first goes at once, each later one a turn of the limiter later.
func (j *Job) LeastTime(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return time.Duration(float64(n-1) / j.Rate * float64(time.Second))
}

// bodySize is the length of the JSON body the library sends for chunk.
func (j *Job) bodySize(chunk []string) (int, error) {
	var body any
	if j.Kind == mpgdpr.Deletion {
		body = gen.CreateDeletionRequest{ComplianceType: gen.ComplianceType(j.Compliance), DistinctIds: chunk}
	} else {
		r := gen.CreateRetrievalRequest{ComplianceType: gen.ComplianceType(j.Compliance), DistinctIds: chunk}
		if j.Disclosure != "" && j.Compliance == mpgdpr.CCPA {
			dt := gen.DisclosureType(j.Disclosure)
			r.DisclosureType = &dt
		}
		body = r
	}
	b, err := json.Marshal(body)
	return len(b), err
}
