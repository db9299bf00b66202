// Package audit writes, verifies and exports mcpedge's hash-chained audit
// log, which lives in a [store.Audit].
//
// Every entry carries the hash of the entry before it (PrevHash) and its own
// hash (Hash), computed by [Seal] over all of its other fields. The store
// assigns Seq and PrevHash and calls Seal inside the transaction that
// appends, so the log is one chain 1, 2, 3, … in which removing, inserting,
// reordering or editing an entry breaks a link that [Verify] finds.
//
// # Writing
//
// A [Logger] takes entries from the request path without waiting for the
// database: [Logger.Record] puts the entry in a bounded buffer, and one
// writer goroutine appends buffered entries in batches (group commit). When
// the buffer is full Record waits (backpressure) rather than dropping the
// entry; store errors are retried with backoff. [Logger.Flush] waits until
// everything recorded so far is committed, and [Logger.Close] flushes and
// stops, returning an [*UnwrittenError] listing any entries it could not
// write.
//
// # Verifying
//
// [Verify] walks the whole chain and reports the first problem. A chain
// check can not see that entries were cut off its end, because what remains
// is still a valid chain. Verify therefore also compares the chain with the
// head the store records separately, which catches a careless deletion, and
// with [VerifyOptions.ExpectHead], a head (Seq and Hash) remembered outside
// the database, which catches a careful one. The hash is not keyed: someone
// able to write the database can also recompute every hash after the
// entries they change, and the store's head record with them, so the chain
// shows tampering by such a person only relative to a head kept out of
// their reach (for example one printed by a verification and stored
// elsewhere, or an export archived off the machine).
//
// # Exporting
//
// [Export] writes entries as JSON lines that [VerifyLines] (or an auditor's
// own program, following [Seal]'s documentation) can check offline.
package audit
