package kfake

// memoflow patch (see PATCHES.md): a transaction the broker acknowledged
// as committed stays committed across a crash, and a transaction aborted
// by crash recovery gets real abort markers.
//
// Upstream kfake writes the commit markers partition by partition and only
// then logs the end of the transaction. A process killed in between left
// some partitions with a COMMIT marker and the others with none; recovery
// then aborted the unmarked ones in memory only, so one transaction ended
// half committed (atomicity broken), and on the next load those unmarked
// batches were closed by the producer's next marker, commit or abort,
// whatever it was. Real Kafka logs PrepareCommit in the transaction log
// first and completes the markers on recovery; this patch does the same
// with a "prepare" entry in pids.log.

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// crashTxn is a transaction found open in one partition at load.
type crashTxn struct {
	pd     *partData
	pid    int64
	commit bool
}

// crashRecovery is the state of one load: the prepared commits from
// pids.log and the open transactions found in the partitions.
type crashRecovery struct {
	prepared map[int64]pidLogEntry // pid → prepare entry with nothing after it
	txns     []crashTxn
}

// scanPrepared returns, per producer, a "prepare" entry of pids.log that no
// later entry of the same producer follows: a commit decided and not known
// to be finished.
func scanPrepared(fsys fs, dir string) map[int64]pidLogEntry {
	raw, err := fsys.ReadFile(filepath.Join(dir, "pids.log"))
	if err != nil {
		return nil
	}
	entries, _ := readEntries(raw)
	out := map[int64]pidLogEntry{}
	for _, e := range entries {
		var entry pidLogEntry
		if json.Unmarshal(e.data, &entry) != nil {
			continue
		}
		if entry.Type == "prepare" {
			out[entry.PID] = entry
		} else {
			delete(out, entry.PID)
		}
	}
	return out
}

// stagedOffsets is the transaction's pending offset commits, for the
// prepare entry.
func stagedOffsets(pidinf *pidinfo) map[string]map[string]map[int32]sessionTxStagedOffsetCommit {
	if len(pidinf.txOffsets) == 0 {
		return nil
	}
	out := make(map[string]map[string]map[int32]sessionTxStagedOffsetCommit, len(pidinf.txOffsets))
	for group, groupOffsets := range pidinf.txOffsets {
		topics := map[string]map[int32]sessionTxStagedOffsetCommit{}
		groupOffsets.each(func(t string, p int32, oc *offsetCommit) {
			if topics[t] == nil {
				topics[t] = map[int32]sessionTxStagedOffsetCommit{}
			}
			topics[t][p] = sessionTxStagedOffsetCommit{Offset: oc.offset, LeaderEpoch: oc.leaderEpoch, Metadata: oc.metadata}
		})
		out[group] = topics
	}
	return out
}

// finishCrashedTxns ends the transactions a crash left open, once the
// partitions, producers and groups are loaded: a COMMIT marker where the
// commit was prepared (and its offsets committed to their groups), an
// ABORT marker elsewhere, so the next load reads the same outcome from
// the log itself. Every such producer's epoch is bumped (loadFromDisk did
// it for the ones with open batches) and the bump is logged: a client that
// retries a produce of the old epoch after a second crash must still be
// fenced, not start a transaction of its own in a log that already holds
// this one's outcome.
func (c *Cluster) finishCrashedTxns() {
	r := c.recovery
	c.recovery = nil
	if r == nil {
		return
	}
	bumped := map[int64]bool{}
	for _, t := range r.txns {
		bumped[t.pid] = true
		var epoch int16
		if pidinf := c.pids.ids[t.pid]; pidinf != nil {
			epoch = pidinf.epoch
		}
		b, n := txnMarkerBatch(t.pid, epoch, t.commit, 0)
		if c.pushBatch(t.pd, n, b, false) < 0 {
			c.cfg.logger.Logf(LogLevelError, "crash recovery: failed to write the %s marker of pid %d in %s-%d",
				map[bool]string{true: "commit", false: "abort"}[t.commit], t.pid, t.pd.t, t.pd.p)
		}
		t.pd.recalculateLSO()
	}
	for pid, e := range r.prepared {
		for group, topics := range e.Offsets {
			g := c.groups.gs[group]
			if g == nil {
				g = c.groups.newGroup(group)
				c.groups.gs[group] = g
			}
			for t, parts := range topics {
				for p, s := range parts {
					g.commitAndPersist(t, p, offsetCommit{offset: s.Offset, leaderEpoch: s.LeaderEpoch, metadata: s.Metadata})
				}
			}
		}
		if pidinf := c.pids.ids[pid]; pidinf != nil {
			pidinf.lastWasCommit = true
			if !bumped[pid] {
				pidinf.epoch++
			}
		}
		bumped[pid] = true
		c.cfg.logger.Logf(LogLevelInfo, "crash recovery: completed the prepared commit of pid %d", pid)
	}
	for pid := range bumped {
		pidinf := c.pids.ids[pid]
		if pidinf == nil {
			continue
		}
		commit := pidinf.lastWasCommit
		c.persistPIDEntry(pidLogEntry{Type: "init", PID: pid, Epoch: pidinf.epoch, TxID: pidinf.txid, Timeout: pidinf.txTimeout, Commit: &commit})
	}
}

// rewriteIndex replaces a segment's index file with one entry per loaded
// batch (memoflow patch; see loadSegmentBatches). The stored
// maxEarlierTimestamp is not read back on load, so the batch's own max
// timestamp stands in for it.
func (c *Cluster) rewriteIndex(fsys fs, pd *partData, pdir string, base int64, batches []*partBatch) {
	buf := make([]byte, 0, len(batches)*indexEntrySize)
	for _, b := range batches {
		e := encodeIndexEntry(b.epoch, b.MaxTimestamp, b.inTx)
		buf = append(buf, e[:]...)
	}
	path := filepath.Join(pdir, indexFileName(base))
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		c.cfg.logger.Logf(LogLevelWarn, "partition %s-%d segment %d: rewrite index: %v", pd.t, pd.p, base, err)
		return
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		c.cfg.logger.Logf(LogLevelWarn, "partition %s-%d segment %d: rewrite index: %v", pd.t, pd.p, base, err)
		return
	}
	if c.cfg.syncWrites {
		f.Sync()
	}
	c.cfg.logger.Logf(LogLevelInfo, "partition %s-%d segment %d: index rebuilt from %d batches", pd.t, pd.p, base, len(batches))
}
