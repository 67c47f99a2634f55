package layout

import "strings"

// clean-registry's own files live in ToolDir at the storage root, beside docker/: the
// registry reads only docker/registry/v2/{blobs,repositories}, so it never sees them,
// and no scan or deletion of the registry's content ever reaches them.
const (
	ToolDir = "clean-registry"
	// LockFile marks a real run in progress on this storage (internal/lock).
	LockFile = ToolDir + "/lock"
)

// QuarantineDir holds what online runs moved out of the registry's sight, one
// directory per run (QuarantineRun), each mirroring the storage's own paths below
// it beside the run's journal.
const QuarantineDir = ToolDir + "/quarantine"

// QuarantineRun is the directory of one run's quarantine.
func QuarantineRun(run string) string { return QuarantineDir + "/" + run }

// Quarantined is where path p lies in a run's quarantine.
func Quarantined(run, p string) string { return QuarantineRun(run) + "/" + p }

// Unquarantined is the storage path a file of a run's quarantine came from; ok is
// false for the run's own files (its journal).
func Unquarantined(run, q string) (p string, ok bool) {
	p, ok = strings.CutPrefix(q, QuarantineRun(run)+"/")
	if !ok || !strings.HasPrefix(p, V2Dir+"/") {
		return "", false
	}
	return p, true
}
