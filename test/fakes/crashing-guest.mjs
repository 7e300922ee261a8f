// A sandbox guest that dies the way an interpreter that aborts does: it prints why, then throws out of the thread.
process.stderr.write("Aborted(Assertion failed: list_empty(&rt->gc_obj_list))\n");
throw new WebAssembly.RuntimeError("unreachable");
