// Package s3 is the native S3 storage backend: a registry whose config.yml names the
// s3 (or s3aws) storage driver, read and cleaned with the AWS SDK for Go v2. Listings
// run in parallel by prefix and give sizes, times and ETags without a request per
// object; deletions go out in DeleteObjects batches of up to 1,000 keys.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/clean-registry/clean-registry/v2/internal/retry"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Driver names under which a registry configuration selects this backend.
var DriverNames = []string{"s3", "s3aws"}

// maxDeleteKeys is DeleteObjects' limit per request.
const maxDeleteKeys = 1000

// maxAttempts bounds the SDK's retries of one request (throttling, 5xx, resets);
// backoff is exponential with jitter, up to 20 s.
const maxAttempts = 10

// deleteRetry resends the keys of a DeleteObjects request that failed one by one with
// a transient error, as patiently as the SDK retries whole requests.
var deleteRetry = retry.Policy{Attempts: maxAttempts, Base: 200 * time.Millisecond, Max: 20 * time.Second}

// readRetry rereads an object whose body was cut off: the SDK retries the request,
// not the reading of its body.
var readRetry = retry.Policy{Attempts: 3, Base: 100 * time.Millisecond, Max: time.Second}

// Backend is a registry's storage in an S3 bucket below a key prefix.
type Backend struct {
	client *s3.Client
	bucket string
	prefix string // rootdirectory without leading or trailing slash
	jobs   int
	// sem bounds the requests in flight across everything the backend does.
	sem      *semaphore.Weighted
	requests *requestCounter
}

// New opens the storage named by the registry's s3 driver parameters (storage.s3 in
// its config.yml, REGISTRY_STORAGE_S3_* overrides applied). jobs bounds the requests
// in flight. It checks, with one listing, that the bucket exists and the credentials
// may list it, so that a run fails before it deletes anything.
func New(ctx context.Context, params map[string]any, jobs int) (*Backend, error) {
	p, err := ParseParams(params)
	if err != nil {
		return nil, err
	}
	return Open(ctx, p, jobs)
}

// Open is New with parsed parameters.
func Open(ctx context.Context, p Params, jobs int) (*Backend, error) {
	jobs = max(jobs, 1)
	endpoint, err := p.Endpoint()
	if err != nil {
		return nil, err
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		// Keep a connection per request in flight instead of reconnecting.
		t.MaxIdleConns = 2*jobs + 16
		t.MaxIdleConnsPerHost = 2*jobs + 16
		if p.SkipVerify {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
	})
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(p.SigningRegion()),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return awsretry.NewStandard(func(o *awsretry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = 20 * time.Second
				// The default retry quota gives up on a whole client after a burst of
				// failures; a batch job would rather wait out the throttling.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if p.AccessKey != "" && p.SecretKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(p.AccessKey, p.SecretKey, "")))
	}
	if p.UseDualStack {
		opts = append(opts, config.WithUseDualStackEndpoint(aws.DualStackEndpointStateEnabled))
	}
	if p.UseFIPS {
		opts = append(opts, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: AWS configuration: %w", err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = typedCredentials{cfg.Credentials}
	}
	counter := &requestCounter{n: map[string]int64{}}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = p.ForcePathStyle
		o.UseAccelerate = p.Accelerate
		// Checksums only where S3 demands them (DeleteObjects): fewer surprises with
		// S3-compatible servers, and nothing is uploaded.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, counter.install, awsmiddleware.AddUserAgentKey("clean-registry"))
		if p.UserAgent != "" {
			o.APIOptions = append(o.APIOptions, awsmiddleware.AddUserAgentKey(p.UserAgent))
		}
	})
	b := &Backend{
		client:   client,
		bucket:   p.Bucket,
		prefix:   p.Prefix(),
		jobs:     jobs,
		sem:      semaphore.NewWeighted(int64(jobs)),
		requests: counter,
	}
	if err := b.check(ctx, p); err != nil {
		return nil, err
	}
	return b, nil
}

// check lists one key of the root: it proves the endpoint answers, the bucket exists
// and the credentials may list it, with the server's own error code otherwise.
func (b *Backend) check(ctx context.Context, p Params) error {
	where := b.String()
	if p.RegionEndpoint != "" {
		where += " at " + p.RegionEndpoint
	}
	_, err := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(b.bucket),
		Prefix:  aws.String(dirPrefix(b.prefix, "")),
		MaxKeys: aws.Int32(1),
	}, func(o *s3.Options) {
		// A wrong endpoint or a missing credential should fail in seconds, not after
		// the patient retries meant for a long run.
		o.Retryer = awsretry.AddWithMaxAttempts(o.Retryer, 2)
	})
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("s3 storage %s: the bucket %q does not exist: %w", where, b.bucket, err)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
			"ExpiredToken", "InvalidClientTokenId", "AuthorizationHeaderMalformed",
			"XAdminUserNotFound": // versitygw's word for an unknown access key
			return fmt.Errorf("s3 storage %s: the credentials may not list the bucket (check accesskey/secretkey, or the AWS credential chain when they are absent, and region): %w", where, err)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return fmt.Errorf("s3 storage %s: access refused (check accesskey/secretkey, or the AWS credential chain when they are absent): %w", where, err)
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		return fmt.Errorf("s3 storage %s: no credentials: the configuration has no accesskey/secretkey and the AWS default credential chain found none: %w", where, err)
	}
	return fmt.Errorf("s3 storage %s: cannot list the bucket: %w", where, err)
}

func (b *Backend) String() string {
	if b.prefix == "" {
		return "s3://" + b.bucket
	}
	return "s3://" + b.bucket + "/" + b.prefix
}

// Requests counts the HTTP requests sent, retries included, by operation.
func (b *Backend) Requests() map[string]int64 { return b.requests.snapshot() }

// credentialsError marks a failure to get credentials from the provider chain. The
// SDK passes such a failure up wrapped in plain text ("get identity: get credentials:
// ..."), with no type of its own; typedCredentials gives it one.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// typedCredentials is the configured provider (the SDK's cache over its chain) with
// its failures marked as credentialsError. It forwards what the SDK asks providers
// (anonymous or not, sources for the user agent).
type typedCredentials struct{ aws.CredentialsProvider }

func (p typedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

func (p typedCredentials) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	return aws.IsCredentialsProvider(p.CredentialsProvider, target)
}

func (p typedCredentials) ProviderSources() []aws.CredentialSource {
	if s, ok := p.CredentialsProvider.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

// acquire takes one of the request slots, release gives it back.
func (b *Backend) acquire(ctx context.Context) error { return b.sem.Acquire(ctx, 1) }
func (b *Backend) release()                          { b.sem.Release(1) }

func (b *Backend) key(p string) (string, error) {
	if !iofs.ValidPath(p) || p == "." {
		return "", fmt.Errorf("invalid storage path %q", p)
	}
	return keyOf(b.prefix, p), nil
}

// ReadFile reads an object. Object stores have no symbolic links.
func (b *Backend) ReadFile(ctx context.Context, p string, limit int64) ([]byte, error) {
	key, err := b.key(p)
	if err != nil {
		return nil, err
	}
	var data []byte
	err = readRetry.Do(ctx, retry.As[*bodyError], func(ctx context.Context) error {
		var gerr error
		data, gerr = b.get(ctx, key, limit)
		return gerr
	})
	switch {
	case err == nil:
		return data, nil
	case err == errTooLarge:
		return nil, &storage.TooLargeError{Path: p, Limit: limit}
	case isNotFound(err):
		return nil, fmt.Errorf("%s: %w", p, storage.ErrNotExist)
	}
	return nil, fmt.Errorf("reading %s: %w", p, err)
}

// bodyError is a response body cut off mid-read: worth reading again.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

var errTooLarge = errors.New("too large")

// get reads an object of at most limit bytes. A larger one is not read on: its size
// is in the response's header, or else the body is cut at limit+1 bytes.
func (b *Backend) get(ctx context.Context, key string, limit int64) ([]byte, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	defer b.release()
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > limit {
		return nil, errTooLarge
	} else if n > 0 {
		buf.Grow(int(n))
	}
	if _, err := io.Copy(&buf, io.LimitReader(out.Body, limit+1)); err != nil {
		return nil, &bodyError{err}
	}
	if int64(buf.Len()) > limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// Stat asks for one object's size, time and ETag (HeadObject).
func (b *Backend) Stat(ctx context.Context, p string) (storage.File, error) {
	key, err := b.key(p)
	if err != nil {
		return storage.File{}, err
	}
	if err := b.acquire(ctx); err != nil {
		return storage.File{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	b.release()
	if err != nil {
		if isNotFound(err) {
			return storage.File{}, fmt.Errorf("%s: %w", p, storage.ErrNotExist)
		}
		return storage.File{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return storage.File{
		Path:    p,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
		ETag:    unquote(aws.ToString(out.ETag)),
	}, nil
}

// DirExists lists at most one key below dir.
func (b *Backend) DirExists(ctx context.Context, dir string) (bool, error) {
	if err := b.acquire(ctx); err != nil {
		return false, err
	}
	defer b.release()
	out, err := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(b.bucket),
		Prefix:  aws.String(dirPrefix(b.prefix, dir)),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return false, fmt.Errorf("listing %s: %w", dir, err)
	}
	return len(out.Contents) > 0, nil
}

// PruneDirs does nothing: an object store has no directories, only keys.
func (b *Backend) PruneDirs(ctx context.Context, dirs []string) error { return nil }

// Delete removes every key of the units in DeleteObjects batches, sent concurrently.
// Units whose files are not known are listed first. Keys already gone count as
// deleted: S3 reports success for them.
func (b *Backend) Delete(ctx context.Context, units []storage.Unit) error {
	var keys, unknown []string
	for _, u := range units {
		dir := strings.TrimSuffix(u.Dir, "/")
		if dir == "" || dir == "." {
			return fmt.Errorf("refusing to delete the storage root")
		}
		if _, err := b.key(dir); err != nil {
			return err
		}
		if len(u.Files) == 0 {
			unknown = append(unknown, dirPrefix(b.prefix, dir))
			continue
		}
		for _, f := range u.Files {
			k, err := b.key(dir + "/" + f)
			if err != nil {
				return fmt.Errorf("invalid file %q in %s", f, u.Dir)
			}
			keys = append(keys, k)
		}
	}
	if len(unknown) > 0 {
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(b.jobs)
		for _, prefix := range unknown {
			g.Go(func() error {
				return b.listFlat(gctx, prefix, func(o types.Object) error {
					mu.Lock()
					keys = append(keys, aws.ToString(o.Key))
					mu.Unlock()
					return nil
				})
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	size := batchSize(len(keys), b.jobs)
	for start := 0; start < len(keys); start += size {
		batch := keys[start:min(start+size, len(keys))]
		g.Go(func() error { return b.deleteBatch(gctx, batch) })
	}
	return g.Wait()
}

// minDeleteBatch keeps batches large enough that requests stay few.
const minDeleteBatch = 100

// batchSize spreads n keys over the jobs when there are fewer than a full batch per
// job: a server deletes the keys of one request one after another, so a single
// 1,000-key request leaves the other jobs idle.
func batchSize(n, jobs int) int {
	return min(maxDeleteKeys, max(minDeleteBatch, (n+jobs-1)/max(jobs, 1)))
}

// deleteBatch sends one DeleteObjects request in quiet mode (only failures come back)
// and resends the keys that failed with a transient per-key error.
func (b *Backend) deleteBatch(ctx context.Context, keys []string) error {
	n := len(keys)
	err := deleteRetry.Do(ctx, retry.As[*transientKeysError], func(ctx context.Context) error {
		objs := make([]types.ObjectIdentifier, len(keys))
		for i, k := range keys {
			objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		if err := b.acquire(ctx); err != nil {
			return err
		}
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(b.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		b.release()
		if err != nil {
			return err // the SDK has retried the request already
		}
		var retryKeys, failures []string
		var first types.Error
		for _, e := range out.Errors {
			code := aws.ToString(e.Code)
			switch {
			case code == "NoSuchKey":
			case transientDeleteCodes[code]:
				if retryKeys == nil {
					first = e
				}
				retryKeys = append(retryKeys, aws.ToString(e.Key))
			default:
				failures = append(failures, fmt.Sprintf("%s: %s %s", aws.ToString(e.Key), code, aws.ToString(e.Message)))
			}
		}
		if len(failures) > 0 {
			sort.Strings(failures)
			return fmt.Errorf("%d failed, first: %s", len(failures), failures[0])
		}
		if len(retryKeys) == 0 {
			return nil
		}
		keys = retryKeys
		return &transientKeysError{n: len(retryKeys), key: aws.ToString(first.Key), code: aws.ToString(first.Code)}
	})
	if err != nil {
		return fmt.Errorf("deleting %d objects: %w", n, err)
	}
	return nil
}

// transientKeysError is a DeleteObjects answer whose only failures are transient
// per-key errors: those keys are worth sending again.
type transientKeysError struct {
	n         int
	key, code string
}

func (e *transientKeysError) Error() string {
	return fmt.Sprintf("%d still failing, e.g. %s: %s", e.n, e.key, e.code)
}

// transientDeleteCodes are per-key DeleteObjects errors worth another try.
var transientDeleteCodes = map[string]bool{
	"SlowDown": true, "InternalError": true, "ServiceUnavailable": true,
	"RequestTimeout": true, "OperationAborted": true,
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// requestCounter counts every attempt of every operation: it sits after the retry
// middleware, so a retried request counts as many times as it went out.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func (c *requestCounter) install(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("CleanRegistryRequestCounter",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			c.mu.Lock()
			c.n[op]++
			c.mu.Unlock()
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

func (c *requestCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
