package layout

// clean-registry's own files live in ToolDir at the storage root, beside docker/: the
// registry reads only docker/registry/v2/{blobs,repositories}, so it never sees them,
// and no scan or deletion of the registry's content ever reaches them.
const (
	ToolDir = "clean-registry"
	// LockFile marks a real run in progress on this storage (internal/lock).
	LockFile = ToolDir + "/lock"
)
