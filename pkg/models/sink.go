package models

import (
	"fmt"
	"hash"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// sink hashes and writes the bytes of one download attempt on two
// goroutines, so reading the socket, hashing and writing overlap: on a
// fast link sha256 alone is slower than the network. Blocks are recycled,
// which bounds memory at blockCount * blockSize whatever the file size.
//
// On a local disk the writes use direct I/O while they stay aligned: the
// disk reads the blocks where they are, instead of the kernel copying every
// byte into the page cache and writing it back later. That copy and its
// write-back were the largest CPU cost of a download here, and on a VM
// whose page cache has to be faulted in, the least predictable one. The
// last, unaligned piece of a file goes through the page cache.
type sink struct {
	h      hash.Hash
	f      *os.File
	blocks *blockPool
	hashQ  chan *block
	writeQ chan *block
	wg     sync.WaitGroup
	werr   atomic.Pointer[error]
	// written counts bytes that reached the file since the last sync hint.
	written int64
	synced  int64
	// direct is set while writes bypass the page cache (O_DIRECT);
	// directWrites counts those that did.
	direct       bool
	directWrites atomic.Int64
}

const (
	blockSize  = 1 << 20
	blockCount = 4
	// Every writebackStep bytes the writer asks the kernel to start
	// writing back, so the final fsync has little left to wait for.
	writebackStep = 16 << 20
	// directAlign is what direct I/O needs buffers, offsets and lengths
	// aligned to (the largest logical block size in use).
	directAlign = 4096
)

type block struct {
	b    []byte
	n    int
	refs atomic.Int32
}

// blockPool is allocated once per download and shared by its attempts.
type blockPool struct{ free chan *block }

func newBlockPool() *blockPool {
	p := &blockPool{free: make(chan *block, blockCount)}
	for range blockCount {
		p.free <- &block{b: alignedBuf(blockSize)}
	}
	return p
}

// alignedBuf returns n bytes starting at a directAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	return b[off : off+n : off+n]
}

// newSink starts the hashing and writing goroutines; close stops them.
// start is the file offset the first byte goes to; direct asks for direct
// I/O, used when start is aligned and the file accepts it.
func newSink(h hash.Hash, f *os.File, pool *blockPool, start int64, direct bool) *sink {
	s := &sink{h: h, f: f, blocks: pool, hashQ: make(chan *block, blockCount), writeQ: make(chan *block, blockCount),
		written: start, synced: start}
	s.direct = direct && start%directAlign == 0 && setDirectIO(f, true)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for b := range s.hashQ {
			s.h.Write(b.b[:b.n])
			s.release(b)
		}
	}()
	go func() {
		defer s.wg.Done()
		for b := range s.writeQ {
			if s.werr.Load() == nil {
				s.write(b.b[:b.n])
			}
			s.release(b)
		}
	}()
	return s
}

// write appends p to the file: directly while that stays aligned, else
// through the page cache with write-back started every writebackStep.
func (s *sink) write(p []byte) {
	if s.direct && len(p)%directAlign != 0 {
		s.stopDirect() // the file's tail (or a short read before an error)
	}
	n, err := s.f.Write(p)
	if err != nil && s.direct {
		// A file system may still refuse a direct write (EINVAL): go on
		// through the page cache.
		s.stopDirect()
		var m int
		m, err = s.f.Write(p[n:])
		n += m
	}
	if err != nil {
		err = fmt.Errorf("write to the model store: %w (is the volume full?)", err)
		s.werr.Store(&err)
	}
	s.written += int64(n)
	if s.direct {
		s.directWrites.Add(1)
		s.synced = s.written
	} else if s.written-s.synced >= writebackStep {
		startWriteback(s.f, s.synced, s.written-s.synced)
		s.synced = s.written
	}
}

func (s *sink) stopDirect() {
	setDirectIO(s.f, false)
	s.direct = false
}

// get returns a free block to read into.
func (s *sink) get() *block { return <-s.blocks.free }

// put hands a filled block to both goroutines, or recycles an empty one.
func (s *sink) put(b *block) {
	if b.n == 0 {
		s.blocks.free <- b
		return
	}
	b.refs.Store(2)
	s.hashQ <- b
	s.writeQ <- b
}

func (s *sink) release(b *block) {
	if b.refs.Add(-1) == 0 {
		s.blocks.free <- b
	}
}

// err is the first write error, if any.
func (s *sink) err() error {
	if p := s.werr.Load(); p != nil {
		return *p
	}
	return nil
}

// close waits until every block put so far is hashed and written, and
// leaves the file in buffered mode.
func (s *sink) close() error {
	close(s.hashQ)
	close(s.writeQ)
	s.wg.Wait()
	if s.direct {
		s.stopDirect()
	}
	return s.err()
}
