// Package snapshot packs a build's code and Python environment into one
// file on the shared volume and unpacks it to local disk, so that ComfyUI
// and Python start from a local copy instead of opening thousands of small
// files over a network file system, each open a round trip.
//
// A snapshot is a tar stream (zstd-compressed by default) followed by a
// fixed-size footer holding the stream's length, the size of what it
// unpacks to and its sha256. A reader checks the footer before it starts
// (a truncated file is refused at once) and the digest when the stream
// ends; what was unpacked is renamed into place only then, so a corrupt
// snapshot is never run. Files that must stay on the volume (models: large,
// read once, sequentially) are not packed: they are recorded as links and
// unpacked as symbolic links to the build they came from.
//
// Snapshots follow the volume's rules for shared objects: one immutable
// file per build key, written under a private random name, fsynced and
// published by a hard link that fails when another writer won (the loser
// then uses the winner's file).
//
// A Store keeps local copies in one directory on local disk: each is
// unpacked to a private staging directory, verified and renamed to its key.
// Processes on one host share the directory through file locks (a shared
// lock while a copy is used, an exclusive one while it is made or evicted),
// and the least recently used copies are evicted beyond a count and a size.
package snapshot
