package storage

import (
	"context"
	"time"
)

// Move is one unit to move to another directory of the same storage.
type Move struct {
	// Unit is what moves: its directory with everything in it (Files when known; nil
	// means the backend lists the directory).
	Unit
	// To is the directory the unit's directory becomes: Unit.Dir+"/"+f ends as
	// To+"/"+f for every file f inside.
	To string
	// Fresh says To lies in a directory of this run that nothing else writes (its
	// quarantine or trash): a file there can only be this run's own earlier copy of
	// the same source, so a backend without a rename may copy without looking first
	// (on S3, one request per file instead of two where the server ignores
	// If-None-Match on a copy).
	Fresh bool
	// UnmodifiedSince, when set, leaves in place a file written after it: a live
	// registry's write since the run began (a tag pushed again), not the file the run
	// planned to move. The backends do what they can: S3 makes it a condition of the
	// copy itself (x-amz-copy-source-if-unmodified-since, on the server's clock); the
	// registry's drivers stat the source first, which leaves the time from that stat
	// to the copy open; a rename (the filesystem) moves the file all the same, and
	// keeps its time for the verification to see (TimeKeepingMover).
	UnmodifiedSince time.Time
}

// Mover is implemented by backends that can move files within the storage: online
// runs move what they delete into a quarantine, and move back what a live registry
// turned out to need.
type Mover interface {
	// Move moves each unit's files to their place below To, then removes what is left
	// of the unit's directory (empty directories, on backends that have them). A
	// source file that is missing counts as moved, so that a rerun after a crash
	// converges. A destination file that already exists is kept as it is and the
	// source file removed: every file moved holds what its path names (a link names
	// its digest, a blob is its digest's content), or the destination is the newer
	// write. Like Delete, calls carry up to a thousand units and may run at once.
	Move(ctx context.Context, moves []Move) error
}

// TimeKeepingMover is implemented by movers whose moves keep each file's modification
// time (a rename does; an object store's copy does not): what a quarantine holds then
// tells when it was written, e.g. a tag a push wrote between a run's scan and its move.
type TimeKeepingMover interface {
	Mover
	MovesKeepTimes() bool
}
