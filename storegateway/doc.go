// Package storegateway is the store-gateway role: it owns a share of the
// blocks that ingesters ship to object storage, and serves their series
// and chunks to queriers over gRPC (package rpc's StoreGateway service).
//
// Ownership follows the store-gateway ring: a block belongs to the
// replication set of its token (cluster.BlockKey; -store-gateway.
// sharding-ring.replication-factor owners, 3 by default), and each owner
// loads the block's index with the block store (package blockstore,
// restricted to the blocks it owns by Store.Shard). The gateway syncs
// every tenant's blocks from the bucket at start and then every
// -blocks-storage.sync-interval, so that the indexes are local before a
// query needs them; a query naming a block it owns but has not loaded yet
// syncs that tenant again. Blocks follow the ring: at each sync a block no
// longer owned is dropped and a newly owned one loaded.
//
// A gateway answers only for the blocks a querier names and tells which of
// them it holds; the querier asks another owner for the rest. Deletion
// requests are hidden by the querier over the merge of every source, as
// for the ingesters' data. The tenant of a call is the one the cluster's
// authenticated gRPC call names, validated before any path is touched.
package storegateway
