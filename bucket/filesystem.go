package bucket

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// Filesystem is a Bucket kept in a local directory: each object is a file
// at its name below the directory. Every access goes through an os.Root, so
// no name, symbolic link or race can reach outside the directory.
type Filesystem struct {
	dir  string
	root *os.Root
}

var _ Bucket = (*Filesystem)(nil)

// NewFilesystem opens (creating it if needed) the directory dir as a bucket.
func NewFilesystem(dir string) (*Filesystem, error) {
	if dir == "" {
		return nil, errors.New("filesystem bucket: no directory given (-blocks-storage.filesystem.dir)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem bucket: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem bucket: open %s: %w", dir, err)
	}
	return &Filesystem{dir: dir, root: root}, nil
}

// Close releases the directory handle.
func (b *Filesystem) Close() error { return b.root.Close() }

// String names the bucket in logs.
func (b *Filesystem) String() string { return "filesystem:" + b.dir }

// Get opens the object's file.
func (b *Filesystem) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	f, _, err := b.open(ctx, name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// GetRange opens the object's file at off.
func (b *Filesystem) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := checkRange(off); err != nil {
		return nil, err
	}
	f, size, err := b.open(ctx, name)
	if err != nil {
		return nil, err
	}
	if off >= size || length == 0 {
		f.Close()
		return emptyReader(), nil
	}
	if length < 0 || length > size-off {
		length = size - off
	}
	return readCloser{Reader: io.NewSectionReader(f, off, length), Closer: f}, nil
}

func (b *Filesystem) open(ctx context.Context, name string) (*os.File, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := ValidateName(name); err != nil {
		return nil, 0, err
	}
	f, err := b.root.Open(name)
	if err != nil {
		return nil, 0, b.pathError(name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat object %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("object %q: %w", name, ErrNotFound)
	}
	return f, fi.Size(), nil
}

// pathError maps a missing file, or a file where a directory was expected,
// to ErrNotFound.
func (b *Filesystem) pathError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("object %q: %w", name, ErrNotFound)
	}
	return fmt.Errorf("object %q in %s: %w", name, b.dir, err)
}

// Exists reports whether a regular file stands at name.
func (b *Filesystem) Exists(ctx context.Context, name string) (bool, error) {
	return existsByAttributes(ctx, b, name)
}

// Attributes returns the file's size and modification time.
func (b *Filesystem) Attributes(ctx context.Context, name string) (Attributes, error) {
	if err := ctx.Err(); err != nil {
		return Attributes{}, err
	}
	if err := ValidateName(name); err != nil {
		return Attributes{}, err
	}
	fi, err := b.root.Stat(name)
	if err != nil {
		return Attributes{}, b.pathError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return Attributes{}, fmt.Errorf("object %q: %w", name, ErrNotFound)
	}
	return Attributes{Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// Upload writes r to a temporary file next to the object, syncs it, renames
// it into place and syncs the directory, so a crash leaves either the old or
// the new object.
func (b *Filesystem) Upload(ctx context.Context, name string, r io.Reader) (err error) {
	if err := ValidateName(name); err != nil {
		return err
	}
	dir := path.Dir(name)
	f, tmp, err := b.createTemp(dir)
	if err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.root.Remove(tmp))
			b.removeEmptyDirs(dir)
		}
	}()
	_, err = io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %q: write: %w", name, err)
	}
	if err := b.root.Rename(tmp, name); err != nil {
		return fmt.Errorf("upload %q: rename into place: %w", name, err)
	}
	if err := b.syncDir(dir); err != nil {
		return fmt.Errorf("upload %q: sync directory: %w", name, err)
	}
	return nil
}

// createTemp creates the directory and an exclusive temporary file in it.
// Concurrent uploads create the same directories and a concurrent Delete
// may remove them once empty, so a failure that only a race explains is
// tried again a few times.
func (b *Filesystem) createTemp(dir string) (*os.File, string, error) {
	var err error
	for range 10 {
		if dir != "." {
			if err = b.root.MkdirAll(dir, 0o755); err != nil {
				if (errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist)) && b.objectOnPath(dir) {
					return nil, "", fmt.Errorf("a path element of %q is an object, not a directory: %w", dir, err)
				}
				continue
			}
		}
		tmp := path.Join(dir, reservedPrefix+rand.Text())
		var f *os.File
		f, err = b.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, tmp, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return nil, "", err
}

// objectOnPath reports whether dir or one of its parents is a file.
func (b *Filesystem) objectOnPath(dir string) bool {
	for p := dir; p != "." && p != "/"; p = path.Dir(p) {
		if fi, err := b.root.Lstat(p); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

func (b *Filesystem) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Delete removes the object's file and then every directory it leaves
// empty.
func (b *Filesystem) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateName(name); err != nil {
		return err
	}
	fi, err := b.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && fi.IsDir()) {
		return nil // no object of that name
	}
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	if err := b.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	b.removeEmptyDirs(path.Dir(name))
	return nil
}

// removeEmptyDirs removes dir and its parents up to the root while they are
// empty; the first that is not ends the walk.
func (b *Filesystem) removeEmptyDirs(dir string) {
	for dir != "." && dir != "/" {
		if err := b.root.Remove(dir); err != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// Iter lists dir in byte-wise order. Directory entries sort as their name
// plus a slash, which makes a depth-first walk come out in the order of the
// full names.
func (b *Filesystem) Iter(ctx context.Context, dir string, opts IterOptions, f func(name string) error) error {
	prefix, err := DirPrefix(dir)
	if err != nil {
		return err
	}
	return b.iter(ctx, prefix, opts.Recursive, f)
}

type dirEntry struct {
	name  string // with a trailing slash for directories
	isDir bool
}

func (b *Filesystem) iter(ctx context.Context, prefix string, recursive bool, f func(string) error) error {
	entries, err := b.readDir(prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := prefix + e.name
		switch {
		case !e.isDir:
			err = f(name)
		case recursive:
			err = b.iter(ctx, name, true, f)
		default:
			var has bool
			if has, err = b.hasObjects(ctx, name); err == nil && has {
				err = f(name)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readDir returns the sorted entries of the directory prefix, leaving out
// temporary files and anything that is neither a file nor a directory. A
// missing directory, or a file where it should be, has no entries.
func (b *Filesystem) readDir(prefix string) ([]dirEntry, error) {
	d, err := b.root.Open(cmp.Or(strings.TrimSuffix(prefix, "/"), "."))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	defer d.Close()
	des, err := d.ReadDir(-1)
	// A directory removed between the open and the read (another process
	// deleted its last object: a compactor deleting a block) is missing too.
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	entries := make([]dirEntry, 0, len(des))
	for _, de := range des {
		switch {
		case strings.HasPrefix(de.Name(), reservedPrefix):
		case de.IsDir():
			entries = append(entries, dirEntry{name: de.Name() + "/", isDir: true})
		case de.Type().IsRegular():
			entries = append(entries, dirEntry{name: de.Name()})
		}
	}
	slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return entries, nil
}

// hasObjects reports whether any object lies below the directory prefix,
// so that directories left empty by a crash are not listed.
func (b *Filesystem) hasObjects(ctx context.Context, prefix string) (bool, error) {
	errFound := errors.New("found")
	err := b.iter(ctx, prefix, true, func(string) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// ctxReader stops a long copy once the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
