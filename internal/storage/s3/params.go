package s3

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// DefaultRegion signs requests to a custom regionendpoint that names no region: the
// registry's driver accepts that configuration, and S3-compatible servers ignore or
// default the region.
const DefaultRegion = "us-east-1"

// Params are the registry s3 (s3aws) driver parameters that matter for reading and
// deleting. Parameters that only shape writes (encrypt, keyid, chunksize,
// storageclass, objectacl, multipart*, redirectendpoint, loglevel) are ignored.
type Params struct {
	Bucket         string
	Region         string
	RegionEndpoint string // as configured; Endpoint gives the URL used
	ForcePathStyle bool
	Secure         bool
	SkipVerify     bool
	V4Auth         bool
	UseDualStack   bool
	Accelerate     bool
	UseFIPS        bool
	// RootDirectory is the key prefix, as configured (leading and trailing slashes
	// are dropped when keys are formed, as the registry does).
	RootDirectory string
	// AccessKey and SecretKey are used only when both are set; otherwise the AWS SDK's
	// default credential chain applies (environment, shared files, web identity,
	// container and instance roles), as in the registry.
	AccessKey string
	SecretKey string
	UserAgent string
}

// ParseParams reads the driver parameters the way the registry's s3-aws driver
// (distribution v3.1.x FromParameters) does: absent values take its defaults,
// booleans may be YAML booleans or strings ("true", "false", "1", ...), other
// values are formatted as text.
func ParseParams(p map[string]any) (Params, error) {
	var out Params
	var err error
	str := func(name string) string {
		v, ok := p[name]
		if !ok || v == nil {
			return ""
		}
		return fmt.Sprint(v)
	}
	boolean := func(name string, def bool) bool {
		if err != nil {
			return false
		}
		var b bool
		b, err = parseBool(p, name, def)
		return b
	}
	out.Bucket = str("bucket")
	out.Region = str("region")
	out.RegionEndpoint = str("regionendpoint")
	out.ForcePathStyle = boolean("forcepathstyle", false)
	out.Secure = boolean("secure", true)
	out.SkipVerify = boolean("skipverify", false)
	out.V4Auth = boolean("v4auth", true)
	out.UseDualStack = boolean("usedualstack", false)
	out.Accelerate = boolean("accelerate", false)
	out.UseFIPS = boolean("usefipsendpoint", false)
	out.RootDirectory = str("rootdirectory")
	out.AccessKey = str("accesskey")
	out.SecretKey = str("secretkey")
	out.UserAgent = str("useragent")
	if err != nil {
		return Params{}, err
	}
	if out.Bucket == "" {
		return Params{}, fmt.Errorf("s3 storage: no bucket parameter provided")
	}
	if out.RegionEndpoint == "" && out.Region == "" {
		return Params{}, fmt.Errorf("s3 storage: no region parameter provided")
	}
	if !out.V4Auth {
		// The registry signs with AWS signature version 2 then, which the AWS SDK for
		// Go v2 no longer speaks.
		return Params{}, fmt.Errorf("s3 storage: v4auth false (signature version 2) is not supported; use a server that accepts signature version 4")
	}
	if out.RegionEndpoint != "" {
		if _, err := out.Endpoint(); err != nil {
			return Params{}, err
		}
	}
	return out, nil
}

func parseBool(p map[string]any, name string, def bool) (bool, error) {
	switch v := p[name].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("s3 storage: the %s parameter should be a boolean, not %q", name, v)
		}
		return b, nil
	default:
		return false, fmt.Errorf("s3 storage: the %s parameter should be a boolean, not %v", name, v)
	}
}

// SigningRegion is the region requests are signed for.
func (p Params) SigningRegion() string {
	if p.Region == "" {
		return DefaultRegion
	}
	return p.Region
}

// Endpoint is the base URL to send requests to, "" for the SDK's AWS endpoint. Like the
// registry's driver (AWS SDK v1), a regionendpoint without a scheme gets https, or
// http when secure is false; one with a scheme is used as it is.
func (p Params) Endpoint() (string, error) {
	ep := p.RegionEndpoint
	if ep == "" {
		if p.Secure {
			return "", nil
		}
		// secure: false on AWS itself: plain HTTP to the regional endpoint.
		domain := "amazonaws.com"
		if strings.HasPrefix(p.Region, "cn-") {
			domain = "amazonaws.com.cn"
		}
		return "http://s3." + p.Region + "." + domain, nil
	}
	if !strings.Contains(ep, "://") {
		if p.Secure {
			ep = "https://" + ep
		} else {
			ep = "http://" + ep
		}
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("s3 storage: invalid regionendpoint %q", p.RegionEndpoint)
	}
	return ep, nil
}

// Prefix is the key prefix of the storage root, without leading or trailing slash.
func (p Params) Prefix() string {
	return strings.TrimLeft(strings.TrimRight(p.RootDirectory, "/"), "/")
}

// keyOf maps a storage path to its object key the registry's way: the rootdirectory
// without leading slash, "/", the path.
func keyOf(prefix, path string) string {
	if prefix == "" {
		return path
	}
	if path == "" {
		return prefix
	}
	return prefix + "/" + path
}

// dirPrefix is the listing prefix of everything below a storage directory.
func dirPrefix(prefix, dir string) string {
	k := keyOf(prefix, strings.Trim(dir, "/"))
	if k == "" {
		return ""
	}
	return k + "/"
}

// pathOf maps an object key back to its storage path; ok is false for a key outside
// the root prefix.
func pathOf(prefix, key string) (string, bool) {
	if prefix == "" {
		return key, true
	}
	rest, ok := strings.CutPrefix(key, prefix+"/")
	return rest, ok
}
