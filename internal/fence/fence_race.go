//go:build race && cgo

package fence

/*
static void goshm_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
*/
import "C"

// Full is a sequentially consistent fence (one cgo call): no store before
// it is reordered with a load after it.
func Full() { C.goshm_fence() }
