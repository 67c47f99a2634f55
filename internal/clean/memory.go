package clean

import (
	"os"
	"runtime/debug"
)

// Memory tuning, in one place. The work is I/O-bound and the live heap small (about
// 40 MB for 130k files, 260 B per blob on a million): collecting at 30% growth
// instead of Go's 100% keeps the peak near the live heap, for a little CPU the disks
// leave idle anyway. GOGC in the environment wins.
const gcPercent = 30

// tuneGC sets the collector's target for a run and returns what undoes it.
func tuneGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	old := debug.SetGCPercent(gcPercent)
	return func() { debug.SetGCPercent(old) }
}

// releaseMemory hands the pages of a finished phase's garbage back before the next
// phase, rather than let the peak carry them: the scan's paths and read buffers, a
// first plan's growth. A collection of the compact inventory costs tens of
// milliseconds for a million files.
func releaseMemory() { debug.FreeOSMemory() }
