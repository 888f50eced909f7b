// Package blockstore serves queries over the TSDB blocks that ingesters ship
// to object storage, where every object is encrypted with its tenant's key.
//
// Per tenant it syncs the block list from the bucket (one recursive listing;
// a block counts once its meta.json, uploaded last, exists; a block with a
// deletion mark is dropped), downloads each block's index to local disk and
// opens it, and reads chunks by byte range from the bucket when a query
// needs them: never a whole block. Ranges are fetched and decrypted in
// 64 KiB pages, the packages of the encryption format, and kept in a bounded
// cache (fastcache) of decrypted data.
//
// Blocks are reference counted: a block dropped by a sync closes when its
// last query is done. A tenant whose keys were deleted has no readable
// data: its queriers are empty, not errors.
package blockstore
