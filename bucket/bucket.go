package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is wrapped by every error that reports a missing object. Test
// for it with errors.Is or IsNotFound.
var ErrNotFound = errors.New("object not found")

// ErrInvalidName is wrapped by the error returned for an object name that
// ValidateName rejects.
var ErrInvalidName = errors.New("invalid object name")

// MaxNameLength is the longest object name accepted, in bytes (the S3 limit).
const MaxNameLength = 1024

// reservedPrefix starts the names of the filesystem provider's temporary
// files; no segment of an object name may start with it.
const reservedPrefix = ".fluxpulse-tmp-"

// ReservedPrefixes returns the prefixes that no segment of an object name
// may start with: the bucket uses such names for itself and hides them
// from listings. Tenant validation refuses them too, as a tenant ID is the
// first segment of every name its objects have (#12).
func ReservedPrefixes() []string { return []string{reservedPrefix} }

// Reader is the read half of a Bucket.
//
// Names are slash-separated paths as ValidateName accepts them. Readers
// returned by Get and GetRange belong to the caller, who must close them;
// they are not safe for concurrent use, but any number may be open at once.
type Reader interface {
	// Get returns the whole object. A missing object is an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// GetRange returns length bytes of the object starting at off (off ≥ 0).
	// A negative length reads to the end. A range reaching past the end is
	// cut short at the end; an off at or past the end gives an empty reader.
	// A missing object is an error wrapping ErrNotFound.
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Exists reports whether the object exists.
	Exists(ctx context.Context, name string) (bool, error)
	// Attributes returns the object's size and modification time. A
	// missing object is an error wrapping ErrNotFound.
	Attributes(ctx context.Context, name string) (Attributes, error)
	// Iter calls f with the name of every entry under dir ("" is the
	// root; a trailing slash is optional), in byte-wise lexicographic
	// order of the full name. Without opts.Recursive it lists the objects
	// directly in dir and each subdirectory once, as its name with a
	// trailing slash; with it, every object below dir and no directories.
	// A dir with nothing below it is not an error. An error from f stops
	// the iteration and is returned as it is.
	Iter(ctx context.Context, dir string, opts IterOptions, f func(name string) error) error
}

// Bucket is object storage: a flat namespace of immutable objects whose
// names may contain slashes, read whole or by range.
//
// Every method is safe for concurrent use by any number of goroutines. An
// object is replaced atomically: a reader sees the old or the new content,
// never a mix, and a failed Upload leaves the old object in place. Upload
// reads r until io.EOF and never closes it; the caller keeps ownership.
type Bucket interface {
	Reader
	// Upload stores the content of r under name, replacing any object of
	// that name. The length of r need not be known in advance.
	Upload(ctx context.Context, name string, r io.Reader) error
	// Delete removes the object. Deleting a missing object is not an
	// error, so deletion can be retried.
	Delete(ctx context.Context, name string) error
	// Close releases the bucket's resources. It does not wait for
	// readers still open.
	Close() error
}

// Attributes describes a stored object.
type Attributes struct {
	Size         int64
	LastModified time.Time
}

// IterOptions change what Iter lists.
type IterOptions struct {
	// Recursive lists every object below the directory instead of its
	// direct entries.
	Recursive bool
}

// IsNotFound reports whether err says that an object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ValidateName checks that name can be used as an object name by every
// provider: 1 to MaxNameLength bytes of valid UTF-8 without NUL, made of
// slash-separated segments none of which is empty, "." or "..", so that it
// can never reach outside the bucket on a filesystem. Segments starting with
// one of ReservedPrefixes are reserved.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidName, len(name), MaxNameLength)
	}
	if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%w: %q is not valid UTF-8 without NUL bytes", ErrInvalidName, name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment (leading, trailing or double slash)", ErrInvalidName, name)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidName, name, seg)
		case strings.HasPrefix(seg, reservedPrefix):
			return fmt.Errorf("%w: %q has a segment starting with the reserved %q", ErrInvalidName, name, reservedPrefix)
		}
	}
	return nil
}

// DirPrefix turns an Iter dir into the prefix of the names below it: "" for
// the root, otherwise the dir with exactly one trailing slash. It rejects a
// dir that is not a valid name.
func DirPrefix(dir string) (string, error) {
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return "", nil
	}
	if err := ValidateName(dir); err != nil {
		return "", fmt.Errorf("iter dir: %w", err)
	}
	return dir + "/", nil
}

// readCloser joins a reader with the closer of what it reads from.
type readCloser struct {
	io.Reader
	io.Closer
}

// emptyReader is the result of a range that starts at or past the end.
func emptyReader() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }

// checkRange rejects a negative offset, which no provider can serve.
func checkRange(off int64) error {
	if off < 0 {
		return fmt.Errorf("range offset %d is negative", off)
	}
	return nil
}

// existsByAttributes implements Exists for providers whose Attributes call
// is as cheap as an existence check.
func existsByAttributes(ctx context.Context, r Reader, name string) (bool, error) {
	_, err := r.Attributes(ctx, name)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
