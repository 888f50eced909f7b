// Package audit keeps FluxPulse's audit log: an append-only, tamper-evident
// record of every administrative and data-access action (who, for which
// tenant, what, when, with what outcome), as JSON lines.
//
// Format (docs/audit-and-usage.md has the full definition): each line is
// the canonical encoding of an Entry, a JSON object with the members time,
// seq, actor, tenant, action, target, outcome, details (only when present)
// and prev in that order and without whitespace, followed by a last member
// hash = hex(SHA-256(prev ‖ canonical encoding)). Seq runs from 1 without
// gaps; the first entry's prev is ZeroHash. An anchor file next to the log
// (AnchorPath) records the seq and hash of the last entry, so that removing
// entries from the end is detected too.
//
// Sealing (#12): with Options.Keys, every entry's target and details (query
// texts and other customer data) are stored only as a member sealed, AES-256-GCM
// under a key and nonce derived from the current key and a random salt, with
// the entry's clear members as additional data. Time, seq, actor, tenant,
// action and outcome stay in clear. The chain covers the sealed bytes, so
// Verify needs no keys; Unseal opens an entry with them.
//
// Responsibilities:
//   - Logger appends entries. Log never fails its caller: write errors are
//     logged and counted (fluxpulse_audit_write_failures_total).
//   - RecordPush aggregates pushes into one push.summary entry per tenant,
//     actor and minute.
//   - Verify checks a log and its anchor and names the first damage: an
//     edited, removed, reordered or malformed entry, or a cut file.
//
// Invariants:
//   - Every append happens under an exclusive flock of the log, and reads
//     the last entry again when the log grew since this process last wrote,
//     so several Loggers and processes (the server and CLI commands) keep
//     one unbroken chain.
//   - A stored line is at most MaxLineSize bytes: an entry that would be
//     longer loses its details and has its strings cut.
//   - The anchor is updated after the log, under the same lock: a crash in
//     between leaves the anchor one entry behind, which Verify reports as
//     unanchored entries, not as damage.
//   - A nil *Logger records nothing, so callers need no checks.
//   - With Keys, no target or details reach the file in clear: an entry
//     whose key cannot be had is written without them.
//
// What the log cannot prove: the hash chain has no secret. Whoever can
// rewrite both the log and the anchor can remove or change entries and
// recompute every hash after them (or drop entries from the end and rewrite
// the anchor), and Verify will pass. Ship the log or its latest hashes
// elsewhere (a remote log store, a periodic note of the anchor) to detect
// that. The package never rotates the log.
package audit
