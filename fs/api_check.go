//go:build !windows

package fs

import (
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// go-fuse finds a node's operations by interface assertion at run time, so
// a method whose signature drifts from go-fuse's silently stops being
// called (a write would then get ENOSYS instead of EROFS). These
// assertions turn such drift into a compile error.

// readOnly: the EROFS answers to every write, on both kinds of node.
var (
	_ fusefs.NodeSetattrer = readOnly{}
	_ fusefs.NodeFlusher   = readOnly{}
	_ fusefs.NodeMkdirer   = readOnly{}
	_ fusefs.NodeMknoder   = readOnly{}
	_ fusefs.NodeCreater   = readOnly{}
	_ fusefs.NodeSymlinker = readOnly{}
	_ fusefs.NodeLinker    = readOnly{}
	_ fusefs.NodeUnlinker  = readOnly{}
	_ fusefs.NodeRmdirer   = readOnly{}
	_ fusefs.NodeRenamer   = readOnly{}
)

// rootNode: the mount root, one directory per peer.
var (
	_ fusefs.InodeEmbedder  = (*rootNode)(nil)
	_ fusefs.NodeOnAdder    = (*rootNode)(nil)
	_ fusefs.NodeAccesser   = (*rootNode)(nil)
	_ fusefs.NodeGetattrer  = (*rootNode)(nil)
	_ fusefs.NodeGetxattrer = (*rootNode)(nil)
	_ fusefs.NodeLookuper   = (*rootNode)(nil)
	_ fusefs.NodeOpendirer  = (*rootNode)(nil)
	_ fusefs.NodeReaddirer  = (*rootNode)(nil)
	_ fusefs.NodeStatfser   = (*rootNode)(nil)
	_ fusefs.NodeSetattrer  = (*rootNode)(nil)
	_ fusefs.NodeUnlinker   = (*rootNode)(nil)
)

// node: a file, directory or symlink inside a peer's share.
var (
	_ fusefs.InodeEmbedder      = (*node)(nil)
	_ fusefs.NodeAccesser       = (*node)(nil)
	_ fusefs.NodeGetattrer      = (*node)(nil)
	_ fusefs.NodeGetxattrer     = (*node)(nil)
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
	_ fusefs.NodeReaddirer      = (*node)(nil)
	_ fusefs.NodeReadlinker     = (*node)(nil)
	_ fusefs.NodeStatfser       = (*node)(nil)
	_ fusefs.NodeSetattrer      = (*node)(nil)
	_ fusefs.NodeCreater        = (*node)(nil)
	_ fusefs.NodeRenamer        = (*node)(nil)
)

// The handles and the read result.
var (
	_ fusefs.FileReader       = (*handle)(nil)
	_ fusefs.FileReleaser     = (*handle)(nil)
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fuse.ReadResult         = (*readResult)(nil)
)
