package evidence

import "strconv"

// ChainEntry is what the hash of one worker event covers: its chain (the
// event's project; "" for request-level events such as "enqueued"), its
// position, and every stored column, as stored.
type ChainEntry struct {
	Chain     string
	Seq       int64
	At        string // as stored: fixed-width UTC text
	Reference string
	ItemID    int64 // 0 for none (NULL)
	BatchID   int64 // 0 for none (NULL)
	TaskID    string
	Event     string
	Detail    string
}

// chainDomain separates these hashes from any other use of SHA-256.
const chainDomain = "mpgdpr-event-chain-v1"

// EventHash is the chained hash of e after the entry whose hash is prev (""
// for the first entry of a chain): hex(SHA-256(domain, prev, each field of
// e)), every part prefixed with its length, so that no two different
// entries hash alike by moving bytes between fields.
func EventHash(prev string, e ChainEntry) string {
	id := func(v int64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatInt(v, 10)
	}
	return lengthHash(chainDomain, prev, e.Chain, strconv.FormatInt(e.Seq, 10), e.At, e.Reference,
		id(e.ItemID), id(e.BatchID), e.TaskID, e.Event, e.Detail)
}
