package blobcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is what reaching the registry's redis takes.
type Redis struct {
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	// TLS is set when the registry talks TLS to redis (not supported here).
	TLS bool
}

// Clear removes what the registry's redis blob descriptor cache holds of what o
// deleted, under the keys distribution's redis cache uses: blobs::<digest> (global
// descriptors), repository::<repo>::blobs (the set of a repository's digests) and
// repository::<repo>::blobs::<digest> (its descriptors). A deleted blob leaves
// every repository's set; a removed repository loses all its keys; a lost link
// leaves its repository's set. An outcome that deleted nothing needs no redis: Clear
// then returns nil at once. It fails on a nil r or one without address, on TLS, and
// on an Unknown outcome (see Advice).
func (r *Redis) Clear(ctx context.Context, o Outcome) error {
	switch {
	case !o.CacheStale():
		return nil
	case r == nil || len(r.Addrs) == 0:
		return errors.New("no redis address found in the registry's configuration")
	case r.TLS:
		return errors.New("the registry talks TLS to redis, which clean-registry does not")
	case o.Unknown:
		return errors.New("the run ended without saying what it deleted")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rc := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:        r.Addrs,
		MasterName:   r.MasterName,
		Username:     r.Username,
		Password:     r.Password,
		DB:           r.DB,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		MaxRetries:   1,
	})
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", strings.Join(r.Addrs, ","), err)
	}
	pipe := rc.Pipeline()
	for _, d := range o.Blobs {
		pipe.Del(ctx, "blobs::"+d)
	}
	for repo, ds := range o.Links {
		set := "repository::" + repo + "::blobs"
		for _, d := range ds {
			pipe.SRem(ctx, set, d)
			pipe.Del(ctx, set+"::"+d)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	// A removed repository loses all its entries; a deleted blob leaves every
	// repository that may have cached it.
	var patterns []string
	for _, repo := range o.Repositories {
		patterns = append(patterns, "repository::"+repo+"::blobs*")
	}
	if len(o.Blobs) > 0 {
		patterns = append(patterns, "repository::*::blobs")
	}
	for _, pattern := range patterns {
		keys, err := scanKeys(ctx, rc, pattern)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		pipe := rc.Pipeline()
		for _, k := range keys {
			if pattern == "repository::*::blobs" {
				for _, d := range o.Blobs {
					pipe.SRem(ctx, k, d)
					pipe.Del(ctx, k+"::"+d)
				}
			} else {
				pipe.Del(ctx, k)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
	}
	return nil
}

// scanKeys lists the keys matching a pattern, on every master of a cluster.
func scanKeys(ctx context.Context, rc redis.UniversalClient, pattern string) ([]string, error) {
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return it.Err()
	}
	if cc, ok := rc.(*redis.ClusterClient); ok {
		var mu = make(chan struct{}, 1)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu <- struct{}{}
			defer func() { <-mu }()
			return scan(ctx, c)
		})
		return keys, err
	}
	return keys, scan(ctx, rc)
}

// Advice says what to do by hand when the cache could not be cleared; r may be
// nil.
func Advice(r *Redis) string {
	addr, db := "?", 0
	if r != nil {
		addr, db = strings.Join(r.Addrs, ","), r.DB
	}
	return fmt.Sprintf("flush the registry's redis cache (redis %s, database %d: FLUSHDB when it caches nothing else, "+
		"else delete the keys blobs::<digest> and repository::<name>::blobs* of the deleted digests), "+
		"or a later push may skip a deleted layer and leave a broken image", addr, db)
}
