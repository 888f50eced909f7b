// Package bucket is FluxPulse's object storage: a small Bucket interface
// (whole and ranged reads, streaming uploads, deletes, listing) and its
// providers, a local directory (Filesystem, the embedded default) and any
// S3-compatible store (S3, through minio-go), plus Instrumented, which adds
// fluxpulse_bucket_* metrics to any Bucket. New builds the provider that a
// Config (the -blocks-storage.* flags) selects.
//
// Invariants every provider keeps, checked by the shared acceptance suite in
// bucket/buckettest:
//   - Object names are validated by ValidateName before any I/O, so no name
//     reaches outside the bucket; the filesystem provider also opens every
//     path through an os.Root.
//   - Uploads are atomic: readers see the old or the new object, never a
//     partial one (filesystem: temporary file, fsync, rename, fsync of the
//     directory; S3: single PUT or completed multipart upload).
//   - Uploads stream: memory use is bounded (S3: one part, PartSize bytes)
//     whatever the object's length, which need not be known in advance.
//   - Missing objects are reported as errors wrapping ErrNotFound; Delete
//     of a missing object succeeds.
//   - Iter lists in byte-wise lexicographic order of full names.
//   - Secrets (the S3 secret key) print as "<redacted>" everywhere.
//
// The bucket never creates S3 buckets on its own: operators provision them;
// S3.CreateBucket exists for tests and tooling.
//
// What the bucket does not do: it has no notion of tenants or encryption
// (see package encryption, which wraps a Bucket), and the filesystem
// provider cannot hold both an object "a" and an object "a/b", which S3 can.
package bucket
