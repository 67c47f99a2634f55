package regconfig

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"go.yaml.in/yaml/v2"
)

// envPrefix starts the variables the registry reads overrides from
// (configuration.Parse's parser has the prefix "registry").
const envPrefix = "REGISTRY_"

// override is one REGISTRY_* variable of the registry's environment.
type override struct {
	name  string
	value string
}

// registryOverrides picks env's REGISTRY_* variables in the order the registry
// applies them: sorted by name, so that a section (REGISTRY_STORAGE) is replaced
// before its keys (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY) are set. The first
// entry of a name wins, as in a Go process's environment (Docker gives a
// container's environment without duplicates anyway); an entry without "=" is
// a variable with an empty value, as the registry's parser reads it.
func registryOverrides(env []string) []override {
	seen := map[string]bool{}
	var out []override
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, override{name, value})
	}
	slices.SortFunc(out, func(a, b override) int { return cmp.Compare(a.name, b.name) })
	return out
}

// applyOverrides applies the overrides to cfg the way the registry's parser applies
// its environment; the first failure is the registry's error.
func applyOverrides(cfg *configuration.Configuration, overrides []override) error {
	for _, o := range overrides {
		// The prefix is the first "_"-separated part of the name.
		path := strings.Split(o.name, "_")[1:]
		if err := o.set(reflect.ValueOf(cfg), path); err != nil {
			return fmt.Errorf("parsing environment variable %s: %v", o.name, err)
		}
	}
	return nil
}

// set applies o at path below v: path holds the parts of the variable's name
// still to follow, and is never empty at the registry's entry point.
//
// The rules are the registry's (configuration.Parser): struct fields are
// matched by their upper-cased Go name, map keys by their upper-cased value and
// created lower-cased, slices are indexed by number (one past the end appends),
// an empty interface becomes a map[string]any, the last part's value is
// YAML-decoded into the target's type (so custom UnmarshalYAML methods apply,
// e.g. REGISTRY_STORAGE=filesystem), and a part that leads nowhere is ignored.
func (o override) set(v reflect.Value, path []string) error {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return fmt.Errorf("encountered nil pointer while handling environment variable %s", o.name)
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		return o.setField(v, path)
	case reflect.Map:
		return o.setKey(v, path)
	case reflect.Slice:
		return o.setIndex(v, path)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return nil
		}
		if !v.IsNil() {
			return o.set(v.Elem(), path)
		}
		m := reflect.ValueOf(map[string]any{})
		v.Set(m)
		return o.setKey(m, path)
	}
	// A scalar with parts left: ignored.
	return nil
}

// setField follows path[0] to a field of the struct v.
func (o override) setField(v reflect.Value, path []string) error {
	t := v.Type()
	byName := map[string]int{}
	for i := range t.NumField() {
		sf := t.Field(i)
		// A struct inlined in the YAML (`yaml:",inline"`, like redis's options) is
		// inlined in the names too: when one of its fields is named path[0] (in any
		// case), the variable is for it. It is looked at in field order, before
		// the fields that follow it are known.
		if _, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ","); opts == "inline" && sf.Type.Kind() == reflect.Struct {
			inlined := v.Field(i)
			for j := range sf.Type.NumField() {
				if strings.EqualFold(sf.Type.Field(j).Name, path[0]) {
					return o.set(inlined, path)
				}
			}
		}
		upper := strings.ToUpper(sf.Name)
		if _, dup := byName[upper]; dup {
			return fmt.Errorf("field name collision in configuration object: %s", sf.Name)
		}
		byName[upper] = i
	}
	i, ok := byName[path[0]]
	if !ok {
		return nil // the registry logs that it ignores the variable
	}
	field := v.Field(i)
	if len(path) == 1 {
		return o.decodeInto(field)
	}
	switch field.Kind() {
	case reflect.Map:
		if field.IsNil() {
			field.Set(reflect.MakeMap(field.Type()))
		}
	case reflect.Pointer:
		if field.IsNil() {
			field.Set(reflect.New(field.Type().Elem()))
		}
	}
	return o.set(field, path[1:])
}

// decodeInto replaces the settable v with o's value decoded as YAML into a zero
// value of v's type.
func (o override) decodeInto(v reflect.Value) error {
	fresh := reflect.New(v.Type())
	if err := yaml.Unmarshal([]byte(o.value), fresh.Interface()); err != nil {
		return err
	}
	v.Set(fresh.Elem())
	return nil
}

// setKey follows path[0] to a key of the map m.
func (o override) setKey(m reflect.Value, path []string) error {
	if m.Type().Key().Kind() != reflect.String {
		return nil // the registry logs that it ignores the variable
	}
	if len(path) > 1 {
		if existing, ok := entry(m, path[0]); ok {
			return o.set(existing, path[1:])
		}
	}
	// A new entry under the lower-cased name, replacing any entry of that name.
	elemType := m.Type().Elem()
	var fresh reflect.Value // a map, or a pointer to a zero value
	if elemType.Kind() == reflect.Map {
		fresh = reflect.MakeMap(elemType)
	} else {
		fresh = reflect.New(elemType)
	}
	if len(path) > 1 {
		if err := o.set(fresh, path[1:]); err != nil {
			return err
		}
	} else if err := yaml.Unmarshal([]byte(o.value), fresh.Interface()); err != nil {
		return err
	}
	m.SetMapIndex(reflect.ValueOf(strings.ToLower(path[0])), reflect.Indirect(fresh))
	return nil
}

// entry is the value of m's key that upper-cased is name, unless that value is a
// nil map, pointer or interface (the registry then creates the entry anew). Should
// several keys differ only in case, the registry takes whichever its map iteration
// meets first; here, the least in sort order.
func entry(m reflect.Value, name string) (reflect.Value, bool) {
	keys := m.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
	for _, k := range keys {
		if strings.ToUpper(k.String()) != name {
			continue
		}
		v := m.MapIndex(k)
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Map:
			if v.IsNil() {
				return reflect.Value{}, false
			}
		}
		return v, true
	}
	return reflect.Value{}, false
}

// setIndex follows path[0] to an element of the slice v.
func (o override) setIndex(v reflect.Value, path []string) error {
	idx, err := strconv.Atoi(path[0])
	if err != nil {
		return fmt.Errorf("non-numeric index: %s", path[0])
	}
	if idx > v.Len() {
		return fmt.Errorf("undefined index: %s", path[0])
	}
	if v.Len() == 0 || idx == v.Len() {
		v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
	}
	return o.set(v.Index(idx), path[1:])
}
