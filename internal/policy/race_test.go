//go:build race

package policy

// raceEnabled: the race detector makes sync.Pool (used by regexp) drop items,
// so allocation counts mean nothing.
const raceEnabled = true
