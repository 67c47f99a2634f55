package blobcache

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v2"
)

// The blob descriptor caches a registry keeps (storage.cache.blobdescriptor).
const (
	// KindNone: no cache; nothing to clear.
	KindNone = ""
	// KindInMemory: an ARC of blob descriptors (10,000 by default) in the
	// registry's process, without expiry; only a restart empties it.
	KindInMemory = "inmemory"
	// KindRedis: descriptors kept in the redis the configuration's redis section
	// names; Redis.Clear clears them.
	KindRedis = "redis"
)

// KindOf is the cache a registry keeps for the value it finds at
// storage.cache.blobdescriptor (or, when that key is absent, at the old name
// storage.cache.layerinfo), chosen as distribution's handlers.NewApp chooses it
// (v3.1.2; 2.x chose the same way): exactly the string "redis" or "inmemory"; anything else
// (absent, empty, null, another word, another case, not a string) means no cache —
// the registry logs "unknown cache type ..., caching disabled" for a value other
// than "" and nil.
func KindOf(value any) string {
	switch value {
	case KindRedis:
		return KindRedis
	case KindInMemory:
		return KindInMemory
	}
	return KindNone
}

// Parse reads, from a registry's configuration file (data) and its environment
// (env: "NAME=value" entries as the registry sees them; this process's own
// environment plays no part), the blob descriptor cache the registry keeps:
// KindNone, KindInMemory or KindRedis (see KindOf), and for KindRedis how to reach
// its redis (ParseRedis; nil when the redis section cannot be read, with the
// error). The cache is looked up where the registry looks, with its
// REGISTRY_STORAGE, REGISTRY_STORAGE_CACHE, REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR
// and REGISTRY_STORAGE_CACHE_LAYERINFO overrides applied the registry's way. An
// error says the configuration cannot be read as the registry would (invalid YAML,
// an override the registry rejects).
//
// Parse does not check the rest of the configuration; internal/regconfig does,
// and gives the same cache in its Storage.
func Parse(data []byte, env []string) (kind string, r *Redis, err error) {
	var doc struct {
		Storage any `yaml:"storage"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", nil, err
	}
	storage, err := storageSection(doc.Storage)
	if err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	for _, o := range overrides(env) {
		path := strings.Split(o.name, "_")[1:]
		if path[0] != "STORAGE" {
			continue
		}
		if storage, err = o.applyToStorage(storage, path[1:]); err != nil {
			return "", nil, fmt.Errorf("parsing environment variable %s: %w", o.name, err)
		}
	}
	cache := storage["cache"]
	v, ok := cache["blobdescriptor"]
	if !ok {
		v = cache["layerinfo"]
	}
	kind = KindOf(v)
	if kind != KindRedis {
		return kind, nil, nil
	}
	r, err = ParseRedis(data, env)
	return kind, r, err
}

// storageSection is the storage section as the registry decodes it
// (configuration.Storage: a map of parameter maps, or a driver's name).
func storageSection(v any) (map[string]map[string]any, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case map[any]any:
		out := make(map[string]map[string]any, len(s))
		for k, p := range s {
			params, err := parameters(p)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", k, err)
			}
			out[fmt.Sprint(k)] = params
		}
		return out, nil
	case []any:
		return nil, fmt.Errorf("a list, not a mapping or a driver's name")
	default:
		return map[string]map[string]any{fmt.Sprint(s): {}}, nil
	}
}

// parameters is a configuration.Parameters (map[string]any) decoded from YAML.
func parameters(v any) (map[string]any, error) {
	switch p := v.(type) {
	case nil:
		return nil, nil
	case map[any]any:
		out := make(map[string]any, len(p))
		for k, x := range p {
			out[fmt.Sprint(k)] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("%v is not a mapping", v)
}

// override is one REGISTRY_* variable of the registry's environment.
type override struct{ name, value string }

// overrides are env's REGISTRY_* variables in the order the registry applies
// them: sorted by name, the first entry of a name winning, an entry without "="
// an empty value (as internal/regconfig, checked there against the registry).
func overrides(env []string) []override {
	seen := map[string]bool{}
	var out []override
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "REGISTRY_") || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, override{name, value})
	}
	slices.SortFunc(out, func(a, b override) int { return cmp.Compare(a.name, b.name) })
	return out
}

// applyToStorage applies o, found at path below REGISTRY_STORAGE, to the storage
// section as the registry's parser does, as far as the cache is concerned: the
// whole section, a whole entry (such as cache), or a key of an entry (such as
// cache's blobdescriptor). Existing entries are matched by their upper-cased name
// (the first in sort order decides), new ones created lower-cased; a value is
// YAML-decoded.
func (o override) applyToStorage(storage map[string]map[string]any, path []string) (map[string]map[string]any, error) {
	if len(path) == 0 {
		var v any
		if err := yaml.Unmarshal([]byte(o.value), &v); err != nil {
			return nil, err
		}
		return storageSection(v)
	}
	if storage == nil {
		storage = map[string]map[string]any{}
	}
	if len(path) == 1 {
		var v any
		if err := yaml.Unmarshal([]byte(o.value), &v); err != nil {
			return nil, err
		}
		params, err := parameters(v)
		if err != nil {
			return nil, err
		}
		if params == nil {
			params = map[string]any{} // decoded into a new map, which stays
		}
		storage[strings.ToLower(path[0])] = params
		return storage, nil
	}
	if k, ok := existing(storage, path[0]); ok && storage[k] != nil {
		return storage, o.applyToParameters(storage[k], path[1:])
	}
	params := map[string]any{}
	if err := o.applyToParameters(params, path[1:]); err != nil {
		return nil, err
	}
	storage[strings.ToLower(path[0])] = params
	return storage, nil
}

// applyToParameters applies o at path (never empty) below one entry of the
// storage section. Only whether a key ends up a string, something else or
// absent matters to the cache: deeper levels are not followed (a scalar is left
// alone, a map stays a map, an absent or null key becomes a map).
func (o override) applyToParameters(params map[string]any, path []string) error {
	if len(path) == 1 {
		var v any
		if err := yaml.Unmarshal([]byte(o.value), &v); err != nil {
			return err
		}
		params[strings.ToLower(path[0])] = v
		return nil
	}
	if k, ok := existing(params, path[0]); ok && params[k] != nil {
		return nil
	}
	params[strings.ToLower(path[0])] = map[string]any{}
	return nil
}

// existing is the key of m whose upper-cased form is name, the least in sort order
// when several are.
func existing[V any](m map[string]V, name string) (string, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.ToUpper(k) == name {
			return k, true
		}
	}
	return "", false
}

// ParseRedis reads the registry's redis section from its configuration file
// (data) and environment, the way the registry does: distribution v3's addrs list
// (or a comma-separated string), 2.x's single addr, mastername, username,
// password, db and tls (set: TLS; 2.x's tls.enabled decides when given), with the
// REGISTRY_REDIS_<KEY> overrides of those keys (the last entry of a name wins;
// values are YAML-decoded).
func ParseRedis(data []byte, env []string) (*Redis, error) {
	var doc struct {
		Redis map[string]any `yaml:"redis"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	section := doc.Redis
	if section == nil {
		section = map[string]any{}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		field, ok := strings.CutPrefix(k, "REGISTRY_REDIS_")
		if !ok || strings.Contains(field, "_") {
			continue
		}
		var parsed any
		if yaml.Unmarshal([]byte(v), &parsed) != nil {
			parsed = v
		}
		section[strings.ToLower(field)] = parsed
	}
	s := &Redis{}
	switch a := section["addrs"].(type) {
	case []any:
		for _, x := range a {
			s.Addrs = append(s.Addrs, fmt.Sprint(x))
		}
	case string:
		s.Addrs = strings.Split(a, ",")
	}
	if a, ok := section["addr"].(string); ok && len(s.Addrs) == 0 {
		s.Addrs = []string{a}
	}
	if v, ok := section["mastername"]; ok {
		s.MasterName = fmt.Sprint(v)
	}
	if v, ok := section["username"]; ok {
		s.Username = fmt.Sprint(v)
	}
	if v, ok := section["password"]; ok {
		s.Password = fmt.Sprint(v)
	}
	if v, ok := section["db"]; ok {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			return nil, fmt.Errorf("redis db %v: %w", v, err)
		}
		s.DB = n
	}
	if t, ok := section["tls"].(map[any]any); ok {
		s.TLS = len(t) > 0
		if en, ok := t["enabled"].(bool); ok {
			s.TLS = en
		}
	}
	return s, nil
}
