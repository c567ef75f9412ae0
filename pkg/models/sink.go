package models

import (
	"fmt"
	"hash"
	"os"
	"sync"
	"sync/atomic"
)

// sink hashes and writes the bytes of one download attempt on two
// goroutines, so reading the socket, hashing and writing overlap: on a
// fast link sha256 alone is slower than the network. Blocks are recycled,
// which bounds memory at blockCount * blockSize whatever the file size.
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
}

const (
	blockSize  = 1 << 20
	blockCount = 4
	// Every writebackStep bytes the writer asks the kernel to start
	// writing back, so the final fsync has little left to wait for.
	writebackStep = 16 << 20
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
		p.free <- &block{b: make([]byte, blockSize)}
	}
	return p
}

// newSink starts the hashing and writing goroutines; close stops them.
// start is the file offset the first byte goes to.
func newSink(h hash.Hash, f *os.File, pool *blockPool, start int64) *sink {
	s := &sink{h: h, f: f, blocks: pool, hashQ: make(chan *block, blockCount), writeQ: make(chan *block, blockCount),
		written: start, synced: start}
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
				if _, err := s.f.Write(b.b[:b.n]); err != nil {
					err = fmt.Errorf("write to the model store: %w (is the volume full?)", err)
					s.werr.Store(&err)
				}
				s.written += int64(b.n)
				if s.written-s.synced >= writebackStep {
					startWriteback(s.f, s.synced, s.written-s.synced)
					s.synced = s.written
				}
			}
			s.release(b)
		}
	}()
	return s
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

// close waits until every block put so far is hashed and written.
func (s *sink) close() error {
	close(s.hashQ)
	close(s.writeQ)
	s.wg.Wait()
	return s.err()
}
