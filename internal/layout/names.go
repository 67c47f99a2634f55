package layout

import (
	"errors"
	"regexp"
	"strings"
)

// The seed's name rules, which follow distribution's reference grammar: a tag is
// [a-zA-Z0-9_][a-zA-Z0-9_.-]* of at most 128 characters; each path component of a
// repository name is [a-z0-9]+ joined by ".", "_", "__" or runs of "-"; the whole
// name is shorter than 256 characters.
var (
	tagRE       = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`)
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$`)
)

// ErrBadName reports an invalid repository or tag name.
var ErrBadName = errors.New("invalid name")

// ValidTag reports whether tag is a valid tag name.
func ValidTag(tag string) error {
	if len(tag) == 0 || len(tag) > 128 || !tagRE.MatchString(tag) {
		return ErrBadName
	}
	return nil
}

// ValidRepository reports whether repo is a valid repository name. Such a name can
// never climb out of the repositories directory: no component is empty, "." or "..".
func ValidRepository(repo string) error {
	if len(repo) == 0 || len(repo) >= 256 {
		return ErrBadName
	}
	for _, c := range strings.Split(repo, "/") {
		if !componentRE.MatchString(c) {
			return ErrBadName
		}
	}
	return nil
}

// Selector names a repository (Tag empty) or one tag of it, as a command line
// gives them to a cleaning, a restore or a check.
type Selector struct {
	Repo string
	Tag  string // empty: the whole repository
}

func (s Selector) String() string {
	if s.Tag == "" {
		return s.Repo
	}
	return s.Repo + ":" + s.Tag
}

// ParseReference splits "REPOSITORY[:TAG]" and validates both parts the seed's way:
// the whole argument is shorter than 256 characters.
func ParseReference(s string) (repo, tag string, err error) {
	repo, tag, hasTag := strings.Cut(s, ":")
	if len(s) >= 256 || ValidRepository(repo) != nil || (hasTag && ValidTag(tag) != nil) {
		return "", "", ErrBadName
	}
	return repo, tag, nil
}
